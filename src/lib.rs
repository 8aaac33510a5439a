//! ferrumx core: everything that is a rule rather than a running process.
//!
//! - [`admin`]: the admin RPC's tables and `query` lines, as ElectrumX prints them.
//! - [`hashes`]: HashX, ScriptHash, TxNum and hex, the identifiers the index uses.
//! - [`cache`]: LRU and expiring caches shared by client sessions, with hit counters.
//! - [`coins`]: the networks ferrumx serves (genesis, ports, address formats, quirks).
//! - [`cost`]: session cost accounting and throttling (ElectrumX's anti-DoS model).
//! - [`config`]: ElectrumX-compatible environment variables and `ferrumx` flags.
//! - [`chain`]: parsing of raw blocks and transactions (segwit, Litecoin MWEB).
//! - [`daemon`]: the coin daemon's JSON-RPC, with retry, failover and cookie auth.
//! - [`status`]: the status hash of a script's history.
//! - [`schema`]: the index's tables: every key and value, encoded and decoded.
//! - [`store`]: the LMDB index (schema, reads, writes, undo).
//! - [`index`]: applying and undoing blocks in memory and flushing them to the store.
//! - [`latency`]: the request latency histogram behind the metrics.
//! - [`memory`]: the memory ferrumx may use (cgroup limit or MemAvailable) and its budgets.
//! - [`mempool`]: the daemon's mempool as the protocol needs it, and the fee histogram.
//! - [`merkle`]: merkle branches for header checkpoints and transaction proofs.
//! - [`net`]: which addresses are private (not globally reachable).
//! - [`notifications`]: when block and mempool changes are announced to clients.
//! - [`peers`]: peer discovery's rules: peers, their checks, `server.peers.subscribe`.
//! - [`protocol`]: Electrum protocol methods over a store snapshot.
//! - [`rng`]: a small seeded generator for shuffles (and tests).
//! - [`rest`]: the daemon's binary REST interface, for fast block download.

pub mod admin;
pub mod cache;
pub mod chain;
pub mod coins;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod hashes;
pub mod index;
pub mod latency;
pub mod memory;
pub mod mempool;
pub mod merkle;
pub mod net;
pub mod notifications;
pub mod peers;
pub mod protocol;
pub mod rest;
pub mod rng;
pub mod schema;
pub mod status;
pub mod store;
