#!/usr/bin/env bash
# The direct line micro-benchmark, this checkout against an older revision: each run loads both
# encoders into one process and alternates their passes (bench/direct-line-micro.ts --baseline),
# so that both meet the same load from the machine's neighbours. Prints one JSON line per run,
# then the medians over runs of each run's median per-pair ratio and CPU times.
#   bench/direct-line-micro.sh <rev> [runs=7] [records=500000] [meta=bench|all] [passes=7] [path=direct|object]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/direct-line-micro.sh <rev> [runs] [records] [meta] [passes]}
runs=${2:-7}
records=${3:-500000}
meta=${4:-bench}
passes=${5:-7}
path=${6:-direct}
dir=.stack/micro-$(git rev-parse --short "$rev")
if [ ! -d "$dir/src" ]; then
  mkdir -p "$dir"
  git archive "$rev" src | tar -x -C "$dir"
fi
ratios=() base=() mine=()
for ((i = 1; i <= runs; i++)); do
  r=$(node bench/direct-line-micro.ts --baseline "$dir/src" --records "$records" --meta "$meta" --passes "$passes" --path "$path")
  echo "$r"
  ratios+=("$(sed -E 's/.*"ratioMedian":([0-9.]+).*/\1/' <<<"$r")")
  base+=("$(sed -E 's/.*"baselineCpuNsPerEventMedian":([0-9.]+).*/\1/' <<<"$r")")
  mine+=("$(sed -E 's/.*"cpuNsPerEventMedian":([0-9.]+).*/\1/' <<<"$r")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "path=$path meta=$meta: median over $runs runs of the per-pair ratio this checkout / $rev: $(median "${ratios[@]}") (ratios: ${ratios[*]}); median CPU ns/event $rev $(median "${base[@]}"), this checkout $(median "${mine[@]}")"
