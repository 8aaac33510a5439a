//! Supervision: what restarts a failed actor, how soon, and the count operators see.
//!
//! The long-lived actors (BlockProcessor, Mempool, Notifier, Peers) run under actix's
//! `Supervisor`, which keeps an actor's address and mailbox and restarts it when it
//! *stops*, but not when a handler panics (a panic unwinds through the arbiter and the
//! actor is simply gone). So every handler of a supervised actor runs its work through
//! [`catch_panic`], and on a panic stops the actor; the Supervisor then calls its
//! `restarting`, where it rebuilds whatever state the panic may have left half-changed
//! (the index writer reloads from the last commit, the mempool starts afresh), and it
//! starts again after a [`Backoff`] delay. Listeners are tasks, restarted by
//! [`supervise_task`]. A client session that panics is closed: that client only.
//!
//! Restarts are counted per actor ([`restart_counts`]) for `getinfo` and the metrics.
//! `FERRUMX_TEST_FAULTS=1` turns on fault injection for the tests ([`faults_enabled`]):
//! the admin command `test_panic ACTOR` and the client method `ferrumx.test.panic`.

use actix::prelude::*;
use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The first restart waits this long; each failure soon after doubles it, up to
/// BACKOFF_MAX.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A failure this long after the previous one starts the backoff afresh.
pub const BACKOFF_RESET: Duration = Duration::from_secs(300);

static RESTARTS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Counts a restart of `actor`.
pub fn record_restart(actor: &'static str) {
    let mut restarts = RESTARTS.lock().unwrap_or_else(PoisonError::into_inner);
    *restarts.entry(actor).or_default() += 1;
}

/// Restarts since start-up, by actor (only actors that restarted).
pub fn restart_counts() -> BTreeMap<&'static str, u64> {
    RESTARTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Runs `work`, catching a panic: `Err` carries the panic's message, already logged.
/// `actor` is formatted only if it panicked (`format_args!` costs nothing otherwise).
pub fn catch_panic<R>(
    actor: impl std::fmt::Display,
    work: impl FnOnce() -> R,
) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        let message = panic_message(payload.as_ref());
        log::error!("{actor} panicked: {message}");
        message
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Delays between restarts of one actor: 1 s doubling to 60 s while failures come
/// within five minutes of each other, back to 1 s after a quiet spell.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
    last_failure: Option<Instant>,
}

impl Backoff {
    /// The delay before restarting after a failure at `now`.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        let recent = self
            .last_failure
            .is_some_and(|last| now.saturating_duration_since(last) < BACKOFF_RESET);
        let delay = match self.next {
            Some(next) if recent => next,
            _ => BACKOFF_MIN,
        };
        self.next = Some((delay * 2).min(BACKOFF_MAX));
        self.last_failure = Some(now);
        delay
    }
}

/// Runs the task `make()` builds, and builds and runs a new one after a backoff
/// whenever it panics or returns; the supervision of listeners. Ends when `make`
/// returns `None` (for instance when the address can no longer be bound).
pub async fn supervise_task<F, Fut>(name: &'static str, mut make: F)
where
    F: FnMut() -> Option<Fut>,
    Fut: Future<Output = ()> + 'static,
{
    let mut backoff = Backoff::default();
    while let Some(task) = make() {
        let outcome = actix_rt::spawn(task).await;
        let delay = backoff.next_delay(Instant::now());
        match outcome {
            Err(e) if e.is_panic() => {
                log::error!(
                    "{name} panicked: {}; restarting in {delay:?}",
                    panic_message(e.into_panic().as_ref())
                );
            }
            _ => log::error!("{name} ended; restarting in {delay:?}"),
        }
        record_restart(name);
        actix_rt::time::sleep(delay).await;
    }
}

/// Whether test-only fault injection is on (FERRUMX_TEST_FAULTS=1).
pub use ferrumx::test_switches::faults as faults_enabled;

/// Test-only: makes a supervised actor panic inside its guarded handler (see
/// [`faults_enabled`]).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// The panic the tests inject.
pub fn injected_panic(actor: &str) -> ! {
    panic!("fault injected into {actor} (FERRUMX_TEST_FAULTS)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_while_failures_come_close_and_resets_after_quiet() {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..8)
            .map(|i| backoff.next_delay(t0 + Duration::from_secs(i)).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        let later = t0 + Duration::from_secs(8) + BACKOFF_RESET;
        assert_eq!(backoff.next_delay(later), BACKOFF_MIN);
        assert_eq!(backoff.next_delay(later), Duration::from_secs(2));
    }

    #[test]
    fn panics_are_caught_with_their_message() {
        assert_eq!(catch_panic("test", || 7), Ok(7));
        let caught = catch_panic("test", || -> u8 { panic!("boom {}", 1) });
        assert_eq!(caught, Err("boom 1".to_string()));
        let caught = catch_panic("test", || -> u8 { panic!("static") });
        assert_eq!(caught, Err("static".to_string()));
        record_restart("test-actor");
        assert!(restart_counts()["test-actor"] >= 1);
    }
}
