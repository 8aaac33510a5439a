//! The Notifier actor: keeps who subscribed to what, merges block and mempool changes
//! per height (ElectrumX's rule, [`ferrumx::notifications`]) and tells each session
//! only about the scripts it subscribed to: the touched set is looked up in the
//! subscription map, never matched against every session. On a new height every
//! session with a subscription hears of it (header notifications, and statuses that
//! held mempool transactions are recomputed). Transaction subscriptions (Fulcrum's
//! `blockchain.transaction.subscribe`) work the same way: a session hears of the
//! subscribed transactions that entered or left the mempool, and on every block it
//! checks all of its own (a block confirms or, in a reorg, unconfirms them). A session
//! following outpoints (protocol 1.7) hears of every change, block or mempool, and
//! recomputes their statuses itself: a handful of index lookups each, cheaper than
//! tracking every output a change touches.

use crate::block_processor::ChainUpdate;
use crate::mempool::{MempoolUpdate, Refresh};
use crate::supervisor::{InjectPanic, catch_panic, injected_panic, record_restart};
use actix::prelude::*;
use bitcoin::Txid;
use ferrumx::hashes::{HashX, Height, to_hex};
use ferrumx::notifications::NotificationMerge;
use ferrumx::protocol::jsonrpc;
use ferrumx::store::Store;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Sent to a session: what changed at `height`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Notify {
    pub height: Height,
    pub height_changed: bool,
    /// The `blockchain.headers.subscribe` notification of the new tip, when the height
    /// changed since the last notification: the same line for every session, built once.
    pub header_line: Option<Arc<str>>,
    /// Subscribed scripts of this session touched since the last notification.
    pub touched: Vec<HashX>,
    /// Subscribed transactions of this session that entered or left the mempool.
    pub touched_txs: Vec<Txid>,
    /// A block was connected or disconnected since the last notification: every
    /// subscribed transaction may have changed.
    pub chain_changed: bool,
}

/// A session's subscriptions changed.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Subscription {
    Headers {
        session: u64,
        recipient: Recipient<Notify>,
    },
    Script {
        session: u64,
        recipient: Recipient<Notify>,
        hashx: HashX,
    },
    Unsubscribe {
        session: u64,
        hashx: HashX,
    },
    UnsubscribeHeaders {
        session: u64,
    },
    Tx {
        session: u64,
        recipient: Recipient<Notify>,
        txid: Txid,
    },
    UnsubscribeTx {
        session: u64,
        txid: Txid,
    },
    /// The session follows some outpoints (`true`), or none any more (`false`).
    Outpoints {
        session: u64,
        recipient: Recipient<Notify>,
        following: bool,
    },
    /// The session ended: forget it.
    Closed {
        session: u64,
    },
}

struct Subscriber {
    recipient: Recipient<Notify>,
    headers: bool,
    scripts: HashSet<HashX>,
    outpoints: bool,
    txs: HashSet<Txid>,
}

pub struct Notifier {
    store: Arc<Store>,
    sessions: HashMap<u64, Subscriber>,
    by_script: HashMap<HashX, HashSet<u64>>,
    by_tx: HashMap<Txid, HashSet<u64>>,
    /// Transactions that entered or left the mempool since the last notification.
    pending_txs: HashSet<Txid>,
    /// A block was connected or disconnected since the last notification.
    chain_changed: bool,
    merge: NotificationMerge,
    notified_height: Option<Height>,
    /// Told to refresh at once after every new block.
    mempool: Option<Recipient<Refresh>>,
}

/// Ask the mempool to refresh whenever the chain changes (its transactions may have
/// been mined), instead of waiting for its next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshMempoolOnBlocks(pub Recipient<Refresh>);

impl Handler<RefreshMempoolOnBlocks> for Notifier {
    type Result = ();

    fn handle(&mut self, message: RefreshMempoolOnBlocks, _: &mut Context<Self>) {
        self.mempool = Some(message.0);
    }
}

impl Notifier {
    pub fn new(store: Arc<Store>) -> Notifier {
        Notifier {
            store,
            sessions: HashMap::new(),
            by_script: HashMap::new(),
            by_tx: HashMap::new(),
            pending_txs: HashSet::new(),
            chain_changed: false,
            merge: NotificationMerge::default(),
            notified_height: None,
            mempool: None,
        }
    }

    fn subscriber(&mut self, session: u64, recipient: Recipient<Notify>) -> &mut Subscriber {
        self.sessions.entry(session).or_insert_with(|| Subscriber {
            recipient,
            headers: false,
            scripts: HashSet::new(),
            outpoints: false,
            txs: HashSet::new(),
        })
    }

    fn notify(&mut self, height: Height, touched: HashSet<HashX>) {
        let started = std::time::Instant::now();
        let height_changed = self.notified_height != Some(height);
        self.notified_height = Some(height);
        let header_line = if height_changed {
            self.header_line(height)
        } else {
            None
        };
        let chain_changed = std::mem::take(&mut self.chain_changed);
        let mut per_session: HashMap<u64, (Vec<HashX>, Vec<Txid>)> = HashMap::new();
        for hashx in &touched {
            if let Some(sessions) = self.by_script.get(hashx) {
                for session in sessions {
                    per_session.entry(*session).or_default().0.push(*hashx);
                }
            }
        }
        for txid in std::mem::take(&mut self.pending_txs) {
            if let Some(sessions) = self.by_tx.get(&txid) {
                for session in sessions {
                    per_session.entry(*session).or_default().1.push(txid);
                }
            }
        }
        for (id, subscriber) in &self.sessions {
            if height_changed
                || (chain_changed && !subscriber.txs.is_empty())
                || subscriber.outpoints
            {
                per_session.entry(*id).or_default();
            }
        }
        let told = per_session.len();
        for (id, (touched, touched_txs)) in per_session {
            if let Some(subscriber) = self.sessions.get(&id) {
                let header_line = header_line.clone().filter(|_| subscriber.headers);
                subscriber.recipient.do_send(Notify {
                    height,
                    height_changed,
                    header_line,
                    touched,
                    touched_txs,
                    chain_changed,
                });
            }
        }
        log::debug!(
            "height {height}: {told} sessions told in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    fn header_line(&self, height: Height) -> Option<Arc<str>> {
        let snapshot = self.store.snapshot().ok()?;
        let header = snapshot.header(height).ok()??;
        let params = json!([{"hex": to_hex(&header), "height": height}]);
        Some(jsonrpc::notification("blockchain.headers.subscribe", &params).into())
    }

    /// Number of script subscriptions, for getinfo.
    pub fn subscription_count(&self) -> usize {
        self.sessions.values().map(|s| s.scripts.len()).sum()
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;
}

/// The subscription map outlives a restart: the sessions in it are still connected and
/// subscribed, and the next block or mempool change brings everyone up to date.
impl Supervised for Notifier {
    fn restarting(&mut self, _: &mut Context<Self>) {
        record_restart("notifier");
        log::warn!(
            "notifier restarting with {} subscribed sessions",
            self.sessions.len()
        );
    }
}

impl Notifier {
    /// Runs `work` with panics caught: a panic stops the actor, and its Supervisor
    /// restarts it at once (its messages wait in its mailbox meanwhile).
    fn guarded(&mut self, ctx: &mut Context<Self>, work: impl FnOnce(&mut Self)) {
        if catch_panic("notifier", || work(self)).is_err() {
            ctx.stop();
        }
    }
}

impl Handler<InjectPanic> for Notifier {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        self.guarded(ctx, |_| injected_panic("the notifier"));
    }
}

impl Handler<Subscription> for Notifier {
    type Result = ();

    fn handle(&mut self, change: Subscription, ctx: &mut Context<Self>) {
        self.guarded(ctx, |notifier| notifier.subscription(change));
    }
}

impl Notifier {
    fn subscription(&mut self, change: Subscription) {
        match change {
            Subscription::Headers { session, recipient } => {
                self.subscriber(session, recipient).headers = true;
            }
            Subscription::Script {
                session,
                recipient,
                hashx,
            } => {
                self.subscriber(session, recipient).scripts.insert(hashx);
                self.by_script.entry(hashx).or_default().insert(session);
            }
            Subscription::Unsubscribe { session, hashx } => {
                if let Some(subscriber) = self.sessions.get_mut(&session) {
                    subscriber.scripts.remove(&hashx);
                }
                forget(&mut self.by_script, &hashx, session);
            }
            Subscription::UnsubscribeHeaders { session } => {
                if let Some(subscriber) = self.sessions.get_mut(&session) {
                    subscriber.headers = false;
                }
            }
            Subscription::Tx {
                session,
                recipient,
                txid,
            } => {
                self.subscriber(session, recipient).txs.insert(txid);
                self.by_tx.entry(txid).or_default().insert(session);
            }
            Subscription::UnsubscribeTx { session, txid } => {
                if let Some(subscriber) = self.sessions.get_mut(&session) {
                    subscriber.txs.remove(&txid);
                }
                forget(&mut self.by_tx, &txid, session);
            }
            Subscription::Outpoints {
                session,
                recipient,
                following,
            } => {
                self.subscriber(session, recipient).outpoints = following;
            }
            Subscription::Closed { session } => {
                if let Some(subscriber) = self.sessions.remove(&session) {
                    for hashx in subscriber.scripts {
                        forget(&mut self.by_script, &hashx, session);
                    }
                    for txid in subscriber.txs {
                        forget(&mut self.by_tx, &txid, session);
                    }
                }
            }
        }
    }
}

fn forget<K: std::hash::Hash + Eq>(by_key: &mut HashMap<K, HashSet<u64>>, key: &K, session: u64) {
    if let Some(sessions) = by_key.get_mut(key) {
        sessions.remove(&session);
        if sessions.is_empty() {
            by_key.remove(key);
        }
    }
}

impl Handler<ChainUpdate> for Notifier {
    type Result = ();

    fn handle(&mut self, update: ChainUpdate, ctx: &mut Context<Self>) {
        self.guarded(ctx, |notifier| {
            if let Some(mempool) = &notifier.mempool {
                mempool.do_send(Refresh);
            }
            notifier.chain_changed = true;
            let touched = (*update.touched).clone();
            if let Some((height, touched)) = notifier.merge.on_block(update.height, touched) {
                notifier.notify(height, touched);
            }
        });
    }
}

impl Handler<MempoolUpdate> for Notifier {
    type Result = ();

    fn handle(&mut self, update: MempoolUpdate, ctx: &mut Context<Self>) {
        self.guarded(ctx, |notifier| {
            if !notifier.by_tx.is_empty() {
                notifier.pending_txs.extend(update.txids.iter().copied());
            }
            let touched = (*update.touched).clone();
            if let Some((height, touched)) = notifier.merge.on_mempool(update.height, touched) {
                notifier.notify(height, touched);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::BlockHash;
    use bitcoin::hashes::Hash;

    /// A session stand-in that keeps what it is told.
    #[derive(Default)]
    struct Probe(Vec<Notify>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Notify> for Probe {
        type Result = ();

        fn handle(&mut self, notify: Notify, _: &mut Context<Self>) {
            self.0.push(notify);
        }
    }

    /// Hands over what the probe was told so far (after every message sent before).
    #[derive(Message)]
    #[rtype(result = "Vec<(Vec<Txid>, bool)>")]
    struct Told;

    impl Handler<Told> for Probe {
        type Result = MessageResult<Told>;

        fn handle(&mut self, _: Told, _: &mut Context<Self>) -> Self::Result {
            MessageResult(
                self.0
                    .drain(..)
                    .map(|n| (n.touched_txs, n.chain_changed))
                    .collect(),
            )
        }
    }

    fn txid(n: u8) -> Txid {
        Txid::from_byte_array([n; 32])
    }

    fn mempool(txids: &[Txid]) -> MempoolUpdate {
        MempoolUpdate {
            height: Height::new(5),
            touched: Arc::new(HashSet::new()),
            txids: Arc::new(txids.iter().copied().collect()),
        }
    }

    #[test]
    fn transactions_reach_their_subscribers_and_blocks_reach_every_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(dir.path(), "Bitcoin", "regtest", &BlockHash::all_zeros()).unwrap(),
        );
        System::new().block_on(async move {
            let notifier = Notifier::new(store).start();
            let (one, two) = (Probe::default().start(), Probe::default().start());
            for (session, probe, tx) in [(1, &one, txid(1)), (2, &two, txid(2))] {
                let recipient = probe.clone().recipient();
                let tx = Subscription::Tx {
                    session,
                    recipient,
                    txid: tx,
                };
                notifier.send(tx).await.unwrap();
            }
            // The block and the mempool at its height: both hear of the block, the first
            // also of its transaction.
            notifier.send(mempool(&[txid(1), txid(9)])).await.unwrap();
            let block = ChainUpdate {
                height: Height::new(5),
                header: [0; 80],
                touched: Arc::new(HashSet::new()),
                undone: 0,
                daemon_height: Height::new(5),
            };
            notifier.send(block).await.unwrap();
            assert_eq!(one.send(Told).await.unwrap(), [(vec![txid(1)], true)]);
            assert_eq!(two.send(Told).await.unwrap(), [(vec![], true)]);
            // The mempool alone: only the subscriber of what came or went.
            notifier.send(mempool(&[txid(2)])).await.unwrap();
            assert_eq!(one.send(Told).await.unwrap(), []);
            assert_eq!(two.send(Told).await.unwrap(), [(vec![txid(2)], false)]);
            // Unsubscribed: nothing more.
            let session = 2;
            let txid_2 = txid(2);
            let gone = Subscription::UnsubscribeTx {
                session,
                txid: txid_2,
            };
            notifier.send(gone).await.unwrap();
            notifier.send(mempool(&[txid(2)])).await.unwrap();
            assert_eq!(two.send(Told).await.unwrap(), []);
        });
    }
}
