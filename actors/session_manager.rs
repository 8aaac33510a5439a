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

use crate::group::{
    GetGroupState, Group, GroupSpent, GroupState, Join, Leave, MemberCost, Refund, Retire,
};
use crate::session::{Close, Decay, Session, SetLogged};
use actix::prelude::*;
use ferrumx::cost::{self, CostLimits};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Idle sessions are looked for this often (or every SESSION_TIMEOUT when shorter).
const STALE_SWEEP: Duration = Duration::from_secs(60);

/// MAX_SESSIONS at the door (ElectrumX's `_manage_servers`): the listeners wait on this
/// before accepting, and admit every connection they accept; the gate closes when the
/// admitted connections reach MAX_SESSIONS and opens again when they drop to 95% of it.
/// Counting at the door, rather than in the manager's registry, means a burst of
/// connections cannot slip in while registrations are still on their way.
#[derive(Clone)]
pub struct ListenerGate {
    inner: Arc<GateState>,
}

struct GateState {
    paused: watch::Sender<bool>,
    admitted: AtomicUsize,
    max_sessions: usize,
}

impl ListenerGate {
    pub fn new(max_sessions: usize) -> ListenerGate {
        ListenerGate {
            inner: Arc::new(GateState {
                paused: watch::Sender::new(false),
                admitted: AtomicUsize::new(0),
                max_sessions: max_sessions.max(1),
            }),
        }
    }

    /// Returns at once unless accepting is paused.
    pub async fn wait_open(&self) {
        let mut paused = self.inner.paused.subscribe();
        // The sender lives as long as this gate, so `wait_for` fails only on shutdown.
        let _ = paused.wait_for(|paused| !*paused).await;
    }

    /// A connection was accepted: it counts until its [`Admission`] is released.
    pub fn admit(&self) -> Admission {
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_add(1, Ordering::AcqRel) + 1;
        if count >= max && self.set_paused(true) {
            log::info!(
                "maximum sessions {max} reached, stopping new connections until count drops to {}",
                max * 19 / 20
            );
        }
        Admission {
            gate: Some(self.clone()),
        }
    }

    fn release(&self) {
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_sub(1, Ordering::AcqRel) - 1;
        if count <= max * 19 / 20 && self.set_paused(false) {
            log::info!("resuming listening for incoming connections");
        }
    }

    /// Whether this call changed the state.
    fn set_paused(&self, paused: bool) -> bool {
        self.inner.paused.send_if_modified(|current| {
            let changed = *current != paused;
            *current = paused;
            changed
        })
    }

    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }
}

/// One admitted connection; releasing it (or dropping it) makes room for another.
pub struct Admission {
    gate: Option<ListenerGate>,
}

impl Admission {
    pub fn release(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

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
    /// Script-hash subscriptions.
    pub subs: usize,
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

// ---- Messages from sessions ----

/// A new session. The manager answers with a [`Throttle`] to `session`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub id: u64,
    pub peer: SocketAddr,
    pub kind: SessionKind,
    pub session: Addr<Session>,
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

// ---- Messages from the admin interface ----

/// One row of the admin `sessions` table (ElectrumX's order).
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: u64,
    /// Transport letter, `C` if closing, `L` if logged, then the concurrency limit.
    pub flags: String,
    pub peer: SocketAddr,
    /// At most 17 characters.
    pub client: String,
    pub protocol: String,
    pub cost: f64,
    pub extra_cost: f64,
    pub reqs: usize,
    pub txs_sent: u64,
    pub subs: usize,
    pub recv_count: u64,
    pub recv_size: u64,
    pub send_count: u64,
    pub send_size: u64,
    /// How long the session has been connected.
    pub time: Duration,
}

/// The admin `sessions` command: every session, by id.
#[derive(Message)]
#[rtype(result = "Vec<SessionRow>")]
pub struct GetSessions;

/// One row of the admin `groups` table (ElectrumX's order).
#[derive(Clone, Debug)]
pub struct GroupRow {
    pub name: String,
    pub sessions: usize,
    /// What its members cost now.
    pub cost: f64,
    pub retained: f64,
    pub reqs: usize,
    pub txs_sent: u64,
    pub subs: usize,
    pub recv_count: u64,
    pub recv_size: u64,
    pub send_count: u64,
    pub send_size: u64,
}

/// The admin `groups` command: every group, by name.
#[derive(Message)]
#[rtype(result = "Vec<GroupRow>")]
pub struct GetGroups;

/// The sessions part of `getinfo`, plus the totals `getinfo` shows elsewhere.
#[derive(Clone, Debug, Default)]
pub struct SessionsSummary {
    pub count: usize,
    /// Sessions with at least one script-hash subscription.
    pub count_with_subs_sh: usize,
    /// Sessions with at least one outpoint subscription (protocol 1.7; none yet).
    pub count_with_subs_txo: usize,
    pub count_with_subs_any: usize,
    pub errors: u64,
    pub logged: usize,
    pub paused: usize,
    pub pending_requests: usize,
    pub subs_sh: usize,
    pub subs_txo: usize,
    pub groups: usize,
    /// Requests per method since start-up.
    pub request_counts: BTreeMap<String, u64>,
    pub request_total: u64,
    /// Errors answered per method since start-up.
    pub error_counts: BTreeMap<String, u64>,
    /// The sessions' own costs: their sum and the largest.
    pub cost_total: f64,
    pub cost_max: f64,
    /// Sessions whose concurrency is below INITIAL_CONCURRENT (throttled).
    pub throttled: usize,
    pub txs_sent: u64,
    /// Accepting is paused at MAX_SESSIONS.
    pub listeners_paused: bool,
}

impl SessionsSummary {
    /// `getinfo`'s "sessions" object, with ElectrumX's keys.
    pub fn sessions_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "count with subs_sh": self.count_with_subs_sh,
            "count with subs_txo": self.count_with_subs_txo,
            "count with subs_any": self.count_with_subs_any,
            "errors": self.errors,
            "logged": self.logged,
            "paused": self.paused,
            "pending requests": self.pending_requests,
            "subs_sh": self.subs_sh,
            "subs_txo": self.subs_txo,
        })
    }
}

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
    session: Addr<Session>,
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
        let subs = self.sessions.values().map(|e| e.stats.subs).sum();
        let decay_per_sec = self.settings.limits.decay_per_sec(subs);
        if decay_per_sec != self.decay_per_sec {
            self.decay_per_sec = decay_per_sec;
            for entry in self.sessions.values() {
                entry.session.do_send(Decay {
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
                entry.session.do_send(Close {
                    reason: "idle past SESSION_TIMEOUT",
                });
                closed += 1;
            }
        }
        if closed > 0 {
            log::info!("closing {closed} stale sessions");
        }
    }

    fn peer_text(&self, peer: &SocketAddr) -> String {
        if self.settings.anon_logs {
            "xx.xx.xx.xx:xx".into()
        } else {
            peer.to_string()
        }
    }

    fn rows(&self) -> Vec<SessionRow> {
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
                    reqs: e.stats.pending,
                    txs_sent: e.stats.txs_sent,
                    subs: e.stats.subs,
                    recv_count: e.stats.recv_count,
                    recv_size: e.stats.recv_size,
                    send_count: e.stats.send_count,
                    send_size: e.stats.send_size,
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
                    reqs: 0,
                    txs_sent: 0,
                    subs: 0,
                    recv_count: 0,
                    recv_size: 0,
                    send_count: 0,
                    send_size: 0,
                };
                for s in handle.members.iter().filter_map(|id| self.sessions.get(id)) {
                    row.reqs += s.stats.pending;
                    row.txs_sent += s.stats.txs_sent;
                    row.subs += s.stats.subs;
                    row.recv_count += s.stats.recv_count;
                    row.recv_size += s.stats.recv_size;
                    row.send_count += s.stats.send_count;
                    row.send_size += s.stats.send_size;
                }
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    fn summary(&self) -> SessionsSummary {
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
            summary.count_with_subs_any += usize::from(e.stats.subs > 0);
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

    /// LOG_SESSIONS: the sessions table, then the summary.
    fn log_sessions(&self) {
        let mut table = String::from(
            "    ID Flags  Client            Proto     Cost    XCost  Reqs   Txs  Subs    Recv Recv KB    Sent Sent KB   Time Peer",
        );
        for row in self.rows() {
            let _ = write!(
                table,
                "\n{:>6} {:<6} {:<17} {:<6} {:>8.0} {:>8.0} {:>5} {:>5} {:>5} {:>7} {:>7} {:>7} {:>7} {:>6} {}",
                row.id,
                row.flags,
                row.client,
                row.protocol,
                row.cost,
                row.extra_cost,
                row.reqs,
                row.txs_sent,
                row.subs,
                row.recv_count,
                row.recv_size / 1024,
                row.send_count,
                row.send_size / 1024,
                format_duration(row.time),
                self.peer_text(&row.peer),
            );
        }
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

/// ElectrumX's `formatted_time` for the sessions table: "1d 02h 03m", "5m 07s".
fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours:02}h {minutes:02}m")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m {seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
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
                session: register.session.clone(),
                cost: cost::CONNECTION_COST,
            });
            groups.push(name);
        }
        register.session.do_send(Decay {
            per_sec: self.decay_per_sec,
        });
        if self.log_new {
            register.session.do_send(SetLogged(true));
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

impl Handler<GetSessions> for SessionManager {
    type Result = MessageResult<GetSessions>;

    fn handle(&mut self, _: GetSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.rows())
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

impl Handler<GetGroups> for SessionManager {
    type Result = ResponseActFuture<Self, Vec<GroupRow>>;

    fn handle(&mut self, _: GetGroups, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .groups
            .values()
            .map(|handle| handle.group.send(GetGroupState))
            .collect();
        Box::pin(
            futures_util::future::join_all(asks)
                .into_actor(self)
                .map(|states, manager, _| {
                    manager.group_rows(states.into_iter().filter_map(Result::ok).collect())
                }),
        )
    }
}

impl Handler<GetSummary> for SessionManager {
    type Result = MessageResult<GetSummary>;

    fn handle(&mut self, _: GetSummary, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.summary())
    }
}

impl Handler<InspectSession> for SessionManager {
    type Result = Option<serde_json::Value>;

    fn handle(&mut self, inspect: InspectSession, _: &mut Context<Self>) -> Self::Result {
        let entry = self.sessions.get(&inspect.id)?;
        Some(serde_json::json!({
            "client_name": entry.stats.client,
            "request counts": entry.request_counts,
            "request total": entry.request_counts.values().sum::<u64>(),
            "subs_sh": entry.stats.subs,
            "subs_txo": 0,
            "errors": entry.stats.errors,
            "is_logged": entry.logged,
            "pending requests": entry.stats.pending,
            "txs sent": entry.stats.txs_sent,
            // ElectrumX's util.formatted_time, parts joined by a space.
            "conn_time": ferrumx::admin::formatted_time(entry.connected.elapsed().as_secs(), " "),
        }))
    }
}

impl Handler<Disconnect> for SessionManager {
    type Result = MessageResult<Disconnect>;

    fn handle(&mut self, disconnect: Disconnect, _: &mut Context<Self>) -> Self::Result {
        let close = |id: u64, entry: &mut Entry| {
            entry.closing = true;
            entry.session.do_send(Close {
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
            entry.session.do_send(SetLogged(entry.logged));
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
                        entry.session.do_send(SetLogged(false));
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
                    entry.session.do_send(SetLogged(true));
                }
                "logging all sessions".into()
            },
            toggle,
        ));
        MessageResult(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_electrumx() {
        assert_eq!(format_duration(Duration::from_secs(7)), "7s");
        assert_eq!(format_duration(Duration::from_secs(307)), "5m 07s");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h 02m 05s");
        assert_eq!(format_duration(Duration::from_secs(93_780)), "1d 02h 03m");
    }
}
