//! Instant blocks without ZMQ: a thread of its own holds a long-poll RPC on a daemon
//! connection of its own ([`ferrumx::daemon::LongPoll`]: `waitforblockheight`, else
//! `waitfornewblock`), which the daemon answers the moment its tip moves; the thread then
//! wakes the block processor ([`TipChanged`]). The processor's poll
//! (DAEMON_POLL_INTERVAL_BLOCKS) stays as the fallback: while the long-poll fails, or
//! for good when the daemon has neither call.
//!
//! The call occupies one of the daemon's RPC threads (`-rpcthreads`, 4 by default in
//! older releases) while it waits, so it starts only after the first catch-up, when
//! block download no longer needs them all.

use crate::wake::TipChanged;
use actix::prelude::*;
use ferrumx::daemon::{Daemon, DaemonClient, DaemonError, LongPoll, RPC_METHOD_NOT_FOUND, Tip};
use std::time::{Duration, Instant};

/// How long one call waits for a new tip: well under the client's socket timeout (30 s)
/// and the daemon's idle-connection timeout (`-rpcservertimeout`, 30 s by default).
const WAIT: Duration = Duration::from_secs(10);
/// After a failure the next call waits this long, doubling up to RETRY_MAX.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// A call that returns the tip it was told about well before its timeout (the daemon is
/// stopping) is not repeated at once.
const EARLY_RETURN_PAUSE: Duration = Duration::from_millis(250);
/// Pauses are cut into steps this long, so that shutdown is noticed promptly.
const PAUSE_STEP: Duration = Duration::from_millis(50);

/// Starts the long-poll thread; `poll_interval` is only quoted in the log. A failure to
/// start a thread is logged: polling goes on as before.
pub fn start(daemon: &Daemon, processor: Recipient<TipChanged>, poll_interval: Duration) {
    let watch = Watch {
        client: daemon.client(),
        daemon: daemon.clone(),
        processor,
        poll_interval,
    };
    if let Err(e) = std::thread::Builder::new()
        .name("long-poll".into())
        .spawn(move || watch.run())
    {
        log::error!(
            "cannot start the daemon long-poll thread ({e}); new blocks are noticed by polling"
        );
    }
}

struct Watch {
    client: DaemonClient,
    daemon: Daemon,
    processor: Recipient<TipChanged>,
    poll_interval: Duration,
}

impl Watch {
    fn run(mut self) {
        let mut how = LongPoll::WaitForBlockHeight;
        let mut known: Option<Tip> = None;
        let mut retry = RETRY_MIN;
        let mut failing = false;
        log::info!(
            "new blocks are noticed by a long-poll of the daemon ({}), with polling every {:?} \
             as the fallback",
            how.method(),
            self.poll_interval
        );
        while !self.daemon.is_shutting_down() {
            let asked = Instant::now();
            match self.client.wait_for_tip(how, known, WAIT) {
                Ok(tip) => {
                    if failing {
                        failing = false;
                        log::info!(
                            "the daemon's long-poll ({}) answers again: new blocks are noticed \
                             at once",
                            how.method()
                        );
                    }
                    retry = RETRY_MIN;
                    if known == Some(tip) {
                        if asked.elapsed() < WAIT / 2 {
                            self.pause(EARLY_RETURN_PAUSE);
                        }
                        continue;
                    }
                    let first = known.is_none();
                    known = Some(tip);
                    if !first {
                        log::debug!("the daemon's tip moved to {} {}", tip.height, tip.hash);
                    }
                    // Also on the first answer: a block may have come after the catch-up.
                    self.processor.do_send(TipChanged(None));
                }
                Err(DaemonError::ShuttingDown) => return,
                Err(DaemonError::Rpc {
                    code: RPC_METHOD_NOT_FOUND,
                    ..
                }) => match how.fallback() {
                    Some(next) => {
                        log::info!(
                            "the daemon has no {}: long-polling with {} instead",
                            how.method(),
                            next.method()
                        );
                        how = next;
                        known = None;
                    }
                    None => {
                        log::warn!(
                            "the daemon has neither waitforblockheight nor waitfornewblock: new \
                             blocks are noticed by polling every {:?} (DAEMON_POLL_INTERVAL_BLOCKS; \
                             or set DAEMON_ZMQ_HASHBLOCK)",
                            self.poll_interval
                        );
                        return;
                    }
                },
                Err(e) => {
                    if !failing {
                        failing = true;
                        log::warn!(
                            "the daemon's long-poll ({}) failed: {e}; new blocks are noticed by \
                             polling every {:?} until it answers again",
                            how.method(),
                            self.poll_interval
                        );
                    }
                    // The tip may move while nobody waits for it: ask afresh.
                    known = None;
                    self.pause(retry);
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Sleeps `delay`, or less if the server is stopping.
    fn pause(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        while !self.daemon.is_shutting_down() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(PAUSE_STEP));
        }
    }
}
