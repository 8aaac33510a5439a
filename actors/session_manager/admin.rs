//! What the session manager answers the admin interface: the `sessions` and `groups`
//! rows, the `getinfo` summary, `inspect_session`, and the `disconnect` and `log`
//! commands on session ids, group names or `all`.

use super::SessionStats;
use super::{Close, Entry, ReportNow, SessionManager, SetLogged};
use crate::group::{GetGroupState, GroupState};
use crate::tables::{GroupRow, SessionRow, SessionsSummary, Traffic};
use actix::prelude::*;
use std::fmt::Write as _;

/// The admin `sessions` command: every session, by id.
#[derive(Message)]
#[rtype(result = "Vec<SessionRow>")]
pub struct GetSessions;

/// The admin `groups` command: every group, by name.
#[derive(Message)]
#[rtype(result = "Vec<GroupRow>")]
pub struct GetGroups;

#[derive(Message)]
#[rtype(result = "SessionsSummary")]
pub struct GetSummary;

/// The admin `inspect_session` command: ElectrumX 2.0's dict for one session, `None`
/// when there is no such session.
#[derive(Message)]
#[rtype(result = "Option<serde_json::Value>")]
pub struct InspectSession {
    pub id: u64,
}

/// The admin `disconnect` command: session ids, group names or `all`. Answers one line
/// per target, as ElectrumX ("disconnecting session 5", "unknown: x").
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Disconnect {
    pub targets: Vec<String>,
}

/// The admin `log` command: session ids, group names, `all`, `none` or `new` toggle the
/// logging of requests. Answers one line per target, as ElectrumX.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct SetLogging {
    pub targets: Vec<String>,
}

impl SessionManager {
    pub(super) fn rows(&self) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .sessions
            .iter()
            .map(|(&id, e)| {
                let mut flags = String::new();
                flags.push(e.kind.letter());
                if e.closing {
                    flags.push('C');
                }
                if e.logged {
                    flags.push('L');
                }
                let _ = write!(flags, "{}", e.stats.concurrency);
                SessionRow {
                    id,
                    flags,
                    peer: e.peer,
                    client: e.stats.client.chars().take(17).collect(),
                    protocol: e.stats.protocol.clone(),
                    cost: e.cost,
                    extra_cost: e.extra_cost,
                    traffic: traffic(&e.stats),
                    time: e.connected.elapsed(),
                }
            })
            .collect();
        rows.sort_by_key(|row| row.id);
        rows
    }

    /// The `groups` table from the groups' own states (retained and members' cost) and
    /// the members' counters.
    fn group_rows(&self, states: Vec<GroupState>) -> Vec<GroupRow> {
        let mut rows: Vec<GroupRow> = states
            .into_iter()
            .filter_map(|state| {
                let handle = self.groups.get(&state.name)?;
                let mut row = GroupRow {
                    name: state.name.to_string(),
                    sessions: handle.members.len(),
                    cost: state.members_cost,
                    retained: state.retained,
                    traffic: Traffic::default(),
                };
                for s in handle.members.iter().filter_map(|id| self.sessions.get(id)) {
                    row.traffic += traffic(&s.stats);
                }
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    pub(super) fn summary(&self) -> SessionsSummary {
        let mut summary = SessionsSummary {
            count: self.sessions.len(),
            groups: self.groups.len(),
            request_counts: self.request_counts.clone(),
            request_total: self.request_counts.values().sum(),
            error_counts: self.error_counts.clone(),
            txs_sent: self.txs_sent,
            listeners_paused: self.settings.gate.is_paused(),
            ..SessionsSummary::default()
        };
        for e in self.sessions.values() {
            summary.count_with_subs_sh += usize::from(e.stats.subs > 0);
            summary.count_with_subs_txo += usize::from(e.stats.subs_txo > 0);
            summary.count_with_subs_any += usize::from(e.stats.subs + e.stats.subs_txo > 0);
            summary.subs_txo += e.stats.subs_txo;
            summary.closing += usize::from(e.closing);
            summary.errors += e.stats.errors;
            summary.logged += usize::from(e.logged);
            summary.paused += usize::from(e.stats.paused);
            summary.pending_requests += e.stats.pending;
            summary.subs_sh += e.stats.subs;
            summary.cost_total += e.cost;
            summary.cost_max = summary.cost_max.max(e.cost);
            summary.throttled +=
                usize::from(e.stats.concurrency < self.settings.limits.initial_concurrent);
        }
        summary
    }

    /// Resolves admin targets: `all`, session ids, group names; `on_session` acts on one
    /// session and says what it did.
    fn for_targets(
        &mut self,
        targets: Vec<String>,
        mut on_all: impl FnMut(&mut Self) -> String,
        mut on_session: impl FnMut(u64, &mut Entry) -> String,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        for target in targets {
            if target == "all" {
                lines.push(on_all(self));
            } else if let Some(entry) = target
                .parse::<u64>()
                .ok()
                .and_then(|id| Some(id).zip(self.sessions.get_mut(&id)))
            {
                lines.push(on_session(entry.0, entry.1));
            } else if let Some(group) = self.groups.get(target.as_str()) {
                let members: Vec<u64> = group.members.iter().copied().collect();
                for id in members {
                    if let Some(entry) = self.sessions.get_mut(&id) {
                        lines.push(on_session(id, entry));
                    }
                }
            } else {
                lines.push(format!("unknown: {target}"));
            }
        }
        lines
    }
}

/// How long the admin interface waits for a session's numbers: a session that does not
/// answer by then is shown as it last reported.
const FRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl SessionManager {
    /// Asks every session for its numbers as they are now, then answers from them: the
    /// admin interface shows each session as it is at the moment of the call, not as it
    /// last reported (about a second earlier).
    fn fresh<R: 'static>(
        &self,
        answer: impl FnOnce(&mut SessionManager) -> R + 'static,
    ) -> ResponseActFuture<Self, R> {
        let asks: Vec<_> = self
            .sessions
            .values()
            .map(|entry| entry.session.report.send(ReportNow).timeout(FRESH_WAIT))
            .collect();
        Box::pin(futures_util::future::join_all(asks).into_actor(self).map(
            |reports, manager, _| {
                for report in reports.into_iter().flatten() {
                    manager.apply_report(report);
                }
                answer(manager)
            },
        ))
    }
}

impl Handler<GetSessions> for SessionManager {
    type Result = ResponseActFuture<Self, Vec<SessionRow>>;

    fn handle(&mut self, _: GetSessions, _: &mut Context<Self>) -> Self::Result {
        self.fresh(|manager| manager.rows())
    }
}

impl Handler<GetGroups> for SessionManager {
    type Result = ResponseActFuture<Self, Vec<GroupRow>>;

    fn handle(&mut self, _: GetGroups, _: &mut Context<Self>) -> Self::Result {
        // The sessions' fresh costs reach their groups before the groups are asked.
        Box::pin(
            self.fresh(|manager| {
                manager
                    .groups
                    .values()
                    .map(|handle| handle.group.send(GetGroupState))
                    .collect::<Vec<_>>()
            })
            .then(|asks, manager, _| {
                futures_util::future::join_all(asks)
                    .into_actor(manager)
                    .map(|states, manager, _| {
                        manager.group_rows(states.into_iter().filter_map(Result::ok).collect())
                    })
            }),
        )
    }
}

impl Handler<GetSummary> for SessionManager {
    type Result = ResponseActFuture<Self, SessionsSummary>;

    fn handle(&mut self, _: GetSummary, _: &mut Context<Self>) -> Self::Result {
        self.fresh(|manager| manager.summary())
    }
}

impl Handler<InspectSession> for SessionManager {
    type Result = ResponseActFuture<Self, Option<serde_json::Value>>;

    fn handle(&mut self, inspect: InspectSession, _: &mut Context<Self>) -> Self::Result {
        self.fresh(move |manager| manager.inspect(inspect.id))
    }
}

impl SessionManager {
    /// ElectrumX 2.0's `inspect_session` dict.
    fn inspect(&self, id: u64) -> Option<serde_json::Value> {
        let entry = self.sessions.get(&id)?;
        Some(serde_json::json!({
            "client_name": entry.stats.client,
            "request counts": entry.request_counts,
            "request total": entry.request_counts.values().sum::<u64>(),
            "subs_sh": entry.stats.subs,
            "subs_txo": entry.stats.subs_txo,
            "errors": entry.stats.errors,
            "is_logged": entry.logged,
            "pending requests": entry.stats.pending,
            "txs sent": entry.stats.txs_sent,
            // ElectrumX's util.formatted_time, parts joined by a space.
            "conn_time": ferrumx::python::formatted_time(entry.connected.elapsed().as_secs(), " "),
        }))
    }
}

impl Handler<Disconnect> for SessionManager {
    type Result = MessageResult<Disconnect>;

    fn handle(&mut self, disconnect: Disconnect, _: &mut Context<Self>) -> Self::Result {
        let close = |id: u64, entry: &mut Entry| {
            entry.closing = true;
            entry.session.close.do_send(Close {
                reason: "disconnected by the operator",
            });
            format!("disconnecting session {id}")
        };
        let lines = self.for_targets(
            disconnect.targets,
            |manager| {
                for (&id, entry) in &mut manager.sessions {
                    close(id, entry);
                }
                "disconnecting all sessions".into()
            },
            close,
        );
        MessageResult(lines)
    }
}

impl Handler<SetLogging> for SessionManager {
    type Result = MessageResult<SetLogging>;

    fn handle(&mut self, logging: SetLogging, _: &mut Context<Self>) -> Self::Result {
        let toggle = |id: u64, entry: &mut Entry| {
            entry.logged = !entry.logged;
            entry.session.logging.do_send(SetLogged(entry.logged));
            if entry.logged {
                format!("logging session {id}")
            } else {
                format!("not logging session {id}")
            }
        };
        let mut lines = Vec::new();
        let mut rest = Vec::new();
        for target in logging.targets {
            match target.as_str() {
                "none" => {
                    self.log_new = false;
                    for entry in self.sessions.values_mut() {
                        entry.logged = false;
                        entry.session.logging.do_send(SetLogged(false));
                    }
                    lines.push("logging no sessions".into());
                }
                "new" => {
                    self.log_new = !self.log_new;
                    lines.push(if self.log_new {
                        "logging new sessions".into()
                    } else {
                        "not logging new sessions".into()
                    });
                }
                _ => rest.push(target),
            }
        }
        lines.extend(self.for_targets(
            rest,
            |manager| {
                manager.log_new = true;
                for entry in manager.sessions.values_mut() {
                    entry.logged = true;
                    entry.session.logging.do_send(SetLogged(true));
                }
                "logging all sessions".into()
            },
            toggle,
        ));
        MessageResult(lines)
    }
}

/// A session's columns of the admin tables, from its last report.
fn traffic(stats: &SessionStats) -> Traffic {
    Traffic {
        reqs: stats.pending,
        txs_sent: stats.txs_sent,
        subs: stats.subs + stats.subs_txo,
        recv_count: stats.recv_count,
        recv_size: stats.recv_size,
        send_count: stats.send_count,
        send_size: stats.send_size,
    }
}
