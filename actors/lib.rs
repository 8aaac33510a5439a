//! The running ferrumx server: one file per actor, plus the plumbing they share. Listed
//! from the bottom layer up: a module uses those before it (and the actors of its layer).
//!
//! Plumbing:
//! - [`supervisor`]: restarts failed actors (with backoff) and counts the restarts.
//! - [`framing`]: newline framing with ElectrumX's MAX_RECV behaviour.
//! - [`tls`]: SSL_CERTFILE/SSL_KEYFILE loading and the TLS handshake for ssl and wss.
//! - [`gate`]: MAX_SESSIONS at the listeners' door.
//! - [`tables`]: the admin views of sessions and groups, in ElectrumX's form.
//!
//! The chain and the mempool:
//! - [`wake`]: the wake-ups of the instant paths, at most one of a kind waiting.
//! - [`prefetch`]: concurrent block download for the block processor.
//! - [`block_processor`]: the BlockProcessor actor, the index's single writer.
//! - [`mempool`]: the Mempool actor, which keeps the shared mempool in step with the daemon.
//! - [`notifier`]: the Notifier actor: subscriptions and who hears what.
//! - [`long_poll`]: instant blocks from a long-poll RPC of the daemon.
//! - [`zmq`]: instant blocks and transactions from the daemon's ZMQ notifications.
//!
//! Clients:
//! - [`group`]: the Group actor: a session group (subnet or time slice), its retained cost.
//! - [`session_manager`]: the SessionManager actor: sessions, groups, cost, limits.
//! - [`session`]: the Session actor, one per client connection.
//! - [`listener`]: accepts client connections and spreads sessions over arbiters.
//! - [`peers`]: the Peers actor: peer discovery and verification.
//!
//! Operators and the whole:
//! - [`shutdown`]: stopping cleanly (signals, the admin `stop`), or at once.
//! - [`admin`]: the Admin actor: ElectrumX's LocalRPC commands and the server's numbers.
//! - [`admin_listener`]: the `rpc://` service, whose commands the Admin actor answers.
//! - [`metrics`]: the Prometheus (and JSON) metrics endpoint on the `http://` service.
//! - [`server`]: start-up: wires the actors together and opens the listeners.

// Plumbing.
pub mod framing;
pub mod gate;
pub mod supervisor;
pub mod tables;
pub mod tls;

// The chain and the mempool.
pub mod block_processor;
pub mod long_poll;
pub mod mempool;
pub mod notifier;
pub mod prefetch;
pub mod wake;
pub mod zmq;

// Clients.
pub mod group;
pub mod listener;
pub mod peers;
pub mod session;
pub mod session_manager;

// Operators and the whole.
pub mod admin;
pub mod admin_listener;
pub mod metrics;
pub mod server;
pub mod shutdown;
