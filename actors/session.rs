//! The Session actor: one per client connection. It decodes requests, negotiates the
//! protocol version, answers queries from LMDB snapshots on the blocking pool (never
//! through another actor's mailbox), and writes replies through a bounded queue: a
//! client that stops reading is disconnected instead of growing server memory.

use crate::framing::LineCodec;
use crate::mempool::Refresh;
use crate::notifier::{Notifier, Notify, Subscription};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use ferrumx::daemon::DaemonPool;
use ferrumx::hashes::{HashX, ScriptHash};
use ferrumx::mempool::SharedMempool;
use ferrumx::protocol::blockchain;
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use ferrumx::protocol::params::{Signature, bind, script_hash};
use ferrumx::protocol::server::ServerInfo;
use ferrumx::protocol::server::{self, VersionOutcome};
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::protocol::{QueryContext, RpcError, dispatch, with_commas};
use ferrumx::store::Store;
use serde_json::Value;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::PoisonError;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

/// Replies a session may have queued for a slow reader before it is disconnected.
const OUTGOING_QUEUE: usize = 256;

/// What every session shares.
pub struct SessionShared {
    pub store: Arc<Store>,
    pub mempool: SharedMempool,
    pub notifier: Addr<Notifier>,
    /// Asked to refresh after a broadcast, so the new tx shows at once.
    pub mempool_refresh: Recipient<Refresh>,
    pub daemon: DaemonPool,
    pub server: ServerInfo,
    pub max_send: usize,
    pub max_recv: usize,
    pub history_limit: usize,
}

pub struct Session {
    id: u64,
    peer: SocketAddr,
    shared: Arc<SessionShared>,
    outgoing: mpsc::Sender<Bytes>,
    protocol: Option<ProtocolVersion>,
    client_name: String,
    /// The JSON-RPC flavour, fixed by the first message.
    dialect: Option<Dialect>,
    /// Subscribed scripts and their last status.
    scripts: HashMap<HashX, ScriptSubscription>,
}

struct ScriptSubscription {
    script_hash: ScriptHash,
    status: Option<String>,
    /// The status included mempool transactions: recompute it on every new block.
    with_mempool: bool,
}

/// What a request changes in its session, applied when its answer comes back.
enum Effect {
    SubscribeHeaders,
    SubscribeScript {
        hashx: HashX,
        script_hash: ScriptHash,
        status: Option<String>,
        with_mempool: bool,
    },
    /// The answer is whether the script was subscribed.
    UnsubscribeScript {
        hashx: HashX,
    },
    /// A transaction was broadcast.
    RefreshMempool,
}

impl Session {
    /// Starts a session on the current arbiter for a byte-stream connection (TCP, TLS):
    /// newline-delimited messages both ways.
    pub fn start<R, W>(id: u64, peer: SocketAddr, reader: R, writer: W, shared: Arc<SessionShared>)
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let incoming = FramedRead::new(reader, LineCodec::new(shared.max_recv));
        Session::start_with(
            id,
            peer,
            incoming,
            |queue| actix_rt::spawn(write_loop(writer, queue)),
            shared,
        );
    }

    /// Starts a session on the current arbiter over any message transport: `incoming`
    /// yields one JSON message per item; `spawn_writer` gets the bounded queue of
    /// outgoing messages (each ends with a newline) and must write them in order.
    pub fn start_with<S, F, T>(
        id: u64,
        peer: SocketAddr,
        incoming: S,
        spawn_writer: F,
        shared: Arc<SessionShared>,
    ) where
        S: futures_core::Stream<Item = Result<BytesMut, std::io::Error>> + 'static,
        F: FnOnce(mpsc::Receiver<Bytes>) -> T,
    {
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        spawn_writer(queue);
        Session::create(move |ctx| {
            Session::add_stream(incoming, ctx);
            Session {
                id,
                peer,
                shared,
                outgoing,
                protocol: None,
                client_name: String::new(),
                dialect: None,
                scripts: HashMap::new(),
            }
        });
    }

    fn send(&mut self, text: String, ctx: &mut Context<Self>) {
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        if self.outgoing.try_send(Bytes::from(bytes)).is_err() {
            log::info!(
                "session {} ({}) is not reading its replies: disconnecting",
                self.id,
                self.peer
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

    fn handle_message(&mut self, line: BytesMut, ctx: &mut Context<Self>) {
        let message = match jsonrpc::parse_message(&line, &mut self.dialect) {
            Ok(message) => message,
            Err(error) => {
                let text = self.reply(&Value::Null, Err(error));
                self.send(text, ctx);
                return;
            }
        };
        match message {
            RpcMessage::Single(Item::Invalid { id, error }) => {
                let text = self.reply(&id, Err(error));
                self.send(text, ctx);
            }
            RpcMessage::Single(Item::Request(request)) => self.handle_request(request, ctx),
            RpcMessage::Batch(items) => self.handle_batch(items, ctx),
        }
    }

    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        if request.method == "server.version" {
            let reply = self.negotiate(&request, ctx);
            if let (Some(id), Some(result)) = (&request.id, reply) {
                let text = self.reply(id, result);
                self.send(text, ctx);
            }
            return;
        }
        let Some(protocol) = self.protocol.clone() else {
            self.refuse_before_version(request.id.as_ref(), ctx);
            return;
        };
        let shared = Arc::clone(&self.shared);
        let id = request.id.clone();
        let query = tokio::task::spawn_blocking(move || run_query(&shared, &protocol, &request));
        ctx.spawn(query.into_actor(self).map(move |answer, session, ctx| {
            let result = match answer {
                Ok(answer) => session.apply(answer, ctx),
                Err(e) => {
                    log::error!("query task failed: {e}");
                    Err(RpcError::internal())
                }
            };
            if let Some(id) = id {
                let text = session.reply(&id, result);
                session.send(text, ctx);
            }
        }));
    }

    fn handle_batch(&mut self, items: Vec<Item>, ctx: &mut Context<Self>) {
        let Some(protocol) = self.protocol.clone() else {
            self.refuse_before_version(None, ctx);
            return;
        };
        let shared = Arc::clone(&self.shared);
        let work = async move {
            tokio::task::spawn_blocking(move || {
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        Item::Invalid { id, error } => Some((
                            id,
                            Answer {
                                result: Err(error),
                                effect: None,
                            },
                        )),
                        Item::Request(request) => {
                            let answer = run_query(&shared, &protocol, &request);
                            request.id.map(|id| (id, answer))
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(|answers, session, ctx| {
            let Ok(answers) = answers else { return };
            if answers.is_empty() {
                return;
            }
            let mut size = 2;
            let parts: Vec<String> = answers
                .into_iter()
                .map(|(id, answer)| {
                    let result = session.apply(answer, ctx);
                    let mut part = session.reply(&id, result);
                    size += part.len() + 2;
                    if size > session.shared.max_send {
                        part = session.reply(&id, Err(session.too_large()));
                    }
                    part
                })
                .collect();
            let text = format!("[{}]", parts.join(","));
            session.send(text, ctx);
        }));
    }

    /// Applies what an answered request changes in this session.
    fn apply(&mut self, answer: Answer, ctx: &mut Context<Self>) -> Result<Value, RpcError> {
        let Answer { result, effect } = answer;
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
                self.shared.mempool_refresh.do_send(Refresh);
                result
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
        match server::version(&request.params, self.protocol.is_some()) {
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
        let error = RpcError::bad_request("use server.version to identify client");
        let text = self.reply(id.unwrap_or(&Value::Null), Err(error));
        self.send(text, ctx);
        ctx.stop();
    }
}

/// A query's result and what it changes in the session.
struct Answer {
    result: Result<Value, RpcError>,
    effect: Option<Effect>,
}

/// Runs one query against a fresh snapshot and the current mempool. Runs on the
/// blocking pool.
fn run_query(shared: &SessionShared, protocol: &ProtocolVersion, request: &Request) -> Answer {
    let mut effect = None;
    let result = (|| {
        if request.method == "server.version" {
            return Err(RpcError::bad_request("server.version already sent"));
        }
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
            daemon: &shared.daemon,
            mempool: &mempool,
        };
        match request.method.as_str() {
            "blockchain.scripthash.subscribe" => {
                let script_hash = script_hash_param(&request.method, &request.params)?;
                let hashx = script_hash.hashx();
                let (status, with_mempool) = blockchain::script_status(&ctx, &hashx)?;
                effect = Some(Effect::SubscribeScript {
                    hashx,
                    script_hash,
                    status: status.clone(),
                    with_mempool,
                });
                Ok(status.map_or(Value::Null, Value::String))
            }
            "blockchain.scripthash.unsubscribe" if protocol.is_at_least(&[1, 4, 2]) => {
                let hashx = script_hash_param(&request.method, &request.params)?.hashx();
                effect = Some(Effect::UnsubscribeScript { hashx });
                Ok(Value::Bool(false))
            }
            method => {
                let result = dispatch(&ctx, method, &request.params).unwrap_or_else(|| {
                    Err(RpcError::new(
                        RpcError::METHOD_NOT_FOUND,
                        format!("unknown method \"{method}\""),
                    ))
                });
                if result.is_ok() {
                    effect = match method {
                        "blockchain.headers.subscribe" => Some(Effect::SubscribeHeaders),
                        "blockchain.transaction.broadcast"
                        | "blockchain.transaction.broadcast_package" => {
                            Some(Effect::RefreshMempool)
                        }
                        _ => None,
                    };
                }
                result
            }
        }
    })();
    Answer { result, effect }
}

fn script_hash_param(method: &str, params: &Value) -> Result<ScriptHash, RpcError> {
    let sig = Signature {
        names: &["scripthash"],
        required: 1,
        extra_ok: false,
    };
    let slots = bind(method, params, &sig)?;
    script_hash(slots[0].unwrap_or(&Value::Null))
}

/// A script, whether its notification is sent even if unchanged, and its new status
/// (with whether it holds mempool transactions).
type RecomputedStatus = (HashX, bool, Result<(Option<String>, bool), RpcError>);

/// Statuses of `scripts` recomputed for a notification. Runs on the blocking pool.
fn recompute_statuses(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    scripts: Vec<(HashX, bool)>,
) -> Vec<RecomputedStatus> {
    let snapshot = match shared.store.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => {
            log::error!("index read failed: {e}");
            return Vec::new();
        }
    };
    let mempool = shared
        .mempool
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    let ctx = QueryContext {
        snapshot: &snapshot,
        protocol,
        history_limit: shared.history_limit,
        server: &shared.server,
        daemon: &shared.daemon,
        mempool: &mempool,
    };
    scripts
        .into_iter()
        .map(|(hashx, always)| (hashx, always, blockchain::script_status(&ctx, &hashx)))
        .collect()
}

/// How long one write may wait for a client to read (aiorpcX's `max_send_delay`):
/// past that the connection is dropped, even after the session ended.
const MAX_SEND_DELAY: Duration = Duration::from_secs(20);

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut queue: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = queue.recv().await {
        match tokio::time::timeout(MAX_SEND_DELAY, writer.write_all(&bytes)).await {
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
        log::debug!("session {} connected from {}", self.id, self.peer);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared
            .notifier
            .do_send(Subscription::Closed { session: self.id });
        log::debug!("session {} ({}) closed", self.id, self.peer);
    }
}

impl StreamHandler<Result<BytesMut, std::io::Error>> for Session {
    fn handle(&mut self, line: Result<BytesMut, std::io::Error>, ctx: &mut Context<Self>) {
        match line {
            Ok(line) => self.handle_message(line, ctx),
            Err(e) => {
                log::debug!("session {} read error: {e}", self.id);
                ctx.stop();
            }
        }
    }
}

impl Handler<Notify> for Session {
    type Result = ();

    /// A new height and/or touched scripts: the header notification first, then the
    /// statuses: every touched script is sent (even unchanged, as ElectrumX), and on a
    /// new height those that held mempool transactions are sent if they changed.
    fn handle(&mut self, notify: Notify, ctx: &mut Context<Self>) {
        if let Some(header) = &notify.new_header {
            let params = json!([{"hex": header.as_str(), "height": notify.height}]);
            self.send(
                jsonrpc::notification("blockchain.headers.subscribe", &params),
                ctx,
            );
        }
        let Some(protocol) = self.protocol.clone() else {
            return;
        };
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
        if scripts.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let work =
            tokio::task::spawn_blocking(move || recompute_statuses(&shared, &protocol, scripts));
        ctx.spawn(work.into_actor(self).map(|statuses, session, ctx| {
            let Ok(statuses) = statuses else { return };
            for (hashx, always, status) in statuses {
                let Some(sub) = session.scripts.get_mut(&hashx) else {
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
                        session.scripts.remove(&hashx);
                        session.shared.notifier.do_send(Subscription::Unsubscribe {
                            session: session.id,
                            hashx,
                        });
                        Value::Null
                    }
                };
                let params = json!([script_hash, status]);
                let text = jsonrpc::notification("blockchain.scripthash.subscribe", &params);
                session.send(text, ctx);
            }
        }));
    }
}
