//! A session's transaction subscriptions (Fulcrum's `blockchain.transaction.subscribe`):
//! the status each client was last told (the height of the transaction's block, 0 in the
//! mempool, `null` when unknown), and a notification `[tx_hash, status]` whenever it
//! changes. The Notifier names the subscribed transactions that entered or left the
//! mempool, and after a block every subscribed one is looked at again (a lookup in the
//! txid index and one in the mempool). A few hundred lookups are done on the session's
//! own thread; more go to the blocking pool, one batch at a time, so that a session with
//! many subscriptions never stalls the other sessions of its thread.

use super::query::{Place, with_query_context};
use super::{Session, SessionShared};
use crate::notifier::Notify;
use actix::prelude::*;
use bitcoin::Txid;
use ferrumx::protocol::extras::tx_status;
use ferrumx::protocol::jsonrpc;
use ferrumx::protocol::version::ProtocolVersion;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Most statuses looked up on the session's own thread for one notification.
const INLINE_LOOKUPS: usize = 256;

#[derive(Default)]
pub(super) struct TxSubscriptions {
    statuses: HashMap<Txid, Value>,
    /// Statuses are being looked up on the blocking pool; those asked meanwhile wait
    /// here, and are looked up afresh once that batch is applied.
    in_flight: bool,
    deferred: BTreeSet<Txid>,
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

    pub(super) fn contains(&self, txid: &Txid) -> bool {
        self.statuses.contains_key(txid)
    }

    pub(super) fn len(&self) -> usize {
        self.statuses.len()
    }

    /// The subscribed transactions whose status `notify` may have changed, in txid order.
    fn candidates(&self, notify: &Notify) -> BTreeSet<Txid> {
        if notify.chain_changed {
            self.statuses.keys().copied().collect()
        } else {
            notify
                .touched_txs
                .iter()
                .filter(|txid| self.statuses.contains_key(*txid))
                .copied()
                .collect()
        }
    }

    /// Records `looked_up` statuses; the notifications of those that changed.
    fn apply(&mut self, looked_up: Vec<(Txid, Value)>) -> Vec<String> {
        let mut lines = Vec::new();
        for (txid, status) in looked_up {
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

/// The current status of each of `txids` (those that cannot be read are left out).
fn look_up(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    txids: BTreeSet<Txid>,
    place: Place,
) -> Vec<(Txid, Value)> {
    let looked_up = with_query_context(shared, protocol, None, place, |ctx| {
        txids
            .into_iter()
            .filter_map(|txid| match tx_status(ctx, &txid) {
                Ok(status) => Some((txid, status)),
                Err(e) => {
                    log::error!("status of tx {txid} not read: {e}");
                    None
                }
            })
            .collect()
    });
    looked_up.unwrap_or_else(|e| {
        log::error!("index read failed: {e}");
        Vec::new()
    })
}

impl Session {
    /// The notifications of subscribed transactions that `notify` changed, when they
    /// can be found here; else they are sent once found on the blocking pool.
    pub(super) fn tx_notifications(
        &mut self,
        notify: &Notify,
        ctx: &mut Context<Self>,
    ) -> Vec<String> {
        let candidates = self.txs.candidates(notify);
        if candidates.is_empty() {
            return Vec::new();
        }
        if self.txs.in_flight {
            self.txs.deferred.extend(candidates);
            return Vec::new();
        }
        self.look_up_txs(candidates, ctx)
    }

    fn look_up_txs(&mut self, txids: BTreeSet<Txid>, ctx: &mut Context<Self>) -> Vec<String> {
        let Some(protocol) = self.protocol.clone() else {
            return Vec::new();
        };
        if txids.len() <= INLINE_LOOKUPS {
            let looked_up = look_up(&self.shared, &protocol, txids, Place::Inline);
            return self.txs.apply(looked_up);
        }
        self.txs.in_flight = true;
        let shared = Arc::clone(&self.shared);
        let work = tokio::task::spawn_blocking(move || {
            look_up(&shared, &protocol, txids, Place::BlockingPool)
        });
        ctx.spawn(work.into_actor(self).map(|looked_up, session, ctx| {
            session.txs.in_flight = false;
            let mut lines = session.txs.apply(looked_up.unwrap_or_default());
            let deferred = std::mem::take(&mut session.txs.deferred);
            if !deferred.is_empty() {
                lines.extend(session.look_up_txs(deferred, ctx));
            }
            if !lines.is_empty() {
                session.send(lines.join("\n"), ctx);
            }
        }));
        Vec::new()
    }
}
