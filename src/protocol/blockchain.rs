//! `blockchain.*` methods answered from an index snapshot: headers with checkpoint
//! proofs, and a script's history, balance and unspent outputs, named by its script
//! hash (protocols 1.4 to 1.6) or by its scriptPubKey (1.7, whose answers are wrapped
//! in an object).

use super::checkpoints::{self, ProofWork};
use super::context::{INLINE_HISTORY, QueryContext};
use super::params::{Natural, hex_bytes, history_range, non_negative_integer, script_hash};
use super::work::{Args, Effect, HandlerError, Work};
use super::{RpcError, with_commas};
use crate::hashes::{HashX, Height, ScriptHash, to_hex};
use crate::mempool::MempoolEntry;
use crate::merkle::Node;
use crate::store::HistoryEntry;
use crate::store::StoreError;
use bitcoin::OutPoint;
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

pub(crate) fn tip_height(ctx: &QueryContext) -> Result<Height, RpcError> {
    match ctx.snapshot.tip()? {
        Some((height, _)) => Ok(height),
        None => Err(RpcError::bad_request("the index is empty: still syncing")),
    }
}

fn out_of_range(height: &str) -> RpcError {
    RpcError::bad_request(format!("height {height} out of range"))
}

/// The header at a height a request names (any number up to `u64::MAX`).
fn requested_header(ctx: &QueryContext, height: u64) -> Result<[u8; 80], RpcError> {
    let height = Height::try_from(height).map_err(|_| out_of_range(&with_commas(height.into())))?;
    raw_header(ctx, height)
}

pub(crate) fn raw_header(ctx: &QueryContext, height: Height) -> Result<[u8; 80], RpcError> {
    (ctx.snapshot.header(height)?).ok_or_else(|| out_of_range(&with_commas(height.to_u64().into())))
}

/// What a header's proof against a checkpoint costs, on top of the method's price.
const CHECKPOINT_COST: f64 = 1.0;
/// Headers `blockchain.block.headers` returns for a cost of 1.
const HEADERS_PER_COST: f64 = 50.0;
/// Mempool transactions of a script's answer for a cost of 1...
const MEMPOOL_TXS_PER_COST: f64 = 50.0;
/// ...on top of this, for looking at the mempool at all.
const MEMPOOL_LOOKUP_COST: f64 = 0.25;
/// UTXOs of `get_balance` and `listunspent` for a cost of 1.
const UTXOS_PER_COST: f64 = 50.0;

/// `blockchain.headers.subscribe`: the tip as `{"hex", "height"}`.
pub fn headers_subscribe(
    ctx: &QueryContext,
    _: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let height = tip_height(ctx)?;
    let header = raw_header(ctx, height)?;
    work.effect(Effect::SubscribeHeaders);
    Ok(json!({"hex": to_hex(&header), "height": height}))
}

/// ElectrumX charges a checkpoint proof whenever `cp_height` is given and not 0, even
/// when it turns out invalid.
fn charge_checkpoint(cp_height: Option<&Value>, work: &mut Work) {
    if cp_height.is_some_and(|cp| cp != &Value::from(0)) {
        work.charge(CHECKPOINT_COST);
    }
}

/// `blockchain.block.header(height, cp_height=0)`.
pub fn block_header(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    charge_checkpoint(args.get(1), work);
    let height = non_negative_integer(args.required(0))?;
    let cp_height = args.get(1).map(non_negative_integer).transpose()?;
    let Some(height) = height.exact() else {
        return Err(out_of_range(&height.with_commas()).into());
    };
    let header = to_hex(&requested_header(ctx, height)?);
    let Some(cp_height) = cp_height.filter(|cp| cp.value != 0) else {
        return Ok(Value::String(header));
    };
    let mut result = json!({"header": header});
    add_header_proof(ctx, &mut result, &cp_height, height, work)?;
    Ok(result)
}

/// `blockchain.block.headers(start_height, count, cp_height=0)`.
pub fn block_headers(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    charge_checkpoint(args.get(2), work);
    let start = non_negative_integer(args.required(0))?.value;
    let count = non_negative_integer(args.required(1))?
        .value
        .min(MAX_CHUNK_SIZE);
    let cp_height = args.get(2).map(non_negative_integer).transpose()?;
    let chain_len = tip_height(ctx)?.chain_len();
    let available = chain_len.saturating_sub(start).min(count);
    work.charge(available as f64 / HEADERS_PER_COST);
    let mut headers = Vec::with_capacity(available as usize);
    for height in start..start + available {
        headers.push(to_hex(&requested_header(ctx, height)?));
    }
    let mut result = if ctx.protocol.is_at_least(&[1, 6]) {
        json!({"headers": headers, "count": available, "max": MAX_CHUNK_SIZE})
    } else {
        json!({"hex": headers.concat(), "count": available, "max": MAX_CHUNK_SIZE})
    };
    if let Some(cp_height) = cp_height.filter(|cp| available > 0 && cp.value > 0) {
        add_header_proof(ctx, &mut result, &cp_height, start + available - 1, work)?;
    }
    Ok(result)
}

/// Adds `branch` and `root` proving the header at `height` against the merkle root of
/// the block hashes up to `cp_height`. The usual proof reads and hashes at most two
/// segments of headers (see [`checkpoints`]), within the checkpoint's price; the first
/// proof after start-up, or after the chain grew by segments, hashes those too and pays
/// for them, on the blocking pool.
fn add_header_proof(
    ctx: &QueryContext,
    result: &mut Value,
    cp_height: &Natural,
    height: u64,
    work: &mut Work,
) -> Result<(), HandlerError> {
    /// Headers hashed for a cost of 1, beyond the two segments of a usual proof.
    const HEADERS_HASHED_PER_COST: f64 = 10_000.0;
    let tip = tip_height(ctx)?;
    let heights = match (
        Height::try_from(height),
        cp_height.exact().map(Height::try_from),
    ) {
        (Ok(height), Some(Ok(cp_height))) if height <= cp_height && cp_height <= tip => {
            Some((height, cp_height))
        }
        _ => None,
    };
    let Some((height, cp_height)) = heights else {
        return Err(RpcError::bad_request(format!(
            "require header height {} <= cp_height {} <= chain height {}",
            with_commas(height.into()),
            cp_height.with_commas(),
            with_commas(tip.to_u64().into())
        ))
        .into());
    };
    let proofs = &ctx.state.header_proofs;
    if ctx.inline && proofs.segments_missing(cp_height) > 0 {
        return Err(HandlerError::NeedsBlockingPool);
    }
    let mut proof_work = ProofWork::default();
    let proof = proofs.prove(ctx.snapshot, height, cp_height, &mut proof_work)?;
    let usual = 2 * checkpoints::SEGMENT_SIZE;
    work.charge(proof_work.headers_hashed.saturating_sub(usual) as f64 / HEADERS_HASHED_PER_COST);
    result["branch"] = proof
        .branch
        .iter()
        .map(|node| Value::String(reversed_hex(node)))
        .collect();
    result["root"] = Value::String(reversed_hex(&proof.root));
    Ok(())
}

fn reversed_hex(node: &Node) -> String {
    let mut bytes = *node;
    bytes.reverse();
    to_hex(&bytes)
}

fn hashx_param(args: &Args) -> Result<HashX, RpcError> {
    Ok(script_hash(args.required(0))?.hashx())
}

/// Protocol 1.7 names a script by its scriptPubKey (hex): the script hash of it.
fn spk_param(args: &Args) -> Result<ScriptHash, RpcError> {
    Ok(ScriptHash::from_script(&hex_bytes(args.required(0))?))
}

/// A confirmed history, and what reading it cost.
type PricedHistory = (Arc<Vec<HistoryEntry>>, f64);

/// A script's confirmed history, from the cache when it was read at this tip, and
/// what that cost. On a session's own thread a history longer than [`INLINE_HISTORY`]
/// is not read: the request needs the blocking pool, so that one long read never
/// stalls the other sessions of that thread.
pub fn confirmed_history(ctx: &QueryContext, hashx: &HashX) -> Result<PricedHistory, HandlerError> {
    let limit = if ctx.inline {
        ctx.history_limit.min(INLINE_HISTORY)
    } else {
        ctx.history_limit
    };
    match read_history(ctx, hashx, limit)? {
        Some(read) => Ok(read),
        None if limit < ctx.history_limit => Err(HandlerError::NeedsBlockingPool),
        None => Err(history_too_large().into()),
    }
}

/// [`confirmed_history`] up to the history limit, wherever it runs (the caller has
/// chosen where the read may take its time).
fn full_history(ctx: &QueryContext, hashx: &HashX) -> Result<PricedHistory, RpcError> {
    read_history(ctx, hashx, ctx.history_limit)?.ok_or_else(history_too_large)
}

fn history_too_large() -> RpcError {
    RpcError::new(RpcError::HISTORY_TOO_LONG, "history too large")
}

/// A script's confirmed history if it holds fewer than `limit` entries, and what it
/// cost (ElectrumX's `limited_history`: 0.1 for the lookup; a read from the index 0.1
/// more and 0.001 per entry).
fn read_history(
    ctx: &QueryContext,
    hashx: &HashX,
    limit: usize,
) -> Result<Option<PricedHistory>, RpcError> {
    const LOOKUP_COST: f64 = 0.1;
    const READ_COST: f64 = 0.1;
    const ENTRY_COST: f64 = 0.001;
    let Some((_, tip)) = ctx.snapshot.tip()? else {
        return Ok(Some((Arc::new(Vec::new()), LOOKUP_COST)));
    };
    let cache = &ctx.state.history_cache;
    if let Some(history) = cache.get(&(*hashx, tip)) {
        return Ok(Some((history, LOOKUP_COST)));
    }
    let Ok(history) = ctx.snapshot.history(hashx, limit)? else {
        return Ok(None);
    };
    let history = Arc::new(history);
    cache.insert((*hashx, tip), Arc::clone(&history));
    let cost = LOOKUP_COST + READ_COST + history.len() as f64 * ENTRY_COST;
    Ok(Some((history, cost)))
}

fn mempool_json(entries: &[MempoolEntry]) -> impl Iterator<Item = Value> + '_ {
    entries
        .iter()
        .map(|e| json!({"tx_hash": e.txid.to_string(), "height": e.height, "fee": e.fee}))
}

/// What looking at `count` mempool transactions of a script costs.
pub(crate) fn mempool_cost(count: usize) -> f64 {
    MEMPOOL_LOOKUP_COST + count as f64 / MEMPOOL_TXS_PER_COST
}

/// `blockchain.scripthash.get_history(scripthash, from_height=0, to_height=-1)`:
/// confirmed transactions in chain order, then the mempool ones in status order. The
/// heights are Fulcrum's extra ([`super::params::history_range`]): confirmed ones from
/// `from_height` up to but excluding `to_height`, and the mempool only without an end.
pub fn get_history(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let hashx = hashx_param(args)?;
    let (from, to) = history_range(args.get(1), args.get(2))?;
    history_in(ctx, &hashx, from, to, work)
}

/// A protocol 1.7 `blockchain.scriptpubkey.*` method: `answer` for the script, wrapped
/// in an object under `key` when there is one (get_balance's is not wrapped).
pub fn by_spk(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
    answer: fn(&QueryContext, &HashX, &mut Work) -> Result<Value, HandlerError>,
    key: Option<&str>,
) -> Result<Value, HandlerError> {
    let answer = answer(ctx, &spk_param(args)?.hashx(), work)?;
    Ok(match key {
        Some(key) => json!({ key: answer }),
        None => answer,
    })
}

/// get_history's answer for a whole script (1.7's scriptPubKey's).
pub fn history_of(
    ctx: &QueryContext,
    hashx: &HashX,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    history_in(ctx, hashx, Height::GENESIS, None, work)
}

/// A script's confirmed history from height `from` up to `to` (excluded), then, when
/// there is no `to`, its mempool transactions.
fn history_in(
    ctx: &QueryContext,
    hashx: &HashX,
    from: Height,
    to: Option<Height>,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let (confirmed, cost) = confirmed_history(ctx, hashx)?;
    work.charge(cost);
    let mempool = match to {
        None => ctx.mempool().history(hashx),
        Some(_) => Vec::new(),
    };
    if to.is_none() {
        work.charge(mempool_cost(mempool.len()));
    }
    Ok(confirmed
        .iter()
        .filter(|entry| entry.height >= from && to.is_none_or(|to| entry.height < to))
        .map(|entry| json!({"tx_hash": entry.txid.to_string(), "height": entry.height}))
        .chain(mempool_json(&mempool))
        .collect())
}

/// `blockchain.scripthash.get_mempool`: the mempool part of the history.
pub fn get_mempool(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    mempool_of(ctx, &hashx_param(args)?, work)
}

/// get_mempool's answer for a script.
pub fn mempool_of(
    ctx: &QueryContext,
    hashx: &HashX,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let mempool = ctx.mempool().history(hashx);
    work.charge(mempool_cost(mempool.len()));
    Ok(mempool_json(&mempool).collect())
}

/// `blockchain.scripthash.get_balance`: confirmed is the sum of confirmed UTXOs (even
/// those a mempool tx spends); unconfirmed is the mempool's net effect, maybe negative.
pub fn get_balance(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    balance_of(ctx, &hashx_param(args)?, work)
}

/// get_balance's answer for a script.
pub fn balance_of(
    ctx: &QueryContext,
    hashx: &HashX,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let at_most = if ctx.inline { INLINE_UTXOS } else { usize::MAX };
    let Some((confirmed, utxos)) = ctx.snapshot.balance_within(hashx, at_most)? else {
        return Err(HandlerError::NeedsBlockingPool);
    };
    work.charge(utxos as f64 / UTXOS_PER_COST);
    Ok(json!({"confirmed": confirmed, "unconfirmed": ctx.mempool().balance_delta(hashx)}))
}

/// The fewest bytes one `listunspent` entry takes in the answer
/// (`{"tx_hash":"<64 hex>","tx_pos":0,"height":0,"value":0},`).
const LEAST_UNSPENT_ENTRY_BYTES: usize = 111;

/// `blockchain.scripthash.listunspent`: confirmed UTXOs in chain order, without those a
/// mempool tx spends, then the mempool's outputs to the script (height 0). An answer
/// that could not fit in MAX_SEND is refused before it is read or built, with the error
/// the session would send for it.
pub fn listunspent(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    unspent_of(ctx, &hashx_param(args)?, work)
}

/// listunspent's answer for a script.
pub fn unspent_of(
    ctx: &QueryContext,
    hashx: &HashX,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let fits = ctx.max_send / LEAST_UNSPENT_ENTRY_BYTES;
    let at_most = if ctx.inline {
        fits.min(INLINE_UTXOS)
    } else {
        fits
    };
    let mempool = ctx.mempool();
    let unconfirmed = mempool.unspent(hashx);
    let utxos = match ctx.snapshot.utxos_within(hashx, at_most)? {
        Some(utxos) if utxos.len() + unconfirmed.len() <= fits => utxos,
        Some(_) => return Err(RpcError::response_too_large(ctx.max_send).into()),
        None if at_most < fits => return Err(HandlerError::NeedsBlockingPool),
        None => {
            work.charge(at_most as f64 / UTXOS_PER_COST);
            return Err(RpcError::response_too_large(ctx.max_send).into());
        }
    };
    work.charge((utxos.len() + unconfirmed.len()) as f64 / UTXOS_PER_COST);
    let confirmed = utxos
        .iter()
        .filter(|u| !mempool.is_spent(&OutPoint { txid: u.txid, vout: u.vout }))
        .map(|u| json!({"tx_hash": u.txid.to_string(), "tx_pos": u.vout, "height": u.height, "value": u.value}));
    let unconfirmed = unconfirmed.into_iter().map(
        |(txid, vout, value)| json!({"tx_hash": txid.to_string(), "tx_pos": vout, "height": 0, "value": value}),
    );
    Ok(confirmed.chain(unconfirmed).collect())
}

/// More unspent outputs than a session's own thread reads: the request moves to the
/// blocking pool.
const INLINE_UTXOS: usize = 2000;

/// `blockchain.scripthash.subscribe`: the script's status; the session then holds the
/// subscription.
pub fn subscribe(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    subscribe_to(ctx, script_hash(args.required(0))?, work)
}

/// `blockchain.scriptpubkey.subscribe` (protocol 1.7): the same status. As ElectrumX,
/// the notifications name the script by its script hash, not its scriptPubKey.
pub fn spk_subscribe(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    subscribe_to(ctx, spk_param(args)?, work)
}

fn subscribe_to(
    ctx: &QueryContext,
    script_hash: ScriptHash,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let hashx = script_hash.hashx();
    let (status, with_mempool, cost) = priced_script_status(ctx, &hashx)?;
    work.charge(cost);
    work.effect(Effect::SubscribeScript {
        hashx,
        script_hash,
        status: status.clone(),
        with_mempool,
    });
    Ok(status.map_or(Value::Null, Value::String))
}

/// `blockchain.scripthash.unsubscribe` (protocol 1.4.2): whether the session held the
/// subscription, which the session answers.
pub fn unsubscribe(_: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let hashx = hashx_param(args)?;
    work.effect(Effect::UnsubscribeScript { hashx });
    Ok(Value::Bool(false))
}

/// `blockchain.scriptpubkey.unsubscribe` (protocol 1.7): the same.
pub fn spk_unsubscribe(
    _: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let hashx = spk_param(args)?.hashx();
    work.effect(Effect::UnsubscribeScript { hashx });
    Ok(Value::Bool(false))
}

/// The status of a script and whether it includes mempool transactions (such statuses
/// are recomputed on every new block), for a notification: the history is read in
/// full wherever this runs.
pub fn script_status(
    ctx: &QueryContext,
    hashx: &HashX,
) -> Result<(Option<String>, bool), RpcError> {
    let (confirmed, _) = full_history(ctx, hashx)?;
    let (status, with_mempool, _) = status_of(ctx, hashx, &confirmed);
    Ok((status, with_mempool))
}

/// [`script_status`] for a request, and what it cost: the history's price, then
/// ElectrumX's status hashing, 0.1 and 0.00002 per character of the `txid:height:`
/// string hashed.
fn priced_script_status(
    ctx: &QueryContext,
    hashx: &HashX,
) -> Result<(Option<String>, bool, f64), HandlerError> {
    const HASHING_COST: f64 = 0.1;
    const CHARACTER_COST: f64 = 0.00002;
    let (confirmed, history_cost) = confirmed_history(ctx, hashx)?;
    let (status, with_mempool, characters) = status_of(ctx, hashx, &confirmed);
    let cost = history_cost + HASHING_COST + characters as f64 * CHARACTER_COST;
    Ok((status, with_mempool, cost))
}

/// The status of a script with this confirmed history, whether it includes mempool
/// transactions, and how many characters were hashed for it.
fn status_of(
    ctx: &QueryContext,
    hashx: &HashX,
    confirmed: &[HistoryEntry],
) -> (Option<String>, bool, usize) {
    let mempool = ctx.mempool().history(hashx);
    let characters: usize = confirmed
        .iter()
        .map(|e| crate::status::entry_len(i64::from(e.height.to_u32())))
        .chain(mempool.iter().map(|e| crate::status::entry_len(e.height)))
        .sum();
    let status = crate::status::status(
        confirmed.iter().map(|e| (&e.txid, e.height)),
        mempool.iter().map(|e| (&e.txid, e.height)),
    );
    (status, !mempool.is_empty(), characters)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::coins;
    use crate::hashes::ScriptHash;
    use crate::protocol::methods::{answer, answered, call};
    use crate::protocol::server::ServerInfo;
    use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock, paying_tx};
    use crate::protocol::version::ProtocolVersion;
    use crate::protocol::work::Outcome;

    #[test]
    fn utxo_reads_are_bounded_before_they_are_done() {
        let coin = coins::lookup("Bitcoin", "mainnet").unwrap();
        let script = ScriptHash::from_hex(&"ab".repeat(32)).unwrap();
        let many = INLINE_UTXOS + 1;
        let fixture = Fixture::new(
            Arc::new(ServerInfo::new(coin)),
            &[FixtureBlock::paying(1, many, script.hashx())],
        );
        let params = json!([script.to_hex()]);
        let roomy = 100 * many;
        // On a session's own thread, more than INLINE_UTXOS moves to the blocking pool...
        for method in [
            "blockchain.scripthash.get_balance",
            "blockchain.scripthash.listunspent",
        ] {
            let inline = fixture.query_where(true, roomy, |ctx| answer(ctx, method, &params));
            assert!(
                matches!(inline, Outcome::NeedsBlockingPool),
                "{method} inline"
            );
        }
        // ...where they are answered and charged by the outputs read.
        let Outcome::Answer(balance) = fixture.query_where(false, roomy, |ctx| {
            answer(ctx, "blockchain.scripthash.get_balance", &params)
        }) else {
            panic!("get_balance on the pool")
        };
        assert_eq!(
            balance.result.unwrap(),
            json!({"confirmed": 1000 * many as u64, "unconfirmed": 0})
        );
        assert!(balance.cost >= many as f64 / UTXOS_PER_COST);
        let Outcome::Answer(unspent) = fixture.query_where(false, roomy, |ctx| {
            answer(ctx, "blockchain.scripthash.listunspent", &params)
        }) else {
            panic!("listunspent on the pool")
        };
        assert_eq!(unspent.result.unwrap().as_array().unwrap().len(), many);
        // An answer that cannot fit MAX_SEND (99,100 bytes here: 892 entries at most) is
        // refused before the outputs are read, wherever it runs, as the session would
        // refuse it once built.
        for inline in [true, false] {
            let Outcome::Answer(refused) = fixture.query_where(inline, 1000, |ctx| {
                answer(ctx, "blockchain.scripthash.listunspent", &params)
            }) else {
                panic!("a listunspent that cannot fit needs no blocking pool")
            };
            let error = refused.result.unwrap_err();
            assert_eq!(error.code, RpcError::INVALID_REQUEST);
            assert_eq!(error.message, "response too large (over 99,100 bytes");
        }
    }

    #[test]
    fn history_limit_matches_electrumx() {
        assert_eq!(history_limit(8_100_000), 81_817);
        assert_eq!(history_limit(350_000), 3_534);
    }

    #[test]
    fn scriptpubkey_methods_wrap_the_script_hash_answers() {
        let spk: &[u8] = &[0x51, 7];
        let cb = paying_tx("cb", &[], &[(spk, 50)]);
        let coin = crate::coins::lookup("Bitcoin", "mainnet").unwrap();
        let mut fixture = Fixture::new(
            Arc::new(ServerInfo::new(coin)),
            &[FixtureBlock::of(1, vec![cb])],
        );
        let script_hash = ScriptHash::from_script(spk).to_hex();
        let by_hash = |fixture: &Fixture, method: &str| {
            fixture
                .query(|ctx| {
                    call(
                        ctx,
                        &format!("blockchain.scripthash.{method}"),
                        &json!([script_hash]),
                    )
                })
                .unwrap()
        };
        let old: Vec<Value> = [
            "get_balance",
            "get_history",
            "get_mempool",
            "listunspent",
            "subscribe",
        ]
        .iter()
        .map(|m| by_hash(&fixture, m))
        .collect();
        fixture.protocol = ProtocolVersion::new(&[1, 7]);
        let by_spk = |method: &str| {
            fixture
                .query(|ctx| {
                    call(
                        ctx,
                        &format!("blockchain.scriptpubkey.{method}"),
                        &json!(["5107"]),
                    )
                })
                .unwrap()
        };
        assert_eq!(by_spk("get_balance"), old[0]);
        assert_eq!(by_spk("get_history"), json!({"history": old[1]}));
        assert_eq!(by_spk("get_mempool"), json!({"history": old[2]}));
        assert_eq!(by_spk("listunspent"), json!({"utxos": old[3]}));
        assert_eq!(by_spk("subscribe"), old[4]);
        assert_eq!(old[3].as_array().map(Vec::len), Some(1));
        // The subscription is the script hash's: notifications name it so.
        let subscribed = fixture.query(|ctx| {
            answered(answer(
                ctx,
                "blockchain.scriptpubkey.subscribe",
                &json!(["5107"]),
            ))
        });
        assert!(matches!(
            subscribed.effect,
            Some(Effect::SubscribeScript { script_hash: h, .. }) if h.to_hex() == script_hash
        ));
        let error = fixture
            .query(|ctx| {
                call(
                    ctx,
                    "blockchain.scriptpubkey.get_balance",
                    &json!(["51 07"]),
                )
            })
            .unwrap_err();
        assert_eq!(error.message, "51 07 should be a hex string");
        let gone = fixture
            .query(|ctx| {
                call(
                    ctx,
                    "blockchain.scripthash.get_balance",
                    &json!([script_hash]),
                )
            })
            .unwrap_err();
        assert_eq!(gone.code, RpcError::METHOD_NOT_FOUND);
    }
}
