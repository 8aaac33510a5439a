//! The attacks of issue 13 that take a server's address (and its pid, for RSS) and report
//! what the server did, without judging it: the ferrumx tests in `hostile.rs` assert on
//! the reports, and the ElectrumX run (`electrumx_under_the_same_attacks`) prints them.
//! Every loop is bounded in count and time.

use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::support::connect_from;
use super::support::electrum::RawClient;

/// A process's resident set size, in KiB (0 if it is gone).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A read that waited out its timeout (the connection is still open).
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn client(addr: SocketAddr) -> RawClient {
    let stream = connect_from("127.0.0.1", addr).expect("connect");
    let mut client = RawClient::from_stream(stream).expect("client");
    client.set_read_timeout(Duration::from_secs(30));
    client
}

/// How a server met one message: its first reply (if any within 10 s), and whether it
/// then closed the connection; if it did not, whether a ping is still answered.
#[derive(Debug)]
pub struct Reaction {
    pub reply: Option<Value>,
    pub closed: bool,
    pub ping_answered: bool,
}

impl Reaction {
    pub fn describe(&self) -> String {
        let reply = match &self.reply {
            Some(reply) if !reply["error"].is_null() => format!(
                "error {} {:?}",
                reply["error"]["code"],
                reply["error"]["message"].as_str().unwrap_or("")
            ),
            Some(reply) => format!("reply {}", truncated(&reply.to_string(), 80)),
            None => "no reply".into(),
        };
        let after = if self.closed {
            "closed"
        } else if self.ping_answered {
            "open, ping answered"
        } else {
            "open, ping unanswered"
        };
        format!("{reply}, {after}")
    }
}

fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &text[..cut])
}

/// Sends `line` (after `server.version` if `handshake`) and watches what follows.
fn react(addr: SocketAddr, handshake: bool, line: &[u8]) -> Reaction {
    let mut client = client(addr);
    if handshake {
        client.handshake("1.4").expect("handshake");
    }
    let mut reaction = Reaction {
        reply: None,
        closed: false,
        ping_answered: false,
    };
    if client.send_raw_bytes(line).is_err() {
        reaction.closed = true;
        return reaction;
    }
    client.set_read_timeout(Duration::from_secs(10));
    match client.read_line() {
        Ok(Some(reply)) => reaction.reply = serde_json::from_str(&reply).ok(),
        Ok(None) => {
            reaction.closed = true;
            return reaction;
        }
        Err(e) if timed_out(&e) => {}
        Err(_) => {
            reaction.closed = true;
            return reaction;
        }
    }
    if client.is_closed_by_server(Duration::from_secs(3)) {
        reaction.closed = true;
        return reaction;
    }
    reaction.ping_answered = matches!(client.try_call("server.ping", json!([])), Ok(Ok(_)));
    reaction
}

/// 100,000 nested brackets as one line: `[after server.version, as the first message]`.
pub fn nested_brackets(addr: SocketAddr) -> [Reaction; 2] {
    let mut line = vec![b'['; 100_000];
    line.push(b'\n');
    [react(addr, true, &line), react(addr, false, &line)]
}

/// What a session that wrote requests and read none of the replies came to.
#[derive(Debug)]
pub struct Unread {
    /// Requests written before the server stopped reading (the write timed out) or all.
    pub written: usize,
    /// Whether the server closed the connection, and after how long (from the last write).
    pub closed_after: Option<Duration>,
    /// Reply bytes that were waiting for the client (in the kernel's buffers).
    pub reply_bytes: usize,
    pub replies: usize,
    /// The server's highest RSS while the replies were not read, in KiB.
    pub peak_rss_kib: u64,
}

/// 10,000 pipelined `blockchain.block.headers(0, 100)` (16 KB answers) written as fast as
/// the server takes them and never read for 30 s; then whatever is waiting is read to
/// the end.
pub fn pipelined_unread(addr: SocketAddr, pid: u32) -> Unread {
    let mut client = client(addr);
    client.handshake("1.4").expect("handshake");
    let mut stream = connect_clone(&client);
    let requests: Vec<u8> = (0..10_000)
        .flat_map(|id| {
            let request = json!({"jsonrpc": "2.0", "id": id + 10, "method":
                "blockchain.block.headers", "params": [0, 100]});
            format!("{request}\n").into_bytes()
        })
        .collect();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    let mut sent = 0;
    let started = Instant::now();
    while sent < requests.len() && started.elapsed() < Duration::from_secs(60) {
        match stream.write(&requests[sent..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    let last_write = Instant::now();
    let mut peak = 0;
    let mut closed_after = None;
    let (local, remote) = (
        stream.local_addr().expect("local address"),
        stream.peer_addr().expect("peer address"),
    );
    while last_write.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_of(pid));
        if closed_after.is_none() && peer_closed(local, remote) {
            closed_after = Some(last_write.elapsed());
        }
        thread::sleep(Duration::from_millis(250));
    }
    // Read what is waiting: the end of the stream if the server closed it.
    let mut report = Unread {
        written: requests[..sent].iter().filter(|&&b| b == b'\n').count(),
        closed_after,
        reply_bytes: 0,
        replies: 0,
        peak_rss_kib: peak,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 1 << 16];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => {
                report.closed_after.get_or_insert(last_write.elapsed());
                break;
            }
            Ok(n) => {
                report.reply_bytes += n;
                report.replies += buf[..n].iter().filter(|&&b| b == b'\n').count();
            }
            Err(e) if timed_out(&e) => {
                break;
            }
            Err(_) => {
                report.closed_after.get_or_insert(last_write.elapsed());
                break;
            }
        }
    }
    report
}

/// Whether the server has closed the loopback connection `local` → `remote` while our
/// side reads nothing: the server's end of it has left ESTABLISHED (its FIN may wait
/// behind unread replies, so ours can still look open) or is gone (a reset).
fn peer_closed(local: SocketAddr, remote: SocketAddr) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let (local_port, remote_port) = (
        format!(":{:04X}", local.port()),
        format!(":{:04X}", remote.port()),
    );
    let state = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 3 && fields[1].ends_with(&remote_port) && fields[2].ends_with(&local_port))
            .then(|| fields[3].to_string())
    });
    state.is_none_or(|state| state != "01")
}

/// The session's socket itself, for writes that must not go through `RawClient`.
fn connect_clone(client: &RawClient) -> TcpStream {
    client.stream().try_clone().expect("clone the stream")
}

/// What a session subscribing to many script hashes came to.
pub struct Subscriptions {
    /// Subscriptions the server answered with a status (not an error).
    pub accepted: usize,
    /// The first error answered, if any.
    pub first_error: Option<(i64, String)>,
    /// Whether the server closed the connection.
    pub closed: bool,
    pub elapsed: Duration,
    /// RSS before and after the subscriptions (the session still open), in KiB.
    pub rss_kib: (u64, u64),
    /// The session, if still open.
    pub session: Option<RawClient>,
}

/// Subscribes one session to `total` distinct script hashes (none has a history), in
/// batches of 1,000, each batch's answers read before the next; stops at the first
/// error, a closed connection or after 180 s.
pub fn many_subscriptions(addr: SocketAddr, pid: u32, total: usize) -> Subscriptions {
    let mut client = client(addr);
    client.handshake("1.4").expect("handshake");
    let before = rss_of(pid);
    let started = Instant::now();
    let mut report = Subscriptions {
        accepted: 0,
        first_error: None,
        closed: false,
        elapsed: Duration::ZERO,
        rss_kib: (before, before),
        session: None,
    };
    'batches: for batch in 0..total.div_ceil(1000) {
        if started.elapsed() > Duration::from_secs(180) {
            break;
        }
        let requests: Vec<(&str, Value)> = (batch * 1000..((batch + 1) * 1000).min(total))
            .map(|n| {
                (
                    "blockchain.scripthash.subscribe",
                    json!([format!("{:064x}", 0xfe00_0000_0000u64 + n as u64)]),
                )
            })
            .collect();
        let Ok(outcomes) = client.try_batch(&requests) else {
            report.closed = true;
            break;
        };
        for outcome in outcomes {
            match outcome {
                Ok(_) => report.accepted += 1,
                Err(e) => {
                    report.first_error = Some((e.0, e.1));
                    break 'batches;
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report.rss_kib.1 = rss_of(pid);
    if !report.closed && client.is_closed_by_server(Duration::from_secs(2)) {
        report.closed = true;
    }
    if !report.closed {
        report.session = Some(client);
    }
    report
}

/// What a session sending many requests for unknown methods came to.
#[derive(Debug, Default)]
pub struct Unknown {
    pub written: usize,
    /// Answers by error code, in the order codes first appeared.
    pub codes: Vec<(i64, usize)>,
    pub first_message: String,
    pub closed: bool,
    pub elapsed: Duration,
}

/// 10,000 requests for unknown methods, pipelined on one session, the answers read as
/// they come (on another thread) for at most 60 s.
pub fn unknown_methods(addr: SocketAddr) -> Unknown {
    let mut client = client(addr);
    client.handshake("1.4").expect("handshake");
    let mut stream = connect_clone(&client);
    let started = Instant::now();
    let writer = thread::spawn(move || {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let mut written = 0;
        for chunk in 0..100 {
            let lines: String = (0..100)
                .map(|n| {
                    let id = chunk * 100 + n;
                    format!(
                        "{}\n",
                        json!({"jsonrpc": "2.0", "id": id + 10, "method":
                            format!("no.such.method{id}"), "params": []})
                    )
                })
                .collect();
            if stream.write_all(lines.as_bytes()).is_err() {
                break;
            }
            written += 100;
        }
        written
    });
    let mut report = Unknown::default();
    client.set_read_timeout(Duration::from_secs(10));
    let mut answered = 0;
    while answered < 10_000 && started.elapsed() < Duration::from_secs(60) {
        match client.read_json() {
            Ok(Some(reply)) => {
                answered += 1;
                let code = reply["error"]["code"].as_i64().unwrap_or(0);
                if report.first_message.is_empty() {
                    report.first_message = reply["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                match report.codes.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => report.codes.push((code, 1)),
                }
            }
            Ok(None) => {
                report.closed = true;
                break;
            }
            Err(e) if timed_out(&e) => {
                break;
            }
            Err(_) => {
                report.closed = true;
                break;
            }
        }
    }
    report.elapsed = started.elapsed();
    report.written = writer.join().expect("writer thread");
    report
}

/// One probe of a numeric parameter: the method, its arguments, the answer.
#[derive(Debug)]
pub struct Probe {
    pub method: &'static str,
    pub params: Value,
    pub reply: Value,
}

/// The values tried in each numeric parameter: strings, floats, 2^64, -1 and the like.
/// Written as JSON text, so 2^64 reaches the server as the integer literal.
pub const ODD_NUMBERS: &[&str] = &[
    "-1",
    "\"-1\"",
    "\"5\"",
    "\"x\"",
    "\"1.5\"",
    "1.5",
    "-1.5",
    "-0.5",
    "18446744073709551616",
    "-18446744073709551616",
    "1e300",
    "true",
    "null",
];

/// Every method with a numeric parameter, its arguments with `{}` where the odd value
/// goes (as JSON text), and `tx` standing for a confirmed transaction's hash at height 1.
pub const NUMERIC_PARAMS: &[(&str, &str)] = &[
    ("blockchain.block.header", "[{}]"),
    ("blockchain.block.header", "[1, {}]"),
    ("blockchain.block.headers", "[{}, 1]"),
    ("blockchain.block.headers", "[0, {}]"),
    ("blockchain.block.headers", "[0, 1, {}]"),
    ("blockchain.transaction.get_merkle", "[\"tx\", {}]"),
    ("blockchain.transaction.id_from_pos", "[{}, 0]"),
    ("blockchain.transaction.id_from_pos", "[1, {}]"),
    ("blockchain.estimatefee", "[{}]"),
];

/// The numeric parameters of Fulcrum's methods that ferrumx also serves (ElectrumX has
/// none of them); `sh` stands for a script hash.
pub const FULCRUM_NUMERIC_PARAMS: &[(&str, &str)] = &[
    ("blockchain.scripthash.get_history", "[\"sh\", {}]"),
    ("blockchain.scripthash.get_history", "[\"sh\", 0, {}]"),
    ("blockchain.header.get", "[{}]"),
    ("blockchain.utxo.get_info", "[\"tx\", {}]"),
];

/// Sends every odd value in every parameter of `params`, one session per method (a
/// session that the server closes is replaced), in order; the answers in order.
pub fn odd_numbers(addr: SocketAddr, tx: &str, params: &[(&'static str, &str)]) -> Vec<Probe> {
    let script_hash = "0".repeat(64);
    let mut probes = Vec::new();
    for (method, template) in params {
        let mut session = client(addr);
        session.handshake("1.4").expect("handshake");
        for odd in ODD_NUMBERS {
            let text = template
                .replace("tx", tx)
                .replace("sh", &script_hash)
                .replace("{}", odd);
            let line = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"{method}\",\"params\":{text}}}"
            );
            let params: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let reply = match session
                .send_raw_line(&line)
                .and_then(|()| session.read_json())
            {
                Ok(Some(reply)) => reply,
                Ok(None) | Err(_) => {
                    session = client(addr);
                    session.handshake("1.4").expect("handshake");
                    json!({"closed": true})
                }
            };
            probes.push(Probe {
                method,
                params,
                reply,
            });
        }
    }
    probes
}

/// Whether the server closes `stream` within `timeout` (EOF or reset), discarding what
/// it sends first.
pub fn closes_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(10))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if timed_out(&e) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// Writes up to `total` bytes of `byte` (no newline) for at most 60 s; how many went.
pub fn flood_bytes(stream: &mut TcpStream, byte: u8, total: usize) -> usize {
    let chunk = vec![byte; 64 * 1024];
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut sent = 0usize;
    let started = Instant::now();
    while sent < total && started.elapsed() < Duration::from_secs(60) {
        match stream.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

/// `server.version` then `server.ping` on a new connection within `timeout`: whether
/// both were answered.
pub fn newcomer_answered(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let Ok(mut client) = RawClient::from_stream(stream) else {
        return false;
    };
    client.set_read_timeout(timeout);
    matches!(
        client.try_call("server.version", json!(["newcomer", "1.4"])),
        Ok(Ok(_))
    ) && matches!(client.try_call("server.ping", json!([])), Ok(Ok(_)))
}

/// The answer to a raw first message, and whether the connection was then closed.
pub fn first_message(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect_from("127.0.0.1", addr).expect("connect");
    if stream.write_all(bytes).is_err() {
        return "closed while sending".into();
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut closed = false;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if timed_out(&e) => {
                break;
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let first = text.lines().next().unwrap_or("").to_string();
    format!(
        "{} line(s) {}, {}",
        text.lines().count(),
        truncated(&first, 90),
        if closed { "closed" } else { "open after 12 s" }
    )
}

/// After `server.version`: `lines` lines of 800 bytes that are not JSON, then the
/// answers read until the connection ends (at most 1,000 lines or 30 s): the error codes
/// seen, in order of first appearance, and whether it was closed.
pub fn junk_lines(addr: SocketAddr, lines: usize) -> (Vec<(i64, usize)>, bool) {
    let mut junk = client(addr);
    junk.handshake("1.4").expect("handshake");
    let line = format!("{}\n", "z".repeat(800));
    for _ in 0..lines {
        if junk.send_raw_bytes(line.as_bytes()).is_err() {
            break;
        }
    }
    let mut codes: Vec<(i64, usize)> = Vec::new();
    let started = Instant::now();
    junk.set_read_timeout(Duration::from_secs(5));
    for _ in 0..1000 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        match junk.read_json() {
            Ok(Some(reply)) => {
                let code = reply["error"]["code"].as_i64().unwrap_or(0);
                match codes.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => codes.push((code, 1)),
                }
            }
            Ok(None) => return (codes, true),
            Err(e) if timed_out(&e) => {
                return (codes, false);
            }
            Err(_) => return (codes, true),
        }
    }
    (codes, false)
}

/// After `server.version`, one raw line: the length of the answer line and its start.
pub fn answer_to_line(addr: SocketAddr, line: &str) -> String {
    let mut session = client(addr);
    session.handshake("1.4").expect("handshake");
    if session.send_raw_line(line).is_err() {
        return "closed while sending".into();
    }
    match session.read_line() {
        Ok(Some(answer)) => format!("{} bytes: {}", answer.len(), truncated(&answer, 90)),
        Ok(None) => "closed".into(),
        Err(e) => format!("no answer ({e})"),
    }
}

/// `server.version` with `name` and `protocol` as the first message: the answer's
/// length and start.
pub fn version_with(addr: SocketAddr, name: &str, protocol: &str) -> String {
    let mut session = client(addr);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "server.version",
        "params": [name, protocol]});
    if session.send_raw_line(&request.to_string()).is_err() {
        return "closed while sending".into();
    }
    match session.read_line() {
        Ok(Some(answer)) => format!("{} bytes: {}", answer.len(), truncated(&answer, 70)),
        Ok(None) => "closed".into(),
        Err(e) => format!("no answer ({e})"),
    }
}

/// After `server.version`, the start of a request and then one more byte every `every`
/// (slowloris past the first message), for at most `give_up`: when the server closed
/// the connection, counted from the request's first byte (`None`: still open).
pub fn dribbled_line(addr: SocketAddr, every: Duration, give_up: Duration) -> Option<Duration> {
    let mut session = client(addr);
    session.handshake("1.4").expect("handshake");
    let mut stream = connect_clone(&session);
    let started = Instant::now();
    if stream
        .write_all(br#"{"jsonrpc":"2.0","id":2,"method":"#)
        .is_err()
    {
        return Some(started.elapsed());
    }
    while started.elapsed() < give_up {
        if closes_within(&mut stream, every) || stream.write_all(b" ").is_err() {
            return Some(started.elapsed());
        }
    }
    None
}

/// After `server.version`, `count` pings each `gap` after the answer to the last, every
/// other one written in two halves `gap / 4` apart: how many were answered before the
/// first failure, and the failure.
pub fn slow_whole_lines(addr: SocketAddr, count: u64, gap: Duration) -> (u64, Option<String>) {
    let mut session = client(addr);
    session.handshake("1.4").expect("handshake");
    for id in 0..count {
        thread::sleep(gap);
        let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"server.ping","params":[]}}"#);
        let (head, tail) = line.split_at(if id % 2 == 1 { line.len() / 2 } else { 0 });
        let written = session.send_raw_bytes(head.as_bytes()).and_then(|()| {
            if !head.is_empty() {
                thread::sleep(gap / 4);
            }
            session.send_raw_line(tail)
        });
        if let Err(e) = written {
            return (id, Some(format!("write failed: {e}")));
        }
        match session.read_json() {
            Ok(Some(reply)) if reply["id"] == id && reply["error"].is_null() => {}
            Ok(Some(reply)) => return (id, Some(format!("answered {reply}"))),
            Ok(None) => return (id, Some("closed".into())),
            Err(e) => return (id, Some(format!("no answer ({e})"))),
        }
    }
    (count, None)
}
