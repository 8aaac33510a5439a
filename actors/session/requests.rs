//! Running requests: waiting for a concurrency slot, answering through the method
//! table (on the session's own thread when the request needs only the index and the
//! mempool, else on the blocking pool), batches, applying the answers' effects, and the
//! replies.

use super::accounting::{EXCESSIVE_RESOURCE_USAGE, SERVER_BUSY};
use super::query::{Place, with_query_context};
use super::subscriptions::ScriptSubscription;
use super::{Session, SessionShared};
use crate::mempool::Refresh;
use crate::notifier::Subscription;
use crate::supervisor::catch_panic;
use actix::prelude::*;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::jsonrpc::{self, Item, Request};
use ferrumx::protocol::methods::{self, Answer, Effect, Outcome, Source};
use ferrumx::protocol::version::ProtocolVersion;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request (or batch) waiting for a concurrency slot.
pub(super) struct Pending {
    pub(super) work: Work,
    pub(super) received: Instant,
}

/// A request or a batch, as the client sent it.
pub(super) enum Work {
    Single(Request),
    Batch(Vec<Item>),
}

impl Work {
    /// The ids to answer, to refuse it.
    fn ids(&self) -> Vec<Value> {
        match self {
            Work::Single(request) => request.id.iter().cloned().collect(),
            Work::Batch(items) => items
                .iter()
                .filter_map(|item| match item {
                    Item::Request(request) => request.id.clone(),
                    Item::Invalid { id, .. } | Item::Answered { id, .. } => Some(id.clone()),
                    Item::Response => None,
                })
                .collect(),
        }
    }

    /// Whether every request of it needs only the index and the mempool (unknown
    /// methods too: they are refused at once), and a batch is small enough to answer
    /// between other sessions' requests.
    fn is_quick(&self, protocol: &ProtocolVersion) -> bool {
        let quick = |request: &Request| {
            methods::find(&request.method, protocol).is_none_or(|m| m.source == Source::Index)
        };
        match self {
            Work::Single(request) => quick(request),
            Work::Batch(items) => {
                items.len() <= INLINE_BATCH
                    && items.iter().all(|item| match item {
                        Item::Request(request) => quick(request),
                        _ => true,
                    })
            }
        }
    }
}

impl Session {
    pub(super) fn enqueue(&mut self, work: Work, ctx: &mut Context<Self>) {
        if self.logged {
            match &work {
                Work::Single(request) => {
                    log::info!("[{}] {} {}", self.id, request.method, request.params)
                }
                Work::Batch(items) => log::info!("[{}] batch of {}", self.id, items.len()),
            }
        }
        self.waiting.push_back(Pending {
            work,
            received: Instant::now(),
        });
        self.pump(ctx);
    }

    /// Starts waiting requests while the throttling allows (aiorpcX's concurrency
    /// semaphore); over the hard limit the next request is refused and the session ends.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        self.recalc();
        while !self.waiting.is_empty() {
            if self.throttling.excessive() {
                let Some(pending) = self.waiting.pop_front() else {
                    break;
                };
                self.refuse(
                    &pending.work,
                    RpcError::new(EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"),
                    ctx,
                );
                self.log_excessive();
                ctx.stop();
                break;
            }
            if self.running >= self.throttling.concurrency as usize {
                break;
            }
            let Some(pending) = self.waiting.pop_front() else {
                break;
            };
            let elapsed = pending.received.elapsed();
            let Some(remaining) = self.shared.request_timeout.checked_sub(elapsed) else {
                self.time_out(&pending.work, ctx);
                continue;
            };
            self.run(pending.work, pending.received, remaining, ctx);
        }
        self.pressure.set_waiting(self.waiting.len());
    }

    /// Answers every id of `work` with `error`, as one message.
    fn refuse(&mut self, work: &Work, error: RpcError, ctx: &mut Context<Self>) {
        self.count_error(0.0);
        let ids = work.ids();
        match work {
            Work::Single(_) => {
                if let Some(id) = ids.first() {
                    let text = self.reply(id, Err(error));
                    self.send(text, ctx);
                }
            }
            Work::Batch(_) if !ids.is_empty() => {
                let parts: Vec<String> = ids
                    .iter()
                    .map(|id| self.reply(id, Err(error.clone())))
                    .collect();
                self.send(format!("[{}]", parts.join(",")), ctx);
            }
            Work::Batch(_) => {}
        }
    }

    fn time_out(&mut self, work: &Work, ctx: &mut Context<Self>) {
        let error = RpcError::new(SERVER_BUSY, "server busy - request timed out");
        self.refuse(work, error, ctx);
    }

    /// Runs a request or batch: on the session's own thread when it needs only the index
    /// and the mempool and no throttling sleep (no thread hop, no timer), else on the
    /// blocking pool after the throttling sleep, within what is left of REQUEST_TIMEOUT.
    fn run(&mut self, work: Work, received: Instant, remaining: Duration, ctx: &mut Context<Self>) {
        let Some(protocol) = self.protocol.clone() else {
            return;
        };
        let sleep = self.shared.limits.sleep(&self.throttling);
        let is_batch = matches!(work, Work::Batch(_));
        let work = if sleep.is_zero() && work.is_quick(&protocol) {
            let id = self.id;
            let client_ip = Some(self.peer.ip());
            let shared = &self.shared;
            let answered = catch_panic(format_args!("session {id}"), || {
                answer_work(shared, &protocol, client_ip, work, Place::Inline, None)
            });
            match answered {
                Ok(Answered::Done(answers)) => {
                    let latency = received.elapsed();
                    for _ in 0..answers.len() {
                        self.shared.latency.observe(latency);
                    }
                    self.answer(answers, is_batch, ctx);
                    self.report_if_large();
                    return;
                }
                // A long history: the blocking pool reads it.
                Ok(Answered::NeedsBlockingPool(work)) => work,
                // A panic (logged); inline work has no deadline, so it never times out.
                Err(_) | Ok(Answered::TimedOut) => {
                    ctx.stop();
                    return;
                }
            }
        } else {
            work
        };
        self.running += 1;
        let shared = Arc::clone(&self.shared);
        let client_ip = Some(self.peer.ip());
        let ids = work.ids();
        let deadline = received + self.shared.request_timeout;
        let task = async move {
            tokio::time::sleep(sleep).await;
            tokio::task::spawn_blocking(move || {
                match answer_work(
                    &shared,
                    &protocol,
                    client_ip,
                    work,
                    Place::BlockingPool,
                    Some(deadline),
                ) {
                    Answered::Done(answers) => Some(answers),
                    Answered::TimedOut => None,
                    Answered::NeedsBlockingPool(_) => {
                        unreachable!("only inline work needs the blocking pool")
                    }
                }
            })
            .await
        };
        let work = async move { tokio::time::timeout(remaining, task).await };
        ctx.spawn(work.into_actor(self).map(move |answers, session, ctx| {
            let id = session.id;
            let finished = catch_panic(format_args!("session {id}"), || {
                session.running -= 1;
                match answers {
                    Ok(Ok(Some(answers))) => {
                        let latency = received.elapsed();
                        for _ in 0..answers.len() {
                            session.shared.latency.observe(latency);
                        }
                        session.answer(answers, is_batch, ctx);
                    }
                    Ok(Err(e)) => {
                        log::error!("query task failed: {e}");
                        let refused = if is_batch {
                            Work::Batch(Vec::new())
                        } else {
                            Work::Single(Request {
                                method: String::new(),
                                params: Value::Null,
                                id: ids.first().cloned(),
                            })
                        };
                        session.refuse(&refused, RpcError::internal(), ctx);
                    }
                    // Past REQUEST_TIMEOUT: stopped by the timer or by the batch itself.
                    Err(_) | Ok(Ok(None)) => {
                        let error = RpcError::new(SERVER_BUSY, "server busy - request timed out");
                        session.count_error(0.0);
                        let parts: Vec<String> = ids
                            .iter()
                            .map(|id| session.reply(id, Err(error.clone())))
                            .collect();
                        if is_batch && !parts.is_empty() {
                            session.send(format!("[{}]", parts.join(",")), ctx);
                        } else if let Some(part) = parts.into_iter().next() {
                            session.send(part, ctx);
                        }
                    }
                }
                session.report_if_large();
                session.pump(ctx);
            });
            if finished.is_err() {
                ctx.stop();
            }
        }));
    }

    /// Applies answered requests, prices them, and sends the reply (a batch's as one
    /// array, with ElectrumX's cumulative MAX_SEND rule).
    fn answer(&mut self, answers: Vec<(Request, Answer)>, is_batch: bool, ctx: &mut Context<Self>) {
        let mut size = 2;
        let mut parts = Vec::new();
        for (request, answer) in answers {
            let method_cost = answer.cost;
            let result = self.apply(answer, ctx);
            if !request.method.is_empty() {
                self.count_request(&request.method, &result);
            }
            self.bump_cost(method_cost);
            if result.is_err() {
                self.count_error(0.0);
            }
            let Some(id) = request.id else { continue };
            let mut part = self.reply(&id, result);
            if is_batch {
                size += part.len() + 2;
                if size > self.shared.max_send {
                    part = self.reply(&id, Err(self.too_large()));
                }
            }
            parts.push(part);
        }
        if is_batch {
            if !parts.is_empty() {
                self.send(format!("[{}]", parts.join(",")), ctx);
            }
        } else if let Some(part) = parts.pop() {
            self.send(part, ctx);
        }
    }

    /// Applies what an answered request changes in this session.
    fn apply(&mut self, answer: Answer, ctx: &mut Context<Self>) -> Result<Value, RpcError> {
        let applied = self.apply_effect(answer, ctx);
        self.settle_places();
        applied
    }

    fn apply_effect(&mut self, answer: Answer, ctx: &mut Context<Self>) -> Result<Value, RpcError> {
        let Answer { result, effect, .. } = answer;
        let recipient = ctx.address().recipient();
        match effect {
            None => result,
            Some(Effect::SubscribeHeaders) => {
                self.headers = true;
                self.shared.notifier.do_send(Subscription::Headers {
                    session: self.id,
                    recipient,
                });
                result
            }
            Some(Effect::UnsubscribeHeaders) => {
                let was_subscribed = std::mem::take(&mut self.headers);
                if was_subscribed {
                    let session = self.id;
                    self.shared
                        .notifier
                        .do_send(Subscription::UnsubscribeHeaders { session });
                }
                Ok(Value::Bool(was_subscribed))
            }
            Some(Effect::SubscribeTx { txid, status }) => {
                self.room_for_subscription(self.txs.contains(&txid))?;
                self.txs.subscribe(txid, status);
                self.shared.notifier.do_send(Subscription::Tx {
                    session: self.id,
                    recipient,
                    txid,
                });
                result
            }
            Some(Effect::UnsubscribeTx { txid }) => {
                let was_subscribed = self.txs.unsubscribe(&txid);
                if was_subscribed {
                    let session = self.id;
                    self.shared
                        .notifier
                        .do_send(Subscription::UnsubscribeTx { session, txid });
                }
                Ok(Value::Bool(was_subscribed))
            }
            Some(Effect::SubscribeScript {
                hashx,
                script_hash,
                status,
                with_mempool,
            }) => {
                self.room_for_subscription(self.scripts.contains_key(&hashx))?;
                self.scripts.insert(
                    hashx,
                    ScriptSubscription {
                        script_hash,
                        status,
                        with_mempool,
                    },
                );
                self.shared.notifier.do_send(Subscription::Script {
                    session: self.id,
                    recipient,
                    hashx,
                });
                result
            }
            Some(Effect::RefreshMempool) => {
                self.counters.txs_sent += 1;
                self.shared.mempool_refresh.do_send(Refresh);
                result
            }
            Some(Effect::SubscribeOutpoint { outpoint, status }) => {
                self.room_for_subscription(self.outpoints.contains_key(&outpoint))?;
                self.subscribe_outpoint(outpoint, status, ctx);
                result
            }
            Some(Effect::UnsubscribeOutpoint { outpoint }) => {
                Ok(Value::Bool(self.unsubscribe_outpoint(&outpoint, ctx)))
            }
            Some(Effect::UnsubscribeScript { hashx }) => {
                let was_subscribed = self.scripts.remove(&hashx).is_some();
                if was_subscribed {
                    self.shared.notifier.do_send(Subscription::Unsubscribe {
                        session: self.id,
                        hashx,
                    });
                }
                Ok(Value::Bool(was_subscribed))
            }
        }
    }
}

/// Batches of at most this many items may be answered on the session's own thread.
const INLINE_BATCH: usize = 100;

enum Answered {
    Done(Vec<(Request, Answer)>),
    /// Too long to answer inline: the work, untouched, for the blocking pool.
    NeedsBlockingPool(Work),
    /// REQUEST_TIMEOUT passed in the middle of a batch.
    TimedOut,
}

/// Why a batch stopped before its last answer.
enum Stop {
    NeedsBlockingPool,
    TimedOut,
}

/// Answers every request of `work` from one snapshot and one look at the mempool.
fn answer_work(
    shared: &SessionShared,
    protocol: &ProtocolVersion,
    client_ip: Option<IpAddr>,
    work: Work,
    place: Place,
    deadline: Option<Instant>,
) -> Answered {
    let answers = with_query_context(shared, protocol, client_ip, place, |ctx| {
        let mut answers = Vec::new();
        // A notification from the client is not a request: only protocol 1.7's
        // `server.ping` is one ElectrumX takes.
        let answer_one = |request: &Request| {
            let outcome = match request.id {
                Some(_) => methods::answer(ctx, &request.method, &request.params),
                None => methods::answer_notification(ctx, &request.method, &request.params),
            };
            match outcome {
                Outcome::Answer(answer) => Ok(answer),
                Outcome::NeedsBlockingPool => Err(Stop::NeedsBlockingPool),
            }
        };
        // A batch's answers are held until the last is ready: once they could not fit
        // MAX_SEND together (the session would replace the rest with "response too
        // large"), or REQUEST_TIMEOUT has passed, the rest are not worked out at all.
        let mut size = 2;
        match &work {
            Work::Single(request) => answers.push(answer_one(request)?),
            Work::Batch(items) => {
                for item in items {
                    let answer = match item {
                        // Not worked out: every part after the answers passed MAX_SEND is
                        // replaced by "response too large" when the reply is made (see
                        // `Session::answer`), and this size is a lower bound of theirs.
                        Item::Request(_) if size > shared.max_send => Answer {
                            result: Ok(Value::Null),
                            effect: None,
                            cost: 0.0,
                        },
                        Item::Request(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                            return Err(Stop::TimedOut);
                        }
                        Item::Request(request) => answer_one(request)?,
                        Item::Invalid { error, .. } => Answer {
                            result: Err(error.clone()),
                            effect: None,
                            cost: 0.0,
                        },
                        Item::Answered { result, .. } => Answer {
                            result: Ok(result.clone()),
                            effect: None,
                            cost: 0.0,
                        },
                        Item::Response => continue,
                    };
                    size += match &answer.result {
                        Ok(result) => jsonrpc::encoded_len(result),
                        Err(error) => error.message.len(),
                    } + 2;
                    answers.push(answer);
                }
            }
        }
        Ok(answers)
    });
    let answers = match answers {
        Ok(Ok(answers)) => answers,
        Ok(Err(Stop::NeedsBlockingPool)) => return Answered::NeedsBlockingPool(work),
        Ok(Err(Stop::TimedOut)) => return Answered::TimedOut,
        Err(e) => {
            let error: RpcError = e.into();
            let count = match &work {
                Work::Single(_) => 1,
                Work::Batch(items) => items
                    .iter()
                    .filter(|i| !matches!(i, Item::Response))
                    .count(),
            };
            (0..count)
                .map(|_| Answer {
                    result: Err(error.clone()),
                    effect: None,
                    cost: 0.0,
                })
                .collect()
        }
    };
    let requests: Vec<Request> = match work {
        Work::Single(request) => vec![request],
        Work::Batch(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Item::Request(request) => Some(request),
                Item::Invalid { id, .. } | Item::Answered { id, .. } => Some(Request {
                    method: String::new(),
                    params: Value::Null,
                    id: Some(id),
                }),
                Item::Response => None,
            })
            .collect(),
    };
    Answered::Done(requests.into_iter().zip(answers).collect())
}
