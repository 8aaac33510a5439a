//! The Session actor: one per client connection. It decodes requests, negotiates the
//! protocol version, answers queries through the method table (`protocol::methods`) from
//! LMDB snapshots — those that need only the index and the mempool on its own thread,
//! the others on the blocking pool, never through another actor's mailbox — applies
//! their effects (subscriptions, mempool refreshes), and writes replies through a
//! bounded queue. It keeps
//! its cost (requests, bytes, errors; see `ferrumx::cost`) and reports it to the
//! SessionManager, which answers with the extra cost of the session's groups: together
//! they limit how many requests run at once and how long each waits, and past the hard
//! limit the session is refused and closed. A client that does not read its replies is
//! no longer read from, and is disconnected when its queue overflows or a write stalls.

mod protocol17;

use crate::framing::LineCodec;
use crate::gate::{Admission, ListenerGate};
use crate::group::GroupStanding;
use crate::mempool::Refresh;
use crate::notifier::{Notifier, Notify, Subscription};
use crate::session_manager::{
    CostReport, Register, SessionKind, SessionManager, SessionStats, Unregister,
};
use crate::supervisor::{catch_panic, faults_enabled, injected_panic};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use ferrumx::config::Config;
use ferrumx::cost::{self, CostLimits, Throttling};
use ferrumx::daemon::DaemonPool;
use ferrumx::hashes::{HashX, ScriptHash};
use ferrumx::latency::LatencyHistogram;
use ferrumx::mempool::SharedMempool;
use ferrumx::peers::{PeerDirectory, PeerSettings};
use ferrumx::protocol::blockchain;
use ferrumx::protocol::context::{QueryContext, QueryState};
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use ferrumx::protocol::methods::{self, Answer, Effect, Source};
use ferrumx::protocol::server::ServerInfo;
use ferrumx::protocol::server::{self, VersionOutcome};
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::protocol::{RpcError, with_commas};
use ferrumx::store::{Store, StoreError};
use futures_util::StreamExt;
use serde_json::Value;
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

// ---- Messages to sessions (from the SessionManager) ----

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

/// Replies a session may have queued for a slow reader before it is disconnected.
const OUTGOING_QUEUE: usize = 256;
/// Bytes of queued replies above which the client's socket is no longer read.
const HIGH_WATER: usize = 1 << 20;
/// Requests waiting for a concurrency slot above which the socket is no longer read.
const MAX_WAITING: usize = 64;
/// A client whose replies are held back (reading paused) and that takes none of them
/// for this long is disconnected.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// How often a session settles its cost decay and reports to the SessionManager.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A cost change this large is reported at once rather than at the next interval.
const REPORT_AT_ONCE: f64 = cost::RECALC_DELTA;
/// A cost change smaller than this is not worth a report on its own.
const REPORT_STEP: f64 = 1.0;
/// aiorpcX's error codes for throttled sessions.
const EXCESSIVE_RESOURCE_USAGE: i64 = -101;
const SERVER_BUSY: i64 = -102;

/// The limits every session is held to: COST_SOFT_LIMIT, COST_HARD_LIMIT,
/// INITIAL_CONCURRENT, REQUEST_SLEEP, BANDWIDTH_UNIT_COST.
pub fn cost_limits(config: &Config) -> CostLimits {
    CostLimits {
        soft: config.cost_soft_limit as f64,
        hard: config.cost_hard_limit as f64,
        initial_concurrent: config.initial_concurrent,
        request_sleep: config.request_sleep,
        bandwidth_unit_cost: config.bandwidth_unit_cost as f64,
    }
}

/// What the `server.*` methods report, from the configuration: DONATION_ADDRESS,
/// BANNER_FILE, REPORT_SERVICES, DROP_CLIENT, and the peer directory (PEER_* settings,
/// this server's identities as peers, which `server.features` describes).
pub fn server_info(config: &Config) -> ServerInfo {
    let mut server = ServerInfo {
        donation_address: config.donation_address.clone(),
        banner_file: config
            .banner_file
            .as_ref()
            .map(|path| config.db_directory.join(path)),
        report_services: config.report_services.clone(),
        max_send: config.max_send,
        mempool_refresh: config.daemon_poll_interval_mempool,
        // Validated with the configuration.
        drop_client: config
            .drop_client
            .as_deref()
            .and_then(|pattern| ferrumx::config::drop_client_regex(pattern).ok()),
        ..ServerInfo::new(config.coin)
    };
    let features = server::features_of(&server);
    server.peers = Arc::new(PeerDirectory::new(PeerSettings::from_config(
        config, &features,
    )));
    server
}

/// What every session shares.
pub struct SessionShared {
    pub store: Arc<Store>,
    pub mempool: SharedMempool,
    pub notifier: Addr<Notifier>,
    /// Asked to refresh after a broadcast, so the new tx shows at once.
    pub mempool_refresh: Recipient<Refresh>,
    pub daemon: DaemonPool,
    pub server: ServerInfo,
    /// The caches and counters all sessions' queries share.
    pub state: QueryState,
    pub max_send: usize,
    pub max_recv: usize,
    pub history_limit: usize,
    pub manager: Addr<SessionManager>,
    /// Listeners wait on it before accepting (MAX_SESSIONS).
    pub gate: ListenerGate,
    pub limits: CostLimits,
    /// REQUEST_TIMEOUT: from receipt to answer.
    pub request_timeout: Duration,
    /// ANON_LOGS: client addresses are not logged.
    pub anon_logs: bool,
    /// Time from a request's receipt to its answer, for the metrics.
    pub latency: LatencyHistogram,
}

/// Shared by a session, the task writing its replies and the stream reading its
/// requests: reading pauses while too much is queued either way.
#[derive(Default)]
struct Backpressure {
    /// Bytes queued for the writer.
    queued: AtomicUsize,
    /// Requests waiting for a concurrency slot.
    waiting: AtomicUsize,
    /// Replies the writer has taken: progress, for a paused client.
    taken: AtomicUsize,
    /// The writer ended (the connection failed or a write stalled too long).
    closed: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Backpressure {
    fn reading_allowed(&self) -> bool {
        self.queued.load(Ordering::Acquire) < HIGH_WATER
            && self.waiting.load(Ordering::Acquire) < MAX_WAITING
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    async fn wait_closed(&self) {
        while !self.is_closed() {
            self.wake.notified().await;
        }
    }
}

/// The replies of one session, in order, for the task that writes them (each ends with
/// a newline). Dropping it tells the session its connection is gone.
pub struct OutgoingQueue {
    queue: mpsc::Receiver<Bytes>,
    pressure: Arc<Backpressure>,
}

impl OutgoingQueue {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let bytes = self.queue.recv().await?;
        Some(self.taken(bytes))
    }

    /// The next reply if one is queued already.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let bytes = self.queue.try_recv().ok()?;
        Some(self.taken(bytes))
    }

    fn taken(&self, bytes: Bytes) -> Bytes {
        self.pressure
            .queued
            .fetch_sub(bytes.len(), Ordering::AcqRel);
        self.pressure.taken.fetch_add(1, Ordering::AcqRel);
        self.pressure.wake.notify_one();
        bytes
    }
}

impl Drop for OutgoingQueue {
    fn drop(&mut self) {
        self.pressure.closed.store(true, Ordering::Release);
        self.pressure.wake.notify_one();
    }
}

/// The session's incoming messages, read only while the session keeps up; ends when the
/// writer has ended.
fn gated<S>(
    incoming: S,
    pressure: Arc<Backpressure>,
) -> impl futures_core::Stream<Item = S::Item> + 'static
where
    S: futures_core::Stream + 'static,
{
    futures_util::stream::unfold(
        (Box::pin(incoming), pressure),
        |(mut incoming, pressure)| async move {
            while !pressure.reading_allowed() && !pressure.is_closed() {
                pressure.wake.notified().await;
            }
            if pressure.is_closed() {
                return None;
            }
            let item = tokio::select! {
                item = incoming.next() => item?,
                () = pressure.wait_closed() => return None,
            };
            Some((item, (incoming, pressure)))
        },
    )
}

pub struct Session {
    id: u64,
    peer: SocketAddr,
    kind: SessionKind,
    shared: Arc<SessionShared>,
    outgoing: mpsc::Sender<Bytes>,
    pressure: Arc<Backpressure>,
    protocol: Option<ProtocolVersion>,
    client_name: String,
    /// The JSON-RPC flavour, fixed by the first message.
    dialect: Option<Dialect>,
    /// Subscribed scripts and their last status.
    scripts: HashMap<HashX, ScriptSubscription>,
    /// Followed outpoints (protocol 1.7) and their last status.
    outpoints: HashMap<bitcoin::OutPoint, Value>,
    /// Draws protocol 1.7's noise pings.
    rng: ferrumx::rng::SplitMix64,
    /// The session's own cost, decayed up to `cost_time`.
    cost: f64,
    cost_time: Instant,
    decay_per_sec: f64,
    /// Its groups' standings (name, cost, weight), as they announce them.
    groups: Vec<GroupStanding>,
    /// What its groups add to its own cost.
    extra_cost: f64,
    throttling: Throttling,
    /// Requests running, and those waiting for a slot.
    running: usize,
    waiting: VecDeque<Pending>,
    counters: SessionStats,
    last_recv: Instant,
    requests: HashMap<String, u64>,
    /// Errors answered per method since the last report.
    method_errors: HashMap<String, u64>,
    reported_cost: f64,
    reported: SessionStats,
    /// Requests are logged (admin `log`).
    logged: bool,
    /// While replies are held back: the writer's progress count and since when it has
    /// not moved.
    stall: Option<(usize, Instant)>,
    /// Its place under MAX_SESSIONS, released when it stops.
    admission: Admission,
    /// Statuses are being computed on the blocking pool; those asked meanwhile wait in
    /// `deferred_statuses` (script, whether to send it even if unchanged).
    statuses_in_flight: bool,
    deferred_statuses: HashMap<HashX, bool>,
}

/// A request (or batch) waiting for a concurrency slot.
struct Pending {
    work: Work,
    received: Instant,
}

enum Work {
    Single(Request),
    Batch(Vec<Item>),
}

impl Work {
    /// The ids to answer, to refuse it.
    fn ids(&self) -> Vec<Value> {
        match self {
            Work::Single(request) => request.id.iter().cloned().collect(),
            Work::Batch(items) => items
                .iter()
                .filter_map(|item| match item {
                    Item::Request(request) => request.id.clone(),
                    Item::Invalid { id, .. } | Item::Answered { id, .. } => Some(id.clone()),
                    Item::Response => None,
                })
                .collect(),
        }
    }
}

struct ScriptSubscription {
    script_hash: ScriptHash,
    status: Option<String>,
    /// The status included mempool transactions: recompute it on every new block.
    with_mempool: bool,
}

impl Session {
    /// Starts a session on the current arbiter for a byte-stream connection (TCP, TLS):
    /// newline-delimited messages both ways.
    pub fn start<R, W>(
        id: u64,
        peer: SocketAddr,
        kind: SessionKind,
        reader: R,
        writer: W,
        shared: Arc<SessionShared>,
        admission: Admission,
    ) where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let incoming = FramedRead::new(reader, LineCodec::new(shared.max_recv));
        Session::start_with(
            id,
            peer,
            kind,
            incoming,
            |queue| actix_rt::spawn(write_loop(writer, queue)),
            shared,
            admission,
        );
    }

    /// Starts a session on the current arbiter over any message transport: `incoming`
    /// yields one JSON message per item; `spawn_writer` gets the bounded queue of
    /// outgoing messages (each ends with a newline) and must write them in order.
    pub fn start_with<S, F, T>(
        id: u64,
        peer: SocketAddr,
        kind: SessionKind,
        incoming: S,
        spawn_writer: F,
        shared: Arc<SessionShared>,
        admission: Admission,
    ) where
        S: futures_core::Stream<Item = Result<BytesMut, std::io::Error>> + 'static,
        F: FnOnce(OutgoingQueue) -> T,
    {
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let pressure = Arc::new(Backpressure::default());
        spawn_writer(OutgoingQueue {
            queue,
            pressure: Arc::clone(&pressure),
        });
        let now = Instant::now();
        let limits = shared.limits;
        Session::create(move |ctx| {
            Session::add_stream(gated(incoming, Arc::clone(&pressure)), ctx);
            Session {
                id,
                peer,
                kind,
                shared,
                outgoing,
                pressure,
                protocol: None,
                client_name: String::new(),
                dialect: None,
                scripts: HashMap::new(),
                outpoints: HashMap::new(),
                rng: ferrumx::rng::SplitMix64::from_time(),
                cost: cost::CONNECTION_COST,
                cost_time: now,
                decay_per_sec: limits.decay_per_sec(0),
                groups: Vec::new(),
                extra_cost: 0.0,
                throttling: limits.throttling(cost::CONNECTION_COST),
                running: 0,
                waiting: VecDeque::new(),
                counters: SessionStats::default(),
                last_recv: now,
                requests: HashMap::new(),
                method_errors: HashMap::new(),
                reported_cost: cost::CONNECTION_COST,
                reported: SessionStats::default(),
                logged: false,
                stall: None,
                admission,
                statuses_in_flight: false,
                deferred_statuses: HashMap::new(),
            }
        });
    }

    fn send(&mut self, text: String, ctx: &mut Context<Self>) {
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        let len = bytes.len();
        self.counters.send_count += 1;
        self.counters.send_size += len as u64;
        self.bump_cost(self.shared.limits.bandwidth_cost(len));
        let queued = self.pressure.queued.fetch_add(len, Ordering::AcqRel) + len;
        let limit = self.shared.max_send.saturating_mul(2) + HIGH_WATER;
        if queued > limit || self.outgoing.try_send(Bytes::from(bytes)).is_err() {
            log::info!(
                "session {} ({}) is not reading its replies: disconnecting",
                self.id,
                self.peer_text()
            );
            ctx.stop();
        }
    }

    /// Serializes a reply, replacing it with ElectrumX's error when over MAX_SEND.
    fn reply(&self, id: &Value, result: Result<Value, RpcError>) -> String {
        let text = jsonrpc::response(self.dialect, id, &result);
        if text.len() > self.shared.max_send {
            return jsonrpc::response(self.dialect, id, &Err(self.too_large()));
        }
        text
    }

    fn too_large(&self) -> RpcError {
        // (sic) ElectrumX's message has no closing parenthesis.
        RpcError::new(
            RpcError::INVALID_REQUEST,
            format!(
                "response too large (over {} bytes",
                with_commas(self.shared.max_send as i128)
            ),
        )
    }

    /// The client's address for the log, hidden under ANON_LOGS.
    fn peer_text(&self) -> String {
        if self.shared.anon_logs {
            "xx.xx.xx.xx:xx".into()
        } else {
            self.peer.to_string()
        }
    }

    /// aiorpcX's `bump_cost`: never below zero.
    fn bump_cost(&mut self, delta: f64) {
        self.cost = (self.cost + delta).max(0.0);
    }

    /// An error answered: counted, and priced (aiorpcX's `error_base_cost`).
    fn count_error(&mut self, extra_cost: f64) {
        self.counters.errors += 1;
        self.bump_cost(cost::ERROR_BASE_COST + extra_cost);
    }

    fn count_request(&mut self, method: &str, result: &Result<Value, RpcError>) {
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
    fn recalc(&mut self) {
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
    fn close_if_excessive(&mut self, ctx: &mut Context<Self>) -> bool {
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

    fn log_excessive(&self) {
        log::info!(
            "session {} ({}) closing: excessive resource usage (cost {:.0}, extra {:.0})",
            self.id,
            self.peer_text(),
            self.cost,
            self.extra_cost
        );
    }

    fn stats(&self) -> SessionStats {
        SessionStats {
            client: self.client_name.clone(),
            protocol: self
                .protocol
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            subs: self.scripts.len(),
            subs_txo: self.outpoints.len(),
            pending: self.running + self.waiting.len(),
            concurrency: self.throttling.concurrency,
            paused: !self.pressure.reading_allowed(),
            ..self.counters.clone()
        }
    }

    /// Tells the SessionManager the session's cost and counters, if they changed.
    fn report(&mut self, force: bool) {
        let stats = self.stats();
        let moved = (self.cost - self.reported_cost).abs();
        if !force && moved < REPORT_STEP && stats == self.reported && self.requests.is_empty() {
            return;
        }
        let report = self.cost_report(stats);
        self.shared.manager.do_send(report);
    }

    /// The report of the session's cost and counters, which it has now reported.
    fn cost_report(&mut self, stats: SessionStats) -> CostReport {
        self.reported_cost = self.cost;
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

    fn report_if_large(&mut self) {
        if (self.cost - self.reported_cost).abs() > REPORT_AT_ONCE {
            self.recalc();
            self.report(true);
        }
    }

    /// A client that lets its replies pile up is no longer read; one that takes none of
    /// them for STALL_LIMIT is disconnected.
    fn check_stall(&mut self, ctx: &mut Context<Self>) {
        if self.pressure.queued.load(Ordering::Acquire) < HIGH_WATER {
            self.stall = None;
            return;
        }
        let taken = self.pressure.taken.load(Ordering::Acquire);
        match self.stall {
            Some((seen, since)) if seen == taken => {
                if since.elapsed() >= STALL_LIMIT {
                    log::info!(
                        "session {} ({}) is not reading its replies: disconnecting",
                        self.id,
                        self.peer_text()
                    );
                    ctx.stop();
                }
            }
            _ => self.stall = Some((taken, Instant::now())),
        }
    }

    fn handle_message(&mut self, line: BytesMut, ctx: &mut Context<Self>) {
        self.last_recv = Instant::now();
        self.counters.recv_count += 1;
        self.counters.recv_size += line.len() as u64;
        self.bump_cost(self.shared.limits.bandwidth_cost(line.len()));
        let message = match jsonrpc::parse_message(&line, &mut self.dialect) {
            Ok(message) => message,
            Err(error) => {
                let extra = if error.code == RpcError::PARSE_ERROR {
                    cost::PARSE_ERROR_COST
                } else {
                    0.0
                };
                self.count_error(extra);
                let text = self.reply(&Value::Null, Err(error));
                self.send(text, ctx);
                if self.protocol.is_none() {
                    self.close_unidentified(ctx);
                } else if self.close_if_excessive(ctx) {
                    return;
                }
                self.report_if_large();
                return;
            }
        };
        match message {
            // `Answered` is made by the session itself, never parsed.
            RpcMessage::Single(Item::Response | Item::Answered { .. }) => {}
            RpcMessage::Single(Item::Invalid { id, error }) => {
                self.count_error(0.0);
                let text = self.reply(&id, Err(error));
                self.send(text, ctx);
                if self.protocol.is_none() {
                    self.close_unidentified(ctx);
                } else if self.close_if_excessive(ctx) {
                    return;
                }
            }
            RpcMessage::Single(Item::Request(request)) => self.handle_request(request, ctx),
            RpcMessage::Batch(mut items) => {
                if self.protocol.is_none() {
                    // ElectrumX accepts `server.version` inside the first message when
                    // that is a batch: negotiate with it before the rest runs.
                    let version = items.iter().position(|item| {
                        matches!(item, Item::Request(r) if r.method == "server.version" && r.id.is_some())
                    });
                    let Some(index) = version else {
                        self.refuse_before_version(None, ctx);
                        return;
                    };
                    let Item::Request(request) = &items[index] else {
                        return;
                    };
                    let request = request.clone();
                    match self.negotiate(&request, ctx) {
                        Some(result) => {
                            let id = request.id.unwrap_or(Value::Null);
                            items[index] = match result {
                                Ok(result) => Item::Answered { id, result },
                                Err(error) => Item::Invalid { id, error },
                            };
                        }
                        None => return,
                    }
                    if self.protocol.is_none() {
                        self.refuse_before_version(None, ctx);
                        return;
                    }
                }
                self.enqueue(Work::Batch(items), ctx);
            }
        }
        self.report_if_large();
    }

    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        if request.method == "ferrumx.test.panic" && faults_enabled() {
            injected_panic("a session");
        }
        if request.method == "server.version" && request.id.is_none() && self.protocol.is_none() {
            // Only a request identifies the client; a notification does not.
            self.refuse_before_version(None, ctx);
            return;
        }
        if request.method == "server.version" {
            let reply = self.negotiate(&request, ctx);
            self.bump_cost(methods::VERSION_COST);
            if let Some(result) = &reply {
                self.count_request(&request.method, result);
                if result.is_err() {
                    self.count_error(0.0);
                }
            }
            if let (Some(id), Some(result)) = (&request.id, reply) {
                let text = self.reply(id, result);
                self.send(text, ctx);
            }
            // The admin interface shows the client's name and protocol at once.
            self.recalc();
            self.report(true);
            return;
        }
        if self.protocol.is_none() {
            self.refuse_before_version(request.id.as_ref(), ctx);
            return;
        }
        self.enqueue(Work::Single(request), ctx);
    }

    fn enqueue(&mut self, work: Work, ctx: &mut Context<Self>) {
        if self.logged {
            match &work {
                Work::Single(request) => {
                    log::info!("[{}] {} {}", self.id, request.method, request.params)
                }
                Work::Batch(items) => log::info!("[{}] batch of {}", self.id, items.len()),
            }
        }
        self.waiting.push_back(Pending {
            work,
            received: Instant::now(),
        });
        self.pump(ctx);
    }

    /// Starts waiting requests while the throttling allows (aiorpcX's concurrency
    /// semaphore); over the hard limit the next request is refused and the session ends.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.recalc();
        while !self.waiting.is_empty() {
            if self.throttling.excessive() {
                let Some(pending) = self.waiting.pop_front() else {
                    break;
                };
                self.refuse(
                    &pending.work,
                    RpcError::new(EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"),
                    ctx,
                );
                self.log_excessive();
                ctx.stop();
                break;
            }
            if self.running >= self.throttling.concurrency as usize {
                break;
            }
            let Some(pending) = self.waiting.pop_front() else {
                break;
            };
            let elapsed = pending.received.elapsed();
            let Some(remaining) = self.shared.request_timeout.checked_sub(elapsed) else {
                self.time_out(&pending.work, ctx);
                continue;
            };
            self.run(pending.work, pending.received, remaining, ctx);
        }
        self.pressure
            .waiting
            .store(self.waiting.len(), Ordering::Release);
        self.pressure.wake.notify_one();
    }

    /// Answers every id of `work` with `error`, as one message.
    fn refuse(&mut self, work: &Work, error: RpcError, ctx: &mut Context<Self>) {
        self.count_error(0.0);
        let ids = work.ids();
        match work {
            Work::Single(_) => {
                if let Some(id) = ids.first() {
                    let text = self.reply(id, Err(error));
                    self.send(text, ctx);
                }
            }
            Work::Batch(_) if !ids.is_empty() => {
                let parts: Vec<String> = ids
                    .iter()
                    .map(|id| self.reply(id, Err(error.clone())))
                    .collect();
                self.send(format!("[{}]", parts.join(",")), ctx);
            }
            Work::Batch(_) => {}
        }
    }

    fn time_out(&mut self, work: &Work, ctx: &mut Context<Self>) {
        let error = RpcError::new(SERVER_BUSY, "server busy - request timed out");
        self.refuse(work, error, ctx);
    }

    /// Runs a request or batch: on the session's own thread when it needs only the index
    /// and the mempool and no throttling sleep (no thread hop, no timer), else on the
    /// blocking pool after the throttling sleep, within what is left of REQUEST_TIMEOUT.
    fn run(&mut self, work: Work, received: Instant, remaining: Duration, ctx: &mut Context<Self>) {
        let Some(protocol) = self.protocol.clone() else {
            return;
        };
        let sleep = self.shared.limits.sleep(&self.throttling);
        let is_batch = matches!(work, Work::Batch(_));
        let work = if sleep.is_zero() && work.is_quick(&protocol) {
            let id = self.id;
            let client_ip = Some(self.peer.ip());
            let shared = &self.shared;
            let answered = catch_panic(format_args!("session {id}"), || {
                answer_work(shared, &protocol, client_ip, work, Place::Inline)
            });
            match answered {
                Ok(Answered::Done(answers)) => {
                    let latency = received.elapsed();
                    for _ in 0..answers.len() {
                        self.shared.latency.observe(latency);
                    }
                    self.answer(answers, is_batch, ctx);
                    self.report_if_large();
                    return;
                }
                // A long history: the blocking pool reads it.
                Ok(Answered::GiveWay(work)) => work,
                Err(_) => {
                    ctx.stop();
                    return;
                }
            }
        } else {
            work
        };
        self.running += 1;
        let shared = Arc::clone(&self.shared);
        let client_ip = Some(self.peer.ip());
        let ids = work.ids();
        let task = async move {
            tokio::time::sleep(sleep).await;
            tokio::task::spawn_blocking(move || {
                match answer_work(&shared, &protocol, client_ip, work, Place::BlockingPool) {
                    Answered::Done(answers) => answers,
                    Answered::GiveWay(_) => unreachable!("only inline work gives way"),
                }
            })
            .await
        };
        let work = async move { tokio::time::timeout(remaining, task).await };
        ctx.spawn(work.into_actor(self).map(move |answers, session, ctx| {
            let id = session.id;
            let finished = catch_panic(format_args!("session {id}"), || {
                session.running -= 1;
                match answers {
                    Ok(Ok(answers)) => {
                        let latency = received.elapsed();
                        for _ in 0..answers.len() {
                            session.shared.latency.observe(latency);
                        }
                        session.answer(answers, is_batch, ctx);
                    }
                    Ok(Err(e)) => {
                        log::error!("query task failed: {e}");
                        let refused = if is_batch {
                            Work::Batch(Vec::new())
                        } else {
                            Work::Single(Request {
                                method: String::new(),
                                params: Value::Null,
                                id: ids.first().cloned(),
                            })
                        };
                        session.refuse(&refused, RpcError::internal(), ctx);
                    }
                    Err(_) => {
                        let error = RpcError::new(SERVER_BUSY, "server busy - request timed out");
                        session.count_error(0.0);
                        let parts: Vec<String> = ids
                            .iter()
                            .map(|id| session.reply(id, Err(error.clone())))
                            .collect();
                        if is_batch && !parts.is_empty() {
                            session.send(format!("[{}]", parts.join(",")), ctx);
                        } else if let Some(part) = parts.into_iter().next() {
                            session.send(part, ctx);
                        }
                    }
                }
                session.report_if_large();
                session.pump(ctx);
            });
            if finished.is_err() {
                ctx.stop();
            }
        }));
    }

    /// Applies answered requests, prices them, and sends the reply (a batch's as one
    /// array, with ElectrumX's cumulative MAX_SEND rule).
    fn answer(&mut self, answers: Vec<(Request, Answer)>, is_batch: bool, ctx: &mut Context<Self>) {
        let mut size = 2;
        let mut parts = Vec::new();
        for (request, answer) in answers {
            let method_cost = answer.cost;
            let result = self.apply(answer, ctx);
            if !request.method.is_empty() {
                self.count_request(&request.method, &result);
            }
            self.bump_cost(method_cost);
            if result.is_err() {
                self.count_error(0.0);
            }
            let Some(id) = request.id else { continue };
            let mut part = self.reply(&id, result);
            if is_batch {
                size += part.len() + 2;
                if size > self.shared.max_send {
                    part = self.reply(&id, Err(self.too_large()));
                }
            }
            parts.push(part);
        }
        if is_batch {
            if !parts.is_empty() {
                self.send(format!("[{}]", parts.join(",")), ctx);
            }
        } else if let Some(part) = parts.pop() {
            self.send(part, ctx);
        }
    }

    /// Applies what an answered request changes in this session.
    fn apply(&mut self, answer: Answer, ctx: &mut Context<Self>) -> Result<Value, RpcError> {
        let Answer { result, effect, .. } = answer;
        let recipient = ctx.address().recipient();
        match effect {
            None => result,
            Some(Effect::SubscribeHeaders) => {
                self.shared.notifier.do_send(Subscription::Headers {
                    session: self.id,
                    recipient,
                });
                result
            }
            Some(Effect::SubscribeScript {
                hashx,
                script_hash,
                status,
                with_mempool,
            }) => {
                self.scripts.insert(
                    hashx,
                    ScriptSubscription {
                        script_hash,
                        status,
                        with_mempool,
                    },
                );
                self.shared.notifier.do_send(Subscription::Script {
                    session: self.id,
                    recipient,
                    hashx,
                });
                result
            }
            Some(Effect::RefreshMempool) => {
                self.counters.txs_sent += 1;
                self.shared.mempool_refresh.do_send(Refresh);
                result
            }
            Some(Effect::SubscribeOutpoint { outpoint, status }) => {
                self.subscribe_outpoint(outpoint, status, ctx);
                result
            }
            Some(Effect::UnsubscribeOutpoint { outpoint }) => {
                Ok(Value::Bool(self.unsubscribe_outpoint(&outpoint, ctx)))
            }
            Some(Effect::UnsubscribeScript { hashx }) => {
                let was_subscribed = self.scripts.remove(&hashx).is_some();
                if was_subscribed {
                    self.shared.notifier.do_send(Subscription::Unsubscribe {
                        session: self.id,
                        hashx,
                    });
                }
                Ok(Value::Bool(was_subscribed))
            }
        }
    }

    fn negotiate(
        &mut self,
        request: &Request,
        ctx: &mut Context<Self>,
    ) -> Option<Result<Value, RpcError>> {
        match server::version(
            &request.params,
            self.protocol.is_some(),
            self.shared.server.drop_client.as_ref(),
        ) {
            VersionOutcome::Agreed {
                client_name,
                protocol,
                reply,
            } => {
                log::debug!(
                    "session {} client {client_name:?} protocol {protocol}",
                    self.id
                );
                self.client_name = client_name;
                self.protocol = Some(protocol);
                Some(Ok(reply))
            }
            VersionOutcome::Error(error) => Some(Err(error)),
            VersionOutcome::ErrorAndDisconnect(error) => {
                if let Some(id) = &request.id {
                    let text = self.reply(id, Err(error));
                    self.send(text, ctx);
                }
                ctx.stop();
                None
            }
        }
    }

    /// Protocol 1.6: `server.version` must come first; ElectrumX applies this to every
    /// version and disconnects.
    fn refuse_before_version(&mut self, id: Option<&Value>, ctx: &mut Context<Self>) {
        self.send_crash_notifications(ctx);
        if let Some(id) = id {
            let error = RpcError::bad_request("use server.version to identify client");
            let text = self.reply(id, Err(error));
            self.send(text, ctx);
        }
        ctx.stop();
    }

    /// A first message that is not a usable `server.version` request, after its error.
    fn close_unidentified(&mut self, ctx: &mut Context<Self>) {
        self.send_crash_notifications(ctx);
        ctx.stop();
    }

    /// ElectrumX greets an unidentified client with two parameterless notifications,
    /// which make old Electrum versions (that never sent `server.version`) fail loudly
    /// instead of misbehaving; wallets that follow the protocol never see them.
    fn send_crash_notifications(&mut self, ctx: &mut Context<Self>) {
        for method in ["blockchain.relayfee", "blockchain.estimatefee"] {
            let text = format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\"}}");
            self.send(text, ctx);
        }
    }
}

impl Work {
    /// Whether every request of it needs only the index and the mempool (unknown
    /// methods too: they are refused at once), and a batch is small enough to answer
    /// between other sessions' requests.
    fn is_quick(&self, protocol: &ProtocolVersion) -> bool {
        let quick = |request: &Request| {
            methods::find(&request.method, protocol).is_none_or(|m| m.source == Source::Index)
        };
        match self {
            Work::Single(request) => quick(request),
            Work::Batch(items) => {
                items.len() <= INLINE_BATCH
                    && items.iter().all(|item| match item {
                        Item::Request(request) => quick(request),
                        _ => true,
                    })
            }
        }
    }
}

/// Batches of at most this many items may be answered on the session's own thread.
const INLINE_BATCH: usize = 100;

/// Where a request is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the session's own thread, between other sessions' requests: a long read
    /// gives way to the blocking pool.
    Inline,
    BlockingPool,
}

enum Answered {
    Done(Vec<(Request, Answer)>),
    /// Too long to answer inline: the work, untouched, for the blocking pool.
    GiveWay(Work),
}

/// Answers every request of `work` from one snapshot and one look at the mempool.
fn answer_work(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    client_ip: Option<IpAddr>,
    work: Work,
    place: Place,
) -> Answered {
    let answers = with_query_context(shared, protocol, client_ip, place, |ctx| {
        let mut answers = Vec::new();
        let answer_one = |request: &Request| {
            let answer = match request.id {
                Some(_) => methods::answer(ctx, &request.method, &request.params),
                None => methods::answer_notification(ctx, &request.method, &request.params),
            };
            let gave_way = matches!(&answer.result, Err(e) if e.code == RpcError::GIVE_WAY);
            (!gave_way).then_some(answer)
        };
        match &work {
            Work::Single(request) => answers.push(answer_one(request)?),
            Work::Batch(items) => {
                for item in items {
                    let answer = match item {
                        Item::Request(request) => answer_one(request)?,
                        Item::Invalid { error, .. } => Answer {
                            result: Err(error.clone()),
                            effect: None,
                            cost: 0.0,
                        },
                        Item::Answered { result, .. } => Answer {
                            result: Ok(result.clone()),
                            effect: None,
                            cost: 0.0,
                        },
                        Item::Response => continue,
                    };
                    answers.push(answer);
                }
            }
        }
        Some(answers)
    });
    let answers = match answers {
        Ok(Some(answers)) => answers,
        Ok(None) => return Answered::GiveWay(work),
        Err(e) => {
            let error: RpcError = e.into();
            let count = match &work {
                Work::Single(_) => 1,
                Work::Batch(items) => items
                    .iter()
                    .filter(|i| !matches!(i, Item::Response))
                    .count(),
            };
            (0..count)
                .map(|_| Answer {
                    result: Err(error.clone()),
                    effect: None,
                    cost: 0.0,
                })
                .collect()
        }
    };
    let requests: Vec<Request> = match work {
        Work::Single(request) => vec![request],
        Work::Batch(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Item::Request(request) => Some(request),
                Item::Invalid { id, .. } | Item::Answered { id, .. } => Some(Request {
                    method: String::new(),
                    params: Value::Null,
                    id: Some(id),
                }),
                Item::Response => None,
            })
            .collect(),
    };
    Answered::Done(requests.into_iter().zip(answers).collect())
}

/// Runs `f` against a fresh index snapshot and the current mempool (read-locked for
/// as long as `f` runs).
fn with_query_context<R>(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    client_ip: Option<IpAddr>,
    place: Place,
    f: impl FnOnce(&QueryContext) -> R,
) -> Result<R, StoreError> {
    let snapshot = shared.store.snapshot()?;
    let mempool = shared
        .mempool
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    let ctx = QueryContext {
        snapshot: &snapshot,
        protocol,
        history_limit: shared.history_limit,
        server: &shared.server,
        state: &shared.state,
        daemon: &shared.daemon,
        mempool: &mempool,
        client_ip,
        inline: place == Place::Inline,
    };
    Ok(f(&ctx))
}

/// A script, whether its notification is sent even if unchanged, and its new status
/// (with whether it holds mempool transactions).
type RecomputedStatus = (HashX, bool, Result<(Option<String>, bool), RpcError>);

/// Statuses of `scripts` recomputed for a notification (on the session's thread when
/// their histories are short, else on the blocking pool).
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

/// How long one write may wait for a client to read (aiorpcX's `max_send_delay`):
/// past that the connection is dropped, even after the session ended.
const MAX_SEND_DELAY: Duration = Duration::from_secs(20);

/// Replies already queued are written together, up to this many bytes per write.
const WRITE_COALESCE: usize = 64 * 1024;

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut queue: OutgoingQueue) {
    let mut joined = Vec::new();
    while let Some(bytes) = queue.recv().await {
        // Replies that piled up while the last write ran leave in one system call.
        let mut out = &bytes[..];
        if bytes.len() < WRITE_COALESCE
            && let Some(next) = queue.try_recv()
        {
            joined.clear();
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&next);
            while joined.len() < WRITE_COALESCE
                && let Some(more) = queue.try_recv()
            {
                joined.extend_from_slice(&more);
            }
            out = &joined;
        }
        match tokio::time::timeout(MAX_SEND_DELAY, writer.write_all(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
    let _ = tokio::time::timeout(MAX_SEND_DELAY, writer.shutdown()).await;
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        log::debug!("session {} connected from {}", self.id, self.peer_text());
        self.shared.manager.do_send(Register {
            id: self.id,
            peer: self.peer,
            kind: self.kind,
            session: ctx.address(),
        });
        ctx.run_interval(REPORT_INTERVAL, |session, ctx| {
            session.check_stall(ctx);
            session.pump(ctx);
            session.report(false);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared
            .notifier
            .do_send(Subscription::Closed { session: self.id });
        self.recalc();
        self.report(false);
        self.admission.release();
        self.shared.manager.do_send(Unregister {
            id: self.id,
            cost: self.cost,
        });
        log::debug!("session {} ({}) closed", self.id, self.peer_text());
    }
}

impl StreamHandler<Result<BytesMut, std::io::Error>> for Session {
    fn handle(&mut self, line: Result<BytesMut, std::io::Error>, ctx: &mut Context<Self>) {
        match line {
            Ok(line) => {
                // A bug met by one client's request ends that client's session only.
                let id = self.id;
                if catch_panic(format_args!("session {id}"), || {
                    self.handle_message(line, ctx)
                })
                .is_err()
                {
                    ctx.stop();
                }
            }
            Err(e) => {
                log::debug!("session {} read error: {e}", self.id);
                ctx.stop();
            }
        }
    }
}

impl Handler<Decay> for Session {
    type Result = ();

    fn handle(&mut self, decay: Decay, ctx: &mut Context<Self>) {
        self.recalc();
        self.decay_per_sec = decay.per_sec;
        self.pump(ctx);
    }
}

impl Handler<GroupStanding> for Session {
    type Result = ();

    fn handle(&mut self, standing: GroupStanding, ctx: &mut Context<Self>) {
        match self.groups.iter_mut().find(|g| g.group == standing.group) {
            Some(known) => *known = standing,
            None => self.groups.push(standing),
        }
        self.pump(ctx);
    }
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, close: Close, ctx: &mut Context<Self>) {
        log::info!(
            "session {} ({}) closing: {}",
            self.id,
            self.peer_text(),
            close.reason
        );
        ctx.stop();
    }
}

impl Handler<SetLogged> for Session {
    type Result = ();

    fn handle(&mut self, SetLogged(logged): SetLogged, _: &mut Context<Self>) {
        self.logged = logged;
    }
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

/// Statuses of touched scripts are computed on the session's own thread when their
/// confirmed histories hold this many entries in all (the common case: no thread hop, and
/// the header and statuses leave in one write); longer ones go to the blocking pool, so
/// that one big history never stalls the other sessions of this thread.
const INLINE_HISTORY_BUDGET: usize = 256;

impl Session {
    fn notify(&mut self, notify: Notify, ctx: &mut Context<Self>) {
        let mut lines = Vec::new();
        if let Some(header) = &notify.new_header {
            let params = json!([{"hex": header.as_str(), "height": notify.height}]);
            lines.push(jsonrpc::notification(
                "blockchain.headers.subscribe",
                &params,
            ));
        }
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
        let protocol = self.protocol.clone().filter(|_| !scripts.is_empty());
        if let Some(protocol) = &protocol
            && self.histories_are_short(&scripts)
        {
            let statuses = recompute_statuses(&self.shared, protocol, scripts);
            lines.extend(self.status_lines(statuses));
            if !lines.is_empty() {
                self.send(lines.join("\n"), ctx);
            }
            return;
        }
        if !lines.is_empty() {
            self.send(lines.join("\n"), ctx);
        }
        let Some(protocol) = protocol else {
            return;
        };
        self.statuses_in_flight = true;
        let shared = Arc::clone(&self.shared);
        let work =
            tokio::task::spawn_blocking(move || recompute_statuses(&shared, &protocol, scripts));
        ctx.spawn(work.into_actor(self).map(|statuses, session, ctx| {
            session.statuses_in_flight = false;
            let lines = statuses
                .map(|s| session.status_lines(s))
                .unwrap_or_default();
            let deferred = std::mem::take(&mut session.deferred_statuses);
            session.send_statuses(lines, deferred.into_iter().collect(), ctx);
        }));
    }

    /// Whether the scripts' confirmed histories hold at most INLINE_HISTORY_BUDGET
    /// entries in all (counting stops there).
    fn histories_are_short(&self, scripts: &[(HashX, bool)]) -> bool {
        let Ok(snapshot) = self.shared.store.snapshot() else {
            return false;
        };
        let mut budget = INLINE_HISTORY_BUDGET;
        scripts.iter().all(
            |(hashx, _)| match snapshot.history_len_within(hashx, budget) {
                Ok(Some(len)) => {
                    budget -= len;
                    true
                }
                _ => false,
            },
        )
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
                protocol17::script_notification(self.protocol.as_ref()),
                &params,
            ));
        }
        lines
    }
}
