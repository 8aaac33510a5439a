//! The listeners' door: MAX_SESSIONS counted as connections are accepted (ElectrumX's
//! `_manage_servers`), so that accepting pauses at the limit and resumes at 95% of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// MAX_SESSIONS at the door (ElectrumX's `_manage_servers`): the listeners wait on this
/// before accepting, and admit every connection they accept; the gate closes when the
/// admitted connections reach MAX_SESSIONS and opens again when they drop to 95% of it.
/// Counting at the door, rather than in the manager's registry, means a burst of
/// connections cannot slip in while registrations are still on their way.
#[derive(Clone)]
pub struct ListenerGate {
    inner: Arc<GateState>,
}

struct GateState {
    paused: watch::Sender<bool>,
    admitted: AtomicUsize,
    max_sessions: usize,
}

impl ListenerGate {
    pub fn new(max_sessions: usize) -> ListenerGate {
        ListenerGate {
            inner: Arc::new(GateState {
                paused: watch::Sender::new(false),
                admitted: AtomicUsize::new(0),
                max_sessions: max_sessions.max(1),
            }),
        }
    }

    /// Returns at once unless accepting is paused.
    pub async fn wait_open(&self) {
        let mut paused = self.inner.paused.subscribe();
        // The sender lives as long as this gate, so `wait_for` fails only on shutdown.
        let _ = paused.wait_for(|paused| !*paused).await;
    }

    /// A connection was accepted: it counts until its [`Admission`] is released.
    pub fn admit(&self) -> Admission {
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_add(1, Ordering::AcqRel) + 1;
        if count >= max && self.set_paused(true) {
            log::info!(
                "maximum sessions {max} reached, stopping new connections until count drops to {}",
                max * 19 / 20
            );
        }
        Admission {
            gate: Some(self.clone()),
        }
    }

    fn release(&self) {
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_sub(1, Ordering::AcqRel) - 1;
        if count <= max * 19 / 20 && self.set_paused(false) {
            log::info!("resuming listening for incoming connections");
        }
    }

    /// Whether this call changed the state.
    fn set_paused(&self, paused: bool) -> bool {
        self.inner.paused.send_if_modified(|current| {
            let changed = *current != paused;
            *current = paused;
            changed
        })
    }

    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }
}

/// One admitted connection; releasing it (or dropping it) makes room for another.
pub struct Admission {
    gate: Option<ListenerGate>,
}

impl Admission {
    pub fn release(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}
