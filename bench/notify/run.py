"""Measures block-notification latency and memory with many subscribed sessions.

The chain (built once and cached): 200 blocks whose coinbases pay an anyone-can-spend
P2SH script (bench/sync/chain.py's redeem scripts), then blocks paying once to each of
SESSIONS x SCRIPTS distinct P2WPKH scripts (random 20-byte hashes), so every subscribed
script has a confirmed history. For each measured round a block's transactions are
prepared too (not mined): round r pays script number r mod SCRIPTS of every session, in
transactions of at most 2,000 outputs, each spending one mature coinbase.

For each server in turn (never both at once): a fresh copy of that chain under a fresh
litecoind, the server syncing it from an empty index, then `ferrumx-notify-bench`, which
opens the sessions, subscribes each to the headers and its scripts, and mines the
prepared blocks one by one with `generateblock` (so the transactions never pass through
the mempool: the only notifications are the block's). Every session must then receive
the header notification and its touched script's notification; the time until the last
one has both is the figure. The server's RSS is read from /proc before the sessions
connect, once they are subscribed, and at the end.
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
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sync"))

from bench import cpu_model, stop, tip_height  # noqa: E402
from chain import p2sh, redeem_script, serialize_tx, spend_script_sig  # noqa: E402
from daemon import Daemon, free_port  # noqa: E402

CHAIN_VERSION = 1  # bump when the chain's shape changes, so cached chains are rebuilt
FUNDING_BLOCKS = 200  # coinbases 1..100 are mature (and pay the full 50 LTC) at 200
OUTPUTS_PER_TX = 2000  # ~62 kB per transaction
TXS_PER_SETUP_BLOCK = 10  # ~620 kB of non-witness data, well below the weight limit
PAYMENT = 10_000  # satoshis per output
FEE_RATE = 10  # sat per byte
READY_SECONDS = 900
ANYONE = p2sh(redeem_script(0))


class BenchFailed(Exception):
    """A server or the load generator did not do its part; the message says which."""


def session_script(session: int, k: int) -> bytes:
    return b"\x00\x14" + hashlib.sha256(f"notify-bench {session} {k}".encode()).digest()[:20]


def scripthash(script: bytes) -> str:
    return hashlib.sha256(script).digest()[::-1].hex()


class Funding:
    """Mature anyone-can-spend coinbases, handed out one per transaction."""

    def __init__(self, rpc, heights: range, rng: random.Random):
        hashes = rpc.batch("getblockhash", [(h,) for h in heights])
        blocks = rpc.batch("getblock", [(h, 1) for h in hashes])
        txids = [b["tx"][0] for b in blocks]
        outs = rpc.batch("gettxout", [(txid, 0) for txid in txids])
        self.coins = [(txid, round(o["value"] * 100_000_000)) for txid, o in zip(txids, outs)]
        self.rng = rng

    def pay(self, scripts: list) -> str:
        """A transaction paying PAYMENT to each script, change back to ANYONE."""
        if not self.coins:
            raise SystemExit("out of mature coinbases: fewer rounds or sessions")
        txid, value = self.coins.pop(0)
        inputs = [(txid, 0, spend_script_sig(0, self.rng))]
        outputs = [(PAYMENT, s) for s in scripts] + [(0, ANYONE)]
        fee = FEE_RATE * len(serialize_tx(inputs, outputs))
        outputs[-1] = (value - PAYMENT * len(scripts) - fee, ANYONE)
        return serialize_tx(inputs, outputs).hex()


def build_chain(out: Path, sessions: int, scripts: int, rounds: int) -> dict:
    params = {"sessions": sessions, "scripts": scripts, "rounds": rounds, "version": CHAIN_VERSION}
    saved = out / "chain.json"
    if saved.exists() and json.loads(saved.read_text()).get("params") == params:
        print(f"reusing the chain in {out}", flush=True)
        return json.loads(saved.read_text())
    print(f"building a chain for {sessions:,} sessions x {scripts} scripts, {rounds} rounds", flush=True)
    started = time.monotonic()
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    daemon = Daemon(scratch / "datadir")
    daemon.start()
    try:
        rpc = daemon.rpc
        coinbase = f"raw({ANYONE.hex()})"
        rpc.call("generatetodescriptor", FUNDING_BLOCKS, coinbase)
        rng = random.Random(1)
        chunks = -(-sessions // OUTPUTS_PER_TX)
        needed = chunks * (scripts + rounds)
        if needed > 100:
            raise SystemExit(f"{needed} funding coinbases needed, 100 available: fewer sessions or rounds")
        funding = Funding(rpc, range(1, needed + 1), rng)
        every = [session_script(s, k) for k in range(scripts) for s in range(sessions)]
        setup = [funding.pay(every[i:i + OUTPUTS_PER_TX]) for i in range(0, len(every), OUTPUTS_PER_TX)]
        for i in range(0, len(setup), TXS_PER_SETUP_BLOCK):
            rpc.call("generateblock", coinbase, setup[i:i + TXS_PER_SETUP_BLOCK])
        prepared = []
        for r in range(rounds):
            k = r % scripts
            touched = [session_script(s, k) for s in range(sessions)]
            txs = [funding.pay(touched[i:i + OUTPUTS_PER_TX]) for i in range(0, sessions, OUTPUTS_PER_TX)]
            prepared.append({"script": k, "txs": txs})
        info = rpc.call("getblockchaininfo")
        daemon.stop()
    finally:
        daemon.kill()
    (scratch / "rounds.json").write_text(json.dumps(prepared))
    (scratch / "sessions.txt").write_text(
        "".join(" ".join(scripthash(session_script(s, k)) for k in range(scripts)) + "\n" for s in range(sessions)))
    meta = {"params": params, "height": info["blocks"], "tip": info["bestblockhash"],
            "coinbase": coinbase, "build_seconds": round(time.monotonic() - started, 1)}
    (scratch / "chain.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return meta


def start_server(name: str, cmd: list, env: dict, run_dir: Path, daemon: Daemon) -> tuple:
    """Starts a server on an empty index; returns (process, port) once it serves the tip."""
    db_dir = run_dir / "db"
    db_dir.mkdir(parents=True)
    port = free_port()
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
        "MAX_SESSIONS": "20000",
        "SESSION_TIMEOUT": "7200",
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


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every 5 s while a server is measured."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = [os.getloadavg()[0]]
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(5):
            self.samples.append(os.getloadavg()[0])

    def finish(self) -> dict:
        self.done.set()
        self.join(10)
        self.samples.append(os.getloadavg()[0])
        s = self.samples
        return {"start": s[0], "end": s[-1], "min": min(s), "max": max(s), "mean": sum(s) / len(s)}


def measure(args, name: str, cmd: list, env: dict, chain: dict) -> dict:
    run_dir = args.work / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    # The rounds mine blocks: each server gets its own copy of the chain.
    shutil.copytree(args.chain / "datadir", run_dir / "datadir")
    sampler = LoadSampler()
    sampler.start()
    daemon = Daemon(run_dir / "datadir", extra_args=("-rpcthreads=8",))
    daemon.start()
    result = {}
    try:
        env = {**env, **dict(kv.split("=", 1) for kv in args.server_env)}
        if args.poll_ms:
            env = {**env, "DAEMON_POLL_INTERVAL_BLOCKS": str(args.poll_ms),
                   "DAEMON_POLL_INTERVAL_MEMPOOL": str(args.poll_ms)}
        mode = []
        if args.mempool:
            mode = ["--mempool"]
            if name == "ferrumx":
                # The generator publishes hashtx as bitcoind would (Debian's litecoind has
                # no ZMQ); ElectrumX has no ZMQ support and polls its mempool.
                endpoint = f"tcp://127.0.0.1:{free_port()}"
                env = {**env, "DAEMON_ZMQ_HASHTX": endpoint}
                # The server's subscription is retried with a backoff (1, 2, 4 ... s)
                # until the generator binds: the first round waits for it.
                mode += ["--zmq-hashtx", endpoint, "--first-settle-ms", "35000"]
        proc, port = start_server(name, cmd, env, run_dir, daemon)
        try:
            limit = args.setup_timeout + len(args.rounds_list) * (args.round_timeout + 10) + 300
            gen = [str(args.generator), "--server", f"tcp://127.0.0.1:{port}",
                   "--sessions", str(args.sessions), "--scripthashes", str(args.chain / "sessions.txt"),
                   "--rounds", str(args.rounds_file), "--rpc", f"127.0.0.1:{daemon.port}",
                   "--rpc-auth", f"{daemon.user}:{daemon.password}", "--coinbase", chain["coinbase"],
                   "--server-pid", str(proc.pid), "--setup-timeout", str(args.setup_timeout),
                   "--round-timeout", str(args.round_timeout), "--json", *mode]
            print(f"{name}: {args.sessions:,} sessions, {len(args.rounds_list)} rounds", flush=True)
            try:
                done = subprocess.run(gen, stdout=subprocess.PIPE, text=True, timeout=limit)
            except subprocess.TimeoutExpired:
                raise BenchFailed(f"the generator did not finish within {limit}s")
            if done.returncode != 0:
                raise BenchFailed(f"the generator failed (exit {done.returncode})")
            result = json.loads(done.stdout)
            result["server_alive"] = proc.poll() is None
            if args.mempool and name == "ferrumx":
                log = (run_dir / "server.log").read_text(errors="replace")
                if "subscribed to the daemon's ZMQ hashtx" not in log:
                    raise BenchFailed("ferrumx never subscribed to the generator's ZMQ hashtx")
        finally:
            stop(proc)
    except BenchFailed as err:
        print(f"{name}: FAILED: {err}", flush=True)
        result["error"] = str(err)
    finally:
        daemon.stop()
        result["load"] = sampler.finish()
    return result


def mib(kib) -> str:
    return f"{kib / 1024:,.0f}" if kib else "–"


def ms(value) -> str:
    return "–" if value is None or value != value else f"{value:,.0f}"


def polling(args) -> str:
    if args.poll_ms:
        return (f"both poll the daemon every {args.poll_ms} ms: `DAEMON_POLL_INTERVAL_BLOCKS={args.poll_ms}`, "
                f"`DAEMON_POLL_INTERVAL_MEMPOOL={args.poll_ms}`")
    return ("default settings, no poll interval set: ElectrumX polls the daemon every 5 s, ferrumx "
            "long-polls it (`waitforblockheight`) and polls every 5 s as the fallback")


def report(args, results: dict, chain: dict) -> str:
    if args.mempool:
        return mempool_report(args, results, chain)
    lines = [
        "# Notification benchmark: ferrumx vs ElectrumX",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}. Client, server and litecoind share the machine "
        "(shared with other work); the servers ran one after the other.",
        "",
        f"{args.sessions:,} sessions on loopback, each subscribed to `blockchain.headers.subscribe` and "
        f"{chain['params']['scripts']} script hashes of its own ({args.sessions * chain['params']['scripts']:,} "
        f"distinct scripts, each with one confirmed payment). {len(args.rounds_list)} rounds: each mines one "
        f"block (`generateblock`, {-(-args.sessions // OUTPUTS_PER_TX)} transaction(s) of up to {OUTPUTS_PER_TX:,} "
        "outputs, no mempool) paying one "
        "subscribed script of every session, so every session must receive a header notification and one "
        "script-hash notification. Latency per session and round: from `generateblock` returning (the "
        "daemon's tip has moved) until that session has both notifications; it includes the server noticing "
        f"the block ({polling(args)}). Fan-out: the same moment measured from the first notification "
        "any session received in that round. Percentiles are over all sessions × rounds.",
        "",
        "| | ferrumx | ElectrumX |",
        "|---|---:|---:|",
    ]
    fx, ex = results.get("ferrumx", {}), results.get("electrumx", {})

    def row(label, fn):
        cells = []
        for r in (fx, ex):
            try:
                cells.append(fn(r) if r and "subscribed" in r else ("failed" if r else "–"))
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")

    row("sessions subscribed", lambda r: f"{r['subscribed']:,} of {r['sessions']:,}"
        + (f" (first error: {r['first_error']})" if r.get("first_error") else ""))
    row("time to connect and subscribe all", lambda r: f"{r['setup_seconds']:.1f} s")
    row("notification latency p50", lambda r: f"{ms(r['latency']['p50_ms'])} ms")
    row("notification latency p99", lambda r: f"{ms(r['latency']['p99_ms'])} ms")
    row("notification latency max (last session)", lambda r: f"{ms(r['latency']['max_ms'])} ms")
    row("header notification p50 / p99", lambda r: f"{ms(r['header_latency']['p50_ms'])} / "
        f"{ms(r['header_latency']['p99_ms'])} ms")
    row("fan-out p50 / p99", lambda r: f"{ms(r['fanout']['p50_ms'])} / {ms(r['fanout']['p99_ms'])} ms")
    row("first session told (median round)", lambda r: f"{ms(sorted(x['first_ms'] or 0 for x in r['rounds'])[len(r['rounds']) // 2])} ms")
    row("sessions missing a notification", lambda r: f"{sum(x['missing'] for x in r['rounds'])}")
    row("notifications matching no round (unexpected)", lambda r: f"{r['unexpected']}")
    row("RSS before sessions", lambda r: f"{mib(r['memory_idle']['rss_kib'])} MiB")
    row("RSS with every session subscribed", lambda r: f"{mib(r['memory_subscribed']['rss_kib'])} MiB")
    row("RSS after the rounds / peak (VmHWM)", lambda r: f"{mib(r['memory_end']['rss_kib'])} / "
        f"{mib(r['memory_end']['hwm_kib'])} MiB")
    row("server CPU: subscribing / rounds", lambda r: f"{r['server_cpu_setup_s']:.1f} / {r['server_cpu_rounds_s']:.1f} s")
    row("generator CPU (whole run)", lambda r: f"{r['generator_cpu_total_s']:.1f} s")
    row("load average during the run (1 min: min / mean / max)",
        lambda r: f"{r['load']['min']:.1f} / {r['load']['mean']:.1f} / {r['load']['max']:.1f}")
    lines += ["", "Per round (ms after `generateblock` returned: first session told, median, last):", ""]
    lines += ["| round | height | ferrumx first / p50 / last | ElectrumX first / p50 / last |", "|---:|---:|---:|---:|"]
    count = max(len(fx.get("rounds", [])), len(ex.get("rounds", [])))
    for i in range(count):
        cells = []
        height = ""
        for r in (fx, ex):
            rounds = r.get("rounds", [])
            if i < len(rounds):
                x = rounds[i]
                height = x["height"]
                miss = f" ({x['missing']} missing)" if x["missing"] else ""
                cells.append(f"{ms(x['first_ms'])} / {ms(x['p50_ms'])} / {ms(x['last_ms'])}{miss}")
            else:
                cells.append("–")
        lines.append(f"| {i} | {height} | {cells[0]} | {cells[1]} |")
    fl, el = fx.get("latency", {}), ex.get("latency", {})
    if fl.get("p99_ms") and el.get("p99_ms"):
        lines += ["", f"ElectrumX/ferrumx: p50 {el['p50_ms'] / fl['p50_ms']:.1f}x, "
                  f"p99 {el['p99_ms'] / fl['p99_ms']:.1f}x; RSS subscribed "
                  f"{ex['memory_subscribed']['rss_kib'] / fx['memory_subscribed']['rss_kib']:.2f}x."]
    for name, r in results.items():
        if "error" in r:
            lines += ["", f"{name}: FAILED: {r['error']}"]
    lines += [
        "",
        "Both servers: `COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0 MAX_SESSIONS=20000 SESSION_TIMEOUT=7200 "
        "PEER_DISCOVERY=off`, the polling intervals above, everything else default; open-file limit "
        f"{args.nofile}. ElectrumX is `e-x` 2.0.0 from PyPI (`DB_ENGINE=leveldb`) started through "
        "`bench/query/electrumx_nowait.py` (`PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0`, so "
        "notifications are not held back up to 1 s for padding). The client is `ferrumx-notify-bench` "
        "(one thread, one task per session).",
        "Command: `bench/notify/run.sh`.",
    ]
    return "\n".join(lines) + "\n"


def mempool_report(args, results: dict, chain: dict) -> str:
    """The report of mempool rounds (--mempool): no blocks, one notification owed."""
    lines = [
        "# Mempool notification benchmark: ferrumx (ZMQ hashtx) vs ElectrumX",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}. Client, server and litecoind share the machine; "
        "the servers ran one after the other.",
        "",
        f"{args.sessions:,} sessions on loopback, each subscribed to the headers and {chain['params']['scripts']} "
        f"script hashes of its own. {len(args.rounds_list)} rounds: each sends "
        f"{-(-args.sessions // OUTPUTS_PER_TX)} transaction(s) of up to {OUTPUTS_PER_TX:,} outputs to the "
        "daemon's mempool (`sendrawtransaction`, no block), paying one subscribed script of every "
        "session, so every session must receive one script-hash notification. For ferrumx the "
        "generator publishes each accepted transaction's `hashtx` on a ZMQ socket (as bitcoind does "
        "with `-zmqpubhashtx`; Debian's litecoind is built without ZMQ) that ferrumx follows "
        "(`DAEMON_ZMQ_HASHTX`); ElectrumX has no ZMQ and polls its mempool. Latency per session: from "
        "`sendrawtransaction` returning for the transaction that pays it until its notification. "
        "Percentiles are over all sessions × rounds; no poll interval is set.",
        "",
        "| | ferrumx | ElectrumX |",
        "|---|---:|---:|",
    ]
    fx, ex = results.get("ferrumx", {}), results.get("electrumx", {})

    def row(label, fn):
        cells = []
        for r in (fx, ex):
            try:
                cells.append(fn(r) if r and "subscribed" in r else ("failed" if r else "–"))
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")

    row("sessions subscribed", lambda r: f"{r['subscribed']:,} of {r['sessions']:,}")
    row("notification latency p50 / p99", lambda r: f"{ms(r['latency']['p50_ms'])} / {ms(r['latency']['p99_ms'])} ms")
    row("last session told (best – worst round)", lambda r: f"{ms(min(x['last_ms'] or 0 for x in r['rounds']))} – "
        f"{ms(max(x['last_ms'] or 0 for x in r['rounds']))} ms")
    row("sessions missing a notification", lambda r: f"{sum(x['missing'] for x in r['rounds'])}")
    row("notifications matching no round (unexpected)", lambda r: f"{r['unexpected']}")
    row("server CPU for the rounds", lambda r: f"{r['server_cpu_rounds_s']:.1f} s")
    row("load average during the run (1 min: min / mean / max)",
        lambda r: f"{r['load']['min']:.1f} / {r['load']['mean']:.1f} / {r['load']['max']:.1f}")
    lines += ["", "Per round (ms after the first transaction was accepted: first session told, median, last; "
              "sending all of the round's transactions took the last column):", ""]
    lines += ["| round | ferrumx first / p50 / last | ElectrumX first / p50 / last | sent in (ferrumx) |",
              "|---:|---:|---:|---:|"]
    count = max(len(fx.get("rounds", [])), len(ex.get("rounds", [])))
    for i in range(count):
        cells = []
        for r in (fx, ex):
            rounds = r.get("rounds", [])
            if i < len(rounds):
                x = rounds[i]
                miss = f" ({x['missing']} missing)" if x["missing"] else ""
                cells.append(f"{ms(x['first_ms'])} / {ms(x['p50_ms'])} / {ms(x['last_ms'])}{miss}")
            else:
                cells.append("–")
        sent = fx.get("rounds", [])[i]["submit_ms"] if i < len(fx.get("rounds", [])) else None
        lines.append(f"| {i} | {cells[0]} | {cells[1]} | {ms(sent)} ms |")
    for name, r in results.items():
        if "error" in r:
            lines += ["", f"{name}: FAILED: {r['error']}"]
    lines += ["", "Command: `bench/notify/run.sh --mempool`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--servers", default="ferrumx,electrumx")
    parser.add_argument("--ferrumx", type=Path)
    parser.add_argument("--electrumx-python", type=Path)
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--scripts", type=int, default=10, help="script hashes per session")
    parser.add_argument("--rounds", type=int, default=8, help="blocks mined and measured")
    parser.add_argument("--setup-timeout", type=int, default=1200)
    parser.add_argument("--round-timeout", type=int, default=120)
    parser.add_argument("--poll-ms", type=int, default=0,
                        help="DAEMON_POLL_INTERVAL_BLOCKS and _MEMPOOL for both servers (default: theirs)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the servers (repeatable)")
    parser.add_argument("--mempool", action="store_true",
                        help="rounds send transactions to the mempool (ferrumx told by ZMQ hashtx) instead of mining")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    args.nofile = subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()
    commands = {
        "ferrumx": ([str(args.ferrumx)], {}),
        "electrumx": ([str(args.electrumx_python), str(HERE.parent / "query" / "electrumx_nowait.py")],
                      {"DB_ENGINE": "leveldb"}),
    }
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if any(n not in commands for n in names):
        raise SystemExit(f"--servers takes names from {sorted(commands)}")
    args.chain = args.cache / f"chain-{args.sessions}x{args.scripts}-{args.rounds}"
    args.work = args.cache / "run"
    chain = build_chain(args.chain, args.sessions, args.scripts, args.rounds)
    args.rounds_file = args.chain / "rounds.json"
    args.rounds_list = json.loads(args.rounds_file.read_text())
    results = {}
    for name in names:
        cmd, env = commands[name]
        print(f"{name}: load average {os.getloadavg()[0]:.2f} at start", flush=True)
        results[name] = measure(args, name, cmd, env, chain)
        r = results[name]
        if "latency" in r:
            print(f"{name}: {r['subscribed']:,} sessions, latency p50 {ms(r['latency']['p50_ms'])} ms "
                  f"p99 {ms(r['latency']['p99_ms'])} ms, RSS subscribed {mib(r['memory_subscribed']['rss_kib'])} "
                  f"MiB, load {r['load']['mean']:.1f}", flush=True)
        (args.work / f"{name}.json").write_text(json.dumps(r, indent=2) + "\n")
    text = report(args, results, chain)
    print()
    print(text)
    if args.results:
        args.results.write_text(text)
        print(f"written to {args.results}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
