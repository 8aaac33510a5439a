//! Who spent each confirmed output: the `spends` table, written with every block and
//! undone with it, so that protocol 1.7's `blockchain.outpoint.*` are answered from the
//! index alone (ElectrumX asks bitcoind's `gettxspendingprevout`, which needs Bitcoin
//! Core 31 with `txospenderindex`; Litecoin Core has neither).
//!
//! | table  | key                         | value               |
//! |--------|-----------------------------|---------------------|
//! | spends | spent tx_num ‖ vout (4)     | spender's tx_num (5)|
//!
//! An output of the index is in exactly one place: unspent in `outpoints`, or spent in
//! `spends`. [`crate::index`] records a row for every input of a block it applies
//! ([`SpendRows::spent`]), writes them with the block ([`SpendRows::write`]) and deletes a
//! block's rows when it undoes it ([`undo`]); [`confirmed`] reads an outpoint's status.

use crate::hashes::{Height, TXNUM_LEN, TxNum};
use crate::schema::{self, OUTPOINT_KEY_LEN, UndoOutput};
use crate::store::{Snapshot, Store, StoreError, TxidIs, tx_nums_of};
use bitcoin::Txid;
use heed::{PutFlags, RwTxn};

type Row = ([u8; OUTPOINT_KEY_LEN], [u8; TXNUM_LEN]);

/// The spends of the blocks applied since the last flush.
#[derive(Default)]
pub struct SpendRows {
    rows: Vec<Row>,
}

impl SpendRows {
    /// The output `tx_num:vout` is spent by the transaction `spender`.
    pub fn spent(&mut self, tx_num: TxNum, vout: u32, spender: TxNum) {
        self.rows
            .push((schema::outpoint_key(tx_num, vout), spender.to_bytes()));
    }

    /// The memory the pending rows hold.
    pub fn bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
    }

    /// Writes the pending rows in key order: spends of young outputs, the most common,
    /// land on the table's last pages; into an empty table every row is appended.
    pub fn write(mut self, store: &Store, wtxn: &mut RwTxn) -> Result<(), StoreError> {
        self.rows.sort_unstable_by_key(|row| row.0);
        let flags = if store.spends.is_empty(wtxn)? {
            PutFlags::APPEND
        } else {
            PutFlags::empty()
        };
        for (key, spender) in &self.rows {
            store.spends.put_with_flags(wtxn, flags, key, spender)?;
        }
        Ok(())
    }
}

/// Forgets the spends of a block being undone: the outputs its undo record restores.
pub fn undo(store: &Store, wtxn: &mut RwTxn, spent: &[UndoOutput]) -> Result<(), StoreError> {
    for output in spent {
        store
            .spends
            .delete(wtxn, &schema::outpoint_key(output.tx_num, output.vout))?;
    }
    Ok(())
}

/// What the chain says of an output: where it was created, and where it was spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfirmedOutpoint {
    pub funder_height: Height,
    pub spender: Option<(Txid, Height)>,
}

/// The confirmed status of `txid:vout`; `None` when the chain has no such output (no
/// such transaction, an index past its outputs, or an unspendable output, which the
/// index does not keep).
pub fn confirmed(
    snapshot: &Snapshot,
    txid: &Txid,
    vout: u32,
) -> Result<Option<ConfirmedOutpoint>, StoreError> {
    let (store, txn) = snapshot.parts();
    // Bitcoin's two duplicated coinbases: the later one is the output that counts.
    for tx_num in tx_nums_of(store, txn, txid, TxidIs::Unknown)?
        .into_iter()
        .rev()
    {
        let key = schema::outpoint_key(tx_num, vout);
        let spender = if store.outpoints.get(txn, &key)?.is_some() {
            None
        } else if let Some(spender) = store.spends.get(txn, &key)? {
            let spender = schema::decode_tx_num(spender)?;
            Some((snapshot.txid(spender)?, snapshot.height_of(spender)?.0))
        } else {
            continue;
        };
        return Ok(Some(ConfirmedOutpoint {
            funder_height: snapshot.height_of(tx_num)?.0,
            spender,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Indexer;
    use crate::index::tests::block;
    use crate::protocol::transaction::test_fixture::paying_tx;
    use crate::store::header_hash;
    use std::sync::Arc;

    fn at(funder_height: Height, spender: Option<(Txid, Height)>) -> Option<ConfirmedOutpoint> {
        Some(ConfirmedOutpoint {
            funder_height,
            spender,
        })
    }

    fn status(indexer: &Indexer, txid: &Txid, vout: u32) -> Option<ConfirmedOutpoint> {
        let snapshot = indexer.store().snapshot().unwrap();
        confirmed(&snapshot, txid, vout).unwrap()
    }

    #[test]
    fn spends_follow_blocks_flushes_and_reorgs() {
        let genesis = [0u8; 80];
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(dir.path(), "Test", "regtest", &header_hash(&genesis)).unwrap());
        let mut indexer = Indexer::new(store, 10).unwrap();
        indexer
            .apply_genesis(genesis, &header_hash(&genesis))
            .unwrap();
        let cb1 = paying_tx("cb1", &[], &[(&[1], 50)]);
        let b1 = block(header_hash(&genesis), 1, vec![cb1.clone()]);
        // Block 2 spends cb1 and, within the block, its own new output.
        let t2 = paying_tx("t2", &[(cb1.txid, 0)], &[(&[2], 49)]);
        let t2b = paying_tx("t2b", &[(t2.txid, 0)], &[(&[3], 48)]);
        let b2 = block(
            b1.hash,
            2,
            vec![
                paying_tx("cb2", &[], &[(&[4], 50)]),
                t2.clone(),
                t2b.clone(),
            ],
        );
        indexer.apply_block(&b1, true).unwrap();
        indexer.flush().unwrap();
        assert_eq!(status(&indexer, &cb1.txid, 0), at(1, None));
        indexer.apply_block(&b2, true).unwrap();
        indexer.flush().unwrap();
        assert_eq!(status(&indexer, &cb1.txid, 0), at(1, Some((t2.txid, 2))));
        assert_eq!(status(&indexer, &t2.txid, 0), at(2, Some((t2b.txid, 2))));
        assert_eq!(status(&indexer, &t2.txid, 1), None);

        // A reorg takes block 2 away: cb1's output is unspent again, t2 never was.
        indexer.rollback(1).unwrap();
        assert_eq!(status(&indexer, &cb1.txid, 0), at(1, None));
        assert_eq!(status(&indexer, &t2.txid, 0), None);
        let snapshot = indexer.store().snapshot().unwrap();
        let (store, txn) = snapshot.parts();
        assert_eq!(store.spends.len(txn).unwrap(), 0);
        drop(snapshot);

        // Another block 2 spends it otherwise.
        let other = paying_tx("other", &[(cb1.txid, 0)], &[(&[5], 40)]);
        let b2b = block(
            b1.hash,
            9,
            vec![paying_tx("cb2b", &[], &[(&[4], 50)]), other.clone()],
        );
        indexer.apply_block(&b2b, true).unwrap();
        indexer.flush().unwrap();
        assert_eq!(status(&indexer, &cb1.txid, 0), at(1, Some((other.txid, 2))));
    }
}
