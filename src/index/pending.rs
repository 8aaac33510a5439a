//! What the indexer holds between two flushes: the blocks applied in memory, their
//! outputs (so that spends of young outputs never reach the index), and the rows a
//! flush writes.

use crate::hashes::{HashX, Height, TxNum};
use crate::schema::UtxoKey;
use bitcoin::Txid;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// An output being spent: where it was created and what it held.
#[derive(Clone, Copy)]
pub(super) struct NewOutput {
    pub(super) hashx: HashX,
    pub(super) tx_num: TxNum,
    pub(super) value: u64,
}

/// An output of a pending transaction, in `Pending::outputs`.
#[derive(Clone, Copy)]
pub(super) struct PendingOutput {
    pub(super) hashx: HashX,
    /// [`GONE`] once spent, or for an output the index does not record (unspendable).
    pub(super) value: u64,
}

/// The value of a pending output slot that holds no output.
pub(super) const GONE: u64 = u64::MAX;

/// Hashes a key whose first eight bytes are already uniformly random (a txid, a hashX)
/// by taking them as they are: SipHash would cost more than the table lookup.
#[derive(Default)]
pub(super) struct FirstBytesHasher(u64);

impl Hasher for FirstBytesHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*head);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }
    // The length that arrays and slices write before their bytes carries nothing.
    fn write_usize(&mut self, _: usize) {}
}

pub(super) type FastHash = BuildHasherDefault<FirstBytesHasher>;

/// The rows a flush sorts and writes for each new output.
pub(super) type UtxoRow = (UtxoKey, u64);

/// A DB output spent by a pending block: both of its rows are deleted at flush.
pub(super) struct SpentStored {
    pub(super) hashx: HashX,
    pub(super) tx_num: TxNum,
    pub(super) vout: u32,
}

/// Everything applied since the last flush.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) headers: Vec<(Height, [u8; 80])>,
    /// Cumulative tx count after each pending block, parallel to `headers`.
    pub(super) tx_counts: Vec<u64>,
    /// Txids of pending transactions, starting at the committed tx count.
    pub(super) txids: Vec<Txid>,
    /// Where each pending transaction's outputs start in `outputs`, parallel to `txids`.
    pub(super) output_starts: Vec<u32>,
    /// The outputs of every pending transaction, in chain order: spends of young
    /// outputs are found here and never reach the index.
    pub(super) outputs: Vec<PendingOutput>,
    /// A pending transaction's position in `txids` (one entry per transaction, not per
    /// output). A repeated txid (Bitcoin's two duplicated coinbases) names the later.
    pub(super) tx_positions: HashMap<Txid, u32, FastHash>,
    /// History entries as their keys (hashX ‖ tx_num, [`crate::schema::history_key`])
    /// read as big-endian integers: they sort as the keys do, by integer compares, and
    /// take 16 bytes where the pair took 24.
    pub(super) history: Vec<u128>,
    pub(super) spent_stored: Vec<SpentStored>,
    pub(super) undo: Vec<(Height, Vec<u8>)>,
    pub(super) touched: HashSet<HashX, FastHash>,
    /// Who spent what (spent tx_num, vout, spender's tx_num): the spends table's rows.
    pub(super) spends: Vec<(TxNum, u32, TxNum)>,
}

impl Pending {
    /// Takes the unspent output `txid:vout` of a pending transaction.
    pub(super) fn spend(&mut self, txid: &Txid, vout: u32, first_tx_num: u64) -> Option<NewOutput> {
        let position = *self.tx_positions.get(txid)? as usize;
        let start = self.output_starts[position] as usize;
        let end = self
            .output_starts
            .get(position + 1)
            .map_or(self.outputs.len(), |next| *next as usize);
        let slot = start
            .checked_add(vout as usize)
            .filter(|slot| *slot < end)?;
        let output = &mut self.outputs[slot];
        if output.value == GONE {
            return None;
        }
        let spent = NewOutput {
            hashx: output.hashx,
            tx_num: TxNum(first_tx_num + position as u64),
            value: output.value,
        };
        output.value = GONE;
        Some(spent)
    }

    /// The unspent pending outputs in key order of the outpoints table (tx_num, vout).
    pub(super) fn unspent(
        &self,
        first_tx_num: u64,
    ) -> impl Iterator<Item = (TxNum, u32, &PendingOutput)> {
        self.output_starts
            .iter()
            .enumerate()
            .flat_map(move |(position, start)| {
                let end = self
                    .output_starts
                    .get(position + 1)
                    .map_or(self.outputs.len(), |next| *next as usize);
                let tx_num = TxNum(first_tx_num + position as u64);
                self.outputs[*start as usize..end]
                    .iter()
                    .enumerate()
                    .filter(|(_, output)| output.value != GONE)
                    .map(move |(vout, output)| (tx_num, vout as u32, output))
            })
    }
}
