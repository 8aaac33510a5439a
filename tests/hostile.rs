//! Hostile clients outside the request path, end to end on loopback against a real
//! ferrumx on a real regtest litecoind: a `server.add_peer` announcing 1,000 hosts,
//! connection caps per address and per /24, 2,000 silent connections, slowloris, a 50 MB
//! line without newline, invalid UTF-8, a TLS ClientHello and an HTTP GET on the TCP
//! port, a silent WebSocket, and the admin (`rpc://`) and metrics (`http://`) ports fed
//! a line without end or a slow sender. On the request path: a line over MAX_RECV in one
//! read and a 50 MB partial line after `server.version`, 900 KB `server.version`
//! strings, 400 junk lines from a session in the witness's time slice, 100,000 nested
//! brackets, 10,000 pipelined requests never read, 50,000 subscriptions on one session,
//! 10,000 unknown methods, odd numbers (strings, floats, 2^64, -1) in every numeric
//! parameter, a request trickled byte by byte after `server.version` (LINE_TIMEOUT), and
//! subscriptions past MAX_SESSION_SUBSCRIPTIONS. The attacks that take only an address live in `hostile/attacks.rs`;
//! `hostile/suite.rs` runs them, observed rather than asserted, against ElectrumX 2.0
//! for the README's table (`bench/hostile/run.sh`, `#[ignore]`d here).
//!
//! Each test runs a witness: a well-behaved client that connected first and pings every
//! 0.5 s throughout; its worst latency must stay under 2 s and it must never be
//! disconnected. Where memory is the point, the server's RSS is read from /proc before
//! and after. Every loop is bounded in count and time.

#[path = "hostile/attacks.rs"]
mod attacks;
#[path = "hostile/suite.rs"]
mod suite;
mod support;

use attacks::{closes_within, flood_bytes};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::{connect_from, free_port, wait_until};

const READY: Duration = Duration::from_secs(120);
/// The witness's worst acceptable latency.
const WITNESS_LIMIT: Duration = Duration::from_secs(2);
/// How far RSS may stay above its level before the attack.
const RSS_SLACK_KIB: u64 = 64 * 1024;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn start(node: &Litecoind, extra: &[(&str, &str)]) -> (tempfile::TempDir, FerrumxProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), extra);
    server.wait_ready(READY);
    (dir, server)
}

/// The server's resident set size, in KiB.
fn rss_kib(server: &FerrumxProcess) -> u64 {
    attacks::rss_of(server.pid().expect("server running"))
}

/// Waits up to 10 s for RSS to come back within [`RSS_SLACK_KIB`] of `before`; the last
/// reading.
fn rss_settles(server: &FerrumxProcess, before: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_kib(server);
        if now < before + RSS_SLACK_KIB || Instant::now() > deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// `server.version` then `server.ping` on a raw stream: whether the server answered both.
fn answers(stream: TcpStream) -> bool {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    for (id, method, params) in [
        (1, "server.version", json!(["hostile-test", "1.4"])),
        (2, "server.ping", json!([])),
    ] {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if writeln!(writer, "{request}").is_err() {
            return false;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
        let Ok(reply) = serde_json::from_str::<Value>(&line) else {
            return false;
        };
        if reply["id"] != id || !reply["error"].is_null() {
            return false;
        }
    }
    true
}

/// A well-behaved client pinging every 0.5 s on its own thread until stopped.
struct Witness {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<WitnessReport>,
}

#[derive(Debug)]
struct WitnessReport {
    pings: u32,
    worst: Duration,
    /// Set if a ping failed: the connection closed or the reply was an error.
    failure: Option<String>,
}

impl Witness {
    fn start(server: SocketAddr) -> Witness {
        Witness::start_from("127.0.0.1", server)
    }

    fn start_from(source: &str, server: SocketAddr) -> Witness {
        let stream = connect_from(source, server).expect("witness connects");
        let mut client = RawClient::from_stream(stream).expect("witness client");
        client.set_read_timeout(Duration::from_secs(30));
        client.handshake("1.4").expect("witness handshake");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut report = WitnessReport {
                pings: 0,
                worst: Duration::ZERO,
                failure: None,
            };
            // Bounded: at most 10 minutes of pings.
            for _ in 0..1200 {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let sent = Instant::now();
                match client.try_call("server.ping", json!([])) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        report.failure = Some(format!("ping refused: {e:?}"));
                        break;
                    }
                    Err(e) => {
                        report.failure = Some(format!("connection lost: {e}"));
                        break;
                    }
                }
                report.worst = report.worst.max(sent.elapsed());
                report.pings += 1;
                thread::sleep(Duration::from_millis(500));
            }
            report
        });
        Witness { stop, thread }
    }

    /// Stops the witness (after one more second) and reports what it saw.
    fn stop(self) -> WitnessReport {
        thread::sleep(Duration::from_millis(1200));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("witness thread")
    }

    /// Stops the witness and checks it was answered throughout, within 2 s each time.
    /// It goes on for a second after the attack, to see the server still answers.
    fn finish(self, attack: &str) -> Duration {
        let report = self.stop();
        assert!(report.failure.is_none(), "{attack}: witness {report:?}");
        assert!(report.pings >= 2, "{attack}: witness {report:?}");
        assert!(
            report.worst < WITNESS_LIMIT,
            "{attack}: witness worst latency {:?}",
            report.worst
        );
        eprintln!(
            "{attack}: witness worst latency {:?} over {} pings",
            report.worst, report.pings
        );
        report.worst
    }
}

/// A features object announcing `hosts` host names under `domain`.
fn announcement(domain: &str, hosts: usize) -> Value {
    let hosts: serde_json::Map<String, Value> = (0..hosts)
        .map(|n| {
            (
                format!("h{n:04}.{domain}"),
                json!({"tcp_port": 50001, "ssl_port": 50002}),
            )
        })
        .collect();
    json!({
        "hosts": hosts,
        "genesis_hash": "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9",
        "hash_function": "sha256",
        "server_version": "ElectrumX 1.16.0",
        "protocol_min": "1.4",
        "protocol_max": "1.4.2",
        "pruning": null,
    })
}

/// Issue 13: one `server.add_peer` announcing 1,000 hosts made a peer per host, each with
/// a copy of the whole announcement (~800 MiB for good). Now at most 8 hosts are read
/// and each peer keeps a bounded copy: ten such calls leave RSS within 64 MiB.
#[test]
fn add_peer_with_a_thousand_hosts_keeps_memory_bounded() {
    let node = Litecoind::start();
    node.mine(5);
    let (_db, server) = start(
        &node,
        &[("FERRUMX_TEST_PEERS", "1"), ("PEER_DISCOVERY", "on")],
    );
    let witness = Witness::start(server.tcp_addr());
    let before = rss_kib(&server);
    // Each call from its own connection and its own domain (a bucket each).
    for n in 0..10 {
        let mut attacker = RawClient::connect(server.tcp_addr()).expect("attacker");
        attacker.handshake("1.4").expect("handshake");
        let features = announcement(&format!("attacker{n}.example.com"), 1000);
        assert!(features.to_string().len() > 40_000);
        // Refused (the hosts do not resolve to the caller) or accepted: either way
        // the announcement was read.
        let outcome = attacker.call("server.add_peer", json!([features]));
        assert!(
            matches!(outcome, Ok(Value::Bool(_)) | Err(_)),
            "{outcome:?}"
        );
    }
    let after = rss_settles(&server, before);
    eprintln!(
        "add_peer x10 with 1,000 hosts: RSS {} MiB -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS grew from {before} KiB to {after} KiB"
    );
    witness.finish("add_peer with 1,000 hosts");
}

/// MAX_SESSIONS_PER_IP and MAX_SESSIONS_PER_SUBNET (a /24 for IPv4): a connection over
/// a cap is closed at once; another address or subnet is unaffected; a closed
/// connection's slots are free at once. Loopback counts here through the test switch.
#[test]
fn connections_are_capped_per_address_and_per_subnet() {
    let node = Litecoind::start();
    let (_db, server) = start(
        &node,
        &[
            ("FERRUMX_TEST_CAP_LOOPBACK", "1"),
            ("MAX_SESSIONS_PER_IP", "3"),
            ("MAX_SESSIONS_PER_SUBNET", "5"),
        ],
    );
    let addr = server.tcp_addr();
    // The witness is on its own /24; the harness's readiness probe has closed.
    let witness = Witness::start_from("127.0.9.1", addr);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from("127.0.0.1", addr).expect("under the address cap"))
        .collect();
    // The fourth from one address: closed at once, without an answer.
    let mut over = connect_from("127.0.0.1", addr).expect("connect");
    assert!(closes_within(&mut over, Duration::from_secs(5)));
    // Same /24, other addresses: two more fit, then the subnet is full.
    held.push(connect_from("127.0.0.2", addr).expect("subnet slot 4"));
    held.push(connect_from("127.0.0.3", addr).expect("subnet slot 5"));
    let mut over = connect_from("127.0.0.4", addr).expect("connect");
    assert!(closes_within(&mut over, Duration::from_secs(5)));
    // Held connections are served; another /24 is not affected.
    assert!(answers(held.remove(0)), "a held connection is served");
    let other_subnet = connect_from("127.0.1.1", addr).expect("other subnet");
    assert!(answers(other_subnet));
    // The closed connection's slot is free again at once (after the server saw it close).
    wait_until("a freed slot", Duration::from_secs(5), || {
        connect_from("127.0.0.1", addr).is_ok_and(answers)
    });
    witness.finish("connection caps");
}

/// 2,000 silent connections (loopback, not capped per address: as from many machines)
/// with MAX_SESSIONS at 300: the silent ones are closed after FIRST_MESSAGE_TIMEOUT, so
/// a new client gets in within a few rounds; the witness is answered throughout and RSS
/// comes back. A first line trickled byte by byte (slowloris) is closed just the same.
#[test]
fn silent_and_slowloris_connections_give_up_their_slots() {
    let node = Litecoind::start();
    let (_db, server) = start(
        &node,
        &[("MAX_SESSIONS", "300"), ("FIRST_MESSAGE_TIMEOUT", "2")],
    );
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);

    // Slowloris: one byte every 300 ms of a first line that never ends.
    let mut slow = connect_from("127.0.0.1", addr).expect("slowloris");
    let started = Instant::now();
    let mut cut_after = None;
    for _ in 0..40 {
        if slow.write_all(b"{").is_err() {
            cut_after = Some(started.elapsed());
            break;
        }
        if closes_within(&mut slow, Duration::from_millis(300)) {
            cut_after = Some(started.elapsed());
            break;
        }
    }
    let cut_after = cut_after.expect("slowloris closed");
    assert!(cut_after < Duration::from_secs(6), "{cut_after:?}");

    // 2,000 silent connections; the ones beyond the kernel's backlog may fail to connect.
    let mut silent = Vec::new();
    for _ in 0..2000 {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            silent.push(stream);
        }
    }
    assert!(silent.len() >= 1000, "{} silent connections", silent.len());
    let flooded = Instant::now();
    // A new client is answered once the silent ones ahead of it time out.
    let newcomer = connect_from("127.0.0.1", addr).expect("a new client connects");
    assert!(answers(newcomer), "a new client is answered");
    let newcomer_wait = flooded.elapsed();
    assert!(newcomer_wait < Duration::from_secs(30), "{newcomer_wait:?}");
    // Every silent connection is closed by the server (bounded: 60 s in all).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut closed = 0;
    for stream in &mut silent {
        let left = deadline.saturating_duration_since(Instant::now());
        if closes_within(stream, left.max(Duration::from_millis(1))) {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        silent.len(),
        "silent connections closed by the server"
    );
    drop(silent);
    let after = rss_settles(&server, before);
    eprintln!(
        "2,000 silent: new client answered after {newcomer_wait:?}; RSS {} MiB -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    witness.finish("silent connections and slowloris");
}

/// Junk on the TCP port: a 50 MB line without newline, invalid UTF-8, a TLS ClientHello
/// and an HTTP GET. Each connection ends (closed by the server, at once or after
/// FIRST_MESSAGE_TIMEOUT); the server stays up, RSS comes back, the witness is answered.
#[test]
fn junk_on_the_tcp_port_is_closed_without_harm() {
    let node = Litecoind::start();
    let (_db, mut server) = start(&node, &[("FIRST_MESSAGE_TIMEOUT", "3")]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);

    // 50 MB without a newline: over MAX_RECV (1 MB) it is discarded as it arrives (as
    // aiorpcX does), and the connection is closed when FIRST_MESSAGE_TIMEOUT ends.
    let mut long = connect_from("127.0.0.1", addr).expect("connect");
    let started = Instant::now();
    let sent = flood_bytes(&mut long, b'a', 50_000_000);
    let peak = rss_kib(&server);
    assert!(
        peak < before + RSS_SLACK_KIB,
        "RSS {before} -> {peak} KiB while reading"
    );
    assert!(closes_within(&mut long, Duration::from_secs(10)));
    eprintln!(
        "50 MB line: {sent} bytes sent, closed {:?} after the first byte",
        started.elapsed()
    );

    // A TLS ClientHello (a record header and the start of a handshake, no newline).
    let mut tls = connect_from("127.0.0.1", addr).expect("connect");
    tls.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0xde, 0xad, 0xbe, 0xef,
    ])
    .expect("send a ClientHello");
    assert!(closes_within(&mut tls, Duration::from_secs(10)));

    // An HTTP GET and invalid UTF-8: never served. The answer is an error, or ElectrumX's
    // two parameterless notifications for a client that did not identify itself, and
    // then the server closes the connection.
    for junk in [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        b"\xff\xfe\xfd{\"id\":1}\n\xc3\x28\n".to_vec(),
    ] {
        let mut stream = connect_from("127.0.0.1", addr).expect("connect");
        stream.write_all(&junk).expect("send junk");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut closed = false;
        for _ in 0..10 {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {
                    let reply: Value = serde_json::from_str(&line).expect("a JSON reply");
                    let refused = !reply["error"].is_null()
                        || (reply["method"].is_string() && reply.get("result").is_none());
                    assert!(refused, "junk was served: {line}");
                }
                Err(_) => break,
            }
        }
        let shown = String::from_utf8_lossy(&junk[..8]).into_owned();
        assert!(closed, "the connection that sent {shown:?} was closed");
    }

    assert!(server.is_running(), "the server survived");
    let after = rss_settles(&server, before);
    eprintln!(
        "junk on the TCP port: RSS {} MiB -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    assert!(answers(connect_from("127.0.0.1", addr).expect("connect")));
    witness.finish("junk on the TCP port");
}

/// The admin port: a line without newline over 1 MB is cut off; a connection that sends
/// part of a line and stops is closed after 30 s; a normal command still works. The
/// metrics port: a request head without end and a slow sender are closed (8 KiB, 10 s).
/// `http://:PORT` listens on loopback.
#[test]
fn admin_and_metrics_reads_are_bounded() {
    let node = Litecoind::start();
    let (rpc, http, tcp) = (free_port(), free_port(), free_port());
    let services = format!("tcp://127.0.0.1:{tcp},rpc://127.0.0.1:{rpc},http://:{http}");
    let (_db, server) = start(&node, &[("SERVICES", &services)]);
    let witness = Witness::start(server.tcp_addr());
    let before = rss_kib(&server);

    // A 3 MB admin line without newline: closed before it is all read.
    let mut long = TcpStream::connect(("127.0.0.1", rpc)).expect("admin");
    flood_bytes(&mut long, b' ', 3_000_000);
    assert!(closes_within(&mut long, Duration::from_secs(10)));

    // A slow admin sender and a slow metrics sender: both closed in time.
    let mut slow_admin = TcpStream::connect(("127.0.0.1", rpc)).expect("admin");
    slow_admin.write_all(b"{\"id\":1,").expect("partial line");
    let mut slow_http = TcpStream::connect(("127.0.0.1", http)).expect("metrics");
    slow_http.write_all(b"GET /metr").expect("partial head");
    let mut endless_head = TcpStream::connect(("127.0.0.1", http)).expect("metrics");
    let _ = endless_head.write_all(&vec![b'x'; 16 * 1024]);
    assert!(closes_within(&mut endless_head, Duration::from_secs(5)));
    let waited = Instant::now();
    assert!(closes_within(&mut slow_http, Duration::from_secs(15)));
    assert!(closes_within(&mut slow_admin, Duration::from_secs(40)));
    eprintln!(
        "slow admin and metrics senders closed after {:?}",
        waited.elapsed()
    );

    // Both services still answer.
    let reply = support::admin_request(rpc, &json!({"id": 1, "method": "getinfo", "params": {}}));
    assert!(reply["error"].is_null(), "{reply}");
    let (status, _) = support::http_get(http, "/metrics");
    assert!(status.contains("200"), "{status}");
    // `http://:PORT` is bound to loopback: no wildcard listener on the port.
    let listening = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let wildcard = format!("00000000:{http:04X} 00000000:0000 0A");
    assert!(!listening.contains(&wildcard), "metrics listens on 0.0.0.0");
    let after = rss_settles(&server, before);
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    witness.finish("admin and metrics reads");
}

/// `ws://`: a client that completes the WebSocket handshake and then sends nothing is
/// closed when FIRST_MESSAGE_TIMEOUT ends; one that sends `server.version` at once is
/// served past it.
#[test]
fn a_silent_websocket_is_closed_at_the_first_message_deadline() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let node = Litecoind::start();
    let (tcp, ws) = (free_port(), free_port());
    let services = format!("tcp://127.0.0.1:{tcp},ws://127.0.0.1:{ws}");
    let (_db, server) = start(
        &node,
        &[("SERVICES", &services), ("FIRST_MESSAGE_TIMEOUT", "2")],
    );
    let witness = Witness::start(server.tcp_addr());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ws))
                .await
                .expect("connect");
            let (client, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{ws}/"), tcp)
                .await
                .expect("WebSocket handshake");
            client
        };
        let mut silent = connect().await;
        let mut talker = connect().await;
        let version =
            json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["t", "1.4"]});
        talker
            .send(Message::text(version.to_string()))
            .await
            .expect("send");
        let started = Instant::now();
        // The silent one ends (a close frame or the end of the stream) within 10 s.
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(message)) = silent.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the silent WebSocket was not closed");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        // The talker is answered, and still after the deadline.
        let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "server.ping", "params": []});
        talker
            .send(Message::text(ping.to_string()))
            .await
            .expect("send");
        let mut answered = 0;
        while answered < 2 {
            let message = tokio::time::timeout(Duration::from_secs(10), talker.next())
                .await
                .expect("an answer in time")
                .expect("the connection is open")
                .expect("a message");
            let reply: Value =
                serde_json::from_str(message.to_text().expect("text")).expect("JSON");
            assert!(reply["error"].is_null(), "{reply}");
            answered += 1;
        }
    });
    witness.finish("a silent WebSocket");
}

/// A ping padded with spaces to `len` bytes (newline included): valid JSON, served if
/// the server reads it.
fn padded_ping(id: u64, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"server.ping","params":[]"#);
    let mut line = head.into_bytes();
    line.resize(len - 2, b' ');
    line.extend_from_slice(b"}\n");
    line
}

/// MAX_RECV after `server.version`: a line over it is dropped without an answer (as
/// ElectrumX does) even when it arrives whole in one read, the next line is served; a
/// 50 MB partial line does not grow the server's memory, and the stream resyncs at its
/// newline.
#[test]
fn max_recv_holds_within_one_read_and_for_a_partial_line() {
    const MAX_RECV: usize = 1000;
    let node = Litecoind::start();
    let (_db, server) = start(&node, &[("MAX_RECV", &MAX_RECV.to_string())]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);

    let stream = connect_from("127.0.0.1", addr).expect("connect");
    let mut client = RawClient::from_stream(stream).expect("client");
    client.set_read_timeout(Duration::from_secs(30));
    client.handshake("1.4").expect("handshake");

    // One write (one read on loopback): a ping of 1,500 bytes, then one within the limit.
    let mut burst = padded_ping(2, MAX_RECV + 500);
    burst.extend_from_slice(&padded_ping(3, MAX_RECV));
    client.send_raw_bytes(&burst).expect("send the burst");
    let reply = client.read_json().expect("a reply").expect("still open");
    assert_eq!(reply["id"], 3, "the over-long line was served: {reply}");

    // 50 MB without a newline after server.version: discarded as it arrives.
    let mut flood_stream = connect_from("127.0.0.1", addr).expect("connect");
    let mut flooder =
        RawClient::from_stream(flood_stream.try_clone().expect("clone")).expect("client");
    flooder.set_read_timeout(Duration::from_secs(30));
    flooder.handshake("1.4").expect("handshake");
    let sent = flood_bytes(&mut flood_stream, b'a', 50_000_000);
    let peak = rss_kib(&server);
    assert!(
        peak < before + RSS_SLACK_KIB,
        "RSS {before} -> {peak} KiB while reading a partial line"
    );
    let mut resync = b"\n".to_vec();
    resync.extend_from_slice(&padded_ping(4, 100));
    flooder.send_raw_bytes(&resync).expect("send the newline");
    let reply = flooder.read_json().expect("a reply").expect("still open");
    assert_eq!(reply["id"], 4, "after the partial line: {reply}");
    eprintln!(
        "MAX_RECV {MAX_RECV}: {sent} bytes of partial line, RSS {} -> {} MiB",
        before / 1024,
        peak / 1024
    );
    witness.finish("MAX_RECV");
}

/// LINE_TIMEOUT (2 s in the test): after `server.version`, a request begun and then
/// trickled one byte every 200 ms is cut off about 2 s after its first byte (before the
/// change it was held until SESSION_TIMEOUT); meanwhile a client sending whole pings 3 s
/// apart, every other one in two writes 0.75 s apart, is answered every time, and the
/// witness throughout. The close is logged at info with its reason.
#[test]
fn a_line_in_progress_must_end_within_line_timeout() {
    let node = Litecoind::start();
    let (_db, server) = start(&node, &[("LINE_TIMEOUT", "2")]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let patient = thread::spawn(move || attacks::slow_whole_lines(addr, 4, Duration::from_secs(3)));

    let cut_after =
        attacks::dribbled_line(addr, Duration::from_millis(200), Duration::from_secs(20));
    let cut_after = cut_after.expect("the trickled line is cut off");
    eprintln!("a line trickled after server.version: closed after {cut_after:?}");
    assert!(cut_after >= Duration::from_millis(1800), "{cut_after:?}");
    assert!(cut_after < Duration::from_secs(5), "{cut_after:?}");

    let (answered, failure) = patient.join().expect("the patient client");
    assert_eq!((answered, failure), (4, None), "whole lines sent slowly");
    let log = server.log();
    assert!(
        log.contains("closing: a line took longer than LINE_TIMEOUT (2s) to arrive"),
        "{log}"
    );
    witness.finish("a line in progress past LINE_TIMEOUT");
}

/// MAX_SESSION_SUBSCRIPTIONS (5 in the test) with the cost limits off, so that only the
/// cap stands in the way: scripts, outpoints and transactions count together; past the
/// cap a subscription gets Fulcrum's code 4 and the session goes on (ping answered);
/// renewing one it holds takes no room; unsubscribing
/// frees one. Another session has its own allowance.
#[test]
fn subscriptions_per_session_are_capped() {
    let node = Litecoind::start();
    node.mine(101);
    let (_db, server) = start(
        &node,
        &[
            ("MAX_SESSION_SUBSCRIPTIONS", "5"),
            ("COST_SOFT_LIMIT", "0"),
            ("COST_HARD_LIMIT", "0"),
        ],
    );
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let block = node.call("getblockhash", json!([1]));
    let coinbase = node.call("getblock", json!([block]))["tx"][0]
        .as_str()
        .expect("coinbase")
        .to_string();
    let mut session = RawClient::connect(addr).expect("connect");
    session.set_read_timeout(Duration::from_secs(30));
    session.handshake("1.7").expect("handshake");
    let spk = |n: u8| format!("0014{}", hex_of(&[n; 20]));
    let limit_error = |result: Result<Value, _>| match result {
        Err(e) => e,
        Ok(v) => panic!("subscribed past the cap: {v}"),
    };
    for n in 0..3 {
        session
            .call("blockchain.scriptpubkey.subscribe", json!([spk(n)]))
            .expect("a script within the cap");
    }
    session
        .call("blockchain.outpoint.subscribe", json!([coinbase, 0, ""]))
        .expect("an outpoint within the cap");
    session
        .call("blockchain.transaction.subscribe", json!([coinbase]))
        .expect("a transaction within the cap");
    // The sixth, of each kind: refused, the session kept.
    let refused = limit_error(session.call("blockchain.scriptpubkey.subscribe", json!([spk(9)])));
    assert_eq!(refused.0, 4, "{refused:?}");
    assert_eq!(
        refused.1,
        "Subscription limit reached: at most 5 per session (MAX_SESSION_SUBSCRIPTIONS)"
    );
    let refused =
        limit_error(session.call("blockchain.outpoint.subscribe", json!([coinbase, 1, ""])));
    assert_eq!(refused.0, 4, "{refused:?}");
    let other = node.call("getblock", json!([node.call("getblockhash", json!([2]))]))["tx"][0]
        .as_str()
        .expect("coinbase")
        .to_string();
    let refused = limit_error(session.call("blockchain.transaction.subscribe", json!([other])));
    assert_eq!(refused.0, 4, "{refused:?}");
    session
        .call("server.ping", json!([]))
        .expect("still served");
    // Renewals take no room.
    session
        .call("blockchain.scriptpubkey.subscribe", json!([spk(0)]))
        .expect("a renewed script");
    session
        .call("blockchain.transaction.subscribe", json!([coinbase]))
        .expect("a renewed transaction");
    // An unsubscription frees a slot, once.
    assert_eq!(
        session
            .call("blockchain.scriptpubkey.unsubscribe", json!([spk(1)]))
            .expect("unsubscribed"),
        json!(true)
    );
    session
        .call("blockchain.scriptpubkey.subscribe", json!([spk(9)]))
        .expect("the freed slot");
    let refused = limit_error(session.call("blockchain.scriptpubkey.subscribe", json!([spk(10)])));
    assert_eq!(refused.0, 4, "{refused:?}");
    // Another session has its own allowance.
    let mut another = RawClient::connect(addr).expect("connect");
    another.handshake("1.7").expect("handshake");
    another
        .call("blockchain.scriptpubkey.subscribe", json!([spk(10)]))
        .expect("another session's own slot");
    session
        .call("server.ping", json!([]))
        .expect("still served");
    witness.finish("subscriptions past MAX_SESSION_SUBSCRIPTIONS");
}

/// MAX_SUBSCRIPTIONS_PER_IP (4) and MAX_TOTAL_SUBSCRIPTIONS (6), loopback capped for the
/// test, cost limits off: two sessions from one address share its 4 places (the fifth
/// is refused with code 4 and the session goes on); an unsubscription, or a session
/// closing, gives places back; another address takes the rest of the total, and past
/// it every address is refused. The witness, from a third address with no
/// subscription, is answered throughout.
#[test]
fn subscriptions_per_address_and_in_total_are_capped() {
    let node = Litecoind::start();
    node.mine(3);
    let (_db, server) = start(
        &node,
        &[
            ("MAX_SUBSCRIPTIONS_PER_IP", "4"),
            ("MAX_TOTAL_SUBSCRIPTIONS", "6"),
            ("FERRUMX_TEST_CAP_LOOPBACK", "1"),
            ("COST_SOFT_LIMIT", "0"),
            ("COST_HARD_LIMIT", "0"),
        ],
    );
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let spk = |n: u8| format!("0014{}", hex_of(&[n; 20]));
    let session_from = |source: &str| {
        let stream = connect_from(source, addr).expect("connect");
        let mut client = RawClient::from_stream(stream).expect("client");
        client.set_read_timeout(Duration::from_secs(30));
        client.handshake("1.7").expect("handshake");
        client
    };
    let subscribe = |client: &mut RawClient, n: u8| {
        client.call("blockchain.scriptpubkey.subscribe", json!([spk(n)]))
    };
    let refused_with = |result: Result<Value, _>, words: &str| match result {
        Err(e) => {
            let (code, message): (i64, String) = e;
            assert_eq!(code, 4, "{message}");
            assert!(message.contains(words), "{message}");
        }
        Ok(v) => panic!("subscribed past the cap ({words}): {v}"),
    };
    let mut first = session_from("127.0.0.2");
    let mut second = session_from("127.0.0.2");
    for n in 0..3 {
        subscribe(&mut first, n).expect("within the address's share");
    }
    subscribe(&mut second, 3).expect("the address's fourth");
    refused_with(
        subscribe(&mut second, 4),
        "at most 4 per client address (MAX_SUBSCRIPTIONS_PER_IP)",
    );
    second.call("server.ping", json!([])).expect("still served");
    subscribe(&mut first, 0).expect("a renewal takes no place");
    assert_eq!(
        first
            .call("blockchain.scriptpubkey.unsubscribe", json!([spk(0)]))
            .expect("unsubscribe"),
        json!(true)
    );
    subscribe(&mut second, 4).expect("the place given back");

    // Another address: two places left in the total of 6.
    let mut other = session_from("127.0.0.3");
    subscribe(&mut other, 10).expect("the total's fifth");
    subscribe(&mut other, 11).expect("the total's sixth");
    refused_with(
        subscribe(&mut other, 12),
        "at most 6 on this server (MAX_TOTAL_SUBSCRIPTIONS)",
    );
    // A session that closes gives its places back (first holds 2).
    drop(first);
    let mut retried = None;
    wait_until(
        "the closed session's places given back",
        Duration::from_secs(10),
        || {
            retried = Some(subscribe(&mut other, 12));
            matches!(retried, Some(Ok(_)))
        },
    );
    other.call("server.ping", json!([])).expect("still served");
    witness.finish("subscriptions past MAX_SUBSCRIPTIONS_PER_IP and MAX_TOTAL_SUBSCRIPTIONS");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `server.version` with 900 KB strings: a client name is kept to 100 characters, and an
/// error repeats at most 200 characters of the protocol version or of a name DROP_CLIENT
/// refuses; nothing long reaches the log. Each refused session is closed.
#[test]
fn long_server_version_strings_are_not_echoed_or_kept() {
    let node = Litecoind::start();
    let (_db, server) = start(&node, &[("DROP_CLIENT", "^evil")]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let long = "v".repeat(900_000);
    let evil = format!("evil{long}");
    for (name, protocol) in [("x", long.as_str()), (evil.as_str(), "1.4")] {
        let stream = connect_from("127.0.0.1", addr).expect("connect");
        let mut client = RawClient::from_stream(stream).expect("client");
        client.set_read_timeout(Duration::from_secs(30));
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "server.version",
            "params": [name, protocol]});
        client.send_raw_line(&request.to_string()).expect("send");
        let reply = client.read_line().expect("a reply").expect("still open");
        assert!(reply.len() < 1000, "{} bytes echoed", reply.len());
        let error: Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(error["error"]["code"], 1, "{reply}");
        assert!(client.is_closed_by_server(Duration::from_secs(10)));
    }
    // Accepted: the name is kept short, the answer does not repeat it.
    let stream = connect_from("127.0.0.1", addr).expect("connect");
    let mut client = RawClient::from_stream(stream).expect("client");
    client.set_read_timeout(Duration::from_secs(30));
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "server.version",
        "params": [long, "1.4"]});
    client.send_raw_line(&request.to_string()).expect("send");
    let reply = client.read_line().expect("a reply").expect("still open");
    assert!(reply.len() < 1000, "{} bytes in the answer", reply.len());
    client.call("server.ping", json!([])).expect("served");
    drop(client);
    let longest = server.log().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2000, "a log line of {longest} bytes");
    witness.finish("900 KB server.version strings");
}

/// Junk after `server.version`: 400 lines of 800 bytes that are not JSON, from a session
/// in the witness's time slice. The junk's cost closes the session that sent it (-101,
/// as a request over the hard limit), and the witness, whose own cost stays under the
/// soft limit, is never refused for the group they share; a new session is served.
#[test]
fn junk_lines_close_their_sender_not_its_group() {
    let node = Litecoind::start();
    let (_db, server) = start(&node, &[]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);

    let stream = connect_from("127.0.0.1", addr).expect("connect");
    let mut junk = RawClient::from_stream(stream).expect("client");
    junk.set_read_timeout(Duration::from_secs(30));
    junk.handshake("1.4").expect("handshake");
    let line = format!("{}\n", "z".repeat(800));
    let started = Instant::now();
    let mut written = 0;
    for _ in 0..400 {
        if junk.send_raw_bytes(line.as_bytes()).is_err() {
            break;
        }
        written += 1;
    }
    // Parse errors until the hard limit, then -101 and the end of the connection.
    let mut refused = false;
    let mut closed = false;
    for _ in 0..500 {
        match junk.read_json() {
            Ok(Some(reply)) => refused |= reply["error"]["code"] == -101,
            Ok(None) | Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(refused, "the junk sender was never refused with -101");
    assert!(closed, "the junk sender was not disconnected");
    eprintln!(
        "junk lines: {written} written, sender closed after {:?}",
        started.elapsed()
    );
    // Pings go on in the same time slice.
    thread::sleep(Duration::from_secs(2));
    assert!(answers(connect_from("127.0.0.1", addr).expect("connect")));
    witness.finish("junk lines after server.version");
}

/// Batches are bounded in items (MAX_BATCH, refused whole) and in answer bytes: once the
/// answers could not fit MAX_SEND together, the rest are not worked out and get
/// "response too large" (ElectrumX's reply), so a batch of history reads for a busy
/// script holds at most about MAX_SEND of answers. A 200 KB batch of 100,000 non-request
/// items gets one short error.
#[test]
fn batches_are_bounded_in_items_and_answer_bytes() {
    let node = Litecoind::start();
    // A busy script: 150 coinbase outputs.
    let (address, _) = node.new_address("bech32");
    node.mine_to(150, &address);
    node.mine(100);
    let script_hash = support::truth::scripthash(&node.script_of(&address));
    let (_db, server) = start(&node, &[("MAX_SEND", "350000")]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let mut client = RawClient::connect(addr).expect("connect");
    client.set_read_timeout(Duration::from_secs(30));
    client.handshake("1.4").expect("handshake");
    let rss_before = rss_kib(&server);

    // One item over MAX_BATCH (1,000): one error, nothing run.
    let pings: Vec<(&str, Value)> = (0..1001).map(|_| ("server.ping", json!([]))).collect();
    let body: Vec<Value> = pings
        .iter()
        .enumerate()
        .map(|(id, (method, params))| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .collect();
    client
        .send_raw_line(&Value::Array(body).to_string())
        .expect("send");
    let reply = client.read_json().expect("reply").expect("not closed");
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1001") && m.contains("at most 1000")),
        "{reply}"
    );

    // 100,000 non-request items in 200 KB: one short error.
    let junk = format!("[{}]", vec!["1"; 100_000].join(","));
    client.send_raw_line(&junk).expect("send");
    let line = client.read_line().expect("reply").expect("not closed");
    assert!(line.len() < 300, "{} bytes", line.len());

    // 900 history reads of the busy script (each answer ~10 KB): about 35 fit in
    // 350,000 bytes; the rest are refused without being read.
    let reads: Vec<(&str, Value)> = (0..900)
        .map(|_| ("blockchain.scripthash.get_history", json!([script_hash])))
        .collect();
    let started = Instant::now();
    let outcomes = client.batch(&reads);
    let answered = outcomes.iter().take_while(|o| o.is_ok()).count();
    assert!((20..60).contains(&answered), "{answered} answered");
    for outcome in &outcomes[answered..] {
        let error = outcome.as_ref().expect_err("refused after the first error");
        assert_eq!(error.0, -32600);
        assert_eq!(error.1, "response too large (over 350,000 bytes");
    }
    assert_eq!(
        outcomes[0]
            .as_ref()
            .expect("answered")
            .as_array()
            .map(Vec::len),
        Some(150)
    );
    eprintln!(
        "batch of 900 history reads: {answered} answered, the rest refused, in {:?}",
        started.elapsed()
    );
    let rss_after = rss_settles(&server, rss_before);
    assert!(
        rss_after < rss_before + RSS_SLACK_KIB,
        "RSS {rss_before} → {rss_after} KiB"
    );
    // The session is still served: what was not worked out was not charged.
    let ping = client.call("server.ping", json!([]));
    assert!(ping.is_ok(), "{ping:?}");
    witness.finish("batches over MAX_BATCH and over MAX_SEND");
}

/// 100,000 nested brackets in one line. After `server.version`: ElectrumX's "invalid
/// JSON" (-32700), the session goes on (serde_json stops at 128 levels; ElectrumX's
/// parser recurses and drops the connection without an answer). As the first message:
/// the same error, then closed, as any first message that is not `server.version`.
#[test]
fn nested_brackets_are_refused_without_harm() {
    let node = Litecoind::start();
    let (_db, mut server) = start(&node, &[]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);
    let [after_version, first] = attacks::nested_brackets(addr);
    eprintln!("nested after server.version: {}", after_version.describe());
    eprintln!("nested as the first message: {}", first.describe());
    for reaction in [&after_version, &first] {
        let reply = reaction.reply.as_ref().expect("an answer");
        assert_eq!(reply["error"]["code"], -32700, "{reply}");
        assert_eq!(reply["error"]["message"], "invalid JSON", "{reply}");
    }
    assert!(!after_version.closed && after_version.ping_answered);
    assert!(first.closed);
    assert!(server.is_running(), "the server survived");
    let after = rss_settles(&server, before);
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    witness.finish("100,000 nested brackets");
}

/// 10,000 pipelined `blockchain.block.headers(0, 100)` (16 KB answers) whose answers are
/// never read: once the kernel's buffers are full and 1 MiB of answers waits, the
/// session stops reading its socket; after 10 s without the client taking any, it is
/// closed. Memory stays bounded throughout.
#[test]
fn pipelined_requests_never_read_are_cut_off() {
    let node = Litecoind::start();
    node.mine(110);
    let (_db, server) = start(&node, &[]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);
    let pid = server.pid().expect("running");
    let report = attacks::pipelined_unread(addr, pid);
    eprintln!("pipelined, never read: {report:?}; RSS before {before} KiB");
    let closed_after = report.closed_after.expect("the session was not closed");
    // The answers are made at the pace the session's cost allows; once 1 MiB of them
    // waits (beyond what the kernel buffers hold), 10 s without progress closes it.
    assert!(closed_after < Duration::from_secs(30), "{closed_after:?}");
    assert!(
        report.peak_rss_kib < before + RSS_SLACK_KIB,
        "RSS {before} -> {} KiB while the answers waited",
        report.peak_rss_kib
    );
    let after = rss_settles(&server, before);
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    witness.finish("10,000 pipelined requests never read");
}

/// 50,000 `blockchain.scripthash.subscribe` of distinct script hashes on one session,
/// in batches of 1,000, with the default cost limits: each costs as in ElectrumX, so the
/// session passes COST_HARD_LIMIT on the way and is refused (-101) and closed; what it
/// held goes with it. Another session subscribed to headers gets the next block's
/// header within 2 s; the witness is answered throughout.
#[test]
fn fifty_thousand_subscriptions_on_one_session() {
    let node = Litecoind::start();
    node.mine(5);
    // Blocks are seen within 0.1 s, so the header's delay is the server's own.
    let (_db, server) = start(&node, &[("DAEMON_POLL_INTERVAL_BLOCKS", "100")]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let mut watcher = RawClient::connect(addr).expect("watcher");
    watcher.handshake("1.4").expect("handshake");
    watcher
        .call("blockchain.headers.subscribe", json!([]))
        .expect("subscribed");
    let before = rss_kib(&server);
    let pid = server.pid().expect("running");
    let report = attacks::many_subscriptions(addr, pid, 50_000);
    let (held_before, held_after) = report.rss_kib;
    eprintln!(
        "50,000 subscriptions: {} accepted, then {:?}, closed {}, in {:?}; RSS {} -> {} KiB \
         ({} bytes per subscription held)",
        report.accepted,
        report.first_error,
        report.closed,
        report.elapsed,
        held_before,
        held_after,
        held_after.saturating_sub(held_before) * 1024 / report.accepted.max(1) as u64
    );
    if report.accepted < 50_000 {
        assert_eq!(
            report.first_error,
            Some((-101, "excessive resource usage".to_string()))
        );
        assert!(report.closed);
    }
    assert!(report.accepted >= 10_000, "{} accepted", report.accepted);
    let mined = Instant::now();
    node.mine(1);
    let header = watcher.next_notification(Duration::from_secs(10));
    let waited = mined.elapsed();
    let header = header.expect("a header notification");
    assert_eq!(header["method"], "blockchain.headers.subscribe", "{header}");
    assert!(waited < WITNESS_LIMIT, "header notified after {waited:?}");
    eprintln!("header notification {waited:?} after the block was mined");
    drop(report.session);
    let after = rss_settles(&server, before);
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    witness.finish("50,000 subscriptions");
}

/// 10,000 requests for unknown methods, pipelined on one session: each is ElectrumX's
/// -32601 error and costs as an error does (100), so after about 100 the session is
/// throttled, then refused (-101) and closed.
#[test]
fn ten_thousand_unknown_methods() {
    let node = Litecoind::start();
    let (_db, server) = start(&node, &[]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let before = rss_kib(&server);
    let report = attacks::unknown_methods(addr);
    eprintln!("unknown methods: {report:?}");
    assert_eq!(report.first_message, "unknown method \"no.such.method0\"");
    assert_eq!(report.codes.first().map(|c| c.0), Some(-32601));
    assert!(
        report.codes.iter().any(|c| c.0 == -101),
        "{:?}",
        report.codes
    );
    assert!(report.closed, "the sender was not closed");
    let after = rss_settles(&server, before);
    assert!(
        after < before + RSS_SLACK_KIB,
        "RSS {before} -> {after} KiB"
    );
    assert!(answers(connect_from("127.0.0.1", addr).expect("connect")));
    witness.finish("10,000 unknown methods");
}

/// What ElectrumX's `non_negative_integer` makes of each of [`attacks::ODD_NUMBERS`]:
/// the integer (as text), or the error message (Python's `int()` of the value, named as
/// the integer it made when negative: int(-1.5) is -1).
fn python_int(odd: &str) -> Result<&'static str, String> {
    const TWO_64: &str = "18,446,744,073,709,551,616";
    let error = |name: &str| Err(format!("{name} should be a non-negative integer"));
    match odd {
        "-1" | "\"-1\"" | "-1.5" => error("-1"),
        "\"x\"" => error("x"),
        "\"1.5\"" => error("1.5"),
        "-18446744073709551616" => error("-18446744073709551616"),
        "null" => error("None"),
        "\"5\"" => Ok("5"),
        "1.5" | "true" => Ok("1"),
        "-0.5" => Ok("0"),
        "18446744073709551616" => Ok(TWO_64),
        "1e300" => Ok("1e300"),
        other => panic!("no expectation for {other}"),
    }
}

/// Strings, floats, 2^64, -1 and the like in every numeric parameter of every method
/// that has one: each refused with ElectrumX's code and message, or served as ElectrumX
/// serves the integer Python makes of it; the session is never closed and the server
/// never fails.
#[test]
fn odd_numbers_in_every_numeric_parameter() {
    let node = Litecoind::start();
    node.mine(5);
    let block = node.call("getblockhash", json!([1]));
    let tx = node.call("getblock", json!([block]))["tx"][0]
        .as_str()
        .expect("coinbase")
        .to_string();
    let (_db, mut server) = start(&node, &[]);
    let addr = server.tcp_addr();
    let witness = Witness::start(addr);
    let probes = attacks::odd_numbers(addr, &tx, attacks::NUMERIC_PARAMS);
    let odd_values = attacks::ODD_NUMBERS.iter().cycle();
    let mut checked = 0;
    for (probe, odd) in probes.iter().zip(odd_values) {
        let what = format!("{} {} -> {}", probe.method, probe.params, probe.reply);
        assert!(probe.reply.get("closed").is_none(), "closed: {what}");
        let error = &probe.reply["error"];
        match python_int(odd) {
            Err(message) => {
                assert_eq!(error["code"], 1, "{what}");
                assert_eq!(error["message"], message.as_str(), "{what}");
            }
            // Past u64: out of range wherever it is a height, named in full.
            Ok(big) if big.contains(',') || big == "1e300" => {
                let message = error["message"].as_str().unwrap_or_default();
                let result = &probe.reply["result"];
                let named = big == "1e300" && message.contains(",000,000,052,504,760,255,")
                    || message.contains(big);
                let expected_ok =
                    probe.method == "blockchain.block.headers" && probe.params[2].is_null();
                if expected_ok {
                    assert!(result.is_object(), "{what}");
                } else if probe.method == "blockchain.estimatefee" {
                    assert!(!error.is_null(), "{what}");
                } else {
                    assert_eq!(error["code"], 1, "{what}");
                    assert!(named, "the value is not named in full: {what}");
                }
            }
            Ok(_) => assert!(
                probe.reply.get("result").is_some() || error["code"] == 1 || error["code"] == 2,
                "{what}"
            ),
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        attacks::NUMERIC_PARAMS.len() * attacks::ODD_NUMBERS.len()
    );
    eprintln!("odd numbers: {checked} probes answered as ElectrumX would");
    // Fulcrum's methods (their own messages, unit-tested in `extras`): each answered
    // with a result or a refusal, the session kept.
    for probe in attacks::odd_numbers(addr, &tx, attacks::FULCRUM_NUMERIC_PARAMS) {
        let what = format!("{} {} -> {}", probe.method, probe.params, probe.reply);
        assert!(probe.reply.get("closed").is_none(), "closed: {what}");
        let code = probe.reply["error"]["code"].as_i64();
        assert!(
            probe.reply.get("result").is_some() || matches!(code, Some(1 | -32602)),
            "{what}"
        );
        checked += 1;
    }
    eprintln!("odd numbers: {checked} probes with Fulcrum's methods");
    assert!(server.is_running(), "the server survived");
    witness.finish("odd numbers in every numeric parameter");
}
