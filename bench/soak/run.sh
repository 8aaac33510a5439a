#!/usr/bin/env bash
# Bounded soak of ferrumx: a regtest litecoind, ferrumx on it, then many clients for
# minutes (subscriptions, queries, batches, bad requests, connects and disconnects)
# while blocks are mined and transactions sent; reports whether ferrumx's RSS stays
# flat. Results are appended to bench/soak/results.md. Extra arguments go to soak.py.
#   SOAK_CLIENTS    concurrent clients (default 300)
#   SOAK_SECONDS    seconds of load (default 180)
#   SOAK_CACHE      work directory (default bench/soak/.cache; deleted and rebuilt)
#   FERRUMX         a ferrumx binary to use instead of building target/release/ferrumx
# Exit status: 0 flat, 2 RSS not flat, 1 the soak itself failed (ferrumx died, ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

if [ ! -x "${LITECOIND:-/usr/bin/litecoind}" ]; then
    echo "litecoind is missing: run 'sudo apt-get install litecoind' or set LITECOIND" >&2
    exit 1
fi

if [ -z "${FERRUMX:-}" ]; then
    (cd "$root" && cargo build --release -p ferrumx-server --bin ferrumx)
fi
ferrumx=${FERRUMX:-$root/target/release/ferrumx}

# Each client is a socket on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

exec "$python" "$here/soak.py" --ferrumx "$ferrumx" --work "${SOAK_CACHE:-$here/.cache}" \
    --clients "${SOAK_CLIENTS:-300}" --duration "${SOAK_SECONDS:-180}" \
    --results "$here/results.md" "$@"
