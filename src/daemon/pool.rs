//! The daemon clients request handlers share, and the cap on how many client requests
//! the daemon is asked at once.

use super::{Daemon, DaemonClient, DaemonError, lock};
use serde_json::Value;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Daemon clients for request handlers on the blocking pool: each call borrows an idle
/// client (one connection each) or makes one, and gives it back.
pub struct DaemonPool {
    daemon: Daemon,
    idle: Mutex<Vec<DaemonClient>>,
    /// Client calls under way, at most [`MAX_CLIENT_CALLS`].
    calls: Mutex<usize>,
    call_ended: Condvar,
}

/// Client requests the daemon is asked at once, as ElectrumX's daemon work queue: a
/// flood of daemon-backed requests waits its turn instead of piling onto the daemon,
/// whose RPC threads the block processor and the mempool need too.
pub const MAX_CLIENT_CALLS: usize = 10;

impl DaemonPool {
    pub fn new(daemon: Daemon) -> DaemonPool {
        DaemonPool {
            daemon,
            idle: Mutex::new(Vec::new()),
            calls: Mutex::new(0),
            call_ended: Condvar::new(),
        }
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// One attempt at `method` for a client, once fewer than [`MAX_CLIENT_CALLS`] are
    /// under way; waiting longer than the daemon's own timeout fails.
    pub fn call_once(&self, method: &str, params: &[Value]) -> Result<Value, DaemonError> {
        let _slot = self.take_slot()?;
        let taken = lock(&self.idle).pop();
        let mut client = taken.unwrap_or_else(|| self.daemon.client());
        let result = client.call_once(method, params);
        lock(&self.idle).push(client);
        result
    }

    fn take_slot(&self) -> Result<CallSlot<'_>, DaemonError> {
        let deadline = Instant::now() + self.daemon.shared.timeout;
        let mut calls = lock(&self.calls);
        while *calls >= MAX_CLIENT_CALLS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DaemonError::Unavailable(format!(
                    "{MAX_CLIENT_CALLS} client requests to the daemon have been under way \
                     for longer than its timeout"
                )));
            }
            calls = self
                .call_ended
                .wait_timeout(calls, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *calls += 1;
        Ok(CallSlot { pool: self })
    }

    /// Client calls under way.
    pub fn calls_under_way(&self) -> usize {
        *lock(&self.calls)
    }
}

/// A client call's place among the [`MAX_CLIENT_CALLS`], given back when dropped.
struct CallSlot<'a> {
    pool: &'a DaemonPool,
}

impl Drop for CallSlot<'_> {
    fn drop(&mut self) {
        *lock(&self.pool.calls) -= 1;
        self.pool.call_ended.notify_one();
    }
}
