//! Fault tolerance end to end, on a real regtest litecoind: ferrumx killed with SIGKILL at
//! random instants during catch-up and during reorgs, the daemon stopped, killed and
//! restarted under it, and the daemon answering errors, garbage or nothing at all (a
//! scripted fake daemon between the two). After every fault ferrumx must reach the
//! daemon's tip with an index equal, record by record (`dump-index`), to a clean sync's.
//!
//! Kill instants come from a seeded generator whose seed is printed
//! (`FERRUMX_FAULT_SEED=<n>` replays the same choices); `FERRUMX_FAULT_ROUNDS` sets the
//! number of kill -9 rounds of each kind (20 by default; `bench/soak/faults.sh` runs
//! more).

mod support;

use ferrumx::rng::SplitMix64;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::chain_builder::{ChainSpec, build_mixed_chain};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;

const READY: Duration = Duration::from_secs(300);
/// How long a restarted server may take to reach the daemon's tip.
const CONVERGE: Duration = Duration::from_secs(180);
const FAST_POLL: (&str, &str) = ("DAEMON_POLL_INTERVAL_BLOCKS", "100");
const QUIET: (&str, &str) = ("LOG_LEVEL", "info");
const DEFAULT_ROUNDS: usize = 20;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

/// Kill -9 rounds of each kind: `FERRUMX_FAULT_ROUNDS`, else 20.
fn rounds() -> usize {
    std::env::var("FERRUMX_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

/// Seeded, good enough to spread kill instants.
struct Rng(SplitMix64);

impl Rng {
    /// From `FERRUMX_FAULT_SEED`, else the clock; printed so a failure can be replayed.
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("FERRUMX_FAULT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: FERRUMX_FAULT_SEED={seed}");
        Rng(SplitMix64::new(seed))
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// A duration uniform in `0..=max`.
    fn delay(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(self.below(ms + 1))
    }
}

/// Height and tip hash from the state line of a dump.
fn state_of(dump: &str) -> (Option<u32>, Option<String>) {
    let Some(state) = dump.lines().next() else {
        return (None, None);
    };
    let field = |name: &str| {
        let start = state.find(name)? + name.len();
        let end = start + state[start..].find(')')?;
        Some(state[start..end].trim_matches('"').to_string())
    };
    (
        field("height=Some(").and_then(|h| h.parse().ok()),
        field("tip=Some("),
    )
}

/// The first line where two dumps differ, for a failure message.
fn first_difference(got: &str, expected: &str) -> String {
    let (mut a, mut b) = (got.lines(), expected.lines());
    for n in 1.. {
        match (a.next(), b.next()) {
            (None, None) => return "no difference".into(),
            (x, y) if x == y => continue,
            (x, y) => return format!("line {n}: got {x:?}, expected {y:?}"),
        }
    }
    unreachable!()
}

fn assert_same_index(server: &FerrumxProcess, expected: &str, what: &str) {
    let got = server.dump_index();
    assert!(
        got == expected,
        "{what}: the index differs from a clean sync's ({}; {} vs {} lines)",
        first_difference(&got, expected),
        got.lines().count(),
        expected.lines().count()
    );
}

fn connect(server: &FerrumxProcess) -> RawClient {
    let mut client = RawClient::connect(server.tcp_addr()).expect("connect to ferrumx");
    client.handshake("1.6").expect("server.version");
    client
}

/// The daemon's tip as `blockchain.headers.subscribe` shows it.
fn daemon_tip(node: &Litecoind) -> (u32, Value) {
    let best = node.call("getbestblockhash", json!([]));
    let header = node.call("getblockheader", json!([best.clone(), false]));
    let height = node.call("getblockheader", json!([best]))["height"]
        .as_u64()
        .expect("height") as u32;
    (height, header)
}

/// Waits until the server's tip is the daemon's, within `timeout`.
fn wait_for_tip(server: &mut FerrumxProcess, node: &Litecoind, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    server.wait_ready(timeout);
    let mut client = connect(server);
    loop {
        let (height, header) = daemon_tip(node);
        let tip = client
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe");
        if tip["height"] == json!(height) && tip["hex"] == header {
            return;
        }
        assert!(
            server.is_running(),
            "ferrumx exited; log:\n{}",
            server.log_tail(40)
        );
        assert!(
            Instant::now() < deadline,
            "ferrumx stuck at {} (daemon at {height}); log:\n{}",
            tip["height"],
            server.log_tail(40)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A clean sync of the daemon's current chain into a fresh directory: its dump, and how
/// long it took from launch to the daemon's tip.
fn clean_sync(node: &Litecoind, env: &[(&str, &str)]) -> (String, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), env);
    wait_for_tip(&mut server, node, READY);
    let took = started.elapsed();
    let dump = server.dump_index();
    server.kill9();
    (dump, took)
}

/// Where a kill -9 left the index, relative to the two states a fault lies between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Landed {
    Before,
    Midway,
    After,
}

/// kill -9 at random instants of catch-up, then of reorgs: every restart must end with
/// the index of a clean sync of the daemon's chain.
#[test]
fn kill9_during_catch_up_and_reorgs_leaves_a_clean_index() {
    let mut rng = Rng::from_env("kill9");
    let rounds = rounds();
    let node = Litecoind::start();
    let spec = ChainSpec {
        blocks: 460,
        transactions: 900,
        heavy_transactions: 60,
        wallet_transactions: 12,
        mweb: true,
    };
    let info = build_mixed_chain(&node, &spec);
    eprintln!(
        "chain: {} blocks, {} txs, built in {:?}",
        info.tip, info.transactions, info.elapsed
    );
    let clean_env = [FAST_POLL, QUIET];
    let (clean, sync_time) = clean_sync(&node, &clean_env);
    eprintln!("clean sync in {sync_time:?}");

    // Catch-up: each round starts from an empty index (so the instants cover all of
    // catch-up, first flush included), flushes every 1 to 20 blocks, is killed at a
    // random instant, sometimes killed again during the restart's catch-up, then
    // restarted to the tip.
    let started = Instant::now();
    let mut landed: HashMap<Landed, usize> = HashMap::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let flush = ["1", "3", "20"][rng.below(3) as usize];
        let env = [FAST_POLL, QUIET, ("FLUSH_BLOCKS", flush)];
        let kills = 1 + rng.below(2);
        let mut heights = Vec::new();
        for _ in 0..kills {
            let delay = rng.delay(sync_time.mul_f32(1.2));
            let mut victim = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
            thread::sleep(delay);
            victim.kill9();
            let (height, _) = state_of(&victim.dump_index());
            let where_ = match height {
                None | Some(0) => Landed::Before,
                Some(h) if h >= info.tip => Landed::After,
                Some(_) => Landed::Midway,
            };
            *landed.entry(where_).or_default() += 1;
            heights.push(format!("{delay:?}->{height:?}"));
        }
        let mut survivor = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
        wait_for_tip(&mut survivor, &node, CONVERGE);
        assert_same_index(
            &survivor,
            &clean,
            &format!("catch-up round {round} (FLUSH_BLOCKS={flush}, kills {heights:?})"),
        );
        survivor.kill9();
        eprintln!(
            "catch-up round {round}: FLUSH_BLOCKS={flush}, killed at {heights:?}: same index"
        );
    }
    let midway = landed.get(&Landed::Midway).copied().unwrap_or(0);
    eprintln!(
        "catch-up: {rounds} rounds in {:?}, kills landed {landed:?}",
        started.elapsed()
    );
    assert!(
        midway * 4 >= rounds,
        "too few kills landed mid catch-up: {landed:?}"
    );

    // Reorgs: two branches of the chain, A (DEPTH blocks) and B (DEPTH + 1 blocks, the
    // same outputs spent to other scripts); the daemon is switched between them and the
    // server killed at a random instant while it follows.
    let branches = Branches::build(&node, 30);
    // A 10 ms pause after each block stretches the 31-block reorg over ~0.3 s, so that
    // kill instants land midway as often as on a slow machine.
    let reorg_env = [
        FAST_POLL,
        QUIET,
        ("FLUSH_BLOCKS", "1"),
        ("FERRUMX_TEST_BLOCK_PAUSE_MS", "10"),
    ];
    let (clean_b, _) = clean_sync(&node, &clean_env);
    branches.switch_to_a(&node);
    let (clean_a, _) = clean_sync(&node, &clean_env);
    assert!(clean_a != clean_b, "the branches index the same");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut victim = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &reorg_env);
    wait_for_tip(&mut victim, &node, READY);
    // How long following a switch takes here (detection within the poll interval, undo,
    // the new branch): kill instants are spread over that, a little beyond.
    let follow_b = follow_time(&victim, &node, || branches.switch_to_b(&node));
    let follow_a = follow_time(&victim, &node, || branches.switch_to_a(&node));
    eprintln!("a switch is followed in {follow_b:?} (to B) and {follow_a:?} (to A)");
    // Kill instants are drawn from [early, late], which starts a little beyond the follow
    // time and narrows towards where the reorg is under way: a kill that lands after the
    // new tip pulls `late` in, one before the reorg started pushes `early` out. (What the
    // client sees lags the index by a mempool refresh and a notification, so the follow
    // time alone overstates how long the index takes.)
    let mut early = Duration::ZERO;
    let mut late = follow_a
        .max(follow_b)
        .mul_f32(1.3)
        .max(Duration::from_millis(100));
    let started = Instant::now();
    let mut landed: HashMap<Landed, usize> = HashMap::new();
    let mut on_a = true;
    for round in 0..rounds {
        let (old_tip, new_tip) = if on_a {
            branches.switch_to_b(&node);
            (&branches.a_tip, &branches.b_tip)
        } else {
            branches.switch_to_a(&node);
            (&branches.b_tip, &branches.a_tip)
        };
        on_a = !on_a;
        let delay = early + rng.delay(late.saturating_sub(early));
        thread::sleep(delay);
        victim.kill9();
        let (height, tip) = state_of(&victim.dump_index());
        let where_ = match tip {
            Some(t) if &t == old_tip => Landed::Before,
            Some(t) if &t == new_tip => Landed::After,
            _ => Landed::Midway,
        };
        let min_width = Duration::from_millis(30);
        match where_ {
            Landed::After => late = ((late + delay) / 2).max(early + min_width),
            Landed::Before => early = ((early + delay) / 2).min(late.saturating_sub(min_width)),
            Landed::Midway => {}
        }
        *landed.entry(where_).or_default() += 1;
        victim = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &reorg_env);
        wait_for_tip(&mut victim, &node, CONVERGE);
        let expected = if on_a { &clean_a } else { &clean_b };
        assert_same_index(
            &victim,
            expected,
            &format!("reorg round {round} (killed after {delay:?} at height {height:?})"),
        );
        eprintln!(
            "reorg round {round}: to {}, killed after {delay:?} at height {height:?} ({where_:?}): same index",
            if on_a { "A" } else { "B" }
        );
    }
    eprintln!(
        "reorgs: {rounds} rounds in {:?}, kills landed {landed:?}",
        started.elapsed()
    );
    let midway = landed.get(&Landed::Midway).copied().unwrap_or(0);
    assert!(
        midway * 5 >= rounds,
        "too few kills landed mid reorg: {landed:?}"
    );
}

/// How long the server takes to show the daemon's new tip once `switch` has returned.
fn follow_time(server: &FerrumxProcess, node: &Litecoind, switch: impl FnOnce()) -> Duration {
    let mut client = connect(server);
    switch();
    let started = Instant::now();
    let (height, header) = daemon_tip(node);
    loop {
        let tip = client
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe");
        if tip["height"] == json!(height) && tip["hex"] == header {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the server did not follow a switch of branch:\n{}",
            server.log_tail(30)
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Two branches from one fork point: A has `depth` blocks, B one more; each spends the
/// same wallet outputs, to different scripts. The daemon switches with invalidateblock
/// and reconsiderblock, without mining.
struct Branches {
    b_first: String,
    a_tip: String,
    b_tip: String,
}

impl Branches {
    fn build(node: &Litecoind, depth: u32) -> Branches {
        let per_block = 3usize;
        let needed = per_block * (depth as usize - 1);
        // Fresh coins for the branches to spend: a fan-out, confirmed below the fork.
        let mut fan_out = serde_json::Map::new();
        for _ in 0..needed {
            let address = node.call("getnewaddress", json!(["", "bech32"]));
            fan_out.insert(address.as_str().expect("address").into(), json!("1.0"));
        }
        let addresses: Vec<String> = fan_out.keys().cloned().collect();
        node.call("sendmany", json!(["", fan_out]));
        node.mine(1);
        let fork = node.height();
        let coins = node.call("listunspent", json!([1, 9_999_999, addresses]));
        let coins = coins.as_array().expect("listunspent");
        assert_eq!(coins.len(), needed, "the fan-out's outputs");
        let spend = |coin: &Value, kind: &str, fee: f64, lock_time: u32| {
            let amount = coin["amount"].as_f64().expect("amount");
            let inputs = json!([{ "txid": coin["txid"], "vout": coin["vout"] }]);
            let a = node.call("getnewaddress", json!(["", kind]));
            let b = node.call("getnewaddress", json!(["", kind]));
            let half = ((amount - fee) / 2.0 * 1e8).round() / 1e8;
            let outputs = json!({
                a.as_str().expect("address"): format!("{half:.8}"),
                b.as_str().expect("address"): format!("{:.8}", amount - fee - half),
            });
            let raw = node.call("createrawtransaction", json!([inputs, outputs, lock_time]));
            let signed = node.call("signrawtransactionwithwallet", json!([raw]))["hex"].clone();
            node.call("sendrawtransaction", json!([signed]));
        };
        // A: the first block is empty; block h spends coins with lock time h - 1, so
        // that once A is invalidated its spends are not final and leave the mempool.
        let mut a_hashes = node.mine(1);
        for j in 1..depth {
            let height = fork + 1 + j;
            for coin in &coins[per_block * (j as usize - 1)..per_block * j as usize] {
                spend(coin, "legacy", 0.001, height - 1);
            }
            a_hashes.extend(node.mine(1));
        }
        node.call("invalidateblock", json!([a_hashes[0]]));
        let mempool = node.call("getrawmempool", json!([]));
        assert_eq!(
            mempool,
            json!([]),
            "branch A's spends stayed in the mempool"
        );
        // B: the same coins, to other scripts and in other blocks, plus one more block.
        let mut b_hashes = Vec::new();
        for chunk in coins[..needed].chunks(needed.div_ceil(depth as usize + 1)) {
            for coin in chunk {
                spend(coin, "bech32", 0.002, 0);
            }
            b_hashes.extend(node.mine(1));
        }
        while b_hashes.len() < depth as usize + 1 {
            b_hashes.extend(node.mine(1));
        }
        node.call("reconsiderblock", json!([a_hashes[0]]));
        let branches = Branches {
            b_first: b_hashes[0].clone(),
            a_tip: a_hashes.last().expect("A").clone(),
            b_tip: b_hashes.last().expect("B").clone(),
        };
        assert_eq!(branches.tip(node), branches.b_tip, "the daemon is not on B");
        branches
    }

    fn tip(&self, node: &Litecoind) -> String {
        node.call("getbestblockhash", json!([]))
            .as_str()
            .expect("hash")
            .to_string()
    }

    fn switch_to_a(&self, node: &Litecoind) {
        node.call("invalidateblock", json!([self.b_first]));
        assert_eq!(self.tip(node), self.a_tip, "the daemon did not switch to A");
    }

    fn switch_to_b(&self, node: &Litecoind) {
        node.call("reconsiderblock", json!([self.b_first]));
        assert_eq!(self.tip(node), self.b_tip, "the daemon did not switch to B");
    }
}

/// The daemon stopped during catch-up, killed while caught up, then answering errors and
/// garbage during a whole catch-up and holding requests past ferrumx's timeout: ferrumx
/// keeps retrying, keeps answering from its index, and ends with a clean sync's index.
#[test]
fn daemon_stopped_killed_failing_and_hanging() {
    let mut rng = Rng::from_env("daemon");
    let mut node = Litecoind::start();
    node.stop_quickly_under_clients();
    let spec = ChainSpec {
        blocks: 460,
        transactions: 600,
        heavy_transactions: 40,
        wallet_transactions: 12,
        mweb: true,
    };
    let info = build_mixed_chain(&node, &spec);
    let clean_env = [FAST_POLL, QUIET];
    let (clean, _) = clean_sync(&node, &clean_env);

    // Stopped (RPC `stop`) during catch-up, which FLUSH_BLOCKS=1 makes slow; restarted
    // 3 s later.
    let env = [FAST_POLL, QUIET, ("FLUSH_BLOCKS", "1")];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = FerrumxProcess::start(binary(), &node.daemon_url(), dir.path(), &env);
    server.wait_for_log("catching up", READY);
    thread::sleep(rng.delay(Duration::from_millis(100)));
    node.stop();
    let (down_at, _) = state_of(&server.dump_index());
    thread::sleep(Duration::from_secs(3));
    assert!(
        server.is_running(),
        "ferrumx gave up on a stopped daemon:\n{}",
        server.log_tail(30)
    );
    let stalled_at = state_of(&server.dump_index()).0;
    node.restart();
    wait_for_tip(&mut server, &node, CONVERGE);
    assert_same_index(&server, &clean, "after the daemon stopped during catch-up");
    eprintln!(
        "daemon stopped with the index at {down_at:?} (still {stalled_at:?} 3 s later): same index"
    );
    assert!(
        down_at.is_some_and(|h| h < info.tip),
        "the daemon stopped after catch-up ({down_at:?}), not during it"
    );
    assert!(
        server.log().contains("retrying"),
        "no retry logged:\n{}",
        server.log_tail(30)
    );

    // Killed (SIGKILL) while the server is caught up; restarted 3 s later, then new
    // blocks. The index keeps answering meanwhile.
    node.kill9();
    thread::sleep(Duration::from_secs(1));
    let tip = connect(&server)
        .call("blockchain.headers.subscribe", json!([]))
        .expect("headers.subscribe with the daemon down");
    assert_eq!(tip["height"], json!(info.tip), "tip with the daemon down");
    thread::sleep(Duration::from_secs(2));
    assert!(server.is_running(), "ferrumx gave up on a killed daemon");
    node.restart();
    let address = node.call("getnewaddress", json!(["", "bech32"]));
    node.call("sendtoaddress", json!([address, "2.5"]));
    node.mine(3);
    wait_for_tip(&mut server, &node, CONVERGE);
    let (clean, _) = clean_sync(&node, &clean_env);
    assert_same_index(&server, &clean, "after the daemon was killed and restarted");
    eprintln!("daemon killed while caught up: same index");
    drop(server);

    // Behind a fake daemon: errors, garbage, dropped connections and slow answers on
    // about 40% of the requests for the first 20 s of a catch-up, then a healthy daemon.
    let proxy = FakeDaemon::start(node.rpc_port(), rng.0.next_u64());
    let proxy_url = node.daemon_url().replace(
        &format!(":{}/", node.rpc_port()),
        &format!(":{}/", proxy.port),
    );
    proxy.set_mode(Mode::Flaky);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [FAST_POLL, QUIET, ("FLUSH_BLOCKS", "10")];
    let started = Instant::now();
    let mut server = FerrumxProcess::start(binary(), &proxy_url, dir.path(), &env);
    thread::sleep(Duration::from_secs(20));
    assert!(
        server.is_running(),
        "ferrumx gave up on a failing daemon:\n{}",
        server.log_tail(30)
    );
    proxy.set_mode(Mode::Pass);
    let (height_then, _) = state_of(&server.dump_index());
    let faults = proxy.faults();
    let counts = proxy.counts();
    wait_for_tip(&mut server, &node, CONVERGE);
    assert_same_index(&server, &clean, "after a catch-up from a failing daemon");
    eprintln!(
        "catch-up from a failing daemon: at height {height_then:?} after 20 s of {counts:?}, \
         at the tip {:?} after the start: same index",
        started.elapsed()
    );
    assert!(faults >= 10, "only {faults} faults injected");

    // The daemon holds every request for longer than ferrumx's 60 s daemon timeout while
    // blocks are mined behind it. Index queries are still answered at once; a query the
    // daemon must answer times out (REQUEST_TIMEOUT); once the daemon answers again
    // ferrumx catches up.
    let mut waiting = connect(&server);
    waiting.set_read_timeout(Duration::from_secs(120));
    let hang = Duration::from_secs(66);
    proxy.set_mode(Mode::Hang);
    let hang_started = Instant::now();
    let request =
        json!({"jsonrpc": "2.0", "id": 77, "method": "blockchain.estimatefee", "params": [13]});
    waiting
        .send_raw_line(&request.to_string())
        .expect("send estimatefee");
    node.mine(2);
    // The request outlives REQUEST_TIMEOUT (30 s): the client gets ElectrumX's -102.
    let reply = waiting
        .read_json()
        .expect("the estimatefee reply")
        .expect("an answer to estimatefee");
    let answered_after = hang_started.elapsed();
    assert_eq!(
        reply["error"]["code"],
        json!(-102),
        "estimatefee with a hung daemon: {reply}"
    );
    assert!(
        answered_after < Duration::from_secs(45),
        "estimatefee answered after {answered_after:?}"
    );
    let mut probes = 0;
    while hang_started.elapsed() + Duration::from_secs(6) < hang {
        let asked = Instant::now();
        let tip = connect(&server)
            .call("blockchain.headers.subscribe", json!([]))
            .expect("headers.subscribe while the daemon hangs");
        assert_eq!(tip["height"], json!(info.tip + 3));
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "an index query took {:?} while the daemon hangs",
            asked.elapsed()
        );
        probes += 1;
        thread::sleep(Duration::from_secs(5));
    }
    thread::sleep(hang.saturating_sub(hang_started.elapsed()));
    let held = proxy.held_since(hang_started);
    proxy.set_mode(Mode::Pass);
    // ferrumx's daemon client gives up on a request after 60 s and sends it again on a
    // new connection: the fake daemon sees requests arrive that late in the hang.
    assert!(
        held.iter().any(|t| *t >= Duration::from_secs(55)),
        "no request retried after a timeout: held at {held:?}"
    );
    wait_for_tip(&mut server, &node, CONVERGE);
    let (clean, _) = clean_sync(&node, &clean_env);
    assert_same_index(&server, &clean, "after the daemon hung");
    eprintln!(
        "daemon hung {hang:?} (requests held at {held:?}, {probes} index queries answered \
         meanwhile): estimatefee got {} after {answered_after:?}, same index",
        reply["error"]
    );
}

/// What the fake daemon does with the requests it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forwards to the real daemon.
    Pass,
    /// Forwards most requests; answers the others with a fault.
    Flaky,
    /// Holds every request without answering, until the mode changes; then closes.
    Hang,
}

/// An HTTP server on loopback between ferrumx and litecoind that forwards JSON-RPC and
/// REST requests, or injects faults, as its mode says.
struct FakeDaemon {
    port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

struct ProxyShared {
    upstream: u16,
    mode: Mutex<Mode>,
    stop: AtomicBool,
    rng: Mutex<Rng>,
    counts: Mutex<HashMap<&'static str, u64>>,
    /// When each held request arrived.
    held_at: Mutex<Vec<Instant>>,
    connections: AtomicU64,
}

/// Most connections the fake daemon serves at once (ferrumx opens a handful).
const MAX_PROXY_CONNECTIONS: u64 = 256;

impl FakeDaemon {
    fn start(upstream: u16, seed: u64) -> FakeDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake daemon");
        let port = listener.local_addr().expect("local_addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(ProxyShared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            stop: AtomicBool::new(false),
            rng: Mutex::new(Rng(SplitMix64::new(seed))),
            counts: Mutex::new(HashMap::new()),
            held_at: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::spawn(move || {
            while !accepting.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if accepting.connections.load(Ordering::SeqCst) >= MAX_PROXY_CONNECTIONS {
                            continue;
                        }
                        accepting.connections.fetch_add(1, Ordering::SeqCst);
                        let serving = Arc::clone(&accepting);
                        thread::spawn(move || {
                            let _ = serve(stream, &serving);
                            serving.connections.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeDaemon {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode") = mode;
    }

    /// Requests answered with a fault (forwarded and held ones excepted).
    fn faults(&self) -> u64 {
        self.shared
            .counts
            .lock()
            .expect("counts")
            .iter()
            .filter(|(kind, _)| !matches!(**kind, "forwarded" | "held" | "slow"))
            .map(|(_, n)| n)
            .sum()
    }

    /// When the held requests arrived, as offsets from `since`.
    fn held_since(&self, since: Instant) -> Vec<Duration> {
        self.shared
            .held_at
            .lock()
            .expect("held_at")
            .iter()
            .map(|t| t.saturating_duration_since(since))
            .collect()
    }

    fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<_> = self
            .shared
            .counts
            .lock()
            .expect("counts")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        counts.sort();
        counts
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl ProxyShared {
    fn mode(&self) -> Mode {
        *self.mode.lock().expect("mode")
    }

    fn note(&self, kind: &'static str) {
        *self.counts.lock().expect("counts").entry(kind).or_default() += 1;
    }
}

/// One HTTP request as read from ferrumx.
struct HttpRequest {
    method: String,
    /// The request line and headers, without `Connection`.
    head: Vec<String>,
    body: Vec<u8>,
    /// The client asked to close after the reply.
    close: bool,
}

/// Longest a connection of the fake daemon waits for the next request.
const PROXY_IDLE: Duration = Duration::from_secs(300);

fn serve(client: TcpStream, shared: &ProxyShared) -> io::Result<()> {
    client.set_read_timeout(Some(PROXY_IDLE))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    while let Some(request) = read_request(&mut reader)? {
        let mode = shared.mode();
        let fault = match mode {
            Mode::Pass => None,
            Mode::Flaky => {
                let roll = shared.rng.lock().expect("rng").below(100);
                match roll {
                    0..60 => None,
                    60..67 => Some("http500"),
                    67..74 => Some("warmup"),
                    74..80 => Some("rpc_error"),
                    80..86 => Some("garbage"),
                    86..92 => Some("closed"),
                    _ => Some("slow"),
                }
            }
            Mode::Hang => Some("held"),
        };
        if let Some(kind) = fault {
            shared.note(kind);
        }
        match fault {
            None | Some("slow") => {
                if fault.is_some() {
                    let pause = shared.rng.lock().expect("rng").below(1500);
                    thread::sleep(Duration::from_millis(pause));
                }
                let Ok(response) = forward(&request, shared.upstream) else {
                    return Ok(());
                };
                shared.note("forwarded");
                writer.write_all(&response)?;
            }
            Some("held") => {
                shared.held_at.lock().expect("held_at").push(Instant::now());
                let deadline = Instant::now() + Duration::from_secs(600);
                while shared.mode() == Mode::Hang
                    && !shared.stop.load(Ordering::SeqCst)
                    && Instant::now() < deadline
                {
                    thread::sleep(Duration::from_millis(50));
                }
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some("closed") => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some("http500") => respond(&mut writer, 500, "text/plain", b"fake daemon failure")?,
            Some("garbage") if request.method == "GET" => {
                let bytes: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
                respond(&mut writer, 200, "application/octet-stream", &bytes)?;
            }
            Some("garbage") => respond(&mut writer, 200, "application/json", b"{\"result\":")?,
            Some(kind) if request.method == "GET" => {
                let _ = kind;
                respond(&mut writer, 503, "text/plain", b"fake daemon: warming up")?;
            }
            Some(kind) => {
                let (code, message) = if kind == "warmup" {
                    (-28, "Loading block index...")
                } else {
                    (-32603, "fake daemon: internal error")
                };
                let error = |id: &Value| json!({"result": null, "error": {"code": code, "message": message}, "id": id});
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let (status, reply) = match &body {
                    Value::Array(items) => (
                        200,
                        Value::Array(items.iter().map(|r| error(&r["id"])).collect()),
                    ),
                    single => (500, error(&single["id"])),
                };
                respond(
                    &mut writer,
                    status,
                    "application/json",
                    reply.to_string().as_bytes(),
                )?;
            }
        }
        if request.close {
            return Ok(());
        }
    }
    Ok(())
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<HttpRequest>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut close = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(|_| io::ErrorKind::InvalidData)?;
            }
            if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
                continue;
            }
        }
        head.push(line);
        if head.len() > 100 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
    let method = head
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(HttpRequest {
        method,
        head,
        body,
        close,
    }))
}

/// Sends the request to the real daemon on a fresh connection and returns its reply,
/// without any `Connection` header (the fake daemon keeps ferrumx's connection open).
fn forward(request: &HttpRequest, upstream: u16) -> io::Result<Vec<u8>> {
    let mut daemon = TcpStream::connect(("127.0.0.1", upstream))?;
    daemon.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = request.head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(&request.body);
    daemon.write_all(&out)?;
    let mut reply = Vec::new();
    daemon.read_to_end(&mut reply)?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let mut response: Vec<u8> = head
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    response.extend_from_slice(&reply[split..]);
    Ok(response)
}

fn respond(writer: &mut TcpStream, status: u16, kind: &str, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)
}
