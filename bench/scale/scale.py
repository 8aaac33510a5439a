"""Scale benchmark: sync a multi-million-transaction chain with and without a memory
limit, then query the finished index with a cold page cache.

For each server (ferrumx, Fulcrum, ElectrumX), one at a time, each phase on a fresh
litecoind running on a copy of the chain made by build_chain.py:

- `sync` (all the memory it wants) and `sync-limited` (a cgroup v1 memory group with
  memory.limit_in_bytes; the page cache the server causes counts against it): from an
  empty index until the server's TCP port answers `blockchain.headers.subscribe` at the
  daemon's tip, or the server dies (the OOM killer: memory.oom_control's oom_kill), or
  the per-server timeout. Only the server is in the group, not the daemon.
- `query`: the finished index (the limited sync's if it finished, else the unlimited
  one's), the page cache dropped, the server started under the limit on it; then for
  each of get_history, get_balance and listunspent, the page cache dropped again and
  ferrumx-query-bench asking for random script hashes of the chain (hot addresses left
  out), each scenario its own part of the list so none warms another's pages.

Progress during a sync, sampled every POLL seconds: ferrumx's catch-up log line
(`height H/TIP`, every 5 s), Fulcrum's stats endpoint (`Controller.TxNum`, the
transactions it has processed), ElectrumX's local RPC `getinfo` (`db height`, which
moves at each flush). From those samples, the time at which each fifth of the chain's
transactions was reached, and so the rate per fifth.

Each phase writes OUT/<server>-<phase>.json; `--report` turns every JSON present into
results.md. Phases hold an flock on --lock (if given) while they run, so that other
benchmarks on the machine do not overlap them.
"""

import argparse
import bisect
import datetime
import fcntl
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sync"))

from bench import cpu_model, cpu_seconds, disk_usage, status_kb, stop, tip_height, tree_pids  # noqa: E402
from daemon import Daemon, free_port  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
POLL = 1.0
SERVERS = ("ferrumx", "fulcrum", "electrumx")
PHASES = ("sync", "sync-limited", "query")
QUERY_SCENARIOS = ("get_history", "get_balance", "listunspent")
# Blocks of undo kept for reorgs. ferrumx gets REORG_LIMIT=100 here (its own default on
# Litecoin regtest is ElectrumX's 4000); Fulcrum's max_reorg defaults to 100
# (Options.h, defaultMaxReorg); ElectrumX's Litecoin regtest REORG_LIMIT is 4000. Runs
# saved before the field existed were made with the servers' defaults.
FERRUMX_REORG_LIMIT = 100
UNDO_DEPTH_DEFAULTS = {"ferrumx": 4000, "fulcrum": 100, "electrumx": 4000}


class PhaseFailed(Exception):
    """A phase could not be run at all (as opposed to a server failing to sync)."""


@contextmanager
def bench_lock(path):
    if path is None:
        yield
        return
    with open(path, "a") as f:
        print(f"  waiting for {path} ...", flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def uptime_load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- the memory group ------------------------------------------------------------


class MemoryGroup:
    """A cgroup v1 memory group holding one server (and its children)."""

    def __init__(self, name: str, limit_bytes: int | None):
        self.path = CGROUP_ROOT / name
        if self.path.exists():
            self.remove()
        self.path.mkdir()
        if limit_bytes:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        self.limit = limit_bytes

    def wrap(self, cmd: list) -> list:
        """A command that enters the group, then runs `cmd` in its place."""
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *cmd]

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def stats(self) -> dict:
        oom = dict(line.split() for line in self.read("memory.oom_control").splitlines())
        stat = dict(line.split() for line in self.read("memory.stat").splitlines())
        return {
            "max_usage_bytes": int(self.read("memory.max_usage_in_bytes")),
            "failcnt": int(self.read("memory.failcnt")),
            "oom_kills": int(oom.get("oom_kill", 0)),
            "cache_bytes_end": int(stat.get("total_cache", stat.get("cache", 0))),
            "rss_bytes_end": int(stat.get("total_rss", stat.get("rss", 0))),
        }

    def remove(self) -> None:
        procs = self.read("cgroup.procs").split() if self.path.exists() else []
        for pid in procs:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


# ---- the servers -----------------------------------------------------------------


class Server:
    """How to start one server on a daemon and an index directory, and read its progress."""

    name = ""

    def __init__(self, args):
        self.args = args
        self.port = 0
        self.aux_port = 0

    def command(self, db_dir: Path, daemon: Daemon, run_dir: Path) -> tuple:
        raise NotImplementedError

    def compaction_seconds(self, log_path: Path) -> float | None:
        """How long the index was compacted after the sync, if the server says."""
        return None

    def settled(self, log_path: Path) -> bool:
        """Whether the work the server does after it first serves the tip is done."""
        return True

    def undo_depth(self) -> int:
        """Blocks of undo information the server keeps for reorgs with these settings."""
        return UNDO_DEPTH_DEFAULTS[self.name]

    def txs_done(self, log_path: Path, tx_counts: list) -> int | None:
        raise NotImplementedError

    def tables(self, db_dir: Path) -> dict:
        """Bytes per table or sub-store of the index."""
        out = {}
        for child in sorted(db_dir.iterdir()):
            out[child.name] = disk_usage(child) if child.is_dir() else child.lstat().st_blocks * 512
        return out


def common_env(db_dir: Path, daemon: Daemon, port: int) -> dict:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "COIN": "Litecoin",
        "NET": "regtest",
        "DAEMON_URL": daemon.url,
        "DB_DIRECTORY": str(db_dir),
        "ALLOW_ROOT": "1",
        "COST_SOFT_LIMIT": "0",
        "COST_HARD_LIMIT": "0",
        "PEER_DISCOVERY": "off",
        "LOG_LEVEL": "info",
    }


def extra_env(text: str) -> dict:
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def tail_lines(path: Path, size: int = 16384) -> list:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


class Ferrumx(Server):
    name = "ferrumx"

    def command(self, db_dir, daemon, run_dir):
        env = {**common_env(db_dir, daemon, self.port), "SERVICES": f"tcp://127.0.0.1:{self.port}"}
        # Undo for as many blocks as Fulcrum keeps by default (its max_reorg, 100), not
        # ElectrumX's Litecoin-regtest 4000, which is the whole chain: the same work.
        env["REORG_LIMIT"] = str(FERRUMX_REORG_LIMIT)
        env.update(extra_env(self.args.ferrumx_env))
        return [str(self.args.ferrumx)], env

    def undo_depth(self):
        return int(extra_env(self.args.ferrumx_env).get("REORG_LIMIT", FERRUMX_REORG_LIMIT))

    def txs_done(self, log_path, tx_counts):
        # Catch-up progress, every 5 s: "height 1234/2187 (56.4%), ..."
        for line in reversed(tail_lines(log_path)):
            at = line.find(" height ")
            if at >= 0 and "/" in line[at + 8 : at + 20]:
                head = line[at + 8 :].split("/", 1)[0]
                if head.isdigit():
                    return tx_counts[min(int(head), len(tx_counts) - 1)]
        return None

    def settled(self, log_path):
        # It answers from the catch-up's runs while they merge into the index:
        # "answering from the runs of 8 flushes ...", then "... merged into the index ...".
        log = log_path.read_text(errors="replace")
        serving = log.rfind("answering from the runs of ")
        return serving < 0 or log.find("merged into the index", serving) >= 0

    def compaction_seconds(self, log_path):
        # "index compacted from 4084.6 MB to 1962.1 MB (2142.5 MB were free pages) in 37.0s"
        for line in reversed(tail_lines(log_path)):
            at = line.find("index compacted from ")
            if at >= 0 and line.rstrip().endswith("s"):
                return float(line.rstrip().rsplit(" in ", 1)[1][:-1])
        return None

    def tables(self, db_dir):
        """Each named LMDB database's pages times the page size (python lmdb)."""
        out = super().tables(db_dir)
        try:
            import lmdb
        except ImportError:
            return out
        env = lmdb.open(str(db_dir), readonly=True, lock=False, max_dbs=64, subdir=True)
        psize = env.stat()["psize"]
        with env.begin() as txn:
            names = [key for key, _ in txn.cursor()]
        for name in names:
            try:
                db = env.open_db(name, create=False)
            except lmdb.IncompatibleError:
                db = env.open_db(name, create=False, dupsort=True)
            with env.begin() as txn:
                st = txn.stat(db)
            pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
            out[f"lmdb:{name.decode(errors='replace')}"] = pages * psize
        env.close()
        return out


class Fulcrum(Server):
    name = "fulcrum"

    def command(self, db_dir, daemon, run_dir):
        self.aux_port = free_port()
        conf = run_dir / "fulcrum.conf"
        lines = [
            f"datadir = {db_dir}",
            f"bitcoind = 127.0.0.1:{daemon.port}",
            f"rpcuser = {daemon.user}",
            f"rpcpassword = {daemon.password}",
            f"tcp = 127.0.0.1:{self.port}",
            f"stats = 127.0.0.1:{self.aux_port}",
            "peering = false",
            "announce = false",
            *[item.replace("=", " = ", 1) for item in self.args.fulcrum_conf.split()],
        ]
        conf.write_text("\n".join(lines) + "\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
        return [str(self.args.fulcrum), str(conf)], env

    def txs_done(self, log_path, tx_counts):
        """The higher of the stats port's `Controller.TxNum` (it answers only between
        blocks: busy, the controller lets the stats request time out) and the last
        `Processed height: N` log line (every 1,000 blocks)."""
        done = [0]
        for line in reversed(tail_lines(log_path)):
            at = line.find("Processed height: ")
            if at >= 0:
                word = line[at + 18 :].split(",", 1)[0]
                if word.isdigit():
                    done.append(tx_counts[min(int(word), len(tx_counts) - 1)])
                break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.aux_port}/stats", timeout=5) as resp:
                stats = json.loads(resp.read())
            if isinstance(stats, list):
                stats = stats[0] if stats else {}
            done.append(int((stats.get("Controller") or {}).get("TxNum") or 0))
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        return max(done) or None

    def undo_depth(self):
        conf = dict(item.split("=", 1) for item in self.args.fulcrum_conf.split() if "=" in item)
        return int(conf.get("max_reorg", UNDO_DEPTH_DEFAULTS["fulcrum"]))

    def tables(self, db_dir):
        """Fulcrum 2 keeps one RocksDB (column families inside): its files by kind."""
        out = super().tables(db_dir)
        for store in [d for d in db_dir.iterdir() if d.is_dir()]:
            kinds = {}
            for f in store.iterdir():
                kind = "tables (*.sst)" if f.suffix == ".sst" else "logs, manifest, options"
                kinds[kind] = kinds.get(kind, 0) + f.lstat().st_blocks * 512
            out.update({f"{store.name}: {k}": v for k, v in sorted(kinds.items())})
        return out


class Electrumx(Server):
    name = "electrumx"

    def command(self, db_dir, daemon, run_dir):
        self.aux_port = free_port()
        env = {
            **common_env(db_dir, daemon, self.port),
            "SERVICES": f"tcp://127.0.0.1:{self.port},rpc://127.0.0.1:{self.aux_port}",
            "DB_ENGINE": "leveldb",
        }
        env.update(extra_env(self.args.electrumx_env))
        return shlex.split(self.args.electrumx), env

    def undo_depth(self):
        return int(extra_env(self.args.electrumx_env).get("REORG_LIMIT", UNDO_DEPTH_DEFAULTS["electrumx"]))

    def txs_done(self, log_path, tx_counts):
        """The higher of the block processor's log ("our height: N", each batch of blocks)
        and the local RPC's flushed `db height`."""
        heights = [-1]
        for line in reversed(tail_lines(log_path)):
            at = line.find("our height: ")
            if at >= 0:
                word = line[at + 12 :].split(" ", 1)[0].replace(",", "")
                if word.isdigit():
                    heights.append(int(word))
                break
        try:
            with socket.create_connection(("127.0.0.1", self.aux_port), timeout=5) as sock:
                sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"getinfo","params":[]}\n')
                reply = json.loads(sock.makefile("rb").readline())
            heights.append(int((reply.get("result") or {}).get("db height", -1)))
        except (OSError, ValueError, TypeError):
            pass
        height = max(heights)
        return None if height < 0 else tx_counts[min(height, len(tx_counts) - 1)]


SERVER_CLASSES = {"ferrumx": Ferrumx, "fulcrum": Fulcrum, "electrumx": Electrumx}


# ---- one run ---------------------------------------------------------------------


def copy_chain(chain: Path, dest: Path) -> Path:
    """A private copy of the chain's daemon data directory."""
    datadir = dest / "datadir"
    shutil.rmtree(datadir, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(chain / "datadir"), str(datadir)], check=True)
    return datadir


def start_daemon(datadir: Path, flags: list, rest: bool) -> Daemon:
    # daemon.py always passes -rest=1; a later -rest=0 overrides it (the last value wins).
    extra = tuple(flags) + ("-rpcthreads=16", "-rpcworkqueue=256", f"-rest={int(rest)}")
    daemon = Daemon(datadir, extra_args=extra)
    daemon.start()
    return daemon


def fifths(samples: list, total: int) -> list:
    """Transactions/s over each fifth of the chain's transactions, from (t, txs) samples.

    The time a boundary was crossed is interpolated between the samples around it, but
    only when those are close (within 30 s or 10% of the run): a server that reports its
    progress rarely (Fulcrum logs it every 1,000 blocks) gets None there, not a guess.
    A fifth not reached is None too."""
    points = moves(samples)
    if not points:
        return [None] * 5
    close = max(30.0, 0.1 * samples[-1][0])
    times = [0.0]
    for k in range(1, 6):
        goal = total * k / 5
        crossed = None
        prev_t, prev_x = 0.0, 0
        for t, x in points:
            if x >= goal:
                # The tip served is exact, however long since the last report.
                if t - prev_t <= close or x >= total:
                    crossed = prev_t + (t - prev_t) * ((goal - prev_x) / max(x - prev_x, 1))
                break
            prev_t, prev_x = t, x
        times.append(crossed)
    rates = []
    for k in range(1, 6):
        if times[k] is None or times[k - 1] is None:
            rates.append(None)
        else:
            rates.append(round((total / 5) / max(times[k] - times[k - 1], 1e-3)))
    return rates


def moves(samples: list) -> list:
    """The samples at which the reported progress moved (the first one of each value)."""
    out, last = [], 0
    for t, x in samples:
        if x > last:
            out.append((t, x))
            last = x
    return out


def segments(samples: list, total: int) -> list:
    """(share of the chain reached, txs/s since the previous point) at each point where
    the reported progress moved: the coarse curve of a server that reports rarely."""
    out, prev_t, prev_x = [], 0.0, 0
    for t, x in moves(samples):
        out.append((round(100 * x / total), round((x - prev_x) / max(t - prev_t, 1e-3))))
        prev_t, prev_x = t, x
    return out


def run_server(server: Server, cmd: list, env: dict, run_dir: Path, group: MemoryGroup, daemon: Daemon,
               tip: int, tx_counts: list, timeout: float) -> dict:
    """Runs the server until it serves the tip, dies, or times out; returns the figures."""
    server.port = server.port or free_port()
    log_path = run_dir / "server.log"
    daemon_cpu0 = cpu_seconds(daemon.proc.pid)
    with open(log_path, "ab") as log:
        started = time.monotonic()
        proc = subprocess.Popen(group.wrap(cmd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    samples, peak_rss, cpu, outcome, last_txs, served = [], 0, 0.0, None, 0, None
    next_sample = started
    try:
        while outcome is None:
            pids = tree_pids(proc.pid)
            peak_rss = max(peak_rss, sum(status_kb(p, "VmRSS") for p in pids))
            peak_rss = max(peak_rss, sum(status_kb(p, "VmHWM") for p in pids))
            cpu = max(cpu, sum(cpu_seconds(p) for p in pids))
            now = time.monotonic()
            if proc.poll() is not None:
                outcome = f"exited with {proc.returncode}"
                break
            if now >= next_sample:
                txs = server.txs_done(log_path, tx_counts)
                if txs is not None and txs >= last_txs:
                    last_txs = txs
                    samples.append((round(now - started, 2), txs))
                next_sample = now + POLL
            height = tip_height(server.port) if served is None else None
            if height == tip:
                served = round(time.monotonic() - started, 2)
                samples.append((served, tx_counts[-1]))
            if served is not None and server.settled(log_path):
                outcome = "served the tip"
                break
            if now - started > timeout:
                outcome = f"timed out after {timeout:.0f}s"
                break
            time.sleep(0.2)
        # Served the tip (the wall time), then settled: ferrumx merges the catch-up's
        # runs into its tables while it already answers from them.
        settled = time.monotonic() - started
        elapsed = served if served is not None else settled
        daemon_cpu = cpu_seconds(daemon.proc.pid) - daemon_cpu0
    finally:
        stop(proc)
    mem = group.stats()
    killed_by = None
    if proc.returncode is not None and proc.returncode < 0:
        killed_by = signal.Signals(-proc.returncode).name
    if outcome.startswith("exited") and mem["oom_kills"]:
        outcome = f"killed by the OOM killer ({killed_by or proc.returncode})"
    return {
        "outcome": outcome,
        "ok": outcome == "served the tip",
        "seconds": round(elapsed, 1),
        "settled_seconds": round(settled, 1),
        "txs_reached": last_txs if outcome != "served the tip" else tx_counts[-1],
        "samples": samples,
        "peak_rss_bytes": peak_rss * 1024,
        "server_cpu_seconds": round(cpu, 1),
        "daemon_cpu_seconds": round(daemon_cpu, 1),
        "exit": proc.returncode,
        "killed_by": killed_by,
        "cgroup": mem,
        "limit_bytes": group.limit,
    }


def sync_phase(args, server: Server, chain: dict, limited: bool) -> dict:
    phase = "sync-limited" if limited else "sync"
    run_dir = args.work / f"{server.name}-{phase}"
    db_dir = run_dir / "db"
    shutil.rmtree(run_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    datadir = copy_chain(args.chain, args.work / "daemon")
    limit = args.limit_mb * 2**20 if limited else None
    timeout = args.timeout[server.name]
    with bench_lock(args.lock):
        load_before = uptime_load()
        daemon = start_daemon(datadir, chain["daemon_flags"], args.rest == "on")
        try:
            tip = daemon.rpc.call("getblockcount")
            if tip != chain["height"]:
                raise PhaseFailed(f"the daemon's height is {tip}, chain.json says {chain['height']}")
            server.port = free_port()
            cmd, env = server.command(db_dir, daemon, run_dir)
            group = MemoryGroup(f"ferrumx-scale-{server.name}-{os.getpid()}", limit)
            print(f"{server.name} {phase}: {chain['txs']:,} txs to height {tip}, "
                  f"limit {args.limit_mb if limited else 'none'} MB, timeout {timeout:.0f}s (log: {run_dir}/server.log)",
                  flush=True)
            try:
                result = run_server(server, cmd, env, run_dir, group, daemon, tip, chain["tx_counts"], timeout)
            finally:
                group.remove()
        finally:
            daemon.stop()
        load_after = uptime_load()
    compaction = server.compaction_seconds(run_dir / "server.log") if result["ok"] else None
    sync_samples = list(result["samples"])
    if compaction and sync_samples:
        end, txs = sync_samples[-1]
        sync_samples[-1] = (round(end - compaction, 2), txs)
    result.update({
        "server": server.name,
        "phase": phase,
        "rest": args.rest,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before,
        "load_after": load_after,
        "compaction_seconds": compaction,
        "undo_depth": server.undo_depth(),
        "sync_samples": sync_samples,
        # The sync's rate: it ended when the compaction (if any) began.
        "fifths_txs_per_s": fifths(sync_samples, chain["txs"]),
        "index_bytes": disk_usage(db_dir),
        "tables": server.tables(db_dir) if any(db_dir.iterdir()) else {},
        "db_dir": str(db_dir),
    })
    if result["settled_seconds"] > result["seconds"] + 0.5:
        print(f"  (merged its runs into the index by {result['settled_seconds']}s)", flush=True)
    print(f"  {result['outcome']} in {result['seconds']}s; {result['txs_reached']:,} txs; "
          f"per fifth {result['fifths_txs_per_s']}"
          + (f" (then compacted in {compaction:.1f}s)" if compaction else "")
          + f"; peak RSS {result['peak_rss_bytes'] >> 20} MiB, "
          f"group peak {result['cgroup']['max_usage_bytes'] >> 20} MiB; index {result['index_bytes'] >> 20} MiB",
          flush=True)
    shutil.rmtree(datadir, ignore_errors=True)
    return result


def query_phase(args, server: Server, chain: dict) -> dict:
    """Cold-cache query latency on a finished index, under the memory limit."""
    db_dir = None
    for phase in ("sync-limited", "sync"):
        saved = args.out / f"{server.name}-{phase}.json"
        if saved.exists() and json.loads(saved.read_text()).get("ok"):
            db_dir = Path(json.loads(saved.read_text())["db_dir"])
            index_from = phase
            break
    if db_dir is None or not db_dir.exists():
        raise PhaseFailed(f"{server.name}: no finished index to query (run a sync phase first)")
    index_bytes = disk_usage(db_dir)
    # The point is an index several times bigger than the memory: by default the limit
    # is lowered, if need be, to a third of the index.
    limit = args.query_limit_mb * 2**20 if args.query_limit_mb else min(args.limit_mb * 2**20, index_bytes // 3)
    run_dir = args.work / f"{server.name}-query"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    hashes = (args.chain / "scripthashes.txt").read_text().split()
    part = len(hashes) // len(QUERY_SCENARIOS)
    datadir = copy_chain(args.chain, args.work / "daemon")
    results = {}
    with bench_lock(args.lock):
        load_before = uptime_load()
        daemon = start_daemon(datadir, chain["daemon_flags"], args.rest == "on")
        group = MemoryGroup(f"ferrumx-scale-{server.name}-{os.getpid()}", limit)
        try:
            tip = daemon.rpc.call("getblockcount")
            server.port = free_port()
            cmd, env = server.command(db_dir, daemon, run_dir)
            drop_caches()
            started = time.monotonic()
            proc = subprocess.Popen(group.wrap(cmd), env=env, stdout=open(run_dir / "server.log", "ab"),
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                while tip_height(server.port) != tip:
                    if proc.poll() is not None:
                        raise PhaseFailed(f"{server.name} exited with {proc.returncode} on the finished index")
                    if time.monotonic() - started > 600:
                        raise PhaseFailed(f"{server.name} did not serve the finished index within 600s")
                    time.sleep(0.2)
                ready = time.monotonic() - started
                for i, scenario in enumerate(QUERY_SCENARIOS):
                    part_file = run_dir / f"scripthashes-{scenario}.txt"
                    part_file.write_text("\n".join(hashes[i * part : (i + 1) * part]) + "\n")
                    drop_caches()
                    cmd_q = [str(args.generator), "--server", f"tcp://127.0.0.1:{server.port}",
                             "--scenario", scenario, "--connections", str(args.query_connections),
                             "--duration", str(args.query_seconds), "--depth", "1",
                             "--scripthashes", str(part_file), "--json"]
                    out = subprocess.run(cmd_q, capture_output=True, text=True, timeout=args.query_seconds + 300)
                    if out.returncode != 0:
                        raise PhaseFailed(f"ferrumx-query-bench {scenario}: {out.stderr.strip()[-500:]}")
                    results[scenario] = json.loads(out.stdout)
                    print(f"  {server.name} {scenario}: {results[scenario]}", flush=True)
                rss = sum(status_kb(p, "VmRSS") for p in tree_pids(proc.pid)) * 1024
            finally:
                stop(proc)
            mem = group.stats()
        finally:
            group.remove()
            daemon.stop()
        load_after = uptime_load()
    shutil.rmtree(datadir, ignore_errors=True)
    return {
        "server": server.name,
        "phase": "query",
        "rest": args.rest,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before,
        "load_after": load_after,
        "index_from": index_from,
        "index_bytes": index_bytes,
        "limit_bytes": limit,
        "index_to_limit": round(index_bytes / limit, 2),
        "start_seconds": round(ready, 1),
        "rss_bytes_end": rss,
        "cgroup": mem,
        "connections": args.query_connections,
        "seconds_each": args.query_seconds,
        "scenarios": results,
        "ok": True,
    }


# ---- the report ------------------------------------------------------------------


def mib(n) -> str:
    return "–" if n is None else f"{n / 2**20:,.0f}"


def report(out: Path, chain: dict) -> str:
    runs = {}
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        runs[(r["server"], r["phase"])] = r
    txs, outputs = chain["txs"], chain["outputs"]
    rest = "/".join(sorted({r.get("rest", "on") for r in runs.values()})) or "off"
    lines = [
        f"# Scale benchmark: ferrumx, Fulcrum, ElectrumX on a {txs:,}-transaction chain",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Linux {platform.release()}, "
        "shared with other work (load averages 1/5/15 min before and after each run below).",
        f"Chain: Litecoin regtest by `bench/scale/build_chain.py` (seed {chain['params']['seed']}): "
        f"{chain['height'] + 1:,} blocks, {txs:,} transactions, {chain['inputs']:,} inputs, "
        f"{outputs:,} outputs, {chain['scripts']:,} distinct scripts, {chain['chain_mb']:,} MB of blocks. "
        f"Daemon: litecoind 0.21.2.1, `{' '.join(chain['daemon_flags'])}`, "
        f"REST {rest} (ferrumx fetches blocks over REST when on; Fulcrum and ElectrumX use JSON-RPC).",
        "",
        "## Initial sync",
        "",
        "| server | memory | outcome | wall (s) | txs/s | txs/s per fifth of the chain | peak RSS (MiB) "
        "| group peak incl. page cache (MiB) | OOM kills | server CPU (s) | µs CPU/tx | daemon CPU (s) "
        "| index (MiB) | bytes/tx | bytes/output | load before → after | date |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name in SERVERS:
        for phase in ("sync", "sync-limited"):
            r = runs.get((name, phase))
            if r is None:
                continue
            memory = f"limit {r['limit_bytes'] >> 20} MB" if r.get("limit_bytes") else "unlimited"
            done = r["txs_reached"]
            rate = f"{txs / r['seconds']:,.0f}" if r["ok"] else f"({done / r['seconds']:,.0f})"
            r["fifths_txs_per_s"] = fifths(r.get("sync_samples", r["samples"]), txs)
            fifth = " / ".join("–" if x is None else f"{x:,}" for x in r["fifths_txs_per_s"])
            per_tx = r["index_bytes"] / txs if r["ok"] else None
            per_out = r["index_bytes"] / outputs if r["ok"] else None
            cpu_tx = r["server_cpu_seconds"] * 1e6 / done if done else None
            outcome = r["outcome"] if r["ok"] else f"{r['outcome']} at {done:,} txs ({100 * done / txs:.0f}%)"
            if r.get("compaction_seconds"):
                outcome += f", of which {r['compaction_seconds']:.1f} s compacting the index"
            if r["ok"] and r.get("settled_seconds", 0) > r["seconds"] + 0.5:
                outcome += f"; its runs merged into the index by {r['settled_seconds']:,.1f} s"
            lines.append(
                f"| {name} | {memory} | {outcome} | {r['seconds']:,.1f} | {rate} | {fifth} "
                f"| {mib(r['peak_rss_bytes'])} | {mib(r['cgroup']['max_usage_bytes'])} | {r['cgroup']['oom_kills']} "
                f"| {r['server_cpu_seconds']:,.1f} | {'–' if cpu_tx is None else f'{cpu_tx:.1f}'} "
                f"| {r['daemon_cpu_seconds']:,.1f} | {mib(r['index_bytes'])} "
                f"| {'–' if per_tx is None else f'{per_tx:,.0f}'} | {'–' if per_out is None else f'{per_out:,.0f}'} "
                f"| {r['load_before']} → {r['load_after']} | {r['date']} |"
            )
    full = {n: runs.get((n, "sync")) for n in SERVERS}
    fx = full.get("ferrumx")
    ratios = []
    for other in ("fulcrum", "electrumx"):
        o = full.get(other)
        if fx and o and fx["ok"] and o["ok"]:
            ratios.append(
                f"- ferrumx vs {other}, all memory: {o['seconds'] / fx['seconds']:.2f}× as fast "
                f"({o['seconds'] / fx.get('settled_seconds', fx['seconds']):.2f}× to its merged index), "
                f"index {fx['index_bytes'] / o['index_bytes']:.2f}× the size, "
                f"peak RSS {fx['peak_rss_bytes'] / o['peak_rss_bytes']:.2f}×."
            )
    if fx and fx["ok"]:
        f5 = fx["fifths_txs_per_s"]
        if f5[0] and f5[4]:
            ratios.append(f"- ferrumx, all memory: last fifth / first fifth = {f5[4] / f5[0]:.2f}.")
    lim = runs.get(("ferrumx", "sync-limited"))
    if lim and lim["ok"]:
        f5 = lim["fifths_txs_per_s"]
        if f5[0] and f5[4]:
            ratios.append(f"- ferrumx under the limit: last fifth / first fifth = {f5[4] / f5[0]:.2f}.")
        fu = full.get("fulcrum")
        if fu and fu["ok"]:
            ratios.append(f"- ferrumx under the limit vs Fulcrum with all memory: "
                          f"{fu['seconds'] / lim['seconds']:.2f}× as fast "
                          f"({fu['seconds'] / lim.get('settled_seconds', lim['seconds']):.2f}× to its merged index).")
    coarse = []
    for name in SERVERS:
        for phase in ("sync", "sync-limited"):
            r = runs.get((name, phase))
            if r and None in r["fifths_txs_per_s"][: 5 if r["ok"] else 1]:
                points = ", ".join(f"{share}% at {rate:,}/s" for share, rate in segments(r["samples"], txs))
                coarse.append(f"- {name} ({phase}), where its reported progress moved "
                              f"(share of the chain's transactions, txs/s since the previous point): {points or 'never'}.")
    depths = []
    for name in SERVERS:
        for phase in ("sync", "sync-limited"):
            r = runs.get((name, phase))
            if r:
                depth = r.get("undo_depth", UNDO_DEPTH_DEFAULTS[name])
                depths.append(f"{name} ({phase}) {depth:,}")
    if depths:
        lines += ["", "Undo kept for reorgs, in blocks (the chain has "
                  f"{chain['height'] + 1:,}; ferrumx's REORG_LIMIT, Fulcrum's max_reorg, ElectrumX's "
                  "REORG_LIMIT): " + ", ".join(depths) + "."]
    if coarse:
        lines += ["", "Coarse progress (– above: no progress report near that fifth's boundary):", "", *coarse]
    if ratios:
        lines += ["", *ratios]
    lines += ["", "Index per table or sub-store (MiB; LMDB: each named database's pages × page size):", ""]
    for name in SERVERS:
        r = next((runs.get((name, p)) for p in ("sync", "sync-limited") if runs.get((name, p), {}).get("ok")), None)
        if r and r["tables"]:
            tables = dict(r["tables"])
            named = sum(v for k, v in tables.items() if k.startswith("lmdb:"))
            if named and "data.mdb" in tables:
                # LMDB's per-table counts leave out the pages of a DUP_SORT table's sub-databases
                # (schema 3's history of a script with ~800+ entries), which land here with the
                # free pages; schema 4 has no DUP_SORT table.
                tables["lmdb: free pages, the history's sub-databases, the file's slack"] = tables["data.mdb"] - named
            parts = ", ".join(f"{k} {v / 2**20:,.1f}" for k, v in tables.items() if v)
            lines.append(f"- {name}: {parts}")
    q_rows = [runs.get((n, "query")) for n in SERVERS if runs.get((n, "query"))]
    if q_rows:
        lines += [
            "",
            "## Cold-cache queries",
            "",
            "The finished index, the page cache dropped, the server started under a memory limit of at most a "
            "third of the index; "
            "before each method the page cache is dropped again. Random script hashes of the chain "
            "(hot addresses left out), a different part of the list for each method; "
            "one request in flight per connection.",
            "",
            "| server | index (MiB) | limit (MiB) | index / limit | connections × s | method | req/s | p50 (ms) | p99 (ms) "
            "| errors | start on the index (s) | group peak (MiB) | load before → after |",
            "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for q in q_rows:
            for scenario, s in q["scenarios"].items():
                lines.append(
                    f"| {q['server']} | {mib(q['index_bytes'])} | {mib(q['limit_bytes'])} | {q['index_to_limit']} "
                    f"| {q['connections']} × {q['seconds_each']} | {scenario} | {s['req_per_s']:,.0f} "
                    f"| {s['p50_ms']:,.1f} | {s['p99_ms']:,.1f} | {s['errors']} | {q['start_seconds']} "
                    f"| {mib(q['cgroup']['max_usage_bytes'])} | {q['load_before']} → {q['load_after']} |"
                )
    lines += [
        "",
        "Wall time: from process start until the TCP port answers `blockchain.headers.subscribe` at the "
        "daemon's tip. ferrumx answers from the runs of its catch-up (sorted files of each flush's history "
        "and spends) while it merges them into its tables, and says when the merge is done: that time is "
        "given beside the outcome, and the server CPU, peak RSS and index size are measured after it. "
        "Per fifth: the time each fifth of the chain's transactions took, from progress "
        "sampled every second (ferrumx: its catch-up log line; Fulcrum: `Controller.TxNum` from its stats "
        "port when it answers, and its `Processed height` log line every 1,000 blocks; ElectrumX: its block processor's `our height` log line and the `db height` of its local RPC); in parentheses, "
        "the rate up to where a run stopped. Peak RSS: the server's process tree (VmRSS/VmHWM). "
        "Group peak: the cgroup's memory.max_usage_in_bytes (resident memory plus the page cache the "
        "server caused). Bytes per output count every output of the chain, coinbases included.",
        "Command: `bench/scale/run.sh` (see bench/scale/README.md).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", type=Path, required=True, help="directory made by build_chain.py")
    parser.add_argument("--work", type=Path, required=True, help="scratch: daemon copies, indexes, logs")
    parser.add_argument("--out", type=Path, required=True, help="where each phase's JSON goes")
    parser.add_argument("--servers", default="ferrumx,fulcrum,electrumx")
    parser.add_argument("--phases", default="sync,sync-limited,query")
    parser.add_argument("--limit-mb", type=int, default=1024, help="the memory limit (MiB)")
    parser.add_argument("--timeout", default="ferrumx=1800,fulcrum=2400,electrumx=900",
                        help="seconds per sync, per server")
    parser.add_argument("--ferrumx", type=Path)
    parser.add_argument("--fulcrum", type=Path)
    parser.add_argument("--electrumx", help="command that starts ElectrumX (split like a shell)")
    parser.add_argument("--generator", type=Path, help="ferrumx-query-bench binary")
    parser.add_argument("--ferrumx-env", default="", help="extra VAR=VALUE for ferrumx, space-separated")
    parser.add_argument("--electrumx-env", default="", help="extra VAR=VALUE for ElectrumX")
    parser.add_argument("--fulcrum-conf", default="", help="extra key=value lines for Fulcrum's config")
    parser.add_argument("--rest", choices=("on", "off"), default="off",
                        help="the daemon's REST interface (ferrumx uses it when on; the others never)")
    parser.add_argument("--query-limit-mb", type=int,
                        help="memory limit for the query phase (default: --limit-mb or a third of the index, the lower)")
    parser.add_argument("--query-connections", type=int, default=8)
    parser.add_argument("--query-seconds", type=int, default=30)
    parser.add_argument("--lock", help="flock this file while a phase runs")
    parser.add_argument("--results", type=Path, help="write the report here")
    parser.add_argument("--report", action="store_true", help="only write the report from saved phases")
    args = parser.parse_args()
    args.timeout = {k: float(v) for k, v in (item.split("=") for item in args.timeout.split(","))}
    chain = json.loads((args.chain / "chain.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)

    if not args.report:
        names = [n for n in args.servers.split(",") if n]
        phases = [p for p in args.phases.split(",") if p]
        for bad in [n for n in names if n not in SERVER_CLASSES] + [p for p in phases if p not in PHASES]:
            raise SystemExit(f"unknown server or phase {bad!r}: servers {SERVERS}, phases {PHASES}")
        for name in names:
            server = SERVER_CLASSES[name](args)
            for phase in phases:
                try:
                    if phase == "query":
                        result = query_phase(args, server, chain)
                    else:
                        result = sync_phase(args, server, chain, limited=phase == "sync-limited")
                except PhaseFailed as err:
                    print(f"{name} {phase}: FAILED: {err}", flush=True)
                    continue
                (args.out / f"{name}-{phase}.json").write_text(json.dumps(result, indent=1) + "\n")
    text = report(args.out, chain)
    print(text)
    if args.results:
        args.results.write_text(text)
        print(f"written to {args.results}")


if __name__ == "__main__":
    main()
