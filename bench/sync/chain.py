"""Builds a regtest Litecoin chain of ~100,000 transactions for the sync benchmark.

Building it through the wallet would take hours, so the transactions are made here:
every one spends an anyone-can-spend P2SH output (redeem script
`OP_2DROP <n> OP_DROP OP_1`, which needs no signature) and pays 1-3 outputs to a pool of realistic scripts (P2PKH,
P2WPKH, P2SH with random hashes, reused with a skew so some addresses are hot), plus a
change output to another anyone-can-spend script that the next transaction spends.
Transactions go to the daemon's mempool in batches (`sendrawtransaction`) and the daemon
mines them (`generatetodescriptor`), so its own block assembler adds the MWEB HogEx
transaction that every block past the MWEB activation height (432 on regtest) needs.

The chain runs as "lanes": each lane is a chain of transactions, one per block at most,
so no transaction spends an unconfirmed output and the mempool limits never matter.

The first MWEB block must carry a peg-in (its HogEx transaction needs an input), and
only the wallet can make MWEB outputs, so the daemon runs with a wallet that owns the
first coinbase: it pegs in at height 432 and then every MWEB_EVERY blocks, and pays a
plain address from its MWEB coins too, so the chain holds peg-ins and HogEx outputs.
"""

import argparse
import hashlib
import json
import random
import shutil
import struct
import sys
import time
from pathlib import Path

from daemon import Daemon

COIN = 100_000_000
OP_0, OP_1, OP_2DROP, OP_DROP = 0x00, 0x51, 0x6D, 0x75
COINBASE_REDEEM_N = 0  # redeem-script number of the anyone-can-spend coinbase output
FUNDING_BLOCKS = 200  # block 1 pays the wallet; coinbases 2..101 are mature at 200
FUNDING_COINBASES = range(2, 102)  # 50 LTC each: heights below 150 get the full subsidy
MWEB_HEIGHT = 432  # regtest activation; that block must hold a peg-in
MWEB_EVERY = 25
FEE_RATE = 10  # sat per byte; well above litecoind's 1 sat/byte relay minimum
MIN_CHANGE = 1_000_000
MAX_LANES = 2000  # the funding transaction must stay below the standard size limit
GENERATOR_VERSION = 2  # bump when the chain's shape changes, so cached chains are rebuilt


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def push_data(data: bytes) -> bytes:
    if len(data) < 0x4C:
        return bytes([len(data)]) + data
    return b"\x4c" + bytes([len(data)]) + data


def push_num(n: int) -> bytes:
    """Minimal push of a non-negative script number (standardness wants it minimal)."""
    if n == 0:
        return bytes([OP_0])
    if n <= 16:
        return bytes([OP_1 + n - 1])
    body = n.to_bytes((n.bit_length() + 7) // 8, "little")
    if body[-1] & 0x80:
        body += b"\x00"
    return push_data(body)


def redeem_script(n: int) -> bytes:
    """`OP_2DROP <n> OP_DROP OP_1`: anyone can spend it, each n gives a distinct address.

    OP_2DROP throws away the two pushes that `spend_script_sig` puts in place of a
    signature and a public key, which give inputs the size of real P2PKH-style ones.
    """
    return bytes([OP_2DROP]) + push_num(n) + bytes([OP_DROP, OP_1])


def p2sh(redeem: bytes) -> bytes:
    return b"\xa9\x14" + hash160(redeem) + b"\x87"


def serialize_tx(inputs: list, outputs: list) -> bytes:
    """Version 2, no witness. inputs: (txid hex, vout, scriptSig); outputs: (sat, script)."""
    out = [struct.pack("<i", 2), varint(len(inputs))]
    for txid, vout, script_sig in inputs:
        out += [bytes.fromhex(txid)[::-1], struct.pack("<I", vout), varint(len(script_sig)), script_sig]
        out.append(struct.pack("<I", 0xFFFFFFFE))
    out.append(varint(len(outputs)))
    for value, script in outputs:
        out += [struct.pack("<q", value), varint(len(script)), script]
    out.append(struct.pack("<I", 0))
    return b"".join(out)


def txid_of(raw: bytes) -> str:
    return sha256d(raw)[::-1].hex()


def spend_script_sig(n: int, rng: random.Random) -> bytes:
    return push_data(rng.randbytes(72)) + push_data(rng.randbytes(33)) + push_data(redeem_script(n))


class ChainBuilder:
    """Holds the script pool and the lanes' unspent outputs while the chain grows."""

    def __init__(self, daemon: Daemon, rng: random.Random, pool_size: int, change_pool: int):
        self.rpc = daemon.rpc
        self.rng = rng
        self.change_pool = change_pool
        self.pool = [self._random_script() for _ in range(pool_size)]
        self.miners = [b"\x76\xa9\x14" + rng.randbytes(20) + b"\x88\xac" for _ in range(8)]
        self.lanes = []  # [txid, vout, value, redeem n]
        self.tx_count = 1  # the genesis coinbase
        self.blocks = 0
        self.chain_bytes = 285  # the genesis block
        self.rpc.call("createwallet", "bench")
        self.wallet_script = self._wallet_script("bech32")

    def _random_script(self) -> bytes:
        kind = self.rng.random()
        digest = self.rng.randbytes(20)
        if kind < 0.45:
            return b"\x76\xa9\x14" + digest + b"\x88\xac"  # P2PKH
        if kind < 0.85:
            return b"\x00\x14" + digest  # P2WPKH
        return b"\xa9\x14" + digest + b"\x87"  # P2SH

    def _wallet_script(self, address_type: str) -> bytes:
        address = self.rpc.call("getnewaddress", "", address_type)
        return bytes.fromhex(self.rpc.call("getaddressinfo", address)["scriptPubKey"])

    def _pool_script(self) -> bytes:
        # Skewed choice: low indices are "hot" addresses reused many times, like exchanges.
        return self.pool[int(len(self.pool) * self.rng.random() ** 2)]

    def mine(self, count: int, script: bytes) -> None:
        hashes = self.rpc.call("generatetodescriptor", count, f"raw({script.hex()})")
        headers = self.rpc.batch("getblock", [(h, 1) for h in hashes])
        self.tx_count += sum(h["nTx"] for h in headers)
        self.chain_bytes += sum(h["size"] for h in headers)
        self.blocks += count

    def fund(self, lanes: int) -> None:
        """Mines the funding blocks and splits 100 mature coinbases into one output per lane."""
        self.mine(1, self.wallet_script)
        self.mine(FUNDING_BLOCKS - 1, p2sh(redeem_script(COINBASE_REDEEM_N)))
        hashes = self.rpc.batch("getblockhash", [(h,) for h in FUNDING_COINBASES])
        blocks = self.rpc.batch("getblock", [(h, 1) for h in hashes])
        coinbases = [b["tx"][0] for b in blocks]
        outs = self.rpc.batch("gettxout", [(txid, 0) for txid in coinbases])
        total = sum(round(o["value"] * COIN) for o in outs)
        inputs = [(txid, 0, spend_script_sig(COINBASE_REDEEM_N, self.rng)) for txid in coinbases]
        change_ns = [self.rng.randint(1, self.change_pool) for _ in range(lanes)]
        scripts = [p2sh(redeem_script(n)) for n in change_ns]
        size = len(serialize_tx(inputs, [(0, s) for s in scripts]))
        each = (total - FEE_RATE * size) // lanes
        raw = serialize_tx(inputs, [(each, s) for s in scripts])
        txid = self.rpc.call("sendrawtransaction", raw.hex())
        self.lanes = [[txid, i, each, n] for i, n in enumerate(change_ns)]
        self.mine(1, self.rng.choice(self.miners))

    def lane_tx(self, lane: list) -> str:
        """One payment from a lane: spends its last change, pays 1-3 pool scripts, new change."""
        txid, vout, value, n = lane
        count = self.rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
        # Log-uniform amounts from 0.0001 to 0.005 LTC, all above the dust threshold.
        payments = [int(10_000 * 50 ** self.rng.random()) for _ in range(count)]
        new_n = self.rng.randint(1, self.change_pool)
        change_script = p2sh(redeem_script(new_n))
        outputs = [(v, self._pool_script()) for v in payments]
        change_at = self.rng.randint(0, count)
        outputs.insert(change_at, (0, change_script))
        inputs = [(txid, vout, spend_script_sig(n, self.rng))]
        fee = FEE_RATE * len(serialize_tx(inputs, outputs))
        change = value - sum(payments) - fee
        if change < MIN_CHANGE:
            raise SystemExit(f"a lane ran out of funds at {self.tx_count} txs: use more --lanes")
        outputs[change_at] = (change, change_script)
        raw = serialize_tx(inputs, outputs)
        lane[:] = [txid_of(raw), change_at, change, new_n]
        return raw.hex()

    def mweb_payments(self) -> None:
        """Wallet peg-ins (and a payment out of the MWEB) for the block about to be mined."""
        height = self.blocks + 1
        if height == MWEB_HEIGHT:
            self.rpc.call("sendtoaddress", self.rpc.call("getnewaddress", "", "mweb"), 1)
        elif height > MWEB_HEIGHT and height % MWEB_EVERY == 0:
            self.rpc.call("sendtoaddress", self.rpc.call("getnewaddress", "", "mweb"), 0.1)
            self.rpc.call("sendtoaddress", self.rpc.call("getnewaddress", "", "bech32"), 0.05)

    def next_block(self, lane_txs: bool) -> None:
        """Mines one block holding lane transactions (if asked) and any MWEB payments."""
        if lane_txs:
            active = self.rng.sample(self.lanes, self.rng.randint(len(self.lanes) // 2, len(self.lanes)))
            raws = [self.lane_tx(lane) for lane in active]
            self.rpc.batch("sendrawtransaction", [(raw,) for raw in raws])
        self.mweb_payments()
        self.mine(1, self.rng.choice(self.miners))
        left = self.rpc.call("getmempoolinfo")["size"]
        if left:
            raise SystemExit(f"{left} transactions were left out of block {self.blocks}")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(out: Path, *, txs: int, lanes: int, min_height: int, seed: int, pool: int) -> dict:
    """Builds the chain in a scratch directory and moves it to `out` when complete."""
    if not 1 <= lanes <= MAX_LANES:
        raise SystemExit(f"--lanes must be between 1 and {MAX_LANES}")
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.monotonic()
    daemon = Daemon(scratch / "datadir", wallet=True)
    daemon.start()
    try:
        builder = ChainBuilder(daemon, random.Random(seed), pool, change_pool=max(lanes * 20, 1000))
        builder.fund(lanes)
        next_report = 10_000
        while builder.tx_count < txs or builder.blocks < min_height:
            builder.next_block(lane_txs=builder.tx_count < txs)
            if builder.tx_count >= next_report:
                rate = builder.tx_count / (time.monotonic() - started)
                print(f"  {builder.tx_count:>7} txs, height {builder.blocks}, {rate:,.0f} txs/s", flush=True)
                next_report += 10_000
        info = daemon.rpc.call("getblockchaininfo")
        chain_txs = daemon.rpc.call("getchaintxstats", 1)["txcount"]
        if chain_txs != builder.tx_count or info["blocks"] != builder.blocks:
            raise SystemExit(f"daemon has {chain_txs} txs at {info['blocks']}, expected {builder.tx_count}")
        mweb = info["softforks"].get("mweb", {})
        daemon.stop()
    finally:
        daemon.kill()
    meta = {
        "height": info["blocks"],
        "txs": chain_txs,
        "tip": info["bestblockhash"],
        "chain_mb": round(builder.chain_bytes / 1e6, 1),
        "datadir_mb": round(dir_size(scratch / "datadir") / 1e6, 1),
        "mweb_active": bool(mweb.get("active")),
        "build_seconds": round(time.monotonic() - started, 1),
        "params": {"txs": txs, "lanes": lanes, "min_height": min_height, "seed": seed, "pool": pool},
        "generator": GENERATOR_VERSION,
    }
    (scratch / "chain.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory to hold the chain (replaced)")
    parser.add_argument("--txs", type=int, default=100_000, help="minimum number of transactions in the chain")
    parser.add_argument("--lanes", type=int, help="most transactions per block (default: txs/400, 250 to 2000)")
    parser.add_argument("--min-height", type=int, default=500, help="mine (empty) blocks up to this height")
    parser.add_argument("--pool", type=int, default=20_000, help="number of distinct payee scripts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep a chain already built with these parameters")
    args = parser.parse_args()
    # Enough lanes that no lane runs dry: each lane pays ~0.002 LTC per tx from 2.5+ LTC.
    lanes = args.lanes or min(max(args.txs // 400, 250), MAX_LANES)
    params = {"txs": args.txs, "lanes": lanes, "min_height": args.min_height, "seed": args.seed, "pool": args.pool}
    saved = args.out / "chain.json"
    meta = json.loads(saved.read_text()) if saved.exists() else {}
    if args.reuse and meta.get("params") == params and meta.get("generator") == GENERATOR_VERSION:
        print(f"reusing the chain in {args.out}")
        return
    print(f"building a chain of {args.txs} transactions in {args.out}", flush=True)
    meta = build(args.out, **params)
    json.dump(meta, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
