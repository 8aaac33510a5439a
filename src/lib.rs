//! ferrumx core: everything that is a rule rather than a running process. The modules
//! are listed by layer, the lowest first; a module builds on those of its own layer and
//! the layers before it.
//!
//! Foundations:
//! - [`python`]: Python's `int()`, `{:,d}`, `str()`/`repr()`, ElectrumX's formatted times.
//! - [`test_switches`]: the environment variables that exist only for the tests.
//! - [`rng`]: a small seeded generator for shuffles (and tests).
//! - [`net`]: which addresses are private (not globally reachable).
//! - [`http`]: the HTTP/1.1 client (a GET, the response read with bounded sizes).
//! - [`socks5`]: the SOCKS5 client messages (peers reached through Tor).
//!
//! The coin:
//! - [`hashes`]: HashX, ScriptHash, TxNum, Height and hex, the identifiers the index uses.
//! - [`coins`]: the networks ferrumx serves (genesis, ports, address formats, peers).
//!
//! The daemon and the configuration:
//! - [`rest`]: the daemon's binary REST interface, for fast block download.
//! - [`daemon`]: the coin daemon's JSON-RPC, with retry, failover and cookie auth.
//! - [`zmq`]: the daemon's ZMQ notifications (endpoints, messages).
//! - [`config`]: ElectrumX-compatible environment variables and `ferrumx` flags.
//!
//! The index:
//! - [`chain`]: parsing of raw blocks and transactions (segwit, Litecoin MWEB).
//! - [`memory`]: the memory ferrumx may use (cgroup limit or MemAvailable) and its budgets.
//! - [`schema`]: the index's tables: every key and value, encoded and decoded.
//! - [`store`]: the LMDB index (opening, identity, map growth, typed reads and writes).
//! - [`index`]: applying and undoing blocks in memory and flushing them to the store.
//! - [`sync_progress`]: the catch-up's progress and summary log lines.
//! - [`status`]: the status hash of a script's history.
//! - [`merkle`]: merkle branches for header checkpoints and transaction proofs.
//!
//! The mempool:
//! - [`mempool`]: the daemon's mempool as the protocol needs it, and the fee histogram.
//! - [`notifications`]: when block and mempool changes are announced to clients.
//!
//! Serving clients, peers and operators:
//! - [`cache`]: LRU and expiring caches shared by client sessions, with hit counters.
//! - [`latency`]: the request latency histogram behind the metrics.
//! - [`cost`]: session cost accounting and throttling (ElectrumX's anti-DoS model).
//! - [`subscription_caps`]: subscriptions counted per client address and in total.
//! - [`peers`]: peer discovery's rules: peers, their checks, `server.peers.subscribe`.
//! - [`protocol`]: Electrum protocol methods over a store snapshot.
//! - [`admin`]: the admin RPC's tables and `query` lines, as ElectrumX prints them.

// Foundations.
pub mod http;
pub mod net;
pub mod python;
pub mod rng;
pub mod socks5;
pub mod test_switches;

// The coin.
pub mod coins;
pub mod hashes;

// The daemon and the configuration.
pub mod config;
pub mod daemon;
pub mod rest;
pub mod zmq;

// The index.
pub mod chain;
pub mod index;
pub mod memory;
pub mod merkle;
pub mod schema;
pub mod status;
pub mod store;
pub mod sync_progress;

// The mempool.
pub mod mempool;
pub mod notifications;

// Serving clients, peers and operators.
pub mod admin;
pub mod cache;
pub mod cost;
pub mod latency;
pub mod peers;
pub mod protocol;
pub mod subscription_caps;
