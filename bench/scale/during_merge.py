"""Query throughput while ferrumx answers from the runs of its catch-up, against the
same index once merged.

On a copy of a bench/scale chain (all memory, warm cache): ferrumx syncs from an empty
index with each merge commit held for ten minutes (FERRUMX_TEST_MERGE_PAUSE_MS), so
that it answers from the runs; ferrumx-query-bench asks get_history, get_balance and
listunspent for random scripts of the chain for --seconds each; the server is then
killed with SIGKILL mid-merge and restarted on the same index, where it answers again
from the runs at once and resumes the merge; once the merge is done the same queries
run again.

    python3 bench/scale/during_merge.py --chain /work/chains/scale-5m \\
        --ferrumx target/release/ferrumx --generator target/release/ferrumx-query-bench
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "sync"))

import scale  # noqa: E402
from bench import stop, tip_height  # noqa: E402
from daemon import free_port  # noqa: E402

METHODS = ("get_history", "get_balance", "listunspent")
MERGED = "merged into the index"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chain", type=Path, required=True, help="a bench/scale chain directory")
    parser.add_argument("--ferrumx", type=Path, required=True)
    parser.add_argument("--generator", type=Path, required=True, help="ferrumx-query-bench")
    parser.add_argument("--work", type=Path, default=HERE / ".cache" / "during-merge")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scripts", type=int, default=20000, help="script hashes per method")
    args = parser.parse_args()

    chain = json.loads((args.chain / "chain.json").read_text())
    hashes = (args.chain / "scripthashes.txt").read_text().split()
    random.Random(7).shuffle(hashes)
    shutil.rmtree(args.work, ignore_errors=True)
    db = args.work / "db"
    db.mkdir(parents=True)
    datadir = scale.copy_chain(args.chain, args.work / "daemon")
    daemon = scale.start_daemon(datadir, chain["daemon_flags"], False)

    def serve(name: str, pause_ms: int | None) -> tuple:
        port = free_port()
        env = {**scale.common_env(db, daemon, port), "SERVICES": f"tcp://127.0.0.1:{port}",
               "REORG_LIMIT": str(scale.FERRUMX_REORG_LIMIT)}
        if pause_ms:
            env["FERRUMX_TEST_MERGE_PAUSE_MS"] = str(pause_ms)
        log_path = args.work / f"{name}.log"
        started = time.monotonic()
        proc = subprocess.Popen([str(args.ferrumx)], env=env, stdout=open(log_path, "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        while tip_height(port) != chain["height"]:
            if proc.poll() is not None or time.monotonic() - started > 900:
                raise SystemExit(f"{name}: ferrumx did not serve the tip; see {log_path}")
            time.sleep(0.2)
        print(f"{name}: served the tip {time.monotonic() - started:.1f}s after start", flush=True)
        return proc, port, log_path

    def ask(port: int, label: str) -> None:
        for i, method in enumerate(METHODS):
            part = args.work / f"scripts-{method}.txt"
            part.write_text("\n".join(hashes[i * args.scripts:(i + 1) * args.scripts]) + "\n")
            out = subprocess.run([str(args.generator), "--server", f"tcp://127.0.0.1:{port}",
                                  "--scenario", method, "--connections", "8", "--duration",
                                  str(args.seconds), "--depth", "1", "--scripthashes", str(part), "--json"],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"  {label} {method}: {r['req_per_s']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']}", flush=True)

    try:
        proc, port, log_path = serve("paused", 600_000)
        if MERGED in log_path.read_text() or "answering from the runs" not in log_path.read_text():
            raise SystemExit("ferrumx did not answer from its runs (more than 32, or merged already)")
        ask(port, "from the runs")
        if MERGED in log_path.read_text():
            raise SystemExit("the merge ended during the queries")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc, port, log_path = serve("resumed", None)
        deadline = time.monotonic() + 900
        while MERGED not in log_path.read_text():
            if time.monotonic() > deadline:
                raise SystemExit("the resumed merge did not end")
            time.sleep(0.5)
        ask(port, "merged")
        stop(proc)
    finally:
        daemon.stop()
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
