//! Every Electrum method in one table: its name, the protocol versions that have it, its
//! parameters, its handler, and how it is priced. A handler gets its arguments bound to
//! its parameters and returns its result; what it changes in the session (a
//! subscription, a mempool refresh) and what it cost are recorded on the way, in
//! [`Work`], from the work it actually did (entries read, headers hashed, bytes sent to
//! the daemon), with ElectrumX's formulas.

use super::RpcError;
use super::context::{DaemonCall, QueryContext, ask_daemon};
#[cfg(test)]
use super::params::bind;
use super::version::ProtocolVersion;
pub use super::work::{Answer, Args, Effect, Handler, HandlerError, Outcome, Work};
use serde_json::Value;

mod method;
mod table;

pub use method::{Method, Price, Source};
pub use table::{METHODS, NOTIFICATIONS, VERSION_COST};

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
