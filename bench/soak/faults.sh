#!/usr/bin/env bash
# The fault and fuzz tests with many more rounds than CI runs: kill -9 during catch-up
# and during reorgs (FERRUMX_FAULT_ROUNDS of each, default 200 here, 20 in CI), the
# daemon faults, and the fuzz properties (FERRUMX_FUZZ_CASES each, default 100,000
# here, a few thousand in CI). Output goes to bench/soak/.faults/*.log; the
# summary lines (rounds, where the kills landed, cases) are printed at the end.
#   FERRUMX_FAULT_SEED  replay the kill instants of an earlier run
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=${FAULTS_LOGS:-$here/.faults}
mkdir -p "$logs"
export FERRUMX_FAULT_ROUNDS=${FERRUMX_FAULT_ROUNDS:-200}
export FERRUMX_FUZZ_CASES=${FERRUMX_FUZZ_CASES:-100000}

cd "$root"
status=0
cargo test -p ferrumx-server --test faults -- --nocapture >"$logs/faults.log" 2>&1 || status=1
cargo test -p ferrumx-server --test fuzz -- --nocapture >"$logs/fuzz.log" 2>&1 || status=1
grep -hE "FERRUMX_FAULT_SEED|rounds in|daemon (stopped|killed|hung)|failing daemon|cases in|test result" \
    "$logs/faults.log" "$logs/fuzz.log"
[ "$status" -eq 0 ] || echo "FAILED: see $logs/faults.log and $logs/fuzz.log" >&2
exit "$status"
