//! The notification benchmark's load generator. It opens `--sessions` connections to an
//! Electrum server, each negotiating `server.version` and subscribing to
//! `blockchain.headers.subscribe` and to its own script hashes (one line of
//! `--scripthashes` per session). Then, round by round, it mines a block through the
//! daemon's `generateblock` RPC, holding the round's prepared transactions (which pay
//! one of the subscribed scripts of every session), and records when each session has
//! received both its header notification for the new height and the notification of
//! its touched script. Latency runs from `generateblock` returning (the daemon's tip has
//! then moved) to that moment, so it includes the server's polling of the daemon; the
//! spread after the first session was told ("fan-out") is reported beside it.
//!
//! One thread (a current-thread tokio runtime, one task per connection) and replies are
//! only scanned, so the generator takes as little CPU from the server as it can; its own
//! CPU time is part of the report. With `--server-pid`, the server's VmRSS and VmHWM are
//! read from /proc before connecting, once every session is subscribed, and at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
#[command(version, about = "Electrum block-notification benchmark")]
struct Args {
    /// The server, as tcp://HOST:PORT or HOST:PORT.
    #[arg(long)]
    server: String,
    /// Sessions (connections) to open.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// One line per session: its script hashes (64 hex digits), separated by spaces.
    #[arg(long)]
    scripthashes: PathBuf,
    /// JSON list of rounds, each `{"script": k, "txs": [raw tx hex, ...]}`: the block of
    /// round r holds `txs`, which pay script number k of every session.
    #[arg(long)]
    rounds: PathBuf,
    /// The daemon's RPC address, HOST:PORT.
    #[arg(long)]
    rpc: String,
    /// The daemon's RPC credentials, USER:PASSWORD.
    #[arg(long)]
    rpc_auth: String,
    /// Output (address or descriptor) of the mined blocks' coinbases.
    #[arg(long)]
    coinbase: String,
    /// The server's process id, for its memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Sessions connecting and subscribing at the same time.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Seconds allowed for every session to connect and subscribe.
    #[arg(long, default_value_t = 900)]
    setup_timeout: u64,
    /// Seconds a round may take before the missing sessions are counted as missed.
    #[arg(long, default_value_t = 120)]
    round_timeout: u64,
    /// Pause before each round (and after subscribing), so the server is idle when a
    /// block arrives.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// Mempool rounds: each round's transactions are sent with `sendrawtransaction`
    /// (no block is mined), and a session is done when its touched script is notified.
    /// Latency runs from the daemon accepting the transaction that pays the session.
    #[arg(long)]
    mempool: bool,
    /// With --mempool: bind a ZMQ publisher here (as bitcoind binds
    /// `-zmqpubhashtx`) and publish `hashtx` for each transaction the daemon accepted.
    #[arg(long)]
    zmq_hashtx: Option<String>,
    /// Pause after subscribing, before the first round (default: --settle-ms); long
    /// enough, with --zmq-hashtx, for the server's ZMQ subscription to connect.
    #[arg(long)]
    first_settle_ms: Option<u64>,
    /// Protocol version to negotiate.
    #[arg(long, default_value = "1.4")]
    protocol: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A ZMQ publisher like bitcoind's: multipart [topic, hash in RPC byte order, sequence].
struct HashTxPublisher {
    socket: zeromq::PubSocket,
    sequence: u32,
}

impl HashTxPublisher {
    async fn bind(endpoint: &str) -> Result<HashTxPublisher, String> {
        use zeromq::Socket;
        let mut socket = zeromq::PubSocket::new();
        socket
            .bind(endpoint)
            .await
            .map_err(|e| format!("binding the ZMQ publisher at {endpoint}: {e}"))?;
        Ok(HashTxPublisher {
            socket,
            sequence: 0,
        })
    }

    async fn publish(&mut self, txid: &str) -> Result<(), String> {
        use zeromq::SocketSend;
        let hash = (0..txid.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(txid.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("not a txid: {txid}"))?;
        let frames: Vec<bytes::Bytes> = vec![
            b"hashtx".to_vec().into(),
            hash.into(),
            self.sequence.to_le_bytes().to_vec().into(),
        ];
        self.sequence = self.sequence.wrapping_add(1);
        let message = zeromq::ZmqMessage::try_from(frames).map_err(|e| e.to_string())?;
        self.socket
            .send(message)
            .await
            .map_err(|e| format!("publishing hashtx: {e}"))
    }
}

struct Round {
    script: usize,
    txs: Vec<String>,
}

/// What the session tasks and the round loop share. Times are nanoseconds since
/// `epoch`, plus one, so that 0 means "not yet".
struct Shared {
    epoch: Instant,
    sessions: usize,
    rounds: usize,
    /// Index of the round whose block is being mined (`usize::MAX` before the first).
    current: AtomicUsize,
    /// The script number the current round touches.
    current_script: AtomicUsize,
    /// Per round × session: when the header notification arrived.
    header_at: Vec<AtomicU64>,
    /// Per round × session: when the touched script's notification arrived.
    script_at: Vec<AtomicU64>,
    /// Per round: sessions that have both notifications.
    complete: Vec<AtomicUsize>,
    /// Tip height when the sessions subscribed (all must agree).
    base_height: AtomicU64,
    subscribed: AtomicUsize,
    failed: AtomicUsize,
    /// Sessions whose connection ended after subscribing.
    lost: AtomicUsize,
    /// Notifications that matched no round (wrong height or script).
    unexpected: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(error);
    }

    /// Records a notification for `round` (header or script) and counts the session
    /// complete once it has both.
    fn record(&self, round: usize, session: usize, header: bool) {
        let slot = round * self.sessions + session;
        let (mine, other) = if header {
            (&self.header_at[slot], &self.script_at[slot])
        } else {
            (&self.script_at[slot], &self.header_at[slot])
        };
        if mine.load(Ordering::SeqCst) != 0 {
            return;
        }
        mine.store(self.now(), Ordering::SeqCst);
        if other.load(Ordering::SeqCst) != 0 {
            self.complete[round].fetch_add(1, Ordering::SeqCst);
        }
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// One connection: newline-delimited JSON-RPC, read with a small buffer (10,000 of them).
struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, String> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (read, writer) = stream.into_split();
        Ok(Conn {
            reader: BufReader::with_capacity(2048, read),
            writer,
            line: String::new(),
        })
    }

    async fn write(&mut self, text: &str) -> Result<(), String> {
        tokio::time::timeout(IO_TIMEOUT, self.writer.write_all(text.as_bytes()))
            .await
            .map_err(|_| "write timed out".to_string())?
            .map_err(|e| format!("write: {e}"))
    }

    /// The next line, unparsed, or None when the server closed the connection.
    async fn read_raw(&mut self, timeout: Duration) -> Result<Option<&str>, String> {
        self.line.clear();
        let n = tokio::time::timeout(timeout, self.reader.read_line(&mut self.line))
            .await
            .map_err(|_| "read timed out".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        Ok((n > 0).then_some(self.line.as_str()))
    }

    /// The next message, or None when the server closed the connection.
    async fn read(&mut self, timeout: Duration) -> Result<Option<Value>, String> {
        self.line.clear();
        let n = tokio::time::timeout(timeout, self.reader.read_line(&mut self.line))
            .await
            .map_err(|_| "read timed out".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&self.line)
            .map(Some)
            .map_err(|e| format!("bad JSON ({e}): {}", shorten(&self.line)))
    }
}

/// A notification, found by scanning its text rather than parsing it: the generator
/// reads 20,000 of them per round on one thread beside the server it measures.
enum Scanned<'a> {
    Header(u64),
    Script(&'a str),
}

fn scan_notification(line: &str) -> Option<Scanned<'_>> {
    if line.contains("\"blockchain.headers.subscribe\"") {
        let at = line.find("\"height\"")? + "\"height\"".len();
        let rest = line[at..].trim_start().strip_prefix(':')?.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        return rest[..digits].parse().ok().map(Scanned::Header);
    }
    if line.contains("\"blockchain.scripthash.subscribe\"") {
        let at = line.find("\"params\"")? + "\"params\"".len();
        let rest = line[at..].trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('[')?.trim_start().strip_prefix('"')?;
        return rest.get(..64).map(Scanned::Script);
    }
    None
}

fn shorten(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

fn request(id: usize, method: &str, params: Value) -> String {
    let mut text =
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    text.push('\n');
    text
}

/// Connects, negotiates and subscribes; returns the open connection.
async fn subscribe(
    addr: &str,
    protocol: &str,
    hashes: &[String],
    shared: &Shared,
) -> Result<Conn, String> {
    let mut conn = Conn::open(addr).await?;
    conn.write(&request(
        0,
        "server.version",
        json!(["ferrumx-notify-bench", protocol]),
    ))
    .await?;
    match conn.read(IO_TIMEOUT).await? {
        Some(reply) if reply.get("id") == Some(&json!(0)) && reply.get("error").is_none() => {}
        Some(other) => {
            return Err(format!(
                "server.version answered {}",
                shorten(&other.to_string())
            ));
        }
        None => return Err("closed after server.version".into()),
    }
    let mut out = request(1, "blockchain.headers.subscribe", json!([]));
    for (i, hash) in hashes.iter().enumerate() {
        out.push_str(&request(
            2 + i,
            "blockchain.scripthash.subscribe",
            json!([hash]),
        ));
    }
    conn.write(&out).await?;
    let mut answered = 0;
    // Bounded: one reply per request, plus at most a few notifications in between.
    for _ in 0..(hashes.len() + 1) * 4 {
        if answered == hashes.len() + 1 {
            break;
        }
        let Some(reply) = conn.read(IO_TIMEOUT).await? else {
            return Err("closed while subscribing".into());
        };
        let Some(id) = reply.get("id").and_then(Value::as_u64) else {
            continue; // a notification
        };
        if let Some(error) = reply.get("error") {
            return Err(format!("request {id} failed: {error}"));
        }
        if id == 1 {
            let height = reply["result"]["height"]
                .as_u64()
                .ok_or_else(|| format!("no height in {}", shorten(&reply.to_string())))?;
            let seen = shared
                .base_height
                .compare_exchange(0, height, Ordering::SeqCst, Ordering::SeqCst)
                .unwrap_or_else(|h| h);
            if seen != 0 && seen != height {
                return Err(format!("tip {height} while others saw {seen}"));
            }
        }
        answered += 1;
    }
    if answered != hashes.len() + 1 {
        return Err("too many messages before the subscription replies".into());
    }
    Ok(conn)
}

/// One session: subscribe (under the connect semaphore), then record notifications
/// until the connection ends or the run's deadline.
async fn session(
    index: usize,
    addr: Arc<String>,
    protocol: Arc<String>,
    hashes: Vec<String>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    deadline: tokio::time::Instant,
) {
    let conn = {
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        subscribe(&addr, &protocol, &hashes, &shared).await
    };
    let mut conn = match conn {
        Ok(conn) => conn,
        Err(e) => return shared.fail(e),
    };
    shared.subscribed.fetch_add(1, Ordering::SeqCst);
    let base = shared.base_height.load(Ordering::SeqCst);
    // Bounded by the deadline (every read is) and by the connection's life.
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let line = match conn.read_raw(left).await {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                if tokio::time::Instant::now() < deadline {
                    shared.lost.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        };
        let round = shared.current.load(Ordering::SeqCst);
        let matched = match scan_notification(line) {
            Some(Scanned::Header(height)) => {
                let r = height.wrapping_sub(base + 1) as usize;
                if r < shared.rounds && r == round {
                    shared.record(r, index, true);
                    true
                } else {
                    false
                }
            }
            Some(Scanned::Script(hash)) => {
                let k = shared.current_script.load(Ordering::SeqCst);
                if round < shared.rounds && hashes.get(k).map(String::as_str) == Some(hash) {
                    shared.record(round, index, false);
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if !matched {
            shared.unexpected.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Minimal base64 (standard alphabet, padded) for the RPC's basic authentication.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One JSON-RPC call to the daemon over a fresh HTTP/1.1 connection.
async fn rpc_call(addr: &str, auth: &str, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "1.0", "id": 0, "method": method, "params": params}).to_string();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        base64(auth.as_bytes()),
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method}: the daemon did not answer"))?
        .map_err(|e| format!("{method}: {e}"))?;
    let text = String::from_utf8_lossy(&reply);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| format!("{method}: no HTTP body"))?;
    let reply: Value =
        serde_json::from_str(body).map_err(|e| format!("{method}: {e}: {}", shorten(body)))?;
    if !reply["error"].is_null() {
        return Err(format!("{method}: {}", reply["error"]));
    }
    Ok(reply["result"].clone())
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: Option<u32>) -> Value {
    let Some(pid) = pid else { return Value::Null };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Value::Null;
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    json!({"rss_kib": field("VmRSS:"), "hwm_kib": field("VmHWM:")})
}

/// CPU seconds (user + system) of a process.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({
        "count": values.len(),
        "p50_ms": percentile(&values, 50.0),
        "p99_ms": percentile(&values, 99.0),
        "max_ms": values.last().copied().unwrap_or(f64::NAN),
    })
}

fn load_inputs(args: &Args) -> Result<(Vec<Vec<String>>, Vec<Round>), String> {
    let text = std::fs::read_to_string(&args.scripthashes)
        .map_err(|e| format!("{}: {e}", args.scripthashes.display()))?;
    let per_session: Vec<Vec<String>> = text
        .lines()
        .take(args.sessions)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    if per_session.len() < args.sessions {
        return Err(format!(
            "{} lists {} sessions, fewer than --sessions {}",
            args.scripthashes.display(),
            per_session.len(),
            args.sessions
        ));
    }
    let valid = |h: &String| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    if per_session
        .iter()
        .any(|s| s.is_empty() || !s.iter().all(valid))
    {
        return Err("every session needs script hashes of 64 hex digits".into());
    }
    let text = std::fs::read_to_string(&args.rounds)
        .map_err(|e| format!("{}: {e}", args.rounds.display()))?;
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("rounds: {e}"))?;
    let mut rounds = Vec::new();
    for item in list {
        let script = item["script"].as_u64().ok_or("rounds: no script number")? as usize;
        let txs: Vec<String> = item["txs"]
            .as_array()
            .ok_or("rounds: no txs")?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        if per_session.iter().any(|s| script >= s.len()) {
            return Err(format!(
                "a round touches script {script}, beyond a session's list"
            ));
        }
        rounds.push(Round { script, txs });
    }
    if rounds.is_empty() {
        return Err("no rounds".into());
    }
    Ok((per_session, rounds))
}

async fn run(args: Args) -> Result<Value, String> {
    let (per_session, rounds) = load_inputs(&args)?;
    let addr = Arc::new(
        args.server
            .strip_prefix("tcp://")
            .unwrap_or(&args.server)
            .to_string(),
    );
    let sessions = args.sessions;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        sessions,
        rounds: rounds.len(),
        current: AtomicUsize::new(usize::MAX),
        current_script: AtomicUsize::new(usize::MAX),
        header_at: (0..sessions * rounds.len())
            .map(|_| AtomicU64::new(0))
            .collect(),
        script_at: (0..sessions * rounds.len())
            .map(|_| AtomicU64::new(0))
            .collect(),
        complete: (0..rounds.len()).map(|_| AtomicUsize::new(0)).collect(),
        base_height: AtomicU64::new(0),
        subscribed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        unexpected: AtomicUsize::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let settle = Duration::from_millis(args.settle_ms);
    let round_limit = Duration::from_secs(args.round_timeout);
    let setup_limit = Duration::from_secs(args.setup_timeout);
    let deadline = tokio::time::Instant::now()
        + setup_limit
        + (settle + round_limit) * (rounds.len() as u32 + 1);

    // Bound first, so that the server's ZMQ subscription (retried with a backoff) finds
    // it while the sessions subscribe.
    let mut publisher = match &args.zmq_hashtx {
        Some(endpoint) => Some(HashTxPublisher::bind(endpoint).await?),
        None => None,
    };
    let memory_idle = memory_kib(args.server_pid);
    let cpu_start = cpu_seconds(args.server_pid);
    let setup_started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let protocol = Arc::new(args.protocol.clone());
    let mut tasks = Vec::with_capacity(sessions);
    for (index, hashes) in per_session.into_iter().enumerate() {
        tasks.push(tokio::spawn(session(
            index,
            Arc::clone(&addr),
            Arc::clone(&protocol),
            hashes,
            Arc::clone(&shared),
            Arc::clone(&gate),
            deadline,
        )));
    }
    // Wait (bounded) until every session has subscribed or failed.
    let setup_deadline = Instant::now() + setup_limit;
    let mut last_report = Instant::now();
    while shared.subscribed.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst) < sessions
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {} subscribed, {} failed after {:.0}s",
                shared.subscribed.load(Ordering::SeqCst),
                shared.failed.load(Ordering::SeqCst),
                setup_started.elapsed().as_secs_f64()
            );
        }
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let subscribed = shared.subscribed.load(Ordering::SeqCst);
    let setup_failed = sessions - subscribed;
    eprintln!("  {subscribed} of {sessions} sessions subscribed in {setup_seconds:.1}s");
    tokio::time::sleep(args.first_settle_ms.map_or(settle, Duration::from_millis)).await;
    let memory_subscribed = memory_kib(args.server_pid);
    let cpu_subscribed = cpu_seconds(args.server_pid);
    let generator_cpu_setup = cpu_seconds(None);
    let base = shared.base_height.load(Ordering::SeqCst);

    let auth = args.rpc_auth.clone();
    let mut round_reports = Vec::new();
    let mut latencies = Vec::new();
    let mut header_latencies = Vec::new();
    let mut fanout = Vec::new();
    for (r, round) in rounds.iter().enumerate() {
        if subscribed == 0 {
            break;
        }
        if args.mempool {
            // No header is owed in a mempool round.
            for s in 0..sessions {
                shared.header_at[r * sessions + s].store(1, Ordering::SeqCst);
            }
        }
        shared.current_script.store(round.script, Ordering::SeqCst);
        shared.current.store(r, Ordering::SeqCst);
        let called = shared.now();
        // When the daemon accepted what pays each session: the block, or the session's
        // own transaction (they pay the sessions in order, an equal share each).
        let mut accepted = Vec::with_capacity(round.txs.len());
        if args.mempool {
            for tx in &round.txs {
                let txid = rpc_call(&args.rpc, &auth, "sendrawtransaction", json!([tx])).await?;
                accepted.push(shared.now());
                if let Some(publisher) = publisher.as_mut() {
                    publisher.publish(txid.as_str().unwrap_or_default()).await?;
                }
            }
        } else {
            let mined = rpc_call(
                &args.rpc,
                &auth,
                "generateblock",
                json!([args.coinbase, round.txs]),
            )
            .await?;
            accepted.push(shared.now());
            let height = rpc_call(&args.rpc, &auth, "getblockcount", json!([])).await?;
            if height.as_u64() != Some(base + 1 + r as u64) {
                return Err(format!(
                    "round {r}: the daemon is at {height}, expected {} (block {mined})",
                    base + 1 + r as u64
                ));
            }
        }
        let per_tx = sessions.div_ceil(accepted.len()).max(1);
        let accepted_for = |s: usize| accepted[(s / per_tx).min(accepted.len() - 1)];
        let t0 = accepted[0];
        let submitted = accepted[accepted.len() - 1];
        let active = subscribed - shared.lost.load(Ordering::SeqCst);
        let round_deadline = Instant::now() + round_limit;
        while shared.complete[r].load(Ordering::SeqCst) < active && Instant::now() < round_deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut first = u64::MAX;
        let mut last = 0;
        let mut missing = 0;
        let mut round_latencies = Vec::with_capacity(sessions);
        let mut round_done = Vec::with_capacity(sessions);
        for s in 0..sessions {
            let slot = r * sessions + s;
            let k = shared.script_at[slot].load(Ordering::SeqCst);
            let h = if args.mempool {
                k
            } else {
                shared.header_at[slot].load(Ordering::SeqCst)
            };
            if h != 0 {
                first = first.min(h);
                if !args.mempool {
                    header_latencies.push(h.saturating_sub(t0) as f64 / 1e6);
                }
            }
            if h == 0 || k == 0 {
                missing += 1;
                continue;
            }
            let done = h.max(k);
            last = last.max(done);
            round_done.push(done);
            round_latencies.push(done.saturating_sub(accepted_for(s)) as f64 / 1e6);
        }
        let missing = missing - setup_failed;
        fanout.extend(
            round_done
                .iter()
                .map(|done| done.saturating_sub(first) as f64 / 1e6),
        );
        let stats = summary(round_latencies.clone());
        latencies.extend(round_latencies);
        let ms = |t: u64| {
            if t == 0 || t == u64::MAX {
                Value::Null
            } else {
                json!(t as f64 / 1e6 - t0 as f64 / 1e6)
            }
        };
        let report = json!({
            "round": r,
            "height": base + 1 + r as u64,
            "generateblock_ms": (t0 - called) as f64 / 1e6,
            "submit_ms": (submitted - called) as f64 / 1e6,
            "first_ms": ms(first),
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
            "last_ms": ms(last),
            "missing": missing,
            "server_rss_kib": memory_kib(args.server_pid)["rss_kib"],
        });
        eprintln!("  round {r}: {report}");
        round_reports.push(report);
        tokio::time::sleep(settle).await;
    }
    let memory_end = memory_kib(args.server_pid);
    let cpu_end = cpu_seconds(args.server_pid);
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for task in &tasks {
        task.abort();
    }
    let cpu_diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => json!(b - a),
        _ => Value::Null,
    };
    Ok(json!({
        "sessions": sessions,
        "subscribed": subscribed,
        "setup_failed": setup_failed,
        "first_error": first_error,
        "scripts_per_session": rounds.iter().map(|r| r.script).max().map(|m| m + 1),
        "setup_seconds": setup_seconds,
        "base_height": base,
        "lost": shared.lost.load(Ordering::SeqCst),
        "unexpected": shared.unexpected.load(Ordering::SeqCst),
        "memory_idle": memory_idle,
        "memory_subscribed": memory_subscribed,
        "memory_end": memory_end,
        "server_cpu_setup_s": cpu_diff(cpu_start, cpu_subscribed),
        "server_cpu_rounds_s": cpu_diff(cpu_subscribed, cpu_end),
        "generator_cpu_setup_s": generator_cpu_setup,
        "generator_cpu_total_s": cpu_seconds(None),
        "rounds": round_reports,
        "latency": summary(latencies),
        "header_latency": summary(header_latencies),
        "fanout": summary(fanout),
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let as_json = args.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrumx-notify-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if as_json {
                println!("{report}");
            } else {
                println!("{report:#}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrumx-notify-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_both_notifications() {
        let header = r#"{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[{"hex":"00","height":206}]}"#;
        assert!(matches!(
            scan_notification(header),
            Some(Scanned::Header(206))
        ));
        let spaced = r#"{"jsonrpc": "2.0", "method": "blockchain.headers.subscribe", "params": [{"height": 7, "hex": "00"}]}"#;
        assert!(matches!(
            scan_notification(spaced),
            Some(Scanned::Header(7))
        ));
        let hash = "ab".repeat(32);
        let script = format!(
            r#"{{"jsonrpc": "2.0", "method": "blockchain.scripthash.subscribe", "params": ["{hash}", "ff"]}}"#
        );
        assert!(matches!(scan_notification(&script), Some(Scanned::Script(h)) if h == hash));
        assert!(scan_notification(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).is_none());
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bench:pw"), "YmVuY2g6cHc=");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }
}
