//! The coin daemon's JSON-RPC, as ElectrumX uses it: several URLs with round-robin
//! failover, user:password or cookie authentication, and calls that wait out a daemon that
//! is down, restarting or warming up instead of failing. Blocking: one [`DaemonClient`] per
//! worker thread, because one HTTP client is one socket.
//!
//! Built on bitcoincore-rpc's JSON-RPC layer (its re-exported `jsonrpc` crate) rather than
//! its typed `RpcApi`, because retrying needs to tell a broken reply (retry) from a
//! well-formed reply of an unexpected type (fail), and to send batches.

mod long_poll;
mod pool;
mod rpc;
mod transport;
mod url;

pub use long_poll::{LongPoll, RPC_METHOD_NOT_FOUND, Tip};
pub use pool::{DaemonPool, MAX_CLIENT_CALLS};
pub use url::{DaemonAuth, DaemonUrl, DaemonUrlError};

use crate::coins::{self, Coin};
use crate::hashes::{Height, from_hex};
use crate::rest::RestClient;
use bitcoin::BlockHash;
use bitcoincore_rpc::jsonrpc;
use rpc::{Failure, batch, blocks, connect, encode_params, single};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use transport::HttpTransport;

/// Socket timeout of one daemon request (connect, and each read and write).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const INITIAL_RETRY: Duration = Duration::from_millis(250);
/// How long a daemon found without REST is asked by JSON-RPC only before REST is tried
/// again.
const REST_REPROBE: Duration = Duration::from_secs(300);
const MAX_RETRY: Duration = Duration::from_secs(4);
/// A daemon problem is logged at most this often, however many calls hit it.
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Sleeps are cut into steps this long so that shutdown is noticed promptly.
const SLEEP_STEP: Duration = Duration::from_millis(50);

const RPC_IN_WARMUP: i32 = -28;
const RPC_PARSE_ERROR: i32 = -32700;

/// Why a daemon call failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The daemon answered with an error (not a transient one).
    #[error("daemon error {code}: {message}")]
    Rpc { code: i32, message: String },
    /// The daemon's answer was well-formed JSON-RPC but not what `method` returns.
    #[error("the daemon's reply to {method} was not understood: {detail}")]
    BadReply { method: String, detail: String },
    /// The request parameters could not be encoded.
    #[error("cannot encode the parameters of {method}: {detail}")]
    BadParams { method: String, detail: String },
    /// A non-retrying call could not reach the daemon or got no usable reply.
    #[error("daemon unavailable: {0}")]
    Unavailable(String),
    /// [`Daemon::shutdown`] was called.
    #[error("shutting down")]
    ShuttingDown,
    /// The daemon serves another chain than COIN/NET.
    #[error(
        "the daemon's genesis block is {daemon}, but COIN={coin} NET={net} expects {expected}; \
         {advice}"
    )]
    WrongGenesis {
        daemon: BlockHash,
        expected: BlockHash,
        coin: &'static str,
        net: &'static str,
        advice: String,
    },
}

/// The daemon endpoints shared by all clients. Cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
}

struct Shared {
    target: Mutex<Target>,
    shutdown: AtomicBool,
    timeout: Duration,
    health: Mutex<Health>,
    /// When the current daemon was found not to serve REST: blocks then come by
    /// JSON-RPC until REST_REPROBE has passed (it may have been restarting).
    rest_unavailable: Mutex<Option<Instant>>,
}

/// Which URL every client talks to. `epoch` changes with every switch, so that clients
/// notice and reconnect.
struct Target {
    urls: Vec<DaemonUrl>,
    index: usize,
    epoch: u64,
}

struct Health {
    failing: bool,
    last_logged: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    /// `timeout` bounds connecting and each socket read and write of a request.
    pub fn new(urls: Vec<DaemonUrl>, timeout: Duration) -> Result<Daemon, DaemonUrlError> {
        let daemon = Daemon {
            shared: Arc::new(Shared {
                target: Mutex::new(Target {
                    urls: Vec::new(),
                    index: 0,
                    epoch: 0,
                }),
                shutdown: AtomicBool::new(false),
                timeout,
                health: Mutex::new(Health {
                    failing: false,
                    last_logged: None,
                }),
                rest_unavailable: Mutex::new(None),
            }),
        };
        daemon.set_urls(urls)?;
        Ok(daemon)
    }

    /// A client for one thread. Clients share the current URL and the shutdown flag.
    pub fn client(&self) -> DaemonClient {
        DaemonClient {
            daemon: self.clone(),
            conn: None,
            rest: None,
        }
    }

    /// Replaces the URL list and switches every client to its first entry.
    pub fn set_urls(&self, urls: Vec<DaemonUrl>) -> Result<(), DaemonUrlError> {
        if urls.is_empty() {
            return Err(DaemonUrlError {
                url: String::new(),
                reason: "no daemon URL given".into(),
            });
        }
        for (n, url) in urls.iter().enumerate() {
            let current = if n == 0 { " (current)" } else { "" };
            log::info!("daemon #{} at {url}{current}", n + 1);
        }
        let mut target = lock(&self.shared.target);
        target.urls = urls;
        target.index = 0;
        target.epoch += 1;
        *lock(&self.shared.rest_unavailable) = None;
        Ok(())
    }

    /// All configured URLs, in failover order.
    pub fn urls(&self) -> Vec<DaemonUrl> {
        lock(&self.shared.target).urls.clone()
    }

    /// The URL calls currently go to.
    pub fn current_url(&self) -> DaemonUrl {
        self.target().1
    }

    /// Makes every retrying call return [`DaemonError::ShuttingDown`] within about 50 ms
    /// (a request already on the wire finishes or times out first).
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.load(Ordering::SeqCst)
    }

    fn target(&self) -> (u64, DaemonUrl) {
        let target = lock(&self.shared.target);
        (target.epoch, target.urls[target.index].clone())
    }

    fn url_count(&self) -> usize {
        lock(&self.shared.target).urls.len()
    }

    /// Moves everyone to the next URL, unless another client already moved on from
    /// `epoch` (then the caller just follows).
    fn failover(&self, epoch: u64) {
        let mut target = lock(&self.shared.target);
        if target.epoch == epoch && target.urls.len() > 1 {
            target.index = (target.index + 1) % target.urls.len();
            target.epoch += 1;
            log::info!("failing over to daemon at {}", target.urls[target.index]);
        }
    }

    fn report_problem(&self, url: &DaemonUrl, problem: &str) {
        let mut health = lock(&self.shared.health);
        health.failing = true;
        if health
            .last_logged
            .is_none_or(|t| t.elapsed() >= LOG_INTERVAL)
        {
            health.last_logged = Some(Instant::now());
            log::error!("daemon at {url}: {problem}; retrying occasionally");
        }
    }

    fn report_recovery(&self, url: &DaemonUrl) {
        let mut health = lock(&self.shared.health);
        if health.failing {
            health.failing = false;
            health.last_logged = None;
            log::info!("daemon at {url}: running normally");
        }
    }

    /// Sleeps `delay`, or less if shutdown is requested meanwhile.
    fn pause(&self, delay: Duration) -> Result<(), DaemonError> {
        let deadline = Instant::now() + delay;
        loop {
            if self.is_shutting_down() {
                return Err(DaemonError::ShuttingDown);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            thread::sleep((deadline - now).min(SLEEP_STEP));
        }
    }
}

/// The retry schedule: 0.25 s doubling to 4 s; once at 4 s, fail over to the next URL
/// (if there is one) without sleeping and start again at 0.25 s. As ElectrumX.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: INITIAL_RETRY,
        }
    }

    /// How long to sleep before the next attempt, and whether to fail over first.
    fn step(&mut self, can_fail_over: bool) -> (Duration, bool) {
        if self.next == MAX_RETRY && can_fail_over {
            self.next = INITIAL_RETRY;
            return (Duration::ZERO, true);
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX_RETRY);
        (delay, false)
    }
}

/// A connection to the current daemon, for one thread at a time.
pub struct DaemonClient {
    daemon: Daemon,
    conn: Option<Connection>,
    /// REST connection to the daemon of this epoch, for block download.
    rest: Option<(u64, RestClient)>,
}

struct Connection {
    epoch: u64,
    rpc: jsonrpc::Client,
    /// The client's transport, for the block download, which parses its replies itself.
    http: Arc<HttpTransport>,
}

impl DaemonClient {
    /// Calls `method`, waiting out connection errors, timeouts, HTTP errors, non-JSON
    /// replies, 401 (re-reading the cookie), warm-up (-28) and parse errors (-32700), with
    /// backoff and failover, until it gets an answer or the daemon is shut down. Other RPC
    /// errors are returned at once as [`DaemonError::Rpc`].
    pub fn call<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &[Value],
    ) -> Result<T, DaemonError> {
        let params = encode_params(method, params)?;
        self.with_retry(|conn| single(&conn.rpc, method, &params))
    }

    /// Like [`DaemonClient::call`] but one attempt: any failure to get an answer is
    /// [`DaemonError::Unavailable`]. For client requests that must fail fast.
    pub fn call_once<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &[Value],
    ) -> Result<T, DaemonError> {
        if self.daemon.is_shutting_down() {
            return Err(DaemonError::ShuttingDown);
        }
        let params = encode_params(method, params)?;
        let (result, _, url) = self.attempt(&mut |conn| single(&conn.rpc, method, &params));
        result.map_err(|failure| match failure {
            Failure::Fatal(e) => e,
            failure => DaemonError::Unavailable(format!("{url}: {}", failure.describe(&url))),
        })
    }

    /// Calls `method` once per parameter list, as one JSON-RPC batch (one HTTP request),
    /// with the retrying of [`DaemonClient::call`]. Results are in the order of `params`;
    /// any RPC error fails the whole batch.
    pub fn call_batch<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &[Vec<Value>],
    ) -> Result<Vec<T>, DaemonError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let params = params
            .iter()
            .map(|p| encode_params(method, p))
            .collect::<Result<Vec<_>, _>>()?;
        self.with_retry(|conn| batch(&conn.rpc, method, &params))
    }

    pub fn get_block_count(&mut self) -> Result<Height, DaemonError> {
        let count: u64 = self.call("getblockcount", &[])?;
        Height::try_from(count).map_err(|_| bad_reply("getblockcount", format!("{count}")))
    }

    pub fn get_block_hash(&mut self, height: Height) -> Result<BlockHash, DaemonError> {
        let hex: String = self.call("getblockhash", &[height.to_u32().into()])?;
        parse_hash("getblockhash", &hex)
    }

    /// The hashes of blocks `start .. start + count`, in one batch.
    pub fn get_block_hashes(
        &mut self,
        start: Height,
        count: u32,
    ) -> Result<Vec<BlockHash>, DaemonError> {
        let params: Vec<Vec<Value>> = (0..u64::from(count))
            .map(|i| vec![(start.to_u64() + i).into()])
            .collect();
        let hexes: Vec<String> = self.call_batch("getblockhash", &params)?;
        hexes
            .iter()
            .map(|hex| parse_hash("getblockhash", hex))
            .collect()
    }

    pub fn get_best_block_hash(&mut self) -> Result<BlockHash, DaemonError> {
        let hex: String = self.call("getbestblockhash", &[])?;
        parse_hash("getbestblockhash", &hex)
    }

    /// The serialized block (`getblock <hash> 0`).
    pub fn get_block_raw(&mut self, hash: &BlockHash) -> Result<Vec<u8>, DaemonError> {
        let hex: String = self.call("getblock", &[hash.to_string().into(), 0.into()])?;
        from_hex(&hex).ok_or_else(|| bad_reply("getblock", "the block is not hex".into()))
    }

    /// Several serialized blocks, in the order of `hashes`: over the daemon's binary REST
    /// interface when it serves one, else as one JSON-RPC batch.
    pub fn get_blocks_raw(&mut self, hashes: &[BlockHash]) -> Result<Vec<Vec<u8>>, DaemonError> {
        self.get_blocks_with(hashes, |raw| raw.to_vec())
    }

    /// Each of the blocks `hashes`, serialized, handed to `read` in their order (over
    /// REST when the daemon serves it, else as one JSON-RPC batch); what it made of
    /// each. The bytes are lent from a buffer kept for the next block: a catch-up reads
    /// gigabytes, which would otherwise be as many fresh pages for the kernel to zero.
    /// `read` may see a block again when a batch is retried.
    pub fn get_blocks_with<R>(
        &mut self,
        hashes: &[BlockHash],
        mut read: impl FnMut(&[u8]) -> R,
    ) -> Result<Vec<R>, DaemonError> {
        if let Some(rest) = self.rest_client() {
            match hashes
                .iter()
                .map(|hash| rest.block(hash).map(|raw| read(&raw)))
                .collect()
            {
                Ok(blocks) => return Ok(blocks),
                Err(e) => {
                    log::debug!("{e}; fetching by JSON-RPC");
                    self.rest = None;
                }
            }
        }
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        self.with_retry(|conn| blocks(&conn.http, hashes, &mut read))
    }

    /// The REST client for the current daemon, probing it on first use.
    fn rest_client(&mut self) -> Option<&mut RestClient> {
        let shared = &self.daemon.shared;
        let refused_since = *lock(&shared.rest_unavailable);
        let reprobe = refused_since.is_some_and(|since| since.elapsed() >= REST_REPROBE);
        if refused_since.is_some() && !reprobe {
            return None;
        }
        if reprobe {
            // Probe again, on a fresh client.
            self.rest = None;
        }
        let (epoch, url) = {
            let target = lock(&shared.target);
            (target.epoch, target.urls.get(target.index)?.clone())
        };
        if self.rest.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut client = RestClient::new(url.host_port(), shared.timeout);
            if !client.is_available() {
                if lock(&shared.rest_unavailable)
                    .replace(Instant::now())
                    .is_none()
                {
                    log::info!(
                        "the daemon at {url} does not serve REST; blocks come by JSON-RPC \
                         (start it with -rest=1 for faster sync)"
                    );
                }
                return None;
            }
            if lock(&shared.rest_unavailable).take().is_some() {
                log::info!("the daemon at {url} serves REST again");
            }
            self.rest = Some((epoch, client));
        }
        self.rest.as_mut().map(|(_, client)| client)
    }

    pub fn get_network_info(&mut self) -> Result<Value, DaemonError> {
        self.call("getnetworkinfo", &[])
    }

    /// Checks that the daemon serves `coin`'s chain; the error says which COIN and NET
    /// the daemon's chain is, when it is one ferrumx knows.
    pub fn check_genesis(&mut self, coin: &Coin) -> Result<(), DaemonError> {
        let daemon = self.get_block_hash(Height::GENESIS)?;
        let expected = coin.genesis_hash();
        if daemon == expected {
            return Ok(());
        }
        let matches: Vec<String> = coins::by_genesis(&daemon)
            .iter()
            .map(|c| format!("COIN={} NET={}", c.name, c.net))
            .collect();
        let advice = if matches.is_empty() {
            "set COIN and NET to the daemon's network, or point DAEMON_URL at the right daemon"
                .to_owned()
        } else {
            format!(
                "the daemon serves {}: set that, or point DAEMON_URL at the right daemon",
                matches.join(" or ")
            )
        };
        Err(DaemonError::WrongGenesis {
            daemon,
            expected,
            coin: coin.name,
            net: coin.net,
            advice,
        })
    }

    /// One attempt against the current URL, reconnecting first if the URL changed or the
    /// last attempt was refused with 401. Returns the epoch and URL it used.
    fn attempt<R>(
        &mut self,
        op: &mut dyn FnMut(&Connection) -> Result<R, Failure>,
    ) -> (Result<R, Failure>, u64, DaemonUrl) {
        let (epoch, url) = self.daemon.target();
        let conn = match self.conn.take() {
            Some(conn) if conn.epoch == epoch => conn,
            _ => match connect(&url, self.daemon.shared.timeout) {
                Ok((rpc, http)) => Connection { epoch, rpc, http },
                Err(failure) => return (Err(failure), epoch, url),
            },
        };
        let result = op(&conn);
        if !matches!(result, Err(Failure::Unauthorized)) {
            self.conn = Some(conn);
        }
        (result, epoch, url)
    }

    fn with_retry<R>(
        &mut self,
        mut op: impl FnMut(&Connection) -> Result<R, Failure>,
    ) -> Result<R, DaemonError> {
        let mut backoff = Backoff::new();
        let mut failed = false;
        loop {
            if self.daemon.is_shutting_down() {
                return Err(DaemonError::ShuttingDown);
            }
            let (result, epoch, url) = self.attempt(&mut op);
            let failure = match result {
                Ok(value) => {
                    if failed {
                        self.daemon.report_recovery(&url);
                    }
                    return Ok(value);
                }
                Err(Failure::Fatal(e)) => {
                    if failed {
                        self.daemon.report_recovery(&url);
                    }
                    return Err(e);
                }
                Err(failure) => failure,
            };
            failed = true;
            self.daemon.report_problem(&url, &failure.describe(&url));
            let (delay, fail_over) = backoff.step(self.daemon.url_count() > 1);
            if fail_over {
                self.daemon.failover(epoch);
            }
            self.daemon.pause(delay)?;
        }
    }
}

fn bad_reply(method: &str, detail: String) -> DaemonError {
    DaemonError::BadReply {
        method: method.to_owned(),
        detail,
    }
}

fn parse_hash(method: &str, hex: &str) -> Result<BlockHash, DaemonError> {
    BlockHash::from_str(hex).map_err(|e| bad_reply(method, format!("{hex:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::url::tests::user_pass;
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    #[test]
    fn backoff_doubles_to_four_seconds_then_fails_over() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new();
        let steps: Vec<_> = (0..7).map(|_| b.step(true)).collect();
        assert_eq!(
            steps,
            [
                (ms(250), false),
                (ms(500), false),
                (ms(1000), false),
                (ms(2000), false),
                (ms(0), true),
                (ms(250), false),
                (ms(500), false),
            ]
        );
        let mut b = Backoff::new();
        let steps: Vec<_> = (0..7).map(|_| b.step(false).0).collect();
        assert_eq!(
            steps,
            [250, 500, 1000, 2000, 4000, 4000, 4000].map(ms),
            "one URL: stay at 4 s"
        );
    }

    /// A fake daemon on loopback: `answer(n, request, authorization)` gives the HTTP status
    /// and JSON body of the n-th request (0-based). Keeps connections alive like bitcoind.
    struct Fake {
        port: u16,
        requests: Arc<AtomicUsize>,
    }

    type Answer = Box<dyn FnMut(usize, &Value, Option<&str>) -> (u16, Option<Value>) + Send>;

    fn fake_daemon(mut answer: Answer) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let (mut length, mut auth) = (0, None);
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "authorization" => auth = Some(value.trim().to_owned()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let (status, reply) = answer(n, &request, auth.as_deref());
                    let reply = reply.map(|v| v.to_string()).unwrap_or_default();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n",
                        reply.len()
                    );
                    stream.write_all((head + &reply).as_bytes()).unwrap();
                }
            }
        });
        Fake { port, requests }
    }

    /// A daemon that answers every request after `hold`, serving connections at once,
    /// and records the most requests it had under way together.
    fn slow_concurrent_daemon(hold: Duration) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let under_way = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let most_seen = most.clone();
        thread::spawn(move || {
            for stream in listener.incoming().take(100) {
                let Ok(mut stream) = stream else { return };
                let (under_way, most) = (under_way.clone(), most.clone());
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let request: Value = serde_json::from_slice(&body).unwrap();
                        let now = under_way.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(hold);
                        under_way.fetch_sub(1, Ordering::SeqCst);
                        let reply = result(&request, json!(7)).to_string();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\n\r\n",
                            reply.len()
                        );
                        stream.write_all((head + &reply).as_bytes()).unwrap();
                    }
                });
            }
        });
        (port, most_seen)
    }

    #[test]
    fn client_calls_are_capped_at_ten_under_way() {
        let (port, most) = slow_concurrent_daemon(Duration::from_millis(100));
        let daemon =
            Daemon::new(vec![url(port, user_pass("u", "p"))], Duration::from_secs(5)).unwrap();
        let pool = Arc::new(DaemonPool::new(daemon));
        let callers: Vec<_> = (0..25)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || pool.call_once("getblockcount", &[]))
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.join().unwrap().unwrap(), json!(7));
        }
        assert_eq!(most.load(Ordering::SeqCst), MAX_CLIENT_CALLS);
        assert_eq!(pool.calls_under_way(), 0);
    }

    fn result(request: &Value, result: Value) -> Value {
        json!({"result": result, "error": null, "id": request["id"]})
    }

    fn error(request: &Value, code: i32, message: &str) -> Value {
        json!({"result": null, "error": {"code": code, "message": message}, "id": request["id"]})
    }

    fn url(port: u16, auth: DaemonAuth) -> DaemonUrl {
        DaemonUrl {
            host: "127.0.0.1".into(),
            port,
            auth,
        }
    }

    /// Shuts the daemon down after `secs`, so that a broken test fails instead of hanging.
    fn watchdog(daemon: &Daemon, secs: u64) {
        let daemon = daemon.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(secs));
            daemon.shutdown();
        });
    }

    fn refused_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn warming_up_daemon_is_retried_until_it_answers() {
        let fake = fake_daemon(Box::new(|n, req, auth| {
            assert_eq!(auth, Some("Basic dTpw"), "user u, password p");
            assert_eq!(req["method"], "getblockcount");
            match n {
                0 => (500, Some(error(req, -28, "Loading block index..."))),
                1 => (500, Some(error(req, -32700, "Parse error"))),
                _ => (200, Some(result(req, json!(42)))),
            }
        }));
        let daemon =
            Daemon::new(vec![url(fake.port, user_pass("u", "p"))], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 10);
        assert_eq!(daemon.client().get_block_count().unwrap(), Height::new(42));
        assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn other_rpc_errors_and_bad_types_are_returned_at_once() {
        let fake = fake_daemon(Box::new(|n, req, _| match n {
            0 => (500, Some(error(req, -8, "Block height out of range"))),
            _ => (200, Some(result(req, json!("not a number")))),
        }));
        let daemon =
            Daemon::new(vec![url(fake.port, user_pass("u", "p"))], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 10);
        let mut client = daemon.client();
        match client.get_block_hash(Height::new(99)) {
            Err(DaemonError::Rpc { code: -8, message }) => {
                assert_eq!(message, "Block height out of range")
            }
            other => panic!("{other:?}"),
        }
        let err = client.get_block_count().unwrap_err();
        assert!(matches!(err, DaemonError::BadReply { .. }), "{err}");
        assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn unauthorized_rereads_the_cookie_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        std::fs::write(&path, "__cookie__:old\n").unwrap();
        let restarted = path.clone();
        let fake = fake_daemon(Box::new(move |_, req, auth| {
            // base64("__cookie__:new")
            if auth == Some("Basic X19jb29raWVfXzpuZXc=") {
                (200, Some(result(req, json!(7))))
            } else {
                // The daemon restarted meanwhile and wrote a new cookie.
                std::fs::write(&restarted, "__cookie__:new").unwrap();
                (401, None)
            }
        }));
        let auth = DaemonAuth::CookieFile(path);
        let daemon = Daemon::new(vec![url(fake.port, auth)], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 10);
        assert_eq!(daemon.client().get_block_count().unwrap(), Height::new(7));
        assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn batches_are_one_request_and_keep_order() {
        let hash = |h: u64| format!("{h:064x}");
        let fake = fake_daemon(Box::new(move |_, req, _| {
            let items = req.as_array().unwrap();
            // Answer in reverse order: replies are matched to requests by id.
            let replies: Vec<Value> = items
                .iter()
                .rev()
                .map(|item| result(item, json!(hash(item["params"][0].as_u64().unwrap()))))
                .collect();
            (200, Some(Value::Array(replies)))
        }));
        let daemon =
            Daemon::new(vec![url(fake.port, user_pass("u", "p"))], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 10);
        let mut client = daemon.client();
        let hashes = client.get_block_hashes(Height::new(5), 3).unwrap();
        let shown: Vec<String> = hashes.iter().map(|h| h.to_string()).collect();
        assert_eq!(shown, [hash(5), hash(6), hash(7)]);
        assert!(
            client
                .get_block_hashes(Height::new(5), 0)
                .unwrap()
                .is_empty()
        );
        assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    }

    impl DaemonClient {
        /// The blocks by JSON-RPC, without probing REST (the fakes speak only JSON-RPC).
        fn get_blocks_rpc(&mut self, hashes: &[BlockHash]) -> Result<Vec<Vec<u8>>, DaemonError> {
            if hashes.is_empty() {
                return Ok(Vec::new());
            }
            self.with_retry(|conn| blocks(&conn.http, hashes, &mut |raw: &[u8]| raw.to_vec()))
        }
    }

    #[test]
    fn block_batches_match_ids_retry_warm_up_and_report_errors() {
        // A "block" is the last two bytes of its hash, in hex.
        let tail = |item: &Value| json!(item["params"][0].as_str().unwrap()[60..].to_string());
        let fake = fake_daemon(Box::new(move |n, req, _| {
            let items = req.as_array().unwrap();
            assert!(items.iter().all(|item| item["method"] == "getblock"));
            assert!(items.iter().all(|item| item["params"][1] == 0));
            let replies: Vec<Value> = match n {
                // Out of order: matched by id.
                0 => items.iter().rev().map(|i| result(i, tail(i))).collect(),
                // Warming up in one reply: the whole batch again.
                1 => vec![
                    result(&items[0], tail(&items[0])),
                    error(&items[1], -28, "Loading block index..."),
                ],
                2 => items.iter().map(|i| result(i, tail(i))).collect(),
                // A reply missing: the batch again.
                3 => vec![result(&items[0], tail(&items[0]))],
                4 => items.iter().map(|i| result(i, tail(i))).collect(),
                // An unknown block, under HTTP 500 as bitcoind answers it: an RPC error.
                5 => vec![
                    result(&items[0], tail(&items[0])),
                    error(&items[1], -5, "Block not found"),
                ],
                // Not hex.
                _ => items.iter().map(|i| result(i, json!("zz"))).collect(),
            };
            let status = if n == 5 { 500 } else { 200 };
            (status, Some(Value::Array(replies)))
        }));
        let daemon =
            Daemon::new(vec![url(fake.port, user_pass("u", "p"))], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 20);
        let mut client = daemon.client();
        let hashes: Vec<BlockHash> = [0xab01u64, 0xcd02]
            .iter()
            .map(|h| format!("{h:064x}").parse().unwrap())
            .collect();
        let blocks = client.get_blocks_rpc(&hashes).unwrap();
        assert_eq!(blocks, [vec![0xab, 0x01], vec![0xcd, 0x02]]);
        assert_eq!(client.get_blocks_rpc(&hashes).unwrap(), blocks);
        assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
        assert_eq!(client.get_blocks_rpc(&hashes).unwrap(), blocks);
        assert_eq!(fake.requests.load(Ordering::SeqCst), 5);
        match client.get_blocks_rpc(&hashes) {
            Err(DaemonError::Rpc { code: -5, message }) => assert_eq!(message, "Block not found"),
            other => panic!("{other:?}"),
        }
        let err = client.get_blocks_rpc(&hashes).unwrap_err();
        assert!(matches!(err, DaemonError::BadReply { .. }), "{err}");
        assert!(client.get_blocks_rpc(&[]).unwrap().is_empty());
        assert_eq!(fake.requests.load(Ordering::SeqCst), 7);
    }

    #[test]
    fn refused_port_gives_up_only_on_shutdown_or_when_asked_once() {
        let daemon = Daemon::new(
            vec![url(refused_port(), user_pass("u", "p"))],
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let err = daemon
            .client()
            .call_once::<u64>("getblockcount", &[])
            .unwrap_err();
        assert!(matches!(err, DaemonError::Unavailable(_)), "{err}");
        assert!(
            err.to_string().contains("check your daemon is running"),
            "{err}"
        );

        let (send, receive) = mpsc::channel();
        let mut client = daemon.client();
        thread::spawn(move || send.send(client.get_block_count()));
        assert!(
            receive.recv_timeout(Duration::from_millis(600)).is_err(),
            "still retrying"
        );
        daemon.shutdown();
        let outcome = receive.recv_timeout(Duration::from_secs(2)).unwrap();
        assert!(
            matches!(outcome, Err(DaemonError::ShuttingDown)),
            "{outcome:?}"
        );
    }

    #[test]
    fn fails_over_to_the_next_url_and_set_urls_switches_back() {
        let fake = fake_daemon(Box::new(|_, req, _| (200, Some(result(req, json!(3))))));
        let dead = url(refused_port(), user_pass("u", "p"));
        let live = url(fake.port, user_pass("u", "p"));
        let daemon = Daemon::new(vec![dead.clone(), live.clone()], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 20);
        let started = Instant::now();
        assert_eq!(daemon.client().get_block_count().unwrap(), Height::new(3));
        // 0.25 + 0.5 + 1 + 2 s of backoff on the dead URL, then failover.
        assert!(started.elapsed() >= Duration::from_millis(3700));
        assert_eq!(daemon.current_url(), live);
        daemon.set_urls(vec![dead.clone(), live]).unwrap();
        assert_eq!(daemon.current_url(), dead);
        assert_eq!(daemon.urls().len(), 2);
        assert!(daemon.set_urls(Vec::new()).is_err());
    }

    #[test]
    fn wrong_genesis_names_the_network_to_set() {
        let ltc_regtest = coins::lookup("Litecoin", "regtest").unwrap();
        let genesis = ltc_regtest.genesis_hex;
        let fake = fake_daemon(Box::new(move |_, req, _| {
            (200, Some(result(req, json!(genesis))))
        }));
        let daemon =
            Daemon::new(vec![url(fake.port, user_pass("u", "p"))], DEFAULT_TIMEOUT).unwrap();
        watchdog(&daemon, 10);
        let mut client = daemon.client();
        client.check_genesis(ltc_regtest).unwrap();
        let btc = coins::lookup("Bitcoin", "regtest").unwrap();
        let err = client.check_genesis(btc).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "the daemon's genesis block is {genesis}, but COIN=Bitcoin NET=regtest expects \
                 {}; the daemon serves COIN=Litecoin NET=regtest: set that, or point \
                 DAEMON_URL at the right daemon",
                btc.genesis_hex
            )
        );
    }

    fn find_program(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }

    struct Kill(Child);

    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn real_litecoind_regtest_with_cookie_auth() {
        let Some(litecoind) = find_program("litecoind") else {
            println!("skipped: litecoind is not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (rpc_port, p2p_port) = (refused_port(), refused_port());
        let child = Command::new(litecoind)
            .arg("-regtest")
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={p2p_port}"))
            .args(["-listen=0", "-connect=0", "-dnsseed=0", "-server=1"])
            .args(["-disablewallet", "-printtoconsole=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = Kill(child);
        let coin = coins::lookup("Litecoin", "regtest").unwrap();
        let cookie = coin.cookie_file(dir.path());
        let url = DaemonUrl::parse(&format!("127.0.0.1:{rpc_port}"), 0, Some(&cookie)).unwrap();
        let daemon = Daemon::new(vec![url], Duration::from_secs(10)).unwrap();
        watchdog(&daemon, 30);
        let mut client = daemon.client();

        // Retries through "connection refused", the missing cookie and warm-up (-28).
        assert_eq!(client.get_block_count().unwrap(), Height::new(0));
        client.check_genesis(coin).unwrap();
        let btc = coins::lookup("Bitcoin", "regtest").unwrap();
        assert!(client.check_genesis(btc).is_err());

        let script = from_hex("001462e907b15cbf27d5425399ebf6f0fb50ebb88f18").unwrap();
        let address = coin.script_to_address(&script).unwrap();
        let mined: Vec<String> = client
            .call("generatetoaddress", &[3.into(), address.into()])
            .unwrap();
        let hashes = client.get_block_hashes(Height::new(0), 4).unwrap();
        assert_eq!(hashes[0], coin.genesis_hash());
        let shown: Vec<String> = hashes[1..].iter().map(|h| h.to_string()).collect();
        assert_eq!(shown, mined);
        assert_eq!(client.get_best_block_hash().unwrap(), hashes[3]);

        let raw = client.get_block_raw(&hashes[3]).unwrap();
        let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&raw[..80]).unwrap();
        assert_eq!(header.block_hash(), hashes[3]);
        assert_eq!(client.get_blocks_raw(&hashes[2..]).unwrap()[1], raw);
        assert!(client.get_network_info().unwrap()["version"].is_u64());
        let err = client.get_block_hash(Height::new(99)).unwrap_err();
        assert!(matches!(err, DaemonError::Rpc { code: -8, .. }), "{err}");

        let _: Value = client.call("stop", &[]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            child.0.try_wait().unwrap().is_some(),
            "litecoind did not stop"
        );
    }
}
