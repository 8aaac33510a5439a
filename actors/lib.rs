//! The running ferrumx server: one file per actor, plus the plumbing they share.
//!
//! - [`block_processor`]: the BlockProcessor actor, the index's single writer.
//! - [`prefetch`]: concurrent block download for the block processor.
//! - [`session`]: the Session actor, one per client connection.
//! - [`listener`]: accepts client connections and spreads sessions over arbiters.
//! - [`framing`]: newline framing with ElectrumX's MAX_RECV behaviour.
//! - [`server`]: start-up and shutdown: wires the actors together.

pub mod block_processor;
pub mod framing;
pub mod listener;
pub mod prefetch;
pub mod server;
pub mod session;
