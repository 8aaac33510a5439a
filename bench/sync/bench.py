"""Measures initial sync of ferrumx and ElectrumX on the same saved regtest chain.

Each server starts on an empty DB_DIRECTORY against a freshly started litecoind on the
saved chain, one server at a time. Both open their client listeners only once they have
caught up, so the clock runs from process start until the server's TCP port answers
`blockchain.headers.subscribe` (after `server.version`) with the daemon's tip height.
Also recorded: peak resident memory of the server's process tree (polled VmRSS, and
each process's VmHWM at the end), CPU seconds, and the index size on disk (allocated
blocks, as du counts them, so sparse database files count only what they use).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from daemon import Daemon, free_port

POLL_SECONDS = 0.1
STOP_SECONDS = 120
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SyncFailed(Exception):
    """A server did not reach the tip; the message says why."""


def tree_pids(root: int) -> list:
    """The process and all its descendants that are still alive."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return pids


def status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def disk_usage(path: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if not p.is_symlink())


def tip_height(port: int) -> int | None:
    """Height from blockchain.headers.subscribe, or None while the port is closed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            requests = [
                {"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["sync-bench", "1.4"]},
                {"jsonrpc": "2.0", "id": 2, "method": "blockchain.headers.subscribe", "params": []},
            ]
            sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
            reader = sock.makefile("rb")
            for line in reader:
                reply = json.loads(line)
                if reply.get("id") == 2:
                    if "error" in reply:
                        raise SyncFailed(f"blockchain.headers.subscribe failed: {reply['error']}")
                    return reply["result"]["height"]
    except (ConnectionError, socket.timeout, OSError, ValueError):
        return None
    return None


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM and a bounded wait for a clean shutdown, then SIGKILL the whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
            return
        except subprocess.TimeoutExpired:
            print(f"  did not stop within {STOP_SECONDS}s; killing it", flush=True)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def measure(name: str, cmd: list, env: dict, work: Path, daemon: Daemon, timeout: float) -> dict:
    """Runs one server from an empty index to the daemon's tip and returns its figures."""
    run_dir = work / name
    db_dir = run_dir / "db"
    shutil.rmtree(run_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    tip = daemon.rpc.call("getblockcount")
    port = free_port()
    full_env = {
        **os.environ,
        "COIN": "Litecoin",
        "NET": "regtest",
        "DAEMON_URL": daemon.url,
        "DB_DIRECTORY": str(db_dir),
        "SERVICES": f"tcp://127.0.0.1:{port}",
        "ALLOW_ROOT": "1",
        "COST_SOFT_LIMIT": "0",
        "COST_HARD_LIMIT": "0",
        "PEER_DISCOVERY": "off",
        "LOG_LEVEL": "info",
        **env,
    }
    log_path = run_dir / "server.log"
    print(f"{name}: syncing {tip} blocks (log: {log_path})", flush=True)
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    peak_rss = 0
    try:
        while True:
            pids = tree_pids(proc.pid)
            peak_rss = max(peak_rss, sum(status_kb(p, "VmRSS") for p in pids))
            if proc.poll() is not None:
                raise SyncFailed(f"{name} exited with {proc.returncode} before reaching the tip:\n{log_tail(log_path)}")
            height = tip_height(port)
            elapsed = time.monotonic() - started
            if height is not None:
                if height == tip:
                    break
                if height > tip:
                    raise SyncFailed(f"{name} reports height {height} above the daemon's {tip}")
            if elapsed > timeout:
                state = "its port is still closed" if height is None else f"it is at height {height}"
                raise SyncFailed(f"{name} did not reach height {tip} within {timeout:.0f}s ({state}):\n{log_tail(log_path)}")
            time.sleep(POLL_SECONDS)
        pids = tree_pids(proc.pid)
        peak_rss = max([peak_rss] + [status_kb(p, "VmHWM") for p in pids])
        cpu = sum(cpu_seconds(p) for p in pids)
    finally:
        stop(proc)
    return {"seconds": elapsed, "peak_rss_kb": peak_rss, "cpu_seconds": cpu, "index_bytes": disk_usage(db_dir)}


def warm_page_cache(datadir: Path) -> None:
    """Reads the daemon's block files once so neither server pays for a cold disk."""
    for path in sorted((datadir / "regtest" / "blocks").glob("*.dat")):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_row(name: str, txs: int, r: dict) -> str:
    if "error" in r:
        return f"| {name} | failed: {r['error'].splitlines()[0]} | | | | |"
    return (
        f"| {name} | {r['seconds']:.1f} | {txs / r['seconds']:,.0f} | {r['peak_rss_kb'] / 1024:,.0f} "
        f"| {r['cpu_seconds']:.1f} | {r['index_bytes'] / 1e6:,.1f} |"
    )


def report(chain: dict, results: dict, repeat: int, load: float) -> str:
    txs = chain["txs"]
    lines = [
        "# Initial sync: ferrumx vs ElectrumX",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}, load average {load:.1f} at the start; "
        f"fastest of {repeat} syncs per server.",
        f"Chain: Litecoin regtest, {chain['height'] + 1:,} blocks, {txs:,} transactions, "
        f"{chain['chain_mb']} MB of blocks (MWEB active from height 432). Daemon: litecoind 0.21.2.1.",
        "",
        "| server | wall time (s) | txs/s | peak RSS (MiB) | CPU time (s) | index on disk (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [fmt_row(name, txs, r) for name, r in results.items()]
    fx, ex = results.get("ferrumx", {}), results.get("electrumx", {})
    if "seconds" in fx and "seconds" in ex:
        lines += [
            "",
            f"ferrumx syncs {ex['seconds'] / fx['seconds']:.2f}x as many txs/s as ElectrumX, "
            f"with {fx['peak_rss_kb'] / ex['peak_rss_kb']:.2f}x its peak RSS "
            f"and {fx['index_bytes'] / ex['index_bytes']:.2f}x its index size.",
        ]
    lines += [
        "",
        "Wall time runs from process start until the server's TCP port answers "
        "`blockchain.headers.subscribe` with the daemon's tip height; txs/s is the chain's "
        "transaction count divided by it. ElectrumX is `e-x` from PyPI with DB_ENGINE=leveldb.",
        "Command: `bench/sync/run.sh`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", type=Path, required=True, help="directory made by chain.py")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory for the indexes and logs")
    parser.add_argument("--servers", default="ferrumx,electrumx", help="comma-separated, run in this order")
    parser.add_argument("--ferrumx", type=Path, help="ferrumx binary")
    parser.add_argument("--electrumx", type=Path, help="electrumx_server script")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each server may take to sync")
    parser.add_argument("--repeat", type=int, default=3, help="syncs per server; the fastest is reported")
    parser.add_argument("--results", type=Path, help="markdown file to write the figures to")
    args = parser.parse_args()

    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    chain = json.loads((args.chain / "chain.json").read_text())
    commands = {
        "ferrumx": ([str(args.ferrumx)], {}),
        "electrumx": ([str(args.electrumx)], {"DB_ENGINE": "leveldb"}),
    }
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in commands]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {sorted(commands)}")

    datadir = args.chain / "datadir"
    warm_page_cache(datadir)
    load = os.getloadavg()[0]
    results = {}
    for name in names:
        cmd, env = commands[name]
        runs = []
        for _ in range(args.repeat):
            # A fresh daemon per run, so no run inherits another's warm daemon caches.
            daemon = Daemon(datadir, extra_args=("-rpcthreads=8", "-rpcworkqueue=64"))
            daemon.start()
            try:
                if daemon.rpc.call("getchaintxstats", 1)["txcount"] != chain["txs"]:
                    raise SystemExit(f"the daemon's chain in {datadir} is not the one chain.json describes; rebuild it")
                run = measure(name, cmd, env, args.work, daemon, args.timeout)
            except SyncFailed as err:
                print(f"{name}: FAILED: {err}", flush=True)
                runs = [{"error": str(err)}]
                break
            finally:
                daemon.stop()
            print(f"{name}: {run['seconds']:.1f}s, {chain['txs'] / run['seconds']:,.0f} txs/s", flush=True)
            runs.append(run)
        # The fastest run is the one least disturbed by other work on the machine.
        results[name] = min(runs, key=lambda r: r.get("seconds", 0))

    text = report(chain, results, args.repeat, load)
    print()
    print(text)
    if args.results:
        args.results.write_text(text)
        print(f"written to {args.results}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
