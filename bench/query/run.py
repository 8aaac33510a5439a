"""Measures query throughput and latency of ferrumx, Fulcrum and ElectrumX on the same chain.

For each server in turn (never two at once): a fresh litecoind on a chain saved by
bench/sync/chain.py, the server syncing it from an empty index, then the load generator
(`ferrumx-query-bench`) for every scenario at every connection count. The figures go to
a markdown table with ferrumx's ratios to the others.

`--preset issue11` runs the points of issue 11 instead of the whole matrix: get_history,
get_balance and listunspent at 64 connections with one request in flight each, 8 s per
point, and wallet openings (100 addresses, batches of 20) on 16 connections; one table
with every server side by side (`ferrumx-before`, an older ferrumx binary given with
`--ferrumx-before`, makes a before/after comparison in the same run).

The daemon and the sync helpers come from bench/sync (daemon.py, bench.py), which this
script imports rather than repeats.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sync"))

from bench import cpu_model, cpu_seconds, status_kb, stop, tip_height, tree_pids, warm_page_cache  # noqa: E402
from daemon import Daemon, free_port  # noqa: E402

PIPELINED = ["get_history", "get_balance", "listunspent"]
SCENARIOS = PIPELINED + ["wallet-load", "wallet-open"]
# Issue 11's points: (scenario, connections, depth, seconds, addresses, batch).
ISSUE11_POINTS = [
    ("get_history", 64, 1, 8, 0, 0),
    ("get_balance", 64, 1, 8, 0, 0),
    ("listunspent", 64, 1, 8, 0, 0),
    ("wallet-open", 16, 1, 8, 100, 20),
]
READY_SECONDS = 2400  # from start until the server answers at the daemon's tip (a --prepare run at low priority may be slow)
WALLET_ADDRESSES = 1000  # script hashes per wallet-load connection
WALLET_BATCH = 100


class BenchFailed(Exception):
    """A server or the load generator did not do its part; the message says which."""


def scripthash(script: bytes) -> str:
    return hashlib.sha256(script).digest()[::-1].hex()


def chain_scripthashes(daemon: Daemon, out: Path) -> dict:
    """Writes every script hash the chain pays to `out` (shuffled, so connections that
    start at different lines meet a mix of quiet and busy addresses) and returns stats."""
    rpc = daemon.rpc
    height = rpc.call("getblockcount")
    hashes = rpc.batch("getblockhash", [(h,) for h in range(height + 1)])
    history = {}
    for start in range(0, len(hashes), 20):
        for block in rpc.batch("getblock", [(h, 2) for h in hashes[start:start + 20]]):
            for tx in block["tx"]:
                touched = set()
                for out_ in tx["vout"]:
                    script = out_["scriptPubKey"]["hex"]
                    if out_.get("ismweb") or script.startswith("6a"):
                        continue
                    touched.add(scripthash(bytes.fromhex(script)))
                for sh in touched:
                    history[sh] = history.get(sh, 0) + 1
    ordered = sorted(history)
    random.Random(1).shuffle(ordered)
    out.write_text("".join(sh + "\n" for sh in ordered))
    sizes = sorted(history.values())
    return {"count": len(sizes), "median": sizes[len(sizes) // 2], "max": sizes[-1],
            "mean": sum(sizes) / len(sizes)}


def fulcrum_config(run_dir: Path, db_dir: Path, port: int, daemon: Daemon) -> Path:
    """Fulcrum's config file: the daemon, one TCP service on loopback, no peering."""
    conf = run_dir / "fulcrum.conf"
    conf.write_text("\n".join([
        f"datadir = {db_dir}",
        f"bitcoind = 127.0.0.1:{daemon.port}",
        f"rpcuser = {daemon.user}",
        f"rpcpassword = {daemon.password}",
        f"tcp = 127.0.0.1:{port}",
        "peering = false",
        "announce = false",
    ]) + "\n")
    return conf


def start_server(name: str, cmd: list, env: dict, run_dir: Path, daemon: Daemon,
                 keep_index: bool = False) -> tuple:
    """Starts a server on an empty index (or, with `keep_index`, on the one a `--prepare`
    run left); returns (process, port) once it serves the tip."""
    db_dir = run_dir / "db"
    if not (keep_index and db_dir.is_dir()):
        shutil.rmtree(run_dir, ignore_errors=True)
    db_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if name == "fulcrum":
        cmd = cmd + [str(fulcrum_config(run_dir, db_dir, port, daemon))]
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
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
    log = open(run_dir / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    tip = daemon.rpc.call("getblockcount")
    started = time.monotonic()
    while tip_height(port) != tip:
        if proc.poll() is not None:
            raise BenchFailed(f"{name} exited with {proc.returncode}; see {run_dir / 'server.log'}")
        if time.monotonic() - started > READY_SECONDS:
            stop(proc)
            raise BenchFailed(f"{name} did not serve height {tip} within {READY_SECONDS}s")
        time.sleep(0.2)
    print(f"{name}: serving height {tip} after {time.monotonic() - started:.1f}s", flush=True)
    return proc, port


def rss_mib(proc) -> float:
    return sum(status_kb(p, "VmRSS") for p in tree_pids(proc.pid)) / 1024


def server_cpu(proc) -> float:
    """CPU seconds the server's processes have used so far."""
    return sum(cpu_seconds(p) for p in tree_pids(proc.pid))


def generate(args, port: int, scenario: str, connections: int, hashes: Path, point=None) -> dict:
    """One run of the load generator; its JSON summary. `point` overrides the depth,
    duration and wallet shape (the preset's points)."""
    duration = args.wallet_limit if scenario == "wallet-load" else args.duration
    depth, addresses, batch = args.depth, WALLET_ADDRESSES, WALLET_BATCH
    if point:
        _, _, depth, duration, addresses, batch = point
    cmd = [str(args.generator), "--server", f"tcp://127.0.0.1:{port}", "--scenario", scenario,
           "--connections", str(connections), "--duration", str(duration),
           "--scripthashes", str(hashes), "--depth", str(depth),
           "--addresses", str(addresses or WALLET_ADDRESSES), "--batch", str(batch or WALLET_BATCH), "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 300)
    except subprocess.TimeoutExpired:
        return {"error": f"the load generator did not finish within {duration + 300}s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout)


def measure(args, name: str, cmd: list, env: dict, daemon: Daemon, hashes: Path) -> dict:
    results = {}
    proc, port = start_server(name, cmd, env, args.work / name, daemon, args.keep_index or args.prepare)
    if args.prepare:
        stop(proc)
        return {}
    if args.preset:
        points = [(p[0], p[1], p) for p in ISSUE11_POINTS]
    else:
        points = [(s, n, None) for s in args.scenarios for n in args.connections]
    try:
        for scenario, connections, point in points:
            cpu_before, wall_before = server_cpu(proc), time.monotonic()
            r = generate(args, port, scenario, connections, hashes, point)
            r["cpu_percent"] = 100 * (server_cpu(proc) - cpu_before) / (time.monotonic() - wall_before)
            r["rss_mib"] = rss_mib(proc)
            if proc.poll() is not None:
                r["error"] = f"{name} exited with {proc.returncode}"
            results[(scenario, connections)] = r
            if "error" in r:
                print(f"{name} {scenario} x{connections}: FAILED: {r['error']}", flush=True)
            else:
                print(f"{name} {scenario} x{connections}: {r['req_per_s']:,.0f} req/s, "
                      f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, server CPU {r['cpu_percent']:.0f}%"
                      + (f", wallets {r['wallets_done']}/{connections} p50 {r['wallet_p50_s']:.2f}s"
                         if scenario == "wallet-load" else "")
                      + (f", {r['wallets_per_s']:,.1f} wallets/s" if scenario == "wallet-open" else ""),
                      flush=True)
            if proc.poll() is not None:
                return results
    finally:
        stop(proc)
    return results


def fmt_pipelined(r: dict) -> tuple:
    if not r or "error" in r:
        return ("failed" if r else "–", "–")
    errors = f" ({r['errors']} errors)" if r["errors"] else ""
    return (f"{r['req_per_s']:,.0f}{errors}", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}")


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "–"


LABELS = {"ferrumx": "ferrumx", "ferrumx-before": "ferrumx before", "fulcrum": "Fulcrum 2.1.1",
          "electrumx": "ElectrumX 2.0"}


def preset_report(args, names: list, results: dict, chain: dict, stats: dict, loads: dict) -> str:
    """Issue 11's points, every server side by side, and ferrumx's ratios to the others."""
    load_text = ", ".join(f"{LABELS[n]} {start:.1f} to {end:.1f}" for n, (start, end) in loads.items())
    others = [n for n in names if n != "ferrumx"]
    lines = [
        "# Query benchmark: issue 11's points",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}; 1-minute load average from the start to the end of "
        f"each server's runs: {load_text}. Client, server and litecoind share the machine; the servers ran "
        "one after the other.",
        f"Chain: Litecoin regtest made by bench/sync/chain.py, {chain['height'] + 1:,} blocks, {chain['txs']:,} "
        f"transactions; {stats['count']:,} script hashes (history length median {stats['median']}, "
        f"mean {stats['mean']:.1f}, max {stats['max']:,}), asked in a shuffled order.",
        "Queries: 64 connections, one request in flight each, 8 s per point. Wallet openings: 16 connections, "
        "each opening wallets one after the other for 8 s, every wallet on a new connection: 100 script "
        "hashes, a batch of 20 `subscribe` then a batch of 20 `get_history`, five times. "
        "Server CPU is the server's CPU time over the point's wall time (200% is both cores).",
        "",
        "| point | " + " | ".join(LABELS[n] for n in names) + " | "
        + " | ".join(f"ferrumx / {LABELS[n]}" for n in others) + " |",
        "|---|" + "---:|" * (len(names) + len(others)),
    ]

    def rate(r: dict, scenario: str):
        if not r or "error" in r:
            return None
        return r["wallets_per_s"] if scenario == "wallet-open" else r["req_per_s"]

    for scenario, connections, *_ in ISSUE11_POINTS:
        unit = "wallets/s" if scenario == "wallet-open" else "req/s"
        rows = {
            f"{scenario} {unit}": lambda r: (f"{rate(r, scenario):,.0f}" if rate(r, scenario) is not None
                                             else ("failed" if r else "–")),
            f"{scenario} p50 / p99 ms": lambda r: (f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
                                                   if r and "error" not in r else "–"),
            f"{scenario} server CPU": lambda r: (f"{r['cpu_percent']:.0f}%" if r and "error" not in r else "–"),
        }
        for label, cell in rows.items():
            cells = [cell(results.get(n, {}).get((scenario, connections), {})) for n in names]
            ratios = []
            for other in others:
                mine = results.get("ferrumx", {}).get((scenario, connections), {})
                theirs = results.get(other, {}).get((scenario, connections), {})
                if label.endswith("/s"):
                    ratios.append(ratio(rate(mine, scenario), rate(theirs, scenario)))
                elif label.endswith("ms"):
                    # Latency: how many times shorter ferrumx's p99 is.
                    ratios.append(ratio(theirs.get("p99_ms"), mine.get("p99_ms")) + " shorter p99"
                                  if mine.get("p99_ms") and theirs.get("p99_ms") else "–")
                else:
                    ratios.append("")
            lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines += [
        "",
        "All servers: cost limits off (ferrumx and ElectrumX `COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0`), "
        "`PEER_DISCOVERY=off` / Fulcrum `peering = false`, everything else default. ElectrumX is `e-x` 2.0.0 "
        "(`DB_ENGINE=leveldb`, reply hold-back off as in the full matrix); Fulcrum 2.1.1 built by "
        "`build-fulcrum.sh`.",
        "Command: `bench/query/run.sh --preset issue11`.",
    ]
    return "\n".join(lines) + "\n"


def report(args, results: dict, chain: dict, stats: dict, loads: dict) -> str:
    fx, ex = results.get("ferrumx", {}), results.get("electrumx", {})
    load_text = ", ".join(f"{name} {start:.1f} to {end:.1f}" for name, (start, end) in loads.items())
    lines = [
        "# Query benchmark: ferrumx vs ElectrumX",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}; 1-minute load average from the start to the end of "
        f"each server's runs: {load_text}. "
        "Client, server and litecoind share the machine; the servers ran one after the other.",
        f"Chain: Litecoin regtest made by bench/sync/chain.py, {chain['height'] + 1:,} blocks, {chain['txs']:,} "
        f"transactions; {stats['count']:,} script hashes (history length median {stats['median']}, "
        f"mean {stats['mean']:.1f}, max {stats['max']:,}), asked in a shuffled order.",
        f"Pipelined scenarios: {args.duration} s per point, {args.depth} requests in flight per connection. "
        "Latency is measured by the client from sending a request to reading its reply.",
        "",
    ]
    for scenario in [s for s in args.scenarios if s in PIPELINED]:
        lines += [
            f"## {scenario}",
            "",
            "| connections | ferrumx req/s | ElectrumX req/s | ferrumx/ElectrumX | "
            "ferrumx p50 / p99 (ms) | ElectrumX p50 / p99 (ms) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for n in args.connections:
            f, e = fx.get((scenario, n), {}), ex.get((scenario, n), {})
            (f_rate, f_lat), (e_rate, e_lat) = fmt_pipelined(f), fmt_pipelined(e)
            lines.append(f"| {n} | {f_rate} | {e_rate} | {ratio(f.get('req_per_s'), e.get('req_per_s'))} "
                         f"| {f_lat} | {e_lat} |")
        lines.append("")
    if "wallet-load" in args.scenarios:
        lines += [
            "## wallet-load",
            "",
            f"Each connection is a wallet opening: {WALLET_ADDRESSES:,} script hashes, in batches of "
            f"{WALLET_BATCH}, one batch of "
            "`blockchain.scripthash.subscribe` then one of `get_history`. Wallet time is the whole sequence "
            f"for one connection (no batch starts after {args.wallet_limit} s); batch latency is one batch's "
            "round trip. "
            "RSS is the server's resident memory after the run, holding every subscription.",
            "",
            "| connections | ferrumx wallet p50 / p99 (s) | ElectrumX wallet p50 / p99 (s) | ElectrumX/ferrumx time "
            "| ferrumx batch p50 / p99 (ms) | ElectrumX batch p50 / p99 (ms) | ferrumx RSS (MiB) | ElectrumX RSS (MiB) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def wallet_cells(r: dict, n: int) -> tuple:
            if not r or "error" in r:
                return ("failed" if r else "–", "–", "–")
            done = "" if r["wallets_done"] == n else f" ({r['wallets_done']}/{n} done)"
            return (f"{r['wallet_p50_s']:.2f} / {r['wallet_p99_s']:.2f}{done}",
                    f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}", f"{r['rss_mib']:,.0f}")

        for n in args.connections:
            f, e = fx.get(("wallet-load", n), {}), ex.get(("wallet-load", n), {})
            fc, ec = wallet_cells(f, n), wallet_cells(e, n)
            speed = ratio(e.get("wallet_p50_s"), f.get("wallet_p50_s"))
            lines.append(f"| {n} | {fc[0]} | {ec[0]} | {speed} | {fc[1]} | {ec[1]} | {fc[2]} | {ec[2]} |")
        lines.append("")
    lines += [
        "Both servers: `COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0 PEER_DISCOVERY=off`, everything else default. "
        "ElectrumX is `e-x` 2.0.0 from PyPI (`DB_ENGINE=leveldb`) started through "
        "`bench/query/electrumx_nowait.py`, which sets "
        "`PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0` so replies are not held back up to 1 s "
        "for padding. The client is `ferrumx-query-bench` (one thread).",
        "Command: `bench/query/run.sh`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", type=Path, required=True, help="directory made by bench/sync/chain.py")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory for indexes and logs")
    parser.add_argument("--servers", default="ferrumx,electrumx")
    parser.add_argument("--ferrumx", type=Path, help="ferrumx binary")
    parser.add_argument("--electrumx-python", type=Path, help="python of the venv holding e-x")
    parser.add_argument("--generator", type=Path, required=True, help="ferrumx-query-bench binary")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--connections", default="1,16,64,256")
    parser.add_argument("--duration", type=int, default=10, help="seconds per pipelined point")
    parser.add_argument("--wallet-limit", type=int, default=600, help="time limit of a wallet-load point")
    parser.add_argument("--depth", type=int, default=8, help="requests in flight per connection")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--fulcrum", type=Path, help="Fulcrum binary")
    parser.add_argument("--ferrumx-before", type=Path, help="another ferrumx binary, run as ferrumx-before")
    parser.add_argument("--preset", choices=["issue11"], help="run issue 11's points only")
    parser.add_argument("--prepare", action="store_true",
                        help="only sync each server's index (kept for --keep-index), measure nothing")
    parser.add_argument("--keep-index", action="store_true",
                        help="start each server on the index a --prepare run left, if any")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.connections = [int(n) for n in args.connections.split(",")]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    commands = {
        "ferrumx": ([str(args.ferrumx)], {}),
        "ferrumx-before": ([str(args.ferrumx_before)], {}),
        "fulcrum": ([str(args.fulcrum)], {}),
        "electrumx": ([str(args.electrumx_python), str(HERE / "electrumx_nowait.py")], {"DB_ENGINE": "leveldb"}),
    }
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if any(n not in commands for n in names):
        raise SystemExit(f"--servers takes names from {sorted(commands)}")

    chain = json.loads((args.chain / "chain.json").read_text())
    datadir = args.chain / "datadir"
    args.work.mkdir(parents=True, exist_ok=True)
    warm_page_cache(datadir)
    hashes = args.work / f"scripthashes-{chain['tip'][:16]}.txt"
    stats_path = hashes.with_suffix(".json")
    results, loads = {}, {}
    failed = False
    for name in names:
        cmd, env = commands[name]
        load_at_start = os.getloadavg()[0]
        # -maxtipage: Fulcrum waits while the daemon is in initial block download, which
        # an old regtest tip means.
        daemon = Daemon(datadir, extra_args=("-rpcthreads=8", "-rpcworkqueue=64", "-maxtipage=2000000000"))
        daemon.start()
        try:
            if not hashes.exists():
                print(f"listing the chain's script hashes into {hashes}", flush=True)
                stats_path.write_text(json.dumps(chain_scripthashes(daemon, hashes)))
            results[name] = measure(args, name, cmd, env, daemon, hashes)
        except BenchFailed as err:
            print(f"{name}: FAILED: {err}", flush=True)
            failed = True
        finally:
            daemon.stop()
        loads[name] = (load_at_start, os.getloadavg()[0])
        failed = failed or any("error" in r for r in results.get(name, {}).values())

    if args.prepare:
        print("indexes prepared in", args.work)
        return
    if args.preset:
        text = preset_report(args, names, results, chain, json.loads(stats_path.read_text()), loads)
    else:
        text = report(args, results, chain, json.loads(stats_path.read_text()), loads)
    print()
    print(text)
    if args.results and args.preset:
        args.results = args.results.with_name(f"{args.results.stem}-{args.preset}.md")
    if args.results:
        args.results.write_text(text)
        print(f"written to {args.results}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
