//! The backbone end to end, on a real regtest litecoind: ferrumx indexes a varied chain
//! (past MWEB activation) and answers history, balance and unspent outputs for every
//! script exactly as computed from the daemon's own blocks; it survives kill -9 during
//! catch-up with an index identical to a clean sync's; it follows reorgs (including one
//! that spends differently); and it refuses a reorg deeper than REORG_LIMIT without
//! touching its index.

mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::chain_builder::{ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::truth::Truth;

const READY: Duration = Duration::from_secs(300);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

/// Settings every server here shares: poll the daemon often so tests move quickly.
const FAST_POLL: (&str, &str) = ("DAEMON_POLL_INTERVAL_BLOCKS", "100");
/// One client asks about every script of the chain, far past a wallet's share of the
/// server: ElectrumX's cost limits would throttle it, so they are off (0/0) here.
const NO_COST_LIMITS: [(&str, &str); 2] = [("COST_SOFT_LIMIT", "0"), ("COST_HARD_LIMIT", "0")];

fn connect(server: &FerrumxProcess) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect to ferrumx");
    client.handshake("1.6").expect("server.version");
    client
}

/// Waits until the server's tip is the daemon's.
fn wait_for_tip(server: &FerrumxProcess, node: &Litecoind) {
    let expected = node.height();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut client = connect(server);
        let tip = client
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe");
        let best = node.call("getbestblockhash", json!([]));
        let header = node.call("getblockheader", json!([best, false]));
        if tip["height"] == json!(expected) && tip["hex"] == header {
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

/// Asks for the history, balance and unspent outputs of every script in `truth` (in
/// batches) and compares with the truth. Returns how many scripts were checked.
fn assert_matches_truth(server: &FerrumxProcess, truth: &Truth) -> usize {
    let mut client = connect(server);
    let hashes: Vec<String> = truth.scripthashes().cloned().collect();
    for chunk in hashes.chunks(50) {
        let mut requests = Vec::new();
        for sh in chunk {
            requests.push(("blockchain.scripthash.get_history", json!([sh])));
            requests.push(("blockchain.scripthash.get_balance", json!([sh])));
            requests.push(("blockchain.scripthash.listunspent", json!([sh])));
        }
        let answers = client.batch(&requests);
        for (i, sh) in chunk.iter().enumerate() {
            let script = truth.script_of(sh).unwrap_or("?");
            let history = answers[3 * i]
                .as_ref()
                .unwrap_or_else(|e| panic!("get_history {sh}: {e:?}"));
            assert_eq!(
                history,
                &truth.expected_history(sh),
                "history of script {script}"
            );
            let balance = answers[3 * i + 1]
                .as_ref()
                .unwrap_or_else(|e| panic!("get_balance {sh}: {e:?}"));
            assert_eq!(
                balance,
                &truth.expected_balance(sh),
                "balance of script {script}"
            );
            let unspent = answers[3 * i + 2]
                .as_ref()
                .unwrap_or_else(|e| panic!("listunspent {sh}: {e:?}"));
            assert_eq!(
                unspent,
                &truth.expected_listunspent(sh),
                "utxos of script {script}"
            );
        }
    }
    hashes.len()
}

/// Headers as the daemon has them, through block.header and block.headers.
fn assert_headers_match(server: &FerrumxProcess, node: &Litecoind) {
    let mut client = connect(server);
    let tip = node.height();
    for height in [0, 1, tip / 2, tip] {
        let hash = node.call("getblockhash", json!([height]));
        let expected = node.call("getblockheader", json!([hash, false]));
        let got = client
            .call("blockchain.block.header", json!([height]))
            .expect("block.header");
        assert_eq!(got, expected, "header {height}");
    }
    let chunk = client
        .call("blockchain.block.headers", json!([tip - 2, 10]))
        .expect("block.headers");
    assert_eq!(chunk["count"], json!(3));
    assert_eq!(chunk["max"], json!(2016));
    let last = node.call(
        "getblockheader",
        json!([node.call("getblockhash", json!([tip])), false]),
    );
    assert_eq!(chunk["headers"][2], last);
    let err = client
        .call("blockchain.block.header", json!([tip + 1]))
        .unwrap_err();
    assert_eq!(err.0, 1);
    assert_eq!(
        err.1,
        format!("height {} out of range", with_commas(tip + 1))
    );
}

/// The indexed height from the state line of a dump.
fn indexed_height(dump: &str) -> Option<u32> {
    let state = dump.lines().next()?;
    let start = state.find("height=Some(")? + "height=Some(".len();
    let end = start + state[start..].find(')')?;
    state[start..end].parse().ok()
}

fn with_commas(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Makes the daemon switch to a new branch `depth` (≥ 2) blocks deep and one block
/// longer, in which an output spent in the abandoned branch is spent differently.
/// Litecoin has no replace-by-fee, so the first spend is time-locked to the tip: after
/// the invalidation it is not final and leaves the mempool, making room for the second.
/// `before_the_reorg` runs once the block with the first spend is mined.
fn reorg_with_a_different_spend(node: &Litecoind, depth: u32, before_the_reorg: impl FnOnce()) {
    let options = json!({"minimumAmount": 1});
    let utxo = node.call(
        "listunspent",
        json!([depth + 10, 9_999_999, [], true, options]),
    )[0]
    .clone();
    let amount = utxo["amount"].as_f64().expect("amount");
    let inputs = json!([{ "txid": utxo["txid"], "vout": utxo["vout"] }]);
    let spend_to = |kind: &str, fee: f64, lock_time: u32| {
        let address = node.call("getnewaddress", json!(["", kind]));
        let outputs = json!({ address.as_str().expect("address"): format!("{:.8}", amount - fee) });
        let raw = node.call("createrawtransaction", json!([inputs, outputs, lock_time]));
        node.call("signrawtransactionwithwallet", json!([raw]))["hex"].clone()
    };
    node.call(
        "sendrawtransaction",
        json!([spend_to("bech32", 0.001, node.height())]),
    );
    node.mine(1);
    before_the_reorg();
    let doomed = node.call("getblockhash", json!([node.height() + 1 - depth]));
    node.call("invalidateblock", json!([doomed]));
    node.call("sendrawtransaction", json!([spend_to("legacy", 0.002, 0)]));
    node.mine(depth + 1);
}

/// Undo for the last 20 blocks only: see the clean sync below.
const REORG_LIMIT: (&str, &str) = ("REORG_LIMIT", "20");

#[test]
fn indexes_a_real_chain_survives_kill9_and_follows_reorgs() {
    let node = Litecoind::start();
    let info = build_mixed_chain(&node, &ChainSpec::default());
    eprintln!(
        "chain: {} blocks, {} txs, built in {:?}",
        info.tip, info.transactions, info.elapsed
    );

    // A clean sync, checked against the truth computed from the daemon's blocks. It
    // compacts the index after the initial sync whatever the free pages (0 MB), so the
    // index checked, and compared with the crash rounds' below, is the compacted one.
    // REORG_LIMIT=20 (regtest's default, 4,000, is longer than the chain) leaves most
    // blocks without undo: their history goes through runs merged at the 20th block
    // from the tip, which every server below does too.
    // It answers as soon as the catch-up's last flush is committed, from the runs while
    // they merge into the tables (each merge commit paused 4 s here, so that every
    // script below is checked before the merge ends); the compaction follows.
    let truth = Truth::from_daemon(&node);
    let clean_dir = tempfile::tempdir().expect("tempdir");
    let mut clean = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        clean_dir.path(),
        &[
            FAST_POLL,
            NO_COST_LIMITS[0],
            NO_COST_LIMITS[1],
            ("COMPACT_MIN_FREE_MB", "0"),
            REORG_LIMIT,
            ("FERRUMX_TEST_MERGE_PAUSE_MS", "4000"),
        ],
    );
    clean.wait_ready(READY);
    wait_for_tip(&clean, &node);
    let merged = "flushes merged into the index";
    assert!(
        clean.log().contains("answering from the runs of") && !clean.log().contains(merged),
        "not answering from the runs:\n{}",
        clean.log_tail(30)
    );
    let scripts = assert_matches_truth(&clean, &truth);
    assert!(
        !clean.log().contains(merged),
        "the merge ended before every script was checked"
    );
    let log = clean.wait_for_log("index compacted from", Duration::from_secs(120));
    let compacted = log
        .lines()
        .find(|line| line.contains("index compacted from"))
        .unwrap_or_else(|| panic!("the index was not compacted:\n{log}"));
    eprintln!("{compacted}");
    assert!(
        log.contains("flushes merged into the index"),
        "the catch-up's history was not merged from runs:\n{log}"
    );
    assert_eq!(assert_matches_truth(&clean, &truth), scripts, "once merged");
    assert!(scripts > 500, "only {scripts} scripts in the chain");
    assert_headers_match(&clean, &node);
    let busiest = truth
        .busiest_script()
        .expect("a busiest script")
        .1
        .history
        .len();
    assert!(
        busiest >= 200,
        "the heavy address has only {busiest} transactions"
    );
    let clean_dump = clean.dump_index();

    // kill -9 at several instants of catch-up (FLUSH_BLOCKS makes it flush often),
    // then a restart: the index must equal the clean one. Each round starts where the
    // last crash left the index; the delay grows until a round would finish the sync.
    let crash_dir = tempfile::tempdir().expect("tempdir");
    let crash_env = [
        FAST_POLL,
        NO_COST_LIMITS[0],
        NO_COST_LIMITS[1],
        ("FLUSH_BLOCKS", "20"),
        REORG_LIMIT,
    ];
    let mut interrupted_at = Vec::new();
    let mut delay = Duration::from_millis(40);
    for _ in 0..40 {
        let mut victim =
            FerrumxProcess::start(binary(), &node.daemon_url(), crash_dir.path(), &crash_env);
        std::thread::sleep(delay);
        victim.kill9();
        let height = indexed_height(&victim.dump_index());
        eprintln!("kill -9 after {delay:?}: index at {height:?}");
        if height >= Some(info.tip) {
            break;
        }
        if height.is_some_and(|h| h > 0) {
            interrupted_at.push(height);
        }
        delay += Duration::from_millis(25);
    }
    assert!(
        interrupted_at.len() >= 2,
        "kill -9 never landed mid catch-up: {interrupted_at:?}"
    );
    eprintln!("killed during catch-up at heights {interrupted_at:?}");
    let mut survivor =
        FerrumxProcess::start(binary(), &node.daemon_url(), crash_dir.path(), &crash_env);
    survivor.wait_ready(READY);
    wait_for_tip(&survivor, &node);
    assert!(
        survivor.dump_index() == clean_dump,
        "index after kill -9 differs from a clean sync"
    );

    // A restart after some downtime: a dozen new blocks on an index that holds the rest
    // are written straight into the tables, with no runs to merge, no UTXO rebuild and
    // no rebuild of the file (which COMPACT_MIN_FREE_MB=0 would otherwise force).
    survivor.stop();
    node.mine(12);
    let mut restart_env = crash_env.to_vec();
    restart_env.push(("COMPACT_MIN_FREE_MB", "0"));
    let mut survivor =
        FerrumxProcess::start(binary(), &node.daemon_url(), crash_dir.path(), &restart_env);
    survivor.wait_ready(READY);
    wait_for_tip(&survivor, &node);
    let log = survivor.log();
    assert!(
        log.contains("catching up from height"),
        "no catch-up after the downtime:\n{log}"
    );
    assert!(
        !log.contains("flushes merged into the index") && !log.contains("index compacted from"),
        "a short catch-up went through runs or rebuilt the file:\n{log}"
    );

    // Reorgs: a 3-block one that spends an output differently, then a deeper one.
    reorg_with_a_different_spend(&node, 3, || {});
    wait_for_tip(&clean, &node);
    wait_for_tip(&survivor, &node);
    let truth = Truth::from_daemon(&node);
    assert_matches_truth(&clean, &truth);
    assert!(
        clean.dump_index() == survivor.dump_index(),
        "indexes differ after a reorg"
    );
    assert!(
        clean.log().contains("reorg"),
        "no reorg logged:\n{}",
        clean.log_tail(20)
    );

    // A reorg deeper than REORG_LIMIT stops that server with a clear error, index intact.
    let shallow_dir = tempfile::tempdir().expect("tempdir");
    let mut shallow = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        shallow_dir.path(),
        &[
            FAST_POLL,
            NO_COST_LIMITS[0],
            NO_COST_LIMITS[1],
            ("REORG_LIMIT", "2"),
        ],
    );
    shallow.wait_ready(READY);
    // The index as it stands when the reorg comes: the block mined just before it is
    // indexed first (a new block is noticed at once).
    let mut before = String::new();
    reorg_with_a_different_spend(&node, 4, || {
        wait_for_tip(&shallow, &node);
        before = shallow.dump_index();
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while shallow.is_running() {
        assert!(
            Instant::now() < deadline,
            "a too-deep reorg did not stop the server:\n{}",
            shallow.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        shallow.log().contains("REORG_LIMIT"),
        "unclear error:\n{}",
        shallow.log_tail(20)
    );
    assert!(
        shallow.dump_index() == before,
        "a refused reorg changed the index"
    );

    // The other servers follow the deep reorg.
    wait_for_tip(&clean, &node);
    let truth = Truth::from_daemon(&node);
    assert_matches_truth(&clean, &truth);
    assert_eq!(
        clean.stop().code(),
        Some(0),
        "SIGTERM did not stop ferrumx cleanly"
    );
}
