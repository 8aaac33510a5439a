//! A real regtest litecoind on loopback in a temporary directory, so end-to-end tests run
//! against the daemon ferrumx serves in production rather than a mock. The binary is
//! `litecoind` from PATH (Debian's is a wrapper script that execs
//! /usr/lib/litecoin/litecoind) or the one the LITECOIND variable names.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bitcoincore_rpc::jsonrpc::{self, simple_http::SimpleHttpTransport};
use bitcoincore_rpc::{Client, RpcApi};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{file_tail, free_port};

/// The wallet `start()` creates; `call` talks to it.
pub const MAIN_WALLET: &str = "main";
/// Litecoin regtest activates MWEB at this height.
pub const MWEB_ACTIVATION: u32 = 432;

const RPC_USER: &str = "ferrumx";
const RPC_PASSWORD: &str = "regtest";
/// Start-up includes loading the wallets; generous because several daemons and a build
/// may share two cores.
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for `generatetoaddress` of hundreds of blocks on a loaded machine.
const RPC_TIMEOUT: Duration = Duration::from_secs(180);
/// A freshly chosen port can be taken by another test before litecoind binds it. (The
/// P2P port is written to litecoin.conf but never bound: `listen=0`.)
const START_ATTEMPTS: usize = 3;

/// A running (or stopped) regtest litecoind. Drop stops it and deletes its directory.
pub struct Litecoind {
    dir: TempDir,
    rpc_port: u16,
    child: Option<Child>,
    client: Client,
    miner: String,
}

impl Litecoind {
    /// Starts a fresh regtest daemon with an empty chain and a wallet `main` (loaded again on
    /// every restart) holding the address `mine` pays to. Panics with the end of debug.log
    /// if it does not answer RPC in time.
    pub fn start() -> Litecoind {
        let mut dir = tempfile::Builder::new()
            .prefix("ferrumx-litecoind-")
            .tempdir()
            .expect("create litecoind temp dir");
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let rpc_port = free_port();
            let p2p_port = free_port();
            write_config(dir.path(), rpc_port, p2p_port);
            let mut node = Litecoind {
                client: rpc_client(rpc_port, MAIN_WALLET),
                dir,
                rpc_port,
                child: None,
                miner: String::new(),
            };
            match node.launch() {
                Ok(()) => {
                    node.call(
                        "createwallet",
                        json!([MAIN_WALLET, false, false, "", false, false, true]),
                    );
                    node.miner = str_of(node.call("getnewaddress", json!(["miner", "bech32"])));
                    return node;
                }
                Err(failure) => {
                    failures.push(failure.report);
                    // Only an early exit (most likely a port taken meanwhile) is worth a retry.
                    if !failure.exited {
                        break;
                    }
                    dir = node.take_dir();
                }
            }
        }
        panic!("litecoind did not start:\n{}", failures.join("\n---\n"));
    }

    /// The URL ferrumx's DAEMON_URL takes: `http://user:pass@127.0.0.1:PORT/`.
    pub fn daemon_url(&self) -> String {
        format!(
            "http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{}/",
            self.rpc_port
        )
    }

    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The RPC user name and password (for servers configured by file, as Fulcrum).
    pub fn rpc_credentials(&self) -> (&'static str, &'static str) {
        (RPC_USER, RPC_PASSWORD)
    }

    /// The data directory (litecoin.conf is here; chain data under `regtest/`).
    pub fn datadir(&self) -> &Path {
        self.dir.path()
    }

    pub fn debug_log(&self) -> PathBuf {
        self.dir.path().join("regtest").join("debug.log")
    }

    /// The address `mine` pays coinbases to (in the main wallet).
    pub fn miner_address(&self) -> &str {
        &self.miner
    }

    /// A blocking JSON-RPC call on the main wallet's endpoint (node methods work there too).
    /// `params` is a JSON array. Panics on any error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("litecoind RPC {method} failed: {e}"))
    }

    /// Like `call`, but returns the error (e.g. to assert an RPC error code).
    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, bitcoincore_rpc::Error> {
        self.client.call(method, &array(params))
    }

    /// A call on the endpoint of the named wallet.
    pub fn wallet_call(&self, wallet: &str, method: &str, params: Value) -> Value {
        self.try_wallet_call(wallet, method, params)
            .unwrap_or_else(|e| panic!("litecoind RPC {method} on wallet {wallet} failed: {e}"))
    }

    pub fn try_wallet_call(
        &self,
        wallet: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, bitcoincore_rpc::Error> {
        rpc_client(self.rpc_port, wallet).call(method, &array(params))
    }

    /// Mines `n` blocks to the miner address; returns their hashes.
    pub fn mine(&self, n: u32) -> Vec<String> {
        self.mine_to(n, &self.miner)
    }

    /// Mines `n` blocks paying `address`; returns their hashes. Block 432 cannot be mined
    /// without an MWEB peg-in (see `mweb_pegin`), so when the blocks reach it the main
    /// wallet makes one first.
    pub fn mine_to(&self, n: u32, address: &str) -> Vec<String> {
        let tip = self.height();
        if tip < MWEB_ACTIVATION && tip + n >= MWEB_ACTIVATION {
            let before = MWEB_ACTIVATION - 1 - tip;
            let mut hashes = self.generate(before, address);
            self.mweb_pegin();
            hashes.extend(self.generate(n - before, address));
            return hashes;
        }
        self.generate(n, address)
    }

    /// Sends 1 LTC from the main wallet to a new MWEB address; returns the txid of the
    /// canonical transaction. Litecoin regtest activates MWEB at height 432 and cannot
    /// mine that block unless it carries a peg-in (its HogEx would have no input), so one
    /// must be in the mempool at height 431. The wallet's change goes to MWEB as well; it
    /// still prefers canonical coins for canonical payments.
    pub fn mweb_pegin(&self) -> String {
        let address = self.call("getnewaddress", json!(["", "mweb"]));
        let txid = self
            .try_call("sendtoaddress", json!([address, "1.0"]))
            .unwrap_or_else(|e| {
                panic!(
                    "the MWEB peg-in block {MWEB_ACTIVATION} needs failed: {e}; main wallet \
                     balances: {}",
                    self.call("getbalances", json!([]))
                )
            });
        str_of(txid)
    }

    fn generate(&self, n: u32, address: &str) -> Vec<String> {
        if n == 0 {
            return Vec::new();
        }
        let hashes = self.call("generatetoaddress", json!([n, address]));
        hashes
            .as_array()
            .expect("generatetoaddress returns an array")
            .iter()
            .map(|h| str_of(h.clone()))
            .collect()
    }

    /// The height of the tip.
    pub fn height(&self) -> u32 {
        let count = self.call("getblockcount", json!([]));
        count.as_u64().expect("getblockcount returns a number") as u32
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("try_wait litecoind").is_none(),
            None => false,
        }
    }

    /// Clean shutdown through RPC `stop`; waits for the process to exit (kills it and
    /// panics if it lingers past 30 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self.client.call::<Value>("stop", &[]);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait().expect("try_wait litecoind").is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "litecoind did not stop within {STOP_TIMEOUT:?}; killed it. debug.log tail:\n{}",
            file_tail(&self.debug_log(), 30)
        );
    }

    /// SIGKILL: no flush, no clean shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The scriptPubKey (hex) of one of the node wallet's addresses.
    pub fn script_of(&self, address: &str) -> String {
        self.call("getaddressinfo", json!([address]))["scriptPubKey"]
            .as_str()
            .unwrap_or_else(|| panic!("no scriptPubKey for {address}"))
            .to_string()
    }

    /// A fresh address of the node's wallet (`kind`: legacy, p2sh-segwit, bech32) and its
    /// scriptPubKey (hex).
    pub fn new_address(&self, kind: &str) -> (String, String) {
        let address = self.call("getnewaddress", json!(["", kind]));
        let address = address.as_str().expect("getnewaddress").to_string();
        let script = self.script_of(&address);
        (address, script)
    }

    /// Adds `line` to litecoin.conf's regtest section and restarts the daemon with it.
    pub fn reconfigure(&mut self, line: &str) {
        let conf = self.dir.path().join("litecoin.conf");
        let mut settings = fs::read_to_string(&conf).expect("read litecoin.conf");
        settings.push_str(line);
        settings.push('\n');
        fs::write(&conf, settings).expect("write litecoin.conf");
        self.restart();
    }

    /// litecoind's shutdown waits for idle keep-alive RPC connections (a running
    /// ferrumx's) to time out, 30 s by default: tests that stop the daemon under a
    /// running server shorten that so a stop takes seconds.
    pub fn stop_quickly_under_clients(&mut self) {
        self.reconfigure("rpcservertimeout=2");
    }

    /// Stops the daemon if it runs, then starts it again on the same data directory and
    /// ports; its wallets load again. Panics if it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        self.client = rpc_client(self.rpc_port, MAIN_WALLET);
        if let Err(failure) = self.launch() {
            panic!("litecoind did not restart:\n{}", failure.report);
        }
    }

    /// Spawns litecoind and waits until RPC answers; on failure returns a report with the
    /// tails of its logs and leaves no process behind.
    fn launch(&mut self) -> Result<(), LaunchFailure> {
        let stderr_path = self.dir.path().join("stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("create litecoind stderr.log");
        let binary = std::env::var("LITECOIND").unwrap_or_else(|_| "litecoind".to_string());
        let child = Command::new(&binary)
            .arg(format!("-datadir={}", self.dir.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {binary} (set LITECOIND to its path): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = rpc_client(self.rpc_port, "");
        loop {
            if probe.call::<Value>("getblockchaininfo", &[]).is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait litecoind"));
            let problem = match exited {
                Some(status) => format!("litecoind exited with {status}"),
                None if Instant::now() > deadline => {
                    self.kill9();
                    format!("litecoind did not answer RPC within {START_TIMEOUT:?}")
                }
                None => {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            self.child = None;
            return Err(LaunchFailure {
                exited: exited.is_some(),
                report: format!(
                    "{problem} (rpc port {}, datadir {})\nstderr:\n{}\ndebug.log tail:\n{}",
                    self.rpc_port,
                    self.dir.path().display(),
                    file_tail(&stderr_path, 10),
                    file_tail(&self.debug_log(), 30)
                ),
            });
        }
    }

    /// Gives up the directory of a node that never started, to retry with other ports.
    fn take_dir(mut self) -> TempDir {
        let placeholder = tempfile::tempdir().expect("create temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

/// Why a launch failed: whether the process exited by itself, and the log tails.
struct LaunchFailure {
    exited: bool,
    report: String,
}

impl Drop for Litecoind {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self.client.call::<Value>("stop", &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `rpcthreads=16` is Bitcoin Core 29's default (litecoind 0.21 has 4): tests run several
/// servers on one daemon, and each ferrumx holds a thread with its long-poll.
fn write_config(dir: &Path, rpc_port: u16, p2p_port: u16) {
    let conf = format!(
        "regtest=1\n\
         [regtest]\n\
         rpcport={rpc_port}\n\
         port={p2p_port}\n\
         rpcbind=127.0.0.1\n\
         rpcallowip=127.0.0.1\n\
         rpcuser={RPC_USER}\n\
         rpcpassword={RPC_PASSWORD}\n\
         fallbackfee=0.0001\n\
         listen=0\n\
         dnsseed=0\n\
         discover=0\n\
         listenonion=0\n\
         upnp=0\n\
         rest=1\n\
         rpcthreads=16\n\
         txindex=0\n\
         acceptnonstdtxn=1\n\
         printtoconsole=0\n"
    );
    fs::write(dir.join("litecoin.conf"), conf).expect("write litecoin.conf");
}

/// A client for the node (`wallet` empty) or one wallet's endpoint.
fn rpc_client(port: u16, wallet: &str) -> Client {
    let url = if wallet.is_empty() {
        format!("http://127.0.0.1:{port}/")
    } else {
        format!("http://127.0.0.1:{port}/wallet/{wallet}")
    };
    let transport = SimpleHttpTransport::builder()
        .url(&url)
        .expect("valid RPC url")
        .timeout(RPC_TIMEOUT)
        .auth(RPC_USER, Some(RPC_PASSWORD))
        .build();
    Client::from_jsonrpc(jsonrpc::Client::with_transport(transport))
}

fn array(params: Value) -> Vec<Value> {
    match params {
        Value::Array(items) => items,
        other => panic!("RPC params must be a JSON array, got {other}"),
    }
}

fn str_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => panic!("expected a JSON string, got {other}"),
    }
}
