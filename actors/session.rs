//! The Session actor: one per client connection. It decodes requests, negotiates the
//! protocol version, answers queries through the method table (`protocol::methods`) from
//! LMDB snapshots — those that need only the index and the mempool on its own thread,
//! the others on the blocking pool, never through another actor's mailbox — applies
//! their effects (subscriptions, mempool refreshes), and writes replies through a
//! bounded queue. It keeps its cost (requests, bytes, errors; see `ferrumx::cost`) and
//! reports it to the SessionManager, which answers with the extra cost of the session's
//! groups: together they limit how many requests run at once and how long each waits,
//! and past the hard limit the session is refused and closed. A client that does not
//! read its replies is no longer read from, and is disconnected when its queue
//! overflows or a write stalls.
//!
//! This file is the actor: its state, start and stop, reading messages, version
//! negotiation, and its message handlers. Beside it, in `session/`:
//! - [`requests`]: running requests and batches (throttling, inline or on the blocking
//!   pool, effects, replies);
//! - [`subscriptions`]: subscriptions and the notifications sent to the client;
//! - [`transactions`]: transaction subscriptions (Fulcrum's extra) and their
//!   notifications;
//! - [`accounting`]: cost, counters, and the reports to the SessionManager;
//! - [`backpressure`]: the reply queue, the writer task, reading paused for slow readers;
//! - [`protocol17`]: what protocol 1.7 adds (outpoint subscriptions, noise pings) and
//!   the admin interface's fresh look at a session.

mod accounting;
mod backpressure;
mod protocol17;
mod query;
mod requests;
mod subscriptions;
mod transactions;

pub use backpressure::OutgoingQueue;

use crate::framing::{LineCodec, LineLate};
use crate::gate::{Admission, ListenerGate};
use crate::group::GroupStanding;
use crate::mempool::Refresh;
use crate::notifier::{Notifier, Subscription};
use crate::session_manager::{
    Close, Decay, Register, SessionKind, SessionManager, SessionRecipients, SessionStats,
    SetLogged, Unregister,
};
use crate::supervisor::{catch_panic, faults_enabled, injected_panic};
use accounting::REPORT_INTERVAL;
use actix::prelude::*;
use backpressure::{Backpressure, OUTGOING_QUEUE, gated, write_loop};
use bytes::{Bytes, BytesMut};
use ferrumx::cost::{self, CostLimits, Throttling};
use ferrumx::daemon::DaemonPool;
use ferrumx::hashes::HashX;
use ferrumx::latency::LatencyHistogram;
use ferrumx::mempool::SharedMempool;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::context::QueryState;
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use ferrumx::protocol::methods;
use ferrumx::protocol::server::{self, ServerInfo, VersionOutcome};
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::store::Store;
use ferrumx::subscription_caps::SubscriptionCaps;
use requests::{Pending, Work};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscriptions::ScriptSubscription;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use transactions::TxSubscriptions;

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
    /// MAX_BATCH: most items of a batch (0: no limit).
    pub max_batch: usize,
    /// LINE_TIMEOUT: a line in progress on `tcp://` or `ssl://` must be complete within
    /// it of its first byte.
    pub line_timeout: Duration,
    /// MAX_SESSION_SUBSCRIPTIONS: scripts, outpoints and transactions (0: no limit).
    pub max_subscriptions: usize,
    /// MAX_SUBSCRIPTIONS_PER_IP and MAX_TOTAL_SUBSCRIPTIONS: the places all sessions hold.
    pub subscription_caps: SubscriptionCaps,
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

pub struct Session {
    id: u64,
    peer: SocketAddr,
    /// Places this session holds in [`SessionShared::subscription_caps`]: one per
    /// subscription, given back when it has fewer.
    places: usize,
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
    /// Subscribed to new headers.
    headers: bool,
    /// Subscribed transactions and their last status.
    txs: TxSubscriptions,
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
    /// When the last cost report left.
    reported_at: Instant,
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
                places: 0,
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
                headers: false,
                txs: TxSubscriptions::default(),
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
                reported_at: Instant::now(),
                reported: SessionStats::default(),
                logged: false,
                stall: None,
                admission,
                statuses_in_flight: false,
                deferred_statuses: HashMap::new(),
            }
        });
    }

    /// Serializes a reply, replacing it with ElectrumX's error when over MAX_SEND.
    pub(super) fn reply(&self, id: &Value, result: Result<Value, RpcError>) -> String {
        let text = jsonrpc::response(self.dialect, id, &result);
        if text.len() > self.shared.max_send {
            return jsonrpc::response(self.dialect, id, &Err(self.too_large()));
        }
        text
    }

    pub(super) fn too_large(&self) -> RpcError {
        RpcError::response_too_large(self.shared.max_send)
    }

    /// The client's address for the log, hidden under ANON_LOGS.
    pub(super) fn peer_text(&self) -> String {
        if self.shared.anon_logs {
            "xx.xx.xx.xx:xx".into()
        } else {
            self.peer.to_string()
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
            RpcMessage::Batch(items)
                if self.shared.max_batch > 0 && items.len() > self.shared.max_batch =>
            {
                // Refused whole, before any of it runs, as an invalid message.
                self.count_error(0.0);
                let error = RpcError::new(
                    RpcError::INVALID_REQUEST,
                    format!(
                        "batch of {} requests is too large: at most {} (MAX_BATCH)",
                        items.len(),
                        self.shared.max_batch
                    ),
                );
                drop(items);
                let text = self.reply(&Value::Null, Err(error));
                self.send(text, ctx);
                if self.protocol.is_none() {
                    self.close_unidentified(ctx);
                } else if self.close_if_excessive(ctx) {
                    return;
                }
            }
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
                // Kept as text for the reports, which compare it every second.
                self.counters.protocol = protocol.to_string();
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

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        log::debug!("session {} connected from {}", self.id, self.peer_text());
        let address = ctx.address();
        self.shared.manager.do_send(Register {
            id: self.id,
            peer: self.peer,
            kind: self.kind,
            session: SessionRecipients {
                decay: address.clone().recipient(),
                close: address.clone().recipient(),
                logging: address.clone().recipient(),
                report: address.clone().recipient(),
            },
            standing: address.recipient(),
        });
        ctx.run_interval(REPORT_INTERVAL, |session, ctx| {
            session.check_stall(ctx);
            session.pump(ctx);
            session.settle_places();
            session.report(false);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared
            .subscription_caps
            .release(self.peer.ip(), std::mem::take(&mut self.places));
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
                match LineLate::of(&e) {
                    Some(late @ LineLate::Line(_)) => {
                        log::info!("session {} ({}) closing: {late}", self.id, self.peer_text())
                    }
                    _ => log::debug!("session {} read error: {e}", self.id),
                }
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
