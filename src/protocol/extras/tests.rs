use super::*;
use crate::chain::{ParsedTx, TxOutput};
use crate::coins;
use crate::protocol::context::DaemonCall;
use crate::protocol::methods::{answer_with, answered, call, call_with};
use crate::protocol::server::ServerInfo;
use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock};
use crate::protocol::version::ProtocolVersion;
use std::sync::Arc;

fn script(tag: &str) -> ScriptHash {
    ScriptHash::from_script(tag.as_bytes())
}

/// Genesis, then three blocks of two transactions each paying 1,000 to `script("a")`,
/// and one mempool transaction spending the first of them and paying `script("b")`.
fn fixture() -> (Fixture, Vec<FixtureBlock>, Txid) {
    fixture_with(ServerInfo::new(
        coins::lookup("Bitcoin", "mainnet").unwrap(),
    ))
}

fn fixture_with(server: ServerInfo) -> (Fixture, Vec<FixtureBlock>, Txid) {
    let blocks: Vec<FixtureBlock> = (1..=3)
        .map(|tag| FixtureBlock {
            pays_to: Some(script("a").hashx()),
            ..FixtureBlock::synthetic(tag, 2)
        })
        .collect();
    let fixture = Fixture::new(Arc::new(server), &blocks);
    let spent = OutPoint {
        txid: blocks[0].txids[0],
        vout: 0,
    };
    let mempool_txid = FixtureBlock::synthetic(9, 1).txids[0];
    let (_, dropped) = fixture.mempool.write().unwrap().add(
        vec![ParsedTx {
            txid: mempool_txid,
            is_coinbase: false,
            inputs: vec![spent],
            outputs: vec![TxOutput {
                hashx: Some(script("b").hashx()),
                value: 900,
            }],
            vsize: 100,
        }],
        |prevout| (*prevout == spent).then(|| (script("a").hashx(), 1000)),
    );
    assert_eq!(dropped, 0);
    (fixture, blocks, mempool_txid)
}

fn no_daemon(method: &str, _: &[Value]) -> Result<Value, DaemonError> {
    panic!("unexpected daemon call {method}")
}

fn error(ctx: &QueryContext, method: &str, params: Value) -> (i64, String) {
    let err = call(ctx, method, &params).unwrap_err();
    (err.code, err.message)
}

#[test]
fn history_ranges_follow_fulcrum() {
    let (fixture, blocks, mempool_txid) = fixture();
    let a = script("a").to_hex();
    let history = |params: Value| {
        fixture.query(|ctx| call(ctx, "blockchain.scripthash.get_history", &params).unwrap())
    };
    let heights = |params: Value| -> Vec<i64> {
        history(params)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["height"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(heights(json!([a])), [1, 1, 2, 2, 3, 3, 0]);
    assert_eq!(heights(json!([a, 2])), [2, 2, 3, 3, 0]);
    assert_eq!(heights(json!([a, 2, -1])), [2, 2, 3, 3, 0]);
    // to_height is excluded, and with it the mempool.
    assert_eq!(heights(json!([a, 1, 3])), [1, 1, 2, 2]);
    assert_eq!(heights(json!([a, 2, 2])), Vec::<i64>::new());
    assert_eq!(heights(json!([a, "2", " 3 "])), [2, 2]);
    assert_eq!(heights(json!({"scripthash": a, "to_height": 2})), [1, 1]);
    assert_eq!(heights(json!([a, 100])), [0]);
    assert_eq!(
        history(json!([a, 3]))[0]["tx_hash"],
        json!(blocks[2].txids[0].to_string())
    );
    assert_eq!(
        history(json!([a, 3]))[2]["tx_hash"],
        json!(mempool_txid.to_string())
    );
    fixture.query(|ctx| {
        let method = "blockchain.scripthash.get_history";
        let bad_from = (-32602, "Bad from_height argument".to_string());
        let bad_to = (-32602, "Bad to_height argument".to_string());
        for from in [
            json!(-1),
            json!("x"),
            json!(null),
            json!(true),
            json!(1.5),
            json!(1u64 << 31),
        ] {
            assert_eq!(error(ctx, method, json!([a, from])), bad_from, "{from}");
        }
        for to in [json!(-2), json!(0), json!("y"), json!(null), json!([])] {
            assert_eq!(error(ctx, method, json!([a, 1, to])), bad_to, "{to}");
        }
        // The script hash is checked first, with ElectrumX's message.
        assert_eq!(
            error(ctx, method, json!(["x", -1])),
            (1, "x is not a valid script hash".into())
        );
        assert_eq!(error(ctx, method, json!([a, 0, 0, 0])).0, -32602);
    });
}

#[test]
fn first_use_is_the_first_confirmed_tx_or_a_mempool_payment() {
    let (fixture, blocks, mempool_txid) = fixture();
    fixture.query(|ctx| {
        let first = |script: ScriptHash| {
            call(
                ctx,
                "blockchain.scripthash.get_first_use",
                &json!([script.to_hex()]),
            )
            .unwrap()
        };
        let block_1 = header_hash(&ctx.snapshot.header(1).unwrap().unwrap());
        assert_eq!(
            first(script("a")),
            json!({"block_hash": block_1.to_string(), "height": 1, "block_height": 1,
                   "tx_hash": blocks[0].txids[0].to_string()})
        );
        assert_eq!(
            first(script("b")),
            json!({"block_hash": "00".repeat(32), "height": 0, "block_height": 0,
                   "tx_hash": mempool_txid.to_string()})
        );
        assert_eq!(first(script("c")), Value::Null);
        // Surrounding white space is fine, a longer string is not (Fulcrum reads its
        // first 64 characters).
        let padded = format!(" {} ", script("a").to_hex());
        assert!(call(ctx, "blockchain.scripthash.get_first_use", &json!([padded])).is_ok());
        for bad in [
            json!(format!("{}00", script("a").to_hex())),
            json!(5),
            json!(null),
        ] {
            assert_eq!(
                error(ctx, "blockchain.scripthash.get_first_use", json!([bad])),
                (1, "Invalid scripthash".into())
            );
        }
    });
}

#[test]
fn headers_by_height_hash_and_tip() {
    let (fixture, _, _) = fixture();
    fixture.query(|ctx| {
        let header = |h| to_hex(&ctx.snapshot.header(h).unwrap().unwrap());
        let hash_2 = header_hash(&ctx.snapshot.header(2).unwrap().unwrap());
        assert_eq!(
            call(ctx, "blockchain.headers.get_tip", &json!([])).unwrap(),
            json!({"height": 3, "hex": header(3)})
        );
        assert_eq!(
            call(ctx, "blockchain.header.get", &json!([1])).unwrap(),
            json!({"height": 1, "hex": header(1)})
        );
        let method = "blockchain.header.get";
        assert_eq!(
            error(ctx, method, json!([4])),
            (1, "Height 4 is out of range".into())
        );
        for bad in [json!(-1), json!(1.5), json!(1u64 << 31)] {
            assert_eq!(
                error(ctx, method, json!([bad])),
                (1, "Invalid height".into())
            );
        }
        for bad in [json!(true), json!(null), json!([1])] {
            assert_eq!(
                error(ctx, method, json!([bad])),
                (-32602, "Invalid height or hash specified".into())
            );
        }
        assert_eq!(
            error(ctx, method, json!(["4"])),
            (1, "Invalid block hash".into())
        );
        // By hash: the daemon gives the height, the index the header.
        let mut daemon = |method: &str, args: &[Value]| {
            assert_eq!(method, "getblockheader");
            match args[0].as_str() {
                Some(h) if h == hash_2.to_string() => Ok(json!({"height": 2, "confirmations": 2})),
                Some(h) if h == "11".repeat(32) => Ok(json!({"height": 2, "confirmations": -1})),
                // Another block at height 2 (the daemon is ahead, mid reorg).
                Some(h) if h == "22".repeat(32) => Ok(json!({"height": 2, "confirmations": 1})),
                Some(h) if h == "33".repeat(32) => Ok(json!({"height": 9, "confirmations": 1})),
                _ => Err(DaemonError::Rpc {
                    code: -5,
                    message: "Block not found".into(),
                }),
            }
        };
        let mut by_hash = |hash: String| {
            call_with(ctx, method, &json!([hash]), &mut daemon).map_err(|e| (e.code, e.message))
        };
        assert_eq!(
            by_hash(hash_2.to_string().to_uppercase()),
            Ok(json!({"height": 2, "hex": header(2)}))
        );
        let not_active = Err((1, "Block not in active chain".to_string()));
        assert_eq!(by_hash("11".repeat(32)), not_active);
        assert_eq!(by_hash("22".repeat(32)), not_active);
        assert_eq!(
            by_hash("33".repeat(32)),
            Err((1, "Height 9 is out of range".into()))
        );
        assert_eq!(by_hash("44".repeat(32)), Err((2, "Block not found".into())));
    });
}

#[test]
fn header_prices_count_the_daemon_lookup() {
    let (fixture, _, _) = fixture();
    fixture.query(|ctx| {
        let mut daemon = |_: &str, _: &[Value]| Ok(json!({"height": 1, "confirmations": 3}));
        let hash = header_hash(&ctx.snapshot.header(1).unwrap().unwrap()).to_string();
        let cost = |params: Value, daemon: &mut DaemonCall| {
            answered(answer_with(ctx, "blockchain.header.get", &params, daemon)).cost
        };
        assert_eq!(cost(json!([1]), &mut no_daemon), 0.25);
        assert_eq!(cost(json!([hash]), &mut daemon), 1.25);
    });
}

#[test]
fn transaction_heights_and_blocks() {
    let (fixture, blocks, mempool_txid) = fixture();
    fixture.query(|ctx| {
        let confirmed = blocks[1].txids[1].to_string();
        let unknown = "ab".repeat(32);
        let height = |txid: &str| {
            call(ctx, "blockchain.transaction.get_height", &json!([txid]))
                .map_err(|e| (e.code, e.message))
        };
        assert_eq!(height(&confirmed), Ok(json!(2)));
        assert_eq!(height(&mempool_txid.to_string()), Ok(json!(0)));
        assert_eq!(
            height(&unknown),
            Err((
                1,
                "No transaction matching the requested hash was found".into()
            ))
        );
        assert_eq!(height("zz"), Err((1, "Invalid tx hash".into())));

        let method = "blockchain.transaction.get_confirmed_blockhash";
        let header_2 = ctx.snapshot.header(2).unwrap().unwrap();
        let expected = json!({"block_hash": header_hash(&header_2).to_string(), "block_height": 2});
        assert_eq!(call(ctx, method, &json!([confirmed])).unwrap(), expected);
        assert_eq!(call(ctx, method, &json!([confirmed, 0])).unwrap(), expected);
        let mut with_header = expected.clone();
        with_header["block_header"] = json!(to_hex(&header_2));
        assert_eq!(
            call(ctx, method, &json!([confirmed, true])).unwrap(),
            with_header
        );
        assert_eq!(
            call(ctx, method, &json!([confirmed, 2.5])).unwrap(),
            with_header
        );
        for bad in [json!("true"), json!(null), json!([])] {
            assert_eq!(
                error(ctx, method, json!([confirmed, bad])),
                (1, "Invalid second argument; expected boolean".into())
            );
        }
        for txid in [mempool_txid.to_string(), unknown] {
            assert_eq!(error(ctx, method, json!([txid])), (1, NOT_CONFIRMED.into()));
        }
    });
}

#[test]
fn merkle_without_a_height_finds_the_block() {
    let (fixture, blocks, mempool_txid) = fixture();
    fixture.query(|ctx| {
        let txid = blocks[2].txids[1].to_string();
        let method = "blockchain.transaction.get_merkle";
        let with_height = call(ctx, method, &json!([txid, 3])).unwrap();
        assert_eq!(call(ctx, method, &json!([txid])).unwrap(), with_height);
        assert_eq!(
            call(ctx, method, &json!({"tx_hash": txid})).unwrap(),
            with_height
        );
        assert_eq!(
            error(ctx, method, json!([mempool_txid.to_string()])),
            (1, NOT_CONFIRMED.into())
        );
        // A height given is still ElectrumX's.
        assert_eq!(
            error(ctx, method, json!([txid, null])),
            (1, "None should be a non-negative integer".into())
        );
    });
}

#[test]
fn subscriptions_are_effects_with_their_status() {
    let (fixture, blocks, mempool_txid) = fixture();
    fixture.query(|ctx| {
        let subscribe = |txid: Txid| {
            let answer = answered(answer_with(
                ctx,
                "blockchain.transaction.subscribe",
                &json!([txid.to_string()]),
                &mut no_daemon,
            ));
            (answer.result.unwrap(), answer.effect)
        };
        let confirmed = blocks[0].txids[1];
        assert_eq!(
            subscribe(confirmed),
            (
                json!(1),
                Some(Effect::SubscribeTx {
                    txid: confirmed,
                    status: json!(1)
                })
            )
        );
        assert_eq!(subscribe(mempool_txid).0, json!(0));
        let unknown = FixtureBlock::synthetic(7, 1).txids[0];
        assert_eq!(subscribe(unknown).0, Value::Null);
        let unsubscribed = answered(answer_with(
            ctx,
            "blockchain.transaction.unsubscribe",
            &json!([unknown.to_string()]),
            &mut no_daemon,
        ));
        assert_eq!(
            unsubscribed.effect,
            Some(Effect::UnsubscribeTx { txid: unknown })
        );
        assert_eq!(
            error(ctx, "blockchain.transaction.subscribe", json!([1])),
            (1, "Invalid tx hash".into())
        );
        let headers = answered(answer_with(
            ctx,
            "blockchain.headers.unsubscribe",
            &json!([]),
            &mut no_daemon,
        ));
        assert_eq!(headers.effect, Some(Effect::UnsubscribeHeaders));
    });
}

#[test]
fn utxo_info_of_confirmed_mempool_and_spent_outputs() {
    let (fixture, blocks, mempool_txid) = fixture();
    fixture.query(|ctx| {
        let asked = std::cell::RefCell::new(Vec::new());
        let mut daemon = |method: &str, args: &[Value]| {
            assert_eq!(method, "gettxout");
            asked.borrow_mut().push(args.to_vec());
            let tag = if args[0] == json!(mempool_txid.to_string()) {
                "b"
            } else {
                "a"
            };
            Ok(json!({"scriptPubKey": {"hex": to_hex(tag.as_bytes())}}))
        };
        let mut info = |txid: &Txid, vout: Value| {
            call_with(
                ctx,
                "blockchain.utxo.get_info",
                &json!([txid.to_string(), vout]),
                &mut daemon,
            )
            .map_err(|e| (e.code, e.message))
        };
        assert_eq!(
            info(&blocks[1].txids[0], json!(0)),
            Ok(json!({"value": 1000, "scripthash": script("a").to_hex(), "confirmed_height": 2}))
        );
        assert_eq!(
            info(&mempool_txid, json!("0")),
            Ok(json!({"value": 900, "scripthash": script("b").to_hex()}))
        );
        // Spent by the mempool transaction, past the outputs, unknown: null.
        assert_eq!(info(&blocks[0].txids[0], json!(0)), Ok(Value::Null));
        assert_eq!(info(&blocks[1].txids[0], json!(1)), Ok(Value::Null));
        assert_eq!(info(&mempool_txid, json!(1)), Ok(Value::Null));
        assert_eq!(
            info(&FixtureBlock::synthetic(7, 1).txids[0], json!(0)),
            Ok(Value::Null)
        );
        let bad_n = Err((
            1,
            "Invalid tx out number: expected a value >= 0 and <= 4294967295".to_string(),
        ));
        for bad in [
            json!(-1),
            json!(1u64 << 32),
            json!("x"),
            json!(null),
            json!(false),
        ] {
            assert_eq!(info(&mempool_txid, bad), bad_n);
        }
        assert_eq!(
            asked.borrow().len(),
            2,
            "the daemon is asked only for unspent outputs"
        );
        assert_eq!(
            asked.borrow()[1],
            [json!(mempool_txid.to_string()), json!(0), json!(true)]
        );
    });
    // The daemon has it spent already: null. A script that is not the indexed one: an error.
    let (fixture, blocks, _) = self::fixture();
    fixture.query(|ctx| {
        let params = json!([blocks[1].txids[0].to_string(), 0]);
        let mut spent = |_: &str, _: &[Value]| Ok(Value::Null);
        assert_eq!(
            call_with(ctx, "blockchain.utxo.get_info", &params, &mut spent),
            Ok(Value::Null)
        );
        let mut other = |_: &str, _: &[Value]| Ok(json!({"scriptPubKey": {"hex": "00"}}));
        let err = call_with(ctx, "blockchain.utxo.get_info", &params, &mut other).unwrap_err();
        assert_eq!(err.code, RpcError::INTERNAL_ERROR);
    });
}

#[test]
fn passthrough_only_for_allowed_subnets_and_never_stop() {
    let mut server = ServerInfo::new(coins::lookup("Bitcoin", "mainnet").unwrap());
    server.passthrough_subnets = vec![crate::net::Subnet::parse("10.0.0.0/8").unwrap()];
    let (mut fixture, _, _) = fixture_with(server);
    let disabled = Err((-32601, "Method disabled for this client".to_string()));
    let mut daemon = |method: &str, args: &[Value]| match method {
        "getblockcount" => Ok(json!(args.len())),
        _ => Err(DaemonError::Rpc {
            code: -32601,
            message: "Method not found".into(),
        }),
    };
    let mut pass = |fixture: &Fixture, params: Value| {
        fixture.query(|ctx| {
            call_with(ctx, "daemon.passthrough", &params, &mut daemon)
                .map_err(|e| (e.code, e.message))
        })
    };
    let request = json!({"method": "getblockcount"});
    assert_eq!(
        pass(&fixture, request.clone()),
        disabled,
        "no client address"
    );
    fixture.client_ip = Some("192.168.1.1".parse().unwrap());
    assert_eq!(pass(&fixture, request.clone()), disabled);
    assert_eq!(
        pass(&fixture, json!({})),
        Err((-32602, "Required parameters missing".to_string())),
        "the parameters first"
    );
    fixture.client_ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(pass(&fixture, request), Ok(json!(0)));
    assert_eq!(
        pass(
            &fixture,
            json!({"method": "getblockcount", "params": [1, 2], "x": 1})
        ),
        Ok(json!(2))
    );
    assert_eq!(pass(&fixture, json!(["getblockcount", null])), Ok(json!(0)));
    assert_eq!(
        pass(&fixture, json!({"method": "nosuch"})),
        Err((2, "Method not found".into()))
    );
    assert_eq!(
        pass(&fixture, json!({"method": "stop"})),
        Err((
            1,
            "Method \"stop\" not allowed for daemon.passthrough".into()
        ))
    );
    let shape = Err((
        1,
        "Expected a dictionary of the form: { \"method\": \"string\", \"params\": [...] }"
            .to_string(),
    ));
    for bad in [json!({"method": 1}), json!({"method": "x", "params": {}})] {
        assert_eq!(pass(&fixture, bad), shape);
    }
}

#[test]
fn every_extra_is_served_from_protocol_1_4() {
    // The extras close the method table.
    let methods = crate::protocol::methods::METHODS;
    let first = methods
        .iter()
        .position(|m| m.name == "blockchain.headers.get_tip")
        .unwrap();
    assert_eq!(methods.len() - first, 10);
    let v1_4 = ProtocolVersion::new(&[1, 4]);
    for method in &methods[first..] {
        assert!(
            method.serves(&v1_4) && method.until.is_none(),
            "{}",
            method.name
        );
    }
}
