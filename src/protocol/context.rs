//! What every method may use besides its arguments: the query context (one index
//! snapshot, the mempool, the session's protocol), the state all sessions share (the
//! caches of the method families, the transactions broadcast) and the daemon helpers.

use super::RpcError;
use super::checkpoints::HeaderProofs;
use super::params::py_str_repr;
use super::version::ProtocolVersion;
use crate::cache::{Expiring, LruCache};
use crate::coins::Coin;
use crate::config::Service;
use crate::daemon::{DaemonError, DaemonPool};
use crate::hashes::{HashX, Height};
use crate::mempool::Mempool;
use crate::merkle::MerkleLevel;
use crate::peers::{PeerDirectory, PeerSettings};
use crate::store::{HistoryEntry, Snapshot};
use bitcoin::{BlockHash, Txid};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

/// What the `server.*` methods report and who may connect, fixed at start-up.
pub struct ServerInfo {
    pub coin: &'static Coin,
    pub donation_address: String,
    /// BANNER_FILE, relative paths resolved against DB_DIRECTORY (ElectrumX runs there).
    pub banner_file: Option<PathBuf>,
    pub report_services: Vec<Service>,
    /// The peers this server knows (kept by the Peers actor when discovery is on).
    pub peers: Arc<PeerDirectory>,
    /// DROP_CLIENT: clients whose name matches are refused at `server.version`.
    pub drop_client: Option<regex::Regex>,
    /// DAEMON_POLL_INTERVAL_MEMPOOL: how often mempool changes can be notified (the
    /// odds of protocol 1.7's noise pings).
    pub mempool_refresh: Duration,
    /// DAEMON_PASSTHROUGH_SUBNETS: clients that may call `daemon.passthrough`.
    pub passthrough_subnets: Vec<crate::net::Subnet>,
}

impl ServerInfo {
    /// Defaults for `coin`: no banner file, no donation address, nothing to report, no
    /// peer discovery.
    pub fn new(coin: &'static Coin) -> ServerInfo {
        ServerInfo {
            coin,
            donation_address: String::new(),
            banner_file: None,
            report_services: Vec::new(),
            peers: Arc::new(PeerDirectory::new(PeerSettings::disabled(coin))),
            drop_client: None,
            mempool_refresh: Duration::from_secs(5),
            passthrough_subnets: Vec::new(),
        }
    }
}

/// Entries of each LRU cache (ElectrumX's size for all of them).
const CACHE_ENTRIES: usize = 1000;
/// `blockchain.estimatefee` answers kept: every target class (1,011) in each of the
/// three modes.
const ESTIMATEFEE_ENTRIES: usize = 4096;
/// Histories kept in memory (ElectrumX keeps 1,000; ours are compact, so more).
const HISTORY_CACHE_ENTRIES: usize = 10_000;
/// How long `getnetworkinfo` and `getmempoolinfo` answers are reused.
const DAEMON_INFO_TTL: Duration = Duration::from_secs(60);

/// A block as caches key it: a height alone could name another block after a reorg.
pub type BlockKey = (Height, BlockHash);

/// What a query needs besides its arguments: one index snapshot (every read of the
/// request sees the same committed state), the session's protocol version, the server's
/// settings and shared state, and the daemon for the methods that ask it.
pub struct QueryContext<'a> {
    pub snapshot: &'a Snapshot<'a>,
    pub protocol: &'a ProtocolVersion,
    /// Histories of this many entries or more are refused ("history too large").
    pub history_limit: usize,
    /// MAX_SEND: the longest answer the session sends.
    pub max_send: usize,
    pub server: &'a ServerInfo,
    pub state: &'a QueryState,
    pub daemon: &'a DaemonPool,
    /// The mempool, read-locked only while a handler reads it (see [`Self::mempool`]).
    pub mempool_lock: &'a RwLock<Mempool>,
    /// The client's IP address, when there is a client (`server.add_peer` checks it).
    pub client_ip: Option<std::net::IpAddr>,
    /// Answered on a session's own thread, between other sessions' requests: a read
    /// longer than [`INLINE_HISTORY`] gives way to the blocking pool
    /// ([`super::work::HandlerError::NeedsBlockingPool`]).
    pub inline: bool,
}

impl<'a> QueryContext<'a> {
    /// The mempool, read-locked until the guard is dropped. A handler holds it for its
    /// reads and never across a daemon call: the mempool's refresh queues for its write
    /// lock, and every session's reads would queue behind that.
    pub fn mempool(&self) -> RwLockReadGuard<'a, Mempool> {
        self.mempool_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The longest history read on a session's own thread.
pub const INLINE_HISTORY: usize = 2000;

/// The state every session's queries share (one per server, behind an `Arc`): the
/// caches, as ElectrumX keeps them, and the count of transactions broadcast.
pub struct QueryState {
    /// Confirmed histories by script, valid for the chain tip they were read at: a new
    /// block or a reorg makes every entry miss, so none is ever stale.
    pub history_cache: LruCache<(HashX, BlockHash), Arc<Vec<HistoryEntry>>>,
    /// Transaction ids of a block, in block order.
    pub txids_cache: LruCache<BlockKey, Arc<Vec<Txid>>>,
    /// One level of the merkle tree of blocks with many transactions.
    pub merkle_cache: LruCache<BlockKey, Arc<MerkleLevel>>,
    /// What header proofs against a checkpoint keep between calls.
    pub header_proofs: HeaderProofs,
    /// `blockchain.estimatefee` answers, the daemon's refusals included, by (bucketed
    /// target, mode, chain tip): room for every target and mode at one tip.
    pub estimatefee_cache: LruCache<(u64, Option<String>, BlockHash), Result<Value, RpcError>>,
    pub network_info: Expiring<Value>,
    pub mempool_info: Expiring<Value>,
    /// Transactions broadcast for clients.
    pub txs_sent: AtomicU64,
}

impl Default for QueryState {
    fn default() -> QueryState {
        QueryState {
            history_cache: LruCache::new(HISTORY_CACHE_ENTRIES),
            txids_cache: LruCache::new(CACHE_ENTRIES),
            merkle_cache: LruCache::new(CACHE_ENTRIES),
            header_proofs: HeaderProofs::default(),
            estimatefee_cache: LruCache::new(ESTIMATEFEE_ENTRIES),
            network_info: Expiring::new(DAEMON_INFO_TTL),
            mempool_info: Expiring::new(DAEMON_INFO_TTL),
            txs_sent: AtomicU64::new(0),
        }
    }
}

/// A daemon call as the methods make it: `(method, params) -> result`. Production code
/// passes [`ask_daemon`]; tests pass fakes.
pub type DaemonCall<'a> = dyn FnMut(&str, &[Value]) -> Result<Value, DaemonError> + 'a;

/// One attempt at a daemon call: a client's request fails fast rather than waiting for
/// a daemon that is down.
pub fn ask_daemon(
    daemon: &DaemonPool,
    method: &str,
    params: &[Value],
) -> Result<Value, DaemonError> {
    daemon.call_once(method, params)
}

/// ElectrumX's `daemon_request`: an error the daemon returned, as the client sees it
/// (`daemon error: DaemonError({'code': -5, 'message': '...'})`, code 2). ElectrumX
/// would wait out a daemon that does not answer; ferrumx says so instead.
pub fn daemon_error(error: DaemonError) -> RpcError {
    match error {
        DaemonError::Rpc { code, message } => RpcError::new(
            RpcError::DAEMON_ERROR,
            format!(
                "daemon error: DaemonError({{'code': {code}, 'message': {}}})",
                py_str_repr(&message)
            ),
        ),
        other => {
            log::warn!("daemon request failed: {other}");
            RpcError::new(
                RpcError::DAEMON_ERROR,
                "daemon error: the daemon did not answer; try again later",
            )
        }
    }
}

/// A daemon answer without a field ElectrumX reads: ElectrumX fails with a `KeyError`,
/// which the client sees as an internal error.
pub fn missing_field(method: &str, field: &str) -> RpcError {
    log::error!("the daemon's {method} answer has no usable {field:?}");
    RpcError::internal()
}

/// `getnetworkinfo`, reused for a minute.
pub fn network_info(daemon: &mut DaemonCall, state: &QueryState) -> Result<Value, RpcError> {
    state
        .network_info
        .get_or_fetch(|| daemon("getnetworkinfo", &[]))
        .map_err(daemon_error)
}
