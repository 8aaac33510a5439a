//! The query benchmark's load generator: opens N connections to an Electrum server, each
//! negotiating `server.version`, and asks script-hash queries for a fixed time, reporting
//! requests per second and latency percentiles. It measures any server that speaks the
//! protocol, so ferrumx and ElectrumX are measured by the same client.
//!
//! Scenarios:
//! - `get_history`, `get_balance`, `listunspent`: every connection keeps `--depth`
//!   requests in flight (pipelined), each for the next script hash of the file, until
//!   `--duration` has passed; then waits for the outstanding replies.
//! - `wallet-load`: every connection behaves like a wallet opening: for `--addresses`
//!   script hashes, in batches of `--batch`, one batch of `subscribe` and then one of
//!   `get_history`. Reported: batch latency and each wallet's total time; no batch starts
//!   after `--duration`.
//! - `wallet-open`: every connection opens wallets one after the other until `--duration`
//!   has passed: each wallet on a new connection (`server.version`, then its script
//!   hashes as in `wallet-load`, then closed). Reported: wallets opened per second.

mod conn;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::task::JoinSet;

use conn::{Conn, Incoming};

#[derive(Parser, Debug)]
#[command(version, about = "Electrum query load generator")]
struct Args {
    /// The server, as tcp://HOST:PORT.
    #[arg(long)]
    server: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds of load (wallet-load: no batch starts after this).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// A file with one script hash (64 hex digits) per line; connections start at
    /// different places in it.
    #[arg(long)]
    scripthashes: PathBuf,
    /// Requests in flight per connection (pipelined scenarios).
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Script hashes per wallet (wallet-load).
    #[arg(long, default_value_t = 1000)]
    addresses: usize,
    /// Requests per batch (wallet-load).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Protocol version to negotiate.
    #[arg(long, default_value = "1.4")]
    protocol: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    #[value(name = "get_history")]
    GetHistory,
    #[value(name = "get_balance")]
    GetBalance,
    #[value(name = "listunspent")]
    Listunspent,
    #[value(name = "wallet-load", alias = "wallet_load")]
    WalletLoad,
    #[value(name = "wallet-open", alias = "wallet_open")]
    WalletOpen,
}

impl Scenario {
    fn method(self) -> &'static str {
        match self {
            Scenario::GetHistory => "blockchain.scripthash.get_history",
            Scenario::GetBalance => "blockchain.scripthash.get_balance",
            Scenario::Listunspent => "blockchain.scripthash.listunspent",
            Scenario::WalletLoad | Scenario::WalletOpen => "blockchain.scripthash.subscribe",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--server must look like tcp://HOST:PORT, got {0:?}")]
    BadServer(String),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot read script hashes from {path}: {source}")]
    ReadHashes { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: {text:?} is not a script hash (64 hex digits)")]
    BadHash {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{0} holds no script hashes")]
    NoHashes(PathBuf),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("server.version was refused: {0}")]
    Handshake(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("unexpected message from the server: {0}")]
    Unexpected(String),
    #[error("connection {index}: {source}")]
    OnConnection {
        index: usize,
        source: Box<BenchError>,
    },
    #[error("a connection task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What one connection measured.
#[derive(Default)]
struct Measured {
    /// Request latencies (pipelined) or batch latencies (wallet-load), in microseconds.
    latencies_us: Vec<u32>,
    /// Replies received.
    replies: u64,
    errors: u64,
    /// wallet-load: the time the whole wallet took, if it finished in time.
    wallet: Option<Duration>,
    /// wallet-open: wallets opened in full.
    wallets: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), BenchError> {
    for (name, value) in [
        ("connections", args.connections),
        ("depth", args.depth),
        ("addresses", args.addresses),
        ("batch", args.batch),
        ("duration", args.duration as usize),
    ] {
        if value == 0 {
            return Err(BenchError::Zero(name));
        }
    }
    let addr = args
        .server
        .strip_prefix("tcp://")
        .ok_or_else(|| BenchError::BadServer(args.server.clone()))?
        .to_string();
    let hashes = Arc::new(load_scripthashes(&args.scripthashes)?);

    // Every connection is open and negotiated before the clock starts.
    let mut opening = JoinSet::new();
    for index in 0..args.connections {
        let (addr, protocol) = (addr.clone(), args.protocol.clone());
        opening.spawn(async move { (index, Conn::open(&addr, &protocol).await) });
    }
    let mut conns = Vec::with_capacity(args.connections);
    while let Some(joined) = opening.join_next().await {
        let (index, conn) = joined?;
        conns.push((index, conn.map_err(|e| on_connection(index, e))?));
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut running = JoinSet::new();
    for (index, conn) in conns {
        let hashes = Arc::clone(&hashes);
        let offset = index * hashes.len() / args.connections;
        let (scenario, depth, addresses, batch) =
            (args.scenario, args.depth, args.addresses, args.batch);
        let (addr, protocol) = (addr.clone(), args.protocol.clone());
        running.spawn(async move {
            let result = match scenario {
                Scenario::WalletLoad => {
                    wallet(conn, &hashes, offset, addresses, batch, deadline).await
                }
                Scenario::WalletOpen => {
                    let wallets = WalletPlan {
                        addr: &addr,
                        protocol: &protocol,
                        addresses,
                        batch,
                    };
                    open_wallets(conn, &wallets, &hashes, offset, deadline).await
                }
                _ => pipelined(conn, scenario.method(), &hashes, offset, depth, deadline).await,
            };
            result.map_err(|e| on_connection(index, e))
        });
    }
    let mut all = Vec::with_capacity(args.connections);
    while let Some(joined) = running.join_next().await {
        all.push(joined??);
    }
    report(args, &all, started.elapsed());
    Ok(())
}

fn on_connection(index: usize, source: BenchError) -> BenchError {
    BenchError::OnConnection {
        index,
        source: Box::new(source),
    }
}

fn load_scripthashes(path: &PathBuf) -> Result<Vec<String>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::ReadHashes {
        path: path.clone(),
        source,
    })?;
    let mut hashes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BenchError::BadHash {
                path: path.clone(),
                line: i + 1,
                text: line.to_string(),
            });
        }
        hashes.push(line.to_ascii_lowercase());
    }
    if hashes.is_empty() {
        return Err(BenchError::NoHashes(path.clone()));
    }
    Ok(hashes)
}

/// Keeps `depth` requests in flight until the deadline, then collects the rest.
async fn pipelined(
    mut conn: Conn,
    method: &str,
    hashes: &[String],
    offset: usize,
    depth: usize,
    deadline: Instant,
) -> Result<Measured, BenchError> {
    let mut measured = Measured::default();
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(depth);
    let mut next = offset;
    for _ in 0..depth {
        let id = conn.send(method, &hashes[next % hashes.len()]).await?;
        in_flight.insert(id, Instant::now());
        next += 1;
    }
    while !in_flight.is_empty() {
        let (id, error) = match conn.next_message().await? {
            Incoming::Single { id, error } => (id, error),
            Incoming::Other => continue,
            Incoming::Batch { .. } => return Err(BenchError::Unexpected(conn.last_line())),
        };
        let sent = in_flight
            .remove(&id)
            .ok_or_else(|| BenchError::Unexpected(conn.last_line()))?;
        measured.latencies_us.push(micros(sent.elapsed()));
        measured.replies += 1;
        measured.errors += u64::from(error);
        if Instant::now() < deadline {
            let id = conn.send(method, &hashes[next % hashes.len()]).await?;
            in_flight.insert(id, Instant::now());
            next += 1;
        }
    }
    Ok(measured)
}

/// A wallet opening: subscribe, then get the history, batch after batch.
async fn wallet(
    mut conn: Conn,
    hashes: &[String],
    offset: usize,
    addresses: usize,
    batch: usize,
    deadline: Instant,
) -> Result<Measured, BenchError> {
    let mut measured = Measured::default();
    let started = Instant::now();
    let mut done = 0;
    while done < addresses {
        if Instant::now() > deadline {
            return Ok(measured);
        }
        let n = batch.min(addresses - done);
        let chunk: Vec<&str> = (0..n)
            .map(|k| hashes[(offset + done + k) % hashes.len()].as_str())
            .collect();
        for method in [
            "blockchain.scripthash.subscribe",
            "blockchain.scripthash.get_history",
        ] {
            let sent = Instant::now();
            conn.send_batch(method, &chunk).await?;
            let (replies, errors) = loop {
                match conn.next_message().await? {
                    Incoming::Batch { replies, errors } => break (replies, errors),
                    Incoming::Other => continue,
                    Incoming::Single { .. } => {
                        return Err(BenchError::Unexpected(conn.last_line()));
                    }
                }
            };
            if replies != n {
                return Err(BenchError::Unexpected(format!(
                    "{replies} replies to a batch of {n}: {}",
                    conn.last_line()
                )));
            }
            measured.latencies_us.push(micros(sent.elapsed()));
            measured.replies += replies as u64;
            measured.errors += errors as u64;
        }
        done += n;
    }
    measured.wallet = Some(started.elapsed());
    Ok(measured)
}

/// Where and how `wallet-open` opens its wallets.
struct WalletPlan<'a> {
    addr: &'a str,
    protocol: &'a str,
    addresses: usize,
    batch: usize,
}

/// Wallet openings one after the other until the deadline, each on a new connection
/// (the first on `conn`); only whole wallets count.
async fn open_wallets(
    conn: Conn,
    plan: &WalletPlan<'_>,
    hashes: &[String],
    offset: usize,
    deadline: Instant,
) -> Result<Measured, BenchError> {
    let mut measured = Measured::default();
    let mut conn = Some(conn);
    let mut next = offset;
    while Instant::now() < deadline {
        let this = match conn.take() {
            Some(conn) => conn,
            None => Conn::open(plan.addr, plan.protocol).await?,
        };
        let opened = wallet(this, hashes, next, plan.addresses, plan.batch, deadline).await?;
        measured.latencies_us.extend(opened.latencies_us);
        measured.replies += opened.replies;
        measured.errors += opened.errors;
        if opened.wallet.is_some() {
            measured.wallets += 1;
        }
        next += plan.addresses;
    }
    Ok(measured)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The value below which a fraction `q` of the sorted values lie (nearest rank).
fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &Args, all: &[Measured], elapsed: Duration) {
    let mut latencies: Vec<u32> = all.iter().flat_map(|m| m.latencies_us.clone()).collect();
    latencies.sort_unstable();
    let replies: u64 = all.iter().map(|m| m.replies).sum();
    let errors: u64 = all.iter().map(|m| m.errors).sum();
    let seconds = elapsed.as_secs_f64();
    let ms = |us: u32| f64::from(us) / 1000.0;
    let (p50, p99, max) = (
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    let mut wallets: Vec<f64> = all
        .iter()
        .filter_map(|m| m.wallet.map(|d| d.as_secs_f64()))
        .collect();
    wallets.sort_by(f64::total_cmp);
    let mut summary = json!({
        "server": args.server,
        "scenario": format!("{:?}", args.scenario),
        "connections": args.connections,
        "seconds": seconds,
        "replies": replies,
        "errors": errors,
        "req_per_s": replies as f64 / seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
    });
    let wallet_load = matches!(args.scenario, Scenario::WalletLoad | Scenario::WalletOpen);
    if let Scenario::WalletOpen = args.scenario {
        let opened: u64 = all.iter().map(|m| m.wallets).sum();
        summary["wallets_opened"] = json!(opened);
        summary["wallets_per_s"] = json!(opened as f64 / seconds);
    }
    if wallet_load {
        summary["addresses"] = json!(args.addresses);
        summary["batch"] = json!(args.batch);
        summary["wallets_done"] = json!(wallets.len());
        summary["wallet_p50_s"] = json!(percentile(&wallets, 0.50));
        summary["wallet_p99_s"] = json!(percentile(&wallets, 0.99));
        summary["wallet_max_s"] = json!(wallets.last().copied().unwrap_or(0.0));
    } else {
        summary["depth"] = json!(args.depth);
    }
    if args.json {
        println!("{summary}");
        return;
    }
    println!(
        "{} {:?}, {} connections: {replies} replies ({errors} errors) in {seconds:.2} s = \
         {:.0} req/s",
        args.server,
        args.scenario,
        args.connections,
        replies as f64 / seconds
    );
    let what = if wallet_load { "batch" } else { "request" };
    println!("{what} latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    if wallet_load {
        println!(
            "wallets ({} addresses, batches of {}): {} of {} done; p50 {:.2} s, p99 {:.2} s, \
             max {:.2} s",
            args.addresses,
            args.batch,
            wallets.len(),
            args.connections,
            percentile(&wallets, 0.50),
            percentile(&wallets, 0.99),
            wallets.last().copied().unwrap_or(0.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7u32], 0.5), 7);
        assert_eq!(percentile::<u32>(&[], 0.5), 0);
    }
}
