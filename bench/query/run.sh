#!/usr/bin/env bash
# Query benchmark, ferrumx vs Fulcrum and ElectrumX, on a regtest chain made by bench/sync/chain.py.
# Sets up what is missing (litecoind, a venv with e-x, the release builds, the chain),
# raises the open-file limit, then runs run.py. Extra arguments go to run.py
# (e.g. --duration 5 --connections 1,16 --scenarios get_history, or --preset issue11 for
# issue 11's points only: a few minutes per server instead of the whole matrix).
#   BENCH_SERVERS   servers, in order (default ferrumx,electrumx; never run concurrently):
#                   ferrumx, ferrumx-before, fulcrum, electrumx
#   FULCRUM         the Fulcrum binary (default /work/fulcrum/Fulcrum; built by
#                   build-fulcrum.sh from cculianu/Fulcrum, outside this checkout)
#   FERRUMX_BEFORE  another ferrumx binary, measured as ferrumx-before (before/after in one run)
#   BENCH_TXS       minimum transactions in the chain (default 100000, as bench/sync's)
#   BENCH_POOL      distinct payee scripts of the chain (default bench/sync's 20000; issue 11's
#                   chain: BENCH_TXS=500000 BENCH_POOL=400000, about 300,000 script hashes)
#   BENCH_CACHE     where the chain, indexes and logs live (default bench/query/.cache); the
#                   chain is this benchmark's own copy, since a litecoind runs on it
#   ELECTRUMX_VENV  virtual environment with ElectrumX (default ~/.cache/ferrumx-tests/ex-venv,
#                   the one the differential test uses)
#   FERRUMX         a ferrumx binary to use instead of building target/release/ferrumx
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BENCH_CACHE:-$here/.cache}
servers=${BENCH_SERVERS:-ferrumx,electrumx}
venv=${ELECTRUMX_VENV:-$HOME/.cache/ferrumx-tests/ex-venv}
fulcrum=${FULCRUM:-/work/fulcrum/Fulcrum}
if [[ ",$servers," == *",fulcrum,"* && ! -x "$fulcrum" ]]; then
    echo "no Fulcrum binary at $fulcrum: build it with build-fulcrum.sh or set FULCRUM" >&2
    exit 1
fi
if [[ ",$servers," == *",ferrumx-before,"* && ! -x "${FERRUMX_BEFORE:-}" ]]; then
    echo "ferrumx-before needs FERRUMX_BEFORE, a ferrumx binary" >&2
    exit 1
fi
python=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

if [ ! -x "${LITECOIND:-/usr/bin/litecoind}" ]; then
    echo "installing litecoind (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "litecoind is missing: run 'sudo apt-get install litecoind' or set LITECOIND" >&2
        exit 1
    fi
    apt-get update && apt-get install -y litecoind
fi

if [[ ",$servers," == *",electrumx,"* ]] && ! "$venv/bin/python" -c "import electrumx, plyvel" 2>/dev/null; then
    echo "installing ElectrumX (e-x from PyPI) into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet e-x==2.0.0 plyvel==1.5.1
fi

# Always ask cargo: it does nothing when the binaries are current, and a stale binary
# would measure old code.
packages=(-p ferrumx-query-bench)
[ -z "${FERRUMX:-}" ] && packages+=(-p ferrumx-server)
(cd "$root" && cargo build --release "${packages[@]}")
ferrumx=${FERRUMX:-$root/target/release/ferrumx}

# bench/sync's generator keeps a chain built with these parameters and rebuilds otherwise.
pool=()
[ -n "${BENCH_POOL:-}" ] && pool=(--pool "$BENCH_POOL")
"$python" "$root/bench/sync/chain.py" --out "$cache/chain" --txs "${BENCH_TXS:-100000}" "${pool[@]}" --reuse

# 256 connections per server, each a socket on both ends, plus the servers' own files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 2048 ]; then
    echo "the open-file limit is $(ulimit -n) (hard limit); 256 connections need more" >&2
    exit 1
fi

exec "$python" "$here/run.py" --chain "$cache/chain" --work "$cache/run" \
    --servers "$servers" --ferrumx "$ferrumx" --electrumx-python "$venv/bin/python" \
    --fulcrum "$fulcrum" --ferrumx-before "${FERRUMX_BEFORE:-/nonexistent}" \
    --generator "$root/target/release/ferrumx-query-bench" --results "$here/results.md" "$@"
