//! `blockchain.outpoint.*` (protocol 1.7): where an output was created and where it was
//! spent, confirmed or in the mempool. ElectrumX asks the daemon (`getrawtransaction`
//! and Bitcoin Core 31's `gettxspendingprevout`); ferrumx answers from its own index
//! (its spends table, [`crate::store::Snapshot::confirmed_outpoint`]) and mempool, so it serves them on any daemon, litecoind included.
//!
//! A status is `{}` (no such output), `{"funder_height"}` (unspent) or
//! `{"funder_height", "spender_txhash", "spender_height"}`; a mempool height is 0, or
//! -1 when the transaction has unconfirmed inputs.

use super::RpcError;
use super::context::QueryContext;
use super::params::{hex_bytes, non_negative_integer, tx_hash};
use super::work::{Args, Effect, HandlerError, Work};
pub use crate::mempool::OutpointStatus;
use bitcoin::OutPoint;
use serde_json::{Value, json};

/// Looking an outpoint up in the index (ElectrumX charges 0.1 for it, plus a daemon
/// call or two, which ferrumx does not make)...
const LOOKUP_COST: f64 = 0.1;
/// ...and in the mempool, unless the chain already has its spender.
const MEMPOOL_COST: f64 = 0.1;

/// A status as the protocol sends it.
pub fn to_json(status: &OutpointStatus) -> Value {
    let Some(funder_height) = status.funder_height else {
        return json!({});
    };
    match status.spender {
        Some((txid, height)) => json!({
            "funder_height": funder_height,
            "spender_txhash": txid.to_string(),
            "spender_height": height,
        }),
        None => json!({ "funder_height": funder_height }),
    }
}

/// The status of `outpoint` in this snapshot and mempool, confirmed and mempool merged
/// (ElectrumX's `_calc_txoutpoint_status`), and what finding it cost.
pub fn status(ctx: &QueryContext, outpoint: &OutPoint) -> Result<(OutpointStatus, f64), RpcError> {
    let confirmed = ctx
        .snapshot
        .confirmed_outpoint(&outpoint.txid, outpoint.vout)?;
    let funder = confirmed.map(|c| i64::from(c.funder_height.to_u32()));
    let spender = confirmed
        .and_then(|c| c.spender)
        .map(|(txid, height)| (txid, i64::from(height.to_u32())));
    if spender.is_some() {
        // Created, mined, spent and the spend mined: the mempool cannot change that.
        let status = OutpointStatus {
            funder_height: funder,
            spender,
        };
        return Ok((status, LOOKUP_COST));
    }
    let mempool = ctx.mempool().outpoint(outpoint);
    let status = OutpointStatus {
        funder_height: mempool.funder_height.or(funder),
        spender: mempool.spender.or(spender),
    };
    Ok((status, LOOKUP_COST + MEMPOOL_COST))
}

/// `tx_hash` and `txout_idx`, as ElectrumX checks them. An index past what an outpoint
/// can hold names no output.
fn outpoint_param(args: &Args) -> Result<Option<OutPoint>, RpcError> {
    let txid = tx_hash(args.required(0))?;
    let vout = non_negative_integer(args.required(1))?;
    let vout = vout.exact().and_then(|vout| u32::try_from(vout).ok());
    Ok(vout.map(|vout| OutPoint { txid, vout }))
}

/// The outpoint of a `get_status` or `subscribe`, whose `spk_hint` must be hex (and is
/// not needed: the index knows the output).
fn hinted_outpoint(args: &Args) -> Result<Option<OutPoint>, RpcError> {
    let outpoint = outpoint_param(args)?;
    hex_bytes(args.required(2))?;
    Ok(outpoint)
}

fn priced_status(
    ctx: &QueryContext,
    outpoint: Option<&OutPoint>,
    work: &mut Work,
) -> Result<Value, RpcError> {
    let Some(outpoint) = outpoint else {
        work.charge(LOOKUP_COST);
        return Ok(json!({}));
    };
    let (status, cost) = status(ctx, outpoint)?;
    work.charge(cost);
    Ok(to_json(&status))
}

/// `blockchain.outpoint.get_status(tx_hash, txout_idx, spk_hint)`.
pub fn get_status(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let outpoint = hinted_outpoint(args)?;
    Ok(priced_status(ctx, outpoint.as_ref(), work)?)
}

/// `blockchain.outpoint.subscribe(tx_hash, txout_idx, spk_hint)`: the status; the
/// session then notifies its changes.
pub fn subscribe(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let outpoint = hinted_outpoint(args)?;
    let status = priced_status(ctx, outpoint.as_ref(), work)?;
    if let Some(outpoint) = outpoint {
        work.effect(Effect::SubscribeOutpoint {
            outpoint,
            status: status.clone(),
        });
    }
    Ok(status)
}

/// `blockchain.outpoint.unsubscribe(tx_hash, txout_idx)`: whether the session followed
/// it, which the session answers.
pub fn unsubscribe(_: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let outpoint = outpoint_param(args)?;
    work.charge(LOOKUP_COST);
    if let Some(outpoint) = outpoint {
        work.effect(Effect::UnsubscribeOutpoint { outpoint });
    }
    Ok(Value::Bool(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coins;
    use crate::hashes::HashX;
    use crate::protocol::methods::{answer, answered, call};
    use crate::protocol::server::ServerInfo;
    use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock, paying_tx};
    use crate::protocol::version::ProtocolVersion;
    use bitcoin::Txid;
    use bitcoin::hashes::Hash;
    use std::sync::Arc;

    const A: &[u8] = &[0x51, 1];
    const B: &[u8] = &[0x51, 2];

    /// Block 1 pays A from its coinbase; block 2 spends it to B and back to A.
    fn fixture() -> (Fixture, Txid, Txid) {
        let cb1 = paying_tx("cb1", &[], &[(A, 50)]);
        let cb2 = paying_tx("cb2", &[], &[(B, 50)]);
        let t2 = paying_tx("t2", &[(cb1.txid, 0)], &[(B, 30), (A, 20)]);
        let (cb1_id, t2_id) = (cb1.txid, t2.txid);
        let coin = coins::lookup("Bitcoin", "mainnet").unwrap();
        let mut fixture = Fixture::new(
            Arc::new(ServerInfo::new(coin)),
            &[
                FixtureBlock::of(1, vec![cb1]),
                FixtureBlock::of(2, vec![cb2, t2]),
            ],
        );
        fixture.protocol = ProtocolVersion::new(&[1, 7]);
        (fixture, cb1_id, t2_id)
    }

    fn get_status(fixture: &Fixture, txid: &Txid, vout: u32) -> Value {
        fixture
            .query(|ctx| {
                call(
                    ctx,
                    "blockchain.outpoint.get_status",
                    &json!([txid.to_string(), vout, "51"]),
                )
            })
            .unwrap()
    }

    /// Adds mempool transactions whose confirmed inputs are the chain's outputs.
    fn add_to_mempool(fixture: &mut Fixture, txs: Vec<crate::chain::ParsedTx>) {
        let store = Arc::clone(&fixture.store);
        let confirmed = move |outpoint: &OutPoint| {
            let snapshot = store.snapshot().ok()?;
            snapshot
                .confirmed_outpoint(&outpoint.txid, outpoint.vout)
                .ok()??;
            Some((HashX::from_script(A), 1))
        };
        let (_, dropped) = fixture.mempool.write().unwrap().add(txs, confirmed);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn confirmed_outputs_show_their_funding_and_spending_blocks() {
        let (fixture, cb1, t2) = fixture();
        assert_eq!(
            get_status(&fixture, &cb1, 0),
            json!({"funder_height": 1, "spender_txhash": t2.to_string(), "spender_height": 2})
        );
        assert_eq!(get_status(&fixture, &t2, 1), json!({"funder_height": 2}));
        // No such output, no such transaction.
        assert_eq!(get_status(&fixture, &t2, 2), json!({}));
        assert_eq!(
            get_status(&fixture, &Txid::from_byte_array([7; 32]), 0),
            json!({})
        );
    }

    #[test]
    fn mempool_spends_and_outputs_have_heights_zero_and_minus_one() {
        let (mut fixture, _, t2) = fixture();
        let m1 = paying_tx("m1", &[(t2, 0)], &[(B, 29)]);
        let m2 = paying_tx("m2", &[(m1.txid, 0)], &[(A, 28)]);
        let (m1_id, m2_id) = (m1.txid, m2.txid);
        add_to_mempool(&mut fixture, vec![m1, m2]);
        assert_eq!(
            get_status(&fixture, &t2, 0),
            json!({"funder_height": 2, "spender_txhash": m1_id.to_string(), "spender_height": 0})
        );
        assert_eq!(
            get_status(&fixture, &m1_id, 0),
            json!({"funder_height": 0, "spender_txhash": m2_id.to_string(), "spender_height": -1})
        );
        assert_eq!(
            get_status(&fixture, &m2_id, 0),
            json!({"funder_height": -1})
        );
        assert_eq!(get_status(&fixture, &m2_id, 1), json!({}));
    }

    #[test]
    fn lookups_cost_less_when_the_spend_is_mined() {
        let (fixture, cb1, t2) = fixture();
        let cost = |txid: &Txid| {
            let params = json!([txid.to_string(), 0, ""]);
            fixture
                .query(|ctx| answered(answer(ctx, "blockchain.outpoint.get_status", &params)).cost)
        };
        assert!((cost(&cb1) - LOOKUP_COST).abs() < 1e-9);
        assert!((cost(&t2) - LOOKUP_COST - MEMPOOL_COST).abs() < 1e-9);
    }

    #[test]
    fn subscriptions_are_effects_of_valid_requests() {
        let (fixture, _, t2) = fixture();
        let subscribed = fixture.query(|ctx| {
            answered(answer(
                ctx,
                "blockchain.outpoint.subscribe",
                &json!([t2.to_string(), 1, "abcd"]),
            ))
        });
        assert_eq!(subscribed.result, Ok(json!({"funder_height": 2})));
        assert_eq!(
            subscribed.effect,
            Some(Effect::SubscribeOutpoint {
                outpoint: OutPoint { txid: t2, vout: 1 },
                status: json!({"funder_height": 2}),
            })
        );
        let unsubscribed = fixture.query(|ctx| {
            answered(answer(
                ctx,
                "blockchain.outpoint.unsubscribe",
                &json!([t2.to_string(), 1]),
            ))
        });
        assert_eq!(
            unsubscribed.effect,
            Some(Effect::UnsubscribeOutpoint {
                outpoint: OutPoint { txid: t2, vout: 1 }
            })
        );
    }

    #[test]
    fn arguments_are_checked_as_electrumx_checks_them() {
        let (fixture, _, t2) = fixture();
        let error = |params: Value| {
            fixture
                .query(|ctx| call(ctx, "blockchain.outpoint.subscribe", &params))
                .unwrap_err()
        };
        let txid = t2.to_string();
        assert_eq!(
            error(json!(["zz", 0, ""])).message,
            "zz should be a transaction hash"
        );
        assert_eq!(
            error(json!([txid, -1, ""])).message,
            "-1 should be a non-negative integer"
        );
        assert_eq!(
            error(json!([txid, 0, "xyz"])).message,
            "xyz should be a hex string"
        );
        // The hint is not optional.
        assert_eq!(error(json!([txid, 0])).code, RpcError::INVALID_ARGS);
        // Before protocol 1.7 there are no outpoint methods.
        let mut old = fixture;
        old.protocol = ProtocolVersion::new(&[1, 6]);
        let unknown = old
            .query(|ctx| call(ctx, "blockchain.outpoint.get_status", &json!([txid, 0, ""])))
            .unwrap_err();
        assert_eq!(unknown.code, RpcError::METHOD_NOT_FOUND);
    }
}
