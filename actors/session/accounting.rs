//! What a session costs (aiorpcX's accounting: bandwidth, requests, errors, decaying
//! over time), how it is throttled with its groups' standings, and what it reports to
//! the SessionManager.

use super::Session;
use crate::session_manager::{CostReport, SessionStats};
use actix::prelude::*;
use ferrumx::cost;
use ferrumx::protocol::RpcError;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often a session settles its cost decay and reports to the SessionManager.
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A cost change this large is reported at once rather than at the next interval.
const REPORT_AT_ONCE: f64 = cost::RECALC_DELTA;
/// A cost change smaller than this is not worth a report on its own.
const REPORT_STEP: f64 = 1.0;
/// Traffic counters alone (bytes and messages in and out) are reported at most this
/// often: every notification round changes them for every session, and the admin
/// commands ask the sessions for fresh figures anyway.
const TRAFFIC_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// aiorpcX's error codes for throttled sessions.
pub(super) const EXCESSIVE_RESOURCE_USAGE: i64 = -101;
pub(super) const SERVER_BUSY: i64 = -102;

impl Session {
    /// aiorpcX's `bump_cost`: never below zero.
    pub(super) fn bump_cost(&mut self, delta: f64) {
        self.cost = (self.cost + delta).max(0.0);
    }

    /// An error answered: counted, and priced (aiorpcX's `error_base_cost`).
    pub(super) fn count_error(&mut self, extra_cost: f64) {
        self.counters.errors += 1;
        self.bump_cost(cost::ERROR_BASE_COST + extra_cost);
    }

    pub(super) fn count_request(&mut self, method: &str, result: &Result<Value, RpcError>) {
        // Unknown methods are counted together: clients choose their names.
        let name = match result {
            Err(e) if e.code == RpcError::METHOD_NOT_FOUND => "invalid method",
            _ => method,
        };
        match self.requests.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert(name.to_owned(), 1);
            }
        }
        if result.is_err() {
            *self.method_errors.entry(name.to_owned()).or_default() += 1;
        }
    }

    /// Applies decay and re-derives the throttling from the session's cost and its
    /// groups' (aiorpcX's `recalc_concurrency`).
    pub(super) fn recalc(&mut self) {
        let now = Instant::now();
        self.cost = cost::decayed(
            self.cost,
            now.saturating_duration_since(self.cost_time),
            self.decay_per_sec,
        );
        self.cost_time = now;
        self.extra_cost =
            cost::extra_cost(self.cost, self.groups.iter().map(|g| (g.cost, g.weight)));
        self.throttling = self
            .shared
            .limits
            .session_throttling(self.cost, self.extra_cost);
    }

    /// After an error answered outside a request (invalid JSON, an invalid message):
    /// over the hard limit the session is refused and closed, as a request would be.
    /// (aiorpcX checks only when a request runs, so a junk flood is never cut off and
    /// its cost lands on its groups.) Whether it was closed.
    pub(super) fn close_if_excessive(&mut self, ctx: &mut Context<Self>) -> bool {
        self.recalc();
        if !self.throttling.excessive() {
            return false;
        }
        let error = RpcError::new(EXCESSIVE_RESOURCE_USAGE, "excessive resource usage");
        let text = self.reply(&Value::Null, Err(error));
        self.send(text, ctx);
        self.log_excessive();
        ctx.stop();
        true
    }

    pub(super) fn log_excessive(&self) {
        log::info!(
            "session {} ({}) closing: excessive resource usage (cost {:.0}, extra {:.0})",
            self.id,
            self.peer_text(),
            self.cost,
            self.extra_cost
        );
    }

    pub(super) fn stats(&self) -> SessionStats {
        SessionStats {
            client: self.client_name.clone(),
            subs: self.scripts.len() + self.txs.len(),
            subs_txo: self.outpoints.len(),
            pending: self.running + self.waiting.len(),
            concurrency: self.throttling.concurrency,
            paused: !self.pressure.reading_allowed(),
            ..self.counters.clone()
        }
    }

    /// Tells the SessionManager the session's cost and counters, if they changed.
    pub(super) fn report(&mut self, force: bool) {
        let moved = (self.cost - self.reported_cost).abs();
        let due = force
            || moved >= REPORT_STEP
            || !self.requests.is_empty()
            || self.state_changed()
            || (self.traffic_changed() && self.reported_at.elapsed() >= TRAFFIC_REPORT_INTERVAL);
        if !due {
            return;
        }
        let report = self.cost_report(self.stats());
        self.shared.manager.do_send(report);
    }

    /// Whether the traffic counters moved since the last report.
    fn traffic_changed(&self) -> bool {
        let (was, now) = (&self.reported, &self.counters);
        (was.recv_count, was.recv_size, was.send_count, was.send_size)
            != (now.recv_count, now.recv_size, now.send_count, now.send_size)
    }

    /// Whether [`Session::stats`] differs from the last report in anything but the
    /// traffic counters, compared in place: this runs every second for every session,
    /// and building the stats allocates.
    fn state_changed(&self) -> bool {
        // Every field named, so that a new one cannot be left out of the comparison.
        let SessionStats {
            client,
            protocol,
            subs,
            subs_txo,
            pending,
            txs_sent,
            errors,
            recv_count: _,
            recv_size: _,
            send_count: _,
            send_size: _,
            concurrency,
            paused,
        } = &self.reported;
        let now = &self.counters;
        *client != self.client_name
            || *protocol != now.protocol
            || *subs != self.scripts.len() + self.txs.len()
            || *subs_txo != self.outpoints.len()
            || *pending != self.running + self.waiting.len()
            || *concurrency != self.throttling.concurrency
            || *paused == self.pressure.reading_allowed()
            || (*txs_sent, *errors) != (now.txs_sent, now.errors)
    }

    /// The report of the session's cost and counters, which it has now reported.
    pub(super) fn cost_report(&mut self, stats: SessionStats) -> CostReport {
        self.reported_cost = self.cost;
        self.reported_at = Instant::now();
        self.reported = stats.clone();
        CostReport {
            id: self.id,
            cost: self.cost,
            extra_cost: self.extra_cost,
            stats,
            last_recv: self.last_recv,
            requests: self.requests.drain().collect(),
            errors: self.method_errors.drain().collect(),
        }
    }

    pub(super) fn report_if_large(&mut self) {
        if (self.cost - self.reported_cost).abs() > REPORT_AT_ONCE {
            self.recalc();
            self.report(true);
        }
    }
}
