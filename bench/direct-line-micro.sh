#!/usr/bin/env bash
# Interleaved runs of bench/direct-line-micro.ts for two src/ trees: A (an older revision,
# exported to .stack/micro-<rev>) and B (this checkout). Prints one JSON line per run and the
# medians. The machine is shared: only interleaved runs on the same events are comparable.
#   bench/direct-line-micro.sh <rev> [runs=7] [records=500000] [meta=bench|all]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/direct-line-micro.sh <rev> [runs] [records] [meta]}
runs=${2:-7}
records=${3:-500000}
meta=${4:-bench}
dir=.stack/micro-$(git rev-parse --short "$rev")
if [ ! -d "$dir/src" ]; then
  mkdir -p "$dir"
  git archive "$rev" src | tar -x -C "$dir"
fi
a=() b=()
for ((i = 1; i <= runs; i++)); do
  ra=$(node bench/direct-line-micro.ts --src "$dir/src" --records "$records" --meta "$meta")
  rb=$(node bench/direct-line-micro.ts --records "$records" --meta "$meta")
  echo "A $ra"
  echo "B $rb"
  a+=("$(sed -E 's/.*"cpuNsPerEventMedian":([0-9.]+).*/\1/' <<<"$ra")")
  b+=("$(sed -E 's/.*"cpuNsPerEventMedian":([0-9.]+).*/\1/' <<<"$rb")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(median "${a[@]}")
mb=$(median "${b[@]}")
echo "median CPU ns/event: A ($rev) $ma, B (this checkout) $mb, B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN{printf "%.3f", b/a}')"
