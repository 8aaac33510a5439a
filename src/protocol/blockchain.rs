//! `blockchain.*` methods answered from an index snapshot: headers with checkpoint
//! proofs, and a script hash's history, balance and unspent outputs.

use super::params::{Signature, bind, non_negative_integer, script_hash};
use super::{QueryContext, RpcError, with_commas};
use crate::hashes::{HashX, Height, to_hex};
use crate::mempool::MempoolEntry;
use crate::merkle::{self, Node};
use crate::store::HistoryEntry;
use crate::store::{StoreError, header_hash};
use bitcoin::OutPoint;
use bitcoin::hashes::Hash;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most headers `blockchain.block.headers` returns at once.
pub const MAX_CHUNK_SIZE: u64 = 2016;

/// ElectrumX's history limit for a MAX_SEND: about 99 bytes per JSON history entry.
pub fn history_limit(max_send: usize) -> usize {
    max_send.saturating_sub(100) / 99
}

impl From<StoreError> for RpcError {
    fn from(e: StoreError) -> RpcError {
        log::error!("index read failed: {e}");
        RpcError::internal()
    }
}

fn tip_height(ctx: &QueryContext) -> Result<Height, RpcError> {
    match ctx.snapshot.tip()? {
        Some((height, _)) => Ok(height),
        None => Err(RpcError::bad_request("the index is empty: still syncing")),
    }
}

fn raw_header(ctx: &QueryContext, height: u64) -> Result<[u8; 80], RpcError> {
    let out_of_range = || {
        RpcError::bad_request(format!(
            "height {} out of range",
            with_commas(height.into())
        ))
    };
    let height = Height::try_from(height).map_err(|_| out_of_range())?;
    ctx.snapshot.header(height)?.ok_or_else(out_of_range)
}

/// `blockchain.headers.subscribe`: the tip as `{"hex", "height"}`.
pub fn headers_subscribe(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    bind(
        "blockchain.headers.subscribe",
        params,
        &Signature {
            names: &[],
            required: 0,
            extra_ok: false,
        },
    )?;
    let height = tip_height(ctx)?;
    let header = raw_header(ctx, height.into())?;
    Ok(json!({"hex": to_hex(&header), "height": height}))
}

/// `blockchain.block.header(height, cp_height=0)`.
pub fn block_header(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let sig = Signature {
        names: &["height", "cp_height"],
        required: 1,
        extra_ok: false,
    };
    let slots = bind("blockchain.block.header", params, &sig)?;
    let height = non_negative_integer(slots[0].unwrap_or(&Value::Null))?;
    let cp_height = slots[1].map(non_negative_integer).transpose()?.unwrap_or(0);
    let header = to_hex(&raw_header(ctx, height)?);
    if cp_height == 0 {
        return Ok(Value::String(header));
    }
    let mut result = json!({"header": header});
    add_header_proof(ctx, &mut result, cp_height, height)?;
    Ok(result)
}

/// `blockchain.block.headers(start_height, count, cp_height=0)`.
pub fn block_headers(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let sig = Signature {
        names: &["start_height", "count", "cp_height"],
        required: 2,
        extra_ok: false,
    };
    let slots = bind("blockchain.block.headers", params, &sig)?;
    let start = non_negative_integer(slots[0].unwrap_or(&Value::Null))?;
    let count = non_negative_integer(slots[1].unwrap_or(&Value::Null))?.min(MAX_CHUNK_SIZE);
    let cp_height = slots[2].map(non_negative_integer).transpose()?.unwrap_or(0);
    let tip = u64::from(tip_height(ctx)?);
    let available = (tip + 1).saturating_sub(start).min(count);
    let mut headers = Vec::with_capacity(available as usize);
    for height in start..start + available {
        headers.push(to_hex(&raw_header(ctx, height)?));
    }
    let mut result = if ctx.protocol.is_at_least(&[1, 6]) {
        json!({"headers": headers, "count": available, "max": MAX_CHUNK_SIZE})
    } else {
        json!({"hex": headers.concat(), "count": available, "max": MAX_CHUNK_SIZE})
    };
    if available > 0 && cp_height > 0 {
        add_header_proof(ctx, &mut result, cp_height, start + available - 1)?;
    }
    Ok(result)
}

/// Adds `branch` and `root` proving the header at `height` against the merkle root of
/// the block hashes up to `cp_height`.
fn add_header_proof(
    ctx: &QueryContext,
    result: &mut Value,
    cp_height: u64,
    height: u64,
) -> Result<(), RpcError> {
    let tip = u64::from(tip_height(ctx)?);
    if !(height <= cp_height && cp_height <= tip) {
        return Err(RpcError::bad_request(format!(
            "require header height {} <= cp_height {} <= chain height {}",
            with_commas(height.into()),
            with_commas(cp_height.into()),
            with_commas(tip.into())
        )));
    }
    let mut leaves: Vec<Node> = Vec::with_capacity(cp_height as usize + 1);
    for h in 0..=cp_height {
        leaves.push(header_hash(&raw_header(ctx, h)?).to_byte_array());
    }
    let (branch, root) =
        merkle::branch_and_root(&leaves, height as usize).ok_or_else(RpcError::internal)?;
    result["branch"] = branch
        .iter()
        .map(|node| Value::String(reversed_hex(node)))
        .collect();
    result["root"] = Value::String(reversed_hex(&root));
    Ok(())
}

fn reversed_hex(node: &Node) -> String {
    let mut bytes = *node;
    bytes.reverse();
    to_hex(&bytes)
}

/// The `blockchain.headers.*`, `blockchain.block.*` and `blockchain.scripthash.*`
/// methods; `None` for any other method.
pub fn dispatch(
    ctx: &QueryContext,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    Some(match method {
        "blockchain.headers.subscribe" => headers_subscribe(ctx, params),
        "blockchain.block.header" => block_header(ctx, params),
        "blockchain.block.headers" => block_headers(ctx, params),
        "blockchain.scripthash.get_history" => get_history(ctx, params),
        "blockchain.scripthash.get_balance" => get_balance(ctx, params),
        "blockchain.scripthash.listunspent" => listunspent(ctx, params),
        "blockchain.scripthash.get_mempool" => get_mempool(ctx, params),
        _ => return None,
    })
}

const SCRIPTHASH_SIG: Signature = Signature {
    names: &["scripthash"],
    required: 1,
    extra_ok: false,
};

fn hashx_param(method: &str, params: &Value) -> Result<HashX, RpcError> {
    let slots = bind(method, params, &SCRIPTHASH_SIG)?;
    Ok(script_hash(slots[0].unwrap_or(&Value::Null))?.hashx())
}

/// A script's confirmed history, from the cache when it was read at this tip.
fn confirmed_history(
    ctx: &QueryContext,
    hashx: &HashX,
) -> Result<Arc<Vec<HistoryEntry>>, RpcError> {
    let too_large = || RpcError::new(RpcError::HISTORY_TOO_LONG, "history too large");
    let Some((_, tip)) = ctx.snapshot.tip()? else {
        return Ok(Arc::new(Vec::new()));
    };
    let cache = &ctx.server.history_cache;
    if let Some(history) = cache.get(&(*hashx, tip)) {
        return Ok(history);
    }
    let history = Arc::new(
        ctx.snapshot
            .history(hashx, ctx.history_limit)?
            .map_err(|_| too_large())?,
    );
    cache.insert((*hashx, tip), Arc::clone(&history));
    Ok(history)
}

fn mempool_json(entries: &[MempoolEntry]) -> impl Iterator<Item = Value> + '_ {
    entries
        .iter()
        .map(|e| json!({"tx_hash": e.txid.to_string(), "height": e.height, "fee": e.fee}))
}

/// `blockchain.scripthash.get_history`: confirmed transactions in chain order, then the
/// mempool ones in status order.
pub fn get_history(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let hashx = hashx_param("blockchain.scripthash.get_history", params)?;
    let confirmed = confirmed_history(ctx, &hashx)?;
    let mempool = ctx.mempool.history(&hashx);
    Ok(confirmed
        .iter()
        .map(|entry| json!({"tx_hash": entry.txid.to_string(), "height": entry.height}))
        .chain(mempool_json(&mempool))
        .collect())
}

/// `blockchain.scripthash.get_mempool`: the mempool part of the history.
pub fn get_mempool(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let hashx = hashx_param("blockchain.scripthash.get_mempool", params)?;
    Ok(mempool_json(&ctx.mempool.history(&hashx)).collect())
}

/// `blockchain.scripthash.get_balance`: confirmed is the sum of confirmed UTXOs (even
/// those a mempool tx spends); unconfirmed is the mempool's net effect, maybe negative.
pub fn get_balance(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let hashx = hashx_param("blockchain.scripthash.get_balance", params)?;
    let (confirmed, _) = ctx.snapshot.balance(&hashx)?;
    Ok(json!({"confirmed": confirmed, "unconfirmed": ctx.mempool.balance_delta(&hashx)}))
}

/// `blockchain.scripthash.listunspent`: confirmed UTXOs in chain order, without those a
/// mempool tx spends, then the mempool's outputs to the script (height 0).
pub fn listunspent(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    let hashx = hashx_param("blockchain.scripthash.listunspent", params)?;
    let utxos = ctx.snapshot.utxos(&hashx)?;
    let confirmed = utxos
        .iter()
        .filter(|u| !ctx.mempool.is_spent(&OutPoint { txid: u.txid, vout: u.vout }))
        .map(|u| json!({"tx_hash": u.txid.to_string(), "tx_pos": u.vout, "height": u.height, "value": u.value}));
    let unconfirmed = ctx.mempool.unspent(&hashx).into_iter().map(
        |(txid, vout, value)| json!({"tx_hash": txid.to_string(), "tx_pos": vout, "height": 0, "value": value}),
    );
    Ok(confirmed.chain(unconfirmed).collect())
}

/// The status of a script and whether it includes mempool transactions (such statuses
/// are recomputed on every new block).
pub fn script_status(
    ctx: &QueryContext,
    hashx: &HashX,
) -> Result<(Option<String>, bool), RpcError> {
    let confirmed = confirmed_history(ctx, hashx)?;
    let mempool = ctx.mempool.history(hashx);
    let status = crate::status::status(
        confirmed.iter().map(|e| (&e.txid, e.height)),
        mempool.iter().map(|e| (&e.txid, e.height)),
    );
    Ok((status, !mempool.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_limit_matches_electrumx() {
        assert_eq!(history_limit(8_100_000), 81_817);
        assert_eq!(history_limit(350_000), 3_534);
    }
}
