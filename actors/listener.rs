//! Client listeners: accept connections and start a Session actor for each on one of
//! the worker arbiters, so sessions use every core. The transports are ElectrumX's:
//! `tcp` and `ssl` carry newline-delimited JSON, `ws` and `wss` one JSON message per
//! WebSocket message. TLS and WebSocket handshakes run on the worker too, within a time
//! limit, so a client that connects and never completes one cannot hold a socket.

use crate::framing::{LineDeadlines, LineLate};
use crate::gate::Admission;
use crate::session::{OutgoingQueue, Session, SessionShared};
use crate::session_manager::SessionKind;
use crate::tls;
use actix::prelude::*;
use bytes::{Buf, BytesMut};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::{SinkExt, future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// How long a client may take over the TLS and WebSocket handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a WebSocket writer may go on sending what its session queued once the
/// session has ended (a client that stopped reading gets no longer than this).
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// tungstenite allocates its read buffer up front for every connection; most requests
/// are small, so this keeps idle WebSocket clients cheap (larger messages still fit).
const WS_READ_BUFFER: usize = 16 * 1024;

/// Session ids are global and never reused while the server runs.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_session_id() -> u64 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// How a listener's clients talk to it.
#[derive(Clone)]
pub enum Transport {
    Tcp,
    Ssl(Arc<tls::Certificates>),
    Ws,
    Wss(Arc<tls::Certificates>),
}

impl Transport {
    /// The name ElectrumX logs for this kind of service ("SSL server listening on ...").
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Ssl(_) => "SSL",
            Transport::Ws => "WS",
            Transport::Wss(_) => "WSS",
        }
    }
}

/// Why a connection never became a session (logged at debug level: clients' business).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("cannot register the socket on its arbiter: {0}")]
    Socket(std::io::Error),
    #[error("no completed handshake within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Tls(#[from] openssl::ssl::Error),
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(#[from] tungstenite::Error),
}

/// Accepts plain TCP connections on `listener` until the task is dropped.
pub async fn serve_tcp(
    listener: TcpListener,
    workers: Vec<ArbiterHandle>,
    shared: Arc<SessionShared>,
) {
    serve(listener, Transport::Tcp, workers, shared).await;
}

/// Accepts connections on `listener` until the task is dropped, spreading them over
/// `workers` in turn.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    workers: Vec<ArbiterHandle>,
    shared: Arc<SessionShared>,
) {
    let mut turn = 0usize;
    loop {
        // Paused at MAX_SESSIONS: new clients wait in the kernel's backlog.
        shared.gate.wait_open().await;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                log::warn!("accept failed: {e}");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Accepted just as the limit was reached: it waits like those in the backlog.
        shared.gate.wait_open().await;
        // Over its address's or subnet's cap: closed at once (dropping the stream).
        let admission = match shared.gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refused) => {
                log::debug!("connection from {peer} refused: {refused}");
                continue;
            }
        };
        // Re-register the socket on the arbiter that will own it.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let worker = &workers[turn % workers.len()];
        turn += 1;
        let transport = transport.clone();
        let shared = Arc::clone(&shared);
        worker.spawn(async move {
            if let Err(e) = connect(std_stream, peer, transport, shared, admission).await {
                log::debug!("connection from {peer} dropped: {e}");
            }
        });
    }
}

/// Runs on the worker arbiter: handshakes, then the session.
async fn connect(
    std_stream: std::net::TcpStream,
    peer: SocketAddr,
    transport: Transport,
    shared: Arc<SessionShared>,
    admission: Admission,
) -> Result<(), SetupError> {
    let stream = TcpStream::from_std(std_stream).map_err(SetupError::Socket)?;
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::Tcp => {
            let (reader, writer) = stream.into_split();
            let reader = LineDeadlines::new(
                reader,
                shared.gate.first_message_timeout(),
                shared.line_timeout,
            );
            let id = next_session_id();
            Session::start(
                id,
                peer,
                SessionKind::Tcp,
                reader,
                writer,
                shared,
                admission,
            );
        }
        Transport::Ssl(certificates) => {
            let acceptor = certificates.acceptor();
            let stream = within_limit(async {
                tls::handshake(&acceptor, stream)
                    .await
                    .map_err(SetupError::from)
            })
            .await?;
            let (reader, writer) = tokio::io::split(stream);
            let reader = LineDeadlines::new(
                reader,
                shared.gate.first_message_timeout(),
                shared.line_timeout,
            );
            let id = next_session_id();
            Session::start(
                id,
                peer,
                SessionKind::Ssl,
                reader,
                writer,
                shared,
                admission,
            );
        }
        Transport::Ws => {
            let ws = within_limit(ws_handshake(stream, shared.max_recv)).await?;
            start_ws(ws, peer, SessionKind::Ws, shared, admission);
        }
        Transport::Wss(certificates) => {
            let acceptor = certificates.acceptor();
            let ws = within_limit(async {
                let stream = tls::handshake(&acceptor, stream).await?;
                ws_handshake(stream, shared.max_recv).await
            })
            .await?;
            start_ws(ws, peer, SessionKind::Wss, shared, admission);
        }
    }
    Ok(())
}

/// The WebSocket counterpart of [`LineDeadlines`]' first deadline: fails with `TimedOut`
/// unless a first message arrives within FIRST_MESSAGE_TIMEOUT of the handshake.
struct FirstMessageDeadline<S> {
    inner: Pin<Box<S>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> FirstMessageDeadline<S> {
    fn new(inner: S, timeout: Duration) -> FirstMessageDeadline<S> {
        FirstMessageDeadline {
            inner: Box::pin(inner),
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<S> futures_util::Stream for FirstMessageDeadline<S>
where
    S: futures_util::Stream<Item = Result<BytesMut, std::io::Error>>,
{
    type Item = Result<BytesMut, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(LineLate::FirstMessage.error())));
        }
        let next = this.inner.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(Some(Ok(_)))) {
            this.deadline = None;
        }
        next
    }
}

async fn within_limit<T>(
    handshake: impl Future<Output = Result<T, SetupError>>,
) -> Result<T, SetupError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| SetupError::Timeout)?
}

/// The HTTP upgrade, on any path (as ElectrumX). ElectrumX puts no MAX_RECV on
/// WebSocket messages, but some limit is needed and MAX_RECV is the operator's.
async fn ws_handshake<S>(stream: S, max_recv: usize) -> Result<WebSocketStream<S>, SetupError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Replies are flushed one at a time, so there is nothing to gain from buffering
    // writes (and the write buffer never holds more than one reply and a pong).
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_recv))
        .max_frame_size(Some(max_recv));
    Ok(tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?)
}

/// Starts a session over a WebSocket: each text or binary message is one JSON message,
/// each reply one text message. tungstenite answers pings and close frames while the
/// session reads; the stream ends after the client's close frame.
fn start_ws<S>(
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    kind: SessionKind,
    shared: Arc<SessionShared>,
    admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (sink, stream) = ws.split();
    let first_message_timeout = shared.gate.first_message_timeout();
    // Owned by the session's incoming stream: the writer learns the session ended when
    // it is dropped, and why, when the client broke the protocol.
    let (close_tx, close_rx) = watch::channel(None);
    let incoming = stream.filter_map(move |message| {
        future::ready(match message {
            Ok(Message::Text(text)) => Some(Ok(BytesMut::from(text.as_bytes()))),
            Ok(Message::Binary(data)) => Some(Ok(BytesMut::from(&data[..]))),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => None,
            Err(e) => {
                close_tx.send_replace(close_frame(&e));
                Some(Err(std::io::Error::other(e)))
            }
        })
    });
    Session::start_with(
        next_session_id(),
        peer,
        kind,
        FirstMessageDeadline::new(incoming, first_message_timeout),
        |queue| actix_rt::spawn(ws_write(sink, queue, close_rx)),
        shared,
        admission,
    );
}

/// The close frame that tells a client what it did wrong, as the `websockets` library
/// under ElectrumX sends.
fn close_frame(error: &tungstenite::Error) -> Option<CloseFrame> {
    let (code, reason) = match error {
        tungstenite::Error::Capacity(_) => (CloseCode::Size, "message too big"),
        tungstenite::Error::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        tungstenite::Error::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8"),
        _ => return None,
    };
    Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    })
}

/// Sends the session's replies until its queue closes, then a close frame. Once the
/// session has ended, the rest must go out within CLOSE_GRACE or the connection is
/// dropped: a client that stopped reading holds nothing for long.
async fn ws_write<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: OutgoingQueue,
    mut close: watch::Receiver<Option<CloseFrame>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let drained = {
        let forwarding = forward(&mut sink, &mut queue);
        tokio::pin!(forwarding);
        tokio::select! {
            drained = &mut forwarding => drained,
            () = session_ended(&mut close) => {
                tokio::time::timeout(CLOSE_GRACE, forwarding).await.unwrap_or(false)
            }
        }
    };
    if drained {
        let frame = close.borrow().clone();
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(frame))).await;
    }
}

/// Sends queued replies in order; false if the connection failed.
async fn forward<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    queue: &mut OutgoingQueue,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(mut reply) = queue.recv().await {
        // The session frames messages for byte streams, one per line (a notification
        // can carry several lines); a WebSocket message is one JSON message, no newline.
        while !reply.is_empty() {
            let end = reply
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(reply.len());
            let message = reply.split_to(end);
            if !reply.is_empty() {
                reply.advance(1);
            }
            let Ok(text) = Utf8Bytes::try_from(message) else {
                log::error!("a reply is not UTF-8: not sent");
                return false;
            };
            // `send` waits for the flush, so the socket, not memory, absorbs a slow reader.
            if sink.send(Message::Text(text)).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// Completes when the session's incoming stream (which owns the sender) is dropped.
async fn session_ended(close: &mut watch::Receiver<Option<CloseFrame>>) {
    while close.changed().await.is_ok() {}
}
