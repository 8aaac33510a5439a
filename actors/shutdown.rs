//! Stopping the server: cleanly (SIGINT, SIGTERM, the admin `stop` command), or at once
//! on a second signal.

use crate::block_processor::Flush;
use actix::prelude::*;
use ferrumx::daemon::Daemon;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A clean stop: syncing stops at the next block, daemon calls give up, the index is
/// flushed, then the system (and so every listener and session) stops; the process
/// exits 0. Used on SIGINT/SIGTERM and by the admin `stop` command.
#[derive(Clone)]
pub struct Shutdown {
    /// Read by the block processor between blocks.
    stop: Arc<AtomicBool>,
    daemon: Daemon,
    /// The block processor, asked to flush once it has stopped syncing.
    flush: Recipient<Flush>,
}

impl Shutdown {
    pub fn new(stop: Arc<AtomicBool>, daemon: Daemon, flush: Recipient<Flush>) -> Shutdown {
        Shutdown {
            stop,
            daemon,
            flush,
        }
    }

    pub async fn run(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.daemon.shutdown();
        // Waits for the block processor to finish its current step (it flushes on stop).
        let _ = self.flush.send(Flush).await;
        System::current().stop();
    }
}

/// SIGINT or SIGTERM: a clean stop.
pub async fn on_signal(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => log::info!("SIGINT received: shutting down"),
        _ = terminate.recv() => log::info!("SIGTERM received: shutting down"),
    }
    // An operator who signals again does not want to wait for the flush: LMDB keeps the
    // last commit whole, and the next start resumes from it.
    actix_rt::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        log::warn!("second signal: exiting now, without waiting for the flush");
        std::process::exit(1);
    });
    shutdown.run().await;
}
