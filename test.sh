#!/usr/bin/env bash
# The whole test suite: unit tests of every crate and end-to-end tests that start the real
# binary and drive it with the real kubectl 1.27-1.33 binaries.
set -euo pipefail
cd "$(dirname "$0")"
# The end-to-end tests talk HTTPS with curl as well as kubectl.
if ! command -v curl >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
  else
    echo "test.sh: curl is required (apt-get install curl)" >&2
    exit 1
  fi
fi
kdir="$(dirname "$(readlink -f "$(command -v kubectl)")")"
for v in 1.27 1.28 1.29 1.30 1.31 1.32 1.33; do
  [ -x "$kdir/kubectl.$v" ] || { echo "test.sh: $kdir/kubectl.$v is missing" >&2; exit 1; }
done
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
