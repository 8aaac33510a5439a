//! ferrumx core: everything that is a rule rather than a running process.
//!
//! - [`hashes`]: HashX, ScriptHash, TxNum and hex, the identifiers the index uses.
//! - [`coins`]: the networks ferrumx serves (genesis, ports, address formats, quirks).
//! - [`config`]: ElectrumX-compatible environment variables and `ferrumx` flags.
//! - [`chain`]: parsing of raw blocks and transactions (segwit, Litecoin MWEB).
//! - [`daemon`]: the coin daemon's JSON-RPC, with retry, failover and cookie auth.
//! - [`store`]: the LMDB index (schema, reads, writes, undo).
//! - [`index`]: applying and undoing blocks in memory and flushing them to the store.
//! - [`merkle`]: merkle branches for header checkpoints and transaction proofs.
//! - [`protocol`]: Electrum protocol methods over a store snapshot.
//! - [`rest`]: the daemon's binary REST interface, for fast block download.

pub mod chain;
pub mod coins;
pub mod config;
pub mod daemon;
pub mod hashes;
pub mod index;
pub mod merkle;
pub mod protocol;
pub mod rest;
pub mod store;
