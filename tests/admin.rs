//! The admin interface end to end: every command through the `ferrumx-rpc` binary and as
//! raw JSON-RPC against a server on a real regtest litecoind, with the effects seen from
//! a client (a disconnected socket closes, a logged session's requests reach the log, a
//! simulated reorg re-syncs to the same tip and notifies subscribers, `stop` exits 0 with
//! the index intact); the admin port answering before catch-up; the metrics endpoint
//! scraped and parsed.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::scripthash;
use support::{free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

/// Runs `ferrumx-rpc -p PORT args...`.
fn rpc(port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrumx-rpc"))
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .env_remove("RPC_PORT")
        .output()
        .expect("run ferrumx-rpc")
}

/// `ferrumx-rpc` that must succeed; its stdout.
fn rpc_ok(port: u16, args: &[&str]) -> String {
    let output = rpc(port, args);
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        output.status.success(),
        "ferrumx-rpc {args:?} failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn rpc_json(port: u16, args: &[&str]) -> Value {
    let stdout = rpc_ok(port, args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// One raw JSON-RPC request to the admin port; the whole reply object.
fn raw(port: u16, request: Value) -> Value {
    support::admin_request(port, &request)
}

/// A Prometheus text page as `metric{labels}` -> value; every sample line must parse.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        samples.insert(name.to_string(), value);
    }
    samples
}

fn new_address(node: &Litecoind) -> (String, String) {
    node.new_address("bech32")
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    support::wait_until(what, WAIT, done);
}

/// The id of the newest live session of the test client (its stats reach the session
/// manager about once a second).
fn client_session_id(rpc_port: u16) -> u64 {
    let mut id = None;
    wait_until("the client in the sessions list", || {
        let sessions = raw(
            rpc_port,
            json!({"id": 1, "method": "sessions", "params": {}}),
        );
        id = sessions["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row[3] == "ferrumx-tests" && !row[1].as_str().unwrap().contains('C'))
            .filter_map(|row| row[0].as_u64())
            .max();
        id.is_some()
    });
    id.unwrap()
}

#[test]
fn every_command_end_to_end() {
    let node = Litecoind::start();
    node.mine(101);
    let (paid, _) = new_address(&node);
    let txid = node.call("sendtoaddress", json!([paid, "1.5"]));
    let txid = txid.as_str().unwrap().to_string();
    node.mine(1);
    let (_, unused_script) = new_address(&node);
    let (coinbase_address, coinbase_script_legacy) = node.new_address("legacy");
    node.mine_to(1, &coinbase_address);
    node.mine(2);
    let tip = node.height();
    assert_eq!(tip, 105);

    let dir = tempfile::tempdir().unwrap();
    let (tcp, rpc_port, http) = (free_port(), free_port(), free_port());
    let services =
        format!("tcp://127.0.0.1:{tcp},rpc://127.0.0.1:{rpc_port},http://127.0.0.1:{http}");
    let mut server = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        dir.path(),
        &[
            ("SERVICES", &services),
            ("DAEMON_POLL_INTERVAL_BLOCKS", "100"),
            ("DAEMON_POLL_INTERVAL_MEMPOOL", "100"),
            ("FERRUMX_TEST_GROUP_LOOPBACK", "1"),
        ],
    );
    server.wait_ready(Duration::from_secs(120));

    // getinfo: ElectrumX 2.0's keys.
    let mut client = RawClient::connect(server.tcp_addr()).unwrap();
    client.handshake("1.4").unwrap();
    client
        .call("blockchain.headers.subscribe", json!([]))
        .unwrap();
    let coinbase_hash = scripthash(&coinbase_script_legacy);
    let status = client
        .call("blockchain.scripthash.subscribe", json!([coinbase_hash]))
        .unwrap();
    assert!(status.is_string(), "the coinbase output is indexed");
    let info = rpc_json(rpc_port, &["getinfo"]);
    assert_eq!(info["db height"], json!(tip));
    assert_eq!(info["daemon height"], json!(tip));
    assert_eq!(info["coin"], "LitecoinRegtest");
    assert_eq!(
        info["daemon"],
        json!(format!("127.0.0.1:{}/", node.rpc_port()))
    );
    assert_eq!(info["pid"], json!(server.pid().unwrap()));
    assert!(info["version"].as_str().unwrap().starts_with("ferrumx "));
    assert!(info["uptime"].as_str().unwrap().ends_with('s'), "{info}");
    let txids_cache = info["caches"]["txids"].as_str().unwrap();
    assert!(
        txids_cache.contains(" lookups, ") && txids_cache.contains(", hitrate "),
        "{txids_cache}"
    );
    for key in [
        "sessions",
        "groups",
        "request counts",
        "request total",
        "peers",
        "txs sent",
    ] {
        assert!(info.get(key).is_some(), "getinfo has no {key:?}: {info}");
    }
    let raw_info = raw(
        rpc_port,
        json!({"jsonrpc": "2.0", "id": 3, "method": "getinfo"}),
    );
    assert_eq!(raw_info["id"], 3);
    assert_eq!(raw_info["result"]["db height"], json!(tip));

    // query: addresses and scripts, ElectrumX's lines.
    let lines = rpc_ok(rpc_port, &["query", &paid, "--limit", "10"]);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines[0], format!("Address: {paid}"));
    assert_eq!(lines[1], format!("History #0: height 102 txid {txid}"));
    assert!(
        lines[2].starts_with(&format!("UTXO #1: txid {txid} tx_pos "))
            && lines[2].ends_with(" height 102 value 150,000,000"),
        "{lines:?}"
    );
    assert_eq!(lines[3], "Balance: 1.5 XLT");
    assert_eq!(lines.len(), 4);
    let lines = rpc_ok(
        rpc_port,
        &["query", &unused_script, "0014ab", "not-an-address"],
    );
    assert_eq!(
        lines,
        format!(
            "Script: {unused_script}\nNo history found\nNo UTXOs found\nBalance: 0 XLT\n\
             Script: 0014ab\nNo history found\nNo UTXOs found\nBalance: 0 XLT\n"
        ),
        "unused and unknown scripts; a word that is neither is skipped"
    );
    let lines = rpc_ok(rpc_port, &["query", &coinbase_script_legacy]);
    assert!(lines.ends_with("Balance: 50 XLT\n"), "{lines}");
    let raw_query = raw(
        rpc_port,
        json!({"id": 4, "method": "query", "params": {"items": [paid], "limit": 0}}),
    );
    assert_eq!(
        raw_query["result"][1], "No history found",
        "limit 0 lists no history: {raw_query}"
    );

    // sessions and groups: ElectrumX's tables, and raw rows.
    let id = client_session_id(rpc_port);
    let table = rpc_ok(rpc_port, &["sessions"]);
    let mut table_lines = table.lines();
    assert_eq!(
        table_lines.next().unwrap(),
        "ID     Flags            Client Proto    Cost   XCost  Reqs   Txs    Subs    Recv \
         Recv KB    Sent Sent KB      Time                  Peer"
    );
    let row = table_lines
        .find(|line| line.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no row for session {id}:\n{table}"));
    assert!(
        row.contains(" ferrumx-tests   1.4 ") && row.contains("127.0.0.1:"),
        "{row}"
    );
    let groups = rpc_ok(rpc_port, &["groups"]);
    assert!(
        groups.starts_with("Name            Sessions     Cost Retained"),
        "{groups}"
    );
    assert!(groups.contains("127.0.0.0/24"), "{groups}");
    // Admin connections are sessions too, flagged R (ElectrumX's LocalRPC).
    let rows = raw(
        rpc_port,
        json!({"id": 5, "method": "sessions", "params": {}}),
    );
    let rpc_row = rows["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row[1] == "R")
        .unwrap_or_else(|| panic!("no admin connection in {rows}"));
    assert!(rpc_row[0].as_u64().unwrap() > id, "{rpc_row}");
    assert!(rpc_row[2].as_str().unwrap().starts_with("127.0.0.1:"));

    // log: a logged session's requests reach the server log.
    let logged = rpc_json(rpc_port, &["log", &id.to_string(), "99999"]);
    assert_eq!(
        logged,
        json!([format!("logging session {id}"), "unknown: 99999"])
    );
    client.call("server.ping", json!([])).unwrap();
    wait_until("the logged request in the log", || {
        server.log().contains(&format!("[{id}] server.ping"))
    });
    // inspect_session: ElectrumX 2.0's dict, with the session's own request counts.
    wait_until("the ping in the session's request counts", || {
        let inspected = rpc_json(rpc_port, &["inspect_session", &id.to_string()]);
        inspected["request counts"]["server.ping"].as_u64() >= Some(1)
    });
    let inspected = rpc_json(rpc_port, &["inspect_session", &id.to_string()]);
    assert_eq!(inspected["client_name"], "ferrumx-tests", "{inspected}");
    assert_eq!(inspected["is_logged"], true, "{inspected}");
    assert_eq!(inspected["subs_txo"], 0, "{inspected}");
    assert!(
        inspected["request total"].as_u64() >= inspected["request counts"]["server.ping"].as_u64(),
        "{inspected}"
    );
    for key in [
        "subs_sh",
        "errors",
        "pending requests",
        "txs sent",
        "conn_time",
    ] {
        assert!(inspected.get(key).is_some(), "{key} missing: {inspected}");
    }
    let unknown = raw(
        rpc_port,
        json!({"id": 6, "method": "inspect_session", "params": {"session_id": 99999}}),
    );
    assert_eq!(
        unknown["error"]["message"], "no session with id=99999",
        "{unknown}"
    );
    let not_a_number = raw(
        rpc_port,
        json!({"id": 7, "method": "inspect_session", "params": {"session_id": "x"}}),
    );
    assert_eq!(
        not_a_number["error"],
        json!({"code": 1, "message": "session_id must be a session number, not x"}),
        "{not_a_number}"
    );
    let toggled = rpc_json(rpc_port, &["log", &id.to_string()]);
    assert_eq!(toggled, json!([format!("not logging session {id}")]));
    assert_eq!(
        rpc_json(rpc_port, &["log", "new"]),
        json!(["logging new sessions"])
    );
    assert_eq!(
        rpc_json(rpc_port, &["log", "new"]),
        json!(["not logging new sessions"])
    );

    // reorg: the last 3 blocks are undone and synced again; the subscriber hears of the
    // coinbase script they touched, with an unchanged status, and the index is as before.
    let before = server.dump_index();
    assert_eq!(
        rpc_json(rpc_port, &["reorg", "3"]),
        json!("scheduled a reorg of 3 blocks")
    );
    wait_until("the re-sync after the reorg", || {
        server.log().contains("simulated reorg: undoing 3 blocks")
            && rpc_json(rpc_port, &["getinfo"])["db height"] == json!(tip)
    });
    // The block processor's update at an unchanged height waits, as every block update
    // does, for the mempool's next refresh at that height; the mempool actor publishes
    // one only when something changed, so a mempool transaction releases it.
    let (elsewhere, _) = new_address(&node);
    node.call("sendtoaddress", json!([elsewhere, "0.1"]));
    let deadline = Instant::now() + WAIT;
    let notification = loop {
        assert!(Instant::now() < deadline, "no notification after the reorg");
        if let Some(n) = client.next_notification(Duration::from_millis(500))
            && n["method"] == "blockchain.scripthash.subscribe"
        {
            break n;
        }
    };
    assert_eq!(notification["params"], json!([coinbase_hash, status]));
    assert_eq!(server.dump_index(), before, "re-synced to the same index");

    // daemon_url: explicit, and back to DAEMON_URL.
    let other = format!("http://u:p@127.0.0.1:{}/", free_port());
    let port_of = |url: &str| {
        url.rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    };
    assert_eq!(
        rpc_json(rpc_port, &["daemon_url", &other]),
        json!(format!(
            "now using daemon at 127.0.0.1:{}/",
            port_of(&other)
        ))
    );
    assert_eq!(
        rpc_json(rpc_port, &["daemon_url"]),
        json!(format!(
            "now using daemon at 127.0.0.1:{}/",
            node.rpc_port()
        ))
    );
    let bad = rpc(rpc_port, &["daemon_url", "https://x"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout)
            .starts_with("error making request: (1, 'an error occurred: "),
        "{bad:?}"
    );
    assert_eq!(
        rpc_json(rpc_port, &["getinfo"])["daemon height"],
        json!(tip),
        "the daemon answers again"
    );

    // peers (discovery is off), add_peer, memory.
    let peers = rpc_ok(rpc_port, &["peers"]);
    assert_eq!(peers.lines().count(), 1, "only the header: {peers}");
    assert!(peers.starts_with("Host "), "{peers}");
    assert_eq!(
        rpc_json(rpc_port, &["add_peer", "electrum.example.org s t"]),
        json!("peer 'electrum.example.org s t' added")
    );
    let memory = rpc_json(rpc_port, &["memory"]);
    assert!(
        memory["resident memory"].as_str().unwrap().ends_with(" KB"),
        "{memory}"
    );
    assert!(memory["index file"].is_string(), "{memory}");
    // The memory map starts at 64 MiB, more than this small index needs.
    let kilobytes = |key: &str| -> u64 {
        let text = memory[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {memory}"));
        text.trim_end_matches(" KB")
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert_eq!(kilobytes("index memory map"), 65_536, "{memory}");
    assert!(kilobytes("index file") < 65_536, "{memory}");

    // --json prints tables as JSON; errors as JSON-RPC says.
    let rows = rpc_json(rpc_port, &["--json", "sessions"]);
    assert!(rows.as_array().unwrap().iter().any(|r| r[0] == json!(id)));
    let unknown = raw(
        rpc_port,
        json!({"id": 5, "method": "nonsense", "params": {}}),
    );
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let bad_args = raw(
        rpc_port,
        json!({"id": 6, "method": "reorg", "params": {"count": -1}}),
    );
    assert_eq!(
        bad_args["error"]["message"], "-1 should be a non-negative integer",
        "{bad_args}"
    );

    // Metrics: Prometheus text and JSON.
    let (status_line, body) = http_get(http, "/metrics");
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    let samples = parse_prometheus(&body);
    assert_eq!(samples["ferrumx_index_height"], f64::from(tip));
    assert_eq!(samples["ferrumx_daemon_height"], f64::from(tip));
    assert_eq!(samples["ferrumx_caught_up"], 1.0);
    assert!(samples["ferrumx_sessions"] >= 1.0, "{body}");
    assert!(samples["ferrumx_subscriptions"] >= 1.0, "{body}");
    // Sessions report their counters to the session manager about once a second.
    wait_until("server.ping in the request counts", || {
        let samples = parse_prometheus(&http_get(http, "/metrics").1);
        samples.contains_key("ferrumx_requests_total{method=\"server.ping\"}")
    });
    assert!(samples.contains_key("ferrumx_cache_lookups_total{cache=\"txids\"}"));
    // The latency histogram counts every answered request; errors are counted by method.
    let samples = parse_prometheus(&http_get(http, "/metrics").1);
    let answered = samples["ferrumx_request_latency_seconds_count"];
    assert!(answered >= 1.0, "no latency observations");
    assert_eq!(
        samples["ferrumx_request_latency_seconds_bucket{le=\"+Inf\"}"],
        answered
    );
    assert!(samples["ferrumx_request_latency_seconds_sum"] > 0.0);
    assert!(samples["ferrumx_index_transactions"] >= f64::from(tip));
    assert!(samples.contains_key("ferrumx_session_cost"));
    assert!(samples.contains_key("ferrumx_sessions_throttled"));
    let (status_line, body) = http_get(http, "/metrics.json");
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    let metrics: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics["ferrumx_index_height"], json!(f64::from(tip)));
    assert!(
        metrics["ferrumx_requests_total"]["server.ping"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    assert_eq!(http_get(http, "/other").0, "HTTP/1.1 404 Not Found");

    // disconnect: the client's socket closes.
    assert_eq!(
        rpc_json(rpc_port, &["disconnect", &id.to_string(), "nobody"]),
        json!([format!("disconnecting session {id}"), "unknown: nobody"])
    );
    assert!(
        client.is_closed_by_server(WAIT),
        "disconnected socket closes"
    );

    // stop: "stopping", exit 0, the index intact.
    let before = server.dump_index();
    assert_eq!(rpc_json(rpc_port, &["stop"]), json!("stopping"));
    let mut status = None;
    wait_until("the server to exit", || {
        status = server.exit_status();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{}", server.log_tail(20));
    assert_eq!(server.dump_index(), before);
    let gone = rpc(rpc_port, &["getinfo"]);
    assert!(!gone.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gone.stdout),
        format!("cannot connect - is ferrumx not running, or is {rpc_port} the wrong RPC port?\n")
    );
}

/// A daemon that knows Litecoin regtest's genesis hash and is "warming up" for anything
/// else: ferrumx starts but cannot catch up.
fn warming_up_daemon() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || serve_warming_up(stream));
        }
    });
    port
}

fn serve_warming_up(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (code, reply) = if !request_line.starts_with("POST") {
            (404, String::new())
        } else {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = |r: &Value| {
                if r["method"] == "getblockhash" && r["params"] == json!([0]) {
                    json!({"id": r["id"], "error": null, "result":
                        "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"})
                } else {
                    json!({"id": r["id"], "result": null,
                           "error": {"code": -28, "message": "Loading block index..."}})
                }
            };
            let (code, reply) = match &request {
                Value::Array(items) => (200, Value::Array(items.iter().map(answer).collect())),
                single => {
                    let reply = answer(single);
                    (if reply["error"].is_null() { 200 } else { 500 }, reply)
                }
            };
            (code, reply.to_string())
        };
        let head = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(reply.as_bytes()).is_err()
        {
            return;
        }
    }
}

#[test]
fn admin_answers_before_catch_up_and_stops_the_sync() {
    let daemon_port = warming_up_daemon();
    let dir = tempfile::tempdir().unwrap();
    let (tcp, rpc_port) = (free_port(), free_port());
    let services = format!("tcp://127.0.0.1:{tcp},rpc://localhost:{rpc_port}");
    let mut server = FerrumxProcess::start(
        binary(),
        &format!("http://u:p@127.0.0.1:{daemon_port}/"),
        dir.path(),
        &[("SERVICES", &services)],
    );
    let mut info = Value::Null;
    wait_until("the admin port", || {
        let output = rpc(rpc_port, &["getinfo"]);
        if output.status.success() {
            info = serde_json::from_slice(&output.stdout).unwrap();
        }
        output.status.success()
    });
    assert_eq!(info["db height"], -1, "nothing indexed: {info}");
    assert!(info.get("sessions").is_none(), "no client listeners yet");
    assert!(
        TcpStream::connect(("127.0.0.1", tcp)).is_err(),
        "client listeners open only after catch-up"
    );
    let refused = rpc(rpc_port, &["reorg"]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "error making request: (1, 'still catching up with daemon')\n"
    );
    // No client sessions yet: only the admin connection asking.
    let sessions = rpc_json(rpc_port, &["sessions", "--json"]);
    let flags: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row[1])
        .collect();
    assert_eq!(flags, [&json!("R")], "{sessions}");
    assert_eq!(rpc_json(rpc_port, &["stop"]), json!("stopping"));
    let mut status = None;
    wait_until("the server to exit", || {
        status = server.exit_status();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{}", server.log_tail(20));
}

#[test]
fn remote_rpc_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .env_clear()
        .env("COIN", "Litecoin")
        .env("NET", "regtest")
        .env("DAEMON_URL", "http://u:p@127.0.0.1:1/")
        .env("DB_DIRECTORY", dir.path())
        .env("SERVICES", "rpc://0.0.0.0:8000")
        .env("ALLOW_ROOT", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set RPC_ALLOW_REMOTE"), "{stderr}");
}

/// `sessions`, `inspect_session` and `getinfo` show a session as it is at the moment of
/// the call, from its `server.version` on; `getinfo` carries the documented keys beside
/// ElectrumX 2.0's.
#[test]
fn the_admin_view_is_current_and_carries_the_documented_keys() {
    let node = Litecoind::start();
    node.mine(101);
    let dir = tempfile::tempdir().unwrap();
    let (tcp, rpc_port) = (free_port(), free_port());
    let services = format!("tcp://127.0.0.1:{tcp},rpc://127.0.0.1:{rpc_port}");
    let mut server = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        dir.path(),
        &[("SERVICES", &services)],
    );
    server.wait_ready(Duration::from_secs(120));

    let mut client = RawClient::connect(server.tcp_addr()).unwrap();
    client.handshake("1.7").unwrap();
    // At once, not after the session's next report.
    let sessions = raw(
        rpc_port,
        json!({"id": 1, "method": "sessions", "params": {}}),
    );
    let rows = sessions["result"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|row| row[3] == "ferrumx-tests")
        .unwrap_or_else(|| panic!("the client is not listed by name: {sessions}"));
    assert_eq!(row[4], "1.7", "{row}");
    assert_eq!(row[10], 1, "one message received: {row}");
    assert!(row[11].as_u64().unwrap() > 0, "{row}");
    let id = row[0].as_u64().unwrap().to_string();
    let inspected = rpc_json(rpc_port, &["inspect_session", &id]);
    assert_eq!(inspected["request counts"], json!({"server.version": 1}));
    assert_eq!(inspected["client_name"], "ferrumx-tests");

    client
        .call(
            "blockchain.outpoint.subscribe",
            json!(["11".repeat(32), 0, ""]),
        )
        .unwrap();
    let (_, script) = new_address(&node);
    client
        .call("blockchain.scriptpubkey.subscribe", json!([script]))
        .unwrap();
    let inspected = rpc_json(rpc_port, &["inspect_session", &id]);
    assert_eq!(inspected["request total"], 3, "{inspected}");
    assert_eq!(
        (inspected["subs_sh"].clone(), inspected["subs_txo"].clone()),
        (json!(1), json!(1))
    );

    let info = rpc_json(rpc_port, &["getinfo"]);
    for key in [
        "closing",
        "daemon_height",
        "db_height",
        "errors",
        "groups",
        "logged",
        "paused",
        "peers",
        "pid",
        "requests",
        "sessions",
        "subs",
        "txs_sent",
    ] {
        assert!(info.get(key).is_some(), "getinfo has no {key:?}: {info}");
    }
    assert_eq!(info["db_height"], json!(node.height()));
    assert_eq!(info["db_height"], info["db height"]);
    assert_eq!(info["subs"], 2);
    assert_eq!(info["sessions"]["subs_txo"], 1);
    assert_eq!(info["sessions"]["count with subs_txo"], 1);
    assert_eq!(info["request counts"]["blockchain.outpoint.subscribe"], 1);
}
