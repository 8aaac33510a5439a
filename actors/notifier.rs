//! The Notifier actor: keeps who subscribed to what, merges block and mempool changes
//! per height (ElectrumX's rule, [`ferrumx::notifications`]) and tells each session
//! only about the scripts it subscribed to: the touched set is looked up in the
//! subscription map, never matched against every session. On a new height every
//! session with a subscription hears of it (header notifications, and statuses that
//! held mempool transactions are recomputed). A session following outpoints (protocol
//! 1.7) hears of every change, block or mempool, and recomputes their statuses itself:
//! a handful of index lookups each, cheaper than tracking every output a change
//! touches.

use crate::block_processor::ChainUpdate;
use crate::mempool::{MempoolUpdate, Refresh};
use crate::supervisor::{InjectPanic, catch_panic, injected_panic, record_restart};
use actix::prelude::*;
use ferrumx::hashes::{HashX, Height, to_hex};
use ferrumx::notifications::NotificationMerge;
use ferrumx::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Sent to a session: what changed at `height`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Notify {
    pub height: Height,
    pub height_changed: bool,
    /// The new tip header (hex), when the height changed since the last notification.
    pub new_header: Option<Arc<String>>,
    /// Subscribed scripts of this session touched since the last notification.
    pub touched: Vec<HashX>,
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
}

pub struct Notifier {
    store: Arc<Store>,
    sessions: HashMap<u64, Subscriber>,
    by_script: HashMap<HashX, HashSet<u64>>,
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
        })
    }

    fn notify(&mut self, height: Height, touched: HashSet<HashX>) {
        let height_changed = self.notified_height != Some(height);
        self.notified_height = Some(height);
        let new_header = if height_changed {
            self.header_hex(height)
        } else {
            None
        };
        let mut per_session: HashMap<u64, Vec<HashX>> = HashMap::new();
        for hashx in &touched {
            if let Some(sessions) = self.by_script.get(hashx) {
                for session in sessions {
                    per_session.entry(*session).or_default().push(*hashx);
                }
            }
        }
        for (id, subscriber) in &self.sessions {
            if height_changed || subscriber.outpoints {
                per_session.entry(*id).or_default();
            }
        }
        for (id, touched) in per_session {
            if let Some(subscriber) = self.sessions.get(&id) {
                let new_header = new_header.clone().filter(|_| subscriber.headers);
                subscriber.recipient.do_send(Notify {
                    height,
                    height_changed,
                    new_header,
                    touched,
                });
            }
        }
    }

    fn header_hex(&self, height: Height) -> Option<Arc<String>> {
        let snapshot = self.store.snapshot().ok()?;
        let header = snapshot.header(height).ok()??;
        Some(Arc::new(to_hex(&header)))
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
                }
            }
        }
    }
}

fn forget(by_script: &mut HashMap<HashX, HashSet<u64>>, hashx: &HashX, session: u64) {
    if let Some(sessions) = by_script.get_mut(hashx) {
        sessions.remove(&session);
        if sessions.is_empty() {
            by_script.remove(hashx);
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
            let touched = (*update.touched).clone();
            if let Some((height, touched)) = notifier.merge.on_mempool(update.height, touched) {
                notifier.notify(height, touched);
            }
        });
    }
}
