//! What a session's requests and notifications read: a fresh index snapshot and the
//! mempool, and whether they are read on the session's own thread.

use super::SessionShared;
use ferrumx::protocol::context::QueryContext;
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::store::StoreError;
use std::net::IpAddr;

/// Where a request is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// On the session's own thread, between other sessions' requests: a long read
    /// gives way to the blocking pool.
    Inline,
    BlockingPool,
}

/// Runs `f` against a fresh index snapshot and the mempool (read-locked only while a
/// handler reads it).
pub(super) fn with_query_context<R>(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    client_ip: Option<IpAddr>,
    place: Place,
    f: impl FnOnce(&QueryContext) -> R,
) -> Result<R, StoreError> {
    let snapshot = shared.store.snapshot()?;
    let ctx = QueryContext {
        snapshot: &snapshot,
        protocol,
        history_limit: shared.history_limit,
        max_send: shared.max_send,
        server: &shared.server,
        state: &shared.state,
        daemon: &shared.daemon,
        mempool_lock: &shared.mempool,
        client_ip,
        inline: place == Place::Inline,
    };
    Ok(f(&ctx))
}
