#!/usr/bin/env bash
# Initial-sync benchmark, ferrumx vs ElectrumX, on a saved regtest Litecoin chain.
# Sets up what is missing (litecoind, a venv with e-x, the ferrumx release build, the
# chain), then runs bench.py. Extra arguments go to bench.py (e.g. --timeout 1800).
#   BENCH_SERVERS  servers to run, in order (default ferrumx,electrumx)
#   BENCH_TXS      minimum transactions in the chain (default 100000)
#   BENCH_CACHE    where the chain, the venv and the indexes live (default bench/sync/.cache)
#   FERRUMX        a ferrumx binary to use instead of building target/release/ferrumx
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BENCH_CACHE:-$here/.cache}
servers=${BENCH_SERVERS:-ferrumx,electrumx}
python=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$cache"

if [ ! -x "${LITECOIND:-/usr/bin/litecoind}" ]; then
    echo "installing litecoind (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "litecoind is missing: run 'sudo apt-get install litecoind' or set LITECOIND" >&2
        exit 1
    fi
    apt-get update && apt-get install -y litecoind
fi

electrumx=$cache/venv/bin/electrumx_server
if [[ ",$servers," == *",electrumx,"* && ! -x "$electrumx" ]]; then
    echo "installing ElectrumX (e-x from PyPI) into $cache/venv"
    "$python" -m venv "$cache/venv"
    # plyvel is e-x's LevelDB binding; its wheels bundle LevelDB, so no system package is needed.
    "$cache/venv/bin/pip" install --quiet e-x plyvel
fi

ferrumx=${FERRUMX:-$root/target/release/ferrumx}
if [[ ",$servers," == *",ferrumx,"* && -z "${FERRUMX:-}" ]]; then
    # Always ask cargo: it does nothing when the binary is current, and a stale binary
    # would measure old code.
    (cd "$root" && cargo build --release -p ferrumx-server)
fi

"$python" "$here/chain.py" --out "$cache/chain" --txs "${BENCH_TXS:-100000}" --reuse

exec "$python" "$here/bench.py" --chain "$cache/chain" --work "$cache/run" --servers "$servers" \
    --ferrumx "$ferrumx" --electrumx "$electrumx" --results "$here/results.md" "$@"
