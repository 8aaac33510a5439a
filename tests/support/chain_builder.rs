//! Builds a regtest chain varied enough to exercise an index: all three address kinds,
//! fan-outs, reused addresses, one address with a long history, spends of old outputs,
//! inputs of every kind in one transaction, consolidations, OP_RETURN (and OP_0 OP_RETURN)
//! outputs, transactions made by the daemon's wallet (which picks its own coins and change
//! positions) and, past MWEB activation, an MWEB peg-in and peg-out.
//!
//! Most transactions are signed by the harness itself (`signer`): the wallet is too slow
//! for thousands. The builder keeps its own ledger of what it created, an account of the
//! chain independent of `Truth`. Kinds and counts of transactions are fixed by the spec.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex;
use bitcoin::opcodes::OP_0;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder as ScriptBuilder, PushBytesBuf};
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use serde_json::{Value, json};

use super::litecoind::{Litecoind, MAIN_WALLET, MWEB_ACTIVATION};
use super::signer::{self, Key, Spendable};
use super::truth::{Utxo, to_sats};

/// Blocks mined before any transaction: coinbases mature after 100 blocks.
const FUNDING_BLOCKS: u32 = 110;
const COINBASE_MATURITY: u32 = 100;
/// Where the MWEB coins go back to canonical outputs (the peg-in needs a confirmation).
const PEGOUT_HEIGHT: u32 = MWEB_ACTIVATION + 4;
/// Peg-outs mature after 6 blocks; only then does the wallet list them.
const PEGOUT_MATURITY: u32 = 6;
/// Relative number of transactions per block, cycled: some empty blocks, mostly a few,
/// now and then dozens.
const BLOCK_WEIGHTS: [u32; 16] = [3, 1, 6, 0, 2, 10, 4, 1, 40, 5, 2, 7, 1, 0, 14, 3];
/// The daemon refuses chains of more than 25 unconfirmed transactions; stay below.
const MAX_UNCONFIRMED_CHAIN: u32 = 20;
/// Smallest payment or change output (well above any dust limit).
const MIN_OUTPUT: u64 = 100_000;
const COIN: u64 = 100_000_000;
/// What the wallet receives from the harness before its first transaction.
const WALLET_FUNDING_OUTPUTS: usize = 10;
const WALLET_FUNDING_EACH: u64 = 20 * COIN;
/// Reused addresses per kind, for the harness and for the wallet each.
const REUSED_PER_KIND: usize = 2;
/// The most inputs a consolidation takes.
const MAX_CONSOLIDATED: usize = 50;

/// What chain to build.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// Minimum tip height.
    pub blocks: u32,
    /// Non-coinbase transactions the builder submits, all mined.
    pub transactions: u32,
    /// How many of them touch the heavy address (about half receive, half spend).
    pub heavy_transactions: u32,
    /// How many of them the daemon's wallet makes (MWEB ones included).
    pub wallet_transactions: u32,
    /// Pass MWEB activation: a peg-in in block 432 and a peg-out of every MWEB coin four
    /// blocks later. Without it the chain must stay below 432 (see `Litecoind::mweb_pegin`).
    pub mweb: bool,
}

impl Default for ChainSpec {
    fn default() -> ChainSpec {
        ChainSpec {
            blocks: 600,
            transactions: 2000,
            heavy_transactions: 220,
            wallet_transactions: 40,
            mweb: true,
        }
    }
}

impl ChainSpec {
    /// A quick chain for tests that need variety but not volume.
    pub fn small() -> ChainSpec {
        ChainSpec {
            blocks: 150,
            transactions: 150,
            heavy_transactions: 20,
            wallet_transactions: 12,
            mweb: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    /// P2PKH.
    Legacy,
    /// P2SH-P2WPKH.
    P2shSegwit,
    /// P2WPKH.
    Bech32,
}

impl AddressKind {
    pub const ALL: [AddressKind; 3] = [
        AddressKind::Legacy,
        AddressKind::P2shSegwit,
        AddressKind::Bech32,
    ];

    /// The `address_type` argument of `getnewaddress`.
    pub fn rpc_name(self) -> &'static str {
        match self {
            AddressKind::Legacy => "legacy",
            AddressKind::P2shSegwit => "p2sh-segwit",
            AddressKind::Bech32 => "bech32",
        }
    }
}

/// An address the builder paid.
#[derive(Clone, Debug)]
pub struct ChainAddress {
    pub address: String,
    /// The scriptPubKey, hex.
    pub script: String,
    pub kind: AddressKind,
    /// The daemon wallet owning it, or `None` for a key the harness holds.
    pub wallet: Option<&'static str>,
}

/// The builder's own account of one harness-held script.
#[derive(Clone, Debug, Default)]
pub struct LedgerScript {
    /// (txid, height) of every transaction touching the script, sorted by height then
    /// txid (the builder cannot know positions inside a block).
    pub history: Vec<(String, u32)>,
    /// Unspent outputs sorted by height, txid, vout.
    pub utxos: Vec<Utxo>,
    /// Sum of every output ever paid to the script.
    pub received: u64,
}

/// The MWEB round trip.
#[derive(Clone, Debug)]
pub struct MwebInfo {
    /// The canonical transaction carrying the peg-in (its output is a `witness_mweb_pegin`).
    pub pegin_txid: String,
    pub pegin_height: u32,
    /// The wallet address the peg-out paid; the payment is an output of the block's HogEx.
    pub pegout_address: String,
    pub pegout_height: u32,
}

/// What was built.
#[derive(Clone, Debug)]
pub struct ChainInfo {
    pub tip: u32,
    /// Receives every coinbase (a harness key).
    pub miner: String,
    /// The harness address with at least `heavy_transactions` transactions.
    pub heavy: String,
    /// Every address the builder paid (harness keys and wallet addresses), each once.
    pub addresses: Vec<ChainAddress>,
    /// Addresses paid over and over.
    pub reused: Vec<String>,
    /// By script hex, for every harness key: what the builder itself expects.
    pub ledger: BTreeMap<String, LedgerScript>,
    /// Non-coinbase transactions submitted, all mined.
    pub transactions: u32,
    /// Of which made by the wallet.
    pub wallet_transactions: u32,
    pub op_return_txids: Vec<String>,
    pub mweb: Option<MwebInfo>,
    pub elapsed: Duration,
}

impl ChainInfo {
    pub fn addresses_of_kind(&self, kind: AddressKind) -> impl Iterator<Item = &ChainAddress> {
        self.addresses.iter().filter(move |a| a.kind == kind)
    }

    pub fn wallet_addresses(&self) -> impl Iterator<Item = &ChainAddress> {
        self.addresses.iter().filter(|a| a.wallet.is_some())
    }

    pub fn address(&self, address: &str) -> Option<&ChainAddress> {
        self.addresses.iter().find(|a| a.address == address)
    }
}

/// One transaction the builder makes.
#[derive(Clone, Copy, Debug)]
enum Op {
    HeavyReceive,
    /// A spend from the heavy address with change back to it.
    HeavySpend,
    SendFresh(AddressKind),
    SendReused,
    /// This many outputs, alternately new keys and reused ones.
    FanOut(usize),
    /// Spends the oldest confirmed output that is neither the miner's nor the heavy
    /// address's.
    SpendOld,
    /// One input of each address kind.
    MixedInputs,
    /// An OP_RETURN output: alone with change, beside a payment, or as OP_0 OP_RETURN.
    NullData,
    /// Spends every output of one reused address at once.
    Consolidate,
    Wallet(WalletOp),
}

/// A transaction the daemon's wallet makes (it chooses inputs and change).
#[derive(Clone, Copy, Debug)]
enum WalletOp {
    SendFresh,
    SendReused,
    /// `sendmany` to new and reused wallet addresses and one harness key.
    SendMany,
    /// `createrawtransaction` with an OP_RETURN output, funded by the wallet.
    OpReturn,
    /// Spends the wallet's oldest output explicitly, to a harness key.
    SpendOld,
    PayHarness,
}

/// The repeating mix of ordinary harness transactions.
const CYCLE: [Op; 10] = [
    Op::SendFresh(AddressKind::Legacy),
    Op::SendFresh(AddressKind::P2shSegwit),
    Op::SendFresh(AddressKind::Bech32),
    Op::SendReused,
    Op::FanOut(4),
    Op::SpendOld,
    Op::MixedInputs,
    Op::NullData,
    Op::FanOut(8),
    Op::Consolidate,
];

const WALLET_CYCLE: [WalletOp; 6] = [
    WalletOp::SendFresh,
    WalletOp::SendReused,
    WalletOp::SendMany,
    WalletOp::OpReturn,
    WalletOp::SpendOld,
    WalletOp::PayHarness,
];

/// Builds the chain on a freshly started node (empty chain, empty wallet).
pub fn build_mixed_chain(node: &Litecoind, spec: &ChainSpec) -> ChainInfo {
    let started = Instant::now();
    let mweb_txs = if spec.mweb { 2 } else { 0 };
    assert!(
        spec.wallet_transactions >= mweb_txs
            && spec.heavy_transactions + spec.wallet_transactions < spec.transactions,
        "inconsistent spec {spec:?}"
    );
    assert!(
        spec.blocks > FUNDING_BLOCKS + 1,
        "{} blocks is too short a chain",
        spec.blocks
    );
    if spec.mweb {
        assert!(
            spec.blocks >= PEGOUT_HEIGHT + PEGOUT_MATURITY,
            "an MWEB round trip needs at least {} blocks",
            PEGOUT_HEIGHT + PEGOUT_MATURITY
        );
    } else {
        assert!(
            spec.blocks < MWEB_ACTIVATION,
            "litecoind cannot mine block {MWEB_ACTIVATION} without an MWEB peg-in"
        );
    }
    assert_eq!(node.height(), 0, "the chain builder needs a fresh node");

    let mut b = Builder::new(node, spec.mweb);
    b.mine(FUNDING_BLOCKS);
    b.fund_wallet();
    b.mine(1);
    // Everything else: the wallet funding and the MWEB transactions are made apart.
    let ops = plan_ops(
        (spec.transactions - 1 - mweb_txs) as usize,
        spec.heavy_transactions as usize,
        (spec.wallet_transactions - mweb_txs) as usize,
    );
    let op_blocks = spec.blocks - FUNDING_BLOCKS - 1;
    let mut next = 0;
    for count in ops_per_block(ops.len(), op_blocks) {
        if b.pegin.is_some() && b.pegout.is_none() && b.tip + 1 >= PEGOUT_HEIGHT {
            b.mweb_pegout_all();
        }
        for op in &ops[next..next + count] {
            b.run(*op);
        }
        next += count;
        b.mine(1);
    }
    if b.tip < spec.blocks {
        b.mine(spec.blocks - b.tip);
    }
    b.finish(started)
}

/// The order of transactions: heavy and wallet ones evenly spread (the first heavy ones
/// receive, so there is something to spend), the rest cycling through `CYCLE`.
fn plan_ops(total: usize, heavy: usize, wallet: usize) -> Vec<Op> {
    let mut ops: Vec<Option<Op>> = vec![None; total];
    for j in 0..heavy {
        let op = if j < 10 || j % 2 == 0 {
            Op::HeavyReceive
        } else {
            Op::HeavySpend
        };
        ops[j * total / heavy] = Some(op);
    }
    for j in 0..wallet {
        let mut slot = (2 * j + 1) * total / (2 * wallet);
        while ops[slot].is_some() {
            slot = (slot + 1) % total;
        }
        ops[slot] = Some(Op::Wallet(WALLET_CYCLE[j % WALLET_CYCLE.len()]));
    }
    let mut ordinary = 0;
    ops.into_iter()
        .map(|op| {
            op.unwrap_or_else(|| {
                ordinary += 1;
                CYCLE[(ordinary - 1) % CYCLE.len()]
            })
        })
        .collect()
}

/// Splits `ops` transactions over `blocks` blocks in proportion to `BLOCK_WEIGHTS`.
fn ops_per_block(ops: usize, blocks: u32) -> Vec<usize> {
    let weights: Vec<usize> = (0..blocks as usize)
        .map(|i| BLOCK_WEIGHTS[i % BLOCK_WEIGHTS.len()] as usize)
        .collect();
    let total: usize = weights.iter().sum();
    let mut cumulative = 0;
    weights
        .iter()
        .map(|w| {
            let before = ops * cumulative / total;
            cumulative += w;
            ops * cumulative / total - before
        })
        .collect()
}

/// Where the change of a harness transaction goes.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// A new key, or every fifth transaction back to the first input's key.
    Usual,
    To(usize),
}

/// An output in the builder's ledger.
#[derive(Clone, Debug)]
struct Coin {
    spend: Spendable,
    /// `None` while in the mempool.
    height: Option<u32>,
    coinbase: bool,
    /// Unconfirmed transactions up to and including the one creating it.
    chain: u32,
}

struct Builder<'a> {
    node: &'a Litecoind,
    /// Whether the chain may pass MWEB activation.
    with_mweb: bool,
    secp: Secp256k1<All>,
    keys: Vec<Key>,
    key_of_script: HashMap<String, usize>,
    miner: usize,
    miner_descriptor: String,
    heavy: usize,
    reused: Vec<usize>,
    /// Unspent harness outputs by creation order.
    coins: BTreeMap<u64, Coin>,
    created: u64,
    tip: u32,
    /// Per harness script: txids touching it and the total received.
    touched: HashMap<usize, Vec<String>>,
    received: HashMap<usize, u64>,
    /// Heights of mined transactions that touched harness scripts; `None` in the mempool.
    tx_height: HashMap<String, Option<u32>>,
    wallet_addresses: Vec<ChainAddress>,
    wallet_reused: Vec<String>,
    transactions: u32,
    wallet_transactions: u32,
    op_return_txids: Vec<String>,
    /// (txid, height) of the MWEB peg-in and (address, height) of the peg-out.
    pegin: Option<(String, u32)>,
    pegout: Option<(String, u32)>,
    /// Counters that pick amounts, address kinds and reused addresses in turn.
    turn: usize,
}

impl<'a> Builder<'a> {
    fn new(node: &'a Litecoind, with_mweb: bool) -> Builder<'a> {
        let mut b = Builder {
            node,
            with_mweb,
            secp: Secp256k1::new(),
            keys: Vec::new(),
            key_of_script: HashMap::new(),
            miner: 0,
            miner_descriptor: String::new(),
            heavy: 0,
            reused: Vec::new(),
            coins: BTreeMap::new(),
            created: 0,
            tip: 0,
            touched: HashMap::new(),
            received: HashMap::new(),
            tx_height: HashMap::new(),
            wallet_addresses: Vec::new(),
            wallet_reused: Vec::new(),
            transactions: 0,
            wallet_transactions: 0,
            op_return_txids: Vec::new(),
            pegin: None,
            pegout: None,
            turn: 0,
        };
        b.miner = b.new_key(AddressKind::Bech32);
        let descriptor = format!("raw({})", b.keys[b.miner].script_hex());
        let info = node.call("getdescriptorinfo", json!([descriptor]));
        b.miner_descriptor = format!("{descriptor}#{}", as_str(&info["checksum"]));
        b.heavy = b.new_key(AddressKind::Legacy);
        for kind in AddressKind::ALL {
            for _ in 0..REUSED_PER_KIND {
                let key = b.new_key(kind);
                b.reused.push(key);
                let address = b.new_wallet_address(kind);
                b.wallet_reused.push(address);
            }
        }
        b
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::HeavyReceive => {
                let heavy = self.keys[self.heavy].script.clone();
                self.pay(vec![], vec![txout(&heavy, COIN)], Change::Usual);
            }
            Op::HeavySpend => self.heavy_spend(),
            Op::SendFresh(kind) => {
                let to = self.new_key(kind);
                let amount = self.next_amount();
                let output = txout(&self.keys[to].script, amount);
                self.pay(vec![], vec![output], Change::Usual);
            }
            Op::SendReused => {
                let to = self.next_reused();
                let amount = self.next_amount();
                let output = txout(&self.keys[to].script, amount);
                self.pay(vec![], vec![output], Change::Usual);
            }
            Op::FanOut(n) => self.fan_out(n),
            Op::SpendOld => self.spend_old(),
            Op::MixedInputs => self.mixed_inputs(),
            Op::NullData => self.op_return(),
            Op::Consolidate => self.consolidate(),
            Op::Wallet(op) => self.wallet_op(op),
        }
    }

    fn heavy_spend(&mut self) {
        let heavy = self.heavy;
        let coin = self
            .take_best(|c| c.spend.key == heavy, |c| c.spend.value)
            .expect("the heavy address received before it spends");
        let kind = self.next_kind();
        let to = self.new_key(kind);
        let output = txout(&self.keys[to].script, COIN / 10);
        self.pay(vec![coin], vec![output], Change::To(heavy));
    }

    fn fan_out(&mut self, n: usize) {
        let outputs = (0..n)
            .map(|i| {
                let key = if i % 2 == 0 {
                    let kind = self.next_kind();
                    self.new_key(kind)
                } else {
                    self.next_reused()
                };
                let amount = self.next_amount() / 4;
                txout(&self.keys[key].script, amount)
            })
            .collect();
        self.pay(vec![], outputs, Change::Usual);
    }

    fn spend_old(&mut self) {
        let (heavy, miner) = (self.heavy, self.miner);
        let coin = self
            .take_best(
                |c| c.height.is_some() && c.spend.key != heavy && c.spend.key != miner,
                |c| std::cmp::Reverse(c.height),
            )
            .or_else(|| self.take_best(|c| c.spend.key != heavy, |c| c.spend.value))
            .expect("the harness has outputs");
        let kind = self.next_kind();
        let to = self.new_key(kind);
        let value = coin.spend.value.saturating_sub(fee(1, 1)).max(MIN_OUTPUT);
        let output = txout(&self.keys[to].script, value);
        self.pay(vec![coin], vec![output], Change::Usual);
    }

    fn mixed_inputs(&mut self) {
        let (heavy, miner) = (self.heavy, self.miner);
        let mut inputs = Vec::new();
        for kind in AddressKind::ALL {
            let kind_of = |c: &Coin| self.keys[c.spend.key].kind;
            let oldest = self
                .coins
                .iter()
                .filter(|(_, c)| {
                    c.height.is_some()
                        && c.spend.key != heavy
                        && c.spend.key != miner
                        && kind_of(c) == kind
                })
                .map(|(seq, _)| *seq)
                .next();
            if let Some(seq) = oldest {
                inputs.extend(self.coins.remove(&seq));
            }
        }
        let to = self.next_reused();
        let amount = self.next_amount();
        let output = txout(&self.keys[to].script, amount);
        self.pay(inputs, vec![output], Change::Usual);
    }

    fn op_return(&mut self) {
        let n = self.op_return_txids.len();
        let data = format!("ferrumx regtest {n} {}", "x".repeat(n % 40)).into_bytes();
        let data = PushBytesBuf::try_from(data).expect("short data");
        let mut outputs = Vec::new();
        match n % 4 {
            // OP_0 OP_RETURN: also never indexed (non-standard; regtest accepts it).
            3 => {
                let script = ScriptBuilder::new()
                    .push_opcode(OP_0)
                    .push_opcode(OP_RETURN)
                    .push_slice(&data)
                    .into_script();
                outputs.push(txout(&script, 0));
            }
            _ => outputs.push(txout(&ScriptBuf::new_op_return(&data), 0)),
        }
        if n % 2 == 1 {
            let to = self.next_reused();
            let amount = self.next_amount();
            outputs.push(txout(&self.keys[to].script, amount));
        }
        let txid = self.pay(vec![], outputs, Change::Usual);
        self.op_return_txids.push(txid);
    }

    fn consolidate(&mut self) {
        let reused = self.reused.clone();
        let count = |b: &Builder, key: usize, confirmed: bool| {
            b.coins
                .values()
                .filter(|c| c.spend.key == key && (c.height.is_some() || !confirmed))
                .count()
        };
        let confirmed = reused.iter().any(|&k| count(self, k, true) > 0);
        let key = *reused
            .iter()
            .max_by_key(|&&k| count(self, k, confirmed))
            .expect("reused keys exist");
        let seqs: Vec<u64> = self
            .coins
            .iter()
            .filter(|(_, c)| c.spend.key == key && (c.height.is_some() || !confirmed))
            .map(|(seq, _)| *seq)
            .take(MAX_CONSOLIDATED)
            .collect();
        let inputs: Vec<Coin> = seqs.iter().filter_map(|s| self.coins.remove(s)).collect();
        let total: u64 = inputs.iter().map(|c| c.spend.value).sum();
        let kind = self.next_kind();
        let to = self.new_key(kind);
        let value = total.saturating_sub(fee(inputs.len(), 1)).max(MIN_OUTPUT);
        let output = txout(&self.keys[to].script, value);
        self.pay(inputs, vec![output], Change::Usual);
    }

    /// Pays `outputs` from `inputs`, adding the largest spendable outputs if they do not
    /// cover the payment and fee; change (if worth an output) goes where `change` says,
    /// else to the fee.
    fn pay(&mut self, mut inputs: Vec<Coin>, mut outputs: Vec<TxOut>, change: Change) -> String {
        let paid: u64 = outputs.iter().map(|o| o.value.to_sat()).sum();
        let heavy = self.heavy;
        loop {
            let have: u64 = inputs.iter().map(|c| c.spend.value).sum();
            if have >= paid + fee(inputs.len(), outputs.len() + 1) + MIN_OUTPUT {
                break;
            }
            match self.take_best(|c| c.spend.key != heavy, |c| c.spend.value) {
                Some(coin) => inputs.push(coin),
                // Everything is immature or deep in unconfirmed chains: a block fixes both.
                None => self.mine(1),
            }
        }
        let have: u64 = inputs.iter().map(|c| c.spend.value).sum();
        let rest = have - paid - fee(inputs.len(), outputs.len() + 1);
        if rest >= MIN_OUTPUT {
            let key = match change {
                Change::To(key) => key,
                // Like an old wallet now and then: change back to the spender.
                Change::Usual if self.transactions.is_multiple_of(5) => inputs[0].spend.key,
                Change::Usual => {
                    let kind = self.next_kind();
                    self.new_key(kind)
                }
            };
            let position = self.transactions as usize % (outputs.len() + 1);
            outputs.insert(position, txout(&self.keys[key].script, rest));
        }
        let spends: Vec<Spendable> = inputs.iter().map(|c| c.spend.clone()).collect();
        let tx = signer::sign(&self.secp, &self.keys, &spends, outputs);
        let txid = as_string(
            &self
                .node
                .call("sendrawtransaction", json!([signer::to_hex(&tx)])),
        );
        assert_eq!(txid, tx.compute_txid().to_string());
        let chain = 1 + inputs
            .iter()
            .filter(|c| c.height.is_none())
            .map(|c| c.chain)
            .max()
            .unwrap_or(0);
        for coin in &inputs {
            self.touch(coin.spend.key, &txid);
        }
        self.record_outputs(&tx, chain);
        self.transactions += 1;
        txid
    }

    /// Adds the outputs of `tx` that pay harness keys to the ledger.
    fn record_outputs(&mut self, tx: &Transaction, chain: u32) {
        let txid = tx.compute_txid();
        for (vout, output) in tx.output.iter().enumerate() {
            let script = output.script_pubkey.as_bytes().to_lower_hex_string();
            if let Some(&key) = self.key_of_script.get(&script) {
                let outpoint = OutPoint::new(txid, vout as u32);
                self.add_coin(key, outpoint, output.value.to_sat(), None, false, chain);
            }
        }
    }

    fn add_coin(
        &mut self,
        key: usize,
        outpoint: OutPoint,
        value: u64,
        height: Option<u32>,
        coinbase: bool,
        chain: u32,
    ) {
        let txid = outpoint.txid.to_string();
        if height.is_some() {
            self.tx_height.insert(txid.clone(), height);
        }
        self.touch(key, &txid);
        *self.received.entry(key).or_default() += value;
        self.created += 1;
        let spend = Spendable {
            outpoint,
            value,
            key,
        };
        let coin = Coin {
            spend,
            height,
            coinbase,
            chain,
        };
        self.coins.insert(self.created, coin);
    }

    fn touch(&mut self, key: usize, txid: &str) {
        let txids = self.touched.entry(key).or_default();
        if txids.last().map(String::as_str) != Some(txid) {
            txids.push(txid.to_string());
        }
        self.tx_height.entry(txid.to_string()).or_insert(None);
    }

    /// Removes and returns the spendable coin matching `filter` with the greatest `rank`.
    fn take_best<R: Ord>(
        &mut self,
        filter: impl Fn(&Coin) -> bool,
        rank: impl Fn(&Coin) -> R,
    ) -> Option<Coin> {
        let seq = self
            .coins
            .iter()
            .filter(|(_, c)| self.is_spendable(c) && filter(c))
            .max_by_key(|(seq, c)| (rank(c), std::cmp::Reverse(**seq)))
            .map(|(seq, _)| *seq)?;
        self.coins.remove(&seq)
    }

    fn is_spendable(&self, coin: &Coin) -> bool {
        match coin.height {
            Some(h) => !coin.coinbase || self.tip + 1 >= h + COINBASE_MATURITY,
            None => coin.chain < MAX_UNCONFIRMED_CHAIN,
        }
    }

    /// Mines `n` blocks to the harness miner key and brings the ledger up to date. Block
    /// 432 gets the MWEB peg-in it needs.
    fn mine(&mut self, n: u32) {
        if self.tip < MWEB_ACTIVATION && self.tip + n >= MWEB_ACTIVATION {
            assert!(
                self.with_mweb,
                "litecoind cannot mine block {MWEB_ACTIVATION} without an MWEB peg-in"
            );
            let before = MWEB_ACTIVATION - 1 - self.tip;
            self.generate(before);
            self.mweb_pegin();
            self.generate(n - before);
        } else {
            self.generate(n);
        }
    }

    fn generate(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        let hashes = self
            .node
            .call("generatetodescriptor", json!([n, self.miner_descriptor]));
        let first = self.tip + 1;
        for coin in self.coins.values_mut().filter(|c| c.height.is_none()) {
            coin.height = Some(first);
            coin.chain = 0;
        }
        for height in self.tx_height.values_mut().filter(|h| h.is_none()) {
            *height = Some(first);
        }
        for hash in array(&hashes) {
            self.tip += 1;
            let block = self.node.call("getblock", json!([hash, 1]));
            let coinbase = as_string(&array(&block["tx"])[0]);
            let output = self.node.call("gettxout", json!([coinbase, 0]));
            let txid: Txid = coinbase.parse().expect("txid");
            let value = to_sats(&output["value"]);
            self.add_coin(
                self.miner,
                OutPoint::new(txid, 0),
                value,
                Some(self.tip),
                true,
                0,
            );
        }
        let mempool = self.node.call("getmempoolinfo", json!([]));
        assert_eq!(
            mempool["size"],
            json!(0),
            "a block left transactions behind"
        );
    }

    /// One harness transaction paying the wallet's reused addresses and new ones of every
    /// kind (so every wallet address the builder records has been paid).
    fn fund_wallet(&mut self) {
        let mut addresses = self.wallet_reused.clone();
        for i in addresses.len()..WALLET_FUNDING_OUTPUTS {
            addresses.push(self.new_wallet_address(AddressKind::ALL[i % AddressKind::ALL.len()]));
        }
        let outputs = addresses
            .iter()
            .map(|address| {
                let known = self.wallet_addresses.iter().find(|a| &a.address == address);
                let script = &known.expect("recorded wallet address").script;
                txout(
                    &ScriptBuf::from_bytes(hex_bytes(script)),
                    WALLET_FUNDING_EACH,
                )
            })
            .collect();
        self.pay(vec![], outputs, Change::Usual);
    }

    fn wallet_op(&mut self, op: WalletOp) {
        let txid = match op {
            WalletOp::SendFresh => {
                let kind = self.next_kind();
                let to = self.new_wallet_address(kind);
                self.wallet_send(&to)
            }
            WalletOp::SendReused => {
                let to = self.wallet_reused[self.turn % self.wallet_reused.len()].clone();
                self.wallet_send(&to)
            }
            WalletOp::SendMany => {
                let mut amounts = serde_json::Map::new();
                for i in 0..2 {
                    let to = self.new_wallet_address(AddressKind::ALL[i]);
                    amounts.insert(to, json!(coins(self.next_amount())));
                }
                let reused = self.wallet_reused[self.turn % self.wallet_reused.len()].clone();
                amounts.insert(reused, json!(coins(self.next_amount())));
                let harness = self.new_key(AddressKind::Bech32);
                amounts.insert(
                    self.keys[harness].address(),
                    json!(coins(self.next_amount())),
                );
                as_string(&self.node.call("sendmany", json!(["", amounts])))
            }
            WalletOp::OpReturn => {
                let data = format!("ferrumx wallet {}", self.turn).into_bytes();
                let to = self.wallet_reused[self.turn % self.wallet_reused.len()].clone();
                let outputs = json!([
                    {"data": data.to_lower_hex_string()},
                    {to: coins(self.next_amount())}
                ]);
                let raw = self.node.call("createrawtransaction", json!([[], outputs]));
                let txid = self.wallet_fund_sign_send(raw);
                self.op_return_txids.push(txid.clone());
                txid
            }
            WalletOp::SpendOld => {
                let unspent = self.node.call("listunspent", json!([1]));
                let oldest = array(&unspent)
                    .iter()
                    .filter(|u| u["vout"].is_u64())
                    .max_by_key(|u| u["confirmations"].as_u64())
                    .expect("the wallet has confirmed outputs")
                    .clone();
                let kind = self.next_kind();
                let to = self.new_key(kind);
                let amount = (to_sats(&oldest["amount"]) / 2).max(MIN_OUTPUT);
                let input = json!({"txid": oldest["txid"], "vout": oldest["vout"]});
                let address = self.keys[to].address();
                let outputs = json!([{ address: coins(amount) }]);
                let raw = self
                    .node
                    .call("createrawtransaction", json!([[input], outputs]));
                self.wallet_fund_sign_send(raw)
            }
            WalletOp::PayHarness => {
                let to = self.next_reused();
                let address = self.keys[to].address();
                self.wallet_send(&address)
            }
        };
        self.absorb_wallet_tx(&txid);
    }

    fn wallet_send(&mut self, address: &str) -> String {
        let amount = self.next_amount();
        as_string(
            &self
                .node
                .call("sendtoaddress", json!([address, coins(amount)])),
        )
    }

    fn wallet_fund_sign_send(&mut self, raw: Value) -> String {
        let funded = self.node.call("fundrawtransaction", json!([raw]));
        let signed = self
            .node
            .call("signrawtransactionwithwallet", json!([funded["hex"]]));
        assert_eq!(signed["complete"], json!(true), "signing failed: {signed}");
        as_string(&self.node.call("sendrawtransaction", json!([signed["hex"]])))
    }

    /// Counts a wallet transaction and adds its outputs to harness keys to the ledger.
    fn absorb_wallet_tx(&mut self, txid: &str) {
        self.transactions += 1;
        self.wallet_transactions += 1;
        let tx = self.node.call("getrawtransaction", json!([txid, true]));
        for output in array(&tx["vout"]) {
            let script = as_str(&output["scriptPubKey"]["hex"]);
            if let Some(&key) = self.key_of_script.get(script) {
                let outpoint = OutPoint::new(txid.parse().expect("txid"), as_u32(&output["n"]));
                // Wallet transactions spend confirmed outputs, so the chain is short.
                self.add_coin(key, outpoint, to_sats(&output["value"]), None, false, 1);
            }
        }
    }

    /// The peg-in block 432 needs (see `Litecoind::mweb_pegin`).
    fn mweb_pegin(&mut self) {
        let pegin_txid = self.node.mweb_pegin();
        self.transactions += 1;
        self.wallet_transactions += 1;
        self.pegin = Some((pegin_txid, self.tip + 1));
    }

    /// Pegs every MWEB coin out to a new wallet address, so later wallet transactions are
    /// all canonical: canonical coins are locked so the wallet has to use the MWEB ones,
    /// and the fee comes out of the amount so no MWEB change is left.
    fn mweb_pegout_all(&mut self) {
        let node = self.node;
        let unspent = node.call("listunspent", json!([0]));
        let (canonical, mweb): (Vec<&Value>, Vec<&Value>) =
            array(&unspent).iter().partition(|u| u["vout"].is_u64());
        let total: u64 = mweb.iter().map(|u| to_sats(&u["amount"])).sum();
        let locked: Vec<Value> = canonical
            .iter()
            .map(|u| json!({"txid": u["txid"], "vout": u["vout"]}))
            .collect();
        node.call("lockunspent", json!([false, locked]));
        let pegout_address = self.new_wallet_address(AddressKind::Legacy);
        node.call(
            "sendtoaddress",
            json!([pegout_address, coins(total), "", "", true]),
        );
        node.call("lockunspent", json!([true]));
        self.transactions += 1;
        self.wallet_transactions += 1;
        self.pegout = Some((pegout_address, self.tip + 1));
    }

    fn finish(self, started: Instant) -> ChainInfo {
        let mut ledger: BTreeMap<String, LedgerScript> = BTreeMap::new();
        let height_of =
            |txid: &str| self.tx_height[txid].unwrap_or_else(|| panic!("{txid} was never mined"));
        for (&key, txids) in &self.touched {
            let entry = ledger.entry(self.keys[key].script_hex()).or_default();
            entry.history = txids.iter().map(|t| (t.clone(), height_of(t))).collect();
            entry.history.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            entry.received = self.received.get(&key).copied().unwrap_or(0);
        }
        for coin in self.coins.values() {
            let entry = ledger
                .get_mut(&self.keys[coin.spend.key].script_hex())
                .expect("a coin's key was touched");
            entry.utxos.push(Utxo {
                txid: coin.spend.outpoint.txid.to_string(),
                vout: coin.spend.outpoint.vout,
                height: coin.height.expect("everything is mined"),
                value: coin.spend.value,
            });
        }
        for entry in ledger.values_mut() {
            entry
                .utxos
                .sort_by(|a, b| (a.height, &a.txid, a.vout).cmp(&(b.height, &b.txid, b.vout)));
        }
        let mut addresses: Vec<ChainAddress> = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, _)| self.received.contains_key(i))
            .map(|(_, k)| ChainAddress {
                address: k.address(),
                script: k.script_hex(),
                kind: k.kind,
                wallet: None,
            })
            .collect();
        addresses.extend(self.wallet_addresses);
        let mut reused: Vec<String> = self
            .reused
            .iter()
            .map(|&k| self.keys[k].address())
            .collect();
        reused.extend(self.wallet_reused);
        ChainInfo {
            tip: self.tip,
            miner: self.keys[self.miner].address(),
            heavy: self.keys[self.heavy].address(),
            addresses,
            reused,
            ledger,
            transactions: self.transactions,
            wallet_transactions: self.wallet_transactions,
            op_return_txids: self.op_return_txids,
            mweb: self.pegin.zip(self.pegout).map(
                |((pegin_txid, pegin_height), (pegout_address, pegout_height))| MwebInfo {
                    pegin_txid,
                    pegin_height,
                    pegout_address,
                    pegout_height,
                },
            ),
            elapsed: started.elapsed(),
        }
    }

    fn new_key(&mut self, kind: AddressKind) -> usize {
        let key = Key::derive(&self.secp, self.keys.len() as u32, kind);
        self.key_of_script.insert(key.script_hex(), self.keys.len());
        self.keys.push(key);
        self.keys.len() - 1
    }

    fn new_wallet_address(&mut self, kind: AddressKind) -> String {
        let address = as_string(
            &self
                .node
                .call("getnewaddress", json!(["", kind.rpc_name()])),
        );
        let script = self.wallet_script(&address);
        self.wallet_addresses.push(ChainAddress {
            address: address.clone(),
            script,
            kind,
            wallet: Some(MAIN_WALLET),
        });
        address
    }

    fn wallet_script(&self, address: &str) -> String {
        let info = self.node.call("getaddressinfo", json!([address]));
        as_string(&info["scriptPubKey"])
    }

    fn next_kind(&mut self) -> AddressKind {
        self.turn += 1;
        AddressKind::ALL[self.turn % AddressKind::ALL.len()]
    }

    fn next_reused(&mut self) -> usize {
        self.turn += 1;
        self.reused[self.turn % self.reused.len()]
    }

    /// 0.001 to 0.097 coins, varying.
    fn next_amount(&mut self) -> u64 {
        self.turn += 1;
        (1 + self.turn as u64 % 97) * COIN / 1000
    }
}

/// The fee the harness pays: comfortably above the 1 sat/vB relay minimum.
fn fee(inputs: usize, outputs: usize) -> u64 {
    1_000 + 400 * inputs as u64 + 100 * outputs as u64
}

fn txout(script: &ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script.clone(),
    }
}

/// A satoshi amount as the daemon's decimal string (strings avoid float rounding).
fn coins(sats: u64) -> String {
    format!("{}.{:08}", sats / COIN, sats % COIN)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    use bitcoin::hex::FromHex;
    Vec::from_hex(hex).unwrap_or_else(|e| panic!("{hex:?} is not hex: {e}"))
}

fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {value}"))
}

fn as_str(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

fn as_string(value: &Value) -> String {
    as_str(value).to_string()
}

fn as_u32(value: &Value) -> u32 {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| panic!("expected a small integer, got {value}"))
}
