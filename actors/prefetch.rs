//! Concurrent block download for the block processor: worker threads, each with its
//! own daemon connection, fetch and parse blocks ahead of the one being applied, and
//! hand them over in height order. A window of blocks and a budget of bytes bound how
//! far ahead they run, so memory stays flat however far behind the index is and however
//! big the blocks are.

use ferrumx::chain::{ParseError, ParsedBlock, parse_block};
use ferrumx::daemon::{Daemon, DaemonClient, DaemonError};
use ferrumx::hashes::Height;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Blocks a worker claims at once (one batched `getblockhash`).
const CHUNK: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("daemon error while fetching block {height}: {source}")]
    Daemon { height: Height, source: DaemonError },
    #[error("cannot parse block {height} ({hash}) from the daemon: {source}")]
    Parse {
        height: Height,
        hash: String,
        source: ParseError,
    },
}

/// How far ahead of the block being applied the workers may run.
#[derive(Clone, Copy, Debug)]
pub struct Ahead {
    pub blocks: u32,
    /// Parsed blocks fetched but not yet taken, in bytes ([`ParsedBlock::heap_bytes`]).
    pub bytes: usize,
}

struct Shared {
    /// Next height no worker has claimed yet.
    next_claim: AtomicU32,
    /// Height the consumer will take next; workers stay within `ahead` of it.
    consumed: Mutex<Height>,
    progress: Condvar,
    stop: AtomicBool,
    /// Bytes of the parsed blocks handed over and not yet taken by the consumer.
    bytes_ahead: AtomicUsize,
}

/// Fetches blocks `from..=to` in parallel; yields them in order through [`Self::next_block`].
pub struct Prefetcher {
    shared: Arc<Shared>,
    receiver: Receiver<(Height, Result<ParsedBlock, FetchError>)>,
    reorder: BTreeMap<Height, Result<ParsedBlock, FetchError>>,
    next_height: Height,
    to: Height,
    workers: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn start(
        daemon: &Daemon,
        heights: RangeInclusive<Height>,
        workers: usize,
        ahead: Ahead,
        allow_mweb: bool,
    ) -> Prefetcher {
        let (from, to) = (*heights.start(), *heights.end());
        let shared = Arc::new(Shared {
            next_claim: AtomicU32::new(from.to_u32()),
            consumed: Mutex::new(from),
            progress: Condvar::new(),
            stop: AtomicBool::new(false),
            bytes_ahead: AtomicUsize::new(0),
        });
        let (sender, receiver) = sync_channel(ahead.blocks as usize + CHUNK as usize);
        let handles = (0..workers.max(1))
            .map(|_| {
                let shared = Arc::clone(&shared);
                let sender = sender.clone();
                let daemon = daemon.clone();
                std::thread::Builder::new()
                    .name("prefetch".into())
                    .spawn(move || fetch_loop(&daemon, &shared, &sender, to, ahead, allow_mweb))
            })
            .filter_map(|spawned| match spawned {
                Ok(handle) => Some(handle),
                Err(e) => {
                    log::error!("cannot start a block fetch thread: {e}");
                    None
                }
            })
            .collect();
        Prefetcher {
            shared,
            receiver,
            reorder: BTreeMap::new(),
            next_height: from,
            to,
            workers: handles,
        }
    }

    /// The next block in height order; `None` once `to` has been returned or the
    /// workers are gone.
    pub fn next_block(&mut self) -> Option<(Height, Result<ParsedBlock, FetchError>)> {
        if self.next_height > self.to {
            return None;
        }
        loop {
            if let Some(block) = self.reorder.remove(&self.next_height) {
                if let Ok(parsed) = &block {
                    self.shared
                        .bytes_ahead
                        .fetch_sub(parsed.heap_bytes(), Ordering::SeqCst);
                }
                let height = self.next_height;
                self.next_height = self.next_height.next();
                if let Ok(mut consumed) = self.shared.consumed.lock() {
                    *consumed = self.next_height;
                }
                self.shared.progress.notify_all();
                return Some((height, block));
            }
            match self.receiver.recv() {
                Ok((height, block)) => {
                    self.reorder.insert(height, block);
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.progress.notify_all();
        // Unblock workers waiting on a full channel.
        while self.receiver.try_recv().is_ok() {}
        for handle in self.workers.drain(..) {
            while !handle.is_finished() {
                while self.receiver.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let _ = handle.join();
        }
    }
}

/// One block on the caller's own connection: a new block once caught up needs no
/// threads, and the connection (REST or JSON-RPC) is already open.
pub fn fetch_one(
    client: &mut DaemonClient,
    height: Height,
    allow_mweb: bool,
) -> Result<ParsedBlock, FetchError> {
    let daemon_error = |source| FetchError::Daemon { height, source };
    let hash = client.get_block_hash(height).map_err(daemon_error)?;
    let raw = client
        .get_blocks_raw(&[hash])
        .map_err(daemon_error)?
        .pop()
        .ok_or_else(|| {
            daemon_error(DaemonError::BadReply {
                method: "getblock".into(),
                detail: format!("no block {hash} in the reply"),
            })
        })?;
    parse_block(&raw, allow_mweb).map_err(|source| FetchError::Parse {
        height,
        hash: hash.to_string(),
        source,
    })
}

fn fetch_loop(
    daemon: &Daemon,
    shared: &Shared,
    sender: &SyncSender<(Height, Result<ParsedBlock, FetchError>)>,
    to: Height,
    ahead: Ahead,
    allow_mweb: bool,
) {
    let mut client = daemon.client();
    loop {
        let start = Height::new(shared.next_claim.fetch_add(CHUNK, Ordering::SeqCst));
        if start > to || shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let end = start.saturating_add(CHUNK - 1).min(to);
        // Wait until the consumer is close enough and has taken enough of what is
        // ahead; the chunk it waits for always goes, or nothing would move.
        {
            let Ok(mut consumed) = shared.consumed.lock() else {
                return;
            };
            let too_far = |consumed: Height| {
                start > consumed.saturating_add(ahead.blocks)
                    || (start > consumed && shared.bytes_ahead.load(Ordering::SeqCst) > ahead.bytes)
            };
            while too_far(*consumed) && !shared.stop.load(Ordering::SeqCst) {
                consumed = match shared.progress.wait(consumed) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let hashes = match client.get_block_hashes(start, end.blocks_after(start) + 1) {
            Ok(hashes) => hashes,
            Err(source) => {
                let _ = sender.send((
                    start,
                    Err(FetchError::Daemon {
                        height: start,
                        source,
                    }),
                ));
                return;
            }
        };
        // One batched request for the chunk's blocks, each parsed from the client's
        // buffer as it is decoded.
        let parsed = client.get_blocks_with(&hashes, |raw| parse_block(raw, allow_mweb));
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(source) => {
                let _ = sender.send((
                    start,
                    Err(FetchError::Daemon {
                        height: start,
                        source,
                    }),
                ));
                return;
            }
        };
        for (offset, (hash, block)) in hashes.iter().zip(parsed).enumerate() {
            // Within the chunk, so at most `end`.
            let height = start.saturating_add(offset as u32);
            let block = block.map_err(|source| FetchError::Parse {
                height,
                hash: hash.to_string(),
                source,
            });
            let failed = block.is_err();
            if let Ok(parsed) = &block {
                shared
                    .bytes_ahead
                    .fetch_add(parsed.heap_bytes(), Ordering::SeqCst);
            }
            if sender.send((height, block)).is_err() || failed {
                return;
            }
        }
    }
}
