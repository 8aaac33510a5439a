//! Long-polling the daemon for a new tip: an RPC that the daemon answers only when its
//! tip moves (or a timeout passes), so a new block is noticed within a millisecond
//! without ZMQ. Every Bitcoin Core fork since 0.14 has both calls (as hidden RPCs),
//! Debian's litecoind 0.21 among them.
//!
//! `waitforblockheight H` is the first choice: it returns at once when the tip is
//! already at H or above. `waitfornewblock` waits for a change from the tip *at the time
//! of the call*, so a block landing between two calls would go unnoticed until the next
//! block or the timeout; it is used only by a daemon without `waitforblockheight`.

use super::{DaemonClient, DaemonError, bad_reply, parse_hash};
use crate::hashes::Height;
use bitcoin::BlockHash;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// JSON-RPC's "method not found".
pub const RPC_METHOD_NOT_FOUND: i32 = -32601;

/// Which long-poll RPC to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongPoll {
    WaitForBlockHeight,
    WaitForNewBlock,
}

impl LongPoll {
    pub fn method(self) -> &'static str {
        match self {
            LongPoll::WaitForBlockHeight => "waitforblockheight",
            LongPoll::WaitForNewBlock => "waitfornewblock",
        }
    }

    /// The call to try when the daemon does not know this one.
    pub fn fallback(self) -> Option<LongPoll> {
        match self {
            LongPoll::WaitForBlockHeight => Some(LongPoll::WaitForNewBlock),
            LongPoll::WaitForNewBlock => None,
        }
    }
}

/// The daemon's tip as the long-poll calls report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: Height,
    pub hash: BlockHash,
}

#[derive(Deserialize)]
struct RawTip {
    hash: String,
    height: i64,
}

impl DaemonClient {
    /// Waits at most `timeout` for the daemon's tip to move on from `known` (the tip the
    /// caller last saw; `None` returns the current tip at once) and returns the tip then.
    /// One attempt, no retry: the caller decides how to wait after a failure. `timeout`
    /// must stay below the client's socket timeout.
    pub fn wait_for_tip(
        &mut self,
        how: LongPoll,
        known: Option<Tip>,
        timeout: Duration,
    ) -> Result<Tip, DaemonError> {
        let millis = Value::from(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        // A timeout of 0 would mean "forever": 1 ms answers at once with the current tip.
        let at_once = Value::from(1);
        let params = match (how, known) {
            (LongPoll::WaitForBlockHeight, None) => vec![0.into(), at_once],
            (LongPoll::WaitForBlockHeight, Some(tip)) => {
                vec![tip.height.saturating_add(1).into(), millis]
            }
            (LongPoll::WaitForNewBlock, None) => vec![at_once],
            (LongPoll::WaitForNewBlock, Some(_)) => vec![millis],
        };
        let raw: RawTip = self.call_once(how.method(), &params)?;
        let height = Height::try_from(raw.height)
            .map_err(|_| bad_reply(how.method(), format!("height {}", raw.height)))?;
        Ok(Tip {
            height,
            hash: parse_hash(how.method(), &raw.hash)?,
        })
    }
}
