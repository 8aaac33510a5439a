//! Protocol 1.7 end to end on a real regtest litecoind: outpoint subscriptions checked
//! against the daemon's own view of the funding and spending transactions through the
//! mempool, a block and a reorg (litecoind has no `gettxspendingprevout`: ferrumx finds
//! the spender in its own index); scriptPubKey subscriptions and their notification
//! name; `server.ping` both ways and the noise pings after a block; what 1.7 removes.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::{scripthash, to_sats};

const FAST: [(&str, &str); 2] = support::FAST_POLLING;
const WAIT: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn start(node: &Litecoind) -> (tempfile::TempDir, FerrumxProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &FAST);
    server.wait_ready(Duration::from_secs(120));
    (dir, server)
}

fn client(server: &FerrumxProcess) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect");
    let reply = client.handshake("1.7").expect("server.version");
    assert_eq!(reply[1], "1.7");
    client
}

/// The next notification of `method`, skipping others (noise pings among them).
fn expect_notification(client: &mut RawClient, method: &str) -> Value {
    client.expect_notification(method, WAIT)
}

/// A daemon with mature coins, ferrumx on it, and a protocol 1.7 client.
fn started() -> (Litecoind, tempfile::TempDir, FerrumxProcess, RawClient) {
    let node = Litecoind::start();
    node.mine(110);
    let (dir, server) = start(&node);
    let watcher = client(&server);
    (node, dir, server, watcher)
}

/// The height the protocol gives the wallet transaction `txid` by the daemon's own
/// account (the wallet's: litecoind runs without a transaction index): its block's, or
/// in the mempool 0, or -1 when it spends an output of another mempool transaction.
fn daemon_height(node: &Litecoind, txid: &str) -> i64 {
    let tx = node.call("gettransaction", json!([txid]));
    if tx["confirmations"].as_i64().unwrap_or(0) > 0 {
        let block = tx["blockhash"].as_str().expect("blockhash");
        return node.call("getblockheader", json!([block]))["height"]
            .as_i64()
            .expect("height");
    }
    let decoded = node.call("decoderawtransaction", json!([tx["hex"]]));
    let mempool = node.call("getrawmempool", json!([]));
    let unconfirmed_parent = decoded["vin"].as_array().expect("vin").iter().any(|input| {
        mempool
            .as_array()
            .expect("mempool")
            .contains(&input["txid"])
    });
    if unconfirmed_parent { -1 } else { 0 }
}

/// The status of `funder:vout` by the daemon's account, given the only transaction that
/// can spend it: funded when the daemon knows the funder; spent when `gettxout` (mempool
/// included) no longer has the output and the daemon knows `spender`.
fn daemon_status(node: &Litecoind, funder: &str, vout: u32, spender: &str) -> Value {
    if node.try_call("gettransaction", json!([funder])).is_err() {
        return json!({});
    }
    let funder_height = daemon_height(node, funder);
    let unspent = node.call("gettxout", json!([funder, vout, true]));
    if !unspent.is_null() {
        return json!({ "funder_height": funder_height });
    }
    json!({
        "funder_height": funder_height,
        "spender_txhash": spender,
        "spender_height": daemon_height(node, spender),
    })
}

/// A signed transaction paying `amount` from the wallet's coin `input` to `address`, not
/// sent: its txid and hex.
fn signed_payment(
    node: &Litecoind,
    input: (&str, u32),
    address: &str,
    sats: u64,
) -> (String, String) {
    let inputs = json!([{ "txid": input.0, "vout": input.1 }]);
    let amount = format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000);
    let raw = node.call("createrawtransaction", json!([inputs, { address: amount }]));
    let hex = node.call("signrawtransactionwithwallet", json!([raw]))["hex"]
        .as_str()
        .expect("hex")
        .to_string();
    let txid = node.call("decoderawtransaction", json!([hex]))["txid"]
        .as_str()
        .expect("txid")
        .to_string();
    (txid, hex)
}

/// Asks `get_status` and checks it equals the subscription's last notification and the
/// daemon's account.
fn check(
    client: &mut RawClient,
    node: &Litecoind,
    notified: &Value,
    outpoint: (&str, u32),
    spender: &str,
) {
    let expected = daemon_status(node, outpoint.0, outpoint.1, spender);
    let asked = client
        .call(
            "blockchain.outpoint.get_status",
            json!([outpoint.0, outpoint.1, ""]),
        )
        .expect("get_status");
    assert_eq!(notified[2], expected, "notified {notified}");
    assert_eq!(asked, expected);
}

/// Waits for the outpoint's notification whose status is `wanted` by the daemon (a
/// change may come in steps: the mempool first, then the block).
fn notified_until(
    client: &mut RawClient,
    node: &Litecoind,
    outpoint: (&str, u32),
    spender: &str,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let params = expect_notification(client, "blockchain.outpoint.subscribe");
        assert_eq!(params[0], outpoint.0);
        assert_eq!(params[1], outpoint.1);
        if params[2] == daemon_status(node, outpoint.0, outpoint.1, spender) {
            return params;
        }
        assert!(Instant::now() < deadline, "last notified {params}");
    }
}

#[test]
fn outpoints_follow_the_daemon_through_mempool_blocks_and_reorgs() {
    let (node, _dir, _server, mut watcher) = started();

    // A payment to A, signed but not sent: its output does not exist yet.
    let (address_a, script_a) = node.new_address("bech32");
    let (address_b, _) = node.new_address("legacy");
    let coin = node.call("listunspent", json!([1]))[0].clone();
    let coin_txid = coin["txid"].as_str().expect("txid").to_string();
    let coin_vout = coin["vout"].as_u64().expect("vout") as u32;
    let amount = to_sats(&coin["amount"]) - 100_000;
    let (funder, funder_hex) = signed_payment(&node, (&coin_txid, coin_vout), &address_a, amount);
    let outpoint = (funder.as_str(), 0);
    assert_eq!(
        watcher
            .call(
                "blockchain.outpoint.subscribe",
                json!([funder, 0, script_a])
            )
            .expect("subscribe"),
        json!({})
    );
    // The coin it spends is confirmed and unspent.
    let coin_status = |watcher: &mut RawClient| {
        let status = watcher
            .call(
                "blockchain.outpoint.get_status",
                json!([coin_txid, coin_vout, ""]),
            )
            .expect("get_status");
        assert_eq!(status, daemon_status(&node, &coin_txid, coin_vout, &funder));
        status
    };
    coin_status(&mut watcher);

    // Funded in the mempool.
    node.call("sendrawtransaction", json!([funder_hex]));
    let (spender, spender_hex) = signed_payment(&node, (&funder, 0), &address_b, amount - 100_000);
    let notified = notified_until(&mut watcher, &node, outpoint, &spender);
    assert_eq!(notified[2], json!({ "funder_height": 0 }));
    check(&mut watcher, &node, &notified, outpoint, &spender);
    let coin_status = coin_status(&mut watcher);
    assert_eq!(coin_status["spender_height"], 0);

    // Spent in the mempool, by a child of an unconfirmed transaction: height -1.
    node.call("sendrawtransaction", json!([spender_hex]));
    let notified = notified_until(&mut watcher, &node, outpoint, &spender);
    assert_eq!(notified[2]["spender_height"], -1);
    check(&mut watcher, &node, &notified, outpoint, &spender);

    // Both mined in one block.
    let best = node.mine(1)[0].clone();
    let height = i64::from(node.height());
    let notified = notified_until(&mut watcher, &node, outpoint, &spender);
    assert_eq!(
        notified[2],
        json!({"funder_height": height, "spender_txhash": spender, "spender_height": height})
    );
    check(&mut watcher, &node, &notified, outpoint, &spender);

    // A reorg takes the block away: both are back in the mempool.
    node.call("invalidateblock", json!([best]));
    let notified = notified_until(&mut watcher, &node, outpoint, &spender);
    assert_eq!(
        notified[2],
        json!({"funder_height": 0, "spender_txhash": spender, "spender_height": -1})
    );
    check(&mut watcher, &node, &notified, outpoint, &spender);

    // Two blocks of another branch (another coinbase address: not the invalid block
    // again) mine them again.
    let (miner, _) = node.new_address("bech32");
    node.mine_to(2, &miner);
    let notified = notified_until(&mut watcher, &node, outpoint, &spender);
    let mined_at = i64::from(node.height()) - 1;
    assert_eq!(
        notified[2],
        json!({"funder_height": mined_at, "spender_txhash": spender, "spender_height": mined_at})
    );
    check(&mut watcher, &node, &notified, outpoint, &spender);

    // Unsubscribing answers whether it was followed.
    let unsubscribe = |client: &mut RawClient| {
        client
            .call("blockchain.outpoint.unsubscribe", json!([funder, 0]))
            .expect("unsubscribe")
    };
    assert_eq!(unsubscribe(&mut watcher), json!(true));
    assert_eq!(unsubscribe(&mut watcher), json!(false));
    let error = watcher
        .call("blockchain.outpoint.get_status", json!([funder, 0]))
        .expect_err("spk_hint is required");
    assert_eq!(error.0, -32602);
}

#[test]
fn scriptpubkeys_pings_and_what_1_7_removes() {
    let (node, _dir, server, mut watcher) = started();
    let (address, script) = node.new_address("bech32");
    let sh = scripthash(&script);

    // Script hashes are gone; scriptPubKeys answer in objects.
    let gone = watcher
        .call("blockchain.scripthash.get_balance", json!([sh]))
        .expect_err("no script hash methods at 1.7");
    assert_eq!(
        gone,
        (
            -32601,
            "unknown method \"blockchain.scripthash.get_balance\"".to_string()
        )
    );
    assert_eq!(
        watcher
            .call("blockchain.scriptpubkey.subscribe", json!([script]))
            .expect("subscribe"),
        Value::Null
    );
    let txid = node.call("sendtoaddress", json!([address, 1.25]));
    // The notification is named after the scriptPubKey methods, and names the script
    // hash, as ElectrumX 2.0 sends it.
    let params = expect_notification(&mut watcher, "blockchain.scriptpubkey.subscribe");
    assert_eq!(params[0], json!(sh));
    let history = watcher
        .call("blockchain.scriptpubkey.get_history", json!([script]))
        .expect("get_history");
    assert_eq!(history["history"][0]["tx_hash"], txid);
    let mempool = watcher
        .call("blockchain.scriptpubkey.get_mempool", json!([script]))
        .expect("get_mempool");
    assert_eq!(mempool["history"], history["history"]);
    let utxos = watcher
        .call("blockchain.scriptpubkey.listunspent", json!([script]))
        .expect("listunspent");
    assert_eq!(utxos["utxos"][0]["value"], 125_000_000);
    let balance = watcher
        .call("blockchain.scriptpubkey.get_balance", json!([script]))
        .expect("get_balance");
    assert_eq!(balance, json!({"confirmed": 0, "unconfirmed": 125_000_000}));
    let recent = watcher.call("mempool.recent", json!([])).expect("recent");
    assert_eq!(recent[0]["txid"], txid);
    let features = watcher
        .call("server.features", json!([]))
        .expect("features");
    assert!(features.get("hash_function").is_none(), "{features}");
    assert_eq!(features["protocol_max"], "1.7.0");

    // Pings: padded answers, and notifications the server takes silently.
    assert_eq!(
        watcher
            .call("server.ping", json!([3, "abc"]))
            .expect("ping"),
        json!({"data": "000"})
    );
    watcher
        .send_raw_line(r#"{"jsonrpc":"2.0","method":"server.ping","params":["0123"]}"#)
        .expect("send");
    assert_eq!(
        watcher.call("server.ping", json!([])).expect("ping"),
        json!({"data": ""}),
        "the notification got no reply and the session goes on"
    );

    // A session subscribed to headers alone gets one notification per block: a noise
    // ping follows it.
    let mut headers_only = client(&server);
    headers_only
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers");
    node.mine(1);
    let header = expect_notification(&mut headers_only, "blockchain.headers.subscribe");
    assert_eq!(header[0]["height"], json!(node.height()));
    let ping = expect_notification(&mut headers_only, "server.ping");
    assert_eq!(ping, json!(["0".repeat(128)]));

    // testmempoolaccept asks the daemon without broadcasting.
    let error = watcher
        .call("blockchain.transaction.testmempoolaccept", json!([["zz"]]))
        .expect_err("not hex");
    assert_eq!(error, (1, "zz should be a hex string".to_string()));
    let (other, _) = node.new_address("bech32");
    let coin = node.call("listunspent", json!([1]))[0].clone();
    let (tx, hex) = signed_payment(
        &node,
        (
            coin["txid"].as_str().expect("txid"),
            coin["vout"].as_u64().expect("vout") as u32,
        ),
        &other,
        to_sats(&coin["amount"]) - 100_000,
    );
    let accepted = watcher
        .call("blockchain.transaction.testmempoolaccept", json!([[hex]]))
        .expect("testmempoolaccept");
    assert_eq!(accepted[0]["txid"], tx);
    assert_eq!(accepted[0]["allowed"], true);
    // litecoind gives no wtxid: ferrumx hashes the transaction (as the daemon would).
    let decoded = node.call("decoderawtransaction", json!([hex]));
    assert_eq!(accepted[0]["wtxid"], decoded["hash"]);
    assert!(
        node.try_call("getmempoolentry", json!([tx])).is_err(),
        "tested, not broadcast"
    );
}

/// What the spends table costs on the differential test's chain: every table's pages,
/// with and without it (the other tables are as they were before it existed). Prints
/// the figures the README quotes; run with `--ignored`.
#[test]
#[ignore]
fn spends_table_cost() {
    use support::chain_builder::{ChainSpec, build_mixed_chain};
    let node = Litecoind::start();
    let info = build_mixed_chain(&node, &ChainSpec::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, rpc_port) = (support::free_port(), support::free_port());
    let services = format!("tcp://127.0.0.1:{tcp},rpc://127.0.0.1:{rpc_port}");
    let mut env = FAST.to_vec();
    env.push(("SERVICES", &services));
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    server.wait_ready(Duration::from_secs(300));
    let mut client = client(&server);
    let tip = client
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers");
    assert_eq!(tip["height"], json!(node.height()));
    let memory = support::admin_request(rpc_port, &json!({"id": 1, "method": "memory"}));
    let tables = memory["result"]["index tables"]
        .as_object()
        .expect("index tables")
        .clone();
    let bytes = |text: &Value| -> u64 {
        let text = text.as_str().expect("text");
        text.split(" bytes")
            .next()
            .expect("bytes")
            .replace(',', "")
            .parse()
            .expect("number")
    };
    let all: u64 = tables.values().map(bytes).sum();
    let spends = bytes(&tables["spends"]);
    eprintln!(
        "chain: {} blocks, {} transactions; tables {tables:?}",
        info.tip, info.transactions
    );
    eprintln!(
        "index tables without spends {} bytes, with {} bytes (+{:.1}%); spends {} bytes",
        all - spends,
        all,
        100.0 * spends as f64 / (all - spends) as f64,
        spends
    );
    assert!(spends > 0);
}
