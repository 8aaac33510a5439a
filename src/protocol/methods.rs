//! Every Electrum method in one table: its name, the protocol versions that have it, its
//! parameters, its handler, and how it is priced. A handler gets its arguments bound to
//! its parameters and returns its result; what it changes in the session (a
//! subscription, a mempool refresh) and what it cost are recorded on the way, in
//! [`Work`], from the work it actually did (entries read, headers hashed, bytes sent to
//! the daemon), with ElectrumX's formulas.

use super::RpcError;
use super::blockchain;
use super::context::{DaemonCall, QueryContext, ask_daemon};
use super::extras;
use super::fees;
use super::outpoint;
use super::params::{Signature, bind};
use super::server;
use super::transaction;
use super::version::ProtocolVersion;
pub use super::work::{Answer, Args, Effect, Handler, HandlerError, Outcome, Work};
use serde_json::Value;

/// How a method is priced: ElectrumX's cost charged on every call, and what the handler
/// adds for the work it did (described for the reader; the handler charges it).
#[derive(Clone, Copy, Debug)]
pub struct Price {
    pub base: f64,
    pub per_work: &'static str,
}

const fn flat(base: f64) -> Price {
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

const fn sig(names: &'static [&'static str], required: usize) -> Signature {
    Signature {
        names,
        required,
        extra_ok: false,
    }
}

/// What `server.version` costs (the session negotiates the first one itself).
pub const VERSION_COST: f64 = 0.5;

const V1_4: &[u32] = &[1, 4];
const V1_4_2: &[u32] = &[1, 4, 2];
const V1_6: &[u32] = &[1, 6];
const V1_7: &[u32] = &[1, 7];

/// Every method of protocols 1.4 to 1.7, with ElectrumX's prices, then Fulcrum's extras.
/// Methods that no Bitcoin or Litecoin daemon can serve are not here, so they are
/// unknown (-32601), as ElectrumX answers them on these coins: drivechains'
/// `blockchain.transaction.bmm_merkle`, Namecoin's `blockchain.name.*`, Dash's
/// `masternode.*` and `protx.*`.
pub static METHODS: &[Method] = &[
    Method {
        name: "server.version",
        since: V1_4,
        until: None,
        params: Signature {
            names: &["client_name", "protocol_version"],
            required: 0,
            extra_ok: true,
        },
        // The session negotiates the first one itself; this answers any later one.
        handler: |_, _, _| Err(RpcError::bad_request("server.version already sent").into()),
        price: flat(VERSION_COST),
        source: Source::Index,
    },
    Method {
        name: "server.ping",
        since: V1_4,
        until: None,
        // ElectrumX's handler takes protocol 1.7's optional `pong_len` and `data` at
        // every version, and below 1.7 ignores them; so does ferrumx.
        params: sig(&["pong_len", "data"], 0),
        handler: server::ping,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "server.features",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: server::features,
        price: flat(0.2),
        source: Source::Index,
    },
    Method {
        name: "server.banner",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: server::banner,
        price: flat(0.5),
        source: Source::Outside,
    },
    Method {
        name: "server.donation_address",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: server::donation_address,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "server.peers.subscribe",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: server::peers_subscribe,
        price: flat(1.0),
        source: Source::Index,
    },
    Method {
        name: "server.add_peer",
        since: V1_4,
        until: None,
        params: sig(&["features"], 1),
        handler: server::add_peer,
        price: flat(100.0),
        // It resolves the peer's host name.
        source: Source::Outside,
    },
    Method {
        name: "blockchain.headers.subscribe",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: blockchain::headers_subscribe,
        price: flat(0.25),
        source: Source::Index,
    },
    Method {
        name: "blockchain.block.header",
        since: V1_4,
        until: None,
        params: sig(&["height", "cp_height"], 1),
        handler: blockchain::block_header,
        price: Price {
            base: 0.25,
            per_work: "1 with a checkpoint proof",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.block.headers",
        since: V1_4,
        until: None,
        params: sig(&["start_height", "count", "cp_height"], 2),
        handler: blockchain::block_headers,
        price: Price {
            base: 0.0,
            per_work: "1/50 per header returned, 1 with a checkpoint proof",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.get_balance",
        since: V1_4,
        until: Some(V1_7),
        params: sig(&["scripthash"], 1),
        handler: blockchain::get_balance,
        price: Price {
            base: 1.0,
            per_work: "1/50 per confirmed UTXO read",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.get_history",
        since: V1_4,
        until: Some(V1_7),
        // from_height and to_height: Fulcrum's extra.
        params: sig(&["scripthash", "from_height", "to_height"], 1),
        handler: blockchain::get_history,
        price: Price {
            base: 0.0,
            per_work: "history: 0.1, on a cache miss 0.1 more and 0.001 per entry read; \
                       mempool: 0.25 and 1/50 per transaction",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.get_mempool",
        since: V1_4,
        until: Some(V1_7),
        params: sig(&["scripthash"], 1),
        handler: blockchain::get_mempool,
        price: Price {
            base: 0.0,
            per_work: "0.25 and 1/50 per mempool transaction",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.listunspent",
        since: V1_4,
        until: Some(V1_7),
        params: sig(&["scripthash"], 1),
        handler: blockchain::listunspent,
        price: Price {
            base: 1.0,
            per_work: "1/50 per UTXO read (confirmed and mempool)",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.subscribe",
        since: V1_4,
        until: Some(V1_7),
        params: sig(&["scripthash"], 1),
        handler: blockchain::subscribe,
        price: Price {
            base: 0.0,
            per_work: "the history's price, then 0.1 and 0.00002 per character of the \
                       status string hashed",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scripthash.unsubscribe",
        since: V1_4_2,
        until: Some(V1_7),
        params: sig(&["scripthash"], 1),
        handler: blockchain::unsubscribe,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.get_balance",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: |ctx, args, work| {
            blockchain::by_spk(ctx, args, work, blockchain::balance_of, None)
        },
        price: Price {
            base: 1.0,
            per_work: "1/50 per confirmed UTXO read",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.get_history",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: |ctx, args, work| {
            blockchain::by_spk(ctx, args, work, blockchain::history_of, Some("history"))
        },
        price: Price {
            base: 0.0,
            per_work: "as blockchain.scripthash.get_history",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.get_mempool",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: |ctx, args, work| {
            blockchain::by_spk(ctx, args, work, blockchain::mempool_of, Some("history"))
        },
        price: Price {
            base: 0.0,
            per_work: "0.25 and 1/50 per mempool transaction",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.listunspent",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: |ctx, args, work| {
            blockchain::by_spk(ctx, args, work, blockchain::unspent_of, Some("utxos"))
        },
        price: Price {
            base: 1.0,
            per_work: "1/50 per UTXO read (confirmed and mempool)",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.subscribe",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: blockchain::spk_subscribe,
        price: Price {
            base: 0.0,
            per_work: "as blockchain.scripthash.subscribe",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.scriptpubkey.unsubscribe",
        since: V1_7,
        until: None,
        params: sig(&["spk"], 1),
        handler: blockchain::spk_unsubscribe,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "blockchain.outpoint.subscribe",
        since: V1_7,
        until: None,
        params: sig(&["tx_hash", "txout_idx", "spk_hint"], 3),
        handler: outpoint::subscribe,
        price: Price {
            base: 0.0,
            per_work: "0.1 for the index, 0.1 more for the mempool unless the spend is mined",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.outpoint.get_status",
        since: V1_7,
        until: None,
        params: sig(&["tx_hash", "txout_idx", "spk_hint"], 3),
        handler: outpoint::get_status,
        price: Price {
            base: 0.0,
            per_work: "0.1 for the index, 0.1 more for the mempool unless the spend is mined",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.outpoint.unsubscribe",
        since: V1_7,
        until: None,
        params: sig(&["tx_hash", "txout_idx"], 2),
        handler: outpoint::unsubscribe,
        price: Price {
            base: 0.0,
            per_work: "0.1 once the arguments are valid",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.get",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash", "verbose"], 1),
        handler: transaction::get,
        price: flat(1.0),
        source: Source::Outside,
    },
    Method {
        name: "blockchain.transaction.get_merkle",
        since: V1_4,
        until: None,
        // The height may be left out: Fulcrum's extra.
        params: sig(&["tx_hash", "height"], 1),
        handler: transaction::get_merkle,
        price: Price {
            base: 0.0,
            per_work: transaction::GET_MERKLE_PRICE,
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.id_from_pos",
        since: V1_4,
        until: None,
        params: sig(&["height", "tx_pos", "merkle"], 2),
        handler: transaction::id_from_pos,
        price: Price {
            base: 0.0,
            per_work: transaction::MERKLE_PRICE,
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.broadcast",
        since: V1_4,
        until: None,
        params: sig(&["raw_tx"], 1),
        handler: transaction::broadcast,
        price: Price {
            base: 0.25,
            per_work: "1/5000 per hex character sent",
        },
        source: Source::Outside,
    },
    Method {
        name: "blockchain.transaction.broadcast_package",
        since: V1_6,
        until: None,
        params: sig(&["raw_txs", "verbose"], 1),
        handler: transaction::broadcast_package,
        price: Price {
            base: 0.25,
            per_work: "1/5000 per hex character sent",
        },
        source: Source::Outside,
    },
    Method {
        name: "blockchain.transaction.testmempoolaccept",
        since: V1_7,
        until: None,
        params: sig(&["raw_txs"], 1),
        handler: transaction::testmempoolaccept,
        price: Price {
            base: 0.0,
            per_work: "once the transactions are valid hex: 0.25 and 1/5000 per hex character",
        },
        source: Source::Outside,
    },
    Method {
        name: "blockchain.estimatefee",
        since: V1_4,
        until: None,
        params: sig(&["number", "mode"], 1),
        handler: fees::estimatefee,
        price: Price {
            base: 0.1,
            per_work: "2 when the daemon is asked (not cached at this tip)",
        },
        source: Source::Outside,
    },
    Method {
        name: "blockchain.relayfee",
        since: V1_4,
        until: Some(V1_6),
        params: sig(&[], 0),
        handler: fees::relayfee,
        price: flat(1.0),
        source: Source::Outside,
    },
    Method {
        name: "mempool.get_info",
        since: V1_6,
        until: None,
        params: sig(&[], 0),
        handler: fees::mempool_info,
        price: flat(1.0),
        source: Source::Outside,
    },
    Method {
        name: "mempool.recent",
        since: V1_7,
        until: None,
        params: sig(&[], 0),
        handler: fees::mempool_recent,
        price: flat(1.0),
        source: Source::Index,
    },
    Method {
        name: "mempool.get_fee_histogram",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: fees::fee_histogram,
        price: flat(1.0),
        source: Source::Index,
    },
    // Fulcrum 2.1.1's extras (see `extras`), at every version Fulcrum serves, priced as
    // the ElectrumX methods doing the same work.
    Method {
        name: "blockchain.headers.get_tip",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: extras::headers_get_tip,
        price: flat(0.25),
        source: Source::Index,
    },
    Method {
        name: "blockchain.headers.unsubscribe",
        since: V1_4,
        until: None,
        params: sig(&[], 0),
        handler: extras::headers_unsubscribe,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "blockchain.header.get",
        since: V1_4,
        until: None,
        params: sig(&["block_hash"], 1),
        handler: extras::header_get,
        price: Price {
            base: 0.25,
            per_work: "1 when a block hash is looked up at the daemon",
        },
        // A hash is looked up at the daemon.
        source: Source::Outside,
    },
    Method {
        name: "blockchain.scripthash.get_first_use",
        since: V1_4,
        until: None,
        params: sig(&["scripthash"], 1),
        handler: extras::get_first_use,
        price: Price {
            base: 0.2,
            per_work: "without confirmed history, the mempool's 0.25 and 1/50 per transaction",
        },
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.get_height",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash"], 1),
        handler: extras::tx_get_height,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.get_confirmed_blockhash",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash", "include_header"], 1),
        handler: extras::tx_get_confirmed_blockhash,
        price: flat(0.25),
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.subscribe",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash"], 1),
        handler: extras::tx_subscribe,
        // A lookup now, and one at every block while subscribed.
        price: flat(0.25),
        source: Source::Index,
    },
    Method {
        name: "blockchain.transaction.unsubscribe",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash"], 1),
        handler: extras::tx_unsubscribe,
        price: flat(0.1),
        source: Source::Index,
    },
    Method {
        name: "blockchain.utxo.get_info",
        since: V1_4,
        until: None,
        params: sig(&["tx_hash", "out_n"], 2),
        handler: extras::utxo_get_info,
        // An index lookup and one `gettxout`, as transaction.get's one daemon call.
        price: flat(1.0),
        source: Source::Outside,
    },
    Method {
        name: "daemon.passthrough",
        since: V1_4,
        until: None,
        // Fulcrum checks the client before the arguments, so the handler checks both.
        params: Signature {
            names: &["method", "params"],
            required: 0,
            extra_ok: true,
        },
        handler: extras::daemon_passthrough,
        price: Price {
            base: 2.0,
            per_work: "a daemon call of any weight, as estimatefee's daemon call",
        },
        source: Source::Outside,
    },
];

/// The notifications a client may send: protocol 1.7's `server.ping(data="")`, which
/// only pads the traffic. Any other notification is an unknown method, counted as an
/// error and not answered.
pub static NOTIFICATIONS: &[Method] = &[Method {
    name: "server.ping",
    since: V1_7,
    until: None,
    params: sig(&["data"], 0),
    handler: server::ping_notification,
    price: flat(0.1),
    source: Source::Index,
}];

/// The method `name` as the negotiated `protocol` has it.
pub fn find(name: &str, protocol: &ProtocolVersion) -> Option<&'static Method> {
    METHODS
        .iter()
        .find(|method| method.name == name && method.serves(protocol))
}

/// What a client gets for a method its protocol does not have.
pub fn unknown_method(name: &str) -> RpcError {
    RpcError::new(
        RpcError::METHOD_NOT_FOUND,
        format!("unknown method \"{name}\""),
    )
}

/// Answers one request: the method's answer, or "unknown method" (which costs nothing
/// besides the error); or, on a session's own thread, word that it must run on the
/// blocking pool.
pub fn answer(ctx: &QueryContext, name: &str, params: &Value) -> Outcome {
    answer_with(ctx, name, params, &mut |method, args| {
        ask_daemon(ctx.daemon, method, args)
    })
}

/// Handles a notification from the client: what it cost, or that it names no
/// notification (an error the session counts).
pub fn answer_notification(ctx: &QueryContext, name: &str, params: &Value) -> Outcome {
    let method = NOTIFICATIONS
        .iter()
        .find(|method| method.name == name && method.serves(ctx.protocol));
    match method {
        Some(method) => method.call(ctx, params, &mut |method, args| {
            ask_daemon(ctx.daemon, method, args)
        }),
        None => Outcome::Answer(Answer {
            result: Err(unknown_method(name)),
            effect: None,
            cost: 0.0,
        }),
    }
}

/// [`answer`] with another way to the daemon (tests pass fakes).
pub fn answer_with(
    ctx: &QueryContext,
    name: &str,
    params: &Value,
    daemon: &mut DaemonCall,
) -> Outcome {
    match find(name, ctx.protocol) {
        Some(method) => method.call(ctx, params, daemon),
        None => Outcome::Answer(Answer {
            result: Err(unknown_method(name)),
            effect: None,
            cost: 0.0,
        }),
    }
}

/// Binds `params` as the method `name` takes them (at any protocol version).
#[cfg(test)]
pub(crate) fn check_args(name: &str, params: &Value) -> Result<(), RpcError> {
    let method = METHODS
        .iter()
        .find(|method| method.name == name)
        .unwrap_or_else(|| panic!("no method {name}"));
    bind(name, params, &method.params).map(|_| ())
}

/// The answer of a query made off a session's thread, where every request is answered.
#[cfg(test)]
pub(crate) fn answered(outcome: Outcome) -> Answer {
    outcome
        .answered()
        .unwrap_or_else(|| panic!("no answer off a session's thread"))
}

/// The result of `name(params)` through the table, with a daemon that must not be asked.
#[cfg(test)]
pub(crate) fn call(ctx: &QueryContext, name: &str, params: &Value) -> Result<Value, RpcError> {
    call_with(ctx, name, params, &mut |method, _| {
        panic!("unexpected daemon call {method}")
    })
}

/// The result of `name(params)` through the table, asking `daemon`.
#[cfg(test)]
pub(crate) fn call_with(
    ctx: &QueryContext,
    name: &str,
    params: &Value,
    daemon: &mut DaemonCall,
) -> Result<Value, RpcError> {
    answered(answer_with(ctx, name, params, daemon)).result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coins;
    use crate::daemon::DaemonError;
    use crate::hashes::ScriptHash;
    use crate::protocol::context::INLINE_HISTORY;
    use crate::protocol::server::ServerInfo;
    use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock};
    use serde_json::json;
    use std::sync::Arc;

    fn fixture(blocks: &[FixtureBlock]) -> Fixture {
        let coin = coins::lookup("Bitcoin", "mainnet").unwrap();
        Fixture::new(Arc::new(ServerInfo::new(coin)), blocks)
    }

    fn cost(fixture: &Fixture, name: &str, params: Value) -> f64 {
        let mut daemon = |method: &str, _: &[Value]| match method {
            "sendrawtransaction" => Ok(json!("00".repeat(32))),
            _ => Err(DaemonError::Rpc {
                code: -5,
                message: "no".into(),
            }),
        };
        fixture.query(|ctx| answered(answer_with(ctx, name, &params, &mut daemon)).cost)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn names_are_unique_per_protocol_version() {
        for (i, method) in METHODS.iter().enumerate() {
            assert!(
                METHODS[i + 1..]
                    .iter()
                    .all(|other| other.name != method.name),
                "{} twice",
                method.name
            );
        }
    }

    #[test]
    fn flat_prices_are_electrumx_s() {
        let fixture = fixture(&[]);
        assert_close(cost(&fixture, "server.ping", json!([])), 0.1);
        assert_close(cost(&fixture, "server.add_peer", json!([{}])), 100.0);
        assert_close(cost(&fixture, "server.features", json!([])), 0.2);
        assert_close(
            cost(&fixture, "blockchain.headers.subscribe", json!([])),
            0.25,
        );
        // Failed at the daemon: still charged.
        let txid = "11".repeat(32);
        assert_close(
            cost(&fixture, "blockchain.transaction.get", json!([txid])),
            1.0,
        );
        assert_close(cost(&fixture, "no.such.method", json!([])), 0.0);
    }

    #[test]
    fn header_prices_count_headers_and_proofs() {
        let blocks: Vec<FixtureBlock> = (1..=100).map(|i| FixtureBlock::synthetic(i, 1)).collect();
        let fixture = fixture(&blocks);
        assert_close(
            cost(&fixture, "blockchain.block.headers", json!([0, 100])),
            2.0,
        );
        // A proof against a checkpoint above the tip fails, and is charged all the same.
        assert_close(
            cost(&fixture, "blockchain.block.headers", json!([0, 100, 200])),
            3.0,
        );
        assert_close(
            cost(&fixture, "blockchain.block.header", json!({"height": 1})),
            0.25,
        );
        assert_close(
            cost(&fixture, "blockchain.block.header", json!([1, 50])),
            1.25,
        );
    }

    #[test]
    fn script_prices_follow_the_work_done() {
        let fixture = fixture(&[FixtureBlock::synthetic(1, 3)]);
        let script = json!(["ab".repeat(32)]);
        // A history read from the index, then from the cache; the mempool's share.
        assert_close(
            cost(
                &fixture,
                "blockchain.scripthash.get_history",
                script.clone(),
            ),
            0.1 + 0.1 + 0.25,
        );
        assert_close(
            cost(
                &fixture,
                "blockchain.scripthash.get_history",
                script.clone(),
            ),
            0.1 + 0.25,
        );
        assert_close(
            cost(
                &fixture,
                "blockchain.scripthash.get_balance",
                script.clone(),
            ),
            1.0,
        );
        assert_close(
            cost(
                &fixture,
                "blockchain.scripthash.listunspent",
                script.clone(),
            ),
            1.0,
        );
        assert_close(
            cost(
                &fixture,
                "blockchain.scripthash.get_mempool",
                script.clone(),
            ),
            0.25,
        );
        // No history: nothing hashed but the lookup.
        assert_close(
            cost(&fixture, "blockchain.scripthash.subscribe", script),
            0.1 + 0.1,
        );
    }

    #[test]
    fn merkle_prices_follow_electrumx_caches() {
        let fixture = fixture(&[FixtureBlock::synthetic(1, 300)]);
        let id_from_pos = "blockchain.transaction.id_from_pos";
        // Txids read from the index, then from the cache.
        assert_close(
            cost(&fixture, id_from_pos, json!([1, 5])),
            0.25 + 300.0 * 0.0001,
        );
        assert_close(cost(&fixture, id_from_pos, json!([1, 5])), 0.1);
        // A merkle level made, then reused.
        assert_close(
            cost(&fixture, id_from_pos, json!([1, 5, true])),
            0.1 + 300.0 / 2500.0,
        );
        assert_close(
            cost(&fixture, id_from_pos, json!([1, 5, true])),
            0.1 + 10.0 * 300f64.sqrt() / 2500.0,
        );
    }

    #[test]
    fn broadcast_is_priced_by_its_size_and_refreshes_the_mempool() {
        let fixture = fixture(&[]);
        let raw = "00".repeat(2500);
        assert_close(
            cost(&fixture, "blockchain.transaction.broadcast", json!([raw])),
            1.25,
        );
        let mut daemon = |_: &str, _: &[Value]| Ok(json!("00".repeat(32)));
        let answer = fixture.query(|ctx| {
            answered(answer_with(
                ctx,
                "blockchain.transaction.broadcast",
                &json!(["00"]),
                &mut daemon,
            ))
        });
        assert_eq!(answer.effect, Some(Effect::RefreshMempool));
    }

    #[test]
    fn effects_come_only_with_a_result() {
        let fixture = fixture(&[FixtureBlock::synthetic(1, 1)]);
        let script = "ab".repeat(32);
        let subscribed = fixture.query(|ctx| {
            answered(answer(
                ctx,
                "blockchain.scripthash.subscribe",
                &json!([script]),
            ))
        });
        assert_eq!(subscribed.result, Ok(Value::Null));
        assert!(matches!(
            subscribed.effect,
            Some(Effect::SubscribeScript { status: None, .. })
        ));
        let refused = fixture.query(|ctx| {
            answered(answer(
                ctx,
                "blockchain.scripthash.subscribe",
                &json!(["x"]),
            ))
        });
        assert_eq!(refused.result.unwrap_err().code, RpcError::BAD_REQUEST);
        assert_eq!(refused.effect, None);
        let headers =
            fixture.query(|ctx| answered(answer(ctx, "blockchain.headers.subscribe", &json!([]))));
        assert_eq!(headers.effect, Some(Effect::SubscribeHeaders));
    }

    #[test]
    fn a_long_history_needs_the_blocking_pool_only_on_a_sessions_thread() {
        let script = ScriptHash::from_hex(&"cd".repeat(32)).unwrap();
        let long = INLINE_HISTORY + 1;
        let fixture = fixture(&[FixtureBlock::paying(1, long, script.hashx())]);
        let limit = 10 * long;
        let params = json!([script.to_hex()]);
        let methods = [
            "blockchain.scripthash.get_history",
            "blockchain.scripthash.subscribe",
        ];
        // A history over the limit itself is refused, even on a session's thread.
        let over = fixture.query_where(true, INLINE_HISTORY, |ctx| {
            answer(ctx, "blockchain.scripthash.get_history", &params)
        });
        let Outcome::Answer(over) = over else {
            panic!("a history over the limit needs no blocking pool");
        };
        assert_eq!(
            over.result.map(|_| ()).unwrap_err().code,
            RpcError::HISTORY_TOO_LONG
        );
        // Inline first: a history read off the session's thread is cached.
        for method in methods {
            let inline = fixture.query_where(true, limit, |ctx| answer(ctx, method, &params));
            assert!(
                matches!(inline, Outcome::NeedsBlockingPool),
                "{method} answered inline"
            );
        }
        for method in methods {
            let pool =
                fixture.query_where(false, limit, |ctx| answered(answer(ctx, method, &params)));
            assert!(
                pool.result.is_ok(),
                "{method}: {:?}",
                pool.result.map(|_| ())
            );
        }
        let history = fixture.query_where(false, limit, |ctx| {
            call(ctx, "blockchain.scripthash.get_history", &params)
        });
        assert_eq!(history.unwrap().as_array().map(Vec::len), Some(long));
        // Once read, the history is in the cache, which any thread may use.
        let cached = fixture.query_where(true, limit, |ctx| {
            answer(ctx, "blockchain.scripthash.get_history", &params)
        });
        assert!(matches!(
            cached,
            Outcome::Answer(Answer { result: Ok(_), .. })
        ));
    }

    #[test]
    fn versions_decide_which_methods_exist() {
        let v = |parts: &[u32]| ProtocolVersion::new(parts);
        assert!(find("blockchain.scripthash.unsubscribe", &v(&[1, 4])).is_none());
        assert!(find("blockchain.scripthash.unsubscribe", &v(&[1, 4, 2])).is_some());
        assert!(find("blockchain.relayfee", &v(&[1, 5])).is_some());
        assert!(find("blockchain.relayfee", &v(&[1, 6])).is_none());
        assert!(find("mempool.get_info", &v(&[1, 6])).is_some());
        assert!(find("blockchain.transaction.broadcast_package", &v(&[1, 5])).is_none());
    }

    /// ElectrumX 2.0.0's `set_request_handlers` for protocol 1.7.
    #[test]
    fn protocol_1_7_replaces_script_hashes_with_scriptpubkeys() {
        let v17 = ProtocolVersion::new(&[1, 7]);
        let v16 = ProtocolVersion::new(&[1, 6]);
        for family in ["scripthash", "scriptpubkey"] {
            for method in [
                "get_balance",
                "get_history",
                "get_mempool",
                "listunspent",
                "subscribe",
                "unsubscribe",
            ] {
                let name = format!("blockchain.{family}.{method}");
                assert_eq!(
                    find(&name, &v17).is_some(),
                    family == "scriptpubkey",
                    "{name}"
                );
                assert_eq!(
                    find(&name, &v16).is_some(),
                    family == "scripthash",
                    "{name}"
                );
            }
        }
        for name in [
            "blockchain.outpoint.subscribe",
            "blockchain.outpoint.get_status",
            "blockchain.outpoint.unsubscribe",
            "blockchain.transaction.testmempoolaccept",
            "mempool.recent",
        ] {
            assert!(find(name, &v17).is_some(), "{name}");
            assert!(find(name, &v16).is_none(), "{name}");
        }
        for name in [
            "blockchain.transaction.broadcast_package",
            "mempool.get_info",
        ] {
            assert!(find(name, &v17).is_some(), "{name}");
        }
        assert!(find("blockchain.relayfee", &v17).is_none());
    }

    #[test]
    fn methods_no_bitcoin_or_litecoin_daemon_serves_are_unknown() {
        let mut fixture = fixture(&[]);
        for protocol in [&[1, 4][..], &[1, 4, 3], &[1, 6], &[1, 7]] {
            fixture.protocol = ProtocolVersion::new(protocol);
            for name in [
                "blockchain.transaction.bmm_merkle",
                "blockchain.name.get_value_proof",
                "masternode.list",
                "protx.info",
            ] {
                let error = fixture
                    .query(|ctx| answered(answer(ctx, name, &json!(["00"]))))
                    .result
                    .unwrap_err();
                assert_eq!(error, unknown_method(name));
            }
        }
    }

    #[test]
    fn only_protocol_1_7_takes_ping_notifications() {
        let mut fixture = fixture(&[]);
        let notify = |fixture: &Fixture, params: Value| {
            fixture.query(|ctx| answered(answer_notification(ctx, "server.ping", &params)))
        };
        let refused = notify(&fixture, json!(["00"]));
        assert_eq!(refused.result, Err(unknown_method("server.ping")));
        fixture.protocol = ProtocolVersion::new(&[1, 7]);
        let taken = notify(&fixture, json!(["abc"]));
        assert_eq!(taken.result, Ok(Value::Null));
        assert_close(taken.cost, 0.1);
        assert_eq!(
            notify(&fixture, json!(["xyz"])).result.unwrap_err().message,
            "xyz should be a hex string"
        );
        // The request takes `pong_len` first, the notification only `data`.
        assert_eq!(
            notify(&fixture, json!([0, "00"])).result.unwrap_err().code,
            RpcError::INVALID_ARGS
        );
        let other =
            fixture.query(|ctx| answered(answer_notification(ctx, "server.banner", &json!([]))));
        assert_eq!(other.result, Err(unknown_method("server.banner")));
    }
}
