//! The whole attack suite against one server software, observed rather than asserted:
//! a fresh server for each attack on one regtest litecoind, a witness pinging every
//! 0.5 s, RSS before and 10 s after; one Markdown table row per attack on stderr. Run
//! by `bench/hostile/run.sh` against ElectrumX 2.0 (and ferrumx, for the same table);
//! `#[ignore]`d, so not part of the default test run (about 10 minutes per server).

use super::*;
use attacks::{Subscriptions, rss_of};
use support::electrumx::ElectrumxProcess;

/// A running server of either kind; dropping it stops it.
enum Server {
    Ferrumx {
        server: FerrumxProcess,
        /// The index, kept as long as the server runs.
        _dir: tempfile::TempDir,
    },
    Electrumx(ElectrumxProcess),
}

impl Server {
    fn start(kind: &str, node: &Litecoind) -> Server {
        // ElectrumX's defaults for the cost limits (the harness turns them off).
        let common = [
            ("COST_SOFT_LIMIT", "1000"),
            ("COST_HARD_LIMIT", "10000"),
            ("PEER_DISCOVERY", "on"),
            // A new block is seen within 0.1 s: its header's delay is the server's own.
            ("DAEMON_POLL_INTERVAL_BLOCKS", "100"),
        ];
        if kind == "electrumx" {
            let mut server = ElectrumxProcess::start(&node.daemon_url(), &common);
            server.wait_ready(READY);
            Server::Electrumx(server)
        } else {
            let mut env = common.to_vec();
            env.push(("FERRUMX_TEST_PEERS", "1"));
            let (dir, server) = start(node, &env);
            Server::Ferrumx { server, _dir: dir }
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Server::Ferrumx { server, .. } => server.tcp_addr(),
            Server::Electrumx(server) => server.tcp_addr(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Server::Ferrumx { server, .. } => server.pid(),
            Server::Electrumx(server) => server.pid(),
        }
        .expect("server running")
    }
}

/// What an attack gets: the server and the daemon.
struct Target<'a> {
    addr: SocketAddr,
    pid: u32,
    node: &'a Litecoind,
    kind: &'a str,
}

type Attack = fn(&Target) -> String;

fn add_peer(t: &Target) -> String {
    let mut outcomes = Vec::new();
    let started = Instant::now();
    for n in 0..10 {
        let Ok(mut attacker) = RawClient::connect(t.addr) else {
            outcomes.push("refused".to_string());
            continue;
        };
        attacker.set_read_timeout(Duration::from_secs(60));
        let _ = attacker.try_call("server.version", json!(["x", "1.4"]));
        let features = announcement(&format!("attacker{n}.example.com"), 1000);
        outcomes.push(
            match attacker.try_call("server.add_peer", json!([features])) {
                Ok(Ok(v)) => v.to_string(),
                Ok(Err(e)) => format!("error {}", e.0),
                Err(e) => format!("lost ({e})"),
            },
        );
    }
    outcomes.dedup();
    format!(
        "answers {} in {:.1} s",
        outcomes.join("/"),
        started.elapsed().as_secs_f64()
    )
}

fn silent_connections(t: &Target) -> String {
    let mut silent: Vec<TcpStream> = (0..2000)
        .filter_map(|_| TcpStream::connect_timeout(&t.addr, Duration::from_millis(500)).ok())
        .collect();
    let flooded = Instant::now();
    let newcomer = attacks::newcomer_answered(t.addr, Duration::from_secs(30));
    let newcomer_wait = flooded.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut closed = 0;
    for stream in &mut silent {
        let left = deadline.saturating_duration_since(Instant::now());
        closed += usize::from(attacks::closes_within(
            stream,
            left.max(Duration::from_millis(1)),
        ));
    }
    format!(
        "{} connected; a new client {} after {:.1} s; {closed} closed by the server within 20 s",
        silent.len(),
        if newcomer { "answered" } else { "NOT answered" },
        newcomer_wait.as_secs_f64()
    )
}

fn slowloris(t: &Target) -> String {
    let mut slow = connect_from("127.0.0.1", t.addr).expect("connect");
    let started = Instant::now();
    for _ in 0..40 {
        if slow.write_all(b"{").is_err()
            || attacks::closes_within(&mut slow, Duration::from_millis(300))
        {
            return format!("closed after {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    format!("still open after {:.1} s", started.elapsed().as_secs_f64())
}

fn long_first_line(t: &Target) -> String {
    let mut long = connect_from("127.0.0.1", t.addr).expect("connect");
    let before = rss_of(t.pid);
    let sent = attacks::flood_bytes(&mut long, b'a', 50_000_000);
    let peak = rss_of(t.pid);
    let closed = attacks::closes_within(&mut long, Duration::from_secs(10));
    format!(
        "{} MB taken, RSS {} → {} MiB while reading, {}",
        sent / 1_000_000,
        before / 1024,
        peak / 1024,
        if closed { "closed" } else { "open 10 s later" }
    )
}

fn tls_hello(t: &Target) -> String {
    attacks::first_message(
        t.addr,
        &[
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0xde, 0xad, 0xbe,
            0xef,
        ],
    )
}

fn http_get(t: &Target) -> String {
    attacks::first_message(t.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn invalid_utf8(t: &Target) -> String {
    attacks::first_message(t.addr, b"\xff\xfe\xfd{\"id\":1}\n\xc3\x28\n")
}

fn junk_lines(t: &Target) -> String {
    let (codes, closed) = attacks::junk_lines(t.addr, 400);
    thread::sleep(Duration::from_secs(2));
    let newcomer = attacks::newcomer_answered(t.addr, Duration::from_secs(10));
    format!(
        "errors {codes:?}, sender {}; a new session in the slice {}",
        if closed { "closed" } else { "open" },
        if newcomer { "served" } else { "REFUSED" }
    )
}

fn batch_over_max(t: &Target) -> String {
    let body: Vec<Value> = (0..1001)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "server.ping", "params": []}))
        .collect();
    attacks::answer_to_line(t.addr, &Value::Array(body).to_string())
}

fn batch_of_junk(t: &Target) -> String {
    attacks::answer_to_line(t.addr, &format!("[{}]", vec!["1"; 100_000].join(",")))
}

fn long_version(t: &Target) -> String {
    let long = "v".repeat(900_000);
    format!(
        "900 KB protocol: {}; 900 KB name: {}",
        attacks::version_with(t.addr, "x", &long),
        attacks::version_with(t.addr, &long, "1.4")
    )
}

fn partial_line_after_version(t: &Target) -> String {
    let stream = connect_from("127.0.0.1", t.addr).expect("connect");
    let mut flood_stream = stream.try_clone().expect("clone");
    let mut client = RawClient::from_stream(stream).expect("client");
    client.set_read_timeout(Duration::from_secs(30));
    client.handshake("1.4").expect("handshake");
    let before = rss_of(t.pid);
    let sent = attacks::flood_bytes(&mut flood_stream, b'a', 50_000_000);
    let peak = rss_of(t.pid);
    let mut resync = b"\n".to_vec();
    resync.extend_from_slice(&padded_ping(4, 100));
    let after = match client
        .send_raw_bytes(&resync)
        .and_then(|()| client.read_json())
    {
        Ok(Some(reply)) if reply["id"] == 4 => "the next line served".to_string(),
        Ok(Some(reply)) => format!("then {}", reply["error"]),
        Ok(None) => "closed".into(),
        Err(e) => format!("no answer ({e})"),
    };
    format!(
        "{} MB taken, RSS {} → {} MiB while reading; {after}",
        sent / 1_000_000,
        before / 1024,
        peak / 1024
    )
}

fn trickled_line(t: &Target) -> String {
    let give_up = Duration::from_secs(45);
    match attacks::dribbled_line(t.addr, Duration::from_millis(300), give_up) {
        Some(after) => format!(
            "closed {:.1} s after the request's first byte",
            after.as_secs_f64()
        ),
        None => format!("still open after {} s", give_up.as_secs()),
    }
}

fn nested_brackets(t: &Target) -> String {
    let [after_version, first] = attacks::nested_brackets(t.addr);
    format!(
        "after server.version: {}; as the first message: {}",
        after_version.describe(),
        first.describe()
    )
}

fn pipelined(t: &Target) -> String {
    let report = attacks::pipelined_unread(t.addr, t.pid);
    format!(
        "{} requests taken; {}; peak RSS {} MiB; {} replies ({} KB) were waiting",
        report.written,
        match report.closed_after {
            Some(after) => format!("closed {:.1} s after the last write", after.as_secs_f64()),
            None => "not closed in 30 s".into(),
        },
        report.peak_rss_kib / 1024,
        report.replies,
        report.reply_bytes / 1000
    )
}

fn subscriptions(t: &Target) -> String {
    let mut watcher = RawClient::connect(t.addr).expect("watcher");
    watcher.set_read_timeout(Duration::from_secs(60));
    watcher.handshake("1.4").expect("handshake");
    watcher
        .call("blockchain.headers.subscribe", json!([]))
        .expect("subscribed");
    let Subscriptions {
        accepted,
        first_error,
        closed,
        elapsed,
        rss_kib,
        session,
    } = attacks::many_subscriptions(t.addr, t.pid, 50_000);
    let mined = Instant::now();
    t.node.mine(1);
    let header = watcher.next_notification(Duration::from_secs(30));
    let notified = mined.elapsed();
    drop(session);
    format!(
        "{accepted} accepted in {:.0} s{}{}; RSS {} → {} MiB; a block's header reached another session {}",
        elapsed.as_secs_f64(),
        first_error.map_or(String::new(), |e| format!(", then {} {:?}", e.0, e.1)),
        if closed { ", closed" } else { "" },
        rss_kib.0 / 1024,
        rss_kib.1 / 1024,
        if header.is_some() {
            format!("after {:.2} s", notified.as_secs_f64())
        } else {
            "NOT within 30 s".into()
        }
    )
}

fn unknown_methods(t: &Target) -> String {
    let report = attacks::unknown_methods(t.addr);
    format!(
        "{} written; answers by code {:?} (first {:?}); {} after {:.0} s",
        report.written,
        report.codes,
        report.first_message,
        if report.closed { "closed" } else { "open" },
        report.elapsed.as_secs_f64()
    )
}

fn odd_numbers(t: &Target) -> String {
    let block = t.node.call("getblockhash", json!([1]));
    let tx = t.node.call("getblock", json!([block]))["tx"][0]
        .as_str()
        .expect("coinbase")
        .to_string();
    let probes = attacks::odd_numbers(t.addr, &tx, attacks::NUMERIC_PARAMS);
    let lines: Vec<String> = probes
        .iter()
        .map(|p| format!("{} {} -> {}", p.method, p.params, p.reply))
        .collect();
    let file = format!(
        "{}/hostile-odd-numbers-{}.txt",
        env!("CARGO_TARGET_TMPDIR"),
        t.kind
    );
    std::fs::write(&file, lines.join("\n")).expect("write the probes");
    let closed = probes.iter().filter(|p| p.reply["closed"] == true).count();
    let errors = probes
        .iter()
        .filter(|p| !p.reply["error"].is_null())
        .count();
    format!(
        "{} probes: {errors} errors, {closed} closed the session (answers in {file})",
        probes.len()
    )
}

const ATTACKS: &[(&str, Attack)] = &[
    ("`server.add_peer` with 1,000 hosts, ten times", add_peer),
    ("2,000 silent connections", silent_connections),
    ("slowloris: a first line, 1 byte per 300 ms", slowloris),
    ("a 50 MB first line without newline", long_first_line),
    ("a TLS ClientHello on the TCP port", tls_hello),
    ("an HTTP GET on the TCP port", http_get),
    ("invalid UTF-8 on the TCP port", invalid_utf8),
    (
        "400 junk lines of 800 bytes after `server.version`",
        junk_lines,
    ),
    ("a batch of 1,001 pings", batch_over_max),
    ("a 200 KB batch of 100,000 non-request items", batch_of_junk),
    ("`server.version` with 900 KB strings", long_version),
    (
        "a 50 MB partial line after `server.version`",
        partial_line_after_version,
    ),
    (
        "a request trickled after `server.version`, 1 byte per 300 ms",
        trickled_line,
    ),
    ("100,000 nested brackets", nested_brackets),
    ("10,000 pipelined requests never read", pipelined),
    (
        "50,000 subscriptions on one session, then a block",
        subscriptions,
    ),
    ("10,000 unknown methods", unknown_methods),
    ("odd numbers in every numeric parameter", odd_numbers),
];

/// `HOSTILE_TARGET` (`electrumx`, the default, or `ferrumx`) under every attack, or only
/// those whose names contain `HOSTILE_ONLY`.
#[test]
#[ignore = "about 10 minutes: run by bench/hostile/run.sh"]
fn the_suite_against_one_server() {
    let kind = std::env::var("HOSTILE_TARGET").unwrap_or_else(|_| "electrumx".into());
    let only = std::env::var("HOSTILE_ONLY").unwrap_or_default();
    if kind == "electrumx" {
        support::electrumx::ensure_installed();
    }
    let node = Litecoind::start();
    node.mine(110);
    let mut rows = vec![
        format!("| attack ({kind}) | what it did | RSS before → 10 s after | witness |"),
        "|---|---|---|---|".to_string(),
    ];
    for (name, attack) in ATTACKS.iter().filter(|(name, _)| name.contains(&only)) {
        let server = Server::start(&kind, &node);
        let target = Target {
            addr: server.addr(),
            pid: server.pid(),
            node: &node,
            kind: &kind,
        };
        let witness = Witness::start(target.addr);
        let before = rss_of(target.pid);
        let started = Instant::now();
        let did = attack(&target);
        let took = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = rss_of(target.pid);
        while after >= before + RSS_SLACK_KIB && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(250));
            after = rss_of(target.pid);
        }
        let report = witness.stop();
        let witness = match &report.failure {
            Some(failure) => format!(
                "FAILED after {} pings ({failure}); worst {:.1} ms before",
                report.pings,
                report.worst.as_secs_f64() * 1000.0
            ),
            None => format!(
                "worst {:.1} ms over {} pings",
                report.worst.as_secs_f64() * 1000.0,
                report.pings
            ),
        };
        let row = format!(
            "| {name} | {did} ({:.0} s) | {} → {} MiB | {witness} |",
            took.as_secs_f64(),
            before / 1024,
            after / 1024
        );
        eprintln!("{row}");
        rows.push(row);
        drop(server);
    }
    eprintln!("\n{}", rows.join("\n"));
}
