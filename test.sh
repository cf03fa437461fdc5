#!/usr/bin/env bash
# The whole test suite: unit tests of every crate and end-to-end tests that start the real
# binary and drive it with the real kubectl 1.27-1.33 binaries.
set -euo pipefail
cd "$(dirname "$0")"
# `./test.sh --fast`: unit tests (every crate's --lib), for quick iteration; it needs
# neither kubectl nor the Debian packages below, and skips the fmt/clippy gate.
if [ "${1:-}" = --fast ]; then
  shift
  # ...plus the API server's REST semantics (tests/registry.rs), which need no binary.
  if command -v cargo-nextest >/dev/null; then
    cargo nextest run --workspace --lib "$@"
    exec cargo nextest run -p reddwarf-apiserver --tests "$@"
  else
    cargo test --workspace --lib "$@"
    exec cargo test -p reddwarf-apiserver --tests "$@"
  fi
fi
# Formatting and clippy gate the tests (the workspace lints, missing_docs included, are
# warnings that -D warnings makes fatal).
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests talk HTTPS with curl as well as kubectl; the node tests build images
# from busybox-static, push them with skopeo to Debian's docker-registry, and need iptables
# and nsenter/ping (util-linux, iputils) for pod networking.
need=()
command -v curl >/dev/null || need+=(curl)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v skopeo >/dev/null || need+=(skopeo)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v iptables >/dev/null || need+=(iptables)
command -v nsenter >/dev/null || need+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test.sh: these packages are required: ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
fi
# The official Python client, for the tests that drive the API with it, and PyJWT, a generic
# JWT library that checks service-account tokens against the OIDC discovery documents: a venv
# beside the build directory (reused between runs; rebuilt when it is missing or broken).
pyenv="${CARGO_TARGET_DIR:-$PWD/target}/pyenv"
if ! "$pyenv/bin/python" -c 'import kubernetes, jwt' 2>/dev/null; then
  rm -rf "$pyenv"
  python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install -q --disable-pip-version-check 'kubernetes==33.1.0' 'PyJWT[crypto]==2.10.1'
fi
export REDDWARF_PYTHON="$pyenv/bin/python"
kdir="$(dirname "$(readlink -f "$(command -v kubectl)")")"
for v in 1.27 1.28 1.29 1.30 1.31 1.32 1.33; do
  [ -x "$kdir/kubectl.$v" ] || { echo "test.sh: $kdir/kubectl.$v is missing" >&2; exit 1; }
done
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
