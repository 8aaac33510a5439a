//! The client transports end to end, on a real regtest litecoind: over `ssl://` (with
//! electrum-client, as wallets connect), `ws://` and `wss://` (with tokio-tungstenite)
//! ferrumx answers exactly what it answers over `tcp://`; WebSocket pings, close frames,
//! over-long messages and clients that stop reading are handled; a client that never
//! completes its handshake is dropped after the time limit while others are served; and
//! a TLS service without a usable certificate stops start-up with a clear error.

mod support;

use electrum_client::bitcoin::ScriptBuf;
use electrum_client::{Client, ConfigBuilder, ElectrumApi, Param};
use futures_util::{SinkExt, StreamExt};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use support::chain_builder::{ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::free_port;
use support::litecoind::Litecoind;
use support::truth::{Truth, scripthash};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

const READY: Duration = Duration::from_secs(120);
/// The server's limit for TLS and WebSocket handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Small, so an over-long WebSocket message is quick to send.
const MAX_RECV: usize = 200_000;
/// How long a WebSocket client waits for one message.
const WS_WAIT: Duration = Duration::from_secs(10);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

struct Ports {
    tcp: u16,
    ssl: u16,
    ws: u16,
    wss: u16,
}

impl Ports {
    fn free() -> Ports {
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 4 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        Ports {
            tcp: ports[0],
            ssl: ports[1],
            ws: ports[2],
            wss: ports[3],
        }
    }

    fn services(&self) -> String {
        format!(
            "tcp://127.0.0.1:{},ssl://127.0.0.1:{},ws://127.0.0.1:{},wss://127.0.0.1:{}",
            self.tcp, self.ssl, self.ws, self.wss
        )
    }
}

/// A self-signed P-256 certificate for localhost / 127.0.0.1, and its key, as PEM files.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = support::certs::self_signed("localhost");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert_path, key_path)
}

/// Waits for a server that should refuse to run to exit.
fn wait_for_exit(server: &mut FerrumxProcess) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.exit_status() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "ferrumx kept running:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True once the server has closed this connection.
fn is_closed(stream: &mut StdTcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the server sent data to a client that never handshook"),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// What the server answered over `tcp://`, the reference for the other transports.
struct Expected {
    version: Value,
    tip: Value,
    balance: Value,
    malformed: Value,
}

async fn ws_connect(port: u16) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), tcp)
        .await
        .unwrap();
    ws
}

async fn wss_connect(port: u16) -> WebSocketStream<SslStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
    connector.set_verify(SslVerifyMode::NONE);
    let ssl = connector
        .build()
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("localhost")
        .unwrap();
    let mut tls = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut tls).connect().await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://127.0.0.1:{port}/"), tls)
        .await
        .unwrap();
    ws
}

/// The next message that is not a ping or pong.
async fn next_message<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    loop {
        let message = tokio::time::timeout(WS_WAIT, ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the connection is open")
            .expect("a valid WebSocket message");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// Sends one message and parses the text reply (one JSON message, no newline).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    message: Message,
) -> Value {
    ws.send(message).await.unwrap();
    match next_message(ws).await {
        Message::Text(text) => {
            assert!(
                !text.ends_with('\n'),
                "a WebSocket reply ends with a newline"
            );
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        }
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// server.version, a ping, a batch, a binary message, a malformed message and a close,
/// compared with the answers over TCP.
async fn check_websocket<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    scripthash: &str,
    expected: &Expected,
) {
    let version = json!({"jsonrpc": "2.0", "id": 7, "method": "server.version",
                         "params": ["ferrumx-tests", ["1.4", "1.6"]]});
    let reply = exchange(&mut ws, Message::text(version.to_string())).await;
    assert_eq!(reply["id"], json!(7));
    assert_eq!(reply["result"], expected.version);

    ws.send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WS_WAIT, ws.next())
        .await
        .expect("a pong in time")
        .expect("the connection is open")
        .unwrap();
    assert_eq!(pong, Message::Pong("are you there".into()));

    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "blockchain.headers.subscribe", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "blockchain.scripthash.get_balance",
         "params": [scripthash]},
    ]);
    let reply = exchange(&mut ws, Message::text(batch.to_string())).await;
    let replies = reply.as_array().expect("a batch reply");
    assert_eq!(replies.len(), 2, "{reply}");
    for item in replies {
        let expected = match item["id"].as_u64() {
            Some(1) => &expected.tip,
            Some(2) => &expected.balance,
            _ => panic!("unexpected batch item {item}"),
        };
        assert_eq!(&item["result"], expected, "{item}");
    }

    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "server.ping", "params": []});
    let reply = exchange(&mut ws, Message::binary(ping.to_string().into_bytes())).await;
    assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 9, "result": null}));

    let reply = exchange(&mut ws, Message::text("{not json")).await;
    assert_eq!(reply, expected.malformed);

    ws.send(Message::Close(None)).await.unwrap();
    assert!(
        matches!(next_message(&mut ws).await, Message::Close(_)),
        "no close frame in reply to the client's"
    );
    let end = tokio::time::timeout(WS_WAIT, ws.next()).await.unwrap();
    assert!(
        end.is_none(),
        "the connection stayed open after the close: {end:?}"
    );
}

/// Notifications over WebSocket: a block that changes a subscribed script's status
/// brings the header and the status, each in a message of its own.
async fn check_ws_notifications(port: u16, node: &Litecoind) {
    let mut ws = ws_connect(port).await;
    let version = json!({"jsonrpc": "2.0", "id": 1, "method": "server.version",
                         "params": ["ferrumx-tests", "1.4"]});
    exchange(&mut ws, Message::text(version.to_string())).await;
    let (address, script) = node.new_address("bech32");
    let script_hash = scripthash(&script);
    let headers = json!({"jsonrpc": "2.0", "id": 2, "method": "blockchain.headers.subscribe",
                         "params": []});
    exchange(&mut ws, Message::text(headers.to_string())).await;
    let subscribe = json!({"jsonrpc": "2.0", "id": 3, "method": "blockchain.scripthash.subscribe",
                           "params": [script_hash]});
    exchange(&mut ws, Message::text(subscribe.to_string())).await;
    // Paid in the mempool first (a status of its own), then mined: the block's header
    // and the new status leave the session in one write, and arrive as two messages.
    let pay = node.call("sendtoaddress", json!([address, 0.5]));
    let first = next_json(&mut ws).await;
    assert_eq!(
        first["method"], "blockchain.scripthash.subscribe",
        "{first}"
    );
    node.mine(1);
    let header = next_json(&mut ws).await;
    assert_eq!(header["method"], "blockchain.headers.subscribe", "{header}");
    let status = next_json(&mut ws).await;
    assert_eq!(
        status["method"], "blockchain.scripthash.subscribe",
        "{status}"
    );
    assert_eq!(
        status["params"][0],
        json!(script_hash),
        "{status} after {pay}"
    );
}

/// The next text message, as JSON (one message each).
async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    match next_message(ws).await {
        Message::Text(text) => {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
        }
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// A message over MAX_RECV, sent in two frames that each fit (so the server reads all
/// of it): the server closes with 1009 (message too big).
async fn check_over_long_message(port: u16) {
    let mut ws = ws_connect(port).await;
    let half = vec![b'x'; MAX_RECV / 2 + 1000];
    let first = Frame::message(half.clone(), OpCode::Data(Data::Text), false);
    ws.send(Message::Frame(first)).await.unwrap();
    let second = Frame::message(half, OpCode::Data(Data::Continue), true);
    ws.send(Message::Frame(second)).await.unwrap();
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size, "{frame:?}"),
        other => panic!("expected a close frame for a message over MAX_RECV, got {other:?}"),
    }
}

/// A client that sends requests for big replies and never reads. Returns once all are
/// sent (or the server stopped reading them).
async fn flood_without_reading(port: u16) -> WebSocketStream<TcpStream> {
    let mut ws = ws_connect(port).await;
    let version = json!({"jsonrpc": "2.0", "id": 0, "method": "server.version",
                         "params": ["flood", "1.4"]});
    exchange(&mut ws, Message::text(version.to_string())).await;
    for id in 1..=FLOOD_REQUESTS {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "blockchain.block.headers",
                             "params": [0, 2016]});
        let sent = tokio::time::timeout(WS_WAIT, ws.send(Message::text(request.to_string()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            break;
        }
    }
    ws
}

/// Each reply is ~25 kB: far more than the session's queue and the sockets' buffers hold.
const FLOOD_REQUESTS: u64 = 1000;

/// Reads what the server sent the flooding client: it must have closed the connection
/// well before answering everything.
async fn replies_before_disconnect(mut ws: WebSocketStream<TcpStream>) -> u64 {
    let mut replies = 0;
    loop {
        match tokio::time::timeout(WS_WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => replies += 1,
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return replies,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the server kept a client that stopped reading ({replies} replies)"),
        }
    }
}

#[test]
fn ssl_ws_and_wss_serve_what_tcp_serves() {
    let node = Litecoind::start();
    let info = build_mixed_chain(&node, &ChainSpec::small());
    eprintln!("chain: {} blocks, {} txs", info.tip, info.transactions);
    let truth = Truth::from_daemon(&node);
    let (script_hex, _) = truth.busiest_script().expect("a script with history");
    let script_hex = script_hex.clone();
    let scripthash = scripthash(&script_hex);

    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(certs.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let ports = Ports::free();
    let services = ports.services();
    let max_recv = MAX_RECV.to_string();
    let db = tempfile::tempdir().unwrap();
    let mut server = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        db.path(),
        &[
            ("SERVICES", &services),
            ("SSL_CERTFILE", &cert),
            ("SSL_KEYFILE", &key),
            ("MAX_RECV", &max_recv),
        ],
    );
    server.wait_ready(READY);
    for (kind, port) in [("SSL", ports.ssl), ("WS", ports.ws), ("WSS", ports.wss)] {
        server.wait_for_log(
            &format!("{kind} server listening on 127.0.0.1:{port}"),
            Duration::from_secs(30),
        );
    }

    // Clients that connect and never handshake, over TLS and over WebSocket.
    let mut silent_tls = StdTcpStream::connect(("127.0.0.1", ports.ssl)).unwrap();
    let mut silent_ws = StdTcpStream::connect(("127.0.0.1", ports.ws)).unwrap();
    let silent_since = Instant::now();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flood = runtime.block_on(flood_without_reading(ports.ws));

    // The reference: the same questions over TCP.
    let mut tcp = RawClient::connect(server.tcp_addr()).unwrap();
    let expected = Expected {
        version: tcp
            .call("server.version", json!(["ferrumx-tests", ["1.4", "1.6"]]))
            .unwrap(),
        tip: tcp.call("blockchain.headers.subscribe", json!([])).unwrap(),
        balance: tcp
            .call("blockchain.scripthash.get_balance", json!([scripthash]))
            .unwrap(),
        malformed: {
            tcp.send_raw_line("{not json").unwrap();
            tcp.read_json()
                .unwrap()
                .expect("a reply to a malformed line")
        },
    };
    assert_eq!(expected.balance, truth.expected_balance(&scripthash));
    assert_eq!(expected.malformed["error"]["code"], json!(-32700));

    // ssl:// as a wallet connects: electrum-client negotiates the version on connect.
    let config = ConfigBuilder::new()
        .validate_domain(false)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let ssl = Client::from_config(&format!("ssl://127.0.0.1:{}", ports.ssl), config).unwrap();
    assert_eq!(json!(ssl.protocol_version().unwrap()), expected.version[1]);
    let header = ssl.block_headers_subscribe_raw().unwrap();
    assert_eq!(json!(header.height), expected.tip["height"]);
    assert_eq!(
        json!(
            header
                .header
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        expected.tip["hex"]
    );
    let script = ScriptBuf::from_hex(&script_hex).unwrap();
    let balance = ssl.script_get_balance(&script).unwrap();
    assert_eq!(json!(balance.confirmed), expected.balance["confirmed"]);
    assert_eq!(json!(balance.unconfirmed), expected.balance["unconfirmed"]);
    let raw = ssl
        .raw_call(
            "blockchain.scripthash.get_balance",
            [Param::String(scripthash.clone())],
        )
        .unwrap();
    assert_eq!(raw, expected.balance);

    runtime.block_on(async {
        check_websocket(ws_connect(ports.ws).await, &scripthash, &expected).await;
        check_websocket(wss_connect(ports.wss).await, &scripthash, &expected).await;
        check_over_long_message(ports.ws).await;
        check_ws_notifications(ports.ws, &node).await;
    });

    // The silent clients are dropped after the handshake limit; the others are served
    // meanwhile.
    let (mut tls_open, mut ws_open) = (true, true);
    while tls_open || ws_open {
        let waited = silent_since.elapsed();
        assert!(
            waited < HANDSHAKE_TIMEOUT + Duration::from_secs(10),
            "a client that never handshook is still connected after {waited:?}"
        );
        ssl.ping().unwrap();
        tcp.call("server.ping", json!([])).unwrap();
        if tls_open && is_closed(&mut silent_tls) {
            tls_open = false;
            assert!(
                waited >= HANDSHAKE_TIMEOUT - Duration::from_secs(1),
                "{waited:?}"
            );
        }
        if ws_open && is_closed(&mut silent_ws) {
            ws_open = false;
            assert!(
                waited >= HANDSHAKE_TIMEOUT - Duration::from_secs(1),
                "{waited:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // The flooding client was disconnected, not buffered for.
    let replies = runtime.block_on(replies_before_disconnect(flood));
    assert!(
        replies < FLOOD_REQUESTS,
        "all {replies} replies were kept for a client that did not read"
    );
    assert!(
        server.log().contains("is not reading its replies"),
        "{}",
        server.log_tail(20)
    );
    eprintln!("the non-reading client got {replies} of {FLOOD_REQUESTS} replies");
    drop(ssl);
    assert_eq!(server.stop().code(), Some(0), "{}", server.log_tail(20));

    // No certificate configured: the configuration is refused at once.
    let mut refused = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        db.path(),
        &[("SERVICES", &services), ("SSL_KEYFILE", &key)],
    );
    let status = wait_for_exit(&mut refused);
    assert!(!status.success());
    assert!(refused.log().contains("SSL_CERTFILE"), "{}", refused.log());

    // A key file that cannot be read: start-up stops naming the variable and the file.
    let missing = certs.path().join("missing.key").display().to_string();
    let mut refused = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        db.path(),
        &[
            ("SERVICES", &services),
            ("SSL_CERTFILE", &cert),
            ("SSL_KEYFILE", &missing),
        ],
    );
    let status = wait_for_exit(&mut refused);
    assert!(!status.success());
    let log = refused.log();
    let error = log
        .lines()
        .find(|line| line.contains("SSL_KEYFILE"))
        .unwrap_or_else(|| panic!("no error naming SSL_KEYFILE:\n{log}"));
    assert!(error.contains(&missing), "unclear error: {error}");
    eprintln!("refused: {error}");
}
