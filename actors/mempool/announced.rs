//! The mempool's side of ZMQ `hashtx`: the announced transactions are fetched and added
//! alone, at once, instead of listing the daemon's whole mempool; what cannot be added
//! on its own falls back to the full refresh.

use super::{MempoolActor, MempoolError, Synced};
use actix::prelude::*;
use bitcoin::Txid;
use ferrumx::daemon::DaemonError;
use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Instant;

/// What became of announced transactions.
enum Announced {
    /// All known already, confirmed, or gone from the daemon.
    Nothing,
    Added(Synced),
    /// Only a full refresh can take them, because of what the reason says.
    NeedsRefresh(&'static str),
}

impl MempoolActor {
    /// Adds the announced transactions and publishes what they touched; falls back to a
    /// full refresh when they cannot be added on their own.
    pub(super) fn add_announced(&mut self, announced: &[Txid], ctx: &mut Context<Self>) {
        let started = Instant::now();
        match self.take_announced(announced) {
            Ok(Announced::Nothing) => {}
            Ok(Announced::Added(synced)) => {
                log::debug!(
                    "mempool: {} announced txs added ({} dropped), {} scripts touched, in {} µs",
                    synced.added,
                    synced.dropped,
                    synced.touched.len(),
                    started.elapsed().as_micros()
                );
                let dropped = synced.dropped;
                self.publish(synced);
                // A parent not announced (yet), or a replaced transaction still here.
                if dropped > 0 {
                    self.refresh_soon(ctx);
                }
            }
            Ok(Announced::NeedsRefresh(why)) => {
                log::debug!("mempool: announced txs need a full refresh: {why}");
                self.refresh_soon(ctx);
            }
            Err(MempoolError::Daemon(DaemonError::ShuttingDown)) => {
                self.stopping = true;
                ctx.stop();
            }
            Err(e) => {
                log::warn!("mempool: announced txs not added ({e}); refreshing all");
                self.refresh_soon(ctx);
            }
        }
    }

    /// The announced transactions not yet known, fetched and added to the mempool at the
    /// height it is synced to. Transactions already confirmed (a daemon announces a
    /// block's too) are skipped. A height that moved needs the full refresh; so does a
    /// transaction the mempool drops (an input neither confirmed nor in the mempool, or
    /// spent by a mempool transaction it replaces), since only the daemon's whole list
    /// says which parents arrived and which transactions left.
    fn take_announced(&mut self, announced: &[Txid]) -> Result<Announced, MempoolError> {
        let (synced_height, mut new) = {
            let mempool = self.mempool.read().unwrap_or_else(PoisonError::into_inner);
            let Some(height) = mempool.synced_height() else {
                return Ok(Announced::NeedsRefresh("the mempool is not synced yet"));
            };
            let mut seen = HashSet::new();
            let new: Vec<Txid> = announced
                .iter()
                .filter(|txid| {
                    mempool.tx(txid).is_none()
                        && !self.unindexable.contains(*txid)
                        && seen.insert(**txid)
                })
                .copied()
                .collect();
            (height, new)
        };
        if new.is_empty() {
            return Ok(Announced::Nothing);
        }
        {
            let snapshot = self.store.snapshot()?;
            if snapshot.tip()?.map(|(h, _)| h) != Some(synced_height) {
                return Ok(Announced::NeedsRefresh("the index moved"));
            }
            let mut unconfirmed = Vec::with_capacity(new.len());
            for txid in new {
                if snapshot.tx_position(&txid)?.is_none() {
                    unconfirmed.push(txid);
                }
            }
            new = unconfirmed;
        }
        if new.is_empty() {
            return Ok(Announced::Nothing);
        }
        if self.client.get_block_count()? != synced_height {
            return Ok(Announced::NeedsRefresh(
                "the daemon has a block the index has not",
            ));
        }
        let txs = self.fetch(&new)?;
        if txs.is_empty() {
            return Ok(Announced::Nothing);
        }

        let batch: HashSet<Txid> = txs.iter().map(|tx| tx.txid).collect();
        let Some(confirmed) = self.confirmed_inputs(&txs, &batch, synced_height)? else {
            return Ok(Announced::NeedsRefresh("the index moved"));
        };

        let mut mempool = self.mempool.write().unwrap_or_else(PoisonError::into_inner);
        if mempool.synced_height() != Some(synced_height) {
            return Ok(Announced::NeedsRefresh("the mempool moved"));
        }
        let kept = mempool.len();
        let (touched, dropped) = mempool.add(txs, |prevout| confirmed.get(prevout).copied());
        let txids: HashSet<Txid> = batch
            .into_iter()
            .filter(|txid| mempool.tx(txid).is_some())
            .collect();
        mempool.refresh_histogram(Instant::now(), self.histogram_refresh);
        let count = mempool.len();
        drop(mempool);
        Ok(Announced::Added(Synced {
            height: synced_height,
            height_changed: false,
            touched,
            txids,
            txs: count,
            added: count - kept,
            removed: 0,
            dropped,
        }))
    }
}
