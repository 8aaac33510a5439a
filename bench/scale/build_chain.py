"""Builds a regtest Litecoin chain of millions of transactions for the scale benchmark.

bench/sync/chain.py sends transactions through the mempool and lets the daemon mine
them; at 5 million transactions that would take hours. Here the blocks are made by this
script and handed to the daemon with `submitblock`: no mempool, no wallet, no signatures.

- The daemon runs with `-vbparams=mweb:0:1` (MWEB never activates on regtest, so blocks
  need no HogEx transaction) and `-checkblockindex=0` (else regtest re-checks its whole
  block index on every block).
- Spendable outputs pay P2SH scripts of `OP_2DROP <n> OP_DROP OP_1` (bench/sync's redeem
  script): anyone can spend them with two dummy pushes of signature and key sizes, so
  inputs have the size of real ones, and each n is a distinct address. Some outputs pay
  P2PKH/P2WPKH-shaped scripts with derived hashes; those are never spent.
- Addresses are reused with a skew: most outputs pay a fresh address, some a recently
  used one, a few one of the hot addresses (exchanges, pools) with a Zipf-like weight.
- Inputs spend mostly young outputs (from the last few blocks) and some old ones (any
  unspent output, uniformly): the old ones are what make an index bigger than memory
  read pages it no longer holds.
- Input and output counts per transaction follow a mainnet-like mix (mostly 1-2 inputs,
  2 outputs; a few consolidations and fan-outs); blocks are filled to ~990 kB (weight
  <= 4M: there is no witness data) and 80,000 sigop cost.
- Block times are the genesis time plus 150 s per height, and the nonce is ground with
  scrypt (regtest's target passes about every other try): the same parameters always
  make the same chain, block hash for block hash. The daemon must run with a large
  `-maxtipage` to leave initial block download on such an old tip (Fulcrum waits for it).

The chain goes to OUT/datadir (the daemon's data directory), with OUT/chain.json (the
parameters, counts and every height's cumulative transaction count), OUT/scripthashes.txt
(a shuffled sample of the chain's script hashes, hot addresses left out, for the query
phase) and OUT/READY, written last. A chain already built with the same parameters is
reused.
"""

import argparse
import hashlib
import json
import queue
import random
import shutil
import struct
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sync"))

from chain import p2sh, push_data, push_num, redeem_script, sha256d, varint  # noqa: E402
from daemon import Daemon  # noqa: E402

GENERATOR_VERSION = 1  # bump when the chain's shape changes, so cached chains are rebuilt
DAEMON_FLAGS = ("-vbparams=mweb:0:1", "-checkblockindex=0", "-maxtipage=2000000000")
COIN = 100_000_000
HALVING = 150  # regtest subsidy halving interval
MATURITY = 100
BLOCK_SPACING = 150
BITS = 0x207FFFFF  # regtest proof-of-work limit; fPowNoRetargeting keeps it
TARGET = 0x7FFFFF << (8 * (0x20 - 3))
MAX_BLOCK_BYTES = 990_000  # no witness: weight = 4 x size <= 4,000,000
MAX_SIGOP_COST = 80_000
HEADER_AND_COINBASE = 80 + 5 + 200
MINER_ADDRESSES = 5  # redeem n 1..5: the mining pools' payout addresses (hot)
HOT_ADDRESSES = 10_000  # redeem n 1..10,000 and payee k 0..9,999: the hot set
RAMP_POOL = 200_000  # below this many spendable outputs, transactions fan out to grow it
FEE_PER_BYTE = 1
QUERY_SAMPLE = 200_000  # script hashes written for the query phase

# (count, weight) choices; means ~2.2 inputs and ~2.8 outputs per transaction.
INPUT_COUNTS = ((1, 62), (2, 20), (3, 7), (4, 4), (5, 2), (8, 2), (12, 2), (20, 1))
OUTPUT_COUNTS = ((1, 15), (2, 63), (3, 10), (4, 5), (6, 3), (10, 2), (20, 2))
SPENDABLE_SHARE = 0.9  # outputs paying an anyone-can-spend P2SH (the rest: P2PKH/P2WPKH)
FRESH, RECENT = 0.62, 0.25  # address choice: fresh, recently used, else hot
YOUNG_SHARE = 0.7  # inputs spending one of the newest outputs; the rest any unspent one
YOUNG_WINDOW = 20_000  # "newest": roughly the last four blocks' spendable outputs


def subsidy(height: int) -> int:
    halvings = height // HALVING
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


def payee_script(k: int) -> bytes:
    """The k-th never-spent payee: P2PKH or P2WPKH with a hash derived from k."""
    digest = hashlib.sha256(b"payee" + k.to_bytes(8, "little")).digest()[:20]
    if k % 5 < 2:
        return b"\x00\x14" + digest
    return b"\x76\xa9\x14" + digest + b"\x88\xac"


def scripthash(script: bytes) -> str:
    return hashlib.sha256(script).digest()[::-1].hex()


def pow_hash(header: bytes) -> int:
    return int.from_bytes(hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32), "little")


def merkle_root(txids: list) -> bytes:
    level = txids
    while len(level) > 1:
        if len(level) % 2:
            level = level + [level[-1]]
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def weighted(choices: tuple) -> tuple:
    values = [c for c, _ in choices]
    total = sum(w for _, w in choices)
    cumulative, acc = [], 0
    for _, w in choices:
        acc += w
        cumulative.append(acc / total)
    return values, cumulative


class Addresses:
    """Picks the payee of each output: fresh, recently used, or hot, per kind."""

    def __init__(self, rng: random.Random, first_fresh: int):
        self.rng = rng
        self.next = first_fresh  # the next fresh number; all below it have been used
        self.first_fresh = first_fresh
        self.recent = [first_fresh - 1] * 4096  # ring of recently used numbers
        self.at = 0
        self.hot_used = bytearray(first_fresh)  # which of the numbers below first_fresh were used

    def mark(self, n: int) -> None:
        if n < self.first_fresh:
            self.hot_used[n] = 1

    def distinct(self) -> int:
        return (self.next - self.first_fresh) + sum(self.hot_used)

    def pick(self) -> int:
        r = self.rng.random()
        if r < FRESH:
            n = self.next
            self.next += 1
        elif r < FRESH + RECENT:
            n = self.recent[int(self.rng.random() * len(self.recent))]
        else:
            n = int(HOT_ADDRESSES * self.rng.random() ** 3)  # Zipf-like: low numbers hottest
        self.mark(n)
        self.recent[self.at] = n
        self.at = (self.at + 1) & 4095
        return n


class Builder:
    """The unspent spendable outputs and the address pools while the chain grows."""

    def __init__(self, seed: int, genesis_hash: bytes, genesis_time: int):
        self.rng = random.Random(seed)
        self.spendable = Addresses(self.rng, first_fresh=HOT_ADDRESSES + 1)  # redeem n
        self.payees = Addresses(self.rng, first_fresh=HOT_ADDRESSES)  # payee k
        self.redeems = {}  # n -> (scriptSig tail, P2SH script), for the hot set and recent use
        self.pool = []  # unspent spendable outputs of earlier blocks: (txid, vout, value, n)
        self.immature = {}  # height -> coinbase output, spendable at height + MATURITY
        self.prev = genesis_hash
        self.genesis_time = genesis_time
        self.height = 0
        self.tx_counts = [1]  # cumulative, per height
        self.inputs = 0
        self.outputs = 0
        self.block_bytes = 285
        self.dummy = self.rng.randbytes(4096)  # source of the dummy signature and key pushes
        self.in_values, self.in_cum = weighted(INPUT_COUNTS)
        self.out_values, self.out_cum = weighted(OUTPUT_COUNTS)

    def _redeem(self, n: int) -> tuple:
        cached = self.redeems.get(n)
        if cached is None:
            redeem = redeem_script(n)
            cached = (push_data(redeem), p2sh(redeem))
            if len(self.redeems) > 500_000:
                self.redeems.clear()
            self.redeems[n] = cached
        return cached

    def _script_sig(self, n: int) -> bytes:
        at = int(self.rng.random() * 3900)
        return push_data(self.dummy[at : at + 72]) + push_data(self.dummy[at + 72 : at + 105]) + self._redeem(n)[0]

    def _count(self, values: list, cumulative: list) -> int:
        r = self.rng.random()
        for value, edge in zip(values, cumulative):
            if r < edge:
                return value
        return values[-1]

    def _take_input(self) -> tuple:
        pool = self.pool
        size = len(pool)
        if self.rng.random() < YOUNG_SHARE:
            at = size - 1 - int(min(YOUNG_WINDOW, size) * self.rng.random() ** 2)
        else:
            at = int(size * self.rng.random())
        picked = pool[at]
        pool[at] = pool[-1]
        pool.pop()
        return picked

    def _transaction(self, created: list) -> tuple:
        """One transaction spending pool outputs; returns (raw, txid, sigop cost)."""
        ramping = len(self.pool) < RAMP_POOL
        n_in = 1 if ramping else min(self._count(self.in_values, self.in_cum), len(self.pool))
        spent = [self._take_input() for _ in range(n_in)]
        n_out = self.rng.randint(3, 8) if ramping else self._count(self.out_values, self.out_cum)
        total = sum(s[2] for s in spent)
        size_guess = 10 + 148 * n_in + 34 * n_out
        fee = min(FEE_PER_BYTE * size_guess, total // 10)
        available = total - fee
        n_out = max(1, min(n_out, available // 100))
        # Amounts: one output takes the remainder (the change), the others a random share.
        shares = [self.rng.random() + 0.05 for _ in range(n_out)]
        scale = available / sum(shares)
        amounts = [max(1, int(s * scale)) for s in shares[:-1]]
        amounts.append(available - sum(amounts))
        parts = [struct.pack("<i", 2), varint(n_in)]
        for txid, vout, _, n in spent:
            sig = self._script_sig(n)
            parts += [txid, struct.pack("<I", vout), varint(len(sig)), sig, b"\xfe\xff\xff\xff"]
        parts.append(varint(n_out))
        new = []
        sigops = 0
        for vout, value in enumerate(amounts):
            if ramping or self.rng.random() < SPENDABLE_SHARE:
                n = self.spendable.pick()
                script = self._redeem(n)[1]
                new.append((vout, value, n))
            else:
                script = payee_script(self.payees.pick())
                if script[0] == 0x76:
                    sigops += 4  # a bare OP_CHECKSIG in an output counts 4 sigop cost
            parts += [struct.pack("<q", value), varint(len(script)), script]
        parts.append(b"\x00\x00\x00\x00")
        raw = b"".join(parts)
        txid = sha256d(raw)
        created += [(txid, vout, value, n) for vout, value, n in new]
        self.inputs += n_in
        self.outputs += n_out
        return raw, txid, sigops, fee

    def _coinbase(self, height: int, fees: int) -> bytes:
        script_sig = push_num(height) + push_data(b"ferrumx-scale")
        miner = 1 + height % MINER_ADDRESSES
        self.spendable.mark(miner)
        value = subsidy(height) + fees
        return b"".join(
            [
                struct.pack("<i", 1),
                b"\x01",
                b"\x00" * 32,
                b"\xff\xff\xff\xff",
                varint(len(script_sig)),
                script_sig,
                b"\xff\xff\xff\xff",
                b"\x01",
                struct.pack("<q", value),
                varint(23),
                self._redeem(miner)[1],
                b"\x00\x00\x00\x00",
            ]
        ), value, miner

    def next_block(self, want_txs: bool) -> bytes:
        """The next block, serialized, with the pool updated as if it were connected."""
        height = self.height + 1
        mature = self.immature.pop(height - MATURITY, None)
        if mature is not None:
            self.pool.append(mature)
        txs, txids, created = [], [], []
        size, sigops, fees = HEADER_AND_COINBASE, 0, 0
        if want_txs:
            while self.pool:
                raw, txid, tx_sigops, fee = self._transaction(created)
                txs.append(raw)
                txids.append(txid)
                size += len(raw)
                sigops += tx_sigops
                fees += fee
                if size > MAX_BLOCK_BYTES - 4000 or sigops > MAX_SIGOP_COST - 1000:
                    break
        coinbase, value, miner = self._coinbase(height, fees)
        cb_txid = sha256d(coinbase)
        self.immature[height] = (cb_txid, 0, value, miner)
        root = merkle_root([cb_txid] + txids)
        stamp = self.genesis_time + BLOCK_SPACING * height
        prefix = struct.pack("<i", 0x20000000) + self.prev + root + struct.pack("<II", stamp, BITS)
        nonce = 0
        while pow_hash(prefix + struct.pack("<I", nonce)) > TARGET:
            nonce += 1
        header = prefix + struct.pack("<I", nonce)
        block = b"".join([header, varint(len(txs) + 1), coinbase] + txs)
        if len(block) > 1_000_000:
            raise AssertionError(f"block {height} is {len(block)} bytes")
        self.pool += created
        self.prev = sha256d(header)
        self.height = height
        self.tx_counts.append(self.tx_counts[-1] + len(txs) + 1)
        self.block_bytes += len(block)
        return block

    def distinct_scripts(self) -> int:
        return self.spendable.distinct() + self.payees.distinct()

    def query_sample(self, count: int, rng: random.Random) -> list:
        """Script hashes of `count` random non-hot scripts the chain paid."""
        redeem_range = (HOT_ADDRESSES + 1, self.spendable.next - 1)
        payee_range = (HOT_ADDRESSES, self.payees.next - 1)
        redeem_count = redeem_range[1] - redeem_range[0] + 1
        payee_count = payee_range[1] - payee_range[0] + 1
        picks = rng.sample(range(redeem_count + payee_count), min(count, redeem_count + payee_count))
        out = []
        for i in picks:
            if i < redeem_count:
                out.append(scripthash(p2sh(redeem_script(redeem_range[0] + i))))
            else:
                out.append(scripthash(payee_script(payee_range[0] + i - redeem_count)))
        return out


class Submitter(threading.Thread):
    """Hands blocks to the daemon one after another while the next ones are built."""

    def __init__(self, daemon: Daemon):
        super().__init__(daemon=True)
        self.daemon_ = daemon
        self.blocks = queue.Queue(maxsize=4)
        self.error = None

    def run(self) -> None:
        from daemon import Rpc

        rpc = Rpc(self.daemon_.port, self.daemon_.user, self.daemon_.password)
        while True:
            item = self.blocks.get()
            if item is None:
                return
            height, block = item
            try:
                result = rpc.call("submitblock", block.hex())
            except Exception as err:  # noqa: BLE001 - reported to the main thread
                self.error = f"block {height}: {err}"
                return
            if result is not None:
                self.error = f"the daemon rejected block {height}: {result}"
                return

    def submit(self, height: int, block: bytes) -> None:
        while True:
            if self.error:
                raise SystemExit(self.error)
            try:
                self.blocks.put((height, block), timeout=1)
                return
            except queue.Full:
                continue


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(out: Path, params: dict) -> dict:
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.monotonic()
    daemon = Daemon(scratch / "datadir", extra_args=DAEMON_FLAGS + ("-dbcache=3000", "-rpcthreads=4"))
    daemon.start()
    try:
        genesis = daemon.rpc.call("getblockheader", daemon.rpc.call("getblockhash", 0))
        builder = Builder(params["seed"], bytes.fromhex(genesis["hash"])[::-1], genesis["time"])
        submitter = Submitter(daemon)
        submitter.start()
        next_report = 100_000
        while builder.tx_counts[-1] < params["txs"] or builder.height < params["min_height"]:
            # Transactions start once the first coinbase matures.
            block = builder.next_block(want_txs=builder.tx_counts[-1] < params["txs"])
            submitter.submit(builder.height, block)
            if builder.tx_counts[-1] >= next_report:
                elapsed = time.monotonic() - started
                print(
                    f"  {builder.tx_counts[-1]:>9,} txs, height {builder.height}, "
                    f"{len(builder.pool):,} spendable outputs, {builder.tx_counts[-1] / elapsed:,.0f} txs/s",
                    flush=True,
                )
                next_report += 250_000
        submitter.blocks.put(None)
        submitter.join()
        if submitter.error:
            raise SystemExit(submitter.error)
        info = daemon.rpc.call("getblockchaininfo")
        chain_txs = daemon.rpc.call("getchaintxstats", 1)["txcount"]
        if info["blocks"] != builder.height or chain_txs != builder.tx_counts[-1]:
            raise SystemExit(
                f"the daemon has {chain_txs} txs at height {info['blocks']}, "
                f"expected {builder.tx_counts[-1]} at {builder.height}"
            )
        if info["bestblockhash"] != builder.prev[::-1].hex():
            raise SystemExit("the daemon's tip is not the block this builder made last")
        if info["softforks"].get("mweb", {}).get("active"):
            raise SystemExit("MWEB activated: the daemon ignored -vbparams=mweb:0:1")
        daemon.stop()
    finally:
        daemon.kill()
    sample = builder.query_sample(QUERY_SAMPLE, random.Random(params["seed"]))
    (scratch / "scripthashes.txt").write_text("".join(h + "\n" for h in sample))
    meta = {
        "height": builder.height,
        "txs": builder.tx_counts[-1],
        "inputs": builder.inputs,
        "outputs": builder.outputs + builder.height,  # coinbase outputs too
        "scripts": builder.distinct_scripts(),
        "tip": info["bestblockhash"],
        "chain_mb": round(builder.block_bytes / 1e6, 1),
        "datadir_mb": round(dir_size(scratch / "datadir") / 1e6, 1),
        "unspent_spendable": len(builder.pool),
        "build_seconds": round(time.monotonic() - started, 1),
        "daemon_flags": list(DAEMON_FLAGS),
        "params": params,
        "generator": GENERATOR_VERSION,
        "tx_counts": builder.tx_counts,
    }
    (scratch / "chain.json").write_text(json.dumps(meta) + "\n")
    (scratch / "READY").write_text(
        f"txs {meta['txs']}\nblocks {meta['height'] + 1}\nheight {meta['height']}\n"
        f"scripts {meta['scripts']}\noutputs {meta['outputs']}\ninputs {meta['inputs']}\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/work/chains/scale-5m"), help="where the chain goes")
    parser.add_argument("--txs", type=int, default=5_000_000, help="minimum number of transactions")
    parser.add_argument("--min-height", type=int, default=500, help="at least this many blocks (past MWEB's 432)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    params = {"txs": args.txs, "min_height": args.min_height, "seed": args.seed}
    ready = args.out / "READY"
    if ready.exists():
        meta = json.loads((args.out / "chain.json").read_text())
        if meta.get("params") == params and meta.get("generator") == GENERATOR_VERSION:
            print(f"reusing the chain in {args.out}: {meta['txs']:,} txs, {meta['height'] + 1:,} blocks")
            return
    print(f"building a chain of {args.txs:,} transactions in {args.out}", flush=True)
    meta = build(args.out, params)
    summary = {k: v for k, v in meta.items() if k != "tx_counts"}
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
