//! What protocol 1.7 adds to a session: outpoint subscriptions and their notifications,
//! the `server.ping` notifications it sends as noise, and the name of script
//! notifications. Also the admin interface's fresh look at a session ([`ReportNow`]).
//!
//! Outpoint statuses are recomputed after every block or mempool change the Notifier
//! tells the session of (it tells sessions following outpoints of every change) and sent
//! when they changed: funded, spent in the mempool, spent in a block, and back when a
//! reorg undoes either. ElectrumX sends a status whenever the change touched the
//! outpoint, even unchanged, but never sends one that changed without a touch (an
//! unconfirmed parent mined, -1 to 0); sending exactly the changes covers both.

use super::Session;
use super::query::{Place, with_query_context};
use crate::notifier::Subscription;
use crate::session_manager::{CostReport, ReportNow};
use actix::prelude::*;
use bitcoin::OutPoint;
use ferrumx::protocol::jsonrpc;
use ferrumx::protocol::outpoint;
use ferrumx::protocol::server::{NOISE_PING_LEN, noise_pings};
use ferrumx::protocol::version::ProtocolVersion;
use serde_json::{Value, json};

/// The method of script status notifications: protocol 1.7 names it after its
/// scriptPubKey methods (though, as ElectrumX, its first parameter is the script hash).
pub(super) fn script_notification(protocol: Option<&ProtocolVersion>) -> &'static str {
    if protocol.is_some_and(|p| p.is_at_least(&[1, 7])) {
        "blockchain.scriptpubkey.subscribe"
    } else {
        "blockchain.scripthash.subscribe"
    }
}

impl Session {
    /// Follows `outpoint`, whose status the client was just sent.
    pub(super) fn subscribe_outpoint(
        &mut self,
        outpoint: OutPoint,
        status: Value,
        ctx: &mut Context<Self>,
    ) {
        if self.outpoints.is_empty() {
            self.shared.notifier.do_send(Subscription::Outpoints {
                session: self.id,
                recipient: ctx.address().recipient(),
                following: true,
            });
        }
        self.outpoints.insert(outpoint, status);
    }

    /// Stops following `outpoint`; whether it was followed.
    pub(super) fn unsubscribe_outpoint(
        &mut self,
        outpoint: &OutPoint,
        ctx: &mut Context<Self>,
    ) -> bool {
        let followed = self.outpoints.remove(outpoint).is_some();
        if followed && self.outpoints.is_empty() {
            self.shared.notifier.do_send(Subscription::Outpoints {
                session: self.id,
                recipient: ctx.address().recipient(),
                following: false,
            });
        }
        followed
    }

    /// The notifications of the followed outpoints whose status changed, in outpoint
    /// order, recording the new statuses.
    pub(super) fn outpoint_lines(&mut self) -> Vec<String> {
        let Some(protocol) = self.protocol.clone().filter(|_| !self.outpoints.is_empty()) else {
            return Vec::new();
        };
        let mut followed: Vec<OutPoint> = self.outpoints.keys().copied().collect();
        followed.sort_unstable();
        let statuses =
            with_query_context(&self.shared, &protocol, None, Place::BlockingPool, |ctx| {
                followed
                    .iter()
                    .map(|op| {
                        outpoint::status(ctx, op).map(|(status, _)| outpoint::to_json(&status))
                    })
                    .collect::<Vec<_>>()
            });
        let statuses = match statuses {
            Ok(statuses) => statuses,
            Err(e) => {
                log::error!("index read failed: {e}");
                return Vec::new();
            }
        };
        let mut lines = Vec::new();
        for (outpoint, status) in followed.into_iter().zip(statuses) {
            let status = match status {
                Ok(status) => status,
                Err(e) => {
                    log::error!("outpoint {outpoint} status: {e}");
                    continue;
                }
            };
            let Some(last) = self.outpoints.get_mut(&outpoint) else {
                continue;
            };
            if *last == status {
                continue;
            }
            *last = status.clone();
            let params = json!([outpoint.txid.to_string(), outpoint.vout, status]);
            lines.push(jsonrpc::notification(
                "blockchain.outpoint.subscribe",
                &params,
            ));
        }
        lines
    }

    /// Protocol 1.7's noise after a round of `sent` notifications ([`noise_pings`]).
    pub(super) fn noise_lines(&mut self, height_changed: bool, sent: usize) -> Vec<String> {
        if !self
            .protocol
            .as_ref()
            .is_some_and(|p| p.is_at_least(&[1, 7]))
        {
            return Vec::new();
        }
        let pings = noise_pings(
            height_changed,
            sent,
            self.shared.server.mempool_refresh,
            &mut self.rng,
        );
        let ping = jsonrpc::notification("server.ping", &json!(["0".repeat(NOISE_PING_LEN)]));
        vec![ping; pings]
    }
}

impl Handler<ReportNow> for Session {
    type Result = MessageResult<ReportNow>;

    /// The admin interface wants this session's numbers as they are now.
    fn handle(&mut self, _: ReportNow, _: &mut Context<Self>) -> Self::Result {
        self.recalc();
        let stats = self.stats();
        let report: CostReport = self.cost_report(stats);
        MessageResult(report)
    }
}
