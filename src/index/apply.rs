//! Applying a block in memory: its outputs, its spends (of outputs pending or
//! committed), its history rows and its undo record.

use super::pending::{GONE, NewOutput, PendingOutput, SpentStored};
use super::{IndexError, Indexer};
use crate::chain::ParsedBlock;
use crate::hashes::{HashX, Height, TxNum};
use crate::schema::{UndoOutput, UndoRecord};
use crate::store::{corrupt, header_hash};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};

impl Indexer {
    /// Stores the genesis header. Its transactions are not indexed (ElectrumX does the
    /// same: the genesis coinbase cannot be spent).
    pub fn apply_genesis(
        &mut self,
        header: [u8; 80],
        expected: &BlockHash,
    ) -> Result<(), IndexError> {
        let found = header_hash(&header);
        if found != *expected {
            return Err(IndexError::WrongGenesis {
                found,
                expected: *expected,
            });
        }
        self.pending.headers.push((Height::GENESIS, header));
        self.pending.tx_counts.push(self.state.tx_count);
        self.state.height = Some(Height::GENESIS);
        self.state.tip = Some(found.to_string());
        Ok(())
    }

    /// Applies a block on top of the current tip. `keep_undo` is false for blocks deeper
    /// than REORG_LIMIT below the daemon's tip, which can never be undone.
    pub fn apply_block(&mut self, block: &ParsedBlock, keep_undo: bool) -> Result<(), IndexError> {
        // A merge cut short skips what it already wrote by key, and rebuilds the UTXOs
        // from the outpoints: it must end before a block adds runs or spends outputs.
        // Listed runs are merged before a block writes straight into the tables, which
        // then hold nothing that the runs do not (readers rely on it while they read
        // the runs: [`crate::store::Store::snapshot`]).
        if self.state.merge.is_some() || (!self.write_runs && !self.state.runs.is_empty()) {
            let write_runs = self.write_runs;
            self.finish_runs()?;
            self.write_runs = write_runs;
        }
        let height = self.state.height.map_or(Height::GENESIS, Height::next);
        let tip = self.tip().unwrap_or_else(BlockHash::all_zeros);
        if block.prev_hash != tip {
            return Err(IndexError::DoesNotConnect {
                height,
                hash: block.hash,
                tip,
            });
        }
        if self.reader.is_none() {
            self.reader = Some(self.store.writer_view()?);
        }
        let mut undo = UndoRecord::default();
        let mut tx_num = TxNum(self.state.tx_count);
        for tx in &block.txs {
            let mut touched_by_tx: Vec<HashX> = Vec::new();
            if !tx.is_coinbase {
                for prevout in &tx.inputs {
                    let young =
                        self.pending
                            .spend(&prevout.txid, prevout.vout, self.committed_tx_count);
                    let spent = match young {
                        Some(output) => output,
                        None => {
                            self.spend_stored(&prevout.txid, prevout.vout)
                                .and_then(|found| {
                                    found.ok_or(IndexError::MissingUtxo {
                                        spender: tx.txid,
                                        height,
                                        txid: prevout.txid,
                                        vout: prevout.vout,
                                    })
                                })?
                        }
                    };
                    if keep_undo {
                        undo.spent(&UndoOutput {
                            hashx: spent.hashx,
                            tx_num: spent.tx_num,
                            vout: prevout.vout,
                            value: spent.value,
                        });
                    }
                    self.pending
                        .spends
                        .push((spent.tx_num, prevout.vout, tx_num));
                    touched_by_tx.push(spent.hashx);
                }
            }
            let position = self.pending.txids.len();
            self.pending
                .output_starts
                .push(self.pending.outputs.len() as u32);
            self.pending.tx_positions.insert(tx.txid, position as u32);
            for output in &tx.outputs {
                let Some(hashx) = output.hashx else {
                    self.pending.outputs.push(PendingOutput {
                        hashx: HashX([0; crate::hashes::HASHX_LEN]),
                        value: GONE,
                    });
                    continue;
                };
                self.pending.outputs.push(PendingOutput {
                    hashx,
                    value: output.value,
                });
                touched_by_tx.push(hashx);
            }
            // One history row per (script, transaction), however often the tx touches it.
            touched_by_tx.sort_unstable();
            touched_by_tx.dedup();
            for hashx in touched_by_tx {
                let key = crate::schema::history_key(&hashx, tx_num);
                self.pending.history.push(u128::from_be_bytes(key));
                if self.track_touched {
                    self.pending.touched.insert(hashx);
                }
            }
            self.pending.txids.push(tx.txid);
            tx_num = TxNum(tx_num.0 + 1);
        }
        if keep_undo {
            self.pending.undo.push((height, undo.encode()));
        }
        self.pending.headers.push((height, block.header));
        self.pending.tx_counts.push(tx_num.0);
        self.state.height = Some(height);
        self.state.tip = Some(block.hash.to_string());
        self.state.tx_count = tx_num.0;
        Ok(())
    }

    /// Finds and removes a committed output spent by a pending block.
    fn spend_stored(&mut self, txid: &Txid, vout: u32) -> Result<Option<NewOutput>, IndexError> {
        let Some(reader) = self.reader.as_ref() else {
            return Err(corrupt("no read transaction while applying a block".into()).into());
        };
        let Some((hashx, tx_num, value)) = reader.unspent_output(txid, vout)? else {
            return Ok(None);
        };
        self.pending.spent_stored.push(SpentStored {
            hashx,
            tx_num,
            vout,
        });
        Ok(Some(NewOutput {
            hashx,
            tx_num,
            value,
        }))
    }
}
