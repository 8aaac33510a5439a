//! Instant blocks end to end, on a real regtest litecoind with the block and mempool polls
//! set to ten minutes, so that only the instant paths can explain a prompt notification:
//! the daemon long-poll (Debian's litecoind has no ZMQ), its recovery after the daemon
//! restarts, and ZMQ hashblock/hashtx from a real ZMQ publisher run by the test, which
//! publishes what bitcoind would for the blocks and transactions the real litecoind just
//! accepted. Also the log's RFC 3339 UTC timestamps.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::scripthash;
use support::wait_until;
use zeromq::{Socket, SocketSend};

/// Ten minutes: no poll comes round during a test.
const NO_POLL: [(&str, &str); 2] = [
    ("DAEMON_POLL_INTERVAL_BLOCKS", "600000"),
    ("DAEMON_POLL_INTERVAL_MEMPOOL", "600000"),
];
/// A block or transaction noticed at once is told to the client well within this (the
/// machine is shared and loaded); a poll would take ten minutes.
const PROMPT: Duration = Duration::from_secs(3);
const READY: Duration = Duration::from_secs(120);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn start(node: &Litecoind, extra: &[(&str, &str)]) -> (tempfile::TempDir, FerrumxProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<(&str, &str)> = NO_POLL.to_vec();
    env.extend_from_slice(extra);
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    server.wait_ready(READY);
    (dir, server)
}

/// A client subscribed to the headers, at the daemon's height.
fn subscribed(server: &FerrumxProcess, node: &Litecoind) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect");
    client.handshake("1.4").expect("server.version");
    let tip = client
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers.subscribe");
    assert_eq!(tip["height"], json!(node.height()));
    client
}

/// The next notification of `method` within `within`, or None.
fn notification(client: &mut RawClient, method: &str, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match client.next_notification(left) {
            Some(n) if n["method"] == method => return Some(n["params"].clone()),
            Some(_) => continue,
            None => return None,
        }
    }
}

/// Checks that no notification of `method` arrives within 3 s (`what` says what would
/// have been noticed).
fn assert_quiet(client: &mut RawClient, method: &str, what: &str) {
    let heard = notification(client, method, Duration::from_secs(3));
    assert_eq!(heard, None, "{what}");
}

/// Mines one block and returns how long after the daemon accepted it the client heard
/// of it; panics if not within PROMPT.
fn mine_and_time(node: &Litecoind, client: &mut RawClient) -> Duration {
    let height = node.height() + 1;
    node.mine(1);
    let accepted = Instant::now();
    let params = notification(client, "blockchain.headers.subscribe", PROMPT)
        .unwrap_or_else(|| panic!("block {height} not notified within {PROMPT:?}"));
    assert_eq!(params[0]["height"], json!(height), "{params}");
    accepted.elapsed()
}

#[test]
fn a_long_poll_notices_blocks_at_once_and_recovers_after_a_daemon_restart() {
    let mut node = Litecoind::start();
    // A short idle timeout, so that the daemon stops promptly under our connections.
    node.stop_quickly_under_clients();
    node.mine(5);
    let (_dir, server) = start(&node, &[]);
    wait_until("the long-poll to start", READY, || {
        server
            .log()
            .contains("noticed by a long-poll of the daemon (waitforblockheight)")
    });
    let mut client = subscribed(&server, &node);
    let mut times: Vec<Duration> = (0..5).map(|_| mine_and_time(&node, &mut client)).collect();
    times.sort();
    eprintln!("block to notification, long-poll: {times:?}");
    assert!(
        times[2] < Duration::from_millis(500),
        "median {:?}",
        times[2]
    );

    // The daemon goes away under the long-poll and comes back.
    node.restart();
    wait_until("the long-poll to fail", READY, || {
        server
            .log()
            .contains("the daemon's long-poll (waitforblockheight) failed")
    });
    wait_until("the long-poll to answer again", READY, || {
        server
            .log()
            .contains("the daemon's long-poll (waitforblockheight) answers again")
    });
    let mut client = subscribed(&server, &node);
    let after = mine_and_time(&node, &mut client);
    eprintln!("block to notification after the daemon restarted: {after:?}");

    check_log_timestamps(&server.log());
}

/// Every log line starts with `[YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL`, UTC, close to now.
fn check_log_timestamps(log: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let mut lines = 0;
    for line in log.lines().filter(|l| l.starts_with('[')) {
        let stamp = line
            .get(1..25)
            .unwrap_or_else(|| panic!("short line {line:?}"));
        let seconds = rfc3339_utc_seconds(stamp)
            .unwrap_or_else(|| panic!("not an RFC 3339 UTC timestamp: {line:?}"));
        assert!(
            (now - 600..=now + 1).contains(&seconds),
            "timestamp {stamp} is not the current UTC time: {line:?}"
        );
        let level = line[26..].split_whitespace().next().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "{line:?}"
        );
        lines += 1;
    }
    assert!(lines > 10, "only {lines} log lines:\n{log}");
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS.mmmZ`, or None if it is not that.
fn rfc3339_utc_seconds(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    let shape = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

/// A ZMQ publisher like bitcoind's: multipart [topic, hash in RPC byte order, sequence].
struct Publisher {
    runtime: tokio::runtime::Runtime,
    socket: zeromq::PubSocket,
    endpoint: String,
    sequence: u32,
}

impl Publisher {
    fn bind() -> Publisher {
        // Multi-threaded: the publisher accepts and handshakes between our sends.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut socket = {
            let _context = runtime.enter();
            zeromq::PubSocket::new()
        };
        let bound = runtime
            .block_on(socket.bind("tcp://127.0.0.1:0"))
            .expect("bind a ZMQ publisher on loopback");
        Publisher {
            runtime,
            socket,
            endpoint: bound.to_string(),
            sequence: 0,
        }
    }

    fn publish(&mut self, topic: &str, hash_hex: &str) {
        let hash: Vec<u8> = (0..hash_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hash_hex[i..i + 2], 16).expect("hex"))
            .collect();
        let frames: Vec<bytes::Bytes> = vec![
            topic.as_bytes().to_vec().into(),
            hash.into(),
            self.sequence.to_le_bytes().to_vec().into(),
        ];
        self.sequence += 1;
        let message = zeromq::ZmqMessage::try_from(frames).expect("frames");
        self.runtime
            .block_on(self.socket.send(message))
            .expect("publish");
    }
}

/// A ZMQ subscription reaches the publisher a moment after it connects: publishes
/// `message` (topic, hash) until the client hears `method` (at most 50 times, 200 ms
/// apart), and returns the notification's params.
fn publish_until_heard(
    publisher: &mut Publisher,
    (topic, hash): (&str, &str),
    client: &mut RawClient,
    method: &str,
) -> Option<Value> {
    for _ in 0..50 {
        let sent = Instant::now();
        publisher.publish(topic, hash);
        if let Some(heard) = notification(client, method, Duration::from_millis(200)) {
            eprintln!("{topic} to notification: {:?}", sent.elapsed());
            return Some(heard);
        }
    }
    None
}

#[test]
fn zmq_hashblock_and_hashtx_wake_the_server() {
    let node = Litecoind::start();
    node.mine(110);
    let mut publisher = Publisher::bind();
    let endpoint = publisher.endpoint.clone();
    let (_dir, server) = start(
        &node,
        &[
            ("DAEMON_ZMQ_HASHBLOCK", endpoint.as_str()),
            ("DAEMON_ZMQ_HASHTX", endpoint.as_str()),
        ],
    );
    wait_until("the ZMQ subscription", READY, || {
        server.log().contains(&format!(
            "subscribed to the daemon's ZMQ hashblock and hashtx at {endpoint}"
        ))
    });
    assert!(
        !server.log().contains("long-poll"),
        "with ZMQ hashblock the daemon is not long-polled:\n{}",
        server.log()
    );
    let mut client = subscribed(&server, &node);

    // A subscription reaches a publisher a moment after the connection: the first block
    // is published until the server has it (bounded), which also shows the path works.
    let first = node.mine(1)[0].clone();
    let heard = publish_until_heard(
        &mut publisher,
        ("hashblock", &first),
        &mut client,
        "blockchain.headers.subscribe",
    )
    .expect("the first published block was never notified");
    assert_eq!(heard[0]["height"], json!(node.height()));

    // Without a message nothing happens (no poll comes round, no long-poll runs) ...
    let quiet = node.mine(1)[0].clone();
    assert_quiet(
        &mut client,
        "blockchain.headers.subscribe",
        "a block was noticed without a ZMQ message",
    );
    // ... and its hashblock brings it at once.
    let sent = Instant::now();
    publisher.publish("hashblock", &quiet);
    let params = notification(&mut client, "blockchain.headers.subscribe", PROMPT)
        .expect("the published block was not notified");
    assert_eq!(params[0]["height"], json!(node.height()));
    eprintln!("hashblock to notification: {:?}", sent.elapsed());

    // A wallet payment enters the daemon's mempool; only its hashtx tells the server.
    let (address, script) = node.new_address("bech32");
    let sh = scripthash(&script);
    assert_eq!(
        client
            .call("blockchain.scripthash.subscribe", json!([sh]))
            .expect("scripthash.subscribe"),
        Value::Null
    );
    let txid = node.call("sendtoaddress", json!([address, 1.5]));
    let txid = txid.as_str().expect("txid").to_string();
    assert_quiet(
        &mut client,
        "blockchain.scripthash.subscribe",
        "a mempool transaction was noticed without a ZMQ message",
    );
    let sent = Instant::now();
    publisher.publish("hashtx", &txid);
    let params = notification(&mut client, "blockchain.scripthash.subscribe", PROMPT)
        .expect("the published transaction was not notified");
    assert_eq!(params[0], json!(sh));
    let history = client
        .call("blockchain.scripthash.get_history", json!([sh]))
        .expect("get_history");
    assert_eq!(history[0]["tx_hash"], json!(txid), "{history}");
    assert_eq!(history[0]["height"], json!(0), "{history}");
    eprintln!("hashtx to notification: {:?}", sent.elapsed());
}

#[test]
fn with_the_long_poll_off_blocks_wait_for_the_poll() {
    let node = Litecoind::start();
    node.mine(3);
    let (_dir, server) = start(&node, &[("DAEMON_LONG_POLL", "off")]);
    let mut client = subscribed(&server, &node);
    node.mine(1);
    assert_quiet(
        &mut client,
        "blockchain.headers.subscribe",
        "a block was noticed with DAEMON_LONG_POLL=off and the poll at ten minutes",
    );
    assert!(!server.log().contains("long-poll"), "{}", server.log());
}

/// The mempool adds just the transactions a hashtx announces (no listing of the whole
/// mempool): a payment at once; a child whose parent was never announced through the
/// full refresh it falls back to; a fee bump that replaces a transaction, so that the
/// replaced one is gone too (litecoind allows replacement with `mempoolreplacement=1`);
/// and a block's transaction announced after the block is not put back in the mempool
/// (the daemon keeps a txindex, so it would still serve it).
#[test]
fn zmq_hashtx_adds_the_announced_transactions() {
    let mut node = Litecoind::start();
    let conf = node.datadir().join("litecoin.conf");
    let settings = std::fs::read_to_string(&conf).expect("read litecoin.conf");
    assert!(
        settings.contains("txindex=0\n"),
        "the harness's litecoin.conf changed"
    );
    let settings = settings.replace("txindex=0\n", "txindex=1\nmempoolreplacement=1\n");
    std::fs::write(&conf, settings).expect("write litecoin.conf");
    node.restart();
    node.mine(110);
    let mut publisher = Publisher::bind();
    let endpoint = publisher.endpoint.clone();
    let (_dir, server) = start(&node, &[("DAEMON_ZMQ_HASHTX", endpoint.as_str())]);
    wait_until("the ZMQ subscription", READY, || {
        server.log().contains(&format!(
            "subscribed to the daemon's ZMQ hashtx at {endpoint}"
        ))
    });
    let mut client = subscribed(&server, &node);
    let subscribe = |client: &mut RawClient, script: &str| {
        let sh = scripthash(script);
        let status = client
            .call("blockchain.scripthash.subscribe", json!([sh]))
            .expect("scripthash.subscribe");
        assert_eq!(status, Value::Null);
        sh
    };
    let history = |client: &mut RawClient, sh: &str| {
        client
            .call("blockchain.scripthash.get_history", json!([sh]))
            .expect("get_history")
    };
    let send = |address: &str, replaceable: bool| {
        let txid = node.call(
            "sendtoaddress",
            json!([address, 1.0, "", "", false, replaceable]),
        );
        txid.as_str().expect("txid").to_string()
    };

    // A payment: published until the subscription has reached the publisher (bounded).
    let (paid, paid_script) = node.new_address("bech32");
    let paid_sh = subscribe(&mut client, &paid_script);
    let payment = send(&paid, false);
    let heard = publish_until_heard(
        &mut publisher,
        ("hashtx", &payment),
        &mut client,
        "blockchain.scripthash.subscribe",
    )
    .expect("the payment was never notified");
    assert_eq!(heard[0], json!(paid_sh));
    let shown = history(&mut client, &paid_sh);
    assert_eq!(shown[0]["tx_hash"], json!(payment), "{shown}");

    // A child announced without its parent: the full refresh brings both.
    let (parent_to, parent_script) = node.new_address("bech32");
    let (child_to, child_script) = node.new_address("bech32");
    let parent_sh = subscribe(&mut client, &parent_script);
    let child_sh = subscribe(&mut client, &child_script);
    let parent = send(&parent_to, false);
    let raw = node.call("getrawtransaction", json!([parent, true]));
    let vout = raw["vout"]
        .as_array()
        .expect("vout")
        .iter()
        .position(|out| out["scriptPubKey"]["hex"] == json!(parent_script))
        .expect("the parent pays its address");
    let unsigned = node.call(
        "createrawtransaction",
        json!([[{"txid": parent, "vout": vout}], [{child_to.clone(): 0.999}]]),
    );
    let signed = node.call("signrawtransactionwithwallet", json!([unsigned]));
    let child = node.call("sendrawtransaction", json!([signed["hex"]]));
    let child = child.as_str().expect("child txid").to_string();
    publisher.publish("hashtx", &child);
    let mut told = std::collections::HashSet::new();
    while told.len() < 2 {
        let params = notification(&mut client, "blockchain.scripthash.subscribe", PROMPT)
            .unwrap_or_else(|| panic!("only {told:?} told of the parent and child"));
        told.insert(params[0].as_str().expect("scripthash").to_string());
    }
    assert_eq!(told, [parent_sh.clone(), child_sh.clone()].into());
    assert_eq!(
        history(&mut client, &parent_sh)[0]["tx_hash"],
        json!(parent)
    );
    let shown = history(&mut client, &child_sh);
    assert_eq!(shown[0]["tx_hash"], json!(child), "{shown}");
    assert_eq!(
        shown[0]["height"],
        json!(-1),
        "an unconfirmed parent: {shown}"
    );

    // A fee bump replaces a transaction: only the replacement is announced.
    let (bumped_to, bumped_script) = node.new_address("bech32");
    let bumped_sh = subscribe(&mut client, &bumped_script);
    let original = send(&bumped_to, true);
    publisher.publish("hashtx", &original);
    notification(&mut client, "blockchain.scripthash.subscribe", PROMPT)
        .expect("the original payment was not notified");
    let bump = node.call("bumpfee", json!([original]));
    let replacement = bump["txid"].as_str().expect("bumpfee txid").to_string();
    publisher.publish("hashtx", &replacement);
    let params = notification(&mut client, "blockchain.scripthash.subscribe", PROMPT)
        .unwrap_or_else(|| panic!("the replacement was not notified:\n{}", server.log()));
    assert_eq!(params[0], json!(bumped_sh));
    let shown = history(&mut client, &bumped_sh);
    assert_eq!(
        shown.as_array().map(Vec::len),
        Some(1),
        "the replaced transaction is gone: {shown}"
    );
    assert_eq!(shown[0]["tx_hash"], json!(replacement), "{shown}");

    // Mined (the long-poll tells the block), then announced again as bitcoind does for a
    // block's transactions: it stays confirmed.
    let height = node.height() + 1;
    node.mine(1);
    let deadline = Instant::now() + PROMPT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let heard = client
            .next_notification(left)
            .unwrap_or_else(|| panic!("block {height} was not notified"));
        if heard["method"] == "blockchain.headers.subscribe" {
            assert_eq!(heard["params"][0]["height"], json!(height), "{heard}");
            break;
        }
    }
    wait_until("the block's transactions confirmed", PROMPT, || {
        history(&mut client, &bumped_sh)[0]["height"] == json!(height)
    });
    publisher.publish("hashtx", &replacement);
    publisher.publish("hashtx", &payment);
    std::thread::sleep(Duration::from_millis(500));
    let mempool = client
        .call("blockchain.scripthash.get_mempool", json!([bumped_sh]))
        .expect("get_mempool");
    assert_eq!(
        mempool,
        json!([]),
        "a confirmed transaction put back in the mempool"
    );
    let shown = history(&mut client, &paid_sh);
    assert_eq!(shown[0]["height"], json!(height), "{shown}");
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{shown}");
}
