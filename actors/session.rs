//! The Session actor: one per client connection. It decodes requests, negotiates the
//! protocol version, answers queries from LMDB snapshots on the blocking pool (never
//! through another actor's mailbox), and writes replies through a bounded queue: a
//! client that stops reading is disconnected instead of growing server memory.

use crate::framing::LineCodec;
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use ferrumx::daemon::DaemonPool;
use ferrumx::protocol::jsonrpc::{self, Item, Message as RpcMessage, Request};
use ferrumx::protocol::server::ServerInfo;
use ferrumx::protocol::server::{self, VersionOutcome};
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::protocol::{QueryContext, RpcError, dispatch, with_commas};
use ferrumx::store::Store;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

/// Replies a session may have queued for a slow reader before it is disconnected.
const OUTGOING_QUEUE: usize = 256;

/// What every session shares.
pub struct SessionShared {
    pub store: Arc<Store>,
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
        let text = match &result {
            Ok(value) => jsonrpc::result_response(id, value),
            Err(error) => jsonrpc::error_response(id, error),
        };
        if text.len() > self.shared.max_send {
            return jsonrpc::error_response(id, &self.too_large());
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
        let message = match jsonrpc::parse_message(&line) {
            Ok(message) => message,
            Err(error) => {
                let text = jsonrpc::error_response(&Value::Null, &error);
                self.send(text, ctx);
                return;
            }
        };
        match message {
            RpcMessage::Single(Item::Invalid { id, error }) => {
                let text = jsonrpc::error_response(&id, &error);
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
        let query = tokio::task::spawn_blocking(move || run_query(&shared, &protocol, &request).1);
        ctx.spawn(query.into_actor(self).map(move |answer, session, ctx| {
            let result = answer.unwrap_or_else(|e| {
                log::error!("query task failed: {e}");
                Err(RpcError::internal())
            });
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
                        Item::Invalid { id, error } => Some((id, Err(error))),
                        Item::Request(request) => {
                            let (id, result) = run_query(&shared, &protocol, &request);
                            id.map(|id| (id, result))
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
                .map(|(id, result)| {
                    let mut part = session.reply(&id, result);
                    size += part.len() + 2;
                    if size > session.shared.max_send {
                        part = jsonrpc::error_response(&id, &session.too_large());
                    }
                    part
                })
                .collect();
            let text = format!("[{}]", parts.join(","));
            session.send(text, ctx);
        }));
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
        let text = jsonrpc::error_response(id.unwrap_or(&Value::Null), &error);
        self.send(text, ctx);
        ctx.stop();
    }
}

/// Runs one query against a fresh snapshot. Runs on the blocking pool.
fn run_query(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    request: &Request,
) -> (Option<Value>, Result<Value, RpcError>) {
    let result = (|| {
        if request.method == "server.version" {
            return Err(RpcError::bad_request("server.version already sent"));
        }
        let snapshot = shared.store.snapshot()?;
        let ctx = QueryContext {
            snapshot: &snapshot,
            protocol,
            history_limit: shared.history_limit,
            server: &shared.server,
            daemon: &shared.daemon,
        };
        dispatch(&ctx, &request.method, &request.params).unwrap_or_else(|| {
            Err(RpcError::new(
                RpcError::METHOD_NOT_FOUND,
                format!("unknown method \"{}\"", request.method),
            ))
        })
    })();
    (request.id.clone(), result)
}

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut queue: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = queue.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        log::debug!("session {} connected from {}", self.id, self.peer);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
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
