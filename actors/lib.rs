//! The running ferrumx server: one file per actor, plus the plumbing they share.
//!
//! - [`admin`]: the Admin actor and the `rpc://` listener (ElectrumX's LocalRPC).
//! - [`block_processor`]: the BlockProcessor actor, the index's single writer.
//! - [`mempool`]: the Mempool actor, which keeps the shared mempool in step with the daemon.
//! - [`notifier`]: the Notifier actor: subscriptions and who hears what.
//! - [`peers`]: the Peers actor: peer discovery and verification.
//! - [`prefetch`]: concurrent block download for the block processor.
//! - [`session`]: the Session actor, one per client connection.
//! - [`session_manager`]: the SessionManager actor: sessions, groups, cost, limits.
//! - [`group`]: a session group (subnet or time slice) and its retained cost.
//! - [`listener`]: accepts client connections and spreads sessions over arbiters.
//! - [`tls`]: SSL_CERTFILE/SSL_KEYFILE loading and the TLS handshake for ssl and wss.
//! - [`framing`]: newline framing with ElectrumX's MAX_RECV behaviour.
//! - [`metrics`]: the Prometheus (and JSON) metrics endpoint on the `http://` service.
//! - [`supervisor`]: restarts failed actors (with backoff) and counts the restarts.
//! - [`server`]: start-up and shutdown: wires the actors together.

pub mod admin;
pub mod block_processor;
pub mod framing;
pub mod group;
pub mod listener;
pub mod mempool;
pub mod metrics;
pub mod notifier;
pub mod peers;
pub mod prefetch;
pub mod server;
pub mod session;
pub mod session_manager;
pub mod supervisor;
pub mod tls;
