//! Instant blocks and transactions through the daemon's ZMQ notifications, when the
//! operator gives their endpoints (DAEMON_ZMQ_HASHBLOCK, DAEMON_ZMQ_HASHTX, the
//! daemon's `-zmqpubhashblock` / `-zmqpubhashtx`). A thread of its own runs a SUB socket
//! per endpoint (the pure-Rust `zeromq` crate, which reconnects by itself after the
//! daemon restarts); `hashblock` wakes the block processor, `hashtx` queues the txid for
//! the mempool and wakes it. A hashblock is only a wake-up (what changed is asked of the
//! daemon as on a poll), and the mempool fetches just the announced transactions: a lost
//! message costs only the time until the next one or the poll, which stays as the
//! fallback.

use crate::wake::{Pending, TipChanged, TxNoticed};
use actix::prelude::*;
use ferrumx::daemon::Daemon;
use ferrumx::zmq::{Announcements, Endpoint, Topic, parse_message};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use zeromq::{Socket, SocketRecv, SubSocket};

/// After a failed connection the next try waits this long, doubling up to RETRY_MAX.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// After a receive error (the publisher went away; the socket reconnects by itself).
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often the thread looks whether the server is stopping.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(200);

/// Who hears of what.
#[derive(Clone)]
pub struct Wake {
    pub blocks: Recipient<TipChanged>,
    pub transactions: Recipient<TxNoticed>,
}

/// [`Wake`] with at most one wake-up of each kind waiting.
#[derive(Clone)]
struct Relay {
    wake: Wake,
    block_pending: Pending,
    announced: Arc<Announcements>,
}

/// Starts the subscriber thread for the configured endpoints (nothing if none).
pub fn start(hashblock: Option<Endpoint>, hashtx: Option<Endpoint>, daemon: &Daemon, wake: Wake) {
    let mut by_endpoint: BTreeMap<String, (Endpoint, Vec<Topic>)> = BTreeMap::new();
    for (topic, endpoint) in [(Topic::HashBlock, hashblock), (Topic::HashTx, hashtx)] {
        if let Some(endpoint) = endpoint {
            by_endpoint
                .entry(endpoint.to_string())
                .or_insert_with(|| (endpoint, Vec::new()))
                .1
                .push(topic);
        }
    }
    if by_endpoint.is_empty() {
        return;
    }
    let daemon = daemon.clone();
    let spawned = std::thread::Builder::new()
        .name("zmq".into())
        .spawn(move || run(by_endpoint.into_values().collect(), daemon, wake));
    if let Err(e) = spawned {
        log::error!("cannot start the ZMQ thread ({e}); the daemon is polled instead");
    }
}

fn run(subscriptions: Vec<(Endpoint, Vec<Topic>)>, daemon: Daemon, wake: Wake) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!(
                "cannot start the ZMQ thread's runtime ({e}); the daemon is polled instead"
            );
            return;
        }
    };
    let relay = Relay {
        wake,
        block_pending: Pending::default(),
        announced: Arc::default(),
    };
    runtime.block_on(async move {
        let followers = subscriptions
            .into_iter()
            .map(|(endpoint, topics)| follow(endpoint, topics, relay.clone()));
        let stopping = async {
            while !daemon.is_shutting_down() {
                tokio::time::sleep(SHUTDOWN_CHECK).await;
            }
        };
        tokio::select! {
            _ = futures_util::future::join_all(followers) => {}
            () = stopping => {}
        }
    });
}

/// Subscribes to `topics` at `endpoint` and relays what arrives, for as long as the
/// server runs.
async fn follow(endpoint: Endpoint, topics: Vec<Topic>, relay: Relay) {
    let names = topics
        .iter()
        .map(|t| t.variable())
        .collect::<Vec<_>>()
        .join(" and ");
    let mut retry = RETRY_MIN;
    let mut warned = false;
    loop {
        let mut socket = SubSocket::new();
        if let Err(e) = subscribe(&mut socket, &endpoint, &topics).await {
            if !warned {
                warned = true;
                log::warn!(
                    "cannot subscribe to the daemon's ZMQ notifications at {endpoint} ({names}): \
                     {e}; retrying, and polling the daemon meanwhile"
                );
            }
            drop(socket);
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
            continue;
        }
        log::info!(
            "subscribed to the daemon's ZMQ {} at {endpoint}: noticed at once, with polling as \
             the fallback",
            topics
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(" and ")
        );
        loop {
            match socket.recv().await {
                Ok(message) => relay.pass_on(&message),
                Err(e) => {
                    log::debug!("ZMQ at {endpoint}: {e}");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            }
        }
    }
}

async fn subscribe(
    socket: &mut SubSocket,
    endpoint: &Endpoint,
    topics: &[Topic],
) -> Result<(), zeromq::ZmqError> {
    socket.connect(endpoint.as_str()).await?;
    for topic in topics {
        socket.subscribe(topic.name()).await?;
    }
    Ok(())
}

impl Relay {
    fn pass_on(&self, message: &zeromq::ZmqMessage) {
        let frames: Vec<&[u8]> = message.iter().map(|frame| frame.as_ref()).collect();
        let notice = match parse_message(&frames) {
            Ok(notice) => notice,
            Err(e) => return log::debug!("ignored: {e}"),
        };
        log::debug!(
            "ZMQ {} {} (sequence {:?})",
            notice.topic,
            notice.hash_hex(),
            notice.sequence
        );
        match notice.topic {
            Topic::HashBlock if self.block_pending.arm() => {
                let pending = Some(self.block_pending.clone());
                self.wake.blocks.do_send(TipChanged(pending));
            }
            Topic::HashTx => {
                if self.announced.push(notice.txid()) {
                    let announced = Arc::clone(&self.announced);
                    self.wake.transactions.do_send(TxNoticed(announced));
                }
            }
            // A wake-up is already waiting: it covers this one.
            Topic::HashBlock => {}
        }
    }
}
