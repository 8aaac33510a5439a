//! The wake-ups the instant paths ([`crate::long_poll`], [`crate::zmq`]) send to the
//! block processor and the mempool, and [`Pending`], which keeps at most one block
//! wake-up waiting in a mailbox: a daemon in initial sync publishes a hashblock per block,
//! which must cost one sync, not one per message (the announced transactions queue in
//! [`Announcements`], which does the same for them).

use actix::prelude::*;
use ferrumx::zmq::Announcements;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The daemon's tip moved: sync at once rather than at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TipChanged(pub Option<Pending>);

/// The daemon announced new transactions: the mempool takes them from the queue (one
/// message is sent while the queue holds anything, see [`Announcements::push`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TxNoticed(pub Arc<Announcements>);

/// Whether a wake-up is waiting in a mailbox.
#[derive(Clone, Default)]
pub struct Pending(Arc<AtomicBool>);

impl Pending {
    /// True when no wake-up was waiting: the caller sends one.
    pub fn arm(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// Called by the receiver before it acts, so that news arriving meanwhile wakes it
    /// again.
    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Clears the wake-up's mark, if it carries one.
pub fn taken(pending: Option<Pending>) {
    if let Some(pending) = pending {
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wake_up_waits_at_a_time() {
        let pending = Pending::default();
        assert!(pending.arm(), "nothing waiting: send one");
        assert!(!pending.arm(), "one waiting: it covers this");
        let copy = pending.clone();
        taken(Some(copy));
        assert!(pending.arm(), "taken: the next one is sent");
        taken(None);
        assert!(!pending.arm());
    }
}
