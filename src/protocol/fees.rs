//! Fee estimates and the `mempool.*` methods: what the daemon says, cached as ElectrumX
//! caches it (estimates until the chain tip moves, relay and mempool fees for a minute),
//! and what the mempool itself knows (the fee histogram, the recent transactions).

use super::RpcError;
use super::context::{
    DaemonCall, QueryContext, QueryState, daemon_error, missing_field, network_info,
};
use super::params::non_negative_integer;
use super::work::{Args, HandlerError, Work};
use crate::coins::{Coin, FeeTargets};
use crate::daemon::DaemonError;
use serde_json::{Map, Value, json};

/// ElectrumX's `ESTIMATEFEE_MODES` besides none.
const ESTIMATEFEE_MODES: [&str; 2] = ["CONSERVATIVE", "ECONOMICAL"];
/// `mempool.get_info`'s fields, copied from `getmempoolinfo`.
const MEMPOOL_INFO_FIELDS: [&str; 3] = ["mempoolminfee", "minrelaytxfee", "incrementalrelayfee"];

/// `mempool.get_fee_histogram`: `[[fee rate sat/vB, vsize], …]`, highest rate first,
/// in ElectrumX's bins, refreshed by the mempool every few minutes.
pub fn fee_histogram(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    Ok(ctx
        .mempool()
        .fee_histogram()
        .iter()
        .map(|(rate, vsize)| json!([rate, vsize]))
        .collect())
}

/// How many transactions `mempool.recent` lists.
const RECENT_TXS: usize = 10;

/// `mempool.recent` (protocol 1.7): the last ten transactions the mempool took, newest
/// first, with their fee (sat) and vsize.
pub fn mempool_recent(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    let mempool = ctx.mempool();
    Ok(mempool
        .recent(RECENT_TXS)
        .into_iter()
        .map(|tx| json!({"txid": tx.txid.to_string(), "fee": tx.fee, "vsize": tx.vsize}))
        .collect())
}

/// `blockchain.estimatefee(number, mode=None)`: the daemon's `estimatesmartfee` feerate
/// (coin per kB) for a confirmation target, or -1 when it has no estimate.
pub fn estimatefee(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    /// What asking the daemon costs, on top of the method's price.
    const DAEMON_COST: f64 = 2.0;
    let number = non_negative_integer(args.required(0))?.value;
    // As ElectrumX: a mode that is not a string counts as none; the rest must be known,
    // or anyone could fill the cache.
    let mode = match args.get(1) {
        Some(Value::String(mode)) => Some(mode.to_uppercase()),
        _ => None,
    };
    if let Some(mode) = &mode
        && !ESTIMATEFEE_MODES.contains(&mode.as_str())
    {
        return Err(RpcError::bad_request(format!("unknown estimatefee mode: {mode}")).into());
    }
    let target = bucket(ctx.server.coin, number);
    let cache = &ctx.state.estimatefee_cache;
    let key = ctx
        .snapshot
        .tip()?
        .map(|(_, tip)| (target, mode.clone(), tip));
    if let Some(key) = &key
        && let Some(answer) = cache.get(key)
    {
        return Ok(answer?);
    }
    let mut args = vec![json!(target)];
    args.extend(mode.map(Value::String));
    work.charge(DAEMON_COST);
    let answer = match work.ask_daemon("estimatesmartfee", &args) {
        Ok(estimate) => feerate_of(&estimate),
        // The daemon's refusal is an answer too, the same until the tip moves.
        Err(refused @ DaemonError::Rpc { .. }) => Err(daemon_error(refused)),
        Err(failed) => return Err(daemon_error(failed).into()),
    };
    if let Some(key) = key {
        cache.insert(key, answer.clone());
    }
    Ok(answer?)
}

fn feerate_of(estimate: &Value) -> Result<Value, RpcError> {
    match estimate.as_object().map(|fields| fields.get("feerate")) {
        Some(Some(Value::Null)) | None => Err(missing_field("estimatesmartfee", "feerate")),
        Some(feerate) => Ok(feerate.cloned().unwrap_or(json!(-1))),
    }
}

/// The coin's bucketing of confirmation targets, for any `number` a client sends.
/// Coins that pass targets through unchanged still share one answer per class of
/// targets the daemon refuses alike, so that cycling through numbers cannot defeat the
/// cache: Bitcoin Core and its forks (Litecoin Core 0.21 checked) refuse 0 and anything
/// above 1,008 (the estimator's longest horizon) with one message, and anything beyond
/// a 32-bit integer with another.
fn bucket(coin: &Coin, number: u64) -> u64 {
    const HIGHEST_TARGET: u64 = 1008;
    match (u32::try_from(number), coin.fee_targets) {
        (Ok(n), FeeTargets::BitcoinBuckets) => coin.bucket_estimatefee_block_target(n).into(),
        (Err(_), FeeTargets::BitcoinBuckets) => {
            coin.bucket_estimatefee_block_target(u32::MAX).into()
        }
        (_, FeeTargets::Identity) if number <= HIGHEST_TARGET => number,
        (_, FeeTargets::Identity) if i32::try_from(number).is_ok() => HIGHEST_TARGET + 1,
        (_, FeeTargets::Identity) => 1 << 31,
    }
}

/// `blockchain.relayfee` (protocol < 1.6): the daemon's minimum relay fee (coin per kB).
pub fn relayfee(ctx: &QueryContext, _: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    Ok(relayfee_with(ctx.state, work.daemon())?)
}

fn relayfee_with(state: &QueryState, daemon: &mut DaemonCall) -> Result<Value, RpcError> {
    let info = network_info(daemon, state)?;
    info.get("relayfee")
        .cloned()
        .ok_or_else(|| missing_field("getnetworkinfo", "relayfee"))
}

/// `mempool.get_info` (protocol 1.6): the daemon's mempool and relay fee floors (coin
/// per kvB). Like ElectrumX, an internal error when the daemon lacks one of them, as
/// litecoind 0.21 lacks `incrementalrelayfee`.
pub fn mempool_info(ctx: &QueryContext, _: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    Ok(mempool_info_with(ctx.state, work.daemon())?)
}

fn mempool_info_with(state: &QueryState, daemon: &mut DaemonCall) -> Result<Value, RpcError> {
    let info = state
        .mempool_info
        .get_or_fetch(|| daemon("getmempoolinfo", &[]))
        .map_err(daemon_error)?;
    let mut answer = Map::new();
    for field in MEMPOOL_INFO_FIELDS {
        let value = info
            .get(field)
            .ok_or_else(|| missing_field("getmempoolinfo", field))?;
        answer.insert(field.to_string(), value.clone());
    }
    Ok(Value::Object(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coins;
    use crate::daemon::DaemonError;
    use crate::protocol::methods::{call_with, check_args, find};
    use crate::protocol::server::ServerInfo;
    use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock};
    use crate::protocol::version::ProtocolVersion;
    use std::cell::RefCell;
    use std::sync::Arc;

    fn fixture(coin: &str, net: &str, blocks: &[FixtureBlock]) -> Fixture {
        let coin = coins::lookup(coin, net).unwrap();
        Fixture::new(Arc::new(ServerInfo::new(coin)), blocks)
    }

    /// A daemon that records `estimatesmartfee` calls and answers `answer`.
    fn recording(
        calls: &RefCell<Vec<Vec<Value>>>,
        answer: Value,
    ) -> impl FnMut(&str, &[Value]) -> Result<Value, DaemonError> + '_ {
        move |method, args| {
            assert_eq!(method, "estimatesmartfee");
            calls.borrow_mut().push(args.to_vec());
            Ok(answer.clone())
        }
    }

    #[test]
    fn estimatefee_buckets_targets_and_caches_per_tip() {
        let fixture = fixture("Bitcoin", "mainnet", &[]);
        let calls = RefCell::new(Vec::new());
        let mut daemon = recording(&calls, json!({"feerate": 0.0002, "blocks": 2}));
        fixture.query(|ctx| {
            for number in [json!(30), json!(31), json!("31"), json!(25), json!(5000)] {
                assert_eq!(
                    call_with(ctx, "blockchain.estimatefee", &json!([number]), &mut daemon)
                        .unwrap(),
                    json!(0.0002)
                );
            }
            call_with(
                ctx,
                "blockchain.estimatefee",
                &json!([2, "economical"]),
                &mut daemon,
            )
            .unwrap();
            call_with(
                ctx,
                "blockchain.estimatefee",
                &json!({"number": 2, "mode": "ECONOMICAL"}),
                &mut daemon,
            )
            .unwrap();
            // Not a string: no mode.
            call_with(ctx, "blockchain.estimatefee", &json!([2, 7]), &mut daemon).unwrap();
        });
        assert_eq!(
            calls.borrow().as_slice(),
            [
                vec![json!(30)],
                vec![json!(25)],
                vec![json!(1008)],
                vec![json!(2), json!("ECONOMICAL")],
                vec![json!(2)],
            ]
        );
        let stats = fixture.state.estimatefee_cache.stats();
        assert_eq!((stats.lookups, stats.hits, stats.entries), (8, 3, 5));

        // A new tip: the same question is asked again.
        let moved = Fixture::with_state(
            Arc::clone(&fixture.server),
            Arc::clone(&fixture.state),
            &[FixtureBlock::synthetic(1, 1)],
        );
        moved.query(|ctx| {
            call_with(ctx, "blockchain.estimatefee", &json!([30]), &mut daemon).unwrap()
        });
        assert_eq!(calls.borrow().len(), 6);
    }

    #[test]
    fn litecoin_targets_pass_unchanged_and_refused_ones_share_an_answer() {
        let fixture = fixture("Litecoin", "regtest", &[]);
        let calls = RefCell::new(Vec::new());
        // What litecoind 0.21 answers (checked by hand against a regtest daemon).
        let mut daemon = |method: &str, args: &[Value]| {
            assert_eq!(method, "estimatesmartfee");
            calls.borrow_mut().push(args.to_vec());
            match args[0].as_u64().unwrap() {
                1..=1008 => Ok(json!({"errors": ["Insufficient data"], "blocks": 0})),
                n if n <= i32::MAX as u64 => Err(DaemonError::Rpc {
                    code: -8,
                    message: "Invalid conf_target, must be between 1 and 1008".into(),
                }),
                _ => Err(DaemonError::Rpc {
                    code: -1,
                    message: "JSON integer out of range".into(),
                }),
            }
        };
        fixture.query(|ctx| {
            let mut ask = |number: u64| {
                call_with(ctx, "blockchain.estimatefee", &json!([number]), &mut daemon)
            };
            assert_eq!(ask(27).unwrap(), json!(-1));
            assert_eq!(ask(1008).unwrap(), json!(-1));
            let refused = ask(0).unwrap_err();
            assert!(refused.message.contains("must be between 1 and 1008"));
            for number in [1009, 5000, i32::MAX as u64] {
                assert_eq!(ask(number).unwrap_err().message, refused.message);
            }
            for number in [1 << 31, 1 << 40, u64::MAX] {
                assert!(ask(number).unwrap_err().message.contains("out of range"));
            }
            // All answered from the cache now.
            for number in [0, 27, 1008, 77_777, 1 << 50] {
                let _ = ask(number);
            }
        });
        assert_eq!(
            calls.borrow().as_slice(),
            [
                vec![json!(27)],
                vec![json!(1008)],
                vec![json!(0)],
                vec![json!(1009)],
                vec![json!(1u64 << 31)]
            ]
        );
    }

    #[test]
    fn estimatefee_rejects_what_electrumx_rejects() {
        let fixture = fixture("Bitcoin", "mainnet", &[]);
        let mut daemon = |method: &str, _: &[Value]| -> Result<Value, DaemonError> {
            panic!("unexpected daemon call {method}")
        };
        fixture.query(|ctx| {
            let mut err = |params: Value| {
                call_with(ctx, "blockchain.estimatefee", &params, &mut daemon).unwrap_err()
            };
            assert_eq!(
                err(json!([2, "fast"])).message,
                "unknown estimatefee mode: FAST"
            );
            assert_eq!(err(json!([2, ""])).message, "unknown estimatefee mode: ");
            assert_eq!(
                err(json!([-2])).message,
                "-2 should be a non-negative integer"
            );
            assert_eq!(
                err(json!([null, "fast"])).message,
                "None should be a non-negative integer"
            );
            assert_eq!(err(json!([])).code, RpcError::INVALID_ARGS);
        });
    }

    #[test]
    fn estimatefee_daemon_errors_have_code_2() {
        let fixture = fixture("Bitcoin", "mainnet", &[]);
        let mut daemon = |_: &str, _: &[Value]| {
            Err(DaemonError::Rpc {
                code: -8,
                message: "Invalid conf_target, must be between 1 and 1008".into(),
            })
        };
        fixture.query(|ctx| {
            let err =
                call_with(ctx, "blockchain.estimatefee", &json!([0]), &mut daemon).unwrap_err();
            assert_eq!(err.code, 2);
            assert_eq!(
                err.message,
                "daemon error: DaemonError({'code': -8, 'message': 'Invalid conf_target, \
                 must be between 1 and 1008'})"
            );
        });
    }

    #[test]
    fn no_mempool_lock_is_held_across_a_daemon_call() {
        let fixture = fixture("Bitcoin", "mainnet", &[]);
        let asked = RefCell::new(Vec::new());
        let mut daemon = |method: &str, _: &[Value]| {
            // The mempool's refresh would take its write lock now.
            assert!(
                fixture.mempool.try_write().is_ok(),
                "{method} was asked with the mempool read-locked"
            );
            asked.borrow_mut().push(method.to_string());
            Ok(json!({
                "feerate": 0.0001, "relayfee": 0.00001, "mempoolminfee": 0.00001,
                "minrelaytxfee": 0.00001, "incrementalrelayfee": 0.00001
            }))
        };
        fixture.query(|ctx| {
            for (method, params) in [
                ("blockchain.estimatefee", json!([2])),
                ("mempool.get_info", json!([])),
                ("blockchain.transaction.get", json!(["aa".repeat(32)])),
            ] {
                let _ = call_with(ctx, method, &params, &mut daemon);
            }
        });
        assert_eq!(asked.borrow().len(), 3, "{:?}", asked.borrow());
    }

    #[test]
    fn relayfee_and_mempool_info_are_cached_a_minute() {
        let state = QueryState::default();
        let calls = RefCell::new(Vec::new());
        let mut daemon = |method: &str, _: &[Value]| {
            calls.borrow_mut().push(method.to_string());
            Ok(match method {
                "getnetworkinfo" => json!({"version": 210201, "relayfee": 0.00001}),
                _ => json!({
                    "mempoolminfee": 0.00001, "minrelaytxfee": 0.00001,
                    "incrementalrelayfee": 0.00001, "size": 0
                }),
            })
        };
        for _ in 0..2 {
            assert_eq!(relayfee_with(&state, &mut daemon).unwrap(), json!(0.00001));
            assert_eq!(
                mempool_info_with(&state, &mut daemon).unwrap(),
                json!({
                    "mempoolminfee": 0.00001, "minrelaytxfee": 0.00001,
                    "incrementalrelayfee": 0.00001
                })
            );
        }
        assert_eq!(
            calls.borrow().as_slice(),
            ["getnetworkinfo", "getmempoolinfo"]
        );
        assert_eq!(
            check_args("blockchain.relayfee", &json!([1]))
                .unwrap_err()
                .code,
            RpcError::INVALID_ARGS
        );
    }

    #[test]
    fn mempool_info_without_incrementalrelayfee_is_an_internal_error() {
        let state = QueryState::default();
        let mut litecoind_0_21 =
            |_: &str, _: &[Value]| Ok(json!({"mempoolminfee": 0.00001, "minrelaytxfee": 0.00001}));
        let err = mempool_info_with(&state, &mut litecoind_0_21).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (-32603, "internal server error")
        );
    }

    #[test]
    fn methods_follow_the_protocol_version() {
        let mut fixture = fixture("Litecoin", "regtest", &[]);
        let available = |fixture: &Fixture, method: &str| {
            fixture.query(|ctx| find(method, ctx.protocol).is_some())
        };
        for (version, relayfee) in [(vec![1, 4], true), (vec![1, 5], true), (vec![1, 6], false)] {
            fixture.protocol = ProtocolVersion::new(&version);
            assert_eq!(available(&fixture, "blockchain.relayfee"), relayfee);
            assert_eq!(available(&fixture, "mempool.get_info"), !relayfee);
            assert!(available(&fixture, "blockchain.estimatefee"));
        }
    }

    #[test]
    fn mempool_recent_lists_the_last_ten_arrivals() {
        use crate::protocol::transaction::test_fixture::paying_tx;
        let coin = coins::lookup("Litecoin", "regtest").unwrap();
        let mut fixture = Fixture::new(Arc::new(ServerInfo::new(coin)), &[]);
        fixture.protocol = ProtocolVersion::new(&[1, 7]);
        let funding = paying_tx("funding", &[], &[(&[0x51], 1_000)]);
        let mut txids = Vec::new();
        for i in 0..12u32 {
            let tx = paying_tx(&format!("tx{i}"), &[(funding.txid, i)], &[(&[0x52], 900)]);
            txids.push(tx.txid);
            fixture
                .mempool
                .write()
                .unwrap()
                .add(vec![tx], |_: &bitcoin::OutPoint| {
                    Some((crate::hashes::HashX([1; 11]), 1_000))
                });
        }
        let recent = fixture
            .query(|ctx| crate::protocol::methods::call(ctx, "mempool.recent", &json!([])))
            .unwrap();
        let expected: Vec<Value> = txids
            .iter()
            .rev()
            .take(10)
            .map(|txid| json!({"txid": txid.to_string(), "fee": 100, "vsize": 100}))
            .collect();
        assert_eq!(recent, Value::Array(expected));
    }
}
