#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need
# (litecoind for the end-to-end tests, OpenSSL headers, a Rust toolchain) when missing,
# then the unit tests, the end-to-end tests, rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_packages=()
command -v litecoind >/dev/null || need_packages+=(litecoind)
command -v pkg-config >/dev/null || need_packages+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need_packages+=(libssl-dev)
command -v cc >/dev/null || need_packages+=(build-essential)
command -v curl >/dev/null || need_packages+=(curl ca-certificates)
command -v python3 >/dev/null || need_packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_packages+=(python3-venv)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "== installing ${need_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "== installing Rust (rustup)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

# The differential test runs ElectrumX (PyPI e-x, the reference) beside ferrumx.
venv="${FERRUMX_ELECTRUMX_VENV:-$HOME/.cache/ferrumx-tests/ex-venv}"
if [ ! -x "$venv/bin/electrumx_server" ]; then
  echo "== installing ElectrumX into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q e-x==2.0.0 plyvel==1.5.1
fi

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests (unit and end-to-end against litecoind regtest)"
cargo test --workspace
