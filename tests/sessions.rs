//! Session management end to end on a real regtest litecoind, with raw sockets: a client
//! flooding expensive requests is throttled and then refused with -101 and disconnected
//! while a client from another subnet keeps being answered, and a client of the same /24
//! inherits the flooder's cost (slowed, never refused while its own cost is under the
//! soft limit); MAX_SESSIONS pauses accepting and resumes; idle sessions
//! are closed; a client that never reads is no longer read from and is disconnected,
//! with the server's memory bounded; LOG_SESSIONS logs the sessions table without
//! addresses under ANON_LOGS; 2,000 sessions with subscriptions all hear of a block;
//! sessions of one time slice share cost by SESSION_GROUP_TIMESLICE_WEIGHT (again slowing,
//! not refusing, an idle sibling); DROP_CLIENT
//! refuses and disconnects matching client names.
//!
//! Loopback clients belong to no subnet group unless FERRUMX_TEST_GROUP_LOOPBACK=1, which
//! these tests set; clients bind 127.0.0.x and 127.0.1.x to come from different /24s.

mod support;

use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::scripthash;

const READY: Duration = Duration::from_secs(120);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn start(node: &Litecoind, extra: &[(&str, &str)]) -> (tempfile::TempDir, FerrumxProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = vec![("FERRUMX_TEST_GROUP_LOOPBACK", "1")];
    env.extend_from_slice(extra);
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    server.wait_ready(READY);
    (dir, server)
}

/// A node with 110 blocks: the miner's script has a history of 110 coinbases.
fn node_with_history() -> (Litecoind, String) {
    let node = Litecoind::start();
    node.mine(110);
    let script = node.script_of(node.miner_address());
    (node, scripthash(&script))
}

/// A raw client whose socket is bound to a chosen loopback address.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
}

impl Client {
    fn connect_from(source: &str, server: SocketAddr) -> io::Result<Client> {
        let stream = support::connect_from(source, server)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 0,
        })
    }

    fn connect(server: SocketAddr) -> Client {
        Client::connect_from("127.0.0.1", server).expect("connect")
    }

    fn send(&mut self, message: &Value) -> io::Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
    }

    /// The next message; `None` once the server closed the connection.
    fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("JSON from the server")),
        }
    }

    /// Sends a request and returns its reply (skipping notifications).
    fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        let request = self.request(method, params);
        self.send(&request).ok()?;
        loop {
            let message = self.read()?;
            if message.get("id") == request.get("id") {
                return Some(message);
            }
        }
    }

    fn handshake(&mut self) {
        let reply = self
            .call("server.version", json!(["ferrumx-tests", "1.4"]))
            .expect("server.version reply");
        assert!(reply.get("result").is_some(), "{reply}");
    }

    fn set_read_timeout(&self, timeout: Duration) {
        self.writer
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
    }

    /// True once the server closed the connection within `timeout` (messages still
    /// arriving are skipped).
    fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.set_read_timeout(Duration::from_millis(500));
        while Instant::now() < deadline {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn error_code(reply: &Value) -> Option<i64> {
    reply
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
}

/// Sends batches of 50 histories (each about 12 kB of reply) until the server refuses
/// one, calling `between` after each answered batch (at most 400). Returns how many
/// were answered, and the first error's code and message.
fn flood_until_refused(
    flooder: &mut Client,
    script_hash: &str,
    mut between: impl FnMut(),
) -> (usize, Option<(i64, Value)>) {
    for answered in 0..400 {
        let batch: Vec<Value> = (0..50)
            .map(|_| flooder.request("blockchain.scripthash.get_history", json!([script_hash])))
            .collect();
        if flooder.send(&Value::Array(batch)).is_err() {
            return (answered, None);
        }
        let Some(reply) = flooder.read() else {
            return (answered, None);
        };
        let parts = reply.as_array().cloned().unwrap_or_else(|| vec![reply]);
        if let Some(code) = parts.iter().find_map(error_code) {
            return (answered, Some((code, parts[0]["error"]["message"].clone())));
        }
        between();
    }
    (400, None)
}

#[test]
fn a_flooding_client_is_throttled_then_disconnected_and_its_subnet_shares_the_cost() {
    let (node, script_hash) = node_with_history();
    let (_dir, server) = start(
        &node,
        &[
            ("COST_SOFT_LIMIT", "300"),
            ("COST_HARD_LIMIT", "3000"),
            ("REQUEST_SLEEP", "100"),
        ],
    );
    let addr = server.tcp_addr();
    let mut flooder = Client::connect_from("127.0.0.2", addr).expect("connect flooder");
    let mut neighbour = Client::connect_from("127.0.0.3", addr).expect("connect neighbour");
    let mut other = Client::connect_from("127.0.1.2", addr).expect("connect other");
    for client in [&mut flooder, &mut neighbour, &mut other] {
        client.handshake();
    }

    let (answered, refused) = flood_until_refused(&mut flooder, &script_hash, || {
        // Another subnet is served all along.
        let pong = other
            .call("server.ping", json!([]))
            .expect("other client answered");
        assert_eq!(pong["result"], Value::Null, "{pong}");
    });
    let (code, message) = refused.expect("the flooder was never refused");
    assert_eq!((code, message), (-101, json!("excessive resource usage")));
    assert!(answered >= 2, "refused after only {answered} batches");
    assert!(
        flooder.closed_within(Duration::from_secs(10)),
        "flooder not disconnected"
    );

    // The other subnet is still answered after the flooder is gone.
    let pong = other
        .call("server.ping", json!([]))
        .expect("other client answered");
    assert_eq!(pong["result"], Value::Null, "{pong}");

    // The flooder's cost stays with its /24: its idle neighbour is slowed to the full
    // REQUEST_SLEEP once the manager has told it (within a second or two), but never
    // refused, its own cost being under the soft limit.
    assert!(
        slowed_not_refused(&mut neighbour, Duration::from_millis(100)),
        "the flooder's /24 neighbour was not slowed"
    );
    let pong = other
        .call("server.ping", json!([]))
        .expect("other client answered");
    assert_eq!(pong["result"], Value::Null, "{pong}");
}

#[test]
fn max_sessions_pauses_accepting_and_resumes_at_95_percent() {
    let node = Litecoind::start();
    node.mine(5);
    let (_dir, server) = start(&node, &[("MAX_SESSIONS", "20")]);
    let addr = server.tcp_addr();
    let mut clients: Vec<Client> = (0..20)
        .map(|_| {
            let mut client = Client::connect(addr);
            client.handshake();
            client
        })
        .collect();
    // The 21st connects (the kernel's backlog) but is not served.
    let mut late = Client::connect(addr);
    let request = late.request("server.version", json!(["late", "1.4"]));
    late.send(&request).expect("send");
    late.set_read_timeout(Duration::from_secs(3));
    assert!(late.read().is_none(), "served beyond MAX_SESSIONS");
    // Down to 19 (95% of 20): accepting resumes and the late client is answered.
    clients.truncate(18);
    late.set_read_timeout(Duration::from_secs(30));
    let reply = late.read().expect("served after sessions closed");
    assert!(reply.get("result").is_some(), "{reply}");
    for client in &mut clients {
        assert!(client.call("server.ping", json!([])).is_some());
    }
}

#[test]
fn idle_sessions_are_closed_after_session_timeout() {
    let node = Litecoind::start();
    node.mine(5);
    let (_dir, server) = start(
        &node,
        &[
            ("SESSION_TIMEOUT", "2"),
            ("LOG_SESSIONS", "1"),
            ("ANON_LOGS", "1"),
        ],
    );
    let addr = server.tcp_addr();
    let mut idle = Client::connect(addr);
    idle.handshake();
    let mut busy = Client::connect(addr);
    busy.handshake();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut idle_closed = false;
    while Instant::now() < deadline {
        assert!(
            busy.call("server.ping", json!([])).is_some(),
            "an active session was closed"
        );
        if idle.closed_within(Duration::from_millis(500)) {
            idle_closed = true;
            break;
        }
    }
    assert!(idle_closed, "the idle session was not closed");
    let log = server.log();
    assert!(log.contains("idle past SESSION_TIMEOUT"), "{log}");
    // LOG_SESSIONS: the table as `ferrumx-rpc sessions` prints it, and the summary, with
    // addresses hidden (ANON_LOGS).
    assert!(
        log.contains(
            "ID     Flags            Client Proto    Cost   XCost  Reqs   Txs    Subs    Recv \
             Recv KB    Sent Sent KB      Time                  Peer"
        ),
        "{log}"
    );
    assert!(log.contains("\"count with subs_sh\""), "{log}");
    assert!(log.contains("xx.xx.xx.xx:xx"), "{log}");
    assert!(
        !log.contains(&format!("({})", busy.writer.local_addr().unwrap())),
        "{log}"
    );
}

/// Resident memory of a process, in kB.
fn vm_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_client_that_never_reads_is_paused_then_disconnected_with_bounded_memory() {
    let node = Litecoind::start();
    node.mine(110);
    let (_dir, server) = start(&node, &[]);
    let pid = server.pid().expect("pid");
    let mut client = Client::connect(server.tcp_addr());
    client.handshake();
    let before = vm_rss_kb(pid);
    // About 17 kB of headers per reply; the client writes until the server stops reading.
    client
        .writer
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let mut sent = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let request = client.request("blockchain.block.headers", json!([0, 110]));
        if client.send(&request).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the server kept reading a client that never reads ({sent} requests)"
    );
    let during = vm_rss_kb(pid);
    // A client that takes no reply for 10 s while paused is disconnected; reading
    // before then would let the server go on (it is only paused), so the client stays
    // silent a while longer.
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        client.closed_within(Duration::from_secs(60)),
        "not disconnected"
    );
    assert!(server.log().contains("is not reading its replies"));
    let grown_mb = during.saturating_sub(before) / 1024;
    assert!(
        grown_mb < 64,
        "server grew {grown_mb} MB for one non-reading client ({before} kB -> {during} kB, {sent} requests)"
    );
    // Others are served.
    let mut other = Client::connect(server.tcp_addr());
    other.handshake();
}

fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = wanted.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= wanted,
        "open-file hard limit {} is below {wanted}",
        limit.rlim_max
    );
}

#[test]
fn two_thousand_sessions_with_subscriptions_hear_of_a_block() {
    const SESSIONS: usize = 2000;
    raise_open_file_limit(SESSIONS as u64 * 2 + 500);
    let (node, script_hash) = node_with_history();
    let (_dir, server) = start(&node, &[("MAX_SESSIONS", "5000")]);
    let addr = server.tcp_addr();
    let mut clients: Vec<Client> = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        // Spread over /24s so that no group throttles them.
        let source = format!("127.0.{}.{}", i / 200 + 10, i % 200 + 1);
        let mut client = Client::connect_from(&source, addr).expect("connect");
        client.handshake();
        let header = client
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe");
        assert!(header["result"]["height"].is_u64(), "{header}");
        let status = client
            .call("blockchain.scripthash.subscribe", json!([script_hash]))
            .expect("scripthash.subscribe");
        assert!(status["result"].is_string(), "{status}");
        clients.push(client);
    }
    node.mine(1);
    for (i, client) in clients.iter_mut().enumerate() {
        client.set_read_timeout(Duration::from_secs(60));
        let mut heard = (false, false);
        for _ in 0..4 {
            let Some(message) = client.read() else { break };
            match message["method"].as_str() {
                Some("blockchain.headers.subscribe") => heard.0 = true,
                Some("blockchain.scripthash.subscribe") => heard.1 = true,
                _ => {}
            }
            if heard == (true, true) {
                break;
            }
        }
        assert_eq!(heard, (true, true), "session {i} missed a notification");
    }
}

#[test]
fn sessions_of_one_time_slice_share_cost_by_its_weight() {
    let (node, script_hash) = node_with_history();
    // Loopback clients get no subnet group here: only the time-slice group links them,
    // with its full weight.
    let (_dir, server) = start(
        &node,
        &[
            ("FERRUMX_TEST_GROUP_LOOPBACK", "0"),
            ("SESSION_GROUP_TIMESLICE_WEIGHT", "1"),
            ("COST_SOFT_LIMIT", "300"),
            ("COST_HARD_LIMIT", "3000"),
            ("REQUEST_SLEEP", "100"),
        ],
    );
    let addr = server.tcp_addr();
    let mut flooder = Client::connect_from("127.0.0.2", addr).expect("connect flooder");
    let mut sibling = Client::connect_from("127.0.1.2", addr).expect("connect sibling");
    flooder.handshake();
    sibling.handshake();
    let (_, refused) = flood_until_refused(&mut flooder, &script_hash, || {});
    assert_eq!(
        refused.map(|(code, _)| code),
        Some(-101),
        "the flooder was never refused"
    );
    // The sibling did nothing but connect in the same five minutes: the flooder's cost,
    // retained by the slice, slows it too (aiorpcX would refuse it; ferrumx does not
    // disconnect a session under the soft limit for its groups).
    assert!(
        slowed_not_refused(&mut sibling, Duration::from_millis(100)),
        "the time-slice sibling was not slowed"
    );
}

/// Pings `client` every 200 ms for up to 10 s until one takes at least `sleep` (the
/// REQUEST_SLEEP of a session at the hard limit); panics if a ping is refused or the
/// connection closes. Whether a ping was that slow.
fn slowed_not_refused(client: &mut Client, sleep: Duration) -> bool {
    for _ in 0..50 {
        let sent = Instant::now();
        let reply = client
            .call("server.ping", json!([]))
            .expect("still connected");
        assert_eq!(reply["result"], Value::Null, "ping refused: {reply}");
        if sent.elapsed() >= sleep {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn drop_client_refuses_matching_client_names() {
    let node = Litecoind::start();
    node.mine(5);
    let (_dir, server) = start(&node, &[("DROP_CLIENT", "(old|bad)-wallet/")]);
    let addr = server.tcp_addr();
    let mut dropped = Client::connect(addr);
    let reply = dropped
        .call("server.version", json!(["bad-wallet/1.0", "1.4"]))
        .expect("a reply before the disconnect");
    assert_eq!(
        reply["error"],
        json!({"code": 1, "message": "unsupported client: bad-wallet/1.0"}),
        "{reply}"
    );
    assert!(dropped.closed_within(Duration::from_secs(10)));
    // Anchored at the start, like Python's re.match.
    let mut kept = Client::connect(addr);
    let reply = kept
        .call("server.version", json!(["my bad-wallet/1.0", "1.4"]))
        .expect("version reply");
    assert!(reply.get("result").is_some(), "{reply}");
    assert!(kept.call("server.ping", json!([])).is_some());
}
