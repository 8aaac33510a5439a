#!/usr/bin/env bash
# Scale benchmark: ferrumx, Fulcrum and ElectrumX syncing a 5M-transaction regtest chain,
# with all the memory they want and under a memory limit, then cold-cache queries.
# Sets up what is missing (the chain, a venv with the `lmdb` package, the release builds),
# then runs scale.py. Extra arguments go to scale.py (e.g. --phases sync --limit-mb 2048).
#   SCALE_SERVERS   servers, in order (default ferrumx,fulcrum,electrumx; one at a time)
#   SCALE_CHAIN     the chain directory (default bench/scale/.cache/chain); built if missing
#   SCALE_TXS       minimum transactions in the chain (default 5000000)
#   SCALE_CACHE     venv, daemon copies, indexes and logs (default bench/scale/.cache)
#   SCALE_OUT       where each phase's JSON goes (default bench/scale/runs)
#   SCALE_RESULTS   the report (default bench/scale/results.md); with SCALE_OUT, lets
#                   another chain (e.g. SCALE_TXS=500000) keep its own table
#   FERRUMX         a ferrumx binary to use instead of building target/release/ferrumx
#   QUERY_BENCH     a ferrumx-query-bench binary to use instead of building it
#   FULCRUM         the Fulcrum binary (default /work/fulcrum/Fulcrum; see
#                   ../shared/tools/build-fulcrum.sh)
#   ELECTRUMX_VENV  venv with e-x 2.0.0 and plyvel (default ~/.cache/ferrumx-tests/ex-venv)
#   BENCH_LOCK      a file to flock during each timed phase (default /work/bench.lock if it exists)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SCALE_CACHE:-$here/.cache}
chain=${SCALE_CHAIN:-$cache/chain}
servers=${SCALE_SERVERS:-ferrumx,fulcrum,electrumx}
venv=${ELECTRUMX_VENV:-$HOME/.cache/ferrumx-tests/ex-venv}
fulcrum=${FULCRUM:-/work/fulcrum/Fulcrum}
python=${PYTHON:-python3}
lock=${BENCH_LOCK:-}
[ -z "$lock" ] && [ -e /work/bench.lock ] && lock=/work/bench.lock
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$cache"

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: the memory limit is a cgroup v1 group and the page cache is dropped" >&2
    exit 1
fi
if [ ! -w /sys/fs/cgroup/memory/cgroup.procs ]; then
    echo "no cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2
    exit 1
fi
if [ ! -x "${LITECOIND:-/usr/bin/litecoind}" ]; then
    apt-get update && apt-get install -y litecoind
fi
if [[ ",$servers," == *",fulcrum,"* && ! -x "$fulcrum" ]]; then
    echo "no Fulcrum binary at $fulcrum: build it with build-fulcrum.sh or set FULCRUM" >&2
    exit 1
fi
if [[ ",$servers," == *",electrumx,"* ]] && ! "$venv/bin/python" -c "import electrumx, plyvel" 2>/dev/null; then
    echo "installing ElectrumX (e-x from PyPI) into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet e-x==2.0.0 plyvel==1.5.1
fi
# The runner reads each LMDB table's size with the `lmdb` package.
if ! "$cache/venv/bin/python" -c "import lmdb" 2>/dev/null; then
    "$python" -m venv "$cache/venv"
    "$cache/venv/bin/pip" install --quiet lmdb
fi

# Always ask cargo for what is not given: it does nothing when the binaries are current.
packages=()
[ -z "${QUERY_BENCH:-}" ] && packages+=(-p ferrumx-query-bench)
[ -z "${FERRUMX:-}" ] && packages+=(-p ferrumx-server)
[ ${#packages[@]} -gt 0 ] && (cd "$root" && nice -n 10 cargo build --release "${packages[@]}")
ferrumx=${FERRUMX:-$root/target/release/ferrumx}
generator=${QUERY_BENCH:-$root/target/release/ferrumx-query-bench}

"$python" "$here/build_chain.py" --out "$chain" --txs "${SCALE_TXS:-5000000}"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$cache/venv/bin/python" "$here/scale.py" --chain "$chain" --work "$cache/run" --out "${SCALE_OUT:-$here/runs}" \
    --servers "$servers" --ferrumx "$ferrumx" --fulcrum "$fulcrum" \
    --electrumx "$venv/bin/python $root/bench/query/electrumx_nowait.py" \
    --generator "$generator" ${lock:+--lock "$lock"} \
    --results "${SCALE_RESULTS:-$here/results.md}" "$@"
