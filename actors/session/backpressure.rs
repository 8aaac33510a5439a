//! The session's two directions of flow: replies go through a bounded queue to a
//! writer task, which writes whatever has piled up in one system call; while too many
//! replies wait (or too many requests wait for a slot) the client's socket is no longer
//! read, and a client that takes none of its replies for a while is disconnected.

use super::Session;
use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Replies a session may have queued for a slow reader before it is disconnected.
pub(super) const OUTGOING_QUEUE: usize = 256;
/// Bytes of queued replies above which the client's socket is no longer read.
pub(super) const HIGH_WATER: usize = 1 << 20;
/// Requests waiting for a concurrency slot above which the socket is no longer read.
const MAX_WAITING: usize = 64;
/// A client whose replies are held back (reading paused) and that takes none of them
/// for this long is disconnected.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Shared by a session, the task writing its replies and the stream reading its
/// requests: reading pauses while too much is queued either way.
#[derive(Default)]
pub(super) struct Backpressure {
    /// Bytes queued for the writer.
    pub(super) queued: AtomicUsize,
    /// Requests waiting for a concurrency slot.
    pub(super) waiting: AtomicUsize,
    /// Replies the writer has taken: progress, for a paused client.
    pub(super) taken: AtomicUsize,
    /// The writer ended (the connection failed or a write stalled too long).
    pub(super) closed: AtomicBool,
    pub(super) wake: tokio::sync::Notify,
}

impl Backpressure {
    pub(super) fn reading_allowed(&self) -> bool {
        self.queued.load(Ordering::Acquire) < HIGH_WATER
            && self.waiting.load(Ordering::Acquire) < MAX_WAITING
    }

    /// Records how many requests wait for a slot, waking the reader when that lets it
    /// read again.
    pub(super) fn set_waiting(&self, waiting: usize) {
        let before = self.waiting.swap(waiting, Ordering::AcqRel);
        if before >= MAX_WAITING && waiting < MAX_WAITING {
            self.wake.notify_one();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    async fn wait_closed(&self) {
        while !self.is_closed() {
            self.wake.notified().await;
        }
    }
}

/// The replies of one session, in order, for the task that writes them (each ends with
/// a newline). Dropping it tells the session its connection is gone.
pub struct OutgoingQueue {
    pub(super) queue: mpsc::Receiver<Bytes>,
    pub(super) pressure: Arc<Backpressure>,
}

impl OutgoingQueue {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let bytes = self.queue.recv().await?;
        Some(self.taken(bytes))
    }

    /// The next reply if one is queued already.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let bytes = self.queue.try_recv().ok()?;
        Some(self.taken(bytes))
    }

    fn taken(&self, bytes: Bytes) -> Bytes {
        let before = self
            .pressure
            .queued
            .fetch_sub(bytes.len(), Ordering::AcqRel);
        self.pressure.taken.fetch_add(1, Ordering::AcqRel);
        // The reader waits only while too much is queued: waking it for every reply
        // would cost a task wake and a socket poll per notification sent.
        if before >= HIGH_WATER && before - bytes.len() < HIGH_WATER {
            self.pressure.wake.notify_one();
        }
        bytes
    }
}

impl Drop for OutgoingQueue {
    fn drop(&mut self) {
        self.pressure.closed.store(true, Ordering::Release);
        self.pressure.wake.notify_one();
    }
}

/// The session's incoming messages, read only while the session keeps up; ends when the
/// writer has ended.
pub(super) fn gated<S>(
    incoming: S,
    pressure: Arc<Backpressure>,
) -> impl futures_core::Stream<Item = S::Item> + 'static
where
    S: futures_core::Stream + 'static,
{
    futures_util::stream::unfold(
        (Box::pin(incoming), pressure),
        |(mut incoming, pressure)| async move {
            while !pressure.reading_allowed() && !pressure.is_closed() {
                pressure.wake.notified().await;
            }
            if pressure.is_closed() {
                return None;
            }
            let item = tokio::select! {
                item = incoming.next() => item?,
                () = pressure.wait_closed() => return None,
            };
            Some((item, (incoming, pressure)))
        },
    )
}

impl Session {
    pub(super) fn send(&mut self, text: String, ctx: &mut Context<Self>) {
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        let len = bytes.len();
        self.counters.send_count += 1;
        self.counters.send_size += len as u64;
        self.bump_cost(self.shared.limits.bandwidth_cost(len));
        let queued = self.pressure.queued.fetch_add(len, Ordering::AcqRel) + len;
        let limit = self.shared.max_send.saturating_mul(2) + HIGH_WATER;
        if queued > limit || self.outgoing.try_send(Bytes::from(bytes)).is_err() {
            log::info!(
                "session {} ({}) is not reading its replies: disconnecting",
                self.id,
                self.peer_text()
            );
            ctx.stop();
        }
    }

    /// A client that lets its replies pile up is no longer read; one that takes none of
    /// them for STALL_LIMIT is disconnected.
    pub(super) fn check_stall(&mut self, ctx: &mut Context<Self>) {
        if self.pressure.queued.load(Ordering::Acquire) < HIGH_WATER {
            self.stall = None;
            return;
        }
        let taken = self.pressure.taken.load(Ordering::Acquire);
        match self.stall {
            Some((seen, since)) if seen == taken => {
                if since.elapsed() >= STALL_LIMIT {
                    log::info!(
                        "session {} ({}) is not reading its replies: disconnecting",
                        self.id,
                        self.peer_text()
                    );
                    ctx.stop();
                }
            }
            _ => self.stall = Some((taken, Instant::now())),
        }
    }
}

/// How long one write may wait for a client to read (aiorpcX's `max_send_delay`):
/// past that the connection is dropped, even after the session ended.
const MAX_SEND_DELAY: Duration = Duration::from_secs(20);

/// Replies already queued are written together, up to this many bytes per write.
const WRITE_COALESCE: usize = 64 * 1024;

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut queue: OutgoingQueue) {
    let mut joined = Vec::new();
    while let Some(bytes) = queue.recv().await {
        // Replies that piled up while the last write ran leave in one system call.
        let mut out = &bytes[..];
        if bytes.len() < WRITE_COALESCE
            && let Some(next) = queue.try_recv()
        {
            joined.clear();
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&next);
            while joined.len() < WRITE_COALESCE
                && let Some(more) = queue.try_recv()
            {
                joined.extend_from_slice(&more);
            }
            out = &joined;
        }
        match tokio::time::timeout(MAX_SEND_DELAY, writer.write_all(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
    let _ = tokio::time::timeout(MAX_SEND_DELAY, writer.shutdown()).await;
}
