"""A bounded soak of ferrumx: many Electrum clients for minutes, while blocks are mined
and transactions sent, with ferrumx's resident memory sampled throughout.

Each client connects, negotiates, subscribes to headers and a few script hashes, then
for a random lifetime sends queries, batches, bad requests (invalid JSON, unknown
methods, bad arguments, over-long lines, invalid UTF-8), reads its notifications, and
leaves cleanly or abruptly (sometimes with requests unanswered), then comes back. The
report says whether RSS stayed flat once warm (mean of the last third against the
middle third: the first third is warm-up, while the caches fill up to their caps) and
counts what the clients saw; it also shows the growth from the first third. Bounded: clients, duration and every wait are fixed.

The daemon helpers come from bench/sync (daemon.py, bench.py).
"""

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sync"))

from bench import status_kb, stop  # noqa: E402
from daemon import Daemon, free_port  # noqa: E402

# Seconds a client waits for one reply before it counts a timeout: past ferrumx's
# REQUEST_TIMEOUT (30 s), after which the server answers -102 itself.
REPLY_TIMEOUT = 45
CONNECT_TIMEOUT = 10
READY_SECONDS = 300


class SoakFailed(Exception):
    """ferrumx or the daemon did not do its part; the message says which."""


def scripthash(script_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(script_hex)).digest()[::-1].hex()


class Chain:
    """What clients ask about: script hashes of wallet addresses, txids, the tip."""

    def __init__(self):
        self.scripthashes = []
        self.addresses = []
        self.txids = []
        self.height = 0


def prepare_chain(daemon: Daemon, addresses: int) -> Chain:
    rpc = daemon.rpc
    rpc.call("createwallet", "soak")
    miner = rpc.call("getnewaddress", "", "bech32")
    rpc.call("generatetoaddress", 150, miner)
    chain = Chain()
    kinds = ["bech32", "legacy", "p2sh-segwit"]
    for i in range(addresses):
        address = rpc.call("getnewaddress", "", kinds[i % 3])
        info = rpc.call("getaddressinfo", address)
        chain.addresses.append(address)
        chain.scripthashes.append(scripthash(info["scriptPubKey"]))
    # Give every address some history: fan-outs over a few blocks.
    for start in range(0, addresses, 50):
        outputs = {a: 0.1 for a in chain.addresses[start:start + 50]}
        chain.txids.append(rpc.call("sendmany", "", outputs))
        rpc.call("generatetoaddress", 1, miner)
    chain.height = rpc.call("getblockcount")
    return chain


def start_ferrumx(binary: str, daemon: Daemon, work: Path, port: int, rpc_port: int,
                  max_sessions: int, cost_limits: bool) -> tuple:
    db = work / "db"
    shutil.rmtree(db, ignore_errors=True)
    db.mkdir(parents=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "COIN": "Litecoin",
        "NET": "regtest",
        "DAEMON_URL": daemon.url,
        "DB_DIRECTORY": str(db),
        "SERVICES": f"tcp://127.0.0.1:{port},rpc://127.0.0.1:{rpc_port}",
        "ALLOW_ROOT": "1",
        "LOG_LEVEL": "warn",
        "DAEMON_POLL_INTERVAL_BLOCKS": "500",
        "DAEMON_POLL_INTERVAL_MEMPOOL": "1000",
        "MAX_SESSIONS": str(max_sessions),
    }
    if not cost_limits:
        # Every client shares one host: ElectrumX's per-group cost limits would throttle
        # them as one abuser, so (as in bench/query) they are off unless asked for.
        env.update({"COST_SOFT_LIMIT": "0", "COST_HARD_LIMIT": "0"})
    log = open(work / "ferrumx.log", "wb")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc


async def wait_ready(port: int, proc, height: int) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SoakFailed(f"ferrumx exited with {proc.returncode} while starting")
        try:
            client = await Client.open(port, Counter())
            try:
                tip = await client.call("blockchain.headers.subscribe", [])
                if tip.get("result", {}).get("height") == height:
                    return
            finally:
                client.close()
        except (OSError, asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.5)
    raise SoakFailed(f"ferrumx did not reach height {height} within {READY_SECONDS}s")


class Client:
    """One Electrum connection: requests matched to replies by id, notifications counted."""

    def __init__(self, reader, writer, stats: Counter):
        self.reader = reader
        self.writer = writer
        self.stats = stats
        self.next_id = 0
        self.pending = {}
        self.closed = False
        self.task = asyncio.ensure_future(self.read_loop())

    @classmethod
    async def open(cls, port: int, stats: Counter, version: bool = True):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 22), CONNECT_TIMEOUT)
        client = cls(reader, writer, stats)
        if version:
            reply = await client.call("server.version", ["ferrumx-soak", "1.4"])
            if "result" not in reply:
                raise ConnectionError(f"server.version refused: {reply}")
        return client

    async def read_loop(self):
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if isinstance(message, list):
                    for reply in message:
                        self.resolve(reply)
                elif "method" in message and "id" not in message:
                    self.stats["notifications"] += 1
                else:
                    self.resolve(message)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self.closed = True
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed by the server"))

    def resolve(self, reply):
        future = self.pending.pop(reply.get("id"), None)
        if future is None:
            # A reply to a line with no usable id (a parse error): to the oldest waiter.
            if self.pending:
                key = min(self.pending, key=lambda k: (isinstance(k, str), str(k)))
                future = self.pending.pop(key)
            else:
                return
        if not future.done():
            future.set_result(reply)

    def send_line(self, data: bytes):
        self.writer.write(data + b"\n")

    async def request(self, data: bytes, key):
        future = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        self.send_line(data)
        return await asyncio.wait_for(future, REPLY_TIMEOUT)

    async def call(self, method: str, params):
        self.next_id += 1
        key = self.next_id
        body = json.dumps({"jsonrpc": "2.0", "id": key, "method": method, "params": params})
        return await self.request(body.encode(), key)

    async def batch(self, calls):
        ids = []
        body = []
        for method, params in calls:
            self.next_id += 1
            ids.append(self.next_id)
            body.append({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in ids]
        for key, future in zip(ids, futures):
            self.pending[key] = future
        self.send_line(json.dumps(body).encode())
        return await asyncio.wait_for(asyncio.gather(*futures), REPLY_TIMEOUT)

    def close(self, abrupt: bool = False):
        if abrupt:
            self.writer.transport.abort()
        else:
            self.writer.close()
        self.task.cancel()


def count_reply(stats: Counter, reply) -> None:
    if "error" in reply and reply["error"] is not None:
        stats[f"error {reply['error'].get('code')}"] += 1
    else:
        stats["results"] += 1


def random_query(rng: random.Random, chain: Chain):
    sh = rng.choice(chain.scripthashes)
    kind = rng.randrange(10)
    if kind < 3:
        return "blockchain.scripthash.get_history", [sh]
    if kind < 5:
        return "blockchain.scripthash.get_balance", [sh]
    if kind < 7:
        return "blockchain.scripthash.listunspent", [sh]
    if kind == 7:
        return "blockchain.block.header", [rng.randrange(chain.height + 1)]
    if kind == 8:
        return "blockchain.transaction.get", [rng.choice(chain.txids)]
    return "blockchain.estimatefee", [rng.choice([2, 6, 25])]


BAD_LINES = [
    b"{not json",
    b"\xff\xfe\xfd",
    b"",
    b"[]",
    b'{"jsonrpc": "2.0", "id": 1, "method": "no.such.method", "params": []}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "blockchain.scripthash.get_balance", "params": ["zz"]}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "blockchain.block.header", "params": [-1]}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "blockchain.scripthash.get_history", "params": 5}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "server.ping", "params": [1, 2, 3]}',
    b'{"jsonrpc": "2.0", "id": [1], "method": "server.ping"}',
    b'{"id": 1, "method": "server.ping"}',
]


async def session(port: int, chain: Chain, rng: random.Random, stats: Counter, deadline: float):
    client = await Client.open(port, stats)
    stats["connections"] += 1
    abrupt = rng.random() < 0.25
    try:
        await client.call("blockchain.headers.subscribe", [])
        for sh in rng.sample(chain.scripthashes, rng.randint(1, 5)):
            count_reply(stats, await client.call("blockchain.scripthash.subscribe", [sh]))
        end = min(deadline, time.monotonic() + rng.uniform(5, 60))
        while time.monotonic() < end and not client.closed:
            roll = rng.random()
            if roll < 0.55:
                method, params = random_query(rng, chain)
                count_reply(stats, await client.call(method, params))
                stats["requests"] += 1
            elif roll < 0.70:
                line = rng.choice(BAD_LINES)
                if rng.random() < 0.1:
                    line = b'{"jsonrpc": "2.0", "id": 1, "method": "server.ping", "params": [0, "' + b"x" * 200_000 + b'"]}'
                client.next_id += 1
                reply = await client.request(line, client.next_id)
                count_reply(stats, reply)
                stats["bad requests"] += 1
            elif roll < 0.85:
                calls = [random_query(rng, chain) for _ in range(rng.randint(2, 10))]
                for reply in await client.batch(calls):
                    count_reply(stats, reply)
                stats["requests"] += len(calls)
            elif roll < 0.92:
                sh = rng.choice(chain.scripthashes)
                count_reply(stats, await client.call("blockchain.scripthash.subscribe", [sh]))
            else:
                # A request left unanswered by leaving now.
                client.send_line(json.dumps({"id": 999_999, "method": "blockchain.scripthash.get_history",
                                             "params": [rng.choice(chain.scripthashes)]}).encode())
                abrupt = True
                break
            await asyncio.sleep(rng.uniform(0.2, 2.0))
    finally:
        client.close(abrupt)
        stats["abrupt closes" if abrupt else "clean closes"] += 1


async def client_loop(n: int, port: int, chain: Chain, seed: int, stats: Counter, deadline: float):
    rng = random.Random(seed * 100_003 + n)
    await asyncio.sleep(rng.uniform(0, 5))
    while time.monotonic() < deadline:
        try:
            await session(port, chain, rng, stats, deadline)
        except asyncio.TimeoutError:
            stats["reply timeouts"] += 1
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as err:
            stats[f"dropped: {type(err).__name__}"] += 1
        await asyncio.sleep(rng.uniform(0.1, 2.0))


async def chain_activity(daemon: Daemon, chain: Chain, seed: int, stats: Counter, deadline: float,
                         block_every: float):
    """Sends a transaction to a client address every second, mines every `block_every`."""
    rng = random.Random(seed)
    rpc = daemon.rpc
    miner = await asyncio.to_thread(rpc.call, "getnewaddress", "", "bech32")
    last_block = time.monotonic()
    while time.monotonic() < deadline:
        try:
            txid = await asyncio.to_thread(rpc.call, "sendtoaddress", rng.choice(chain.addresses), 0.001)
            chain.txids.append(txid)
            stats["txs sent"] += 1
            if time.monotonic() - last_block >= block_every:
                await asyncio.to_thread(rpc.call, "generatetoaddress", 1, miner)
                chain.height = await asyncio.to_thread(rpc.call, "getblockcount")
                stats["blocks mined"] += 1
                last_block = time.monotonic()
        except Exception as err:  # noqa: BLE001 - counted and reported
            stats[f"daemon: {type(err).__name__}"] += 1
        await asyncio.sleep(1)


async def sample_rss(pid: int, every: float, deadline: float, samples: list):
    started = time.monotonic()
    while time.monotonic() < deadline:
        rss = status_kb(pid, "VmRSS")
        if rss == 0:
            break
        samples.append((time.monotonic() - started, rss))
        await asyncio.sleep(every)


def admin_memory(rpc_binary: str, rpc_port: int) -> dict:
    """The admin RPC's `memory` (cache entries, mempool), or {} if it does not answer."""
    try:
        out = subprocess.run([rpc_binary, "-p", str(rpc_port), "--json", "memory"],
                             capture_output=True, timeout=20, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


async def snapshot_memory(args, rpc_port: int, deadline: float, snapshots: list):
    """The admin view of memory at each third of the soak and at its end."""
    started = time.monotonic()
    for third in (1, 2, 3):
        at = started + args.duration * third / 3 - (1 if third == 3 else 0)
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        memory = await asyncio.to_thread(admin_memory, args.ferrumx_rpc, rpc_port)
        snapshots.append((time.monotonic() - started, memory))


async def soak(args, daemon: Daemon, chain: Chain, port: int, pid: int, rpc_port: int):
    stats = Counter()
    samples = []
    snapshots = []
    deadline = time.monotonic() + args.duration
    tasks = [asyncio.ensure_future(sample_rss(pid, args.sample_every, deadline, samples)),
             asyncio.ensure_future(snapshot_memory(args, rpc_port, deadline, snapshots)),
             asyncio.ensure_future(chain_activity(daemon, chain, args.seed, stats, deadline, args.block_every))]
    tasks += [asyncio.ensure_future(client_loop(n, port, chain, args.seed, stats, deadline))
              for n in range(args.clients)]
    # Every loop ends by the deadline; the grace bounds replies still in flight.
    done, pending = await asyncio.wait(tasks, timeout=args.duration + REPLY_TIMEOUT * 2 + 30)
    for task in pending:
        task.cancel()
    stats["tasks cut at the end"] = len(pending)
    return stats, samples, snapshots


def verdict(samples: list) -> dict:
    rss = [kb for _, kb in samples]
    third = max(1, len(rss) // 3)
    first = sum(rss[:third]) / third
    middle = sum(rss[third:2 * third]) / third
    last = sum(rss[-third:]) / third
    growth = (last - first) / first
    return {
        "samples": len(rss),
        "first_mib": first / 1024,
        "middle_mib": middle / 1024,
        "late_growth": (last - middle) / middle,
        "last_mib": last / 1024,
        "min_mib": min(rss) / 1024,
        "max_mib": max(rss) / 1024,
        "growth": growth,
        # Warm-up (caches filling to their caps) is the first third; a leak keeps growing.
        "flat": (last - middle) / middle <= 0.05,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ferrumx", required=True)
    parser.add_argument("--ferrumx-rpc", help="the admin client (default: next to --ferrumx)")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--sample-every", type=float, default=3)
    parser.add_argument("--block-every", type=float, default=10)
    parser.add_argument("--addresses", type=int, default=400)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--cost-limits", action="store_true",
                        help="keep ElectrumX's default COST_SOFT_LIMIT/COST_HARD_LIMIT (throttles these clients)")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    args.ferrumx_rpc = args.ferrumx_rpc or str(Path(args.ferrumx).with_name("ferrumx-rpc"))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    print(f"soak: {args.clients} clients for {args.duration:.0f}s, seed {args.seed}", flush=True)
    daemon = Daemon(args.work / "litecoind", wallet=True)
    proc = None
    try:
        daemon.start()
        chain = prepare_chain(daemon, args.addresses)
        print(f"chain: height {chain.height}, {len(chain.scripthashes)} client addresses", flush=True)
        port, rpc_port = free_port(), free_port()
        proc = start_ferrumx(args.ferrumx, daemon, args.work, port, rpc_port, args.clients * 2 + 100,
                             args.cost_limits)
        asyncio.run(wait_ready(port, proc, chain.height))
        started = time.monotonic()
        stats, samples, snapshots = asyncio.run(soak(args, daemon, chain, port, proc.pid, rpc_port))
        elapsed = time.monotonic() - started
        alive = proc.poll() is None
        if not alive:
            raise SoakFailed(f"ferrumx exited with {proc.returncode} during the soak")
        if len(samples) < 6:
            raise SoakFailed(f"only {len(samples)} RSS samples")
        result = verdict(samples)
        load = os.getloadavg()
    finally:
        if proc is not None:
            stop(proc)
        daemon.stop()
    lines = [
        f"## Soak, {datetime.date.today()}: {args.clients} clients, {args.duration:.0f} s",
        "",
        f"Seed {args.seed}; cost limits {'on (ElectrumX defaults)' if args.cost_limits else 'off'}; a block every {args.block_every:.0f} s and a transaction every second; "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores; "
        f"{elapsed:.0f} s wall.",
        "",
        "| RSS | MiB |",
        "|---|---:|",
        f"| mean, first third | {result['first_mib']:.1f} |",
        f"| mean, middle third | {result['middle_mib']:.1f} |",
        f"| mean, last third | {result['last_mib']:.1f} |",
        f"| min / max | {result['min_mib']:.1f} / {result['max_mib']:.1f} |",
        f"| growth, last vs first third | {result['growth'] * 100:+.1f}% |",
        f"| growth, last vs middle third | {result['late_growth'] * 100:+.1f}% |",
        "",
        f"RSS {'flat' if result['flat'] else 'NOT flat'} (limit +5% last vs middle third), {result['samples']} samples "
        f"every {args.sample_every:.0f} s; ferrumx alive at the end.",
        "",
        "| what the clients saw | count |",
        "|---|---:|",
    ]
    lines += [f"| {key} | {value:,} |" for key, value in sorted(stats.items())]
    lines += ["", "| admin `memory` at | RSS | cache entries | mempool txs |", "|---|---:|---:|---:|"]
    for at, memory in snapshots:
        caches = ", ".join(f"{k} {v:,}" for k, v in sorted(memory.get("cache entries", {}).items()))
        lines.append(f"| {at:.0f} s | {memory.get('resident memory', '?')} | {caches or '?'} | "
                     f"{memory.get('mempool transactions', '?')} |")
    lines += ["", "RSS samples (s, MiB): " + ", ".join(f"{t:.0f}:{kb / 1024:.0f}" for t, kb in samples), ""]
    report = "\n".join(lines)
    print(report, flush=True)
    if args.results:
        with open(args.results, "a") as f:
            f.write(report + "\n")
    return 0 if result["flat"] else 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SoakFailed as err:
        print(f"soak failed: {err}", file=sys.stderr)
        sys.exit(1)
