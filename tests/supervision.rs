//! Supervision and storage faults end to end, on a real regtest litecoind:
//! - a panic injected into the block processor, the mempool and the notifier (the
//!   test-only FERRUMX_TEST_FAULTS hook): each is restarted, keeps working (blocks are
//!   indexed, mempool transactions seen, subscribers notified) and the restarts are
//!   counted in `getinfo` and the metrics;
//! - a panic while one session handles a request ends that session only;
//! - the daemon down at start: the admin RPC answers meanwhile, and the index catches up
//!   once the daemon is back; clients of daemon-backed methods get DAEMON_ERROR while it
//!   is down, and answers again after;
//! - the LMDB map grows many times from a tiny first size, with clients reading all
//!   along, to an index equal to a clean sync's;
//! - a write refused for want of space (a file-size limit set on the running server) is
//!   reported, the index stays at its last commit and keeps serving, and the server
//!   catches up to a clean sync's index once space is back;
//! - a second signal exits at once while a clean shutdown waits on a hanging daemon.

mod support;

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::scripthash;
use support::{free_port, http_get, wait_until};

const READY: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

/// A server with the admin RPC (and metrics) on free ports.
struct Server {
    _dir: tempfile::TempDir,
    process: FerrumxProcess,
    rpc_port: u16,
    http_port: u16,
}

fn start(node: &Litecoind, extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    start_in(node, dir, extra)
}

fn start_in(node: &Litecoind, dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Server {
    let (tcp, rpc_port, http_port) = (free_port(), free_port(), free_port());
    let services =
        format!("tcp://127.0.0.1:{tcp},rpc://127.0.0.1:{rpc_port},http://127.0.0.1:{http_port}");
    let mut env: Vec<(&str, &str)> = vec![
        ("SERVICES", &services),
        ("PEER_DISCOVERY", "off"),
        ("DAEMON_POLL_INTERVAL_BLOCKS", "200"),
        ("DAEMON_POLL_INTERVAL_MEMPOOL", "200"),
    ];
    env.extend_from_slice(extra);
    let process = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    Server {
        _dir: dir,
        process,
        rpc_port,
        http_port,
    }
}

/// One admin request; its whole reply.
fn admin(port: u16, method: &str, params: Value) -> Value {
    support::admin_request(port, &json!({"id": 1, "method": method, "params": params}))
}

fn metrics(port: u16) -> String {
    http_get(port, "/metrics").1
}

/// Waits for a notification of `method`, skipping others; panics after WAIT.
fn expect_notification(client: &mut RawClient, method: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(n) = client.next_notification(Duration::from_secs(2))
            && n["method"] == method
        {
            return n;
        }
    }
    panic!("no {method} notification within {WAIT:?}");
}

#[test]
fn panicking_actors_are_restarted_and_carry_on() {
    let node = Litecoind::start();
    node.mine(110);
    let mut server = start(&node, &[("FERRUMX_TEST_FAULTS", "1")]);
    server.process.wait_ready(READY);
    let mut client = RawClient::connect(server.process.tcp_addr()).expect("connect");
    client.handshake("1.4").expect("handshake");
    client
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers.subscribe");
    let (address, script) = node.new_address("bech32");
    let script_hash = scripthash(&script);
    client
        .call("blockchain.scripthash.subscribe", json!([script_hash]))
        .expect("scripthash.subscribe");

    for actor in ["block_processor", "notifier", "mempool"] {
        let reply = admin(server.rpc_port, "test_panic", json!({"actor": actor}));
        assert_eq!(
            reply["result"],
            json!(format!("panic injected into {actor}")),
            "{reply}"
        );
        wait_until(&format!("{actor} restarted"), WAIT, || {
            let info = admin(server.rpc_port, "getinfo", json!({}));
            info["result"]["restarts"][actor].as_u64() == Some(1)
        });
        // Still at work: a payment reaches the mempool and its subscriber, the block
        // mining it is indexed and announced.
        node.call("sendtoaddress", json!([address, 0.1]));
        expect_notification(&mut client, "blockchain.scripthash.subscribe");
        node.mine(1);
        let height = u64::from(node.height());
        let header = expect_notification(&mut client, "blockchain.headers.subscribe");
        assert_eq!(header["params"][0]["height"], json!(height), "{header}");
        let history = client
            .call("blockchain.scripthash.get_history", json!([script_hash]))
            .expect("get_history");
        assert!(
            history
                .as_array()
                .expect("history")
                .iter()
                .all(|entry| entry["height"].as_u64() > Some(0)),
            "every payment confirmed: {history}"
        );
    }
    let text = metrics(server.http_port);
    for actor in ["block_processor", "notifier", "mempool"] {
        assert!(
            text.contains(&format!(
                "ferrumx_actor_restarts_total{{actor=\"{actor}\"}} 1\n"
            )),
            "{text}"
        );
    }
    let log = server.process.log();
    assert!(
        log.contains("block processor panicked: fault injected"),
        "{log}"
    );
    // Only with FERRUMX_TEST_FAULTS=1.
    let mut plain = start(&node, &[]);
    plain.process.wait_ready(READY);
    let refused = admin(plain.rpc_port, "test_panic", json!({"actor": "mempool"}));
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
}

#[test]
fn a_panic_in_one_session_ends_that_session_only() {
    let node = Litecoind::start();
    node.mine(5);
    let mut server = start(&node, &[("FERRUMX_TEST_FAULTS", "1")]);
    server.process.wait_ready(READY);
    let addr = server.process.tcp_addr();
    let mut victim = RawClient::connect(addr).expect("connect");
    victim.handshake("1.4").expect("handshake");
    let mut bystander = RawClient::connect(addr).expect("connect");
    bystander.handshake("1.4").expect("handshake");
    victim
        .send_raw_line(r#"{"jsonrpc":"2.0","id":1,"method":"ferrumx.test.panic","params":[]}"#)
        .expect("send");
    assert!(
        victim.is_closed_by_server(WAIT),
        "the panicking session is closed"
    );
    for _ in 0..3 {
        assert_eq!(bystander.call("server.ping", json!([])), Ok(Value::Null));
    }
    let mut newcomer = RawClient::connect(addr).expect("connect after the panic");
    newcomer.handshake("1.4").expect("handshake");
    wait_until("the closed session gone from the list", WAIT, || {
        let sessions = admin(server.rpc_port, "sessions", json!({}));
        let clients = sessions["result"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|row| row[1] != "R")
            .count();
        clients == 2
    });
    assert!(
        server
            .process
            .log()
            .contains("panicked: fault injected into a session")
    );
}

#[test]
fn the_daemon_down_at_start_and_later_is_waited_for() {
    let mut node = Litecoind::start();
    node.stop_quickly_under_clients();
    node.mine(120);
    let tip = node.height();
    node.stop();
    let mut server = start(&node, &[]);
    // The admin RPC answers while the daemon is down; nothing is indexed yet.
    wait_until("the admin RPC", WAIT, || {
        TcpStream::connect(("127.0.0.1", server.rpc_port)).is_ok()
    });
    let info = admin(server.rpc_port, "getinfo", json!({}));
    assert_eq!(info["result"]["db height"], -1, "{info}");
    thread::sleep(Duration::from_secs(3));
    assert!(
        server.process.is_running(),
        "{}",
        server.process.log_tail(20)
    );
    node.restart();
    server.process.wait_ready(READY);
    let mut client = RawClient::connect(server.process.tcp_addr()).expect("connect");
    client.handshake("1.4").expect("handshake");
    let header = client
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers");
    assert_eq!(header["height"], json!(tip), "{header}");

    // Down again once caught up: daemon-backed methods answer DAEMON_ERROR, the index
    // still answers, and everything works again once the daemon is back.
    let block = node.call("getblockhash", json!([1]));
    let coinbase = node.call("getblock", json!([block]))["tx"][0].clone();
    node.stop();
    let (code, message) = client
        .call("blockchain.transaction.get", json!([coinbase]))
        .expect_err("no daemon to ask");
    assert_eq!(code, 2, "DAEMON_ERROR: {message}");
    assert!(client.call("blockchain.block.header", json!([1])).is_ok());
    node.restart();
    wait_until("the daemon answering through ferrumx", WAIT, || {
        client
            .call("blockchain.transaction.get", json!([coinbase]))
            .is_ok()
    });
    node.mine(2);
    wait_until("the new blocks indexed", WAIT, || {
        client
            .call("blockchain.block.header", json!([tip + 2]))
            .is_ok()
    });
}

/// The index of a clean sync of `node`'s chain, as `dump-index` prints it.
fn clean_dump(node: &Litecoind) -> String {
    let mut clean = start(node, &[]);
    clean.process.wait_ready(READY);
    let dump = clean.process.dump_index();
    clean.process.stop();
    dump
}

#[test]
fn the_map_grows_from_a_tiny_start_while_clients_read() {
    let node = Litecoind::start();
    node.mine(110);
    let mut server = start(&node, &[("FERRUMX_TEST_MAP_SIZE", "65536")]);
    server.process.wait_ready(READY);
    let listening = server.process.log().len();
    let heavy = scripthash(&node.script_of(node.miner_address()));
    let mut client = RawClient::connect(server.process.tcp_addr()).expect("connect");
    client.handshake("1.4").expect("handshake");
    // More blocks with transactions, while a client keeps reading.
    for round in 0..30 {
        let (address, _) = node.new_address("bech32");
        for _ in 0..10 {
            node.call("sendtoaddress", json!([address, 0.01]));
        }
        node.mine(1);
        let history = client
            .call("blockchain.scripthash.get_history", json!([heavy]))
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert!(!history.as_array().expect("history").is_empty());
    }
    let tip = node.height();
    wait_until("the last block indexed", WAIT, || {
        client.call("blockchain.block.header", json!([tip])).is_ok()
    });
    let log = server.process.log();
    let (total, reading) = (
        log.matches("LMDB map grown").count(),
        log[listening..].matches("LMDB map grown").count(),
    );
    assert!(
        total >= 2 && reading >= 1,
        "the map grew {total} times, {reading} while clients read:\n{log}"
    );
    let grown = server.process.dump_index();
    server.process.stop();
    assert!(
        grown == clean_dump(&node),
        "the grown index differs from a clean sync's"
    );
}

/// Sets the soft RLIMIT_FSIZE of a running process (the test runs as its owner).
fn set_file_size_limit(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit(2) on our own child with a valid rlimit; the old value is not read.
    let rc = unsafe {
        libc::prlimit(
            libc::pid_t::try_from(pid).expect("pid"),
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn no_space_to_write_is_reported_and_waited_out() {
    let node = Litecoind::start();
    node.mine(110);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_file = dir.path().join("data.mdb");
    let mut server = start_in(&node, dir, &[]);
    server.process.wait_ready(READY);
    let synced = node.height();
    // No byte more for the data file: the next writes fail.
    let size = std::fs::metadata(&data_file).expect("data.mdb").len();
    set_file_size_limit(server.process.pid().expect("pid"), size);
    let (address, script) = node.new_address("bech32");
    let mut client = RawClient::connect(server.process.tcp_addr()).expect("connect");
    client.handshake("1.4").expect("handshake");
    for _ in 0..40 {
        for _ in 0..20 {
            node.call("sendtoaddress", json!([address, 0.01]));
        }
        node.mine(1);
        if server
            .process
            .log()
            .contains("no space left to write the index")
        {
            break;
        }
    }
    let log = server.process.log();
    assert!(
        log.contains("no space left to write the index"),
        "never ran out of space:\n{}",
        server.process.log_tail(30)
    );
    // Still serving from its last commit.
    let info = admin(server.rpc_port, "getinfo", json!({}));
    let stuck = info["result"]["db height"].as_u64().expect("db height");
    assert!(
        stuck >= u64::from(synced) && stuck < u64::from(node.height()),
        "{info}"
    );
    assert!(client.call("blockchain.block.header", json!([1])).is_ok());
    assert!(server.process.is_running());
    // An admin reorg while out of space: its write may fail or fit in free pages, but
    // the height the server reports is always one its index committed.
    admin(server.rpc_port, "reorg", json!({"count": 2}));
    wait_until("the reported height to be the committed one", WAIT, || {
        let info = admin(server.rpc_port, "getinfo", json!({}));
        let reported = info["result"]["db height"].as_u64();
        let dump = server.process.dump_index();
        let state = dump.lines().next().unwrap_or_default();
        reported.is_some_and(|h| state.contains(&format!("height=Some({h})")))
    });
    assert!(server.process.is_running());
    // Space again: it carries on to the daemon's tip, with an index equal to a clean sync.
    set_file_size_limit(server.process.pid().expect("pid"), libc::RLIM_INFINITY);
    let tip = node.height();
    wait_until("the index at the tip", WAIT, || {
        client.call("blockchain.block.header", json!([tip])).is_ok()
    });
    let history = client
        .call(
            "blockchain.scripthash.get_history",
            json!([scripthash(&script)]),
        )
        .expect("history");
    assert!(!history.as_array().expect("array").is_empty());
    let recovered = server.process.dump_index();
    server.process.stop();
    assert!(
        recovered == clean_dump(&node),
        "the index differs from a clean sync's"
    );
}

/// Sends `signal` to a running process.
fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child, not yet reaped.
    let rc = unsafe { libc::kill(libc::pid_t::try_from(pid).expect("pid"), signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

#[test]
fn a_second_signal_forces_the_exit() {
    // A "daemon" that accepts connections and never answers: the block processor's
    // first request hangs, so a clean shutdown has to wait for it.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("user:pass@{}", hanging.local_addr().expect("addr"));
    hanging.set_nonblocking(true).expect("nonblocking");
    let holder = thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline && held.len() < 50 {
            match hanging.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let rpc_port = free_port();
    let services = format!("tcp://127.0.0.1:{},rpc://127.0.0.1:{rpc_port}", free_port());
    let mut server = FerrumxProcess::start(
        binary(),
        &url,
        dir.path(),
        &[("SERVICES", &services), ("PEER_DISCOVERY", "off")],
    );
    wait_until("the admin RPC", WAIT, || {
        TcpStream::connect(("127.0.0.1", rpc_port)).is_ok()
    });
    thread::sleep(Duration::from_secs(1));
    let pid = server.pid().expect("pid");
    signal(pid, libc::SIGTERM);
    thread::sleep(Duration::from_secs(2));
    assert!(
        server.is_running(),
        "the clean shutdown waits for the hanging request:\n{}",
        server.log_tail(20)
    );
    signal(pid, libc::SIGINT);
    let mut status = None;
    wait_until("the forced exit", Duration::from_secs(10), || {
        status = server.exit_status();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(server.log().contains("second signal: exiting now"));
    drop(holder);
}
