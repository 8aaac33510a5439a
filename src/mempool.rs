//! The daemon's mempool as the protocol needs it: which unconfirmed transactions touch a
//! script, their fees and whether they have unconfirmed parents, the outputs they create
//! and the ones they spend, and ElectrumX's compact fee histogram.
//!
//! Pure and synchronous: the Mempool actor fetches and parses transactions from the
//! daemon and resolves confirmed prevouts from the index, then applies the result here
//! under a write lock held only for the update. Behaviour follows ElectrumX's
//! `server/mempool.py`: transactions are accepted parents first, and one whose inputs
//! cannot all be found (in the mempool or confirmed) is dropped until the next refresh.

use crate::chain::ParsedTx;
use crate::hashes::{HashX, Height};
use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, Txid};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The mempool shared by the Mempool actor (writer) and request handlers (readers).
pub type SharedMempool = Arc<RwLock<Mempool>>;

/// Minimum cumulative vsize of a fee histogram bin, before growth (ElectrumX's
/// `MEMPOOL_COMPACT_HISTOGRAM_BINSIZE`).
pub const HISTOGRAM_BIN_SIZE: u64 = 30_000;

/// One accepted mempool transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolTx {
    pub txid: Txid,
    /// max(0, inputs − outputs), in satoshis.
    pub fee: u64,
    pub vsize: u32,
    /// The outpoints spent, in input order (a generation-like null input is left out).
    pub prevouts: Vec<OutPoint>,
    /// The script and value of each spent output, one per prevout.
    pub in_pairs: Vec<(HashX, u64)>,
    /// One per output; `None` for an unspendable one.
    pub out_pairs: Vec<Option<(HashX, u64)>>,
    /// Some prevout is an output of another mempool transaction (protocol height -1).
    pub has_unconfirmed_inputs: bool,
}

impl MempoolTx {
    /// Every script this transaction spends from or pays to (with repeats).
    fn hashxs(&self) -> impl Iterator<Item = HashX> + '_ {
        self.in_pairs
            .iter()
            .map(|(hashx, _)| *hashx)
            .chain(self.out_pairs.iter().flatten().map(|(hashx, _)| *hashx))
    }
}

/// A transaction's prevouts and, for each, the spent output's script and value.
type ResolvedInputs = (Vec<OutPoint>, Vec<(HashX, u64)>);

/// A mempool transaction in a script's history, as get_history and get_mempool show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolEntry {
    pub txid: Txid,
    /// 0 when every input is confirmed, -1 otherwise.
    pub height: i64,
    pub fee: u64,
}

/// The accepted transactions, indexed by script and by spent outpoint.
#[derive(Default)]
pub struct Mempool {
    txs: HashMap<Txid, MempoolTx>,
    by_hashx: HashMap<HashX, HashSet<Txid>>,
    spenders: HashMap<OutPoint, Txid>,
    vsize: u64,
    synced_height: Option<Height>,
    histogram: Vec<(f64, u64)>,
    histogram_at: Option<Instant>,
    /// The accepted transactions in the order they were accepted (`mempool.recent`).
    arrivals: BTreeMap<u64, Txid>,
    next_arrival: u64,
}

/// An outpoint's status (ElectrumX's `TXOSpendStatus`): the height of the transaction
/// creating it and of the one spending it, if any; a mempool height is 0, or -1 with
/// unconfirmed inputs. [`Mempool::outpoint`] gives the mempool's part (ElectrumX's
/// `spender_for_txo`): heights only of mempool transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutpointStatus {
    pub funder_height: Option<i64>,
    pub spender: Option<(Txid, i64)>,
}

impl Mempool {
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Total vsize of the accepted transactions.
    pub fn vsize(&self) -> u64 {
        self.vsize
    }

    /// The accepted transactions' ids, in no order.
    pub fn txids(&self) -> impl Iterator<Item = &Txid> {
        self.txs.keys()
    }

    pub fn tx(&self, txid: &Txid) -> Option<&MempoolTx> {
        self.txs.get(txid)
    }

    /// The index height of the last refresh; `None` before the first.
    pub fn synced_height(&self) -> Option<Height> {
        self.synced_height
    }

    pub fn set_synced_height(&mut self, height: Height) {
        self.synced_height = Some(height);
    }

    /// Some mempool transaction spends from or pays to `hashx`.
    pub fn touches(&self, hashx: &HashX) -> bool {
        self.by_hashx.contains_key(hashx)
    }

    /// Mempool transactions touching `hashx` in status order (protocol 1.6): height 0
    /// before -1, then by txid as displayed (byte-reversed), ascending.
    pub fn history(&self, hashx: &HashX) -> Vec<MempoolEntry> {
        let mut txs: Vec<&MempoolTx> = self.txs_of(hashx).collect();
        txs.sort_by(|a, b| {
            a.has_unconfirmed_inputs
                .cmp(&b.has_unconfirmed_inputs)
                .then_with(|| display_order(&a.txid, &b.txid))
        });
        txs.into_iter()
            .map(|tx| MempoolEntry {
                txid: tx.txid,
                height: if tx.has_unconfirmed_inputs { -1 } else { 0 },
                fee: tx.fee,
            })
            .collect()
    }

    /// The mempool's net effect on `hashx`: what mempool transactions pay to it minus
    /// what they spend from it (confirmed or not). May be negative.
    pub fn balance_delta(&self, hashx: &HashX) -> i64 {
        let mut delta: i128 = 0;
        for tx in self.txs_of(hashx) {
            for (h, value) in &tx.in_pairs {
                if h == hashx {
                    delta -= i128::from(*value);
                }
            }
            for (h, value) in tx.out_pairs.iter().flatten() {
                if h == hashx {
                    delta += i128::from(*value);
                }
            }
        }
        i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX })
    }

    /// Outputs of mempool transactions to `hashx` that no mempool transaction spends, as
    /// (txid, vout, value), ordered by displayed txid then vout.
    pub fn unspent(&self, hashx: &HashX) -> Vec<(Txid, u32, u64)> {
        let mut out = Vec::new();
        for tx in self.txs_of(hashx) {
            for (vout, pair) in tx.out_pairs.iter().enumerate() {
                let Some((h, value)) = pair else { continue };
                let Ok(vout) = u32::try_from(vout) else { break };
                let outpoint = OutPoint {
                    txid: tx.txid,
                    vout,
                };
                if h == hashx && !self.spenders.contains_key(&outpoint) {
                    out.push((tx.txid, vout, *value));
                }
            }
        }
        out.sort_by(|a, b| display_order(&a.0, &b.0).then(a.1.cmp(&b.1)));
        out
    }

    /// A mempool transaction spends `outpoint` (listunspent then hides a confirmed UTXO).
    pub fn is_spent(&self, outpoint: &OutPoint) -> bool {
        self.spenders.contains_key(outpoint)
    }

    /// The mempool's part of an outpoint's status. An output index past the end of a
    /// mempool transaction is no output at all.
    pub fn outpoint(&self, outpoint: &OutPoint) -> OutpointStatus {
        let height = |tx: &MempoolTx| if tx.has_unconfirmed_inputs { -1 } else { 0 };
        let funder_height = match self.txs.get(&outpoint.txid) {
            Some(funder) if funder.out_pairs.len() <= outpoint.vout as usize => {
                return OutpointStatus::default();
            }
            Some(funder) => Some(height(funder)),
            None => None,
        };
        let spender = self
            .spenders
            .get(outpoint)
            .and_then(|txid| self.txs.get(txid))
            .map(|spender| (spender.txid, height(spender)));
        OutpointStatus {
            funder_height,
            spender,
        }
    }

    /// The last `count` transactions accepted, newest first.
    pub fn recent(&self, count: usize) -> Vec<&MempoolTx> {
        self.arrivals
            .values()
            .rev()
            .filter_map(|txid| self.txs.get(txid))
            .take(count)
            .collect()
    }

    /// The compact fee histogram as last computed: (fee rate in sat/vB, vsize),
    /// highest rate first.
    pub fn fee_histogram(&self) -> &[(f64, u64)] {
        &self.histogram
    }

    /// Recomputes the fee histogram if it was never computed or is `every` old.
    pub fn refresh_histogram(&mut self, now: Instant, every: Duration) {
        if self
            .histogram_at
            .is_some_and(|at| now.saturating_duration_since(at) < every)
        {
            return;
        }
        let mut by_rate: BTreeMap<u64, u64> = BTreeMap::new();
        for tx in self.txs.values() {
            *by_rate
                .entry(fee_rate_tenths(tx.fee, tx.vsize))
                .or_default() += u64::from(tx.vsize);
        }
        self.histogram = compress_histogram(&by_rate, HISTOGRAM_BIN_SIZE);
        self.histogram_at = Some(now);
    }

    /// Forgets every transaction whose txid is not in `present` (the daemon's mempool).
    /// Returns the scripts whose mempool state changed: those of the removed
    /// transactions, and those of remaining ones whose parents all left (height -1 → 0).
    pub fn remove_missing(&mut self, present: &HashSet<Txid>) -> HashSet<HashX> {
        let gone: Vec<Txid> = self
            .txs
            .keys()
            .filter(|txid| !present.contains(*txid))
            .copied()
            .collect();
        let mut touched = HashSet::new();
        let mut orphaned = HashSet::new();
        for txid in gone {
            let Some(tx) = self.txs.remove(&txid) else {
                continue;
            };
            self.vsize -= u64::from(tx.vsize);
            for hashx in tx.hashxs() {
                if let Some(txids) = self.by_hashx.get_mut(&hashx) {
                    txids.remove(&txid);
                    if txids.is_empty() {
                        self.by_hashx.remove(&hashx);
                    }
                }
                touched.insert(hashx);
            }
            for prevout in &tx.prevouts {
                self.spenders.remove(prevout);
            }
            orphaned.extend(self.children(&txid, tx.out_pairs.len()));
        }
        if self.arrivals.len() != self.txs.len() {
            let txs = &self.txs;
            self.arrivals.retain(|_, txid| txs.contains_key(txid));
        }
        // After all removals, since a child may have lost several parents.
        for child in orphaned {
            let still_unconfirmed = self.txs.get(&child).is_some_and(|tx| {
                tx.prevouts
                    .iter()
                    .any(|prevout| self.txs.contains_key(&prevout.txid))
            });
            if let Some(tx) = self.txs.get_mut(&child)
                && tx.has_unconfirmed_inputs
                && !still_unconfirmed
            {
                tx.has_unconfirmed_inputs = false;
                touched.extend(tx.hashxs());
            }
        }
        touched
    }

    /// Accepts new transactions, parents first: one is accepted when each of its inputs
    /// is an output of an accepted mempool transaction or, failing that, a confirmed
    /// output `confirmed` knows (its script and value). Inputs already spent by another
    /// mempool transaction also prevent acceptance. Returns the touched scripts and how
    /// many transactions were dropped. Already-known txids are ignored.
    pub fn add(
        &mut self,
        txs: Vec<ParsedTx>,
        confirmed: impl Fn(&OutPoint) -> Option<(HashX, u64)>,
    ) -> (HashSet<HashX>, usize) {
        let mut touched = HashSet::new();
        let mut pending = parents_first(txs);
        // With parents first one pass normally suffices; iterating until no progress
        // keeps acceptance independent of that order.
        loop {
            let before = pending.len();
            let mut deferred = Vec::new();
            for tx in pending {
                if self.txs.contains_key(&tx.txid) {
                    continue;
                }
                match self.resolve(&tx, &confirmed) {
                    Some((prevouts, in_pairs)) => {
                        self.accept(tx, prevouts, in_pairs, &mut touched);
                    }
                    None => deferred.push(tx),
                }
            }
            pending = deferred;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        (touched, pending.len())
    }

    /// Empties the mempool and forgets the synced height and the histogram.
    pub fn clear(&mut self) {
        *self = Mempool::default();
    }

    fn txs_of<'a>(&'a self, hashx: &HashX) -> impl Iterator<Item = &'a MempoolTx> + 'a {
        self.by_hashx
            .get(hashx)
            .into_iter()
            .flatten()
            .filter_map(|txid| self.txs.get(txid))
    }

    /// The mempool transactions spending outputs of `txid`.
    fn children(&self, txid: &Txid, outputs: usize) -> Vec<Txid> {
        (0..outputs)
            .filter_map(|vout| {
                let vout = u32::try_from(vout).ok()?;
                self.spenders.get(&OutPoint { txid: *txid, vout }).copied()
            })
            .collect()
    }

    /// The prevouts of `tx` and their scripts and values, if all can be found.
    fn resolve(
        &self,
        tx: &ParsedTx,
        confirmed: &impl Fn(&OutPoint) -> Option<(HashX, u64)>,
    ) -> Option<ResolvedInputs> {
        let mut prevouts = Vec::with_capacity(tx.inputs.len());
        let mut in_pairs = Vec::with_capacity(tx.inputs.len());
        for prevout in tx.inputs.iter().filter(|p| !p.is_null()) {
            if self.spenders.contains_key(prevout) {
                return None;
            }
            let pair = match self.txs.get(&prevout.txid) {
                Some(parent) => *parent.out_pairs.get(prevout.vout as usize)?.as_ref()?,
                None => confirmed(prevout)?,
            };
            prevouts.push(*prevout);
            in_pairs.push(pair);
        }
        Some((prevouts, in_pairs))
    }

    fn accept(
        &mut self,
        tx: ParsedTx,
        prevouts: Vec<OutPoint>,
        in_pairs: Vec<(HashX, u64)>,
        touched: &mut HashSet<HashX>,
    ) {
        let value_in = in_pairs
            .iter()
            .fold(0u64, |sum, (_, v)| sum.saturating_add(*v));
        let value_out = tx
            .outputs
            .iter()
            .fold(0u64, |sum, out| sum.saturating_add(out.value));
        let has_unconfirmed_inputs = prevouts.iter().any(|p| self.txs.contains_key(&p.txid));
        let entry = MempoolTx {
            txid: tx.txid,
            fee: value_in.saturating_sub(value_out),
            vsize: tx.vsize,
            prevouts,
            in_pairs,
            out_pairs: tx
                .outputs
                .iter()
                .map(|out| out.hashx.map(|hashx| (hashx, out.value)))
                .collect(),
            has_unconfirmed_inputs,
        };
        for hashx in entry.hashxs() {
            self.by_hashx.entry(hashx).or_default().insert(entry.txid);
            touched.insert(hashx);
        }
        for prevout in &entry.prevouts {
            self.spenders.insert(*prevout, entry.txid);
        }
        // Children already here spent this transaction's outputs as confirmed ones (it
        // came back from a block undone by a reorg): they now have an unconfirmed parent.
        for child in self.children(&entry.txid, entry.out_pairs.len()) {
            if let Some(child) = self.txs.get_mut(&child)
                && !child.has_unconfirmed_inputs
            {
                child.has_unconfirmed_inputs = true;
                touched.extend(child.hashxs());
            }
        }
        self.vsize += u64::from(entry.vsize);
        self.arrivals.insert(self.next_arrival, entry.txid);
        self.next_arrival += 1;
        self.txs.insert(entry.txid, entry);
    }
}

/// Orders txids as their displayed (byte-reversed) hex sorts.
fn display_order(a: &Txid, b: &Txid) -> Ordering {
    a.as_byte_array()
        .iter()
        .rev()
        .cmp(b.as_byte_array().iter().rev())
}

/// Reorders `txs` so that a transaction comes after any of the batch it spends from
/// (ElectrumX sorts topologically too, so that chains are accepted in one pass).
fn parents_first(txs: Vec<ParsedTx>) -> Vec<ParsedTx> {
    let index: HashMap<Txid, usize> = txs.iter().enumerate().map(|(i, tx)| (tx.txid, i)).collect();
    let mut seen = vec![false; txs.len()];
    let mut order = Vec::with_capacity(txs.len());
    for root in 0..txs.len() {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        // Depth-first, iteratively (unconfirmed chains can be long): (tx, next input).
        let mut stack = vec![(root, 0usize)];
        while let Some((tx, next)) = stack.last_mut() {
            match txs[*tx].inputs.get(*next) {
                Some(input) => {
                    *next += 1;
                    if let Some(&parent) = index.get(&input.txid)
                        && !seen[parent]
                    {
                        seen[parent] = true;
                        stack.push((parent, 0));
                    }
                }
                None => {
                    order.push(*tx);
                    stack.pop();
                }
            }
        }
    }
    let mut slots: Vec<Option<ParsedTx>> = txs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// ElectrumX's fee rate bucket: sat/vB rounded down to 0.1, here in tenths. Computed in
/// floating point exactly as ElectrumX does (`floor(10 * (fee / size))`), so that rates
/// on a bucket boundary land where ElectrumX puts them.
fn fee_rate_tenths(fee: u64, vsize: u32) -> u64 {
    let rate = fee as f64 / f64::from(vsize.max(1));
    (10.0 * rate).floor() as u64
}

/// ElectrumX's `_compress_histogram`: walks fee rates (in tenths of sat/vB) from the
/// highest, emitting (rate, cumulative vsize) whenever the cumulative vsize exceeds the
/// bin size, which then grows by 10%. A single rate bigger than twice the bin first
/// closes the bin accumulated so far at the previous rate.
pub fn compress_histogram(by_rate: &BTreeMap<u64, u64>, bin_size: u64) -> Vec<(f64, u64)> {
    let rate = |tenths: u64| tenths as f64 / 10.0;
    let mut bin = bin_size as f64;
    let mut compact = Vec::new();
    let mut cumulative = 0u64;
    let mut previous = None;
    for (&tenths, &size) in by_rate.iter().rev() {
        if size as f64 > 2.0 * bin
            && cumulative > 0
            && let Some(previous) = previous
        {
            compact.push((rate(previous), cumulative));
            cumulative = 0;
            bin *= 1.1;
        }
        cumulative += size;
        if cumulative as f64 > bin {
            compact.push((rate(tenths), cumulative));
            cumulative = 0;
            bin *= 1.1;
        }
        previous = Some(tenths);
    }
    compact
}

/// How long a refresh asked for by a new transaction (the daemon's ZMQ hashtx) waits
/// after the last one ended: such refreshes take at most a fifth of the time, so a
/// large mempool (whose listing takes long) is not asked back to back for every
/// transaction, while a small one is refreshed at once.
pub fn tx_refresh_delay(since_last_ended: Duration, last_took: Duration) -> Duration {
    last_took.saturating_mul(4).saturating_sub(since_last_ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::TxOutput;
    use std::collections::BTreeSet;

    /// Deterministic, so failures reproduce.
    struct Rng(crate::rng::SplitMix64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0.below(n)
        }

        fn txid(&mut self) -> Txid {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&self.0.next_u64().to_le_bytes());
            }
            Txid::from_byte_array(bytes)
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            self.0.shuffle(items);
        }
    }

    fn hashx(n: u8) -> HashX {
        HashX([n; 11])
    }

    fn parsed(txid: Txid, inputs: Vec<OutPoint>, outputs: Vec<Option<(HashX, u64)>>) -> ParsedTx {
        ParsedTx {
            txid,
            is_coinbase: false,
            inputs,
            outputs: outputs
                .into_iter()
                .map(|o| TxOutput {
                    hashx: o.map(|(h, _)| h),
                    value: o.map_or(0, |(_, v)| v),
                })
                .collect(),
            vsize: 200,
        }
    }

    fn txid_n(n: u8) -> Txid {
        Txid::from_byte_array([n; 32])
    }

    fn op(txid: Txid, vout: u32) -> OutPoint {
        OutPoint { txid, vout }
    }

    /// A random mempool: `confirmed` outputs, and transactions spending them and each
    /// other's outputs (never one output twice), listed in creation order.
    struct World {
        confirmed: HashMap<OutPoint, (HashX, u64)>,
        txs: Vec<ParsedTx>,
        /// Outputs as created (including unspendable ones, as None).
        outputs: HashMap<OutPoint, Option<(HashX, u64)>>,
    }

    fn random_world(rng: &mut Rng, scripts: u8, confirmed: usize, txs: usize) -> World {
        let mut world = World {
            confirmed: HashMap::new(),
            txs: Vec::new(),
            outputs: HashMap::new(),
        };
        let mut available: Vec<(OutPoint, u64)> = Vec::new();
        for _ in 0..confirmed {
            let outpoint = op(rng.txid(), rng.below(4) as u32);
            let value = 1_000 + rng.below(1_000_000);
            world
                .confirmed
                .insert(outpoint, (hashx(rng.below(scripts.into()) as u8), value));
            available.push((outpoint, value));
        }
        for _ in 0..txs {
            if available.is_empty() {
                break;
            }
            let mut inputs = Vec::new();
            let mut value_in = 0u64;
            for _ in 0..1 + rng.below(3) {
                if available.is_empty() {
                    break;
                }
                let pick = rng.below(available.len() as u64) as usize;
                let (outpoint, value) = available.swap_remove(pick);
                inputs.push(outpoint);
                value_in += value;
            }
            if rng.below(10) == 0 {
                inputs.push(OutPoint::null());
            }
            // Usually a fee; sometimes outputs exceed inputs (the fee is then 0).
            let mut budget = if rng.below(8) == 0 {
                value_in + 5_000
            } else {
                value_in - rng.below(value_in.min(3_000) + 1)
            };
            let txid = rng.txid();
            let mut outputs = Vec::new();
            for vout in 0..1 + rng.below(4) as u32 {
                let value = rng.below(budget + 1);
                budget -= value;
                let output = if rng.below(7) == 0 {
                    None
                } else {
                    available.push((op(txid, vout), value));
                    Some((hashx(rng.below(scripts.into()) as u8), value))
                };
                world.outputs.insert(op(txid, vout), output);
                outputs.push(output);
            }
            let mut tx = parsed(txid, inputs, outputs);
            tx.vsize = 100 + rng.below(900) as u32;
            world.txs.push(tx);
        }
        world
    }

    /// What the mempool should answer, computed from scratch for the transactions in
    /// `live` (each with the in_pairs resolved when it was added).
    struct Expected {
        balance: HashMap<HashX, i64>,
        unspent: HashMap<HashX, BTreeSet<(Txid, u32, u64)>>,
        history: HashMap<HashX, Vec<MempoolEntry>>,
        spent: HashSet<OutPoint>,
    }

    fn expected(world: &World, live: &HashSet<Txid>) -> Expected {
        let pair_of = |p: &OutPoint| -> (HashX, u64) {
            world
                .confirmed
                .get(p)
                .copied()
                .or_else(|| world.outputs[p])
                .unwrap()
        };
        let mut e = Expected {
            balance: HashMap::new(),
            unspent: HashMap::new(),
            history: HashMap::new(),
            spent: HashSet::new(),
        };
        for tx in world.txs.iter().filter(|tx| live.contains(&tx.txid)) {
            let prevouts: Vec<&OutPoint> = tx.inputs.iter().filter(|p| !p.is_null()).collect();
            e.spent.extend(prevouts.iter().copied());
        }
        for tx in world.txs.iter().filter(|tx| live.contains(&tx.txid)) {
            let prevouts: Vec<&OutPoint> = tx.inputs.iter().filter(|p| !p.is_null()).collect();
            let mut scripts = HashSet::new();
            let mut value_in = 0i128;
            for p in &prevouts {
                let (h, v) = pair_of(p);
                *e.balance.entry(h).or_default() -= v as i64;
                scripts.insert(h);
                value_in += i128::from(v);
            }
            let mut value_out = 0i128;
            for (vout, out) in tx.outputs.iter().enumerate() {
                value_out += i128::from(out.value);
                let Some(h) = out.hashx else { continue };
                *e.balance.entry(h).or_default() += out.value as i64;
                scripts.insert(h);
                if !e.spent.contains(&op(tx.txid, vout as u32)) {
                    e.unspent
                        .entry(h)
                        .or_default()
                        .insert((tx.txid, vout as u32, out.value));
                }
            }
            let unconfirmed = prevouts.iter().any(|p| live.contains(&p.txid));
            for h in scripts {
                e.history.entry(h).or_default().push(MempoolEntry {
                    txid: tx.txid,
                    height: if unconfirmed { -1 } else { 0 },
                    fee: (value_in - value_out).max(0) as u64,
                });
            }
        }
        for entries in e.history.values_mut() {
            entries.sort_by_key(|entry| {
                let mut display = entry.txid.to_byte_array();
                display.reverse();
                (-entry.height, display)
            });
        }
        e
    }

    fn check(mempool: &Mempool, world: &World, live: &HashSet<Txid>, scripts: u8) {
        let e = expected(world, live);
        assert_eq!(mempool.len(), live.len());
        let vsize: u64 = world
            .txs
            .iter()
            .filter(|tx| live.contains(&tx.txid))
            .map(|tx| u64::from(tx.vsize))
            .sum();
        assert_eq!(mempool.vsize(), vsize);
        for n in 0..scripts {
            let h = hashx(n);
            assert_eq!(
                mempool.balance_delta(&h),
                e.balance.get(&h).copied().unwrap_or(0),
                "balance of {h:?}"
            );
            let unspent: Vec<_> = e.unspent.get(&h).into_iter().flatten().copied().collect();
            let mut got = mempool.unspent(&h);
            got.sort();
            assert_eq!(got, unspent, "unspent of {h:?}");
            let history = e.history.get(&h).cloned().unwrap_or_default();
            assert_eq!(mempool.history(&h), history, "history of {h:?}");
            assert_eq!(mempool.touches(&h), !history.is_empty());
        }
        for p in world.confirmed.keys().chain(world.outputs.keys()) {
            assert_eq!(mempool.is_spent(p), e.spent.contains(p), "spent {p}");
        }
        for tx in &world.txs {
            assert_eq!(mempool.tx(&tx.txid).is_some(), live.contains(&tx.txid));
        }
    }

    fn scripts_of(world: &World, txids: &HashSet<Txid>) -> HashSet<HashX> {
        let mut out = HashSet::new();
        for tx in world.txs.iter().filter(|tx| txids.contains(&tx.txid)) {
            for p in tx.inputs.iter().filter(|p| !p.is_null()) {
                out.insert(
                    world
                        .confirmed
                        .get(p)
                        .copied()
                        .or_else(|| world.outputs[p])
                        .unwrap()
                        .0,
                );
            }
            out.extend(tx.outputs.iter().filter_map(|o| o.hashx));
        }
        out
    }

    #[test]
    fn random_graphs_match_brute_force() {
        const SCRIPTS: u8 = 12;
        let mut flips = 0;
        for seed in 0..40 {
            let mut rng = Rng(crate::rng::SplitMix64::new(seed));
            let world = random_world(&mut rng, SCRIPTS, 30, 60);
            let confirmed = |p: &OutPoint| world.confirmed.get(p).copied();
            let mut mempool = Mempool::default();
            // Children before parents, in random order.
            let mut batch = world.txs.clone();
            rng.shuffle(&mut batch);
            let (touched, dropped) = mempool.add(batch, confirmed);
            assert_eq!(dropped, 0, "seed {seed}");
            let all: HashSet<Txid> = world.txs.iter().map(|tx| tx.txid).collect();
            assert_eq!(touched, scripts_of(&world, &all));
            check(&mempool, &world, &all, SCRIPTS);
            mempool.refresh_histogram(Instant::now(), Duration::ZERO);
            let histogram = mempool.fee_histogram();
            assert!(histogram.windows(2).all(|w| w[0].0 > w[1].0));
            assert!(histogram.iter().map(|(_, size)| size).sum::<u64>() <= mempool.vsize());

            // Some leave (mined, or evicted with their descendants): a child whose
            // parents all left is then at height 0.
            let live: HashSet<Txid> = all.iter().filter(|_| rng.below(3) != 0).copied().collect();
            let gone: HashSet<Txid> = all.difference(&live).copied().collect();
            let before: HashMap<Txid, bool> = live
                .iter()
                .map(|t| (*t, mempool.tx(t).unwrap().has_unconfirmed_inputs))
                .collect();
            let touched = mempool.remove_missing(&live);
            check(&mempool, &world, &live, SCRIPTS);
            let flipped: HashSet<Txid> = live
                .iter()
                .filter(|t| before[*t] != mempool.tx(t).unwrap().has_unconfirmed_inputs)
                .copied()
                .collect();
            flips += flipped.len();
            let mut expected_touched = scripts_of(&world, &gone);
            expected_touched.extend(scripts_of(&world, &flipped));
            assert_eq!(touched, expected_touched, "seed {seed}");

            // They come back (a reorg): children already here regain height -1.
            let mut batch: Vec<ParsedTx> = world
                .txs
                .iter()
                .filter(|tx| gone.contains(&tx.txid))
                .cloned()
                .collect();
            rng.shuffle(&mut batch);
            let (touched, dropped) = mempool.add(batch, confirmed);
            assert_eq!(dropped, 0);
            let mut expected_touched = scripts_of(&world, &gone);
            expected_touched.extend(scripts_of(&world, &flipped));
            assert_eq!(touched, expected_touched, "seed {seed}");
            check(&mempool, &world, &all, SCRIPTS);

            assert!(mempool.remove_missing(&all).is_empty());
            mempool.remove_missing(&HashSet::new());
            check(&mempool, &world, &HashSet::new(), SCRIPTS);
        }
        assert!(flips > 0, "no child ever lost its last unconfirmed parent");
    }

    #[test]
    fn accepts_parents_first_and_drops_orphans() {
        let (a, b, c, orphan) = (txid_n(1), txid_n(2), txid_n(3), txid_n(4));
        let funding = op(txid_n(9), 0);
        let confirmed = |p: &OutPoint| (*p == funding).then_some((hashx(1), 10_000));
        let txs = vec![
            parsed(c, vec![op(b, 0)], vec![Some((hashx(4), 7_000))]),
            parsed(orphan, vec![op(txid_n(8), 1)], vec![Some((hashx(5), 1))]),
            parsed(b, vec![op(a, 1)], vec![Some((hashx(3), 8_000))]),
            parsed(
                a,
                vec![funding],
                vec![None, Some((hashx(2), 9_000)), Some((hashx(2), 500))],
            ),
        ];
        let mut mempool = Mempool::default();
        let (touched, dropped) = mempool.add(txs, confirmed);
        assert_eq!(dropped, 1);
        assert_eq!(touched, (1..=4).map(hashx).collect());
        assert_eq!(mempool.len(), 3);
        assert!(mempool.tx(&orphan).is_none());
        let tx_a = mempool.tx(&a).unwrap();
        assert_eq!((tx_a.fee, tx_a.has_unconfirmed_inputs), (500, false));
        assert_eq!(tx_a.in_pairs, vec![(hashx(1), 10_000)]);
        let tx_c = mempool.tx(&c).unwrap();
        assert_eq!((tx_c.fee, tx_c.has_unconfirmed_inputs), (1_000, true));
        assert_eq!(mempool.balance_delta(&hashx(1)), -10_000);
        assert_eq!(mempool.balance_delta(&hashx(2)), 500);
        assert_eq!(mempool.unspent(&hashx(2)), vec![(a, 2, 500)]);
        assert!(mempool.is_spent(&funding) && mempool.is_spent(&op(a, 1)));
        assert!(!mempool.is_spent(&op(a, 2)));
        assert_eq!(mempool.history(&hashx(3))[0].height, -1);
        assert_eq!(mempool.vsize(), 600);

        // The orphan's parent shows up: the orphan is accepted next time.
        let parent = parsed(
            txid_n(8),
            vec![op(c, 0)],
            vec![None, Some((hashx(6), 6_000))],
        );
        let (_, dropped) = mempool.add(
            vec![
                parsed(orphan, vec![op(txid_n(8), 1)], vec![Some((hashx(5), 1))]),
                parent,
            ],
            confirmed,
        );
        assert_eq!((dropped, mempool.len()), (0, 5));
        // A double spend of an outpoint the mempool already spends is refused.
        let conflict = parsed(txid_n(7), vec![funding], vec![Some((hashx(7), 1))]);
        assert_eq!(mempool.add(vec![conflict], confirmed).1, 1);
        // A parent that is mined: its child stays, now at height 0.
        let present: HashSet<Txid> = [b, c, txid_n(8), orphan].into_iter().collect();
        let touched = mempool.remove_missing(&present);
        assert!(touched.contains(&hashx(3)) && touched.contains(&hashx(2)));
        assert!(!mempool.tx(&b).unwrap().has_unconfirmed_inputs);
        assert_eq!(mempool.history(&hashx(3))[0].height, 0);
        mempool.clear();
        assert!(mempool.is_empty() && mempool.synced_height().is_none());
    }

    #[test]
    fn history_orders_height_zero_first_then_displayed_txid() {
        let mut low_internal = [0u8; 32];
        low_internal[31] = 0xff; // displays as ff00…00
        let mut high_internal = [0xffu8; 32];
        high_internal[31] = 0x00; // displays as 00ff…ff
        let (x, y) = (
            Txid::from_byte_array(low_internal),
            Txid::from_byte_array(high_internal),
        );
        let funding = [op(txid_n(9), 0), op(txid_n(9), 1)];
        let confirmed = |p: &OutPoint| funding.contains(p).then_some((hashx(1), 100));
        let child = txid_n(0);
        let mut mempool = Mempool::default();
        mempool.add(
            vec![
                parsed(child, vec![op(x, 0)], vec![Some((hashx(1), 10))]),
                parsed(x, vec![funding[0]], vec![Some((hashx(1), 50))]),
                parsed(y, vec![funding[1]], vec![Some((hashx(1), 60))]),
            ],
            confirmed,
        );
        let order: Vec<(Txid, i64, u64)> = mempool
            .history(&hashx(1))
            .into_iter()
            .map(|e| (e.txid, e.height, e.fee))
            .collect();
        assert_eq!(order, vec![(y, 0, 40), (x, 0, 50), (child, -1, 40)]);
        assert!(y.to_string() < x.to_string());
        assert_eq!(mempool.unspent(&hashx(1)), vec![(child, 0, 10), (y, 0, 60)]);
    }

    fn tenths(items: &[(f64, u64)]) -> BTreeMap<u64, u64> {
        items
            .iter()
            .map(|(rate, size)| ((rate * 10.0).round() as u64, *size))
            .collect()
    }

    /// ElectrumX's tests/server/test_mempool.py `test_compress_histogram`.
    #[test]
    fn compress_histogram_matches_electrumx_vectors() {
        let histogram = tenths(&[
            (10.0, 100_000),
            (11.0, 1_000),
            (12.0, 10_000_000),
            (13.0, 1_000),
            (14.0, 1_000),
            (15.0, 1_000),
            (16.0, 1_000),
            (17.0, 1_000),
            (18.0, 900_000),
            (19.0, 1_000),
            (20.0, 1_000),
            (21.0, 75_000),
            (22.0, 1_000),
        ]);
        assert_eq!(
            compress_histogram(&histogram, 100_000),
            vec![
                (19.0, 78_000),
                (18.0, 900_000),
                (13.0, 5_000),
                (12.0, 10_000_000)
            ]
        );
        assert_eq!(
            compress_histogram(&histogram, 30_000),
            vec![
                (22.0, 1_000),
                (21.0, 75_000),
                (19.0, 2_000),
                (18.0, 900_000),
                (13.0, 5_000),
                (12.0, 10_000_000),
                (10.0, 101_000)
            ]
        );
        let histogram = tenths(&[
            (1.0, 10_000_000),
            (1.1, 30_000),
            (1.2, 40_000),
            (10.0, 500_000),
            (10.1, 1_000),
            (11.0, 50_000),
        ]);
        assert_eq!(
            compress_histogram(&histogram, 100_000),
            vec![
                (10.1, 51_000),
                (10.0, 500_000),
                (1.1, 70_000),
                (1.0, 10_000_000)
            ]
        );
        assert!(compress_histogram(&BTreeMap::new(), 30_000).is_empty());
    }

    #[test]
    fn fee_rates_round_down_to_a_tenth() {
        assert_eq!(fee_rate_tenths(1_000, 300), 33);
        assert_eq!(fee_rate_tenths(7, 10), 7);
        assert_eq!(fee_rate_tenths(999, 1_000), 9);
        assert_eq!(fee_rate_tenths(0, 250), 0);
    }

    #[test]
    fn histogram_is_refreshed_when_due() {
        let mut mempool = Mempool::default();
        let funding: Vec<OutPoint> = (0..3).map(|n| op(txid_n(9), n)).collect();
        let confirmed = |p: &OutPoint| funding.contains(p).then_some((hashx(1), 1_000_000));
        // 200 vB each, at 25.0, 25.0 and 2.5 sat/vB.
        let txs = vec![
            parsed(txid_n(1), vec![funding[0]], vec![Some((hashx(2), 995_000))]),
            parsed(txid_n(2), vec![funding[1]], vec![Some((hashx(2), 995_000))]),
            parsed(txid_n(3), vec![funding[2]], vec![Some((hashx(2), 999_500))]),
        ];
        let start = Instant::now();
        mempool.refresh_histogram(start, Duration::from_secs(500));
        assert!(mempool.fee_histogram().is_empty());
        mempool.add(txs, confirmed);
        mempool.refresh_histogram(start + Duration::from_secs(499), Duration::from_secs(500));
        assert!(mempool.fee_histogram().is_empty(), "not due yet");
        mempool.refresh_histogram(start + Duration::from_secs(500), Duration::from_secs(500));
        // Nothing exceeds the 30,000 vB bin: ElectrumX then reports nothing at all.
        assert!(mempool.fee_histogram().is_empty());

        let mut big = Mempool::default();
        let funding: Vec<OutPoint> = (0..200).map(|n| op(txid_n(9), n)).collect();
        let confirmed = |p: &OutPoint| funding.contains(p).then_some((hashx(1), 100_000));
        let txs = funding
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut txid = [0xaa; 32];
                txid[0] = i as u8;
                let mut tx = parsed(
                    Txid::from_byte_array(txid),
                    vec![*p],
                    vec![Some((
                        hashx(2),
                        100_000 - if i < 100 { 1_001 } else { 300 },
                    ))],
                );
                tx.vsize = 500;
                tx
            })
            .collect();
        big.add(txs, confirmed);
        big.refresh_histogram(start, Duration::from_secs(500));
        // 100 txs at 2.0 sat/vB (1001/500 rounds down), 100 at 0.6: 50,000 vB each.
        assert_eq!(big.fee_histogram(), &[(2.0, 50_000), (0.6, 50_000)]);
    }

    #[test]
    fn recent_lists_arrivals_newest_first_and_outpoints_know_their_spenders() {
        let funding = op(txid_n(9), 0);
        let confirmed = |p: &OutPoint| (*p == funding).then_some((hashx(1), 10_000));
        let (a, b) = (txid_n(1), txid_n(2));
        let mut mempool = Mempool::default();
        mempool.add(
            vec![parsed(
                a,
                vec![funding],
                vec![Some((hashx(2), 9_000)), None],
            )],
            confirmed,
        );
        mempool.add(
            vec![parsed(b, vec![op(a, 0)], vec![Some((hashx(3), 8_000))])],
            confirmed,
        );
        let recent: Vec<Txid> = mempool.recent(10).iter().map(|tx| tx.txid).collect();
        assert_eq!(recent, vec![b, a]);
        assert_eq!(mempool.recent(1).len(), 1);
        assert_eq!(
            mempool.outpoint(&funding),
            OutpointStatus {
                funder_height: None,
                spender: Some((a, 0)),
            }
        );
        assert_eq!(
            mempool.outpoint(&op(a, 0)),
            OutpointStatus {
                funder_height: Some(0),
                spender: Some((b, -1)),
            }
        );
        // An unspendable output is an output; past the last one there is none.
        assert_eq!(mempool.outpoint(&op(a, 1)).funder_height, Some(0));
        assert_eq!(mempool.outpoint(&op(a, 2)), OutpointStatus::default());
        assert_eq!(mempool.outpoint(&op(b, 0)).funder_height, Some(-1));
        // A mined transaction leaves the recent list.
        let present: HashSet<Txid> = [b].into_iter().collect();
        mempool.remove_missing(&present);
        let recent: Vec<Txid> = mempool.recent(10).iter().map(|tx| tx.txid).collect();
        assert_eq!(recent, vec![b]);
        assert_eq!(mempool.outpoint(&op(b, 0)).funder_height, Some(0));
    }

    #[test]
    fn transaction_refreshes_take_at_most_a_fifth_of_the_time() {
        let ms = Duration::from_millis;
        assert_eq!(tx_refresh_delay(ms(0), ms(2)), ms(8));
        assert_eq!(tx_refresh_delay(ms(5), ms(2)), ms(3));
        assert_eq!(tx_refresh_delay(ms(50), ms(2)), ms(0));
        assert_eq!(tx_refresh_delay(ms(100), ms(300)), ms(1100));
        assert_eq!(tx_refresh_delay(ms(0), Duration::MAX), Duration::MAX);
    }
}
