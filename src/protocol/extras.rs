//! Fulcrum's extras for Bitcoin and Litecoin (Fulcrum 2.1.1): methods ElectrumX does not
//! have that wallets and explorers ask Fulcrum for. Parameters, results, error messages
//! and codes are Fulcrum's, at every protocol version Fulcrum serves (1.4 on); where
//! Fulcrum is wrong ferrumx does the right thing, says so beside the code, and the README
//! lists it. Two extras extend ElectrumX methods and live with them: `get_history`'s
//! height range (its parsing is here) in [`super::blockchain`], and `get_merkle` without
//! a height in [`super::transaction`].

use super::RpcError;
use super::blockchain::{self, mempool_cost};
use super::context::{QueryContext, daemon_error};
use super::params::{fulcrum_height as height, fulcrum_integer as integer};
use super::work::{Args, Effect, HandlerError, Work};
use crate::daemon::DaemonError;
use crate::hashes::{HashX, Height, ScriptHash, from_hex, to_hex};
use crate::store::header_hash;
use bitcoin::{BlockHash, OutPoint, Txid};
use serde_json::{Value, json};
use std::str::FromStr;

/// What asking the daemon costs a request on top of the method's price.
pub const DAEMON_LOOKUP_COST: f64 = 1.0;

/// Fulcrum's `validateHashHex`: 64 hex digits, white space around them ignored. Fulcrum
/// reads only the first 64 characters of a longer string and ignores the rest; ferrumx
/// refuses such a string, which is not a hash.
fn hash_hex(value: &Value) -> Option<&str> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| text.len() == 64 && from_hex(text).is_some())
}

/// A transaction hash as Fulcrum's extras take it.
fn tx_hash(value: &Value) -> Result<Txid, RpcError> {
    hash_hex(value)
        .and_then(|text| Txid::from_str(text).ok())
        .ok_or_else(|| RpcError::bad_request("Invalid tx hash"))
}

/// A script hash as Fulcrum's extras take it.
fn script_hash(value: &Value) -> Result<ScriptHash, RpcError> {
    hash_hex(value)
        .and_then(ScriptHash::from_hex)
        .ok_or_else(|| RpcError::bad_request("Invalid scripthash"))
}

fn header_json(height: Height, header: &[u8; 80]) -> Value {
    json!({"height": height, "hex": to_hex(header)})
}

/// `blockchain.headers.get_tip`: the tip as `headers.subscribe` answers it, without
/// subscribing.
pub fn headers_get_tip(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    let height = blockchain::tip_height(ctx)?;
    let header = blockchain::raw_header(ctx, height)?;
    Ok(header_json(height, &header))
}

/// `blockchain.headers.unsubscribe`: whether the session was subscribed, which the
/// session answers.
pub fn headers_unsubscribe(
    _: &QueryContext,
    _: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    work.effect(Effect::UnsubscribeHeaders);
    Ok(Value::Bool(false))
}

/// `blockchain.header.get(block_hash)`: `{"height", "hex"}` of a block of the chain, by
/// its hash (a string) or its height (a number).
pub fn header_get(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let (height, hash) = match args.required(0) {
        Value::String(_) => {
            let hash = hash_hex(args.required(0))
                .and_then(|text| BlockHash::from_str(text).ok())
                .ok_or_else(|| RpcError::bad_request("Invalid block hash"))?;
            work.charge(DAEMON_LOOKUP_COST);
            (block_height(work, &hash)?, Some(hash))
        }
        Value::Number(_) => {
            let height =
                height(args.required(0)).ok_or_else(|| RpcError::bad_request("Invalid height"))?;
            (height, None)
        }
        // Fulcrum takes `true` for height 1; ferrumx refuses it with the others.
        _ => {
            return Err(RpcError::invalid_args("Invalid height or hash specified").into());
        }
    };
    let header = ctx
        .snapshot
        .header(height)?
        .ok_or_else(|| RpcError::bad_request(format!("Height {height} is out of range")))?;
    // Fulcrum returns whatever header its index has at the daemon's height for the hash,
    // another block's during a reorg; ferrumx answers only for the block asked for.
    if hash.is_some_and(|hash| hash != header_hash(&header)) {
        return Err(RpcError::bad_request("Block not in active chain").into());
    }
    Ok(header_json(height, &header))
}

/// The height of a block of the daemon's active chain (`getblockheader`).
fn block_height(work: &mut Work, hash: &BlockHash) -> Result<Height, RpcError> {
    let header = work
        .ask_daemon("getblockheader", &[json!(hash.to_string()), json!(true)])
        .map_err(fulcrum_daemon_error)?;
    if header
        .get("confirmations")
        .and_then(Value::as_i64)
        .is_none_or(|confirmations| confirmations < 0)
    {
        return Err(RpcError::bad_request("Block not in active chain"));
    }
    header
        .get("height")
        .and_then(Value::as_u64)
        .and_then(|height| Height::try_from(height).ok())
        .ok_or_else(|| {
            RpcError::new(
                RpcError::INTERNAL_ERROR,
                "Unable to parse height response from bitcoind",
            )
        })
}

/// A daemon error as Fulcrum relays it: the daemon's message, code 2.
fn fulcrum_daemon_error(error: DaemonError) -> RpcError {
    match error {
        DaemonError::Rpc { message, .. } => RpcError::new(RpcError::DAEMON_ERROR, message),
        other => daemon_error(other),
    }
}

/// `blockchain.scripthash.get_first_use(scripthash)`: the first transaction touching the
/// script and its block, or, with no confirmed history, the first mempool transaction
/// paying to it (height 0, block hash all zeros); `null` if neither.
pub fn get_first_use(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let hashx = script_hash(args.required(0))?.hashx();
    if let Some(tx_num) = ctx.snapshot.first_in_history(&hashx)? {
        let (height, _) = ctx.snapshot.height_of(tx_num)?;
        let header = blockchain::raw_header(ctx, height)?;
        return Ok(first_use(
            ctx.snapshot.txid(tx_num)?,
            height.to_u64(),
            header_hash(&header).to_string(),
        ));
    }
    // In status order, as Fulcrum looks: those with confirmed inputs first.
    let mempool = ctx.mempool();
    let history = mempool.history(&hashx);
    work.charge(mempool_cost(history.len()));
    let paying = history.iter().find(|entry| {
        mempool.tx(&entry.txid).is_some_and(|tx| {
            tx.out_pairs
                .iter()
                .flatten()
                .any(|(paid, _)| *paid == hashx)
        })
    });
    Ok(paying.map_or(Value::Null, |entry| {
        first_use(entry.txid, 0, "00".repeat(32))
    }))
}

/// Fulcrum's answer, with Electrs's older name `block_height` for the height (0 for a
/// mempool transaction).
fn first_use(txid: Txid, height: u64, block_hash: String) -> Value {
    json!({
        "block_hash": block_hash,
        "height": height,
        "block_height": height,
        "tx_hash": txid.to_string(),
    })
}

/// A transaction's status as `blockchain.transaction.subscribe` reports it: the height of
/// its block, 0 in the mempool, `null` when unknown.
pub fn tx_status(ctx: &QueryContext, txid: &Txid) -> Result<Value, RpcError> {
    if let Some((_, height)) = ctx.snapshot.tx_position(txid)? {
        return Ok(json!(height));
    }
    Ok(if ctx.mempool().tx(txid).is_some() {
        json!(0)
    } else {
        Value::Null
    })
}

/// `blockchain.transaction.get_height(tx_hash)`: [`tx_status`], unknown being an error.
pub fn tx_get_height(ctx: &QueryContext, args: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    match tx_status(ctx, &txid)? {
        Value::Null => Err(RpcError::bad_request(
            "No transaction matching the requested hash was found",
        )
        .into()),
        height => Ok(height),
    }
}

/// Fulcrum's `parseBoolSemiLooselyButNotTooLoosely`: a boolean, or a number (not 0 is
/// true).
fn loose_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        _ => None,
    }
}

/// What the extras answer for a transaction that is not in a block.
const NOT_CONFIRMED: &str = "No confirmed transaction matching the requested hash was found";

/// `blockchain.transaction.get_confirmed_blockhash(tx_hash, include_header=false)`: the
/// block holding a confirmed transaction, with its header if asked.
pub fn tx_get_confirmed_blockhash(
    ctx: &QueryContext,
    args: &Args,
    _: &mut Work,
) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    let include_header = match args.get(1) {
        None => false,
        Some(value) => loose_bool(value)
            .ok_or_else(|| RpcError::bad_request("Invalid second argument; expected boolean"))?,
    };
    let height = confirmed_height(ctx, &txid)?;
    let header = blockchain::raw_header(ctx, height)?;
    let mut result = json!({
        "block_hash": header_hash(&header).to_string(),
        "block_height": height,
    });
    if include_header {
        result["block_header"] = Value::String(to_hex(&header));
    }
    Ok(result)
}

/// The height of the block holding a transaction (`get_merkle` without a height too).
pub fn confirmed_height(ctx: &QueryContext, txid: &Txid) -> Result<Height, RpcError> {
    match ctx.snapshot.tx_position(txid)? {
        Some((_, height)) => Ok(height),
        None => Err(RpcError::bad_request(NOT_CONFIRMED)),
    }
}

/// `blockchain.transaction.subscribe(tx_hash)`: the transaction's [`tx_status`]; the
/// session then notifies `[tx_hash, status]` whenever the status changes.
pub fn tx_subscribe(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    let status = tx_status(ctx, &txid)?;
    work.effect(Effect::SubscribeTx {
        txid,
        status: status.clone(),
    });
    Ok(status)
}

/// `blockchain.transaction.unsubscribe(tx_hash)`: whether the session was subscribed,
/// which the session answers.
pub fn tx_unsubscribe(
    _: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    work.effect(Effect::UnsubscribeTx { txid });
    Ok(Value::Bool(false))
}

/// `blockchain.utxo.get_info(tx_hash, out_n)`: an unspent output's value, script hash
/// and, if confirmed, height; `null` if spent (also by a mempool transaction) or unknown.
pub fn utxo_get_info(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    let vout = integer(args.required(1))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            RpcError::bad_request(format!(
                "Invalid tx out number: expected a value >= 0 and <= {}",
                u32::MAX
            ))
        })?;
    // The mempool is read (and its lock released) before the daemon is asked.
    let Some((hashx, value, height)) = unspent_output(ctx, &txid, vout)? else {
        return Ok(Value::Null);
    };
    // The index keeps a prefix of the script's hash; the daemon has the script.
    let Some(script_hash) = output_script_hash(work, &txid, vout)? else {
        return Ok(Value::Null);
    };
    if script_hash.hashx() != hashx {
        log::error!("the daemon's script of {txid}:{vout} is not the one the index holds");
        return Err(RpcError::internal().into());
    }
    let mut result = json!({"value": value, "scripthash": script_hash.to_hex()});
    if let Some(height) = height {
        result["confirmed_height"] = json!(height);
    }
    Ok(result)
}

/// An output neither spent nor unknown: its script's hashX, its value and, if
/// confirmed, its height. As Fulcrum, a mempool transaction's outputs are looked up in
/// the mempool only.
fn unspent_output(
    ctx: &QueryContext,
    txid: &Txid,
    vout: u32,
) -> Result<Option<(HashX, u64, Option<Height>)>, RpcError> {
    let mempool = ctx.mempool();
    if mempool.is_spent(&OutPoint { txid: *txid, vout }) {
        return Ok(None);
    }
    if let Some(tx) = mempool.tx(txid) {
        return Ok(match tx.out_pairs.get(vout as usize) {
            Some(Some((hashx, value))) => Some((*hashx, *value, None)),
            _ => None,
        });
    }
    drop(mempool);
    Ok(match ctx.snapshot.utxo_of(txid, vout)? {
        Some((hashx, tx_num, value)) => {
            Some((hashx, value, Some(ctx.snapshot.height_of(tx_num)?.0)))
        }
        None => None,
    })
}

/// The script hash of an unspent output (`gettxout`, mempool included); `None` if the
/// daemon has it spent.
fn output_script_hash(
    work: &mut Work,
    txid: &Txid,
    vout: u32,
) -> Result<Option<ScriptHash>, RpcError> {
    let output = work
        .ask_daemon(
            "gettxout",
            &[json!(txid.to_string()), json!(vout), json!(true)],
        )
        .map_err(fulcrum_daemon_error)?;
    if output.is_null() {
        return Ok(None);
    }
    let script = output
        .pointer("/scriptPubKey/hex")
        .and_then(Value::as_str)
        .and_then(from_hex)
        .ok_or_else(|| super::context::missing_field("gettxout", "scriptPubKey.hex"))?;
    Ok(Some(ScriptHash::from_script(&script)))
}

/// `daemon.passthrough({"method", "params"})`: one daemon RPC, for clients of
/// DAEMON_PASSTHROUGH_SUBNETS only, never `stop`. Fulcrum takes only named parameters;
/// ferrumx also takes `[method, params]`.
pub fn daemon_passthrough(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let allowed = ctx.client_ip.is_some_and(|ip| {
        ctx.server
            .passthrough_subnets
            .iter()
            .any(|subnet| subnet.contains(ip))
    });
    // As Fulcrum, which checks the named parameters before the client.
    if args.get(0).is_none() {
        return Err(RpcError::invalid_args("Required parameters missing").into());
    }
    if !allowed {
        return Err(RpcError::new(
            RpcError::METHOD_NOT_FOUND,
            "Method disabled for this client",
        )
        .into());
    }
    let shape = || {
        RpcError::bad_request(
            "Expected a dictionary of the form: { \"method\": \"string\", \"params\": [...] }",
        )
    };
    let method = args.get(0).and_then(Value::as_str).ok_or_else(shape)?;
    let params = match args.get(1) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params.clone(),
        Some(_) => return Err(shape().into()),
    };
    if method == "stop" {
        return Err(
            RpcError::bad_request("Method \"stop\" not allowed for daemon.passthrough").into(),
        );
    }
    work.ask_daemon(method, &params)
        .map_err(|e| fulcrum_daemon_error(e).into())
}

#[cfg(test)]
mod tests;
