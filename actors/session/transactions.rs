//! A session's transaction subscriptions (Fulcrum's `blockchain.transaction.subscribe`):
//! the status each client was last told (the height of the transaction's block, 0 in the
//! mempool, `null` when unknown), and a notification `[tx_hash, status]` whenever it
//! changes. The Notifier names the subscribed transactions that entered or left the
//! mempool, and after a block every subscribed one is looked at again (a lookup in the
//! txid index and one in the mempool: cheap enough for the session's own thread).

use super::Session;
use super::requests::{Place, with_query_context};
use crate::notifier::Notify;
use bitcoin::Txid;
use ferrumx::protocol::context::QueryContext;
use ferrumx::protocol::extras::tx_status;
use ferrumx::protocol::jsonrpc;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct TxSubscriptions {
    statuses: HashMap<Txid, Value>,
}

impl TxSubscriptions {
    /// Subscribes `txid`, whose client was just told `status`.
    pub(super) fn subscribe(&mut self, txid: Txid, status: Value) {
        self.statuses.insert(txid, status);
    }

    /// Whether `txid` was subscribed.
    pub(super) fn unsubscribe(&mut self, txid: &Txid) -> bool {
        self.statuses.remove(txid).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.statuses.len()
    }

    /// The notifications of the subscribed transactions whose status `notify` may have
    /// changed and did, in txid order; their new statuses are remembered.
    pub(super) fn changed(&mut self, ctx: &QueryContext, notify: &Notify) -> Vec<String> {
        let mut candidates: Vec<Txid> = if notify.chain_changed {
            self.statuses.keys().copied().collect()
        } else {
            notify
                .touched_txs
                .iter()
                .filter(|txid| self.statuses.contains_key(*txid))
                .copied()
                .collect()
        };
        candidates.sort_unstable();
        let mut lines = Vec::new();
        for txid in candidates {
            let status = match tx_status(ctx, &txid) {
                Ok(status) => status,
                Err(e) => {
                    log::error!("status of tx {txid} not read: {e}");
                    continue;
                }
            };
            if let Some(told) = self.statuses.get_mut(&txid)
                && *told != status
            {
                lines.push(jsonrpc::notification(
                    "blockchain.transaction.subscribe",
                    &json!([txid.to_string(), status]),
                ));
                *told = status;
            }
        }
        lines
    }
}

impl Session {
    /// The notifications of this session's subscribed transactions that `notify` changed.
    pub(super) fn tx_notifications(&mut self, notify: &Notify) -> Vec<String> {
        if !notify.chain_changed && notify.touched_txs.is_empty() {
            return Vec::new();
        }
        let Some(protocol) = &self.protocol else {
            return Vec::new();
        };
        let txs = &mut self.txs;
        with_query_context(&self.shared, protocol, None, Place::Inline, |ctx| {
            txs.changed(ctx, notify)
        })
        .unwrap_or_else(|e| {
            log::error!("index read failed: {e}");
            Vec::new()
        })
    }
}
