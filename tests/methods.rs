//! The transaction, fee and server methods end to end, on a real regtest litecoind:
//! merkle proofs checked against the daemon's merkle roots, transactions as the daemon
//! serves them, broadcasts the daemon accepts and rejects, fee estimates per protocol
//! version, and the `server.*` methods with the configuration they report. Through the
//! electrum-client crate (what wallets use) and a raw socket (exact error codes, older
//! protocol versions).

mod support;

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::hex::{DisplayHex, FromHex};
use electrum_client::{Client, ElectrumApi, EstimationMode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::chain_builder::{ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;

const READY: Duration = Duration::from_secs(120);
const BANNER: &str = "Welcome to $SERVER_SUBVERSION ($SERVER_VERSION) on $DAEMON_SUBVERSION \
                      $DAEMON_VERSION; donate to $DONATION_ADDRESS\n";
const DONATION: &str = "rltc1qdonationaddressxxxxxxxxxxxxxxxxxxx";
const REPORT_SERVICES: &str = "tcp://electrum.example.com:50001,ssl://electrum.example.com:50002";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

/// A raw client that negotiated `protocol`.
fn raw(server: &FerrumxProcess, protocol: &str) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect to ferrumx");
    let agreed = client.handshake(protocol).expect("server.version");
    assert_eq!(agreed[1], json!(protocol));
    client
}

fn wait_for_tip(server: &FerrumxProcess, node: &Litecoind) {
    let expected = node.height();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = raw(server, "1.6");
    loop {
        let tip = client
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe");
        if tip["height"] == json!(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ferrumx stuck at {tip} (daemon at {expected}); log:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's error message for a call expected to fail.
fn daemon_rejection(node: &Litecoind, method: &str, params: Value) -> String {
    match node.try_call(method, params) {
        Err(bitcoincore_rpc::Error::JsonRpc(bitcoincore_rpc::jsonrpc::Error::Rpc(e))) => e.message,
        other => panic!("{method} was expected to fail, got {other:?}"),
    }
}

/// The merkle root from a leaf and its branch, computed here rather than by ferrumx.
fn root_from_branch(txid: &str, branch: &[[u8; 32]], mut pos: usize) -> String {
    let mut node = txid.parse::<sha256d::Hash>().expect("txid").to_byte_array();
    for sibling in branch {
        let mut engine = sha256d::Hash::engine();
        if pos.is_multiple_of(2) {
            engine.input(&node);
            engine.input(sibling);
        } else {
            engine.input(sibling);
            engine.input(&node);
        }
        node = sha256d::Hash::from_engine(engine).to_byte_array();
        pos /= 2;
    }
    sha256d::Hash::from_byte_array(node).to_string()
}

fn branch_of(hexes: &Value) -> Vec<[u8; 32]> {
    hexes
        .as_array()
        .expect("merkle is a list")
        .iter()
        .map(|h| {
            let hash: sha256d::Hash = h.as_str().expect("hex").parse().expect("hash");
            hash.to_byte_array()
        })
        .collect()
}

#[test]
fn transaction_fee_and_server_methods() {
    let started = Instant::now();
    let node = Litecoind::start();
    let chain = build_mixed_chain(&node, &ChainSpec::small());
    eprintln!("chain of {} blocks built in {:?}", chain.tip, chain.elapsed);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("banner.txt"), BANNER).expect("write banner");
    let mut server = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        dir.path(),
        &[
            ("DAEMON_POLL_INTERVAL_BLOCKS", "100"),
            // Relative: ElectrumX reads it from DB_DIRECTORY.
            ("BANNER_FILE", "banner.txt"),
            ("DONATION_ADDRESS", DONATION),
            ("REPORT_SERVICES", REPORT_SERVICES),
            ("PEER_ANNOUNCE", ""),
        ],
    );
    server.wait_ready(READY);
    wait_for_tip(&server, &node);
    let electrum = Client::new(&format!("tcp://{}", server.tcp_addr())).expect("electrum client");

    proofs_and_positions(&server, &node, &electrum);
    transactions_as_the_daemon_serves_them(&server, &node, &electrum);
    broadcasts(&server, &node, &electrum);
    fees_per_protocol_version(&server, &node, &electrum);
    server_methods(&server, &node, &electrum);
    eprintln!("done in {:?}", started.elapsed());
}

/// Every transaction of every block: get_merkle and id_from_pos, proofs checked against
/// the merkle root in the daemon's header.
fn proofs_and_positions(server: &FerrumxProcess, node: &Litecoind, electrum: &Client) {
    let mut client = raw(server, "1.6");
    let mut checked = 0;
    for height in 0..=node.height() {
        let hash = node.call("getblockhash", json!([height]));
        let block = node.call("getblock", json!([hash, 1]));
        let root = block["merkleroot"]
            .as_str()
            .expect("merkleroot")
            .to_string();
        let txids: Vec<String> = block["tx"]
            .as_array()
            .expect("tx")
            .iter()
            .map(|t| t.as_str().expect("txid").to_string())
            .collect();
        let mut requests = Vec::new();
        for (pos, txid) in txids.iter().enumerate() {
            requests.push(("blockchain.transaction.get_merkle", json!([txid, height])));
            requests.push(("blockchain.transaction.id_from_pos", json!([height, pos])));
            requests.push((
                "blockchain.transaction.id_from_pos",
                json!([height, pos, true]),
            ));
        }
        let answers = client.batch(&requests);
        for (pos, txid) in txids.iter().enumerate() {
            let merkle = answers[3 * pos].as_ref().expect("get_merkle");
            assert_eq!(merkle["block_height"], json!(height));
            assert_eq!(merkle["pos"], json!(pos));
            let branch = branch_of(&merkle["merkle"]);
            assert_eq!(
                root_from_branch(txid, &branch, pos),
                root,
                "proof of {txid}"
            );
            assert_eq!(answers[3 * pos + 1].as_ref().expect("id_from_pos"), txid);
            let with_merkle = answers[3 * pos + 2].as_ref().expect("id_from_pos merkle");
            assert_eq!(with_merkle["tx_hash"], json!(txid));
            assert_eq!(with_merkle["merkle"], merkle["merkle"]);
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} transactions");

    // The electrum-client crate reads the same answers.
    let height = node.height() / 2;
    let txid: bitcoin::Txid = electrum
        .txid_from_pos(height as usize, 0)
        .expect("txid_from_pos");
    let proof = electrum
        .transaction_get_merkle(&txid, height as usize)
        .expect("get_merkle");
    let with_merkle = electrum
        .txid_from_pos_with_merkle(height as usize, 0)
        .expect("txid_from_pos_with_merkle");
    assert_eq!(with_merkle.tx_hash, txid);
    assert_eq!(with_merkle.merkle, proof.merkle);
    let header = node.call(
        "getblockheader",
        json!([node.call("getblockhash", json!([height])), true]),
    );
    assert_eq!(
        root_from_branch(&txid.to_string(), &proof.merkle, proof.pos),
        header["merkleroot"].as_str().expect("merkleroot")
    );

    let tip = node.height();
    let some_tx = node.call(
        "getblock",
        json!([node.call("getblockhash", json!([tip])), 1]),
    )["tx"][0]
        .clone();
    let errors = [
        (
            "blockchain.transaction.get_merkle",
            json!([some_tx, tip - 1]),
            format!(
                "tx {} not in block at height {}",
                some_tx.as_str().expect("txid"),
                tip - 1
            ),
        ),
        (
            "blockchain.transaction.get_merkle",
            json!([some_tx, 1_000_000]),
            "height 1,000,000 out of range".to_string(),
        ),
        (
            "blockchain.transaction.get_merkle",
            json!(["xyz", 1]),
            "xyz should be a transaction hash".to_string(),
        ),
        (
            "blockchain.transaction.id_from_pos",
            json!([tip, 1000]),
            format!("no tx at position 1,000 in block at height {tip}"),
        ),
        (
            "blockchain.transaction.id_from_pos",
            json!([2000, 0]),
            format!("db error: DBError('block 2,000 not on disk (>{tip})')"),
        ),
        (
            "blockchain.transaction.id_from_pos",
            json!([1, 0, "yes"]),
            "\"merkle\" must be a boolean".to_string(),
        ),
        (
            "blockchain.transaction.id_from_pos",
            json!([1, -1]),
            "-1 should be a non-negative integer".to_string(),
        ),
    ];
    for (method, params, message) in errors {
        assert_eq!(
            client.call(method, params.clone()),
            Err((1, message)),
            "{method} {params}"
        );
    }
    // Without a height (Fulcrum's extra) the index finds the block.
    assert_eq!(
        client.call("blockchain.transaction.get_merkle", json!([some_tx])),
        client.call("blockchain.transaction.get_merkle", json!([some_tx, tip]))
    );
    let arity = client.call("blockchain.transaction.get_merkle", json!([]));
    assert_eq!(arity.map_err(|e| e.0), Err(-32602));
}

/// `blockchain.transaction.get` returns what the daemon returns for the transaction's
/// block, verbose included.
fn transactions_as_the_daemon_serves_them(
    server: &FerrumxProcess,
    node: &Litecoind,
    electrum: &Client,
) {
    let mut client = raw(server, "1.6");
    let tip = node.height();
    for height in [1, tip / 3, tip / 2, tip] {
        let hash = node.call("getblockhash", json!([height]));
        let block = node.call("getblock", json!([hash, 1]));
        let txids = block["tx"].as_array().expect("tx");
        for txid in [txids.first(), txids.last()].into_iter().flatten() {
            let hex = node.call("getrawtransaction", json!([txid, false, hash]));
            assert_eq!(
                client.call("blockchain.transaction.get", json!([txid])),
                Ok(hex.clone())
            );
            let parsed: bitcoin::Txid = txid.as_str().expect("txid").parse().expect("txid");
            let raw_tx = electrum.transaction_get_raw(&parsed).expect("get raw");
            assert_eq!(raw_tx.to_lower_hex_string(), hex.as_str().expect("hex"));
            let mut verbose = node.call("getrawtransaction", json!([txid, true, hash]));
            verbose
                .as_object_mut()
                .expect("verbose tx")
                .remove("in_active_chain");
            assert_eq!(
                client.call("blockchain.transaction.get", json!([txid, true])),
                Ok(verbose)
            );
        }
    }
    let unknown = "ab".repeat(32);
    assert_eq!(
        client.call("blockchain.transaction.get", json!([unknown])),
        Err((
            2,
            "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or blockchain \
             transaction. Use gettransaction for wallet transactions.'})"
                .to_string()
        ))
    );
    assert_eq!(
        client.call("blockchain.transaction.get", json!(["ab", false])),
        Err((1, "ab should be a transaction hash".to_string()))
    );
    assert_eq!(
        client.call("blockchain.transaction.get", json!([unknown, "yes"])),
        Err((1, "\"verbose\" must be a boolean".to_string()))
    );
}

/// A wallet-signed transaction reaches the daemon's mempool and is then served; a
/// conflicting one and garbage are rejected with the daemon's reasons.
fn broadcasts(server: &FerrumxProcess, node: &Litecoind, electrum: &Client) {
    let mut client = raw(server, "1.6");
    let pay = |amount: &str| {
        let address = node.call("getnewaddress", json!([]));
        let raw = node.call(
            "createrawtransaction",
            json!([[], {address.as_str().expect("address"): amount}]),
        );
        let funded = node.call("fundrawtransaction", json!([raw]))["hex"].clone();
        node.call("signrawtransactionwithwallet", json!([funded]))["hex"]
            .as_str()
            .expect("signed hex")
            .to_string()
    };
    let signed = pay("1.5");
    let bytes = Vec::<u8>::from_hex(&signed).expect("hex");
    let txid = electrum
        .transaction_broadcast_raw(&bytes)
        .expect("broadcast");
    let expected_txid = node.call("decoderawtransaction", json!([signed]))["txid"].clone();
    assert_eq!(json!(txid.to_string()), expected_txid);
    let mempool = node.call("getrawmempool", json!([]));
    assert!(
        mempool
            .as_array()
            .expect("mempool")
            .contains(&expected_txid),
        "{txid} not in the daemon's mempool"
    );
    assert_eq!(
        client.call("blockchain.transaction.get", json!([expected_txid])),
        Ok(json!(signed))
    );

    // The same inputs spent again: the daemon refuses the conflict.
    let decoded = node.call("decoderawtransaction", json!([signed]));
    let input = &decoded["vin"][0];
    let address = node.call("getnewaddress", json!([]));
    let conflict = node.call(
        "createrawtransaction",
        json!([[{"txid": input["txid"], "vout": input["vout"]}], {address.as_str().expect("address"): "0.1"}]),
    );
    let conflict = node.call("signrawtransactionwithwallet", json!([conflict]))["hex"]
        .as_str()
        .expect("hex")
        .to_string();
    for raw_tx in [conflict.as_str(), "00", ""] {
        let reason = daemon_rejection(node, "sendrawtransaction", json!([raw_tx]));
        assert_eq!(
            client.call("blockchain.transaction.broadcast", json!([raw_tx])),
            Err((
                1,
                format!("the transaction was rejected by network rules.\n\n{reason}\n[{raw_tx}]")
            )),
            "broadcast of {raw_tx:?}"
        );
    }
    assert_eq!(
        client.call("blockchain.transaction.broadcast", json!(["zz"])),
        Err((1, "zz should be a hex string".to_string()))
    );

    // litecoind has no submitpackage: rejected as ElectrumX reports a daemon error.
    let reason = daemon_rejection(node, "submitpackage", json!([[conflict]]));
    assert_eq!(
        client.call(
            "blockchain.transaction.broadcast_package",
            json!([[pay("0.2")]])
        ),
        Err((
            1,
            format!("the tx package was rejected by network rules.\n\n{reason}.")
        ))
    );
    assert_eq!(
        client.call("blockchain.transaction.broadcast_package", json!(["00"])),
        Err((1, "00 should be a list".to_string()))
    );
    let mut old = raw(server, "1.4");
    assert_eq!(
        old.call("blockchain.transaction.broadcast_package", json!([[]])),
        Err((
            -32601,
            "unknown method \"blockchain.transaction.broadcast_package\"".to_string()
        ))
    );
}

/// estimatefee at every version; relayfee only before 1.6, mempool.get_info from 1.6.
fn fees_per_protocol_version(server: &FerrumxProcess, node: &Litecoind, electrum: &Client) {
    let daemon_estimate = |params: Value| {
        let estimate = node.call("estimatesmartfee", params);
        estimate.get("feerate").cloned().unwrap_or(json!(-1))
    };
    let fee = electrum.estimate_fee(2, None).expect("estimatefee");
    assert_eq!(json!(fee), daemon_estimate(json!([2])));
    let fee = electrum
        .estimate_fee(6, Some(EstimationMode::Economical))
        .expect("estimatefee economical");
    assert_eq!(json!(fee), daemon_estimate(json!([6, "ECONOMICAL"])));
    assert!(
        electrum.relay_fee().is_err(),
        "relayfee is gone in protocol 1.6"
    );

    let mut new = raw(server, "1.6");
    assert_eq!(
        new.call("blockchain.estimatefee", json!([3, "conservative"])),
        Ok(daemon_estimate(json!([3, "CONSERVATIVE"])))
    );
    assert_eq!(
        new.call("blockchain.estimatefee", json!([3, "fast"])),
        Err((1, "unknown estimatefee mode: FAST".to_string()))
    );
    assert_eq!(
        new.call("blockchain.estimatefee", json!(["x"])),
        Err((1, "x should be a non-negative integer".to_string()))
    );
    assert_eq!(
        new.call("blockchain.relayfee", json!([])),
        Err((-32601, "unknown method \"blockchain.relayfee\"".to_string()))
    );
    let mempool_info = node.call("getmempoolinfo", json!([]));
    let expected = match mempool_info.get("incrementalrelayfee") {
        Some(incremental) => Ok(json!({
            "mempoolminfee": mempool_info["mempoolminfee"],
            "minrelaytxfee": mempool_info["minrelaytxfee"],
            "incrementalrelayfee": incremental,
        })),
        // litecoind 0.21: ElectrumX fails on the missing field.
        None => Err((-32603, "internal server error".to_string())),
    };
    assert_eq!(new.call("mempool.get_info", json!([])), expected);

    let mut old = raw(server, "1.4");
    let relayfee = node.call("getnetworkinfo", json!([]))["relayfee"].clone();
    assert_eq!(old.call("blockchain.relayfee", json!([])), Ok(relayfee));
    assert_eq!(
        old.call("blockchain.estimatefee", json!([2])),
        Ok(daemon_estimate(json!([2])))
    );
    assert_eq!(
        old.call("mempool.get_info", json!([])),
        Err((-32601, "unknown method \"mempool.get_info\"".to_string()))
    );
    assert_eq!(
        old.call("blockchain.relayfee", json!([1])).map_err(|e| e.0),
        Err(-32602)
    );
}

/// server.features, banner, donation address and peers, as configured.
fn server_methods(server: &FerrumxProcess, node: &Litecoind, electrum: &Client) {
    electrum.ping().expect("ping");
    let features = electrum.server_features().expect("server.features");
    assert_eq!(features.protocol_min, "1.4");
    assert_eq!(features.protocol_max, "1.7.0");
    assert_eq!(features.hash_function.as_deref(), Some("sha256"));
    assert_eq!(features.pruning, None);
    let genesis = node.call("getblockhash", json!([0]));
    assert_eq!(
        features.genesis_hash.to_lower_hex_string(),
        genesis.as_str().expect("hash")
    );

    let mut client = raw(server, "1.6");
    let version = client
        .call("server.version", json!(["again", "1.6"]))
        .map_err(|e| e.0);
    assert_eq!(version, Err(1), "server.version is answered once");
    let features = client.call("server.features", json!([])).expect("features");
    assert_eq!(
        features,
        json!({
            "hosts": {"electrum.example.com": {"tcp_port": 50001, "ssl_port": 50002}},
            "pruning": null,
            "server_version": format!("ferrumx {}", env!("CARGO_PKG_VERSION")),
            "protocol_min": "1.4",
            "protocol_max": "1.7.0",
            "genesis_hash": genesis,
            "hash_function": "sha256",
            "services": ["tcp://electrum.example.com:50001", "ssl://electrum.example.com:50002"],
        })
    );

    let info = node.call("getnetworkinfo", json!([]));
    let n = info["version"].as_i64().expect("version");
    let version = env!("CARGO_PKG_VERSION");
    let expected = format!(
        "Welcome to ferrumx {version} ({version}) on {} {}.{}.{}; donate to {DONATION}\n",
        info["subversion"].as_str().expect("subversion"),
        n / 10_000,
        n % 10_000 / 100,
        n % 100
    );
    assert_eq!(client.call("server.banner", json!([])), Ok(json!(expected)));
    assert_eq!(
        client.call("server.donation_address", json!([])),
        Ok(json!(DONATION))
    );
    assert_eq!(
        client.call("server.peers.subscribe", json!([])),
        Ok(json!([]))
    );
    assert_eq!(
        client.call("server.add_peer", json!([features])),
        Ok(json!(false))
    );
    for (method, params) in [
        ("server.banner", json!([1])),
        ("server.features", json!({"x": 1})),
        ("server.add_peer", json!([])),
        ("server.donation_address", json!([1, 2])),
    ] {
        assert_eq!(
            client.call(method, params.clone()).map_err(|e| e.0),
            Err(-32602),
            "{method} {params}"
        );
    }
}
