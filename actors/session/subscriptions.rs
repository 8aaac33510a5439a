//! A session's subscriptions and the notifications it sends: the new header, and the
//! statuses of the scripts it subscribed to, recomputed on its own thread when their
//! histories are short, else on the blocking pool, and sent in the order computed.

use super::query::{Place, with_query_context};
use super::{Session, SessionShared};
use crate::notifier::{Notify, Subscription};
use crate::supervisor::catch_panic;
use actix::prelude::*;
use ferrumx::hashes::{HashX, ScriptHash};
use ferrumx::protocol::RpcError;
use ferrumx::protocol::blockchain;
use ferrumx::protocol::jsonrpc;
use ferrumx::protocol::version::ProtocolVersion;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// A script, whether its notification is sent even if unchanged, and its new status
/// (with whether it holds mempool transactions).
type RecomputedStatus = (HashX, bool, Result<(Option<String>, bool), RpcError>);

/// Statuses of `scripts` recomputed for a notification on the blocking pool.
fn recompute_statuses(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    scripts: Vec<(HashX, bool)>,
) -> Vec<RecomputedStatus> {
    let statuses = with_query_context(shared, protocol, None, Place::BlockingPool, |ctx| {
        scripts
            .into_iter()
            .map(|(hashx, always)| (hashx, always, blockchain::script_status(ctx, &hashx)))
            .collect()
    });
    statuses.unwrap_or_else(|e| {
        log::error!("index read failed: {e}");
        Vec::new()
    })
}

/// Statuses of `scripts` computed on the session's own thread, in one snapshot, when
/// their confirmed histories hold at most INLINE_HISTORY_BUDGET entries in all; `None`
/// when they hold more (or the index cannot be read here): the blocking pool's work.
fn inline_statuses(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    scripts: &[(HashX, bool)],
) -> Option<Vec<RecomputedStatus>> {
    let statuses = with_query_context(shared, protocol, None, Place::Inline, |ctx| {
        let mut budget = INLINE_HISTORY_BUDGET;
        let short =
            scripts.iter().all(
                |(hashx, _)| match ctx.snapshot.history_len_within(hashx, budget) {
                    Ok(Some(len)) => {
                        budget -= len;
                        true
                    }
                    _ => false,
                },
            );
        short.then(|| {
            scripts
                .iter()
                .map(|&(hashx, always)| (hashx, always, blockchain::script_status(ctx, &hashx)))
                .collect()
        })
    });
    statuses.ok().flatten()
}

/// Statuses of touched scripts are computed on the session's own thread when their
/// confirmed histories hold this many entries in all (the common case: no thread hop, and
/// the header and statuses leave in one write); longer ones go to the blocking pool, so
/// that one big history never stalls the other sessions of this thread.
const INLINE_HISTORY_BUDGET: usize = 256;

/// Whether a session holding `held` subscriptions may take one more, under `max` (0: no
/// limit); renewing one it holds is always allowed and takes no room.
fn room_for_one_more(held: usize, max: usize, renewed: bool) -> Result<(), RpcError> {
    if renewed || max == 0 || held < max {
        Ok(())
    } else {
        Err(RpcError::subscription_limit(max))
    }
}

impl Session {
    /// Scripts, outpoints and transactions subscribed, as MAX_SESSION_SUBSCRIPTIONS
    /// counts them (the header subscription is one flag, not counted).
    pub(super) fn subscription_count(&self) -> usize {
        self.scripts.len() + self.outpoints.len() + self.txs.len()
    }

    /// Refuses a new subscription past MAX_SESSION_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS_PER_IP
    /// or MAX_TOTAL_SUBSCRIPTIONS, else takes its place in the server-wide count;
    /// `renewed`: the session already holds it. The session goes on either way.
    pub(super) fn room_for_subscription(&mut self, renewed: bool) -> Result<(), RpcError> {
        room_for_one_more(
            self.subscription_count(),
            self.shared.max_subscriptions,
            renewed,
        )?;
        if !renewed {
            self.shared
                .subscription_caps
                .reserve(self.peer.ip())
                .map_err(|reached| RpcError::new(RpcError::LIMIT_EXCEEDED, reached.to_string()))?;
            self.places += 1;
        }
        Ok(())
    }

    /// Gives back the places of subscriptions this session no longer holds.
    pub(super) fn settle_places(&mut self) {
        let held = self.subscription_count();
        if self.places > held {
            let freed = self.places - held;
            self.shared.subscription_caps.release(self.peer.ip(), freed);
            self.places = held;
        }
    }

    pub(super) fn notify(&mut self, notify: Notify, ctx: &mut Context<Self>) {
        let mut lines = Vec::new();
        if let Some(header) = &notify.header_line {
            lines.push(header.to_string());
        }
        lines.extend(self.tx_notifications(&notify, ctx));
        let mut scripts: Vec<(HashX, bool)> = notify
            .touched
            .iter()
            .filter(|h| self.scripts.contains_key(h))
            .map(|h| (*h, true))
            .collect();
        if notify.height_changed {
            let touched: HashSet<&HashX> = notify.touched.iter().collect();
            scripts.extend(
                self.scripts
                    .iter()
                    .filter(|(h, sub)| sub.with_mempool && !touched.contains(h))
                    .map(|(h, _)| (*h, false)),
            );
        }
        if self.statuses_in_flight {
            // Statuses leave in the order they were computed: these wait for the
            // computation under way, then are computed afresh.
            for (hashx, always) in scripts {
                *self.deferred_statuses.entry(hashx).or_default() |= always;
            }
            scripts = Vec::new();
        }
        // Protocol 1.7: outpoints after scripts, then noise (counting what is surely
        // sent: the header, touched scripts and changed outpoints).
        let mut trailer = self.outpoint_lines();
        let sent = lines.len() + scripts.iter().filter(|(_, always)| *always).count();
        trailer.extend(self.noise_lines(notify.height_changed, sent + trailer.len()));
        self.send_statuses(lines, scripts, ctx);
        if !trailer.is_empty() {
            self.send(trailer.join("\n"), ctx);
        }
    }

    /// Sends `lines` followed by the statuses of `scripts`, computed here when their
    /// histories are short, else on the blocking pool (one computation at a time).
    fn send_statuses(
        &mut self,
        mut lines: Vec<String>,
        scripts: Vec<(HashX, bool)>,
        ctx: &mut Context<Self>,
    ) {
        let protocol = self.protocol.as_ref().filter(|_| !scripts.is_empty());
        let inline = protocol.map(|p| inline_statuses(&self.shared, p, &scripts));
        let Some(pooled) = protocol.cloned().filter(|_| matches!(inline, Some(None))) else {
            if let Some(Some(statuses)) = inline {
                lines.extend(self.status_lines(statuses));
            }
            if !lines.is_empty() {
                self.send(lines.join("\n"), ctx);
            }
            return;
        };
        if !lines.is_empty() {
            self.send(lines.join("\n"), ctx);
        }
        self.statuses_in_flight = true;
        let shared = Arc::clone(&self.shared);
        let work =
            tokio::task::spawn_blocking(move || recompute_statuses(&shared, &pooled, scripts));
        ctx.spawn(work.into_actor(self).map(|statuses, session, ctx| {
            session.statuses_in_flight = false;
            let lines = statuses
                .map(|s| session.status_lines(s))
                .unwrap_or_default();
            let deferred = std::mem::take(&mut session.deferred_statuses);
            session.send_statuses(lines, deferred.into_iter().collect(), ctx);
        }));
    }

    /// The status notifications to send, recording the new statuses: every touched
    /// script (even unchanged, as ElectrumX), and the others only if they changed.
    fn status_lines(&mut self, statuses: Vec<RecomputedStatus>) -> Vec<String> {
        let mut lines = Vec::with_capacity(statuses.len());
        for (hashx, always, status) in statuses {
            let Some(sub) = self.scripts.get_mut(&hashx) else {
                continue;
            };
            let script_hash = sub.script_hash.to_hex();
            let status = match status {
                Ok((status, with_mempool)) => {
                    let changed = status != sub.status;
                    sub.status = status.clone();
                    sub.with_mempool = with_mempool;
                    if !always && !changed {
                        continue;
                    }
                    status.map_or(Value::Null, Value::String)
                }
                Err(_) => {
                    // ElectrumX drops a subscription whose status cannot be computed
                    // (history too large) and says so with a null status.
                    self.scripts.remove(&hashx);
                    self.shared.notifier.do_send(Subscription::Unsubscribe {
                        session: self.id,
                        hashx,
                    });
                    Value::Null
                }
            };
            let params = json!([script_hash, status]);
            lines.push(jsonrpc::notification(
                super::protocol17::script_notification(self.protocol.as_ref()),
                &params,
            ));
        }
        lines
    }
}

/// A script the client subscribed to, and its status as last sent.
pub(super) struct ScriptSubscription {
    pub(super) script_hash: ScriptHash,
    pub(super) status: Option<String>,
    /// The status included mempool transactions: recompute it on every new block.
    pub(super) with_mempool: bool,
}

impl Handler<Notify> for Session {
    type Result = ();

    /// A new height and/or touched scripts: the header notification first, then the
    /// statuses: every touched script is sent (even unchanged, as ElectrumX), and on a
    /// new height those that held mempool transactions are sent if they changed.
    fn handle(&mut self, notify: Notify, ctx: &mut Context<Self>) {
        let id = self.id;
        if catch_panic(format_args!("session {id}"), || self.notify(notify, ctx)).is_err() {
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_stop_at_the_limit_except_renewals() {
        assert_eq!(room_for_one_more(4, 5, false), Ok(()));
        let refused = room_for_one_more(5, 5, false).unwrap_err();
        assert_eq!(refused.code, RpcError::LIMIT_EXCEEDED);
        assert_eq!(
            refused.message,
            "Subscription limit reached: at most 5 per session (MAX_SESSION_SUBSCRIPTIONS)"
        );
        assert_eq!(
            room_for_one_more(5, 5, true),
            Ok(()),
            "a renewal takes no room"
        );
        assert_eq!(
            room_for_one_more(1_000_000, 0, false),
            Ok(()),
            "0: no limit"
        );
    }
}
