//! The SessionManager actor: the registry of client sessions and the owner of their
//! Group actors. Sessions report their cost and counters to it (batched, about once a
//! second); it puts each session in its groups (one per IP subnet, one per connection
//! time slice) and forwards members' costs to them (each group then tells its members
//! its standing, which with their own cost throttles them), refunds groups' retained
//! cost and retires spent groups, tells sessions how fast cost decays, pauses the
//! listeners at MAX_SESSIONS, closes idle sessions, writes the LOG_SESSIONS table, and
//! answers the admin interface (`getinfo`, `sessions`, `groups`, `disconnect`, `log`).
//!
//! Clients on loopback and private addresses belong to no subnet group, as in ElectrumX.
//! The environment variable `FERRUMX_TEST_GROUP_LOOPBACK=1` groups loopback clients by
//! subnet like public ones: it exists for tests, which only have loopback addresses.

use crate::gate::ListenerGate;
use crate::group::{Group, GroupSpent, GroupStanding, Join, Leave, MemberCost, Refund, Retire};
use crate::tables;
use actix::prelude::*;
use ferrumx::cost::{self, CostLimits};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admin;

pub use admin::{Disconnect, GetGroups, GetSessions, GetSummary, InspectSession, SetLogging};

/// Idle sessions are looked for this often (or every SESSION_TIMEOUT when shorter).
const STALE_SWEEP: Duration = Duration::from_secs(60);

/// How a client is connected (the first letter of the admin `sessions` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Tcp,
    Ssl,
    Ws,
    Wss,
}

impl SessionKind {
    fn letter(self) -> char {
        match self {
            SessionKind::Tcp => 'T',
            SessionKind::Ssl => 'S',
            SessionKind::Ws | SessionKind::Wss => 'W',
        }
    }
}

/// A session's counters, as it last reported them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionStats {
    /// Client name from `server.version` (at most 100 characters).
    pub client: String,
    /// Negotiated protocol version, empty before `server.version`.
    pub protocol: String,
    /// Script subscriptions (script hashes, or scriptPubKeys from protocol 1.7).
    pub subs: usize,
    /// Outpoint subscriptions (protocol 1.7).
    pub subs_txo: usize,
    /// Requests received and not yet answered.
    pub pending: usize,
    pub txs_sent: u64,
    pub errors: u64,
    pub recv_count: u64,
    pub recv_size: u64,
    pub send_count: u64,
    pub send_size: u64,
    /// Requests it may run at once now.
    pub concurrency: u32,
    /// Not reading from its socket (its replies are not being read fast enough).
    pub paused: bool,
}

// ---- Messages to sessions ----
//
// Defined here rather than beside the session: the manager reaches sessions only
// through `Recipient`s of these, so it does not depend on the session's module, which
// depends on this one (as `group::GroupStanding` and `notifier::Notify`).

/// How fast a session's cost decays now (slower when the server holds many
/// subscriptions). With its groups' standings and its own cost, the session derives its
/// concurrency limit and per-request sleep (`CostLimits::throttling`).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Decay {
    pub per_sec: f64,
}

/// Ends a session (admin `disconnect`, or idle past SESSION_TIMEOUT).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: &'static str,
}

/// Turns the logging of a session's requests on or off (admin `log`).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct SetLogged(pub bool);

/// Asked of a session when the admin interface wants its numbers as they are now: it
/// answers with the report it would send next.
#[derive(Message)]
#[rtype(result = "CostReport")]
pub struct ReportNow;

/// How the manager reaches a session: a recipient of each message it sends it.
pub struct SessionRecipients {
    pub decay: Recipient<Decay>,
    pub close: Recipient<Close>,
    pub logging: Recipient<SetLogged>,
    pub report: Recipient<ReportNow>,
}

// ---- Messages from sessions ----

/// A new session. The manager answers with a [`Decay`] to `session`, and puts it in
/// its groups, which tell `standing` their standing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub id: u64,
    pub peer: SocketAddr,
    pub kind: SessionKind,
    pub session: SessionRecipients,
    pub standing: Recipient<GroupStanding>,
}

/// A session's cost and counters; sent when its cost moved by more than 1 or once a
/// second when anything changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CostReport {
    pub id: u64,
    pub cost: f64,
    /// What the session's groups add to its cost.
    pub extra_cost: f64,
    pub stats: SessionStats,
    /// When the session last received a message (SESSION_TIMEOUT).
    pub last_recv: Instant,
    /// Requests per method since the previous report.
    pub requests: Vec<(String, u64)>,
    /// Errors answered per method since the previous report.
    pub errors: Vec<(String, u64)>,
}

/// A session ended; its cost is retained by its groups.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub id: u64,
    pub cost: f64,
}

// ---- The actor ----

pub struct SessionManagerSettings {
    pub limits: CostLimits,
    pub session_timeout: Duration,
    pub log_sessions: Option<Duration>,
    pub anon_logs: bool,
    pub ipv4_bits: u8,
    pub ipv6_bits: u8,
    /// Group loopback clients by subnet (tests only).
    pub group_loopback: bool,
    pub time_slice_weight: f64,
    pub gate: ListenerGate,
}

struct Entry {
    session: SessionRecipients,
    peer: SocketAddr,
    kind: SessionKind,
    connected: Instant,
    last_recv: Instant,
    cost: f64,
    extra_cost: f64,
    stats: SessionStats,
    groups: Vec<Arc<str>>,
    /// Requests per method since it connected.
    request_counts: BTreeMap<String, u64>,
    logged: bool,
    closing: bool,
}

/// A group actor and its members, as the manager knows them.
struct GroupHandle {
    group: Addr<Group>,
    members: BTreeSet<u64>,
}

pub struct SessionManager {
    settings: SessionManagerSettings,
    started: Instant,
    sessions: HashMap<u64, Entry>,
    groups: HashMap<Arc<str>, GroupHandle>,
    decay_per_sec: f64,
    request_counts: BTreeMap<String, u64>,
    error_counts: BTreeMap<String, u64>,
    txs_sent: u64,
    log_new: bool,
}

impl SessionManager {
    pub fn new(settings: SessionManagerSettings) -> SessionManager {
        let decay_per_sec = settings.limits.decay_per_sec(0);
        SessionManager {
            settings,
            started: Instant::now(),
            sessions: HashMap::new(),
            groups: HashMap::new(),
            decay_per_sec,
            request_counts: BTreeMap::new(),
            error_counts: BTreeMap::new(),
            txs_sent: 0,
            log_new: false,
        }
    }

    fn group_names(&self, peer: &SocketAddr) -> Vec<(String, f64)> {
        let s = &self.settings;
        let mut names = Vec::with_capacity(2);
        if let Some(subnet) =
            cost::subnet_group_name(peer.ip(), s.ipv4_bits, s.ipv6_bits, s.group_loopback)
        {
            names.push((subnet, cost::SUBNET_WEIGHT));
        }
        if s.time_slice_weight > 0.0 {
            names.push((
                cost::time_slice_name(self.started.elapsed()),
                s.time_slice_weight,
            ));
        }
        names
    }

    /// ElectrumX's `_recalc_concurrency` housekeeping: refund groups' retained cost (a
    /// spent group says so and is retired), and slow decay when the server holds many
    /// subscriptions.
    fn refund(&mut self) {
        let refund = self.settings.limits.group_refund(cost::RECALC_INTERVAL);
        for handle in self.groups.values() {
            handle.group.do_send(Refund(refund));
        }
        let subs = self
            .sessions
            .values()
            .map(|e| e.stats.subs + e.stats.subs_txo)
            .sum();
        let decay_per_sec = self.settings.limits.decay_per_sec(subs);
        if decay_per_sec != self.decay_per_sec {
            self.decay_per_sec = decay_per_sec;
            for entry in self.sessions.values() {
                entry.session.decay.do_send(Decay {
                    per_sec: decay_per_sec,
                });
            }
        }
    }

    fn close_stale(&mut self) {
        let timeout = self.settings.session_timeout;
        let mut closed = 0;
        for entry in self.sessions.values_mut() {
            if !entry.closing && entry.last_recv.elapsed() >= timeout {
                entry.closing = true;
                entry.session.close.do_send(Close {
                    reason: "idle past SESSION_TIMEOUT",
                });
                closed += 1;
            }
        }
        if closed > 0 {
            log::info!("closing {closed} stale sessions");
        }
    }

    /// LOG_SESSIONS: the sessions table as `ferrumx-rpc sessions` prints it (addresses
    /// hidden with ANON_LOGS), then the summary.
    fn log_sessions(&self) {
        let table = tables::sessions_log(&self.rows(), self.settings.anon_logs);
        log::info!("sessions:\n{table}");
        let summary = self.summary();
        let info = serde_json::json!({
            "groups": summary.groups,
            "request total": summary.request_total,
            "sessions": summary.sessions_json(),
            "txs sent": summary.txs_sent,
        });
        log::info!("{info}");
    }
}

impl Actor for SessionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Thousands of sessions report about once a second.
        // actix overflows computing with usize::MAX (it panics in debug builds when the
        // address is cloned): a bound far above any real backlog instead.
        ctx.set_mailbox_capacity(1 << 20);
        ctx.run_interval(cost::RECALC_INTERVAL, |manager, _| manager.refund());
        let sweep = STALE_SWEEP.min(self.settings.session_timeout);
        ctx.run_interval(sweep, |manager, _| manager.close_stale());
        if let Some(every) = self.settings.log_sessions {
            ctx.run_interval(every, |manager, _| manager.log_sessions());
        }
    }
}

impl Handler<Register> for SessionManager {
    type Result = ();

    fn handle(&mut self, register: Register, ctx: &mut Context<Self>) {
        let names = self.group_names(&register.peer);
        let step = self.settings.limits.standing_step();
        let mut groups = Vec::with_capacity(names.len());
        for (name, weight) in names {
            let name: Arc<str> = name.into();
            let handle = self.groups.entry(Arc::clone(&name)).or_insert_with(|| {
                let on_spent = ctx.address().recipient();
                GroupHandle {
                    group: Group::new(Arc::clone(&name), weight, step, on_spent).start(),
                    members: BTreeSet::new(),
                }
            });
            handle.members.insert(register.id);
            handle.group.do_send(Join {
                id: register.id,
                session: register.standing.clone(),
                cost: cost::CONNECTION_COST,
            });
            groups.push(name);
        }
        register.session.decay.do_send(Decay {
            per_sec: self.decay_per_sec,
        });
        if self.log_new {
            register.session.logging.do_send(SetLogged(true));
        }
        let now = Instant::now();
        self.sessions.insert(
            register.id,
            Entry {
                session: register.session,
                peer: register.peer,
                kind: register.kind,
                connected: now,
                last_recv: now,
                cost: cost::CONNECTION_COST,
                extra_cost: 0.0,
                stats: SessionStats {
                    concurrency: self.settings.limits.initial_concurrent,
                    ..SessionStats::default()
                },
                groups,
                request_counts: BTreeMap::new(),
                logged: self.log_new,
                closing: false,
            },
        );
    }
}

impl Handler<CostReport> for SessionManager {
    type Result = ();

    fn handle(&mut self, report: CostReport, _: &mut Context<Self>) {
        self.apply_report(report);
    }
}

impl SessionManager {
    fn apply_report(&mut self, report: CostReport) {
        let mut entry = self.sessions.get_mut(&report.id);
        for (method, n) in report.requests {
            if let Some(entry) = entry.as_deref_mut() {
                *entry.request_counts.entry(method.clone()).or_default() += n;
            }
            *self.request_counts.entry(method).or_default() += n;
        }
        for (method, n) in report.errors {
            *self.error_counts.entry(method).or_default() += n;
        }
        let Some(entry) = entry else {
            return;
        };
        self.txs_sent += report.stats.txs_sent.saturating_sub(entry.stats.txs_sent);
        if report.cost != entry.cost {
            for name in &entry.groups {
                if let Some(handle) = self.groups.get(name) {
                    handle.group.do_send(MemberCost {
                        id: report.id,
                        cost: report.cost,
                    });
                }
            }
        }
        entry.cost = report.cost;
        entry.extra_cost = report.extra_cost;
        entry.stats = report.stats;
        entry.last_recv = report.last_recv;
    }
}

impl Handler<Unregister> for SessionManager {
    type Result = ();

    fn handle(&mut self, gone: Unregister, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.remove(&gone.id) else {
            return;
        };
        for name in &entry.groups {
            if let Some(handle) = self.groups.get_mut(name) {
                handle.members.remove(&gone.id);
                handle.group.do_send(Leave {
                    id: gone.id,
                    cost: gone.cost,
                });
            }
        }
    }
}

impl Handler<GroupSpent> for SessionManager {
    type Result = ();

    fn handle(&mut self, spent: GroupSpent, _: &mut Context<Self>) {
        // A session may have joined since the group said so: then it lives on.
        if self
            .groups
            .get(&spent.name)
            .is_some_and(|handle| handle.members.is_empty())
            && let Some(handle) = self.groups.remove(&spent.name)
        {
            handle.group.do_send(Retire);
        }
    }
}
