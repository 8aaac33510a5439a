//! What one method is: its name, the protocol versions that have it, its parameters,
//! its handler, how it is priced and where it may run.

use crate::protocol::context::{DaemonCall, QueryContext};
use crate::protocol::params::{Signature, bind};
use crate::protocol::version::ProtocolVersion;
use crate::protocol::work::{Args, Handler, Outcome, Work};
use serde_json::Value;

/// How a method is priced: ElectrumX's cost charged on every call, and what the handler
/// adds for the work it did (described for the reader; the handler charges it).
#[derive(Clone, Copy, Debug)]
pub struct Price {
    pub base: f64,
    pub per_work: &'static str,
}

pub(super) const fn flat(base: f64) -> Price {
    Price { base, per_work: "" }
}

/// Where a method's answer comes from, which decides where it may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The index snapshot and the mempool only: quick, so sessions answer it on their
    /// own thread.
    Index,
    /// The daemon, a file or the network too: it may wait, so it runs on the blocking
    /// pool.
    Outside,
}

pub struct Method {
    pub name: &'static str,
    /// The lowest protocol version that has the method...
    pub since: &'static [u32],
    /// ...and the lowest that no longer has it.
    pub until: Option<&'static [u32]>,
    pub params: Signature,
    pub handler: Handler,
    pub price: Price,
    pub source: Source,
}

impl Method {
    /// Whether the negotiated `protocol` has this method.
    pub fn serves(&self, protocol: &ProtocolVersion) -> bool {
        protocol.is_at_least(self.since)
            && self.until.is_none_or(|until| !protocol.is_at_least(until))
    }

    /// Binds `params` and runs the handler, asking `daemon` when it needs the daemon.
    pub fn call(&self, ctx: &QueryContext, params: &Value, daemon: &mut DaemonCall) -> Outcome {
        let mut work = Work::new(self.price.base, daemon);
        let result = match bind(self.name, params, &self.params) {
            Ok(slots) => (self.handler)(ctx, &Args::new(slots), &mut work),
            Err(error) => Err(error.into()),
        };
        work.into_outcome(result)
    }
}

pub(super) const fn sig(names: &'static [&'static str], required: usize) -> Signature {
    Signature {
        names,
        required,
        extra_ok: false,
    }
}
