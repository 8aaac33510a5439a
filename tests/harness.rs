//! Self-tests of the end-to-end harness, none of which need ferrumx: the daemon wrapper
//! starts, restarts and mines past MWEB activation, the chain builder makes what it
//! promises, and the expected index (`Truth`) agrees both with the builder's own ledger and
//! with the wallet's view of every wallet address the builder paid.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use bitcoin::secp256k1::Secp256k1;

use support::chain_builder::{AddressKind, ChainInfo, ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::litecoind::{Litecoind, MWEB_ACTIVATION};
use support::signer::Key;
use support::truth::{Truth, is_unspendable, scripthash, to_sats};

#[test]
fn scripthash_follows_the_electrum_convention() {
    // The example in the Electrum protocol documentation (address 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa).
    assert_eq!(
        scripthash("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"),
        "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
    );
}

#[test]
fn amounts_convert_to_satoshis_exactly() {
    let cases = [
        ("12.5000553", 1_250_005_530),
        ("0.00000001", 1),
        ("0.29", 29_000_000),
        ("20999999.99999999", 2_099_999_999_999_999),
        ("2.54e-05", 2_540),
    ];
    for (text, sats) in cases {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_sats(&value), sats, "{text}");
    }
}

#[test]
fn small_chain_truth_matches_wallet_and_ledger() {
    let node = Litecoind::start();
    let spec = ChainSpec::small();
    let info = build_mixed_chain(&node, &spec);
    eprintln!("small chain built in {:?}", info.elapsed);
    let truth = Truth::from_daemon(&node);

    assert!(info.tip >= spec.blocks);
    assert_eq!(truth.tip, info.tip);
    assert_eq!(info.transactions, spec.transactions);
    assert_eq!(info.wallet_transactions, spec.wallet_transactions);
    // No MWEB in a chain this short: every block holds its coinbase and the builder's txs.
    assert_eq!(truth.tx_count, (info.tip + info.transactions) as usize);
    assert_eq!(truth.block_hashes.len(), info.tip as usize + 1);
    for kind in AddressKind::ALL {
        assert!(info.addresses_of_kind(kind).count() >= 10, "{kind:?}");
    }
    check_truth_shape(&truth, &info, &spec);
    check_against_ledger(&truth, &info);
    check_against_wallet(&node, &truth, &info);
}

#[test]
fn default_chain_with_mweb_matches_wallet_and_ledger() {
    let node = Litecoind::start();
    let spec = ChainSpec::default();
    let info = build_mixed_chain(&node, &spec);
    eprintln!("default chain built in {:?}", info.elapsed);
    let started = std::time::Instant::now();
    let truth = Truth::from_daemon(&node);
    eprintln!("truth computed in {:?}", started.elapsed());

    assert!(info.tip >= spec.blocks);
    assert_eq!(info.transactions, spec.transactions);
    let mweb = info.mweb.as_ref().unwrap();
    assert_eq!(mweb.pegin_height, MWEB_ACTIVATION);
    // From the peg-in block on, every block carries a HogEx; the peg-out itself is no
    // canonical transaction (it is an output of the HogEx).
    let hogex = (info.tip - mweb.pegin_height + 1) as usize;
    assert_eq!(
        truth.tx_count,
        (info.tip + info.transactions) as usize - 1 + hogex
    );
    check_mweb_blocks(&node, &truth, &info);
    check_truth_shape(&truth, &info, &spec);
    check_against_ledger(&truth, &info);
    check_against_wallet(&node, &truth, &info);
}

#[test]
fn mining_past_mweb_activation_makes_the_peg_in_it_needs() {
    let node = Litecoind::start();
    node.mine(MWEB_ACTIVATION + 2);
    assert_eq!(node.height(), MWEB_ACTIVATION + 2);
    let hash = node.call("getblockhash", json!([MWEB_ACTIVATION]));
    let block = node.call("getblock", json!([hash, 2]));
    // Coinbase, the peg-in, the HogEx.
    assert_eq!(block["tx"].as_array().unwrap().len(), 3);
}

#[test]
fn harness_addresses_are_litecoin_regtest_addresses() {
    let node = Litecoind::start();
    let secp = Secp256k1::new();
    for (n, kind) in AddressKind::ALL.into_iter().enumerate() {
        let key = Key::derive(&secp, n as u32, kind);
        let info = node.call("validateaddress", json!([key.address()]));
        assert_eq!(info["isvalid"], json!(true), "{kind:?}: {info}");
        assert_eq!(info["scriptPubKey"], json!(key.script_hex()), "{kind:?}");
    }
}

#[test]
fn restart_keeps_the_chain_and_the_wallet() {
    let mut node = Litecoind::start();
    node.mine(101);
    let to = node.call("getnewaddress", json!(["", "legacy"]));
    let txid = node.call("sendtoaddress", json!([to, "1.5"]));
    node.mine(1);
    let tip = node.call("getbestblockhash", json!([]));

    node.restart();
    assert_eq!(node.call("getbestblockhash", json!([])), tip);
    let tx = node.call("gettransaction", json!([txid]));
    assert_eq!(tx["confirmations"], json!(1));
    assert_eq!(node.mine(1).len(), 1);
    assert_eq!(node.height(), 103);

    node.kill9();
    assert!(!node.is_running());
    node.restart();
    assert!(node.is_running());
    assert!(node.height() <= 103);
    assert_eq!(node.mine(1).len(), 1);

    node.stop();
    assert!(!node.is_running());
}

#[test]
fn daemons_run_side_by_side() {
    let a = Litecoind::start();
    let b = Litecoind::start();
    assert_ne!(a.rpc_port(), b.rpc_port());
    a.mine(3);
    assert_eq!(a.height(), 3);
    assert_eq!(b.height(), 0);
    assert!(a.daemon_url().starts_with("http://"));
    assert!(a.daemon_url().ends_with(&format!(":{}/", a.rpc_port())));
}

#[test]
fn raw_client_matches_replies_and_keeps_notifications() {
    // A scripted server: a notification before each single reply, batches answered in
    // reverse order.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let request: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let reply = match request.as_array() {
                Some(batch) => batch.iter().rev().map(answer).collect(),
                None => {
                    let note = json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
                                      "params": [{"height": 7}]});
                    writeln!(writer, "{note}").unwrap();
                    answer(&request)
                }
            };
            writeln!(writer, "{reply}").unwrap();
        }
    });

    let mut client = RawClient::connect(addr).unwrap();
    assert_eq!(client.handshake("1.4"), Ok(json!("server.version")));
    assert_eq!(
        client.call("fail", json!([])),
        Err((-32601, "unknown method".to_string()))
    );
    let outcomes = client.batch(&[("a", json!([])), ("fail", json!([])), ("c", json!([]))]);
    assert_eq!(
        outcomes,
        vec![
            Ok(json!("a")),
            Err((-32601, "unknown method".to_string())),
            Ok(json!("c"))
        ]
    );
    let note = client.next_notification(Duration::from_secs(1)).unwrap();
    assert_eq!(note["params"][0]["height"], json!(7));
    assert!(client.next_notification(Duration::from_secs(1)).is_some());
    assert!(
        client
            .next_notification(Duration::from_millis(100))
            .is_none()
    );
    drop(client);
    server.join().unwrap();
}

/// The scripted server's reply: the method name as result, or an error for "fail".
fn answer(request: &Value) -> Value {
    if request["method"] == "fail" {
        json!({"jsonrpc": "2.0", "id": request["id"],
               "error": {"code": -32601, "message": "unknown method"}})
    } else {
        json!({"jsonrpc": "2.0", "id": request["id"], "result": request["method"]})
    }
}

/// What getblock 2 shows around MWEB: block 432's HogEx (the last transaction) spends the
/// peg-in's `witness_mweb_pegin` output (OP_9, 32 bytes); every HogEx pays the HogAddr
/// (`witness_mweb_hogaddr`, OP_8, 32 bytes) first and peg-outs after; later HogExes spend
/// the previous one. All of them are ordinary outputs to the index.
fn check_mweb_blocks(node: &Litecoind, truth: &Truth, info: &ChainInfo) {
    let mweb = info.mweb.as_ref().unwrap();
    let block_txs = |height: u32| {
        let block = node.call("getblock", json!([truth.block_hashes[height as usize], 2]));
        block["tx"].as_array().unwrap().clone()
    };
    let txs = block_txs(mweb.pegin_height);
    let pegin = txs
        .iter()
        .find(|tx| tx["txid"] == json!(mweb.pegin_txid))
        .unwrap();
    let pegin_script = pegin["vout"][0]["scriptPubKey"]["hex"].as_str().unwrap();
    assert!(pegin_script.starts_with("5920"), "{pegin}");
    let hogex = txs.last().unwrap();
    assert_eq!(hogex["vin"][0]["txid"], json!(mweb.pegin_txid));
    let hogaddr = hogex["vout"][0]["scriptPubKey"]["hex"].as_str().unwrap();
    assert!(hogaddr.starts_with("5820"), "{hogex}");
    let pegin_history = &truth.script(pegin_script).unwrap().history;
    assert_eq!(
        pegin_history.len(),
        2,
        "funded by the peg-in, spent by the HogEx"
    );

    let txs = block_txs(mweb.pegout_height);
    let hogex = txs.last().unwrap();
    let previous = block_txs(mweb.pegout_height - 1);
    assert_eq!(hogex["vin"][0]["txid"], previous.last().unwrap()["txid"]);
    let pegout_script = &info.address(&mweb.pegout_address).unwrap().script;
    // Paid by the HogEx (the wallet may spend it later).
    let pegout = &truth.script(pegout_script).unwrap().history;
    let hogex_txid = hogex["txid"].as_str().unwrap().to_string();
    assert_eq!(pegout[0], (hogex_txid, mweb.pegout_height));
}

/// Internal consistency of the expected index and of the expected ElectrumX answers.
fn check_truth_shape(truth: &Truth, info: &ChainInfo, spec: &ChainSpec) {
    for (script, s) in truth.scripts() {
        assert!(
            !is_unspendable(script),
            "OP_RETURN script indexed: {script}"
        );
        assert!(!s.history.is_empty());
        for pair in s.history.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "history out of order for {script}");
            assert_ne!(pair[0].0, pair[1].0, "duplicate history entry for {script}");
        }
        for pair in s.utxos.windows(2) {
            assert!(pair[0].height <= pair[1].height, "utxos out of order");
        }
        assert!(s.balance() <= s.received);
        let sh = scripthash(script);
        assert_eq!(truth.script_of(&sh), Some(script.as_str()));
        assert_eq!(
            truth.expected_history(&sh).as_array().unwrap().len(),
            s.history.len()
        );
        assert_eq!(
            truth.expected_listunspent(&sh).as_array().unwrap().len(),
            s.utxos.len()
        );
        assert_eq!(
            truth.expected_balance(&sh),
            json!({"confirmed": s.balance(), "unconfirmed": 0})
        );
        assert!(truth.expected_status(&sh).is_string());
    }
    let unknown = "00".repeat(32);
    assert_eq!(truth.expected_history(&unknown), json!([]));
    assert_eq!(truth.expected_listunspent(&unknown), json!([]));
    assert_eq!(truth.expected_status(&unknown), Value::Null);

    let heavy_script = &info.address(&info.heavy).unwrap().script;
    let heavy = truth.script(heavy_script).unwrap();
    assert!(
        heavy.history.len() >= spec.heavy_transactions as usize,
        "heavy address has only {} transactions",
        heavy.history.len()
    );
    // Receiving and spending: fewer unspent outputs than funding transactions.
    assert!(heavy.utxos.len() < heavy.history.len());
    assert!(!info.op_return_txids.is_empty());
}

/// For every harness key, the builder's own ledger and the expected index agree (as sets
/// within a height: the builder cannot know positions inside a block).
fn check_against_ledger(truth: &Truth, info: &ChainInfo) {
    assert!(info.ledger.len() > 100);
    for (script, ledger) in &info.ledger {
        let expected = truth
            .script(script)
            .unwrap_or_else(|| panic!("{script} is in the ledger but not indexed"));
        let mut history = expected.history.clone();
        history.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        assert_eq!(history, ledger.history, "history of {script}");
        let mut utxos = expected.utxos.clone();
        utxos.sort_by(|a, b| (a.height, &a.txid, a.vout).cmp(&(b.height, &b.txid, b.vout)));
        assert_eq!(utxos, ledger.utxos, "utxos of {script}");
        assert_eq!(expected.received, ledger.received, "received by {script}");
    }
}

/// For every wallet address the builder paid, the wallet's unspent outputs and total
/// received equal what the expected index says about the address's script.
fn check_against_wallet(node: &Litecoind, truth: &Truth, info: &ChainInfo) {
    let tip = truth.tip as u64;
    for address in info.wallet_addresses() {
        let wallet = address.wallet.unwrap();
        let info = node.wallet_call(wallet, "getaddressinfo", json!([address.address]));
        assert_eq!(info["scriptPubKey"], json!(address.script));
        let expected = truth
            .script(&address.script)
            .unwrap_or_else(|| panic!("{} was paid but is not indexed", address.address));

        let listed = node.wallet_call(
            wallet,
            "listunspent",
            json!([1, 9_999_999, [address.address]]),
        );
        let mut wallet_utxos: Vec<(String, u64, u64, u64)> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let height = tip + 1 - u["confirmations"].as_u64().unwrap();
                (
                    u["txid"].as_str().unwrap().to_string(),
                    u["vout"].as_u64().unwrap(),
                    height,
                    to_sats(&u["amount"]),
                )
            })
            .collect();
        wallet_utxos.sort();
        let mut truth_utxos: Vec<(String, u64, u64, u64)> = expected
            .utxos
            .iter()
            .map(|u| (u.txid.clone(), u.vout as u64, u.height as u64, u.value))
            .collect();
        truth_utxos.sort();
        assert_eq!(wallet_utxos, truth_utxos, "utxos of {}", address.address);

        let received =
            node.wallet_call(wallet, "getreceivedbyaddress", json!([address.address, 1]));
        assert_eq!(
            to_sats(&received),
            expected.received,
            "received by {}",
            address.address
        );
    }
}
