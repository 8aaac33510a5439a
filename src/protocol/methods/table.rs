//! The table itself: every method of protocols 1.4 to 1.7 and Fulcrum's extras, each
//! with its handler and ElectrumX's price.

use super::method::{Method, Price, Source, flat, sig};
use crate::protocol::RpcError;
use crate::protocol::blockchain;
use crate::protocol::extras;
use crate::protocol::fees;
use crate::protocol::outpoint;
use crate::protocol::params::Signature;
use crate::protocol::server;
use crate::protocol::transaction;

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
