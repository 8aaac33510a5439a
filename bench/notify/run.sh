#!/usr/bin/env bash
# Notification benchmark, ferrumx vs ElectrumX: 10,000 sessions holding a headers and 10
# script-hash subscriptions each, blocks that touch a script of every session, latency
# until the last session is told, and the server's RSS. Sets up what is missing
# (litecoind, a venv with e-x, the release builds, the chain), raises the open-file
# limit, then runs run.py. Extra arguments go to run.py (e.g. --sessions 1000 --rounds 3).
#   BENCH_SERVERS   servers, in order (default ferrumx,electrumx; never run concurrently)
#   BENCH_CACHE     where the chain, indexes and logs live (default bench/notify/.cache)
#   ELECTRUMX_VENV  virtual environment with ElectrumX (default ~/.cache/ferrumx-tests/ex-venv,
#                   the one the differential test uses)
#   FERRUMX         a ferrumx binary to use instead of building target/release/ferrumx
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BENCH_CACHE:-$here/.cache}
servers=${BENCH_SERVERS:-ferrumx,electrumx}
venv=${ELECTRUMX_VENV:-$HOME/.cache/ferrumx-tests/ex-venv}
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
packages=(-p ferrumx-notify-bench)
[ -z "${FERRUMX:-}" ] && packages+=(-p ferrumx-server)
(cd "$root" && cargo build --release "${packages[@]}")
ferrumx=${FERRUMX:-$root/target/release/ferrumx}

# Each session is a socket in the server and one in the generator (separate processes,
# each under this limit), plus the servers' own files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 11000 ]; then
    echo "the open-file limit is $(ulimit -n) (hard limit); 10,000 sessions need more" >&2
    exit 1
fi

mkdir -p "$cache"
exec "$python" "$here/run.py" --cache "$cache" --servers "$servers" --ferrumx "$ferrumx" \
    --electrumx-python "$venv/bin/python" --generator "$root/target/release/ferrumx-notify-bench" \
    --results "$here/results.md" "$@"
