//! The Mempool actor: keeps the shared [`ferrumx::mempool::Mempool`] in step with the daemon's, as
//! ElectrumX's mempool loop does. Each refresh lists the daemon's mempool, fetches and
//! parses the new transactions, resolves their confirmed inputs from the index, then
//! applies everything under a brief write lock and tells the notifier which scripts
//! changed. A refresh runs only while the index is at the daemon's height, so that the
//! mempool never mixes with a block the index has not applied yet. Beside it,
//! `mempool/announced.rs` adds the transactions ZMQ `hashtx` announces, alone.
//!
//! It blocks on the daemon and the index, so it runs on an arbiter (thread) of its own.

mod announced;

use crate::supervisor::{Backoff, InjectPanic, catch_panic, injected_panic, record_restart};
use crate::wake::TxNoticed;
use actix::prelude::*;
use bitcoin::{OutPoint, Txid};
use ferrumx::chain::{ParseError, ParsedTx, parse_tx};
use ferrumx::coins::Coin;
use ferrumx::daemon::{Daemon, DaemonClient, DaemonError};
use ferrumx::hashes::{HashX, Height, from_hex};
use ferrumx::mempool::SharedMempool;
use ferrumx::store::{Store, StoreError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// Transactions asked for in one `getrawtransaction` batch (as ElectrumX).
const FETCH_BATCH: usize = 200;
/// How soon to look again when the index is not at the daemon's height (a block is being
/// applied).
const BEHIND_RETRY: Duration = Duration::from_millis(250);
/// How long to wait after a failed refresh.
const ERROR_RETRY: Duration = Duration::from_secs(1);

/// The mempool was refreshed against the index at `height`; `touched` holds the scripts
/// whose mempool transactions changed. Sent whenever something was touched, and after
/// every height change even if nothing was.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MempoolUpdate {
    pub height: Height,
    pub touched: Arc<HashSet<HashX>>,
    /// Transactions that entered or left the mempool (for transaction subscriptions).
    pub txids: Arc<HashSet<Txid>>,
}

/// Refresh now (after a new block, or a broadcast) rather than at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("cannot read the index: {0}")]
    Store(#[from] StoreError),
    #[error("the daemon's getrawmempool listed {0:?}, which is not a transaction hash")]
    BadTxid(String),
}

/// How the Mempool actor is set up.
pub struct MempoolSettings {
    pub coin: &'static Coin,
    /// DAEMON_POLL_INTERVAL_MEMPOOL.
    pub poll_interval: Duration,
    /// Fired once, after the first successful refresh: the server then opens its
    /// listeners.
    pub on_synced: tokio::sync::oneshot::Sender<MempoolUpdate>,
    pub on_update: Vec<Recipient<MempoolUpdate>>,
}

pub struct MempoolActor {
    mempool: SharedMempool,
    client: DaemonClient,
    store: Arc<Store>,
    coin: &'static Coin,
    poll_interval: Duration,
    histogram_refresh: Duration,
    on_synced: Option<tokio::sync::oneshot::Sender<MempoolUpdate>>,
    on_update: Vec<Recipient<MempoolUpdate>>,
    /// Listed transactions that can never be indexed (Litecoin MWEB ones, unparsable
    /// ones): not fetched again while the daemon keeps them.
    unindexable: HashSet<Txid>,
    /// How many transactions the last refresh dropped.
    dropped: usize,
    next_poll: Option<SpawnHandle>,
    /// When `next_poll` fires.
    next_poll_at: Option<Instant>,
    /// When the last refresh ended, and how long it took.
    last_refresh: Option<(Instant, Duration)>,
    /// Publish the next refresh whatever it touched (set by [`Refresh`]).
    announce_next: bool,
    /// The daemon is shutting down: nothing more to do.
    stopping: bool,
    backoff: Backoff,
    /// When to refresh first after (re)starting.
    start_delay: Duration,
}

/// The confirmed outputs mempool transactions spend: each one's script and value.
type ConfirmedInputs = HashMap<OutPoint, (HashX, u64)>;

/// What one refresh did.
struct Synced {
    height: Height,
    height_changed: bool,
    touched: HashSet<HashX>,
    /// Transactions added or removed.
    txids: HashSet<Txid>,
    txs: usize,
    added: usize,
    removed: usize,
    dropped: usize,
}

impl MempoolActor {
    pub fn new(
        mempool: SharedMempool,
        daemon: &Daemon,
        store: Arc<Store>,
        settings: MempoolSettings,
    ) -> MempoolActor {
        MempoolActor {
            mempool,
            client: daemon.client(),
            store,
            coin: settings.coin,
            poll_interval: settings.poll_interval,
            histogram_refresh: settings.coin.histogram_refresh(),
            on_synced: Some(settings.on_synced),
            on_update: settings.on_update,
            unindexable: HashSet::new(),
            dropped: 0,
            next_poll: None,
            next_poll_at: None,
            last_refresh: None,
            announce_next: false,
            stopping: false,
            backoff: Backoff::default(),
            start_delay: Duration::ZERO,
        }
    }

    /// Runs `work` with panics caught: a panic stops the actor, and its Supervisor
    /// restarts it ([`Supervised::restarting`]).
    fn guarded(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(&mut Self, &mut Context<Self>),
    ) {
        if catch_panic("mempool", || work(self, ctx)).is_err() {
            ctx.stop();
        }
    }

    /// Refreshes, publishes, and schedules the next poll.
    fn run(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.next_poll.take() {
            ctx.cancel_future(handle);
        }
        let started = Instant::now();
        let refreshed = self.refresh();
        self.last_refresh = Some((Instant::now(), started.elapsed()));
        let delay = match refreshed {
            Ok(Some(synced)) => {
                log::debug!(
                    "mempool: {} txs at height {} (+{} -{}, {} dropped), {} scripts touched, \
                     in {} ms",
                    synced.txs,
                    synced.height,
                    synced.added,
                    synced.removed,
                    synced.dropped,
                    synced.touched.len(),
                    started.elapsed().as_millis()
                );
                self.publish(synced);
                self.poll_interval
            }
            Ok(None) => {
                log::debug!(
                    "mempool: the index is not at the daemon's height yet; retrying shortly"
                );
                BEHIND_RETRY.min(self.poll_interval)
            }
            Err(MempoolError::Daemon(DaemonError::ShuttingDown)) => {
                self.stopping = true;
                ctx.stop();
                return;
            }
            Err(e) => {
                log::error!("mempool refresh failed: {e}; retrying");
                self.poll_interval.max(ERROR_RETRY)
            }
        };
        self.schedule(ctx, delay);
    }

    /// A full refresh soon, taking at most a fifth of the time
    /// ([`ferrumx::mempool::tx_refresh_delay`]): for announcements that cannot be added
    /// on their own.
    fn refresh_soon(&mut self, ctx: &mut Context<Self>) {
        let delay = self.last_refresh.map_or(Duration::ZERO, |(ended, took)| {
            ferrumx::mempool::tx_refresh_delay(ended.elapsed(), took)
        });
        let due = Instant::now().checked_add(delay);
        // A refresh due sooner already covers these transactions.
        if self
            .next_poll_at
            .is_some_and(|at| due.is_none_or(|due| at <= due))
        {
            return;
        }
        if delay.is_zero() {
            self.run(ctx);
        } else {
            self.schedule(ctx, delay);
        }
    }

    /// Replaces the scheduled refresh with one after `delay`.
    fn schedule(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if let Some(handle) = self.next_poll.take() {
            ctx.cancel_future(handle);
        }
        self.next_poll_at = Instant::now().checked_add(delay);
        self.next_poll = Some(ctx.run_later(delay, |actor, ctx| {
            actor.next_poll = None;
            actor.next_poll_at = None;
            actor.guarded(ctx, Self::run);
        }));
    }

    /// One refresh. `None` when the index is not at the daemon's height (ElectrumX's
    /// consistency rule): nothing is changed then.
    fn refresh(&mut self) -> Result<Option<Synced>, MempoolError> {
        let height = self.client.get_block_count()?;
        let listed: Vec<String> = self.client.call("getrawmempool", &[])?;
        if self.client.get_block_count()? != height || self.index_height()? != Some(height) {
            return Ok(None);
        }
        let present = listed
            .iter()
            .map(|hex| Txid::from_str(hex).map_err(|_| MempoolError::BadTxid(hex.clone())))
            .collect::<Result<HashSet<Txid>, _>>()?;
        self.unindexable.retain(|txid| present.contains(txid));
        let new: Vec<Txid> = {
            let mempool = self.mempool.read().unwrap_or_else(PoisonError::into_inner);
            present
                .iter()
                .filter(|txid| mempool.tx(txid).is_none() && !self.unindexable.contains(*txid))
                .copied()
                .collect()
        };
        let txs = self.fetch(&new)?;

        // Confirmed inputs, from the index at the height checked above.
        let Some(confirmed) = self.confirmed_inputs(&txs, &present, height)? else {
            return Ok(None);
        };

        let mut mempool = self.mempool.write().unwrap_or_else(PoisonError::into_inner);
        let height_changed = mempool.synced_height() != Some(height);
        let before = mempool.len();
        let mut txids: HashSet<Txid> = mempool
            .txids()
            .filter(|txid| !present.contains(*txid))
            .copied()
            .collect();
        let mut touched = mempool.remove_missing(&present);
        let kept = mempool.len();
        let (added_touched, dropped) = mempool.add(txs, |prevout| confirmed.get(prevout).copied());
        touched.extend(added_touched);
        txids.extend(new.iter().filter(|txid| mempool.tx(txid).is_some()));
        mempool.set_synced_height(height);
        mempool.refresh_histogram(Instant::now(), self.histogram_refresh);
        let count = mempool.len();
        drop(mempool);
        // Dropped transactions are fetched again at every refresh: warn once, not each time.
        if dropped > 0 && dropped != self.dropped {
            log::warn!(
                "mempool: {dropped} txs dropped: inputs found neither in the index nor in the mempool"
            );
        }
        self.dropped = dropped;
        Ok(Some(Synced {
            height,
            height_changed,
            touched,
            txids,
            txs: count,
            added: count - kept,
            removed: before - kept,
            dropped,
        }))
    }

    /// The confirmed outputs `txs` spend (those of transactions in `unconfirmed` left
    /// out), read from the index at `height`; `None` if the index has moved from it.
    fn confirmed_inputs(
        &self,
        txs: &[ParsedTx],
        unconfirmed: &HashSet<Txid>,
        height: Height,
    ) -> Result<Option<ConfirmedInputs>, MempoolError> {
        let snapshot = self.store.snapshot()?;
        if snapshot.tip()?.map(|(h, _)| h) != Some(height) {
            return Ok(None);
        }
        let mut confirmed = HashMap::new();
        for prevout in txs.iter().flat_map(|tx| &tx.inputs) {
            if unconfirmed.contains(&prevout.txid) || prevout.is_null() {
                continue;
            }
            if let Some((hashx, _, value)) = snapshot.utxo_of(&prevout.txid, prevout.vout)? {
                confirmed.insert(*prevout, (hashx, value));
            }
        }
        Ok(Some(confirmed))
    }

    fn index_height(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.store.snapshot()?.tip()?.map(|(height, _)| height))
    }

    /// Fetches and parses `txids`. A transaction that left the daemon's mempool
    /// meanwhile is skipped (the next refresh will not list it).
    fn fetch(&mut self, txids: &[Txid]) -> Result<Vec<ParsedTx>, MempoolError> {
        let mut txs = Vec::with_capacity(txids.len());
        for chunk in txids.chunks(FETCH_BATCH) {
            let params: Vec<Vec<Value>> = chunk
                .iter()
                .map(|txid| vec![txid.to_string().into(), 0.into()])
                .collect();
            // One vanished transaction fails the whole batch: then ask one at a time.
            let raws: Vec<Option<String>> = match self
                .client
                .call_batch::<String>("getrawtransaction", &params)
            {
                Ok(raws) => raws.into_iter().map(Some).collect(),
                Err(DaemonError::ShuttingDown) => return Err(DaemonError::ShuttingDown.into()),
                Err(e) => {
                    log::debug!("mempool: batch of getrawtransaction failed ({e}); one by one");
                    chunk
                        .iter()
                        .map(|txid| self.fetch_one(txid))
                        .collect::<Result<_, _>>()?
                }
            };
            for (txid, raw) in chunk.iter().zip(raws) {
                if let Some(tx) = raw.and_then(|hex| self.parse(txid, &hex)) {
                    txs.push(tx);
                }
            }
        }
        Ok(txs)
    }

    fn fetch_one(&mut self, txid: &Txid) -> Result<Option<String>, MempoolError> {
        match self
            .client
            .call_once("getrawtransaction", &[txid.to_string().into(), 0.into()])
        {
            Ok(hex) => Ok(Some(hex)),
            Err(DaemonError::ShuttingDown) => Err(DaemonError::ShuttingDown.into()),
            Err(e) => {
                log::debug!("mempool: tx {txid} not fetched: {e}");
                Ok(None)
            }
        }
    }

    fn parse(&mut self, txid: &Txid, hex: &str) -> Option<ParsedTx> {
        match from_hex(hex).map(|raw| parse_tx(&raw, self.coin.mweb)) {
            Some(Ok(tx)) if tx.txid == *txid => return Some(tx),
            Some(Ok(tx)) => log::warn!(
                "mempool: the daemon sent tx {} when asked for {txid}; ignored",
                tx.txid
            ),
            // As ElectrumX: MWEB transactions have no canonical form to index.
            Some(Err(ParseError::MwebOnly { .. })) => {
                log::debug!("mempool: skipping MWEB tx {txid}")
            }
            Some(Err(e)) => log::warn!("mempool: tx {txid} cannot be parsed ({e}); ignored"),
            None => log::warn!("mempool: the daemon sent tx {txid} not in hex; ignored"),
        }
        self.unindexable.insert(*txid);
        None
    }

    fn publish(&mut self, synced: Synced) {
        let update = MempoolUpdate {
            height: synced.height,
            touched: Arc::new(synced.touched),
            txids: Arc::new(synced.txids),
        };
        if let Some(on_synced) = self.on_synced.take() {
            log::info!("mempool: {} txs", synced.txs);
            let _ = on_synced.send(update.clone());
        }
        let announce = std::mem::take(&mut self.announce_next);
        if synced.height_changed
            || !update.touched.is_empty()
            || !update.txids.is_empty()
            || announce
        {
            for recipient in &self.on_update {
                recipient.do_send(update.clone());
            }
        }
    }
}

impl Actor for MempoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.schedule(ctx, self.start_delay);
    }
}

impl Supervised for MempoolActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        // A panic may have left the model half-changed: start from an empty one, which
        // the next refresh fills again from the daemon.
        *self.mempool.write().unwrap_or_else(PoisonError::into_inner) =
            ferrumx::mempool::Mempool::default();
        self.unindexable.clear();
        self.next_poll = None;
        self.next_poll_at = None;
        self.announce_next = true;
        self.start_delay = self.backoff.next_delay(Instant::now());
        record_restart("mempool");
        log::warn!("mempool restarting in {:?}", self.start_delay);
    }
}

impl Handler<InjectPanic> for MempoolActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        self.guarded(ctx, |_, _| injected_panic("the mempool"));
    }
}

impl Handler<Refresh> for MempoolActor {
    type Result = ();

    // This actor has an arbiter (thread) of its own, so blocking here stalls nothing else.
    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) {
        // The chain changed (or a tx was broadcast): announce the next refresh even if it
        // touches nothing, so a block at an unchanged height (a same-height reorg) is
        // notified without waiting for the mempool to change.
        self.announce_next = true;
        self.guarded(ctx, Self::run);
    }
}

impl Handler<TxNoticed> for MempoolActor {
    type Result = ();

    /// The daemon announced transactions (ZMQ hashtx): add just those, at once.
    fn handle(&mut self, TxNoticed(announcements): TxNoticed, ctx: &mut Context<Self>) {
        let announced = announcements.take();
        if self.stopping {
            return;
        }
        if announced.overflowed {
            log::debug!("mempool: more transactions announced than queued; refreshing all");
            return self.refresh_soon(ctx);
        }
        self.guarded(ctx, |actor, ctx| actor.add_announced(&announced.txids, ctx));
    }
}
