//! Property-based fuzzing (proptest) of what a hostile client or daemon controls: the
//! line framing, the JSON-RPC layer, argument validation and method dispatch (against a
//! real LMDB index built from real blocks), and the block and transaction parser (real
//! blocks from `tests/fixtures`, mutated).
//!
//! Properties: nothing panics; every malformed message gets the JSON-RPC error ElectrumX
//! gives (-32700 parse error, -32600 invalid request, -32601 method not found, -32602
//! invalid arguments; bad argument values are code 1, as ElectrumX); replies are valid
//! JSON of bounded size. The inputs in `tests/fuzz-corpus/` are replayed first, every run,
//! with their expected outcomes. Random cases per property: a few thousand by default
//! (`PROPTEST_CASES` or `FERRUMX_FUZZ_CASES` to run more).

use bytes::BytesMut;
use ferrumx::chain::{ParsedBlock, ParsedTx, parse_block, parse_tx};
use ferrumx::coins;
use ferrumx::daemon::{Daemon, DaemonPool, DaemonUrl};
use ferrumx::hashes::{ScriptHash, from_hex};
use ferrumx::index::Indexer;
use ferrumx::mempool::Mempool;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::context::{QueryContext, QueryState};
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message};
use ferrumx::protocol::methods;
use ferrumx::protocol::server::ServerInfo;
use ferrumx::protocol::version::ProtocolVersion;
use ferrumx::store::{Store, header_hash};
use ferrumx_actors::framing::LineCodec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Random cases per property unless `FERRUMX_FUZZ_CASES` or `PROPTEST_CASES` says
/// otherwise; the whole file stays well under a minute.
fn cases(default: u32) -> u32 {
    ["FERRUMX_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        // Failures are kept in the corpus by hand, with their expected outcome.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    })
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-corpus")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The raw bytes of a fixture (`block` or `hex` field of the daemon's JSON).
fn fixture_bytes(relative: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures_dir().join(relative)).expect("read fixture");
    let json: Value = serde_json::from_str(&text).expect("fixture JSON");
    let hex = json["block"]
        .as_str()
        .or(json["hex"].as_str())
        .expect("raw hex");
    from_hex(hex).expect("fixture hex")
}

const BLOCK_FIXTURES: [(&str, bool); 5] = [
    ("blocks/bitcoin_mainnet_951658.json", false),
    ("blocks/bitcoin_signet_31500.json", false),
    ("blocks/bitcoin_testnet4_40000.json", false),
    ("blocks/litecoin_mainnet_900000.json", true),
    ("blocks/litecoin_mainnet_2265985.json", true),
];

const TX_FIXTURES: [&str; 3] = [
    "transactions/bitcoin_regtest_001_p2wpkh.json",
    "transactions/bitcoin_testnet_001_mixed_nonsegwit_segwit_inputs.json",
    "transactions/bitcoin_testnet_002_presegwit.json",
];

// ---------------------------------------------------------------------------------------
// Framing

/// Feeds `chunks` to a codec as a socket would and returns the lines it yields.
fn frame(max_line: usize, chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut codec = LineCodec::new(max_line);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(line) = codec.decode(&mut buf).expect("decode never fails") {
            lines.push(line.to_vec());
        }
    }
    lines
}

/// What the framing must yield: every complete line of at most `max_line` bytes (one
/// trailing CR removed), in order; longer lines may be dropped, never cut or merged, and
/// one gets through only if it was within reach of a single read (`max_line` plus the
/// largest chunk).
fn check_framing(max_line: usize, chunks: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let got = frame(max_line, chunks);
    let stream: Vec<u8> = chunks.concat();
    let mut complete: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    complete.pop(); // the unterminated tail
    let largest_chunk = chunks.iter().map(Vec::len).max().unwrap_or(0);
    let expected: Vec<ExpectedLine> = complete
        .iter()
        .map(|line| ExpectedLine {
            text: line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
            required: line.len() <= max_line,
            may_pass: line.len() <= max_line + largest_chunk,
        })
        .collect();
    prop_assert!(
        framing_explains(&expected, &got),
        "the lines yielded {got:?} are not the short lines of the input in order, \
         with only some over-long ones: {expected:?}"
    );
    Ok(())
}

#[derive(Debug)]
struct ExpectedLine {
    text: Vec<u8>,
    /// Short enough that it must be yielded.
    required: bool,
    /// Over-long, yet short enough that it may be yielded.
    may_pass: bool,
}

/// Whether `got` is `expected` with some over-long lines left out. Matched by dynamic
/// programming, not greedily: a dropped over-long line may have the same text as the
/// short line after it (`}\r` then `}` with a limit of 1 byte).
fn framing_explains(expected: &[ExpectedLine], got: &[Vec<u8>]) -> bool {
    // explained[j]: the lines seen so far can yield exactly got[..j].
    let mut explained = vec![false; got.len() + 1];
    explained[0] = true;
    for line in expected {
        let mut next = vec![false; got.len() + 1];
        for j in 0..=got.len() {
            if !explained[j] {
                continue;
            }
            if !line.required {
                next[j] = true;
            }
            if (line.required || line.may_pass) && got.get(j) == Some(&line.text) {
                next[j + 1] = true;
            }
        }
        explained = next;
    }
    explained[got.len()]
}

fn chunks_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop_oneof![
        4 => Just(b'\n'),
        1 => Just(b'\r'),
        10 => any::<u8>(),
        10 => prop::sample::select(b"{}[]\":,abc0123 ".to_vec()),
    ];
    prop::collection::vec(prop::collection::vec(byte, 0..64), 0..24)
}

#[test]
fn framing_keeps_every_short_line_and_never_panics() {
    for (max_line, chunks) in corpus_framing() {
        check_framing(max_line, &chunks).expect("framing corpus");
    }
    let started = Instant::now();
    let mut runner = runner(4000);
    runner
        .run(&(1usize..80, chunks_strategy()), |(max_line, chunks)| {
            check_framing(max_line, &chunks)
        })
        .expect("framing property");
    eprintln!(
        "framing: {} cases in {:?}",
        runner.config().cases,
        started.elapsed()
    );
}

/// Framing inputs from the corpus: one per line, `max_line` then the chunks as hex
/// separated by `|`.
fn corpus_framing() -> Vec<(usize, Vec<Vec<u8>>)> {
    let text = std::fs::read_to_string(corpus_dir().join("framing.txt")).expect("framing.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (max, chunks) = l.split_once(' ').expect("max_line and chunks");
            let chunks = chunks
                .split('|')
                .map(|c| from_hex(c.trim()).expect("hex chunk"))
                .collect();
            (max.parse().expect("max_line"), chunks)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// JSON-RPC and dispatch over a real index

/// A real LMDB index: Bitcoin's genesis, then block 951658 of Bitcoin mainnet and block
/// 2265985 of Litecoin mainnet (their outputs; inputs dropped, since what they spend is
/// not in this index), then a block spending some of those outputs. The daemon URL
/// points at a closed port, so daemon-backed methods fail at once.
struct Index {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    server: ServerInfo,
    state: QueryState,
    daemon: DaemonPool,
    mempool: RwLock<Mempool>,
    scripthashes: Vec<String>,
    txids: Vec<String>,
}

impl Index {
    fn build() -> Index {
        let coin = coins::lookup("Bitcoin", "mainnet").expect("Bitcoin mainnet");
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = bitcoin::consensus::serialize(
            &bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header,
        );
        let genesis: [u8; 80] = genesis.try_into().expect("80-byte header");
        let genesis_hash = header_hash(&genesis);
        let store = Arc::new(
            Store::open(dir.path(), coin.name, coin.net, &genesis_hash).expect("open store"),
        );
        let mut indexer = Indexer::new(Arc::clone(&store), 10).expect("indexer");
        indexer
            .apply_genesis(genesis, &genesis_hash)
            .expect("genesis");
        let mut prev = genesis_hash;
        let mut scripthashes = Vec::new();
        let mut txids = Vec::new();
        let mut spendable = Vec::new();
        let mut blocks = Vec::new();
        for (fixture, mweb) in [
            ("blocks/bitcoin_mainnet_951658.json", false),
            ("blocks/litecoin_mainnet_2265985.json", true),
        ] {
            let raw = fixture_bytes(fixture);
            let parsed = parse_block(&raw, mweb).expect("fixture parses");
            if !mweb {
                let block: bitcoin::Block =
                    bitcoin::consensus::deserialize(&raw).expect("bitcoin block");
                for tx in &block.txdata {
                    for out in &tx.output {
                        scripthashes
                            .push(ScriptHash::from_script(out.script_pubkey.as_bytes()).to_hex());
                    }
                }
            }
            let txs: Vec<ParsedTx> = parsed
                .txs
                .into_iter()
                .map(|tx| ParsedTx {
                    inputs: Vec::new(),
                    ..tx
                })
                .collect();
            for tx in &txs {
                txids.push(tx.txid.to_string());
                for (vout, out) in tx.outputs.iter().enumerate() {
                    if out.hashx.is_some() && spendable.len() < 40 && !tx.is_coinbase {
                        spendable.push(bitcoin::OutPoint::new(tx.txid, vout as u32));
                    }
                }
            }
            blocks.push(txs);
        }
        // A block spending 40 of those outputs, one transaction each.
        let spends: Vec<ParsedTx> = spendable
            .iter()
            .enumerate()
            .map(|(i, outpoint)| ParsedTx {
                txid: bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::hash(&[i as u8, 7])),
                is_coinbase: i == 0,
                inputs: if i == 0 { Vec::new() } else { vec![*outpoint] },
                outputs: Vec::new(),
                vsize: 100,
            })
            .collect();
        blocks.push(spends);
        for (n, txs) in blocks.into_iter().enumerate() {
            let mut header = [0u8; 80];
            header[0] = 1;
            header[4..36].copy_from_slice(bitcoin::hashes::Hash::as_byte_array(&prev));
            header[36] = n as u8;
            let block = ParsedBlock {
                header,
                hash: header_hash(&header),
                prev_hash: prev,
                txs,
            };
            indexer.apply_block(&block, true).expect("apply block");
            prev = block.hash;
        }
        indexer.flush().expect("flush");
        let url = DaemonUrl::parse("http://user:pass@127.0.0.1:1/", 1, None).expect("url");
        let daemon =
            DaemonPool::new(Daemon::new(vec![url], Duration::from_secs(1)).expect("daemon"));
        scripthashes.sort();
        scripthashes.dedup();
        Index {
            _dir: dir,
            store,
            server: ServerInfo::new(coin),
            state: QueryState::default(),
            daemon,
            mempool: RwLock::default(),
            scripthashes,
            txids,
        }
    }

    fn query<R>(&self, protocol: &ProtocolVersion, f: impl FnOnce(&QueryContext) -> R) -> R {
        let snapshot = self.store.snapshot().expect("snapshot");
        let ctx = QueryContext {
            snapshot: &snapshot,
            protocol,
            history_limit: 1000,
            max_send: 99_100,
            server: &self.server,
            state: &self.state,
            daemon: &self.daemon,
            mempool_lock: &self.mempool,
            client_ip: None,
            inline: false,
        };
        f(&ctx)
    }
}

/// Methods the session answers itself (the method table answers only a repeated one).
const SESSION_METHODS: [&str; 1] = ["server.version"];

/// Methods the method table has at every protocol version from 1.4 to 1.6.
const METHODS: [&str; 29] = [
    "blockchain.block.header",
    "blockchain.block.headers",
    "blockchain.estimatefee",
    "blockchain.headers.subscribe",
    "blockchain.scripthash.get_balance",
    "blockchain.scripthash.get_history",
    "blockchain.scripthash.get_mempool",
    "blockchain.scripthash.listunspent",
    "blockchain.scripthash.subscribe",
    "blockchain.transaction.broadcast",
    "blockchain.transaction.get",
    "blockchain.transaction.get_merkle",
    "blockchain.transaction.id_from_pos",
    "mempool.get_fee_histogram",
    "server.add_peer",
    "server.banner",
    "server.donation_address",
    "server.features",
    "server.peers.subscribe",
    "server.ping",
    // Fulcrum's extras.
    "blockchain.headers.get_tip",
    "blockchain.headers.unsubscribe",
    "blockchain.header.get",
    "blockchain.scripthash.get_first_use",
    "blockchain.transaction.get_height",
    "blockchain.transaction.get_confirmed_blockhash",
    "blockchain.transaction.subscribe",
    "blockchain.transaction.unsubscribe",
    "blockchain.utxo.get_info",
];

/// Methods that ignore extra arguments, as Fulcrum's `daemon.passthrough` does.
const LENIENT_METHODS: [&str; 1] = ["daemon.passthrough"];

/// Methods of some protocol versions only.
const VERSIONED_METHODS: [&str; 4] = [
    "blockchain.scripthash.unsubscribe",
    "blockchain.relayfee",
    "mempool.get_info",
    "blockchain.transaction.broadcast_package",
];

/// Codes a method may answer with: ElectrumX's BAD_REQUEST (bad values), DAEMON_ERROR,
/// "history too large" and invalid arguments (arity, names).
const METHOD_ERROR_CODES: [i64; 4] = [
    RpcError::BAD_REQUEST,
    RpcError::DAEMON_ERROR,
    RpcError::HISTORY_TOO_LONG,
    RpcError::INVALID_ARGS,
];

/// Parameter names the methods take, so that named arguments sometimes bind.
const PARAM_NAMES: [&str; 23] = [
    "scripthash",
    "height",
    "cp_height",
    "start_height",
    "count",
    "tx_hash",
    "verbose",
    "merkle",
    "tx_pos",
    "number",
    "mode",
    "raw_tx",
    "raw_txs",
    "features",
    "client_name",
    "protocol_version",
    "from_height",
    "to_height",
    "block_hash",
    "include_header",
    "out_n",
    "method",
    "params",
];

fn json_leaf(index: &Index) -> BoxedStrategy<Value> {
    let hashes = index.scripthashes.clone();
    let txids = index.txids.clone();
    prop_oneof![
        prop::sample::select(hashes).prop_map(Value::String),
        prop::sample::select(txids).prop_map(Value::String),
        (0u64..6).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        prop::collection::vec(any::<u8>(), 0..90)
            .prop_map(|b| Value::String(ferrumx::hashes::to_hex(&b))),
        "[0-9a-fA-F]{60,68}".prop_map(Value::String),
        "[ -~]{0,20}".prop_map(Value::String),
        "-?[0-9_ ]{1,25}(\\.[0-9]{0,3})?".prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "1.4",
            "1.4.2",
            "1.6",
            "2",
            "1.0",
            "",
            "CONSERVATIVE",
            "economical"
        ])
        .prop_map(|s| Value::String(s.into())),
    ]
    .boxed()
}

fn json_value(index: &Index) -> BoxedStrategy<Value> {
    json_leaf(index)
        .prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,10}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

fn params_strategy(index: &Index) -> BoxedStrategy<Value> {
    let value = json_value(index);
    prop_oneof![
        4 => prop::collection::vec(json_leaf(index), 0..4).prop_map(Value::Array),
        2 => prop::collection::vec(value.clone(), 0..12).prop_map(Value::Array),
        2 => prop::collection::btree_map(
            prop_oneof![prop::sample::select(PARAM_NAMES.to_vec()).prop_map(String::from), "[a-z_]{1,8}"],
            json_leaf(index),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => value,
    ]
    .boxed()
}

fn method_strategy() -> BoxedStrategy<String> {
    let known: Vec<&str> = METHODS
        .iter()
        .chain(&VERSIONED_METHODS)
        .chain(&LENIENT_METHODS)
        .chain(&SESSION_METHODS)
        .copied()
        .collect();
    prop_oneof![
        6 => prop::sample::select(known.clone()).prop_map(String::from),
        // A known name with one character changed, added or dropped.
        2 => (prop::sample::select(known), any::<prop::sample::Index>(), any::<char>(), 0u8..3)
            .prop_map(|(name, at, c, how)| {
                let mut chars: Vec<char> = name.chars().collect();
                let i = at.index(chars.len());
                match how {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => {
                        chars.remove(i);
                    }
                }
                chars.into_iter().collect()
            }),
        1 => "[a-z._]{0,30}",
        1 => ".{0,20}",
    ]
    .boxed()
}

/// Runs one request as the session does (the method table, or "unknown method") and checks the
/// outcome; returns the serialized reply.
fn check_request(
    index: &Index,
    protocol: &ProtocolVersion,
    method: &str,
    params: &Value,
) -> Result<String, TestCaseError> {
    let found = methods::find(method, protocol).is_some();
    if METHODS.contains(&method) {
        prop_assert!(found, "{method} is not in the method table");
    }
    let known = [
        &METHODS[..],
        &VERSIONED_METHODS,
        &LENIENT_METHODS,
        &SESSION_METHODS,
    ]
    .concat();
    if !known.contains(&method) {
        prop_assert!(
            !found,
            "unknown method {method:?} found in the method table"
        );
    }
    // Off a session's thread (as `index.query` asks) every request is answered.
    let answer = index.query(protocol, |ctx| methods::answer(ctx, method, params));
    let Some(answer) = answer.answered() else {
        return Err(TestCaseError::fail(format!(
            "{method} needs the blocking pool, off a session's thread"
        )));
    };
    if !found {
        prop_assert_eq!(answer.cost, 0.0, "{} costs without a method", method);
    }
    let result = answer.result;
    let params_len = params.to_string().len();
    match &result {
        Ok(value) => {
            prop_assert!(
                value.to_string().len() <= 1 << 20,
                "{method} answered {} bytes",
                value.to_string().len()
            );
        }
        Err(error) => {
            prop_assert!(
                METHOD_ERROR_CODES.contains(&error.code)
                    || error.code == RpcError::METHOD_NOT_FOUND,
                "{method} {params}: unexpected error {error}"
            );
            prop_assert!(
                error.message.len() <= 4 * params_len + 4 * method.len() + 512,
                "{method}: an error message of {} bytes for {params_len} bytes of params",
                error.message.len()
            );
        }
    }
    // Too many positional arguments is an arity error for every method.
    if let Value::Array(args) = params
        && args.len() > 8
        && METHODS.contains(&method)
    {
        prop_assert_eq!(
            result.as_ref().err().map(|e| e.code),
            Some(RpcError::INVALID_ARGS),
            "{} with {} arguments",
            method,
            args.len()
        );
    }
    let id = json!(7);
    let reply = jsonrpc::response(Some(Dialect::V2), &id, &result);
    let parsed: Value = serde_json::from_str(&reply)
        .map_err(|e| TestCaseError::fail(format!("reply is not JSON ({e}): {reply}")))?;
    prop_assert_eq!(&parsed["id"], &id);
    match &result {
        Ok(value) => prop_assert_eq!(&parsed["result"], value),
        Err(error) => prop_assert_eq!(&parsed["error"]["code"], &json!(error.code)),
    }
    Ok(reply)
}

#[test]
fn dispatch_answers_every_method_and_argument_with_a_result_or_the_right_error() {
    let index = Index::build();
    let versions = [
        ProtocolVersion::new(&[1, 4]),
        ProtocolVersion::new(&[1, 4, 2]),
        ProtocolVersion::new(&[1, 6]),
    ];
    let started = Instant::now();
    let strategy = (
        method_strategy(),
        params_strategy(&index),
        0..versions.len(),
    );
    let mut runner = runner(5000);
    runner
        .run(&strategy, |(method, params, v)| {
            check_request(&index, &versions[v], &method, &params).map(drop)
        })
        .expect("dispatch property");
    eprintln!(
        "dispatch: {} cases in {:?} over an index of {} scripts and {} txs",
        runner.config().cases,
        started.elapsed(),
        index.scripthashes.len(),
        index.txids.len()
    );
}

/// The JSON-RPC layer's verdict on one request object, as a model: what aiorpcX does.
fn expected_item(object: &serde_json::Map<String, Value>, dialect: Dialect) -> Result<(), i64> {
    if !object.contains_key("method") {
        return Ok(()); // a response: ignored
    }
    match (object.get("id"), dialect) {
        (None, Dialect::V1) => return Err(RpcError::INVALID_REQUEST),
        (Some(Value::Array(_) | Value::Object(_)), Dialect::Loose | Dialect::V2) => {
            return Err(RpcError::INVALID_REQUEST);
        }
        _ => {}
    }
    if dialect == Dialect::V2 && object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(RpcError::INVALID_REQUEST);
    }
    match (object.get("params"), dialect) {
        (None | Some(Value::Array(_)), _) => {}
        (Some(Value::Object(_)), Dialect::Loose | Dialect::V2) => {}
        _ => return Err(RpcError::INVALID_ARGS),
    }
    if !object.get("method").is_some_and(Value::is_string) {
        return Err(RpcError::METHOD_NOT_FOUND);
    }
    Ok(())
}

fn request_object(index: &Index) -> BoxedStrategy<Value> {
    let field = |s: BoxedStrategy<Value>| prop::option::weighted(0.8, s);
    let value = json_value(index);
    (
        field(prop_oneof![Just(json!("2.0")), Just(json!("1.0")), value.clone()].boxed()),
        field(
            prop_oneof![
                Just(Value::Null),
                any::<i32>().prop_map(Value::from),
                "[a-z0-9]{0,6}".prop_map(Value::String),
                any::<bool>().prop_map(Value::Bool),
                value.clone()
            ]
            .boxed(),
        ),
        field(
            prop_oneof![
                3 => method_strategy().prop_map(Value::String),
                1 => value.clone()
            ]
            .boxed(),
        ),
        field(params_strategy(index)),
        field(value),
    )
        .prop_map(|(jsonrpc, id, method, params, result)| {
            let mut object = serde_json::Map::new();
            for (key, v) in [
                ("jsonrpc", jsonrpc),
                ("id", id),
                ("method", method),
                ("params", params),
                ("result", result),
            ] {
                if let Some(v) = v {
                    object.insert(key.into(), v);
                }
            }
            Value::Object(object)
        })
        .boxed()
}

/// What a line may be: a request, a batch of requests and junk, any JSON value, or
/// bytes (JSON with a byte changed, or noise).
fn line_strategy(index: &Index) -> BoxedStrategy<Vec<u8>> {
    let object = request_object(index);
    let value = json_value(index);
    prop_oneof![
        4 => object.clone().prop_map(|v| v.to_string().into_bytes()),
        2 => prop::collection::vec(prop_oneof![3 => object.clone(), 1 => value.clone()], 0..5)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
        1 => value.prop_map(|v| v.to_string().into_bytes()),
        2 => (object, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, b)| {
            let mut bytes = v.to_string().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = b;
            bytes
        }),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
    .boxed()
}

/// One line through the JSON-RPC layer and dispatch, as a session handles it; checks
/// every code against the model and every reply for validity. Returns the replies.
fn check_line(index: &Index, line: &[u8], dialect: Dialect) -> Result<Vec<Value>, TestCaseError> {
    let protocol = ProtocolVersion::new(&[1, 6]);
    let mut state = Some(dialect);
    let mut replies = Vec::new();
    let parsed = jsonrpc::parse_message(line, &mut state);
    let as_json: Option<Value> = std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str(t).ok());
    let items = match (parsed, &as_json) {
        (Err(error), None) => {
            prop_assert_eq!(error.code, RpcError::PARSE_ERROR, "{}", error);
            replies.push(jsonrpc::response(state, &Value::Null, &Err(error)));
            Vec::new()
        }
        (Err(error), Some(value)) => {
            prop_assert_eq!(error.code, RpcError::INVALID_REQUEST, "{}", error);
            let empty = value.as_array().is_some_and(Vec::is_empty);
            prop_assert!(
                empty || (value.is_array() && dialect == Dialect::V1),
                "{value} refused: {error}"
            );
            replies.push(jsonrpc::response(state, &Value::Null, &Err(error)));
            Vec::new()
        }
        (Ok(_), None) => return Err(TestCaseError::fail("accepted a line that is not JSON")),
        (Ok(Message::Single(item)), Some(value)) => vec![(item, value.clone())],
        (Ok(Message::Batch(items)), Some(Value::Array(values))) => {
            prop_assert_eq!(items.len(), values.len());
            items.into_iter().zip(values.iter().cloned()).collect()
        }
        (Ok(Message::Batch(_)), Some(value)) => {
            return Err(TestCaseError::fail(format!("{value} parsed as a batch")));
        }
    };
    for (item, value) in items {
        let expected = match &value {
            Value::Object(object) => expected_item(object, dialect),
            _ => Err(RpcError::INVALID_REQUEST),
        };
        match item {
            Item::Response => prop_assert_eq!(expected, Ok(()), "{} ignored", value),
            Item::Answered { .. } => return Err(TestCaseError::fail("parsed as answered")),
            Item::Invalid { id, error } => {
                prop_assert_eq!(expected, Err(error.code), "{} -> {}", value, error);
                replies.push(jsonrpc::response(state, &id, &Err(error)));
            }
            Item::Request(request) => {
                prop_assert_eq!(expected, Ok(()), "{} accepted", value);
                prop_assert!(value.get("method").is_some());
                if SESSION_METHODS.contains(&request.method.as_str()) {
                    continue;
                }
                let reply = check_request(index, &protocol, &request.method, &request.params)?;
                if let Some(id) = &request.id {
                    let parsed: Value = serde_json::from_str(&reply).expect("checked JSON");
                    let again = match parsed.get("error") {
                        Some(e) => Err(RpcError::new(
                            e["code"].as_i64().unwrap_or(0),
                            e["message"].as_str().unwrap_or_default(),
                        )),
                        None => Ok(parsed["result"].clone()),
                    };
                    replies.push(jsonrpc::response(state, id, &again));
                }
            }
        }
    }
    let mut out = Vec::new();
    for reply in replies {
        let parsed: Value = serde_json::from_str(&reply)
            .map_err(|e| TestCaseError::fail(format!("reply is not JSON ({e}): {reply}")))?;
        prop_assert!(
            reply.len() <= 8 * line.len() + (1 << 20),
            "a {}-byte reply to a {}-byte line",
            reply.len(),
            line.len()
        );
        out.push(parsed);
    }
    Ok(out)
}

#[test]
fn jsonrpc_lines_get_the_right_codes_and_valid_replies() {
    let index = Index::build();
    let dialects = [Dialect::Loose, Dialect::V2, Dialect::V1];
    let corpus = corpus_lines();
    for (n, (expected, line)) in corpus.iter().enumerate() {
        let replies = check_line(&index, line, Dialect::Loose)
            .unwrap_or_else(|e| panic!("corpus line {}: {e}", n + 1));
        let codes: Vec<String> = replies
            .iter()
            .map(|r| match r["error"]["code"].as_i64() {
                Some(code) => code.to_string(),
                None => "ok".into(),
            })
            .collect();
        assert_eq!(
            &codes.join(","),
            expected,
            "corpus line {}: {}",
            n + 1,
            String::from_utf8_lossy(line)
        );
    }
    let started = Instant::now();
    let mut runner = runner(4000);
    runner
        .run(&(line_strategy(&index), 0..dialects.len()), |(line, d)| {
            check_line(&index, &line, dialects[d]).map(drop)
        })
        .expect("JSON-RPC property");
    eprintln!(
        "JSON-RPC: {} corpus lines, {} cases in {:?}",
        corpus.len(),
        runner.config().cases,
        started.elapsed()
    );
}

/// `tests/fuzz-corpus/jsonrpc.txt`: one case per line, `<expected codes> <line>`, the
/// codes of the replies in order (`ok` for a result), comma-separated, `-` for no reply;
/// a line starting `hex:` after the codes is given as hex.
fn corpus_lines() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(corpus_dir().join("jsonrpc.txt")).expect("jsonrpc.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (codes, line) = l.split_once(' ').unwrap_or((l, ""));
            let bytes = match line.strip_prefix("hex:") {
                Some(hex) => from_hex(hex.trim()).expect("hex line"),
                None => line.as_bytes().to_vec(),
            };
            let codes = if codes == "-" {
                String::new()
            } else {
                codes.into()
            };
            (codes, bytes)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Block and transaction parser

/// A mutation of real bytes: flip, set, insert or delete bytes, truncate, put a large
/// CompactSize count somewhere, or repeat a slice.
#[derive(Clone, Debug)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    BigCount(prop::sample::Index, u8, u64),
    Repeat(prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        4 => (at(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (at(), prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (at(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => at().prop_map(Mutation::Truncate),
        2 => (at(), prop::sample::select(vec![0xfdu8, 0xfe, 0xff]), any::<u64>())
            .prop_map(|(i, m, n)| Mutation::BigCount(i, m, n)),
        1 => (at(), 1usize..300).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::Set(at, b) => {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(at, new) => {
            let i = at.index(bytes.len());
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Delete(at, n) => {
            let i = at.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::BigCount(at, marker, n) => {
            let i = at.index(bytes.len());
            let width = match marker {
                0xfd => 2,
                0xfe => 4,
                _ => 8,
            };
            let mut count = vec![*marker];
            count.extend_from_slice(&n.to_le_bytes()[..width]);
            let end = (i + count.len()).min(bytes.len());
            bytes.splice(i..end, count);
        }
        Mutation::Repeat(at, n) => {
            let i = at.index(bytes.len());
            let end = (i + n).min(bytes.len());
            let slice = bytes[i..end].to_vec();
            bytes.splice(i..i, slice);
        }
    }
}

/// Parses `raw` both ways and checks what a parse that succeeds returns: nothing larger
/// than the input could hold.
fn check_parse(raw: &[u8]) -> Result<(), TestCaseError> {
    for mweb in [false, true] {
        let started = Instant::now();
        if let Ok(block) = parse_block(raw, mweb) {
            prop_assert_eq!(&block.header[..], &raw[..80]);
            prop_assert_eq!(block.hash, header_hash(&raw[..80]));
            let parts: usize = block
                .txs
                .iter()
                .map(|tx| 10 + 41 * tx.inputs.len() + 9 * tx.outputs.len())
                .sum();
            prop_assert!(parts <= raw.len(), "a block holds more than its bytes");
        }
        if let Ok(tx) = parse_tx(raw, mweb) {
            prop_assert!(10 + 41 * tx.inputs.len() + 9 * tx.outputs.len() <= raw.len());
            prop_assert!(tx.vsize as usize <= raw.len());
        }
        prop_assert!(
            started.elapsed() < Duration::from_secs(2),
            "parsing {} bytes took {:?}",
            raw.len(),
            started.elapsed()
        );
    }
    Ok(())
}

#[test]
fn parser_survives_mutated_real_blocks_and_transactions() {
    let mut seeds: Vec<Vec<u8>> = BLOCK_FIXTURES
        .iter()
        .map(|(name, mweb)| {
            let raw = fixture_bytes(name);
            parse_block(&raw, *mweb).expect("fixture parses");
            raw
        })
        .collect();
    seeds.extend(TX_FIXTURES.iter().map(|name| fixture_bytes(name)));
    // The corpus: inputs that once found something, or sit on an edge.
    let mut corpus = 0;
    let dir = corpus_dir().join("parser");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-corpus/parser")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let raw = from_hex(text.trim()).expect("corpus hex");
        check_parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        corpus += 1;
    }
    let started = Instant::now();
    let strategy = (
        0..seeds.len(),
        prop::collection::vec(mutation(), 1..6),
        any::<bool>(),
    );
    let mut runner = runner(5000);
    runner
        .run(&strategy, |(seed, mutations, noise)| {
            let mut raw = seeds[seed].clone();
            if noise {
                // A random prefix of the block's header and a count, then noise.
                raw.truncate(81);
            }
            for m in &mutations {
                mutate(&mut raw, m);
            }
            check_parse(&raw)
        })
        .expect("parser property");
    eprintln!(
        "parser: {corpus} corpus inputs, {} cases in {:?}",
        runner.config().cases,
        started.elapsed()
    );
}
