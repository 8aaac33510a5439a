//! Subscriptions end to end on a real regtest litecoind: header and script-hash
//! notifications after a mempool transaction, a chained unconfirmed spend (height -1),
//! a mined block (-1 → confirmed), a reorg back into the mempool and out again; the
//! statuses equal those computed from the daemon's own data; "history too large" with
//! the smallest MAX_SEND; a batch mixing good and bad requests.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::chain_builder::{ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::{Truth, scripthash};

const FAST: [(&str, &str); 2] = support::FAST_POLLING;
const WAIT: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn start(node: &Litecoind, extra: &[(&str, &str)]) -> (tempfile::TempDir, FerrumxProcess) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.extend_from_slice(extra);
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    server.wait_ready(Duration::from_secs(120));
    (dir, server)
}

fn client(server: &FerrumxProcess) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect");
    client.handshake("1.6").expect("server.version");
    client
}

/// A fresh wallet address, its scriptPubKey and its Electrum script hash.
fn new_address(node: &Litecoind, kind: &str) -> (String, String) {
    let (address, script) = node.new_address(kind);
    let sh = scripthash(&script);
    (address, sh)
}

/// Waits for the notification of `method` (skipping others), failing after `WAIT`.
fn expect_notification(client: &mut RawClient, method: &str) -> Value {
    client.expect_notification(method, WAIT)
}

/// The status ElectrumX defines, from (txid, height) pairs already in protocol order.
fn status_of(entries: &[(String, i64)]) -> Value {
    use bitcoin::hashes::{Hash, sha256};
    if entries.is_empty() {
        return Value::Null;
    }
    let text: String = entries
        .iter()
        .map(|(txid, height)| format!("{txid}:{height}:"))
        .collect();
    Value::String(sha256::Hash::hash(text.as_bytes()).to_string())
}

#[test]
fn subscriptions_follow_the_mempool_blocks_and_reorgs() {
    let node = Litecoind::start();
    build_mixed_chain(&node, &ChainSpec::small());
    let (_dir, server) = start(&node, &[]);
    let mut watcher = client(&server);

    let tip = watcher
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers.subscribe");
    assert_eq!(tip["height"], json!(node.height()));
    let (address_a, sh_a) = new_address(&node, "bech32");
    let (address_b, sh_b) = new_address(&node, "legacy");
    assert_eq!(
        watcher
            .call("blockchain.scripthash.subscribe", json!([sh_a]))
            .expect("subscribe"),
        Value::Null
    );
    assert_eq!(
        watcher
            .call("blockchain.scripthash.subscribe", json!([sh_b]))
            .expect("subscribe"),
        Value::Null
    );

    // A mempool payment to A: A's status has it at height 0.
    let txid_a = node
        .call("sendtoaddress", json!([address_a, 2.5]))
        .as_str()
        .expect("txid")
        .to_string();
    let params = expect_notification(&mut watcher, "blockchain.scripthash.subscribe");
    assert_eq!(params, json!([sh_a, status_of(&[(txid_a.clone(), 0)])]));

    // B is paid by a child of that unconfirmed tx: height -1, with its fee.
    let utxo = node.call("listunspent", json!([0, 0, [address_a]]))[0].clone();
    let inputs = json!([{ "txid": utxo["txid"], "vout": utxo["vout"] }]);
    let raw = node.call(
        "createrawtransaction",
        json!([inputs, { address_b.as_str(): 2.4999 }]),
    );
    let signed = node.call("signrawtransactionwithwallet", json!([raw]))["hex"].clone();
    let txid_b = node
        .call("sendrawtransaction", json!([signed]))
        .as_str()
        .expect("txid")
        .to_string();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let params = expect_notification(&mut watcher, "blockchain.scripthash.subscribe");
        seen.push(params[0].as_str().expect("scripthash").to_string());
        if params[0] == json!(sh_b) {
            assert_eq!(params[1], status_of(&[(txid_b.clone(), -1)]));
        }
    }
    assert!(
        seen.contains(&sh_a) && seen.contains(&sh_b),
        "notified {seen:?}"
    );
    let mempool_b = watcher
        .call("blockchain.scripthash.get_mempool", json!([sh_b]))
        .expect("get_mempool");
    assert_eq!(
        mempool_b,
        json!([{ "tx_hash": txid_b, "height": -1, "fee": 10_000 }])
    );
    let balance_a = watcher
        .call("blockchain.scripthash.get_balance", json!([sh_a]))
        .expect("get_balance");
    assert_eq!(
        balance_a,
        json!({ "confirmed": 0, "unconfirmed": 0 }),
        "A's coin is spent in the mempool"
    );

    // A block: the header first, then both statuses, now confirmed (-1 → confirmed).
    node.mine(1);
    let header = expect_notification(&mut watcher, "blockchain.headers.subscribe");
    assert_eq!(header[0]["height"], json!(node.height()));
    let truth = Truth::from_daemon(&node);
    let mut statuses = std::collections::HashMap::new();
    while statuses.len() < 2 {
        let params = expect_notification(&mut watcher, "blockchain.scripthash.subscribe");
        statuses.insert(
            params[0].as_str().expect("scripthash").to_string(),
            params[1].clone(),
        );
    }
    assert_eq!(statuses[&sh_a], truth.expected_status(&sh_a));
    assert_eq!(statuses[&sh_b], truth.expected_status(&sh_b));
    let history_b = watcher
        .call("blockchain.scripthash.get_history", json!([sh_b]))
        .expect("get_history");
    assert_eq!(history_b, truth.expected_history(&sh_b));

    // A reorg that disconnects the block: the transactions return to the mempool, and
    // the statuses say so; reconsidering the block confirms them again.
    let best = node.call("getbestblockhash", json!([]));
    node.call("invalidateblock", json!([best]));
    let header = expect_notification(&mut watcher, "blockchain.headers.subscribe");
    assert_eq!(header[0]["height"], json!(node.height()));
    let deadline = Instant::now() + WAIT;
    loop {
        let status = watcher
            .call("blockchain.scripthash.subscribe", json!([sh_b]))
            .expect("subscribe");
        if status == status_of(&[(txid_b.clone(), -1)]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's status after the reorg is {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    node.call("reconsiderblock", json!([best]));
    let header = expect_notification(&mut watcher, "blockchain.headers.subscribe");
    assert_eq!(
        header[0]["hex"],
        node.call("getblockheader", json!([best, false]))
    );

    // Unsubscribing answers whether the script was subscribed.
    assert_eq!(
        watcher
            .call("blockchain.scripthash.unsubscribe", json!([sh_a]))
            .expect("unsubscribe"),
        json!(true)
    );
    assert_eq!(
        watcher
            .call("blockchain.scripthash.unsubscribe", json!([sh_a]))
            .expect("unsubscribe"),
        json!(false)
    );
}

#[test]
fn batches_answer_each_member() {
    let node = Litecoind::start();
    node.mine(110);
    let (_dir, server) = start(&node, &[]);
    let mut client = client(&server);
    let answers = client.batch(&[
        ("blockchain.block.header", json!([0])),
        ("blockchain.block.header", json!([-1])),
        ("no.such.method", json!([])),
        ("blockchain.scripthash.get_balance", json!(["zz"])),
        ("blockchain.block.header", json!([1, 2, 3, 4])),
    ]);
    let genesis = node.call(
        "getblockheader",
        json!([node.call("getblockhash", json!([0])), false]),
    );
    assert_eq!(answers[0], Ok(genesis));
    assert_eq!(
        answers[1],
        Err((1, "-1 should be a non-negative integer".to_string()))
    );
    assert_eq!(
        answers[2],
        Err((-32601, "unknown method \"no.such.method\"".to_string()))
    );
    assert_eq!(
        answers[3],
        Err((1, "zz is not a valid script hash".to_string()))
    );
    assert_eq!(
        answers[4],
        Err((
            -32602,
            "4 arguments passed to method blockchain.block.header taking at most 2".to_string()
        ))
    );
}

#[test]
fn history_too_large_with_the_smallest_max_send() {
    // MAX_SEND 350,000 allows histories of fewer than 3,534 entries; one address gets a
    // coinbase in 3,540 blocks.
    let node = Litecoind::start();
    let (address, sh) = new_address(&node, "bech32");
    node.mine_to(3_540, &address);
    let (_dir, server) = start(&node, &[("MAX_SEND", "350000")]);
    let mut client = client(&server);
    let too_large = Err((10001, "history too large".to_string()));
    assert_eq!(
        client.call("blockchain.scripthash.get_history", json!([sh])),
        too_large
    );
    assert_eq!(
        client.call("blockchain.scripthash.subscribe", json!([sh])),
        too_large
    );
    // Balance and unspent outputs are still answered.
    let balance = client
        .call("blockchain.scripthash.get_balance", json!([sh]))
        .expect("get_balance");
    assert!(balance["confirmed"].as_u64().expect("confirmed") > 0);
}
