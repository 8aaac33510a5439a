//! The BlockProcessor actor: the index's single writer. It follows the daemon's chain:
//! catches up with concurrent prefetch and large write transactions, then applies each
//! new block in its own transaction, and handles reorgs by undoing back to the fork
//! point. It runs on an arbiter (thread) of its own, since LMDB writes block.

mod index_upkeep;
mod sync_error;

pub use sync_error::SyncError;

use crate::prefetch::{Ahead, FetchError, Prefetcher, fetch_one};
use crate::supervisor::{Backoff, InjectPanic, catch_panic, injected_panic, record_restart};
use crate::wake::{self, TipChanged};
use actix::prelude::*;
use ferrumx::coins::Coin;
use ferrumx::daemon::{Daemon, DaemonClient, DaemonError};
use ferrumx::hashes::{HashX, Height};
use ferrumx::index::{IndexError, Indexer};
use ferrumx::memory::prefetch_bytes_for;
use ferrumx::sync_progress::{CatchUpTimes, Progress, blocks_line, summary_line};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often catch-up progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What one sync step did, for the notifier and the listeners.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChainUpdate {
    pub height: Height,
    pub header: [u8; 80],
    pub touched: Arc<HashSet<HashX>>,
    /// Blocks undone by a reorg during this step.
    pub undone: u32,
    pub daemon_height: Height,
}

pub struct BlockProcessor {
    indexer: Indexer,
    daemon: Daemon,
    client: DaemonClient,
    coin: &'static Coin,
    cache_bytes: usize,
    /// Parsed blocks waiting to be applied, at most (see [`ferrumx::memory`]).
    prefetch_bytes: usize,
    flush_blocks: usize,
    /// COMPACT_MIN_FREE_MB, in bytes.
    compact_min_free: u64,
    fetch_workers: usize,
    stop: Arc<AtomicBool>,
    first_sync: bool,
    poll_interval: Duration,
    on_caught_up: Option<tokio::sync::oneshot::Sender<ChainUpdate>>,
    on_update: Vec<Recipient<ChainUpdate>>,
    last_published: Option<(Height, [u8; 80])>,
    /// The daemon's genesis block was checked against COIN and NET.
    daemon_checked: bool,
    /// Delays between retries and restarts after failures; reset whenever the index
    /// moved on since the last failure.
    backoff: Backoff,
    /// The index's height at the last failure.
    height_at_failure: Option<Height>,
    /// When to poll first after (re)starting.
    start_delay: Duration,
    /// The next poll, cancelled when the daemon says its tip moved ([`TipChanged`]).
    next_poll: Option<SpawnHandle>,
    /// Test switch: a pause after each block applied (see [`ferrumx::test_switches`]).
    block_pause: Option<Duration>,
    /// The initial sync's compaction, due once its runs are merged.
    compact_after_merge: bool,
}

/// How the block processor is set up.
pub struct BlockProcessorSettings {
    pub coin: &'static Coin,
    pub cache_mb: usize,
    /// Flush after this many blocks during catch-up too (0: only when the cache is full).
    pub flush_blocks: u32,
    /// After the initial sync, compact the index when this many bytes of it are free.
    pub compact_min_free: u64,
    pub poll_interval: Duration,
    pub stop: Arc<AtomicBool>,
    /// Fired once, after the first catch-up: the server then opens its listeners.
    pub on_caught_up: tokio::sync::oneshot::Sender<ChainUpdate>,
    pub on_update: Vec<Recipient<ChainUpdate>>,
}

impl BlockProcessor {
    pub fn new(mut indexer: Indexer, daemon: Daemon, settings: BlockProcessorSettings) -> Self {
        indexer.stop_merges_on(Arc::clone(&settings.stop));
        let client = daemon.client();
        let fetch_workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8)
            + 1;
        BlockProcessor {
            indexer,
            daemon,
            client,
            coin: settings.coin,
            cache_bytes: settings.cache_mb.saturating_mul(1 << 20),
            prefetch_bytes: usize::try_from(prefetch_bytes_for(
                (settings.cache_mb as u64).saturating_mul(1 << 20),
            ))
            .unwrap_or(usize::MAX),
            flush_blocks: settings.flush_blocks as usize,
            compact_min_free: settings.compact_min_free,
            fetch_workers,
            stop: settings.stop,
            first_sync: true,
            poll_interval: settings.poll_interval,
            on_caught_up: Some(settings.on_caught_up),
            on_update: settings.on_update,
            last_published: None,
            daemon_checked: false,
            backoff: Backoff::default(),
            height_at_failure: None,
            block_pause: ferrumx::test_switches::block_pause(),
            start_delay: Duration::ZERO,
            next_poll: None,
            compact_after_merge: false,
        }
    }

    /// Throws away what is not committed (after a failure it may be half-applied) and
    /// carries on from the index's last commit: the daemon still has every block.
    fn reload_index(&mut self) {
        let (store, limit) = (Arc::clone(self.indexer.store()), self.indexer.reorg_limit());
        match Indexer::new(store, limit) {
            Ok(mut indexer) => {
                indexer.stop_merges_on(Arc::clone(&self.stop));
                self.indexer = indexer;
            }
            Err(e) => log::error!("cannot reload the index: {e}"),
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Brings the index to the daemon's tip.
    fn sync(&mut self) -> Result<ChainUpdate, SyncError> {
        if !self.daemon_checked {
            // Here rather than before start-up: a daemon that is down at start is waited
            // for (the daemon client retries) while the admin interface already answers.
            self.client.check_genesis(self.coin)?;
            self.daemon_checked = true;
        }
        let mut undone = 0;
        if self.indexer.height().is_none() {
            let genesis = self.client.get_block_hash(Height::GENESIS)?;
            let raw = self.client.get_block_raw(&genesis)?;
            let mut header = [0u8; 80];
            let Some(bytes) = raw.get(..80) else {
                return Err(SyncError::Fetch(Box::new(FetchError::Daemon {
                    height: Height::GENESIS,
                    source: DaemonError::BadReply {
                        method: "getblock".into(),
                        detail: "genesis block shorter than a header".into(),
                    },
                })));
            };
            header.copy_from_slice(bytes);
            self.indexer
                .apply_genesis(header, &self.coin.genesis_hash())?;
            self.indexer.flush()?;
        }
        let daemon_height = loop {
            let daemon_height = self.client.get_block_count()?;
            let our_height = self.indexer.height().unwrap_or(Height::GENESIS);
            let our_tip = self.indexer.tip();
            if daemon_height >= our_height {
                let daemon_hash = self.client.get_block_hash(our_height)?;
                if Some(daemon_hash) == our_tip {
                    if daemon_height == our_height {
                        break daemon_height;
                    }
                    match self.catch_up(our_height.next(), daemon_height)? {
                        CatchUp::Done => continue,
                        CatchUp::Reorg => {}
                    }
                }
            }
            undone += self.reorg()?;
        };
        // Runs left by a catch-up (or by a crash in their merge) are merged now, or just
        // after the server starts answering from them ([`Self::step`]).
        if !self.may_serve_from_runs() {
            self.merge_listed_runs()?;
        }
        let height = self.indexer.height().unwrap_or(Height::GENESIS);
        let snapshot = self.indexer.store().snapshot().map_err(IndexError::from)?;
        let header = snapshot
            .header(height)
            .map_err(IndexError::from)?
            .unwrap_or([0; 80]);
        drop(snapshot);
        Ok(ChainUpdate {
            height,
            header,
            touched: Arc::new(self.indexer.take_touched()),
            undone,
            daemon_height,
        })
    }

    fn catch_up(&mut self, from: Height, to: Height) -> Result<CatchUp, SyncError> {
        let started = Instant::now();
        let first_tx = self.indexer.tx_count();
        let big = to.blocks_after(from) > 10;
        // A catch-up that builds most of the index (the initial sync, or one resumed
        // early in it) writes runs and may rebuild the file after; a server restarted
        // after some downtime does not pay for a UTXO rebuild or a copy of the whole
        // index to catch up a few hours of blocks.
        let initial =
            big && self.first_sync && to.blocks_after(from) >= from.blocks_after(Height::GENESIS);
        if big {
            log::info!("catching up from height {} to {to}", from.saturating_sub(1));
        }
        // One new block (the usual case once caught up) comes on our own connection.
        let mut single = (from == to).then_some(from);
        let mut prefetcher = (from < to).then(|| {
            Prefetcher::start(
                &self.daemon,
                from..=to,
                self.fetch_workers,
                Ahead {
                    blocks: 64,
                    bytes: self.prefetch_bytes,
                },
                self.coin.mweb,
            )
        });
        // Before the first catch-up ends no client is connected, so none is subscribed,
        // and none reads the history before the runs are merged.
        self.indexer.track_touched(!self.first_sync);
        if initial {
            self.indexer.write_runs();
        }
        let mut last_log = Instant::now();
        let (mut blocks, mut log_txs) = (0u64, self.indexer.tx_count());
        let mut times = CatchUpTimes::default();
        loop {
            let wait_started = Instant::now();
            let next = match prefetcher.as_mut() {
                Some(prefetcher) => prefetcher.next_block(),
                None => single
                    .take()
                    .map(|h| (h, fetch_one(&mut self.client, h, self.coin.mweb))),
            };
            let Some((height, block)) = next else {
                break;
            };
            times.waiting += wait_started.elapsed();
            if self.stop_requested() {
                self.indexer.flush()?;
                return Err(SyncError::Stopping);
            }
            let block = block.map_err(Box::new)?;
            if Some(block.prev_hash) != self.indexer.tip() {
                log::info!(
                    "block {height} {} does not connect to our tip: reorg",
                    block.hash
                );
                return Ok(CatchUp::Reorg);
            }
            let keep_undo = height.saturating_add(self.indexer.reorg_limit()) > to;
            let apply_started = Instant::now();
            self.indexer.apply_block(&block, keep_undo)?;
            times.applying += apply_started.elapsed();
            blocks += 1;
            let enough_blocks =
                self.flush_blocks > 0 && self.indexer.pending_blocks() >= self.flush_blocks;
            if self.indexer.pending_bytes() >= self.cache_bytes || enough_blocks || !big {
                let flush_started = Instant::now();
                self.indexer.flush()?;
                times.flushing += flush_started.elapsed();
            }
            if let Some(pause) = self.block_pause {
                std::thread::sleep(pause);
            }
            if last_log.elapsed() >= PROGRESS_EVERY {
                let progress = Progress {
                    from,
                    to,
                    height,
                    blocks,
                    txs: self.indexer.tx_count() - log_txs,
                    interval: last_log.elapsed(),
                    elapsed: started.elapsed(),
                    pending_bytes: self.indexer.pending_bytes(),
                    cache_bytes: self.cache_bytes,
                };
                log::info!("{}", progress.line());
                last_log = Instant::now();
                blocks = 0;
                log_txs = self.indexer.tx_count();
            }
        }
        drop(prefetcher);
        let flush_started = Instant::now();
        // The runs stay listed: [`Self::sync`] or [`Self::step`] merges them.
        self.indexer.end_runs()?;
        times.flushing += flush_started.elapsed();
        let count = to.blocks_after(from) + 1;
        if !big && !self.first_sync {
            log::debug!("{}", blocks_line(to, count, started.elapsed(), times));
        }
        if big || self.first_sync {
            let txs = self.indexer.tx_count() - first_tx;
            let index_bytes = self.indexer.store().disk_size().unwrap_or(0);
            let summary = summary_line(to, count, txs, started.elapsed(), times, index_bytes);
            log::info!("{summary}");
        }
        // The compaction follows the merge of the runs.
        self.compact_after_merge |= initial;
        self.first_sync = false;
        self.indexer.track_touched(true);
        Ok(CatchUp::Done)
    }
}

enum CatchUp {
    Done,
    Reorg,
}

impl Actor for BlockProcessor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.stop_requested() {
            self.schedule_poll(ctx, self.start_delay);
        }
    }
}

impl Supervised for BlockProcessor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if self.stop_requested() {
            return;
        }
        self.reload_index();
        self.next_poll = None;
        self.start_delay = self.backoff.next_delay(Instant::now());
        record_restart("block_processor");
        log::warn!(
            "block processor restarting in {:?} from the index's last commit (height {:?})",
            self.start_delay,
            self.indexer.height()
        );
    }
}

impl BlockProcessor {
    /// Runs `work` with panics caught: a panic stops the actor, and its Supervisor
    /// restarts it ([`Supervised::restarting`]).
    fn guarded(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(&mut Self, &mut Context<Self>),
    ) {
        if catch_panic("block processor", || work(self, ctx)).is_err() {
            ctx.stop();
        }
    }
}

impl Handler<InjectPanic> for BlockProcessor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        self.guarded(ctx, |_, _| injected_panic("the block processor"));
    }
}

/// Follow the daemon: sync, publish, and schedule the next poll.
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

impl BlockProcessor {
    /// Syncs and tells the others. Returns when to poll next, `None` when stopping.
    fn step(&mut self, ctx: &mut Context<Self>) -> Option<Duration> {
        match self.sync() {
            Ok(update) => {
                if let Some(caught_up) = self.on_caught_up.take() {
                    let _ = caught_up.send(update.clone());
                }
                // Tell the others only when the chain changed.
                let tip = (update.height, update.header);
                if self.last_published != Some(tip) || !update.touched.is_empty() {
                    self.last_published = Some(tip);
                    for recipient in &self.on_update {
                        recipient.do_send(update.clone());
                    }
                }
                if self.indexer.runs_listed() > 0 {
                    log::info!(
                        "answering from the runs of {} flushes while they merge into the index",
                        self.indexer.runs_listed()
                    );
                }
                match self.merge_listed_runs() {
                    Ok(()) => Some(self.poll_interval),
                    Err(e) => self.failed(ctx, e),
                }
            }
            Err(e) => self.failed(ctx, e),
        }
    }

    /// After a failed sync or merge: when to try again, `None` when stopping.
    fn failed(&mut self, ctx: &mut Context<Self>, e: SyncError) -> Option<Duration> {
        match e {
            SyncError::Stopping | SyncError::Index(IndexError::MergeInterrupted) => {
                ctx.stop();
                None
            }
            e if e.is_fatal() => {
                log::error!("block processing cannot continue: {e}");
                System::current().stop_with_code(1);
                None
            }
            e => {
                // A failed write may leave the applied-but-unwritten blocks half-taken:
                // they are dropped and the retry starts from the last commit (a full
                // disk, say, failed a flush half-way). After a daemon error the blocks
                // applied in memory are whole and are kept.
                if matches!(e, SyncError::Index(_)) {
                    self.reload_index();
                }
                let height = self.indexer.height();
                if height > self.height_at_failure {
                    // Progress since the last failure: occasional errors while catching
                    // up must not stretch the retries.
                    self.backoff = Backoff::default();
                }
                self.height_at_failure = height;
                let delay = self.backoff.next_delay(Instant::now());
                if e.is_map_full() {
                    log::warn!("block processing: {e}; growing the map and retrying");
                    if let Err(e) = self.indexer.store().grow_map() {
                        log::error!("cannot grow the LMDB map: {e}");
                    }
                } else if e.is_out_of_space() {
                    log::error!(
                        "no space left to write the index in {} ({e}): it is intact at height \
                         {height:?}; free some space and ferrumx carries on (next try in {delay:?})",
                        self.indexer.store().dir()
                    );
                } else {
                    log::error!("block processing: {e}; retrying in {delay:?}");
                }
                Some(delay)
            }
        }
    }
}

impl BlockProcessor {
    /// Replaces the scheduled poll with one after `delay`.
    fn schedule_poll(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if let Some(handle) = self.next_poll.take() {
            ctx.cancel_future(handle);
        }
        self.next_poll = Some(ctx.notify_later(Poll, delay));
    }

    /// Syncs now and polls again a full interval later.
    fn poll_now(&mut self, ctx: &mut Context<Self>) {
        self.next_poll = None;
        if let Some(next) = self.step(ctx) {
            self.schedule_poll(ctx, next);
        }
    }
}

impl Handler<Poll> for BlockProcessor {
    type Result = ();

    // This actor has an arbiter (thread) of its own, so blocking here stalls nothing else.
    fn handle(&mut self, _: Poll, ctx: &mut Context<Self>) {
        self.guarded(ctx, Self::poll_now);
    }
}

/// The daemon's tip moved (its long-poll returned, or its ZMQ hashblock said so): sync
/// at once rather than at the next poll, which stays as the fallback.
impl Handler<TipChanged> for BlockProcessor {
    type Result = ();

    fn handle(&mut self, TipChanged(pending): TipChanged, ctx: &mut Context<Self>) {
        wake::taken(pending);
        if self.stop_requested() {
            return;
        }
        self.guarded(ctx, |processor, ctx| {
            if let Some(handle) = processor.next_poll.take() {
                ctx.cancel_future(handle);
            }
            processor.poll_now(ctx);
        });
    }
}

/// The admin `reorg` command: undo the last blocks, then sync back to the daemon's tip
/// (a simulated reorg, for testing clients and the server). Clamped to the index height.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceReorg(pub u32);

impl Handler<ForceReorg> for BlockProcessor {
    type Result = ();

    fn handle(&mut self, ForceReorg(count): ForceReorg, ctx: &mut Context<Self>) {
        self.guarded(ctx, |processor, ctx| {
            let above_genesis =
                (processor.indexer.height()).map_or(0, |h| h.blocks_after(Height::GENESIS));
            let count = count.min(above_genesis);
            log::info!("simulated reorg: undoing {count} blocks");
            if let Err(e) = processor.indexer.rollback(count) {
                log::error!("simulated reorg of {count} blocks refused: {e}");
                // A failed write (a full disk) may have taken blocks applied but not
                // written: carry on from the last commit, as after a failed sync.
                processor.reload_index();
            }
            // The regular poll stays scheduled; this sync only brings the tip back sooner.
            processor.step(ctx);
        });
    }
}

/// Write anything pending (used at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for BlockProcessor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.guarded(ctx, |processor, _| {
            if let Err(e) = processor.indexer.flush() {
                log::error!("flush at shutdown failed: {e}");
            }
        });
        ctx.stop();
    }
}
