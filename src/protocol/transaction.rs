//! `blockchain.transaction.*`: getting, proving and broadcasting transactions.
//!
//! The daemon needs no transaction index: ferrumx's own index says which block holds a
//! confirmed transaction, and `get` names that block to the daemon. Merkle proofs come
//! from the index's txids. As ElectrumX, the txids of recently asked blocks are cached,
//! and so is one level of the merkle tree of blocks with many transactions; both are
//! keyed by block hash, so a block replaced by a reorg is never served from the cache.

use super::context::{BlockKey, QueryContext, daemon_error, missing_field};
use super::params::{
    Natural, bool_like, hex_bytes, list, non_negative_integer, py_str, py_str_repr, py_truthy,
    tx_hash,
};
use super::work::{Args, Effect, HandlerError, Work};
use super::{RpcError, with_commas};
use crate::daemon::DaemonError;
use crate::hashes::{Height, TxNum};
use crate::merkle::{self, MerkleLevel, Node};
use crate::store::header_hash;
use bitcoin::Txid;
use bitcoin::hashes::{Hash, sha256d};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Blocks with this many transactions keep a merkle level in the cache (ElectrumX's
/// threshold): below it a whole tree is cheap.
const MERKLE_LEVEL_MIN_TXS: usize = 200;

/// How `get_merkle` and `id_from_pos` are priced (ElectrumX's `tx_hashes_at_blockheight`
/// and `_merkle_branch`).
pub const MERKLE_PRICE: &str = "a block's txids: 0.1 from the cache, else 0.25 and 0.0001 \
    per txid read; a branch: 1/2500 per txid of the block, 10·√txids/2500 from a cached \
    merkle level";
/// `get_merkle` without a height: finding the transaction's block.
const TX_LOOKUP_COST: f64 = 0.1;
/// How `get_merkle` is priced.
pub const GET_MERKLE_PRICE: &str = "as id_from_pos with a merkle branch, and 0.1 to find \
    the block when no height is given";
/// Hex characters of a broadcast transaction for a cost of 1.
const HEX_PER_COST: f64 = 5000.0;

/// bitcoind's RPC_INVALID_ADDRESS_OR_KEY, its code for an unknown transaction.
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// What a daemon without `-txindex` says of a transaction in neither its mempool nor the
/// block it was told to look in...
const NOT_FOUND_WITHOUT_TXINDEX: &str = "No such mempool transaction. Use -txindex";
/// ...and what ElectrumX's daemon, which has `-txindex`, says instead.
const NOT_FOUND_WITH_TXINDEX: &str =
    "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.";

/// `blockchain.transaction.get(tx_hash, verbose=false)`: the raw transaction (hex), or
/// the daemon's verbose decoding, for a confirmed or mempool transaction.
pub fn get(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    let verbose = match args.get(1) {
        Some(value) => bool_like(value, "verbose")?,
        None => false,
    };
    let block = match ctx.snapshot.tx_position(&txid)? {
        Some((_, height)) => Some(block_at(ctx, height)?.ok_or_else(|| {
            log::error!("the index places tx {txid} at height {height}, which has no header");
            RpcError::internal()
        })?),
        None => None,
    };
    // ElectrumX sends verbose as 0 or 1.
    let mut args = vec![json!(txid.to_string()), json!(u8::from(verbose))];
    if let Some(((_, hash), _)) = &block {
        args.push(json!(hash.to_string()));
    }
    match work.ask_daemon("getrawtransaction", &args) {
        Ok(mut tx) => {
            // Only present when a block is named; ElectrumX's daemon never adds it.
            if block.is_some()
                && let Some(fields) = tx.as_object_mut()
            {
                fields.remove("in_active_chain");
            }
            Ok(tx)
        }
        Err(DaemonError::Rpc { code, message })
            if block.is_none()
                && code == RPC_INVALID_ADDRESS_OR_KEY
                && message.starts_with(NOT_FOUND_WITHOUT_TXINDEX) =>
        {
            Err(daemon_error(DaemonError::Rpc {
                code,
                message: NOT_FOUND_WITH_TXINDEX.into(),
            })
            .into())
        }
        Err(e) => Err(daemon_error(e).into()),
    }
}

/// `blockchain.transaction.get_merkle(tx_hash, height)`: the merkle branch proving a
/// confirmed transaction against its block's header. Without a height (Fulcrum's extra)
/// the index finds the block.
pub fn get_merkle(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let txid = tx_hash(args.required(0))?;
    let height = match args.get(1) {
        Some(height) => non_negative_integer(height)?,
        None => {
            work.charge(TX_LOOKUP_COST);
            Natural::from(super::extras::confirmed_height(ctx, &txid)?.to_u64())
        }
    };
    let (key, header) = requested_block(ctx, height.value)?.ok_or_else(|| {
        RpcError::bad_request(format!("height {} out of range", height.with_commas()))
    })?;
    let txids = block_txids(ctx, key, &header, work)?;
    let pos = txids.iter().position(|t| *t == txid).ok_or_else(|| {
        RpcError::bad_request(format!(
            "tx {txid} not in block at height {}",
            height.with_commas()
        ))
    })?;
    let height = height.value;
    let branch = merkle_branch(ctx, key, &txids, pos, work)?;
    Ok(json!({"block_height": height, "merkle": branch, "pos": pos}))
}

/// `blockchain.transaction.id_from_pos(height, tx_pos, merkle=false)`: the txid at a
/// position in a block, with its merkle branch if asked.
pub fn id_from_pos(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    // ElectrumX's order of checks.
    let tx_pos = non_negative_integer(args.required(1))?;
    let height = non_negative_integer(args.required(0))?;
    let with_merkle = match args.get(2) {
        Some(value) => bool_like(value, "merkle")?,
        None => false,
    };
    let Some((key, header)) = requested_block(ctx, height.value)? else {
        return Err(not_on_disk(ctx, &height)?.into());
    };
    let txids = block_txids(ctx, key, &header, work)?;
    let pos = usize::try_from(tx_pos.value)
        .ok()
        .filter(|pos| *pos < txids.len())
        .ok_or_else(|| {
            RpcError::bad_request(format!(
                "no tx at position {} in block at height {}",
                tx_pos.with_commas(),
                height.with_commas()
            ))
        })?;
    let txid = txids[pos].to_string();
    if with_merkle {
        let branch = merkle_branch(ctx, key, &txids, pos, work)?;
        Ok(json!({"tx_hash": txid, "merkle": branch}))
    } else {
        Ok(Value::String(txid))
    }
}

/// What ElectrumX answers for a block above its tip: its database's error, printed.
fn not_on_disk(ctx: &QueryContext, height: &Natural) -> Result<RpcError, RpcError> {
    let db_height = ctx
        .snapshot
        .tip()?
        .map_or(-1, |(tip, _)| i128::from(tip.to_u32()));
    let detail = format!(
        "block {} not on disk (>{})",
        height.with_commas(),
        with_commas(db_height)
    );
    Ok(RpcError::bad_request(format!(
        "db error: DBError({})",
        py_str_repr(&detail)
    )))
}

/// The block at a height a request names (any non-negative number); `None` above the tip.
fn requested_block(
    ctx: &QueryContext,
    height: u64,
) -> Result<Option<(BlockKey, [u8; 80])>, RpcError> {
    match Height::try_from(height) {
        Ok(height) => block_at(ctx, height),
        Err(_) => Ok(None),
    }
}

/// The block at `height` (its cache key and header); `None` above the tip.
fn block_at(ctx: &QueryContext, height: Height) -> Result<Option<(BlockKey, [u8; 80])>, RpcError> {
    Ok(ctx
        .snapshot
        .header(height)?
        .map(|header| ((height, header_hash(&header)), header)))
}

/// The txids of a block in block order, from the cache or the index.
fn block_txids(
    ctx: &QueryContext,
    key: BlockKey,
    header: &[u8; 80],
    work: &mut Work,
) -> Result<Arc<Vec<Txid>>, RpcError> {
    if let Some(txids) = ctx.state.txids_cache.get(&key) {
        work.charge(0.1);
        return Ok(txids);
    }
    let (height, _) = key;
    let count_after = |height: Height| {
        ctx.snapshot.tx_count_after(height)?.ok_or_else(|| {
            log::error!("the index has a header but no tx count at height {height}");
            RpcError::internal()
        })
    };
    let first = match height.prev() {
        None => 0,
        Some(prev) => count_after(prev)?,
    };
    let mut txids = (first..count_after(height)?)
        .map(|tx_num| ctx.snapshot.txid(TxNum(tx_num)))
        .collect::<Result<Vec<Txid>, _>>()?;
    if txids.is_empty() && height == Height::GENESIS {
        // The genesis transaction is not indexed; it is the block's only one, so its
        // txid is the header's merkle root.
        let mut root = [0u8; 32];
        root.copy_from_slice(&header[36..68]);
        txids.push(Txid::from_byte_array(root));
    }
    work.charge(0.25 + txids.len() as f64 * 0.0001);
    let txids = Arc::new(txids);
    ctx.state.txids_cache.insert(key, Arc::clone(&txids));
    Ok(txids)
}

/// The merkle branch of `txids[pos]`, as display-order hex.
fn merkle_branch(
    ctx: &QueryContext,
    key: BlockKey,
    txids: &[Txid],
    pos: usize,
    work: &mut Work,
) -> Result<Vec<String>, RpcError> {
    const TXIDS_PER_COST: f64 = 2500.0;
    let leaves: Vec<Node> = txids.iter().map(|txid| txid.to_byte_array()).collect();
    let count = leaves.len() as f64;
    let branch = if leaves.len() >= MERKLE_LEVEL_MIN_TXS {
        let level = match ctx.state.merkle_cache.get(&key) {
            Some(level) => {
                work.charge(10.0 * count.sqrt() / TXIDS_PER_COST);
                level
            }
            None => {
                work.charge(count / TXIDS_PER_COST);
                let level = Arc::new(MerkleLevel::new(&leaves));
                ctx.state.merkle_cache.insert(key, Arc::clone(&level));
                level
            }
        };
        level.branch(&leaves, pos)
    } else {
        work.charge(count / TXIDS_PER_COST);
        merkle::branch_and_root(&leaves, pos).map(|(branch, _)| branch)
    };
    let branch = branch.ok_or_else(|| {
        log::error!(
            "no merkle branch for position {pos} of {} txs",
            leaves.len()
        );
        RpcError::internal()
    })?;
    // sha256d hashes display byte-reversed, as Electrum wants them.
    Ok(branch
        .iter()
        .map(|node| sha256d::Hash::from_byte_array(*node).to_string())
        .collect())
}

/// `blockchain.transaction.broadcast(raw_tx)`: hands the transaction to the daemon;
/// returns its txid.
pub fn broadcast(ctx: &QueryContext, args: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    let raw_tx = args.required(0);
    let raw_text = raw_tx.as_str().unwrap_or_default();
    work.charge(raw_text.len() as f64 / HEX_PER_COST);
    hex_bytes(raw_tx)?;
    match work.ask_daemon("sendrawtransaction", std::slice::from_ref(raw_tx)) {
        Ok(txid) => {
            ctx.state.txs_sent.fetch_add(1, Ordering::Relaxed);
            work.effect(Effect::RefreshMempool);
            log::info!("sent tx: {}", py_str(&txid));
            Ok(txid)
        }
        Err(DaemonError::Rpc { message, .. }) => {
            log::info!("error sending transaction: {message}");
            Err(RpcError::bad_request(format!(
                "the transaction was rejected by network rules.\n\n{message}\n[{raw_text}]"
            ))
            .into())
        }
        Err(e) => Err(daemon_error(e).into()),
    }
}

/// `blockchain.transaction.broadcast_package(raw_txs, verbose=false)` (protocol 1.6):
/// `submitpackage`; the daemon's answer if `verbose`, else whether it succeeded and the
/// errors of the transactions that failed.
pub fn broadcast_package(
    ctx: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    if let Some(raw_txs) = args.required(0).as_array() {
        let hex: usize = raw_txs.iter().filter_map(Value::as_str).map(str::len).sum();
        work.charge(hex as f64 / HEX_PER_COST);
    }
    let raw_txs = list(args.required(0))?;
    for raw_tx in raw_txs {
        hex_bytes(raw_tx)?;
    }
    // ElectrumX tests `if verbose:`, so any true-ish value counts.
    let verbose = args.get(1).is_some_and(py_truthy);
    match work.ask_daemon("submitpackage", &[Value::Array(raw_txs.clone())]) {
        Ok(result) => {
            ctx.state
                .txs_sent
                .fetch_add(raw_txs.len() as u64, Ordering::Relaxed);
            work.effect(Effect::RefreshMempool);
            log::info!("broadcasted package: {} txs", raw_txs.len());
            if verbose {
                Ok(result)
            } else {
                Ok(package_summary(&result)?)
            }
        }
        Err(DaemonError::Rpc { message, .. }) => {
            log::info!("error submitting package: {message}");
            Err(RpcError::bad_request(format!(
                "the tx package was rejected by network rules.\n\n{message}."
            ))
            .into())
        }
        Err(e) => Err(daemon_error(e).into()),
    }
}

/// `blockchain.transaction.testmempoolaccept(raw_txs)` (protocol 1.7): whether the
/// daemon's mempool would take the transactions, without broadcasting them; per
/// transaction its txid, wtxid, `allowed` and the daemon's reason for refusing it.
pub fn testmempoolaccept(
    _: &QueryContext,
    args: &Args,
    work: &mut Work,
) -> Result<Value, HandlerError> {
    let raw_txs = list(args.required(0))?;
    let bytes = raw_txs
        .iter()
        .map(hex_bytes)
        .collect::<Result<Vec<_>, _>>()?;
    let hex: usize = raw_txs.iter().filter_map(Value::as_str).map(str::len).sum();
    work.charge(0.25 + hex as f64 / HEX_PER_COST);
    let result = work
        .ask_daemon("testmempoolaccept", &[Value::Array(raw_txs.clone())])
        .map_err(daemon_error)?;
    let items = result
        .as_array()
        .ok_or_else(|| missing_field("testmempoolaccept", "result list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| acceptance(item, bytes.get(i)).map_err(HandlerError::from))
        .collect()
}

/// One transaction's `testmempoolaccept` answer as ElectrumX reshapes it. Daemons before
/// Bitcoin Core 22 (Litecoin Core 0.21 among them) give no `wtxid`, and ElectrumX then
/// fails with an internal error; ferrumx hashes the transaction the client sent instead.
fn acceptance(item: &Value, raw_tx: Option<&Vec<u8>>) -> Result<Value, RpcError> {
    let field = |name: &str| {
        item.get(name)
            .cloned()
            .ok_or_else(|| missing_field("testmempoolaccept", name))
    };
    let wtxid = match (item.get("wtxid"), raw_tx) {
        (Some(wtxid), _) => wtxid.clone(),
        (None, Some(raw_tx)) => {
            json!(bitcoin::Wtxid::from_raw_hash(sha256d::Hash::hash(raw_tx)).to_string())
        }
        (None, None) => return Err(missing_field("testmempoolaccept", "wtxid")),
    };
    let mut out = json!({"txid": field("txid")?, "wtxid": wtxid});
    if let Some(allowed) = item.get("allowed").filter(|a| a.is_boolean()) {
        out["allowed"] = allowed.clone();
    }
    let reason = ["package-error", "reject-details", "reject-reason"]
        .iter()
        .filter_map(|name| item.get(*name))
        .find(|reason| py_truthy(reason));
    if let Some(reason) = reason {
        out["reason"] = reason.clone();
    }
    Ok(out)
}

/// The non-verbose `broadcast_package` answer built from `submitpackage`'s.
fn package_summary(result: &Value) -> Result<Value, RpcError> {
    let message = result
        .get("package_msg")
        .ok_or_else(|| missing_field("submitpackage", "package_msg"))?;
    let mut summary = json!({"success": message == "success"});
    let mut errors = Vec::new();
    if let Some(tx_results) = result.get("tx-results") {
        let tx_results = tx_results
            .as_object()
            .ok_or_else(|| missing_field("submitpackage", "tx-results"))?;
        for tx in tx_results.values() {
            if !tx.is_object() {
                return Err(missing_field("submitpackage", "tx-results"));
            }
            if let Some(error) = tx.get("error").filter(|e| py_truthy(e)) {
                let txid = tx.get("txid").cloned().unwrap_or(Value::Null);
                errors.push(json!({"txid": txid, "error": error}));
            }
        }
    }
    if !errors.is_empty() {
        summary["errors"] = Value::Array(errors);
    }
    Ok(summary)
}

/// An index built from lists of txids, a daemon that is never called, and the
/// [`QueryContext`] over them, for the tests of the protocol methods.
#[cfg(test)]
pub(crate) mod test_fixture {
    use super::super::context::{QueryContext, QueryState};
    use super::super::server::ServerInfo;
    use super::super::version::ProtocolVersion;
    use crate::chain::{ParsedBlock, ParsedTx, TxOutput};
    use crate::daemon::{Daemon, DaemonPool, DaemonUrl};
    use crate::hashes::HashX;
    use crate::index::Indexer;
    use crate::mempool::Mempool;
    use crate::store::{Store, header_hash};
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, Network, Txid};
    use std::sync::{Arc, RwLock};
    use std::time::Duration;

    pub struct Fixture {
        _dir: tempfile::TempDir,
        pub store: Arc<Store>,
        pub server: Arc<ServerInfo>,
        pub state: Arc<QueryState>,
        pub daemon: DaemonPool,
        pub protocol: ProtocolVersion,
        pub mempool: RwLock<Mempool>,
        pub client_ip: Option<std::net::IpAddr>,
    }

    /// One block: its txids and the merkle root its header carries (internal order).
    pub struct FixtureBlock {
        pub txids: Vec<Txid>,
        pub merkle_root: [u8; 32],
        /// Every transaction pays one output to this script.
        pub pays_to: Option<HashX>,
        /// Whole transactions (inputs and outputs), when the test needs them; else
        /// the txids stand for transactions without inputs.
        pub txs: Vec<ParsedTx>,
    }

    impl FixtureBlock {
        /// A block of a real chain from `tests/fixtures/blocks` (`getblock` JSON).
        pub fn from_json(text: &str) -> FixtureBlock {
            let block: serde_json::Value = serde_json::from_str(text).unwrap();
            let txids = block["tx"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().parse().unwrap())
                .collect();
            let root: bitcoin::TxMerkleNode =
                block["merkleroot"].as_str().unwrap().parse().unwrap();
            FixtureBlock {
                txids,
                merkle_root: root.to_byte_array(),
                pays_to: None,
                txs: Vec::new(),
            }
        }

        /// `count` made-up transactions; `tag` makes blocks differ.
        pub fn synthetic(tag: u8, count: usize) -> FixtureBlock {
            let txids = (0..count)
                .map(|i| {
                    let seed = [tag, (i >> 8) as u8, i as u8];
                    Txid::from_raw_hash(bitcoin::hashes::sha256d::Hash::hash(&seed))
                })
                .collect();
            FixtureBlock {
                txids,
                merkle_root: [tag; 32],
                pays_to: None,
                txs: Vec::new(),
            }
        }

        /// [`FixtureBlock::synthetic`] whose every transaction pays to `hashx`.
        pub fn paying(tag: u8, count: usize, hashx: HashX) -> FixtureBlock {
            FixtureBlock {
                pays_to: Some(hashx),
                ..FixtureBlock::synthetic(tag, count)
            }
        }

        /// A block of whole transactions (the first one its coinbase).
        pub fn of(tag: u8, txs: Vec<ParsedTx>) -> FixtureBlock {
            FixtureBlock {
                txids: txs.iter().map(|tx| tx.txid).collect(),
                merkle_root: [tag; 32],
                pays_to: None,
                txs,
            }
        }
    }

    /// A transaction named `tag` spending `inputs` and paying `outputs` (script,
    /// value); a coinbase when it spends nothing.
    pub fn paying_tx(tag: &str, inputs: &[(Txid, u32)], outputs: &[(&[u8], u64)]) -> ParsedTx {
        ParsedTx {
            txid: Txid::from_raw_hash(bitcoin::hashes::sha256d::Hash::hash(tag.as_bytes())),
            is_coinbase: inputs.is_empty(),
            inputs: inputs
                .iter()
                .map(|(txid, vout)| bitcoin::OutPoint {
                    txid: *txid,
                    vout: *vout,
                })
                .collect(),
            outputs: outputs
                .iter()
                .map(|(script, value)| crate::chain::TxOutput {
                    hashx: Some(crate::hashes::HashX::from_script(script)),
                    value: *value,
                })
                .collect(),
            vsize: 100,
        }
    }

    impl Fixture {
        /// Bitcoin's genesis block, then `blocks` at heights 1, 2, ...
        pub fn new(server: Arc<ServerInfo>, blocks: &[FixtureBlock]) -> Fixture {
            Fixture::with_state(server, Arc::new(QueryState::default()), blocks)
        }

        /// A fixture whose queries share `state` (its caches) with others.
        pub fn with_state(
            server: Arc<ServerInfo>,
            state: Arc<QueryState>,
            blocks: &[FixtureBlock],
        ) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let genesis = bitcoin::consensus::serialize(
                &bitcoin::constants::genesis_block(Network::Bitcoin).header,
            );
            let genesis: [u8; 80] = genesis.try_into().unwrap();
            let genesis_hash = header_hash(&genesis);
            let store = Arc::new(
                Store::open(dir.path(), server.coin.name, server.coin.net, &genesis_hash).unwrap(),
            );
            let mut indexer = Indexer::new(Arc::clone(&store), 10).unwrap();
            indexer.apply_genesis(genesis, &genesis_hash).unwrap();
            let mut prev: BlockHash = genesis_hash;
            for block in blocks {
                let mut header = [0u8; 80];
                header[0] = 1;
                header[4..36].copy_from_slice(prev.as_byte_array());
                header[36..68].copy_from_slice(&block.merkle_root);
                let txs = if block.txs.is_empty() {
                    block
                        .txids
                        .iter()
                        .enumerate()
                        .map(|(i, txid)| ParsedTx {
                            txid: *txid,
                            is_coinbase: i == 0,
                            inputs: Vec::new(),
                            outputs: block
                                .pays_to
                                .map(|hashx| TxOutput {
                                    hashx: Some(hashx),
                                    value: 1000,
                                })
                                .into_iter()
                                .collect(),
                            vsize: 100,
                        })
                        .collect()
                } else {
                    block.txs.clone()
                };
                let parsed = ParsedBlock {
                    header,
                    hash: header_hash(&header),
                    prev_hash: prev,
                    txs,
                };
                indexer.apply_block(&parsed, false).unwrap();
                prev = parsed.hash;
            }
            indexer.flush().unwrap();
            let url = DaemonUrl::parse("http://user:pass@127.0.0.1:1/", 1, None).unwrap();
            let daemon = DaemonPool::new(Daemon::new(vec![url], Duration::from_secs(1)).unwrap());
            Fixture {
                _dir: dir,
                store,
                server,
                state,
                daemon,
                protocol: ProtocolVersion::new(&[1, 6]),
                mempool: RwLock::default(),
                client_ip: None,
            }
        }

        /// Runs `f` on a fresh snapshot.
        pub fn query<R>(&self, f: impl FnOnce(&QueryContext) -> R) -> R {
            self.query_where(false, 1000, f)
        }

        /// Runs `f` on a fresh snapshot, on a session's own thread or not (`inline`),
        /// refusing histories of `history_limit` entries.
        pub fn query_where<R>(
            &self,
            inline: bool,
            history_limit: usize,
            f: impl FnOnce(&QueryContext) -> R,
        ) -> R {
            let snapshot = self.store.snapshot().unwrap();
            let ctx = QueryContext {
                snapshot: &snapshot,
                protocol: &self.protocol,
                history_limit,
                max_send: history_limit * 99 + 100,
                server: &self.server,
                state: &self.state,
                daemon: &self.daemon,
                mempool_lock: &self.mempool,
                client_ip: self.client_ip,
                inline,
            };
            f(&ctx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_fixture::{Fixture, FixtureBlock};
    use super::*;
    use crate::cache::CacheStats;
    use crate::coins;
    use crate::protocol::context::QueryState;
    use crate::protocol::methods::{call, call_with};
    use crate::protocol::server::ServerInfo;
    use std::cell::RefCell;

    const BTC_951658: &str =
        include_str!("../../tests/fixtures/blocks/bitcoin_mainnet_951658.json");
    const LTC_2265985: &str =
        include_str!("../../tests/fixtures/blocks/litecoin_mainnet_2265985.json");
    const BTC_GENESIS_TXID: &str =
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";

    fn server() -> Arc<ServerInfo> {
        Arc::new(ServerInfo::new(
            coins::lookup("Bitcoin", "mainnet").unwrap(),
        ))
    }

    /// Genesis, the 374-tx Bitcoin block at height 1 and the 58-tx Litecoin one at 2.
    fn real_blocks() -> (Fixture, Vec<FixtureBlock>) {
        let blocks = vec![
            FixtureBlock::from_json(BTC_951658),
            FixtureBlock::from_json(LTC_2265985),
        ];
        let again = vec![
            FixtureBlock::from_json(BTC_951658),
            FixtureBlock::from_json(LTC_2265985),
        ];
        (Fixture::new(server(), &blocks), again)
    }

    fn node_of(hex: &Value) -> Node {
        let hash: sha256d::Hash = hex.as_str().unwrap().parse().unwrap();
        hash.to_byte_array()
    }

    /// Checks a `merkle` answer against the block's merkle root.
    fn assert_proves(branch: &Value, txid: &Txid, pos: usize, root: &[u8; 32]) {
        let branch: Vec<Node> = branch.as_array().unwrap().iter().map(node_of).collect();
        assert_eq!(
            &merkle::root_from_branch(&txid.to_byte_array(), &branch, pos),
            root,
            "branch of position {pos}"
        );
    }

    fn no_daemon(method: &str, _: &[Value]) -> Result<Value, DaemonError> {
        panic!("unexpected daemon call {method}")
    }

    #[test]
    fn get_merkle_proves_every_tx_of_real_blocks() {
        let (fixture, blocks) = real_blocks();
        fixture.query(|ctx| {
            for (i, block) in blocks.iter().enumerate() {
                let height = i + 1;
                for (pos, txid) in block.txids.iter().enumerate() {
                    let answer = call(
                        ctx,
                        "blockchain.transaction.get_merkle",
                        &json!([txid.to_string(), height]),
                    )
                    .unwrap();
                    assert_eq!(answer["block_height"], json!(height));
                    assert_eq!(answer["pos"], json!(pos));
                    assert_proves(&answer["merkle"], txid, pos, &block.merkle_root);
                }
            }
        });
        // Block 1 has 374 txs: a merkle level was cached, and reused after the first.
        let merkle = fixture.state.merkle_cache.stats();
        assert_eq!((merkle.lookups, merkle.hits, merkle.entries), (374, 373, 1));
        let txids = fixture.state.txids_cache.stats();
        assert_eq!(
            txids,
            CacheStats {
                lookups: 374 + 58,
                hits: 374 + 58 - 2,
                entries: 2
            }
        );
    }

    #[test]
    fn id_from_pos_returns_txids_and_proofs() {
        let (fixture, blocks) = real_blocks();
        fixture.query(|ctx| {
            let block = &blocks[0];
            for pos in [0, 1, 200, 255, 256, 373] {
                let txid = block.txids[pos];
                let plain =
                    call(ctx, "blockchain.transaction.id_from_pos", &json!([1, pos])).unwrap();
                assert_eq!(plain, json!(txid.to_string()));
                let proved = call(
                    ctx,
                    "blockchain.transaction.id_from_pos",
                    &json!({"height": 1, "tx_pos": pos, "merkle": true}),
                )
                .unwrap();
                assert_eq!(proved["tx_hash"], json!(txid.to_string()));
                assert_proves(&proved["merkle"], &txid, pos, &block.merkle_root);
            }
            // Python's int() and 0/1 booleans, as ElectrumX accepts them.
            assert_eq!(
                call(
                    ctx,
                    "blockchain.transaction.id_from_pos",
                    &json!(["2", "57", 0])
                )
                .unwrap(),
                json!(blocks[1].txids[57].to_string())
            );
        });
    }

    #[test]
    fn the_genesis_transaction_is_served_from_its_header() {
        let (fixture, _) = real_blocks();
        fixture.query(|ctx| {
            assert_eq!(
                call(ctx, "blockchain.transaction.id_from_pos", &json!([0, 0])).unwrap(),
                json!(BTC_GENESIS_TXID)
            );
            let answer = call(
                ctx,
                "blockchain.transaction.get_merkle",
                &json!([BTC_GENESIS_TXID, 0]),
            )
            .unwrap();
            assert_eq!(answer, json!({"block_height": 0, "merkle": [], "pos": 0}));
            assert_eq!(
                call(ctx, "blockchain.transaction.id_from_pos", &json!([0, 1]))
                    .unwrap_err()
                    .message,
                "no tx at position 1 in block at height 0"
            );
        });
    }

    #[test]
    fn proof_errors_use_electrumx_messages() {
        let big = FixtureBlock::synthetic(7, 1500);
        let fixture = Fixture::new(server(), &[big]);
        fixture.query(|ctx| {
            let err = |method: &str, params| {
                let e = call(ctx, method, &params).unwrap_err();
                (e.code, e.message)
            };
            let other = "00".repeat(32);
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!([other, 1])),
                (1, format!("tx {other} not in block at height 1"))
            );
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!([other, 1234567])),
                (1, "height 1,234,567 out of range".into())
            );
            assert_eq!(
                err(
                    "blockchain.transaction.get_merkle",
                    json!([other, 1u64 << 40])
                ),
                (1, "height 1,099,511,627,776 out of range".into())
            );
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!(["xyz", 1])),
                (1, "xyz should be a transaction hash".into())
            );
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!([other, -1])),
                (1, "-1 should be a non-negative integer".into())
            );
            // Without a height (Fulcrum's extra) the tx must be confirmed.
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!([other])),
                (
                    1,
                    "No confirmed transaction matching the requested hash was found".into()
                )
            );
            assert_eq!(
                err("blockchain.transaction.get_merkle", json!([])).0,
                RpcError::INVALID_ARGS
            );
            assert_eq!(
                err("blockchain.transaction.id_from_pos", json!([1, 1500])),
                (1, "no tx at position 1,500 in block at height 1".into())
            );
            assert_eq!(
                err("blockchain.transaction.id_from_pos", json!([1, 1500, true])),
                (1, "no tx at position 1,500 in block at height 1".into())
            );
            assert_eq!(
                err("blockchain.transaction.id_from_pos", json!([5000, 0])),
                (
                    1,
                    "db error: DBError('block 5,000 not on disk (>1)')".into()
                )
            );
            assert_eq!(
                err("blockchain.transaction.id_from_pos", json!([1, 0, "yes"])),
                (1, "\"merkle\" must be a boolean".into())
            );
            // tx_pos is checked before height, as ElectrumX does.
            assert_eq!(
                err("blockchain.transaction.id_from_pos", json!(["h", "p"])),
                (1, "p should be a non-negative integer".into())
            );
        });
    }

    #[test]
    fn merkle_level_branches_equal_whole_tree_branches() {
        for count in [1usize, 2, 3, 7, 16, 17, 199, 200, 255, 256, 257, 1000, 1025] {
            let leaves: Vec<Node> = FixtureBlock::synthetic(1, count)
                .txids
                .iter()
                .map(|t| t.to_byte_array())
                .collect();
            let level = MerkleLevel::new(&leaves);
            for index in 0..count {
                let (expected, _) = merkle::branch_and_root(&leaves, index).unwrap();
                assert_eq!(
                    level.branch(&leaves, index),
                    Some(expected),
                    "{index} of {count}"
                );
            }
            assert_eq!(level.branch(&leaves, count), None);
        }
    }

    #[test]
    fn caches_are_keyed_by_block_so_a_reorg_is_never_served_stale() {
        let shared = Arc::new(QueryState::default());
        let before = Fixture::with_state(
            server(),
            Arc::clone(&shared),
            &[FixtureBlock::synthetic(1, 300)],
        );
        let after_reorg = Fixture::with_state(
            server(),
            Arc::clone(&shared),
            &[FixtureBlock::synthetic(2, 300)],
        );
        let ask = |fixture: &Fixture| {
            fixture.query(|ctx| {
                (
                    call(ctx, "blockchain.transaction.id_from_pos", &json!([1, 5])).unwrap(),
                    call(
                        ctx,
                        "blockchain.transaction.id_from_pos",
                        &json!([1, 5, true]),
                    )
                    .unwrap(),
                )
            })
        };
        let (old_txid, old_proof) = ask(&before);
        let (new_txid, new_proof) = ask(&after_reorg);
        assert_eq!(
            old_txid,
            json!(FixtureBlock::synthetic(1, 300).txids[5].to_string())
        );
        assert_eq!(
            new_txid,
            json!(FixtureBlock::synthetic(2, 300).txids[5].to_string())
        );
        assert_ne!(old_proof["merkle"], new_proof["merkle"]);
        assert_eq!(shared.txids_cache.stats().entries, 2);
        assert_eq!(shared.merkle_cache.stats().entries, 2);
    }

    #[test]
    fn get_names_the_block_of_confirmed_txs_and_passes_verbose_through() {
        let (fixture, blocks) = real_blocks();
        let calls = RefCell::new(Vec::new());
        let mut daemon = |method: &str, args: &[Value]| {
            calls.borrow_mut().push((method.to_string(), args.to_vec()));
            Ok(if args[1] == json!(1) {
                json!({"txid": args[0], "in_active_chain": true, "confirmations": 3})
            } else {
                json!("0100")
            })
        };
        let txid = blocks[1].txids[3].to_string();
        let block_hash = fixture.query(|ctx| {
            let (_, header) = block_at(ctx, Height::new(2)).unwrap().unwrap();
            header_hash(&header).to_string()
        });
        fixture.query(|ctx| {
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.get",
                    &json!([txid]),
                    &mut daemon
                )
                .unwrap(),
                json!("0100")
            );
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.get",
                    &json!([txid, true]),
                    &mut daemon
                )
                .unwrap(),
                json!({"txid": txid, "confirmations": 3})
            );
            let mempool_txid = "ab".repeat(32);
            call_with(
                ctx,
                "blockchain.transaction.get",
                &json!({"tx_hash": mempool_txid, "verbose": 1}),
                &mut daemon,
            )
            .unwrap();
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.get",
                    &json!([txid, "yes"]),
                    &mut daemon
                )
                .unwrap_err()
                .message,
                "\"verbose\" must be a boolean"
            );
            assert_eq!(
                call_with(ctx, "blockchain.transaction.get", &json!([1]), &mut daemon)
                    .unwrap_err()
                    .message,
                "1 should be a transaction hash"
            );
            assert_eq!(
                calls.borrow().as_slice(),
                [
                    (
                        "getrawtransaction".to_string(),
                        vec![json!(txid), json!(0), json!(block_hash)]
                    ),
                    (
                        "getrawtransaction".to_string(),
                        vec![json!(txid), json!(1), json!(block_hash)]
                    ),
                    (
                        "getrawtransaction".to_string(),
                        vec![json!(mempool_txid), json!(1)]
                    ),
                ]
            );
        });
    }

    #[test]
    fn get_reports_daemon_errors_as_electrumx_does() {
        let (fixture, blocks) = real_blocks();
        fixture.query(|ctx| {
            let mut unknown = |_: &str, _: &[Value]| {
                Err(DaemonError::Rpc {
                    code: -5,
                    message: "No such mempool transaction. Use -txindex or provide a block hash \
                              to enable blockchain transaction queries. Use gettransaction for \
                              wallet transactions."
                        .into(),
                })
            };
            let err = call_with(
                ctx,
                "blockchain.transaction.get",
                &json!(["cd".repeat(32)]),
                &mut unknown,
            )
            .unwrap_err();
            assert_eq!(err.code, 2);
            assert_eq!(
                err.message,
                "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or \
                 blockchain transaction. Use gettransaction for wallet transactions.'})"
            );
            let mut odd = |_: &str, _: &[Value]| {
                Err(DaemonError::Rpc {
                    code: -8,
                    message: "it's \"odd\"".into(),
                })
            };
            let err = call_with(
                ctx,
                "blockchain.transaction.get",
                &json!([blocks[0].txids[0].to_string()]),
                &mut odd,
            )
            .unwrap_err();
            assert_eq!(
                err.message,
                "daemon error: DaemonError({'code': -8, 'message': 'it\\'s \"odd\"'})"
            );
            let mut down = |_: &str, _: &[Value]| Err(DaemonError::Unavailable("refused".into()));
            let err = call_with(
                ctx,
                "blockchain.transaction.get",
                &json!(["cd".repeat(32)]),
                &mut down,
            )
            .unwrap_err();
            assert_eq!(err.code, 2);
        });
    }

    #[test]
    fn broadcast_returns_the_daemons_txid_or_electrumxs_rejection() {
        let (fixture, _) = real_blocks();
        fixture.query(|ctx| {
            let mut accept = |method: &str, args: &[Value]| {
                assert_eq!(method, "sendrawtransaction");
                assert_eq!(args, [json!("00FF")]);
                Ok(json!("ee".repeat(32)))
            };
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast",
                    &json!(["00FF"]),
                    &mut accept
                )
                .unwrap(),
                json!("ee".repeat(32))
            );
            assert_eq!(ctx.state.txs_sent.load(Ordering::Relaxed), 1);
            let mut reject = |_: &str, _: &[Value]| {
                Err(DaemonError::Rpc {
                    code: -26,
                    message: "bad-txns-inputs-missingorspent".into(),
                })
            };
            let err = call_with(
                ctx,
                "blockchain.transaction.broadcast",
                &json!(["0011"]),
                &mut reject,
            )
            .unwrap_err();
            assert_eq!(
                (err.code, err.message.as_str()),
                (
                    1,
                    "the transaction was rejected by network rules.\n\n\
                     bad-txns-inputs-missingorspent\n[0011]"
                )
            );
            for (params, message) in [
                (json!(["0g"]), "0g should be a hex string"),
                (json!(["abc"]), "abc should be a hex string"),
                (json!([12]), "12 should be a hex string"),
            ] {
                assert_eq!(
                    call_with(
                        ctx,
                        "blockchain.transaction.broadcast",
                        &params,
                        &mut no_daemon
                    )
                    .unwrap_err()
                    .message,
                    message
                );
            }
        });
    }

    #[test]
    fn broadcast_package_summarises_or_passes_through() {
        let (fixture, _) = real_blocks();
        let answer = json!({
            "package_msg": "transaction failed",
            "tx-results": {
                "w1": {"txid": "t1", "vsize": 100},
                "w2": {"txid": "t2", "error": "bad-txns"}
            },
            "replaced-transactions": []
        });
        fixture.query(|ctx| {
            let mut submit = |method: &str, args: &[Value]| {
                assert_eq!(method, "submitpackage");
                assert_eq!(args, [json!(["00", "11"])]);
                Ok(answer.clone())
            };
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!([["00", "11"]]),
                    &mut submit
                )
                .unwrap(),
                json!({"success": false, "errors": [{"txid": "t2", "error": "bad-txns"}]})
            );
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!([["00", "11"], 1]),
                    &mut submit
                )
                .unwrap(),
                answer
            );
            let mut missing = |_: &str, _: &[Value]| {
                Err(DaemonError::Rpc {
                    code: -32601,
                    message: "Method not found".into(),
                })
            };
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!([["00"]]),
                    &mut missing
                )
                .unwrap_err()
                .message,
                "the tx package was rejected by network rules.\n\nMethod not found."
            );
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!(["00"]),
                    &mut no_daemon
                )
                .unwrap_err()
                .message,
                "00 should be a list"
            );
            assert_eq!(
                call_with(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!([["00", "x"]]),
                    &mut no_daemon
                )
                .unwrap_err()
                .message,
                "x should be a hex string"
            );
        });
        assert_eq!(
            package_summary(&json!({"package_msg": "success", "tx-results": {}})).unwrap(),
            json!({"success": true})
        );
        assert_eq!(package_summary(&json!({})).unwrap_err().code, -32603);
    }

    #[test]
    fn broadcast_package_needs_protocol_1_6() {
        let (mut fixture, _) = real_blocks();
        fixture.protocol = crate::protocol::version::ProtocolVersion::new(&[1, 4]);
        fixture.query(|ctx| {
            assert_eq!(
                call(
                    ctx,
                    "blockchain.transaction.broadcast_package",
                    &json!([[]])
                )
                .unwrap_err()
                .code,
                RpcError::METHOD_NOT_FOUND
            );
            assert!(call(ctx, "blockchain.transaction.id_from_pos", &json!([0, 0])).is_ok());
        });
    }

    #[test]
    fn testmempoolaccept_reshapes_the_daemon_s_answer() {
        use crate::protocol::methods::{answer_with, answered};
        let mut fixture = Fixture::new(server(), &[]);
        fixture.protocol = crate::protocol::version::ProtocolVersion::new(&[1, 7]);
        let asked = RefCell::new(Vec::new());
        let mut daemon = |method: &str, params: &[Value]| {
            asked
                .borrow_mut()
                .push((method.to_string(), params.to_vec()));
            Ok(json!([
                {"txid": "aa", "wtxid": "bb", "allowed": true, "vsize": 110, "fees": {"base": 0.0001}},
                {"txid": "cc", "wtxid": "dd", "allowed": false, "reject-reason": "missing-inputs"},
                {"txid": "ee", "wtxid": "ff", "package-error": "package-not-sorted", "reject-reason": "x"},
            ]))
        };
        let raw = "00".repeat(2500);
        let answer = fixture.query(|ctx| {
            answered(answer_with(
                ctx,
                "blockchain.transaction.testmempoolaccept",
                &json!([[raw]]),
                &mut daemon,
            ))
        });
        assert_eq!(
            answer.result,
            Ok(json!([
                {"txid": "aa", "wtxid": "bb", "allowed": true},
                {"txid": "cc", "wtxid": "dd", "allowed": false, "reason": "missing-inputs"},
                {"txid": "ee", "wtxid": "ff", "reason": "package-not-sorted"},
            ]))
        );
        assert!((answer.cost - 1.25).abs() < 1e-9);
        assert_eq!(answer.effect, None, "nothing was broadcast");
        assert_eq!(
            asked.borrow().as_slice(),
            &[("testmempoolaccept".to_string(), vec![json!([raw])])]
        );
        // Invalid arguments cost nothing and reach no daemon.
        let refused = fixture.query(|ctx| {
            answered(answer_with(
                ctx,
                "blockchain.transaction.testmempoolaccept",
                &json!([["zz"]]),
                &mut daemon,
            ))
        });
        assert_eq!(
            refused.result.unwrap_err().message,
            "zz should be a hex string"
        );
        assert_eq!(refused.cost, 0.0);
        let not_a_list = fixture
            .query(|ctx| {
                call(
                    ctx,
                    "blockchain.transaction.testmempoolaccept",
                    &json!(["00"]),
                )
            })
            .unwrap_err();
        assert_eq!(not_a_list.message, "00 should be a list");
        // Litecoin Core 0.21 gives no wtxid: the client's transaction is hashed.
        let mut no_wtxid = |_: &str, _: &[Value]| Ok(json!([{"txid": "aa", "allowed": true}]));
        let answer = fixture
            .query(|ctx| {
                call_with(
                    ctx,
                    "blockchain.transaction.testmempoolaccept",
                    &json!([["00"]]),
                    &mut no_wtxid,
                )
            })
            .unwrap();
        let wtxid = bitcoin::Wtxid::from_raw_hash(sha256d::Hash::hash(&[0])).to_string();
        assert_eq!(
            answer,
            json!([{"txid": "aa", "wtxid": wtxid, "allowed": true}])
        );
        // A daemon error is the client's daemon error.
        let mut failing = |_: &str, _: &[Value]| {
            Err(DaemonError::Rpc {
                code: -8,
                message: "Array must contain exactly one raw transaction for now".into(),
            })
        };
        let error = fixture
            .query(|ctx| {
                call_with(
                    ctx,
                    "blockchain.transaction.testmempoolaccept",
                    &json!([["00", "00"]]),
                    &mut failing,
                )
            })
            .unwrap_err();
        assert_eq!(error.code, RpcError::DAEMON_ERROR);
    }
}
