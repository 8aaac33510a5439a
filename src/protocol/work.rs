//! What a method handler gets and gives: its bound arguments ([`Args`]), the record of
//! what it did ([`Work`]: cost, effect on the session, the way to the daemon), and the
//! [`Outcome`] the session receives: an [`Answer`], or word that the request must run
//! on the blocking pool. The method table ([`super::methods`]) and every
//! family of methods depend on this module, which depends only on [`super::context`]:
//! so the table can name the handlers without the families naming the table.

use super::RpcError;
use super::context::{DaemonCall, QueryContext};
use crate::daemon::DaemonError;
use crate::hashes::{HashX, ScriptHash};
use crate::store::StoreError;
use bitcoin::OutPoint;
use serde_json::Value;

/// What an answered request changes in its session, applied by the session when the
/// answer comes back (only for a successful answer).
#[derive(Debug, PartialEq)]
pub enum Effect {
    SubscribeHeaders,
    SubscribeScript {
        hashx: HashX,
        script_hash: ScriptHash,
        status: Option<String>,
        /// The status included mempool transactions: recompute it on every new block.
        with_mempool: bool,
    },
    /// The answer is whether the script was subscribed, which only the session knows.
    UnsubscribeScript {
        hashx: HashX,
    },
    /// `blockchain.headers.unsubscribe`: the answer is whether the session was
    /// subscribed, which only the session knows.
    UnsubscribeHeaders,
    /// `blockchain.transaction.subscribe`: `status` is the transaction's height as
    /// answered (see [`super::extras::tx_status`]).
    SubscribeTx {
        txid: bitcoin::Txid,
        status: Value,
    },
    /// The answer is whether the transaction was subscribed.
    UnsubscribeTx {
        txid: bitcoin::Txid,
    },
    /// A transaction was broadcast: refresh the mempool so it shows at once.
    RefreshMempool,
    /// Protocol 1.7: the session follows an outpoint, whose status is now `status`.
    SubscribeOutpoint {
        outpoint: OutPoint,
        status: Value,
    },
    /// The answer is whether the outpoint was subscribed, which only the session knows.
    UnsubscribeOutpoint {
        outpoint: OutPoint,
    },
}

/// A method's result, what it changes in the session, and what it cost (besides
/// bandwidth and errors, which the session charges).
#[derive(Debug)]
pub struct Answer {
    pub result: Result<Value, RpcError>,
    pub effect: Option<Effect>,
    pub cost: f64,
}

/// What a handler answers instead of a result.
#[derive(Debug, PartialEq)]
pub enum HandlerError {
    /// The error the client gets.
    Rpc(RpcError),
    /// Run on a session's own thread, the request found more to read than should be
    /// read there (a long history): the session runs it again on the blocking pool.
    /// Never sent to a client.
    NeedsBlockingPool,
}

impl From<RpcError> for HandlerError {
    fn from(error: RpcError) -> HandlerError {
        HandlerError::Rpc(error)
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> HandlerError {
        HandlerError::Rpc(error.into())
    }
}

/// What running a method came to.
#[derive(Debug)]
pub enum Outcome {
    Answer(Answer),
    /// See [`HandlerError::NeedsBlockingPool`]: nothing was answered or charged, and
    /// there is no effect to apply.
    NeedsBlockingPool,
}

impl Outcome {
    /// The answer, unless the request needs the blocking pool.
    pub fn answered(self) -> Option<Answer> {
        match self {
            Outcome::Answer(answer) => Some(answer),
            Outcome::NeedsBlockingPool => None,
        }
    }
}

/// A method's arguments, one slot per parameter of its signature (`None` when not
/// given).
pub struct Args<'a> {
    slots: Vec<Option<&'a Value>>,
}

impl<'a> Args<'a> {
    /// Arguments bound to a signature's slots.
    pub fn new(slots: Vec<Option<&'a Value>>) -> Args<'a> {
        Args { slots }
    }

    /// The argument at `position` of the signature, if given.
    pub fn get(&self, position: usize) -> Option<&'a Value> {
        self.slots.get(position).copied().flatten()
    }

    /// A required argument (binding checked it is there).
    pub fn required(&self, position: usize) -> &'a Value {
        self.get(position).unwrap_or(&Value::Null)
    }
}

/// What a handler records while it works: its cost, its effect on the session, and
/// its way to the daemon.
pub struct Work<'d> {
    cost: f64,
    effect: Option<Effect>,
    daemon: &'d mut DaemonCall<'d>,
}

impl<'d> Work<'d> {
    /// A request that starts at `base_cost`, asking `daemon` when it needs the daemon.
    pub fn new(base_cost: f64, daemon: &'d mut DaemonCall<'d>) -> Work<'d> {
        Work {
            cost: base_cost,
            effect: None,
            daemon,
        }
    }

    /// The answer for `result`: its effect only if it succeeded, and the cost charged.
    pub fn into_outcome(self, result: Result<Value, HandlerError>) -> Outcome {
        let result = match result {
            Ok(value) => Ok(value),
            Err(HandlerError::Rpc(error)) => Err(error),
            Err(HandlerError::NeedsBlockingPool) => return Outcome::NeedsBlockingPool,
        };
        let effect = if result.is_ok() { self.effect } else { None };
        Outcome::Answer(Answer {
            result,
            effect,
            cost: self.cost,
        })
    }

    /// Adds `cost` to what the request costs.
    pub fn charge(&mut self, cost: f64) {
        self.cost += cost;
    }

    /// What the request changes in its session, if it succeeds.
    pub fn effect(&mut self, effect: Effect) {
        self.effect = Some(effect);
    }

    /// The daemon, for the methods that ask it.
    pub fn daemon(&mut self) -> &mut DaemonCall<'d> {
        self.daemon
    }

    /// One call to the daemon.
    pub fn ask_daemon(&mut self, method: &str, params: &[Value]) -> Result<Value, DaemonError> {
        (self.daemon)(method, params)
    }
}

pub type Handler = fn(&QueryContext, &Args, &mut Work) -> Result<Value, HandlerError>;
