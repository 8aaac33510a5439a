//! ferrumx against ElectrumX, answer for answer: both index the same regtest litecoind (a
//! varied chain past MWEB activation, then a mempool with chained and large transactions)
//! and every protocol method is asked of both over raw sockets, for every script hash and
//! every transaction of the chain, under protocols 1.4, 1.6 and 1.7 (its scriptPubKey,
//! outpoint, ping, mempool.recent and testmempoolaccept methods too), together with
//! malformed requests. Results, error codes and error messages must be equal.
//!
//! The differences the allow-list (`ALLOWANCES`) accepts are the ones a drop-in
//! replacement cannot or should not remove, each with its reason. The test runs to the
//! end whatever it finds, prints every difference grouped in a table (the full list goes
//! to `differential-report.md` in Cargo's test temp directory) and fails if any
//! difference is not allow-listed. ElectrumX comes from PyPI (see `support::electrumx`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::Secp256k1;
use serde_json::{Value, json};

use support::chain_builder::{AddressKind, ChainInfo, ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::electrumx::{self, ElectrumxProcess};
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::signer::Key;
use support::truth::{Truth, scripthash};

/// Both servers may need this long to index the chain and open their ports.
const READY: Duration = Duration::from_secs(300);
/// Requests per batch: large enough to be quick, small enough for any reply size.
const BATCH: usize = 100;
/// How long both servers get to see a change of the daemon's mempool or tip.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a reply may take when nothing else bounds the wait.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first message of a session may wait for its reply.
const FIRST_REPLY_WAIT: Duration = Duration::from_secs(3);
/// How long replies that overtook a marker's are waited for.
const LATE_REPLY_WAIT: Duration = Duration::from_millis(300);
/// How a report cell is cut.
const CELL_CHARS: usize = 160;
/// ElectrumX ignores REPORT_SERVICES hosts that are local, so both get a public name.
const REPORT_SERVICES: &str = "tcp://electrum.example.com:50001";
const BANNER: &str = "$SERVER_SUBVERSION ($SERVER_VERSION) on $DAEMON_SUBVERSION \
                      $DAEMON_VERSION; donations to $DONATION_ADDRESS\n";
/// Keys of the fan-out transactions (the chain builder uses keys from 0 up).
const FAN_OUT_KEYS: u32 = 1_000_000;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

// ---------------------------------------------------------------------------------------
// The allow-list.

/// A difference the test accepts, and why.
struct Allowance {
    name: &'static str,
    applies: fn(&Comparison, &Names) -> bool,
}

const ALLOWANCES: [Allowance; 7] = [
    // ferrumx is not ElectrumX: server.version, server.features' server_version and the
    // banner's $SERVER_VERSION / $SERVER_SUBVERSION name each program and its version.
    // Clients display these strings; none parses them.
    Allowance {
        name: "software name",
        applies: only_software_names_differ,
    },
    // ElectrumX 2.0.0 answers blockchain.outpoint.* with bitcoind's gettxspendingprevout
    // (Bitcoin Core 31 with txospenderindex), which litecoind does not have: for an output
    // that exists it fails with a daemon error. ferrumx answers from its own index (tests/
    // protocol17.rs checks those answers against the daemon). Outputs that do not exist
    // ElectrumX answers before asking, and those must be equal.
    Allowance {
        name: "ElectrumX cannot serve outpoints on litecoind",
        applies: electrumx_outpoints_fail,
    },
    // ElectrumX 2.0.0 reads `wtxid` from testmempoolaccept, which litecoind 0.21 does not
    // report, so it fails with an internal error (a KeyError) wherever the daemon
    // answered; ferrumx hashes the client's transaction for the wtxid.
    Allowance {
        name: "ElectrumX testmempoolaccept fails on litecoind",
        applies: electrumx_testmempoolaccept_fails,
    },
    // ElectrumX 2.0.0 reads `incrementalrelayfee` from getmempoolinfo, which litecoind
    // 0.21 does not report, so its mempool.get_info always fails with an internal error
    // (a KeyError). Any answer from ferrumx is better.
    Allowance {
        name: "ElectrumX mempool.get_info fails on litecoind",
        applies: electrumx_mempool_info_fails,
    },
    // ElectrumX appends mempool outputs to listunspent in the iteration order of a Python
    // set (`MemPool.unordered_UTXOs`), which is arbitrary; the protocol leaves it open.
    // The confirmed outputs before them must still be equal and in order.
    Allowance {
        name: "order of mempool outputs in listunspent",
        applies: only_mempool_utxo_order_differs,
    },
    // ElectrumX does not index the genesis block's coinbase (reference §1.3), so it
    // claims block 0 holds no transaction: id_from_pos(0, 0) and get_merkle of that
    // coinbase fail. ferrumx answers with the transaction that is there.
    Allowance {
        name: "ElectrumX omits the genesis coinbase",
        applies: electrumx_omits_the_genesis_coinbase,
    },
    // ferrumx also answers Fulcrum's extras (README "Fulcrum's extras"), two of which
    // extend ElectrumX methods: get_history's from_height and to_height, and get_merkle
    // without a height. Where ElectrumX refuses those arguments with an arity error,
    // ferrumx answers.
    Allowance {
        name: "Fulcrum's extra arguments",
        applies: fulcrum_extra_arguments,
    },
];

fn fulcrum_extra_arguments(c: &Comparison, _: &Names) -> bool {
    let arity_refused = c.electrumx["error"]["code"] == json!(-32602);
    let extended = match c.method.as_str() {
        "blockchain.scripthash.get_history" => c.request.contains(",1]"),
        "blockchain.transaction.get_merkle" => !c.request.contains(','),
        _ => false,
    };
    arity_refused && extended
}

/// Each server's software string (`server.version`'s first element), to tell a
/// difference in names from any other.
struct Names {
    ferrumx: String,
    electrumx: String,
}

impl Names {
    /// `value` with `software` (e.g. "ElectrumX 2.0.0") and then its version alone
    /// replaced by placeholders, in every string.
    fn normalize(value: &Value, software: &str) -> Value {
        let version = software.rsplit(' ').next().unwrap_or(software);
        map_strings(value, &|s| {
            s.replace(software, "<software>")
                .replace(version, "<version>")
        })
    }
}

fn map_strings(value: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), map_strings(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn only_software_names_differ(c: &Comparison, names: &Names) -> bool {
    // A first message may be a batch holding server.version: its reply names us too.
    let names_software = matches!(
        c.method.as_str(),
        "server.version" | "server.features" | "server.banner"
    ) || (c.method.starts_with("first message")
        && c.request.contains("server.version"));
    names_software
        && Names::normalize(&c.ferrumx, &names.ferrumx)
            == Names::normalize(&c.electrumx, &names.electrumx)
}

fn electrumx_testmempoolaccept_fails(c: &Comparison, _: &Names) -> bool {
    c.method == "blockchain.transaction.testmempoolaccept"
        && c.electrumx["error"]["code"] == json!(-32603)
        && c.ferrumx.get("result").is_some()
}

fn electrumx_outpoints_fail(c: &Comparison, _: &Names) -> bool {
    c.method.starts_with("blockchain.outpoint.")
        && c.electrumx["error"]["code"] == json!(2)
        && c.electrumx["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Method not found"))
        && c.ferrumx.get("result").is_some()
}

fn electrumx_mempool_info_fails(c: &Comparison, _: &Names) -> bool {
    c.method == "mempool.get_info" && c.electrumx["error"]["code"] == json!(-32603)
}

fn electrumx_omits_the_genesis_coinbase(c: &Comparison, _: &Names) -> bool {
    let message = c.electrumx["error"]["message"].as_str().unwrap_or_default();
    matches!(
        c.method.as_str(),
        "blockchain.transaction.get_merkle" | "blockchain.transaction.id_from_pos"
    ) && (message == "no tx at position 0 in block at height 0"
        || message.ends_with(" not in block at height 0"))
        && c.ferrumx.get("result").is_some()
}

fn only_mempool_utxo_order_differs(c: &Comparison, _: &Names) -> bool {
    // Protocol 1.7 wraps the list in {"utxos": [...]}.
    let (fx, ex) = match c.method.as_str() {
        "blockchain.scripthash.listunspent" => (&c.ferrumx["result"], &c.electrumx["result"]),
        "blockchain.scriptpubkey.listunspent" => (
            &c.ferrumx["result"]["utxos"],
            &c.electrumx["result"]["utxos"],
        ),
        _ => return false,
    };
    let (Some(fx), Some(ex)) = (fx.as_array(), ex.as_array()) else {
        return false;
    };
    let split = |list: &[Value]| {
        let (mempool, confirmed): (Vec<Value>, Vec<Value>) =
            list.iter().cloned().partition(|u| u["height"] == json!(0));
        let mut mempool: Vec<String> = mempool.iter().map(Value::to_string).collect();
        mempool.sort();
        (confirmed, mempool)
    };
    split(fx) == split(ex)
}

// ---------------------------------------------------------------------------------------
// Comparing and reporting.

/// One request asked of both servers, and what each answered: `{"result": …}`,
/// `{"error": {"code", "message"}}`, `{"replies": […], "closed": …}` for raw exchanges, or
/// `{"transport": …}` when the connection failed.
struct Comparison {
    protocol: &'static str,
    method: String,
    request: String,
    ferrumx: Value,
    electrumx: Value,
}

struct Difference {
    comparison: Comparison,
    allowed: Option<&'static str>,
}

#[derive(Default)]
struct Report {
    /// Per method: (compared, different).
    counts: BTreeMap<String, (usize, usize)>,
    differences: Vec<Difference>,
    /// Things the test could not do as planned (e.g. a server never saw the mempool).
    notes: Vec<String>,
}

impl Report {
    fn compare(&mut self, names: &Names, comparison: Comparison) {
        let count = self.counts.entry(comparison.method.clone()).or_default();
        count.0 += 1;
        if comparison.ferrumx == comparison.electrumx {
            return;
        }
        count.1 += 1;
        let allowed = ALLOWANCES
            .iter()
            .find(|a| (a.applies)(&comparison, names))
            .map(|a| a.name);
        self.differences.push(Difference {
            comparison,
            allowed,
        });
    }

    fn note(&mut self, note: String) {
        eprintln!("NOTE: {note}");
        self.notes.push(note);
    }

    /// Prints the summary and the differences grouped by method and kind, writes every
    /// difference to a file, and fails if any is not allowed.
    fn finish(self) {
        let mut out = String::new();
        let total: usize = self.counts.values().map(|c| c.0).sum();
        writeln!(
            out,
            "\n# ferrumx vs ElectrumX: {total} comparisons, {} differences\n",
            self.differences.len()
        )
        .unwrap();
        writeln!(out, "| method | compared | different |\n|---|---:|---:|").unwrap();
        for (method, (compared, different)) in &self.counts {
            writeln!(out, "| {method} | {compared} | {different} |").unwrap();
        }
        let mut groups: BTreeMap<(bool, String, &str, String, String), Vec<&Difference>> =
            BTreeMap::new();
        for d in &self.differences {
            let c = &d.comparison;
            let key = (
                d.allowed.is_some(),
                c.method.clone(),
                c.protocol,
                kind(&c.ferrumx),
                kind(&c.electrumx),
            );
            groups.entry(key).or_default().push(d);
        }
        writeln!(
            out,
            "\n| verdict | method | proto | count | first request | ferrumx | ElectrumX |\n\
             |---|---|---|---:|---|---|---|"
        )
        .unwrap();
        for ((_, method, protocol, _, _), diffs) in &groups {
            let first = &diffs[0].comparison;
            writeln!(
                out,
                "| {} | {method} | {protocol} | {} | {} | {} | {} |",
                verdict(diffs[0]),
                diffs.len(),
                cell(&first.request),
                cell(&first.ferrumx.to_string()),
                cell(&first.electrumx.to_string()),
            )
            .unwrap();
        }
        for note in &self.notes {
            writeln!(out, "\nNOTE: {note}").unwrap();
        }
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-report.md");
        let mut full = out.clone();
        writeln!(
            full,
            "\n## Every difference\n\n| verdict | method | proto | request | ferrumx | ElectrumX |\n\
             |---|---|---|---|---|---|"
        )
        .unwrap();
        for d in &self.differences {
            let c = &d.comparison;
            writeln!(
                full,
                "| {} | {} | {} | {} | {} | {} |",
                verdict(d),
                c.method,
                c.protocol,
                cell_full(&c.request),
                cell_full(&c.ferrumx.to_string()),
                cell_full(&c.electrumx.to_string()),
            )
            .unwrap();
        }
        std::fs::write(&path, full).expect("write the differential report");
        eprintln!("{out}\nEvery difference: {}", path.display());
        let failures = self
            .differences
            .iter()
            .filter(|d| d.allowed.is_none())
            .count();
        assert!(
            failures == 0 && self.notes.is_empty(),
            "{failures} differences between ferrumx and ElectrumX are not allow-listed and {} \
             notes were raised; see the tables above and {}",
            self.notes.len(),
            path.display()
        );
    }
}

fn verdict(d: &Difference) -> String {
    match d.allowed {
        Some(name) => format!("allowed: {name}"),
        None => "DIFFERENT".to_string(),
    }
}

/// What kind of answer: result, error code, raw replies or a failed connection.
fn kind(outcome: &Value) -> String {
    if let Some(code) = outcome["error"]["code"].as_i64() {
        return format!("error {code}");
    }
    ["result", "replies", "transport"]
        .into_iter()
        .find(|k| outcome.get(*k).is_some())
        .unwrap_or("other")
        .to_string()
}

fn cell(text: &str) -> String {
    let short: String = text.chars().take(CELL_CHARS).collect();
    let ellipsis = if short.len() < text.len() { "…" } else { "" };
    cell_full(&format!("{short}{ellipsis}"))
}

fn cell_full(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "\\n")
}

// ---------------------------------------------------------------------------------------
// Talking to the servers.

/// A request: method and params.
#[derive(Clone)]
struct Req {
    method: String,
    params: Value,
}

fn req(method: &str, params: Value) -> Req {
    Req {
        method: method.to_string(),
        params,
    }
}

/// One negotiated connection to one server. After a failure the next request reconnects,
/// so one misbehaving method does not end the comparison.
struct Conn {
    addr: SocketAddr,
    protocol: &'static str,
    client: Option<RawClient>,
    next_id: u64,
    /// Notifications that arrived between replies.
    notifications: Vec<Value>,
}

impl Conn {
    fn new(addr: SocketAddr, protocol: &'static str) -> Conn {
        Conn {
            addr,
            protocol,
            client: None,
            next_id: 1,
            notifications: Vec::new(),
        }
    }

    /// The server's `server.version` answer on a new connection.
    fn connect(&mut self) -> io::Result<Value> {
        let mut client = RawClient::connect(self.addr)?;
        let hello = json!({"jsonrpc": "2.0", "id": 0, "method": "server.version",
                           "params": ["ferrumx-differential", self.protocol]});
        client.send_raw_line(&hello.to_string())?;
        let reply = read_message(&mut client)?;
        if reply.get("result").is_none() {
            return Err(io::Error::other(format!("server.version failed: {reply}")));
        }
        self.client = Some(client);
        Ok(reply["result"].clone())
    }

    fn client(&mut self) -> io::Result<&mut RawClient> {
        if self.client.is_none() {
            self.connect()?;
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The outcome of one request sent on its own.
    fn call(&mut self, r: &Req) -> Value {
        let id = self.fresh_id();
        let line = json!({"jsonrpc": "2.0", "id": id, "method": r.method, "params": r.params});
        let result = self.exchange(&line.to_string(), |m| {
            (m["id"] == json!(id) || (m["id"].is_null() && m.get("error").is_some()))
                .then(|| vec![outcome(m)])
        });
        self.settle(result, 1).remove(0)
    }

    /// The outcomes of requests sent as one batch, in request order.
    fn batch(&mut self, requests: &[Req]) -> Vec<Value> {
        let first = self.next_id;
        let body: Vec<Value> = requests
            .iter()
            .map(|r| {
                let id = self.fresh_id();
                json!({"jsonrpc": "2.0", "id": id, "method": r.method, "params": r.params})
            })
            .collect();
        let n = requests.len();
        let result = self.exchange(&Value::Array(body).to_string(), |m| match m {
            Value::Array(replies) => {
                let mut outcomes = vec![json!({"missing": "no reply in the batch"}); n];
                for reply in replies {
                    let slot = reply["id"]
                        .as_u64()
                        .and_then(|id| id.checked_sub(first))
                        .and_then(|i| outcomes.get_mut(i as usize));
                    if let Some(slot) = slot {
                        *slot = outcome(reply);
                    }
                }
                Some(outcomes)
            }
            m if m["id"].is_null() && m.get("error").is_some() => Some(vec![outcome(m); n]),
            _ => None,
        });
        self.settle(result, n)
    }

    /// Sends `bytes` as one line, then a marker request; returns every message that came
    /// before the marker's reply (batch replies sorted by id), and whether the server
    /// closed the connection instead of answering the marker.
    fn raw(&mut self, bytes: &[u8]) -> Value {
        let marker = format!("marker-{}", self.fresh_id());
        let mut line = bytes.to_vec();
        line.push(b'\n');
        let ping = json!({"jsonrpc": "2.0", "id": marker, "method": "server.ping", "params": []});
        line.extend_from_slice(format!("{ping}\n").as_bytes());
        let mut outcome = match self.client() {
            Ok(client) => raw_exchange(client, &line, &marker),
            Err(e) => return json!({"transport": e.to_string()}),
        };
        // Protocol 1.7's noise pings come at random (after mempool changes too): not part
        // of the exchange.
        let noise = json!({"jsonrpc": "2.0", "method": "server.ping", "params": ["0".repeat(128)]});
        if let Some(replies) = outcome["replies"].as_array_mut() {
            replies.retain(|reply| reply != &noise);
        }
        if outcome["closed"] == json!(true) {
            self.client = None;
        }
        outcome
    }

    /// Sends `line` and reads until `done` recognises the reply; notifications read
    /// meanwhile are kept.
    fn exchange<T>(&mut self, line: &str, done: impl Fn(&Value) -> Option<T>) -> io::Result<T> {
        let client = self.client()?;
        client.send_raw_line(line)?;
        let mut notes = Vec::new();
        let result = loop {
            let message = read_message(client)?;
            if let Some(found) = done(&message) {
                break found;
            }
            if message.get("method").is_some() {
                notes.push(message);
            } else {
                return Err(io::Error::other(format!("unexpected message {message}")));
            }
        };
        self.notifications.extend(notes);
        Ok(result)
    }

    /// A transport failure becomes the outcome of every request, and the connection is
    /// dropped so the next request opens a new one.
    fn settle(&mut self, result: io::Result<Vec<Value>>, n: usize) -> Vec<Value> {
        result.unwrap_or_else(|e| {
            self.client = None;
            vec![json!({"transport": e.to_string()}); n]
        })
    }

    /// Reads notifications for up to `wait`, or until `enough` says so.
    fn collect_notifications(&mut self, wait: Duration, enough: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + wait;
        while !enough(&self.notifications) && Instant::now() < deadline {
            let Ok(client) = self.client() else {
                return;
            };
            client.set_read_timeout(Duration::from_millis(200));
            let message = client.read_json();
            client.set_read_timeout(Duration::from_secs(30));
            match message {
                Ok(Some(m)) => self.notifications.push(m),
                Ok(None) => {
                    self.client = None;
                    return;
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    self.client = None;
                    return;
                }
            }
        }
    }
}

/// The next JSON message; EOF is an error.
fn read_message(client: &mut RawClient) -> io::Result<Value> {
    client
        .read_json()?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A reply reduced to what is compared: its result or its error.
fn outcome(reply: &Value) -> Value {
    match reply.get("error").filter(|e| !e.is_null()) {
        Some(error) => json!({"error": error}),
        None => json!({"result": reply.get("result").cloned().unwrap_or(json!("<no result>"))}),
    }
}

/// Sorts a batch reply's elements by id, so completion order does not matter.
fn sorted_batch(message: Value) -> Value {
    match message {
        Value::Array(mut items) => {
            items.sort_by_key(|m| m["id"].to_string());
            Value::Array(items)
        }
        other => other,
    }
}

/// Writes `bytes` (which end with a marker request) and collects the messages before the
/// marker's reply; `closed` if the server closed the connection instead.
fn raw_exchange(client: &mut RawClient, bytes: &[u8], marker: &str) -> Value {
    if let Err(e) = client.send_raw_bytes(bytes) {
        return json!({"replies": [], "closed": true, "write_error": e.kind().to_string()});
    }
    let (mut replies, mut closed) = read_until(client, REPLY_TIMEOUT, |m| m["id"] == json!(marker));
    if !closed {
        replies.pop();
        // A server may answer requests out of order: replies to the line can follow the
        // marker's.
        let (late, closed_late) = read_until(client, LATE_REPLY_WAIT, |_| false);
        replies.extend(late.into_iter().filter(|m| m.get("timeout").is_none()));
        closed = closed_late;
    }
    json!({"replies": replies, "closed": closed})
}

/// Reads messages until `last` accepts one (included), the connection closes (`true`), or
/// nothing arrives for `wait` (a `timeout` entry ends the list).
fn read_until(
    client: &mut RawClient,
    wait: Duration,
    last: impl Fn(&Value) -> bool,
) -> (Vec<Value>, bool) {
    let mut messages = Vec::new();
    client.set_read_timeout(wait);
    let closed = loop {
        match client.read_line() {
            Ok(None) => break true,
            Ok(Some(line)) => {
                let message = serde_json::from_str::<Value>(&line)
                    .map_or_else(|_| json!({"not JSON": line}), sorted_batch);
                let done = last(&message);
                messages.push(message);
                if done {
                    break false;
                }
            }
            Err(e) if is_timeout(&e) => {
                messages.push(json!({"timeout": format!("nothing within {wait:?}")}));
                break false;
            }
            Err(_) => break true,
        }
    };
    client.set_read_timeout(Duration::from_secs(30));
    (messages, closed)
}

/// The same session on both servers.
struct Pair {
    protocol: &'static str,
    fx: Conn,
    ex: Conn,
}

impl Pair {
    fn new(servers: &Servers, protocol: &'static str) -> Pair {
        Pair {
            protocol,
            fx: Conn::new(servers.fx, protocol),
            ex: Conn::new(servers.ex, protocol),
        }
    }

    fn record(&self, report: &mut Report, names: &Names, r: &Req, fx: Value, ex: Value) {
        report.compare(
            names,
            Comparison {
                protocol: self.protocol,
                method: r.method.clone(),
                request: format!("{} {}", r.method, r.params),
                ferrumx: fx,
                electrumx: ex,
            },
        );
    }

    /// Each request on its own.
    fn singly(&mut self, report: &mut Report, names: &Names, requests: &[Req]) {
        for r in requests {
            let fx = self.fx.call(r);
            let ex = self.ex.call(r);
            self.record(report, names, r, fx, ex);
        }
    }

    /// The requests in batches.
    fn batched(&mut self, report: &mut Report, names: &Names, requests: &[Req]) {
        for chunk in requests.chunks(BATCH) {
            let fx = self.fx.batch(chunk);
            let ex = self.ex.batch(chunk);
            for ((r, f), e) in chunk.iter().zip(fx).zip(ex) {
                self.record(report, names, r, f, e);
            }
        }
    }

    /// Raw lines, each followed by a marker request.
    fn raw(&mut self, report: &mut Report, names: &Names, label: &str, bytes: &[u8]) {
        let fx = self.fx.raw(bytes);
        let ex = self.ex.raw(bytes);
        report.compare(
            names,
            Comparison {
                protocol: self.protocol,
                method: format!("raw: {label}"),
                request: String::from_utf8_lossy(bytes).into_owned(),
                ferrumx: fx,
                electrumx: ex,
            },
        );
    }
}

#[derive(Clone, Copy)]
struct Servers {
    fx: SocketAddr,
    ex: SocketAddr,
}

/// The first message of a fresh connection and what follows it: the replies, and whether
/// the server then closes the connection (a marker request tells).
fn first_message(addr: SocketAddr, line: &str) -> Value {
    let mut client = match RawClient::connect(addr) {
        Ok(c) => c,
        Err(e) => return json!({"transport": e.to_string()}),
    };
    if let Err(e) = client.send_raw_line(line) {
        return json!({"transport": e.to_string()});
    }
    // A reply (anything with an id, or a batch) ends the first wait; notifications before
    // it are kept. Requests that get no reply cost the whole wait.
    let (mut replies, mut closed) = read_until(&mut client, FIRST_REPLY_WAIT, |m| {
        m.is_array() || m.get("id").is_some()
    });
    replies.retain(|m| m.get("timeout").is_none());
    if !closed {
        let ping = json!({"jsonrpc": "2.0", "id": "marker", "method": "server.ping", "params": []});
        let after = raw_exchange(&mut client, format!("{ping}\n").as_bytes(), "marker");
        replies.extend(after["replies"].as_array().cloned().unwrap_or_default());
        closed = after["closed"] == json!(true);
    }
    json!({"replies": replies, "closed": closed})
}

// ---------------------------------------------------------------------------------------
// The chain, the daemon and the mempool.

/// A confirmed or mempool transaction.
#[derive(Clone)]
struct ChainTx {
    txid: String,
    height: u32,
    pos: usize,
}

/// Every transaction of the chain, genesis coinbase included, in chain order.
fn chain_transactions(node: &Litecoind) -> Vec<ChainTx> {
    let mut txs = Vec::new();
    for height in 0..=node.height() {
        let hash = node.call("getblockhash", json!([height]));
        let block = node.call("getblock", json!([hash, 1]));
        for (pos, txid) in block["tx"].as_array().expect("tx list").iter().enumerate() {
            txs.push(ChainTx {
                txid: txid.as_str().expect("txid").to_string(),
                height,
                pos,
            });
        }
    }
    txs
}

/// ElectrumX asks the daemon for transactions by txid alone, which needs `txindex`
/// (ferrumx passes the block hash and does not). The harness writes `txindex=0` into
/// litecoin.conf; this turns it on, restarts the daemon and waits for the index.
fn enable_txindex(node: &mut Litecoind) {
    let conf = node.datadir().join("litecoin.conf");
    let text = std::fs::read_to_string(&conf).expect("read litecoin.conf");
    assert!(
        text.contains("txindex=0\n"),
        "unexpected litecoin.conf:\n{text}"
    );
    std::fs::write(&conf, text.replace("txindex=0\n", "txindex=1\n")).expect("write conf");
    node.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = node.call("getindexinfo", json!([]));
        if info["txindex"]["synced"] == json!(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "litecoind's txindex did not sync: {info}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the mempool was filled with.
struct Mempool {
    txids: Vec<String>,
    /// (script hash, txid): each mempool transaction pays the script hash.
    probes: Vec<(String, String)>,
    /// Script hashes the mempool touches (a sample of the fan-outs' outputs).
    touched: BTreeSet<String>,
}

/// Wallet payments to addresses with a history (one spends an unconfirmed output, so
/// its scripts get height -1 entries), and fan-outs at four fee rates (the wallet pays at
/// least 10 sat/vB) large enough to fill several buckets of the fee histogram (ElectrumX's
/// bins start at 30,000 vbytes).
fn fill_mempool(node: &Litecoind, info: &ChainInfo) -> Mempool {
    let script_of = |address: &str| {
        info.address(address)
            .unwrap_or_else(|| panic!("{address} is not a chain address"))
            .script
            .clone()
    };
    let mut probes = Vec::new();
    let to_heavy = as_str(&node.call("sendtoaddress", json!([info.heavy, "1.5"])));
    probes.push((scripthash(&script_of(&info.heavy)), to_heavy.clone()));

    let mut amounts = serde_json::Map::new();
    for (i, address) in info.reused.iter().take(4).enumerate() {
        amounts.insert(address.clone(), json!(format!("0.{}", 3 + i)));
    }
    let many = as_str(&node.call("sendmany", json!(["", amounts])));
    probes.push((scripthash(&script_of(&info.reused[0])), many.clone()));

    // The child spends the heavy payment's change before it confirms.
    let parent = node.call("getrawtransaction", json!([to_heavy, true]));
    let heavy_script = script_of(&info.heavy);
    let change = parent["vout"]
        .as_array()
        .expect("vout")
        .iter()
        .find(|o| o["scriptPubKey"]["hex"] != json!(heavy_script))
        .expect("the payment has change")
        .clone();
    let child_to = info.reused.last().expect("reused addresses").clone();
    let amount = change["value"].as_f64().expect("value") - 0.001;
    let raw = node.call(
        "createrawtransaction",
        json!([[{"txid": to_heavy, "vout": change["n"]}], {child_to.clone(): format!("{amount:.8}")}]),
    );
    let signed = node.call("signrawtransactionwithwallet", json!([raw]));
    let child = as_str(&node.call("sendrawtransaction", json!([signed["hex"]])));
    probes.push((scripthash(&script_of(&child_to)), child.clone()));

    let secp = Secp256k1::new();
    let mut next_key = FAN_OUT_KEYS;
    let mut fan_outs = Vec::new();
    for (outputs, sat_per_vb) in [(1000, 60.0), (600, 33.3), (600, 21.7), (2500, 10.0)] {
        let mut amounts = serde_json::Map::new();
        let mut first_script = None;
        for _ in 0..outputs {
            let key = Key::derive(&secp, next_key, AddressKind::Bech32);
            next_key += 1;
            first_script.get_or_insert_with(|| key.script_hex());
            amounts.insert(key.address(), json!("0.0001"));
        }
        let txid = as_str(&node.call(
            "sendmany",
            json!(["", amounts, null, null, null, null, null, null, sat_per_vb]),
        ));
        probes.push((scripthash(&first_script.expect("outputs")), txid.clone()));
        fan_outs.push(txid);
    }

    let mut txids = vec![to_heavy, many, child];
    txids.extend(fan_outs);
    let mut touched = BTreeSet::new();
    for txid in &txids {
        let tx = node.call("getrawtransaction", json!([txid, true]));
        let outputs = tx["vout"].as_array().expect("vout");
        let step = if outputs.len() > 20 { 50 } else { 1 };
        for output in outputs.iter().step_by(step) {
            touched.insert(scripthash(as_str(&output["scriptPubKey"]["hex"]).as_str()));
        }
        for input in tx["vin"].as_array().expect("vin") {
            let prev = node.call("getrawtransaction", json!([input["txid"], true]));
            let vout = input["vout"].as_u64().expect("vout") as usize;
            touched.insert(scripthash(&as_str(
                &prev["vout"][vout]["scriptPubKey"]["hex"],
            )));
        }
    }
    Mempool {
        txids,
        probes,
        touched,
    }
}

fn as_str(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_string()
}

/// Waits until the server's tip is the daemon's; false if it is not within the timeout.
fn reaches_tip(addr: SocketAddr, node: &Litecoind) -> bool {
    let best = node.call("getbestblockhash", json!([]));
    let header = node.call("getblockheader", json!([best, false]));
    let expected = json!({"result": {"hex": header, "height": node.height()}});
    let mut conn = Conn::new(addr, "1.6");
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while Instant::now() < deadline {
        if conn.call(&req("blockchain.headers.subscribe", json!([]))) == expected {
            return true;
        }
        conn.client = None;
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Waits until every probe's script hash lists its transaction in the server's mempool.
fn sees_mempool(addr: SocketAddr, probes: &[(String, String)]) -> bool {
    let mut conn = Conn::new(addr, "1.6");
    let requests: Vec<Req> = probes
        .iter()
        .map(|(sh, _)| req("blockchain.scripthash.get_mempool", json!([sh])))
        .collect();
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while Instant::now() < deadline {
        let answers = conn.batch(&requests);
        let all = probes.iter().zip(&answers).all(|((_, txid), answer)| {
            answer["result"]
                .as_array()
                .is_some_and(|txs| txs.iter().any(|t| t["tx_hash"] == json!(txid)))
        });
        if all {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

// ---------------------------------------------------------------------------------------
// What is asked.

/// The methods about one script hash, in the order a wallet asks them.
const SCRIPTHASH_METHODS: [&str; 5] = [
    "blockchain.scripthash.get_balance",
    "blockchain.scripthash.get_history",
    "blockchain.scripthash.get_mempool",
    "blockchain.scripthash.listunspent",
    "blockchain.scripthash.subscribe",
];

/// Protocol 1.7's methods about one scriptPubKey.
const SCRIPTPUBKEY_METHODS: [&str; 5] = [
    "blockchain.scriptpubkey.get_balance",
    "blockchain.scriptpubkey.get_history",
    "blockchain.scriptpubkey.get_mempool",
    "blockchain.scriptpubkey.listunspent",
    "blockchain.scriptpubkey.subscribe",
];

/// The scriptPubKey methods for every script hash whose script the chain shows, then
/// unsubscribing from twenty of them.
fn spk_requests<'a>(truth: &Truth, hashes: impl Iterator<Item = &'a String>) -> Vec<Req> {
    let scripts: Vec<&str> = hashes.filter_map(|sh| truth.script_of(sh)).collect();
    let mut out: Vec<Req> = scripts
        .iter()
        .flat_map(|spk| SCRIPTPUBKEY_METHODS.map(|m| req(m, json!([spk]))))
        .collect();
    out.extend(
        scripts
            .iter()
            .take(20)
            .map(|spk| req("blockchain.scriptpubkey.unsubscribe", json!([spk]))),
    );
    out
}

/// Outputs of confirmed transactions: the first two of each (ElectrumX cannot tell
/// whether they are spent on litecoind) and one past the end (which it answers).
fn outpoint_requests(txs: &[ChainTx]) -> Vec<Req> {
    let mut out = vec![req(
        "blockchain.outpoint.get_status",
        json!(["00".repeat(32), 0, ""]),
    )];
    // The genesis coinbase is not indexed by ElectrumX.
    for tx in txs.iter().filter(|tx| tx.height > 0).take(300) {
        for vout in [0, 1, 500] {
            out.push(req(
                "blockchain.outpoint.get_status",
                json!([tx.txid, vout, ""]),
            ));
        }
    }
    out
}

/// Subscriptions to every output of mempool transactions (which ElectrumX answers from
/// its mempool), then, asked after them (ElectrumX runs a batch's members concurrently),
/// unsubscribing from each first output twice.
fn mempool_outpoint_requests(txids: &[String]) -> (Vec<Req>, Vec<Req>) {
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    for txid in txids {
        for vout in [0, 1, 2, 99] {
            subscribe.push(req(
                "blockchain.outpoint.subscribe",
                json!([txid, vout, "51"]),
            ));
        }
        unsubscribe.push(req("blockchain.outpoint.unsubscribe", json!([txid, 0])));
    }
    let again = unsubscribe.clone();
    unsubscribe.extend(again);
    (subscribe, unsubscribe)
}

/// testmempoolaccept of transactions already in the mempool, one and two at a time.
fn testmempoolaccept_requests(node: &Litecoind, txids: &[String]) -> Vec<Req> {
    let raw: Vec<Value> = txids
        .iter()
        .take(3)
        .map(|txid| node.call("getrawtransaction", json!([txid])))
        .collect();
    let mut out: Vec<Req> = raw
        .iter()
        .map(|hex| req("blockchain.transaction.testmempoolaccept", json!([[hex]])))
        .collect();
    out.push(req(
        "blockchain.transaction.testmempoolaccept",
        json!([raw.iter().take(2).collect::<Vec<_>>()]),
    ));
    out
}

/// Protocol 1.7's new methods with good and bad arguments, and the pings.
fn v17_requests(sh: &str, truth: &Truth) -> Vec<Req> {
    let spk = truth.script_of(sh).unwrap_or("51").to_string();
    let txid = "11".repeat(32);
    let mut out = vec![
        req("server.ping", json!([])),
        req("server.ping", json!([0])),
        req("server.ping", json!([5])),
        req("server.ping", json!([5, "ab"])),
        req("server.ping", json!([5, "abc"])),
        req("server.ping", json!([5, "xyz"])),
        req("server.ping", json!([5, 12])),
        req("server.ping", json!(["x"])),
        req("server.ping", json!([-1])),
        req("server.ping", json!(["7"])),
        req("server.ping", json!([100_000_000])),
        req("server.ping", json!({"pong_len": 2, "data": "00"})),
        req("server.ping", json!([1, "00", "extra"])),
        req("mempool.recent", json!([])),
        req("mempool.recent", json!([1])),
        req("blockchain.transaction.testmempoolaccept", json!([])),
        req("blockchain.transaction.testmempoolaccept", json!(["00"])),
        req("blockchain.transaction.testmempoolaccept", json!([["zz"]])),
        req("blockchain.transaction.testmempoolaccept", json!([[]])),
        req("blockchain.transaction.testmempoolaccept", json!([["00"]])),
        req("blockchain.transaction.testmempoolaccept", json!([5])),
        req("blockchain.relayfee", json!([])),
        req("blockchain.scripthash.subscribe", json!([sh])),
        req("blockchain.outpoint.get_status", json!(["zz", 0, ""])),
        req("blockchain.outpoint.get_status", json!([txid, -1, ""])),
        req("blockchain.outpoint.get_status", json!([txid, 0, "xyz"])),
        req("blockchain.outpoint.get_status", json!([txid, 0])),
        req("blockchain.outpoint.get_status", json!([txid, "1", ""])),
        req("blockchain.outpoint.get_status", json!([txid, 0, "", 1])),
        req("blockchain.outpoint.subscribe", json!([txid, 0, 5])),
        req("blockchain.outpoint.subscribe", json!([txid, 0, ""])),
        req("blockchain.outpoint.unsubscribe", json!([txid, 0])),
        req("blockchain.outpoint.unsubscribe", json!([txid, 0])),
        req("blockchain.outpoint.unsubscribe", json!(["zz", 0])),
        req("blockchain.outpoint.unsubscribe", json!([txid])),
    ];
    for method in SCRIPTPUBKEY_METHODS
        .iter()
        .chain(&["blockchain.scriptpubkey.unsubscribe"])
    {
        for params in [
            json!(["zz"]),
            json!([""]),
            json!(["abc"]),
            json!([5]),
            json!([null]),
            json!([]),
            json!([&spk, 1]),
            json!({"spk": &spk}),
            json!({"scripthash": sh}),
        ] {
            out.push(req(method, params));
        }
    }
    out
}

fn scripthash_requests<'a>(hashes: impl Iterator<Item = &'a String>) -> Vec<Req> {
    hashes
        .flat_map(|sh| SCRIPTHASH_METHODS.map(|m| req(m, json!([sh]))))
        .collect()
}

/// Malformed script hashes and wrong arguments, for every script hash method.
fn bad_scripthash_requests(sh: &str) -> Vec<Req> {
    let mut out = Vec::new();
    let methods = SCRIPTHASH_METHODS
        .iter()
        .chain(&["blockchain.scripthash.unsubscribe"]);
    for method in methods {
        for params in [
            json!(["zz"]),
            json!([""]),
            json!([5]),
            json!([null]),
            json!([&sh[1..]]),
            json!([format!("{sh}00")]),
            json!([sh.to_uppercase()]),
            json!([format!("{}g", &sh[1..])]),
            json!([]),
            json!([sh, 1]),
            json!({"scripthash": sh}),
            json!({"foo": 1}),
            json!("notalist"),
        ] {
            out.push(req(method, params));
        }
    }
    out
}

/// server.*, fees, mempool and unknown methods, with good and bad arguments.
fn general_requests(tip: u32) -> Vec<Req> {
    let mut out = vec![
        req("server.features", json!([])),
        req("server.banner", json!([])),
        req("server.donation_address", json!([])),
        req("server.peers.subscribe", json!([])),
        req("server.ping", json!([])),
        req("server.ping", json!([1])),
        req("server.add_peer", json!([{"hosts": {}}])),
        req("server.add_peer", json!([])),
        req("server.features", json!([1])),
        req("server.banner", json!({"x": 1})),
        req("server.version", json!(["ferrumx-differential", "1.4"])),
        req("blockchain.headers.subscribe", json!([])),
        req("blockchain.headers.subscribe", json!([1])),
        req("blockchain.relayfee", json!([])),
        req("mempool.get_info", json!([])),
        req("mempool.get_fee_histogram", json!([])),
        req("mempool.get_fee_histogram", json!([1])),
        req("no.such.method", json!([])),
        req("", json!([])),
        req(
            "blockchain.scripthash.unsubscribe",
            json!(["00".repeat(32)]),
        ),
        req("blockchain.transaction.broadcast", json!(["00"])),
        req("blockchain.transaction.broadcast", json!(["zz"])),
        req("blockchain.transaction.broadcast", json!([""])),
        req("blockchain.transaction.broadcast", json!([5])),
        req("blockchain.transaction.broadcast", json!([])),
        req(
            "blockchain.transaction.broadcast",
            json!(["0200000000010000000000"]),
        ),
        req("blockchain.transaction.broadcast_package", json!([["00"]])),
        req("blockchain.transaction.broadcast_package", json!([[]])),
        req("blockchain.transaction.broadcast_package", json!(["00"])),
        req(
            "blockchain.transaction.broadcast_package",
            json!([["00"], true]),
        ),
        req("blockchain.transaction.broadcast_package", json!([["zz"]])),
        req("blockchain.transaction.get", json!([])),
        req("blockchain.transaction.get", json!(["zz"])),
        req("blockchain.transaction.get", json!(["00".repeat(32)])),
        req("blockchain.transaction.get", json!([5])),
        req(
            "blockchain.transaction.get_merkle",
            json!(["00".repeat(32), 1]),
        ),
        req("blockchain.transaction.get_merkle", json!(["zz", 1])),
        req(
            "blockchain.transaction.get_merkle",
            json!(["00".repeat(32)]),
        ),
        req("blockchain.transaction.id_from_pos", json!([tip + 1, 0])),
        req(
            "blockchain.transaction.id_from_pos",
            json!([tip + 1, 0, true]),
        ),
        req("blockchain.transaction.id_from_pos", json!([-1, 0])),
        req("blockchain.transaction.id_from_pos", json!([1, -1])),
        req("blockchain.transaction.id_from_pos", json!([1])),
        req("blockchain.transaction.id_from_pos", json!(["1", "0"])),
        req("blockchain.transaction.id_from_pos", json!([1, 0, "x"])),
        req("blockchain.transaction.id_from_pos", json!([1, 0, 1])),
        req("blockchain.transaction.id_from_pos", json!([1, 10_000])),
        req(
            "blockchain.transaction.id_from_pos",
            json!([1, 10_000, true]),
        ),
    ];
    for params in [
        json!([2]),
        json!([1]),
        json!([0]),
        json!([25]),
        json!([1009]),
        json!([2, "ECONOMICAL"]),
        json!([2, "conservative"]),
        json!([2, "unset"]),
        json!([2, "bogus"]),
        json!([2, 5]),
        json!([2, null]),
        json!([-1]),
        json!(["x"]),
        json!(["6"]),
        json!([1.5]),
        json!([]),
        json!([1, 2, 3]),
        json!({"number": 2}),
        json!({"number": 2, "mode": "economical"}),
    ] {
        out.push(req("blockchain.estimatefee", params));
    }
    out
}

/// Every header alone and with a checkpoint at the tip, ranges of headers, and bad
/// arguments.
fn header_requests(tip: u32) -> Vec<Req> {
    let mut out = Vec::new();
    for h in 0..=tip {
        out.push(req("blockchain.block.header", json!([h])));
        out.push(req("blockchain.block.header", json!([h, tip])));
    }
    for params in [
        json!([0, 0]),
        json!([5, 5]),
        json!([5, 8]),
        json!([tip, tip]),
        json!([tip + 1]),
        json!([tip + 1, tip + 1]),
        json!([5, 3]),
        json!([5, tip + 1]),
        json!([-1]),
        json!([5, -1]),
        json!(["5"]),
        json!(["5", "8"]),
        json!([1.5]),
        json!(["abc"]),
        json!([null]),
        json!([]),
        json!([1, 2, 3]),
        json!({"height": 1}),
        json!({"height": 1, "cp_height": tip}),
        json!({"foo": 1}),
        json!([u64::MAX]),
    ] {
        out.push(req("blockchain.block.header", params));
    }
    for params in [
        json!([0, 0]),
        json!([0, 1]),
        json!([0, 10]),
        json!([0, 2016]),
        json!([0, 3000]),
        json!([1, 2016]),
        json!([tip - 3, 10]),
        json!([tip, 1]),
        json!([tip + 1, 5]),
        json!([tip + 100, 5]),
        json!([0, 10, tip]),
        json!([5, 10, tip]),
        json!([tip - 3, 10, tip]),
        json!([5, 0, tip]),
        json!([5, 10, 8]),
        json!([5, 10, 14]),
        json!([5, 10, tip + 1]),
        json!([-1, 5]),
        json!([0, -1]),
        json!([0, 5, -1]),
        json!(["0", "5"]),
        json!([0]),
        json!([]),
        json!([0, 1, 2, 3]),
        json!({"start_height": 0, "count": 3}),
    ] {
        out.push(req("blockchain.block.headers", params));
    }
    out
}

/// For every transaction: the raw and verbose transaction, its merkle proof and its
/// position lookups; for some, the wrong height and argument errors.
fn transaction_requests(txs: &[ChainTx], tip: u32) -> Vec<Req> {
    let mut out = Vec::new();
    for (i, tx) in txs.iter().enumerate() {
        out.push(req("blockchain.transaction.get", json!([tx.txid])));
        out.push(req("blockchain.transaction.get", json!([tx.txid, true])));
        out.push(req(
            "blockchain.transaction.get_merkle",
            json!([tx.txid, tx.height]),
        ));
        out.push(req(
            "blockchain.transaction.id_from_pos",
            json!([tx.height, tx.pos]),
        ));
        out.push(req(
            "blockchain.transaction.id_from_pos",
            json!([tx.height, tx.pos, true]),
        ));
        if i % 97 == 1 {
            for params in [
                json!([tx.txid, false]),
                json!([tx.txid, 1]),
                json!([tx.txid, 0]),
                json!([tx.txid, "yes"]),
                json!([tx.txid.to_uppercase()]),
                json!([tx.txid, true, 1]),
                json!({"tx_hash": tx.txid, "verbose": true}),
            ] {
                out.push(req("blockchain.transaction.get", params));
            }
            for params in [
                json!([tx.txid, (tx.height + 1).min(tip)]),
                json!([tx.txid, tip + 1]),
                json!([tx.txid, -1]),
                json!([tx.txid, tx.height.to_string()]),
                json!([&tx.txid[1..], tx.height]),
                json!({"tx_hash": tx.txid, "height": tx.height}),
            ] {
                out.push(req("blockchain.transaction.get_merkle", params));
            }
        }
    }
    out
}

/// Malformed lines and batches, sent raw inside a negotiated session.
fn raw_cases(good_sh: &str, tip: u32) -> Vec<(&'static str, Vec<u8>)> {
    let ping =
        |id: Value| json!({"jsonrpc": "2.0", "id": id, "method": "server.ping", "params": []});
    let balance = |id: u32, sh: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "blockchain.scripthash.get_balance",
               "params": [sh]})
    };
    let mixed = json!([
        balance(1, good_sh),
        balance(2, "zz"),
        {"jsonrpc": "2.0", "id": 3, "method": "no.such.method", "params": []},
        5,
        {"jsonrpc": "2.0", "method": "server.ping", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "blockchain.block.header", "params": [tip + 1]},
        {"jsonrpc": "2.0", "id": 5, "method": "server.version", "params": ["x", "1.4"]},
        {"jsonrpc": "2.0", "id": 6, "method": "blockchain.block.header", "params": [1]},
        {"jsonrpc": "2.0", "id": [7], "method": "server.ping", "params": []},
    ]);
    let text = |v: Value| v.to_string().into_bytes();
    vec![
        ("invalid JSON", b"{nope".to_vec()),
        ("invalid UTF-8", b"\xff\xfe\"x\"".to_vec()),
        ("empty line", Vec::new()),
        ("blank line", b"   ".to_vec()),
        ("empty batch", b"[]".to_vec()),
        ("number", b"5".to_vec()),
        ("string", b"\"server.ping\"".to_vec()),
        ("null", b"null".to_vec()),
        (
            "id is a list",
            text(json!({"jsonrpc": "2.0", "id": [1], "method": "server.ping"})),
        ),
        (
            "id is an object",
            text(json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "server.ping"})),
        ),
        ("id is a float", text(ping(json!(1.5)))),
        ("id is a string", text(ping(json!("abc")))),
        ("id is negative", text(ping(json!(-7)))),
        ("id is null", text(ping(Value::Null))),
        ("id is true", text(ping(json!(true)))),
        (
            "method is a number",
            text(json!({"jsonrpc": "2.0", "id": 1, "method": 7})),
        ),
        ("no method", text(json!({"jsonrpc": "2.0", "id": 1}))),
        (
            "jsonrpc 1.0",
            text(json!({"jsonrpc": "1.0", "id": 1, "method": "server.ping", "params": []})),
        ),
        (
            "no jsonrpc member",
            text(json!({"id": 1, "method": "server.ping", "params": []})),
        ),
        (
            "params is a string",
            text(json!({"jsonrpc": "2.0", "id": 1, "method": "server.ping", "params": "x"})),
        ),
        (
            "params is a number",
            text(
                json!({"jsonrpc": "2.0", "id": 1, "method": "blockchain.block.header",
                        "params": 5}),
            ),
        ),
        (
            "no params",
            text(json!({"jsonrpc": "2.0", "id": 1, "method": "blockchain.headers.subscribe"})),
        ),
        (
            "notification",
            text(json!({"jsonrpc": "2.0", "method": "server.ping", "params": []})),
        ),
        (
            "unknown notification",
            text(json!({"jsonrpc": "2.0", "method": "no.such.method", "params": []})),
        ),
        (
            "extra member",
            text(json!({"jsonrpc": "2.0", "id": 1, "method": "server.ping", "params": [], "x": 1})),
        ),
        ("batch mixing good and bad", text(mixed)),
        (
            "batch of notifications",
            text(json!([
                {"jsonrpc": "2.0", "method": "server.ping", "params": []},
                {"jsonrpc": "2.0", "method": "server.ping", "params": []}
            ])),
        ),
        ("batch of invalid items", b"[1, 2]".to_vec()),
        ("nested batch", text(json!([[ping(json!(1))]]))),
        (
            "second server.version",
            text(
                json!({"jsonrpc": "2.0", "id": 1, "method": "server.version",
                        "params": ["x", "1.4"]}),
            ),
        ),
        (
            "two requests on one line",
            format!("{}{}", ping(json!(1)), ping(json!(2))).into_bytes(),
        ),
    ]
}

/// First messages of a session: server.version variants, and anything else.
fn first_message_cases() -> Vec<String> {
    let version = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": params}).to_string()
    };
    let name = "ferrumx-differential";
    vec![
        version(json!([name, "1.4"])),
        version(json!([name, "1.6"])),
        version(json!([name, "1.4.2"])),
        version(json!([name, "1.4.0"])),
        version(json!([name, ["1.4", "1.6"]])),
        version(json!([name, ["1.4", "1.7"]])),
        version(json!([name, ["1.1", "1.4.1"]])),
        version(json!([name, ["1.5", "1.3"]])),
        version(json!([name, "1.7"])),
        version(json!([name, "1.3"])),
        version(json!([name, "junk"])),
        version(json!([name, 1.4])),
        version(json!([name, ["1.4"]])),
        version(json!([])),
        version(json!([name])),
        version(json!([name, "1.4", "extra"])),
        version(json!({"client_name": name, "protocol_version": "1.6"})),
        version(json!({"client_name": name, "foo": 1})),
        version(json!([5, "1.4"])),
        version(json!([null, "1.6"])),
        version(json!("x")),
        json!({"jsonrpc": "2.0", "id": 1, "method": "server.ping", "params": []}).to_string(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "no.such.method", "params": []}).to_string(),
        json!({"jsonrpc": "2.0", "method": "server.version", "params": [name, "1.4"]}).to_string(),
        json!({"id": 1, "method": "server.version", "params": [name, "1.4"]}).to_string(),
        json!({"jsonrpc": "1.0", "id": 1, "method": "server.version", "params": [name, "1.4"]})
            .to_string(),
        json!([{"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": [name, "1.4"]}])
            .to_string(),
        "{nope".to_string(),
    ]
}

// ---------------------------------------------------------------------------------------
// The test.

#[test]
fn ferrumx_answers_like_electrumx() {
    // Fail before the long set-up if ElectrumX cannot be had.
    electrumx::ensure_installed();
    let mut node = Litecoind::start();
    let info = build_mixed_chain(&node, &ChainSpec::default());
    eprintln!(
        "chain: {} blocks, {} txs, built in {:?}",
        info.tip, info.transactions, info.elapsed
    );
    enable_txindex(&mut node);

    let banner_dir = tempfile::tempdir().expect("tempdir");
    let banner = banner_dir.path().join("banner.txt");
    std::fs::write(&banner, BANNER).expect("write banner");
    let banner = banner.display().to_string();
    // No cost limits: the test asks far more than any client would (ElectrumxProcess
    // sets the same).
    let env = [
        ("COST_SOFT_LIMIT", "0"),
        ("COST_HARD_LIMIT", "0"),
        ("DAEMON_POLL_INTERVAL_BLOCKS", "100"),
        ("DAEMON_POLL_INTERVAL_MEMPOOL", "100"),
        ("REPORT_SERVICES", REPORT_SERVICES),
        ("DONATION_ADDRESS", info.heavy.as_str()),
        ("BANNER_FILE", banner.as_str()),
    ];
    let fx_dir = tempfile::tempdir().expect("tempdir");
    let mut fx = FerrumxProcess::start(binary(), &node.daemon_url(), fx_dir.path(), &env);
    let mut ex = ElectrumxProcess::start(&node.daemon_url(), &env);
    fx.wait_ready(READY);
    ex.wait_ready(READY);
    let mut servers = Servers {
        fx: fx.tcp_addr(),
        ex: ex.tcp_addr(),
    };
    assert!(
        reaches_tip(servers.fx, &node),
        "ferrumx did not reach the daemon's tip; log:\n{}",
        fx.log_tail(30)
    );
    assert!(
        reaches_tip(servers.ex, &node),
        "ElectrumX did not reach the daemon's tip; log:\n{}",
        ex.log_tail(30)
    );

    let names = Names {
        ferrumx: software(servers.fx),
        electrumx: software(servers.ex),
    };
    eprintln!("comparing {} with {}", names.ferrumx, names.electrumx);
    let mut report = Report::default();
    let truth = Truth::from_daemon(&node);
    let tip = node.height();
    let txs = chain_transactions(&node);
    let unused = scripthash("00");
    let mut hashes: Vec<String> = truth.scripthashes().cloned().collect();
    hashes.push(unused.clone());
    let heavy_sh = scripthash(&info.address(&info.heavy).expect("heavy").script);
    eprintln!(
        "{} script hashes, {} transactions, tip {tip}",
        hashes.len(),
        txs.len()
    );

    // First messages of a session.
    for line in first_message_cases() {
        let fx = first_message(servers.fx, &line);
        let ex = first_message(servers.ex, &line);
        let method = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["method"].as_str().map(str::to_string))
            .unwrap_or_else(|| "first message".to_string());
        report.compare(
            &names,
            Comparison {
                protocol: "-",
                method: if method == "server.version" {
                    method
                } else {
                    format!("first message: {method}")
                },
                request: line,
                ferrumx: fx,
                electrumx: ex,
            },
        );
    }

    // The confirmed chain, empty mempool.
    for protocol in ["1.4", "1.6", "1.7"] {
        eprintln!("protocol {protocol}: general, headers, script hashes");
        let mut pair = Pair::new(&servers, protocol);
        pair.singly(&mut report, &names, &general_requests(tip));
        pair.batched(&mut report, &names, &header_requests(tip));
        pair.batched(&mut report, &names, &scripthash_requests(hashes.iter()));
        pair.batched(
            &mut report,
            &names,
            &hashes
                .iter()
                .take(20)
                .map(|sh| req("blockchain.scripthash.unsubscribe", json!([sh])))
                .collect::<Vec<_>>(),
        );
        pair.singly(&mut report, &names, &bad_scripthash_requests(&heavy_sh));
        for (label, bytes) in raw_cases(&heavy_sh, tip) {
            pair.raw(&mut report, &names, label, &bytes);
        }
    }
    eprintln!("protocol 1.7: scriptPubKeys, outpoints, pings");
    let mut pair = Pair::new(&servers, "1.7");
    pair.singly(&mut report, &names, &v17_requests(&heavy_sh, &truth));
    pair.batched(&mut report, &names, &spk_requests(&truth, hashes.iter()));
    pair.batched(&mut report, &names, &outpoint_requests(&txs));
    eprintln!("transactions");
    let mut pair = Pair::new(&servers, "1.6");
    pair.batched(&mut report, &names, &transaction_requests(&txs, tip));

    // A mempool.
    let mempool = fill_mempool(&node, &info);
    eprintln!("mempool: {} transactions", mempool.txids.len());
    for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
        if !sees_mempool(addr, &mempool.probes) {
            report.note(format!(
                "{name} did not list every mempool transaction within {SYNC_TIMEOUT:?}"
            ));
        }
    }
    let mut with_mempool = hashes.clone();
    with_mempool.extend(
        mempool
            .touched
            .iter()
            .filter(|sh| truth.script_of(sh).is_none())
            .cloned(),
    );
    for protocol in ["1.4", "1.6"] {
        eprintln!("protocol {protocol}: script hashes with a mempool");
        let mut pair = Pair::new(&servers, protocol);
        pair.batched(
            &mut report,
            &names,
            &scripthash_requests(with_mempool.iter()),
        );
    }
    eprintln!("protocol 1.7: scriptPubKeys, outpoints and testmempoolaccept with a mempool");
    let mut pair = Pair::new(&servers, "1.7");
    pair.batched(
        &mut report,
        &names,
        &spk_requests(&truth, with_mempool.iter()),
    );
    let (subscribe, unsubscribe) = mempool_outpoint_requests(&mempool.txids);
    pair.batched(&mut report, &names, &subscribe);
    pair.batched(&mut report, &names, &unsubscribe);
    pair.singly(
        &mut report,
        &names,
        &testmempoolaccept_requests(&node, &mempool.txids),
    );
    let mut pair = Pair::new(&servers, "1.6");
    let mut mempool_requests = Vec::new();
    for txid in &mempool.txids {
        mempool_requests.push(req("blockchain.transaction.get", json!([txid])));
        mempool_requests.push(req("blockchain.transaction.get", json!([txid, true])));
        mempool_requests.push(req("blockchain.transaction.get_merkle", json!([txid, tip])));
        mempool_requests.push(req("blockchain.transaction.get_merkle", json!([txid, 0])));
    }
    pair.singly(&mut report, &names, &mempool_requests);

    // Both servers compute their fee histogram when they first sync the mempool and then
    // only every 500 s on Litecoin: restarted on their indexes, both show this mempool's.
    fx.stop();
    fx = FerrumxProcess::start(binary(), &node.daemon_url(), fx_dir.path(), &env);
    ex.restart();
    fx.wait_ready(READY);
    ex.wait_ready(READY);
    servers = Servers {
        fx: fx.tcp_addr(),
        ex: ex.tcp_addr(),
    };
    for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
        if !reaches_tip(addr, &node) || !sees_mempool(addr, &mempool.probes) {
            report.note(format!(
                "{name} did not come back with the tip and the mempool"
            ));
        }
    }
    let mut pair = Pair::new(&servers, "1.6");
    compare_fee_histogram(&mut pair, &mut report, &names);
    pair.singly(
        &mut report,
        &names,
        &[
            req("mempool.get_info", json!([])),
            req("blockchain.estimatefee", json!([2])),
        ],
    );
    let broadcast = compare_broadcasts(&node, &info, &mut pair, &mut report, &names);
    for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
        if !sees_mempool(addr, std::slice::from_ref(&broadcast)) {
            report.note(format!("{name} did not list the broadcast transaction"));
        }
    }

    // A block: notifications to subscribers, then the new state.
    compare_notifications(&node, &servers, &mempool, &truth, &mut report, &names);
    for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
        if !reaches_tip(addr, &node) {
            report.note(format!("{name} did not follow the new block"));
        }
    }
    let mut pair = Pair::new(&servers, "1.6");
    pair.batched(
        &mut report,
        &names,
        &scripthash_requests(mempool.touched.iter()),
    );
    pair.singly(
        &mut report,
        &names,
        &[
            req("blockchain.headers.subscribe", json!([])),
            req("mempool.get_fee_histogram", json!([])),
        ],
    );
    compare_recent(&node, &info, &servers, &mut report, &names);

    drop(fx);
    drop(ex);
    report.finish();
}

/// `server.version`'s software string.
fn software(addr: SocketAddr) -> String {
    let mut conn = Conn::new(addr, "1.6");
    let answer = conn.connect().expect("server.version");
    as_str(&answer[0])
}

/// Both get a few seconds to show a histogram and agree before the answers are compared.
fn compare_fee_histogram(pair: &mut Pair, report: &mut Report, names: &Names) {
    let r = req("mempool.get_fee_histogram", json!([]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fx = pair.fx.call(&r);
        let ex = pair.ex.call(&r);
        let shown = ex["result"].as_array().is_some_and(|a| !a.is_empty());
        if (fx == ex && shown) || Instant::now() > deadline {
            pair.record(report, names, &r, fx, ex);
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Broadcasts through both: a new transaction (the second server relays one the daemon
/// already has), a double spend of it, and a transaction with a missing input. Returns a
/// probe for the new transaction (see `sees_mempool`).
fn compare_broadcasts(
    node: &Litecoind,
    info: &ChainInfo,
    pair: &mut Pair,
    report: &mut Report,
    names: &Names,
) -> (String, String) {
    let unspent = node.call(
        "listunspent",
        json!([1, 9_999_999, [], true, {"minimumAmount": 1}]),
    );
    let coin = &unspent[0];
    let amount = coin["amount"].as_f64().expect("amount");
    let spend = |to: &str, fee: f64| {
        let raw = node.call(
            "createrawtransaction",
            json!([[{"txid": coin["txid"], "vout": coin["vout"]}], {to: format!("{:.8}", amount - fee)}]),
        );
        as_str(&node.call("signrawtransactionwithwallet", json!([raw]))["hex"])
    };
    let first = spend(&info.reused[1], 0.001);
    let double = spend(&info.reused[2], 0.002);
    let orphan = {
        let raw = node.call(
            "createrawtransaction",
            json!([[{"txid": "11".repeat(32), "vout": 0}], {info.reused[1].clone(): "1.0"}]),
        );
        as_str(&raw)
    };
    let method = "blockchain.transaction.broadcast";
    for raw in [&first, &first, &double, &orphan] {
        let r = req(method, json!([raw]));
        let fx = pair.fx.call(&r);
        let ex = pair.ex.call(&r);
        pair.record(report, names, &r, fx, ex);
    }
    let txid = as_str(&node.call("decoderawtransaction", json!([first]))["txid"]);
    let paid = &info
        .address(&info.reused[1])
        .expect("reused address")
        .script;
    (scripthash(paid), txid)
}

/// Subscribes on both to the headers and to script hashes the mempool touches, mines a
/// block that confirms the mempool, and compares what each server then notifies: the new
/// tip, which script hashes, and each one's latest status.
fn compare_notifications(
    node: &Litecoind,
    servers: &Servers,
    mempool: &Mempool,
    truth: &Truth,
    report: &mut Report,
    names: &Names,
) {
    // Protocol 1.6 subscribes by script hash; 1.7 by scriptPubKey (those the chain shows),
    // and its notifications say `blockchain.scriptpubkey.subscribe`.
    let subscribed: Vec<String> = mempool.touched.iter().take(100).cloned().collect();
    let mut pairs = Vec::new();
    for protocol in ["1.6", "1.7"] {
        let (method, hashes): (&str, Vec<String>) = if protocol == "1.6" {
            ("blockchain.scripthash.subscribe", subscribed.clone())
        } else {
            let known = subscribed
                .iter()
                .filter(|sh| truth.script_of(sh).is_some())
                .cloned()
                .collect();
            ("blockchain.scriptpubkey.subscribe", known)
        };
        let mut pair = Pair::new(servers, protocol);
        let mut requests = vec![req("blockchain.headers.subscribe", json!([]))];
        requests.extend(hashes.iter().map(|sh| {
            let param = if protocol == "1.6" {
                sh.as_str()
            } else {
                truth.script_of(sh).unwrap_or_default()
            };
            req(method, json!([param]))
        }));
        pair.batched(report, names, &requests);
        pair.fx.notifications.clear();
        pair.ex.notifications.clear();
        pairs.push((pair, method, hashes));
    }
    node.mine(1);
    let height = node.height();
    for (pair, method, hashes) in &mut pairs {
        let enough = |notes: &[Value]| {
            let tip_seen = notes.iter().any(|n| {
                n["method"] == json!("blockchain.headers.subscribe")
                    && n["params"][0]["height"] == json!(height)
            });
            let notified: BTreeSet<&str> = notes
                .iter()
                .filter(|n| n["method"] == json!(method))
                .filter_map(|n| n["params"][0].as_str())
                .collect();
            tip_seen && hashes.iter().all(|sh| notified.contains(sh.as_str()))
        };
        for conn in [&mut pair.fx, &mut pair.ex] {
            conn.collect_notifications(SYNC_TIMEOUT, enough);
            // Late duplicates, if any, should be seen too.
            conn.collect_notifications(Duration::from_secs(1), |_| false);
        }
        // Protocol 1.7's noise pings are random on both sides: their padding is compared,
        // not their number.
        let summarize = |notes: &[Value]| {
            let mut latest: BTreeMap<String, Value> = BTreeMap::new();
            for n in notes {
                let key = match n["method"].as_str() {
                    Some(m) if m == *method => {
                        format!("script {}", n["params"][0].as_str().unwrap_or("?"))
                    }
                    Some(method) => method.to_string(),
                    None => format!("not a notification: {n}"),
                };
                latest.insert(key, n["params"].clone());
            }
            if let Some(ping) = latest.remove("server.ping")
                && ping != json!(["0".repeat(128)])
            {
                latest.insert("server.ping padding".into(), ping);
            }
            latest
        };
        let fx = summarize(&pair.fx.notifications);
        let ex = summarize(&pair.ex.notifications);
        let keys: BTreeSet<&String> = fx.keys().chain(ex.keys()).collect();
        for key in keys {
            let missing = json!({"missing": "no notification"});
            report.compare(
                names,
                Comparison {
                    protocol: pair.protocol,
                    method: "notification".to_string(),
                    request: format!("{method}: {key}"),
                    ferrumx: fx.get(key).cloned().unwrap_or_else(|| missing.clone()),
                    electrumx: ex.get(key).cloned().unwrap_or(missing),
                },
            );
        }
    }
}

/// `mempool.recent` once both servers saw transactions arrive one at a time (the order
/// of transactions that arrive in one refresh is each server's own), from an empty
/// mempool.
fn compare_recent(
    node: &Litecoind,
    info: &ChainInfo,
    servers: &Servers,
    report: &mut Report,
    names: &Names,
) {
    node.mine(1);
    let heavy = info.address(&info.heavy).expect("heavy").script.clone();
    let probe = scripthash(&heavy);
    let mut pair = Pair::new(servers, "1.7");
    let recent = req("mempool.recent", json!([]));
    let empty = |addr: SocketAddr| {
        let mut conn = Conn::new(addr, "1.7");
        let deadline = Instant::now() + SYNC_TIMEOUT;
        while Instant::now() < deadline {
            if conn.call(&recent)["result"] == json!([]) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    };
    for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
        if !empty(addr) {
            report.note(format!("{name}'s mempool did not empty after a block"));
        }
    }
    pair.singly(report, names, std::slice::from_ref(&recent));
    for amount in ["0.1", "0.2", "0.3"] {
        let txid = as_str(&node.call("sendtoaddress", json!([info.heavy, amount])));
        for (name, addr) in [("ferrumx", servers.fx), ("ElectrumX", servers.ex)] {
            if !sees_mempool(addr, &[(probe.clone(), txid.clone())]) {
                report.note(format!("{name} did not list {txid}"));
            }
        }
    }
    pair.singly(report, names, &[recent]);
}
