#!/bin/sh
# The hostile-client suite (issue 13) against ElectrumX 2.0 and/or ferrumx, observed:
# a fresh server per attack on one regtest litecoind, a witness pinging every 0.5 s,
# one Markdown row per attack (what the server did, RSS, the witness's worst latency).
#   bench/hostile/run.sh [electrumx|ferrumx ...]    (default: electrumx)
# HOSTILE_ONLY=text runs only the attacks whose names contain it. About 10 minutes per
# server; CPU-heavy, so it takes /work/bench.lock when that exists.
set -eu
cd "$(dirname "$0")/../.."
targets=${*:-electrumx}
lock=""
[ -e /work/bench.lock ] && lock="flock /work/bench.lock"
for target in $targets; do
    HOSTILE_TARGET=$target $lock nice -n 10 cargo test -p ferrumx-server --test hostile \
        -- --ignored --exact suite::the_suite_against_one_server --nocapture 2>&1 |
        tee "target/hostile-$target.log" | grep -E '^\|'
done
