//! The Mempool actor against a real regtest litecoind, with the block processor keeping
//! the index: every transaction the daemon holds is in the shared mempool with the
//! daemon's fee, vsize and unconfirmed-parent flag; each script's mempool history,
//! balance change and unspent outputs, and which confirmed outputs the mempool spends,
//! match what the daemon's own transactions say; a child whose parent is mined moves
//! from height -1 to 0; mined transactions leave; and an MWEB peg-in is skipped, as
//! ElectrumX does.

mod support;

use actix::prelude::*;
use bitcoin::{OutPoint, Txid};
use ferrumx::coins;
use ferrumx::daemon::{Daemon, DaemonUrl};
use ferrumx::hashes::{HashX, Height, ScriptHash, from_hex};
use ferrumx::index::Indexer;
use ferrumx::mempool::{Mempool, MempoolEntry, SharedMempool};
use ferrumx::store::Store;
use ferrumx_actors::block_processor::{BlockProcessor, BlockProcessorSettings};
use ferrumx_actors::mempool::{MempoolActor, MempoolSettings, MempoolUpdate, Refresh};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use support::litecoind::{Litecoind, MWEB_ACTIVATION};
use support::truth::{is_unspendable, to_sats};

const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(60);

/// Records every MempoolUpdate.
struct Collector(Arc<Mutex<Vec<MempoolUpdate>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<MempoolUpdate> for Collector {
    type Result = ();

    fn handle(&mut self, update: MempoolUpdate, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(update);
    }
}

/// The block processor and the Mempool actor on arbiters of their own, as the server
/// runs them.
struct Running {
    mempool: SharedMempool,
    actor: Addr<MempoolActor>,
    updates: Arc<Mutex<Vec<MempoolUpdate>>>,
    daemon: Daemon,
    arbiters: Vec<Arbiter>,
    _system: SystemRunner,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(node: &Litecoind) -> Running {
        let coin = coins::lookup("Litecoin", "regtest").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(dir.path(), coin.name, coin.net, &coin.genesis_hash()).unwrap());
        let url = DaemonUrl::parse(&node.daemon_url(), coin.rpc_port, None).unwrap();
        let daemon = Daemon::new(vec![url], Duration::from_secs(30)).unwrap();
        let mempool: SharedMempool = Arc::new(RwLock::new(Mempool::default()));
        let updates = Arc::new(Mutex::new(Vec::new()));
        let system = System::new();
        let arbiters: Vec<Arbiter> =
            system.block_on(async { (0..3).map(|_| Arbiter::new()).collect() });
        let collector = {
            let updates = Arc::clone(&updates);
            Collector::start_in_arbiter(&arbiters[0].handle(), move |_| Collector(updates))
        };
        let indexer = Indexer::new(Arc::clone(&store), coin.reorg_limit).unwrap();
        let (caught_up, _) = tokio::sync::oneshot::channel();
        let settings = BlockProcessorSettings {
            coin,
            cache_mb: 64,
            flush_blocks: 0,
            // No compaction after the first sync in this test.
            compact_min_free: u64::MAX,
            poll_interval: POLL,
            stop: Arc::new(AtomicBool::new(false)),
            on_caught_up: caught_up,
            on_update: Vec::new(),
        };
        let processor = BlockProcessor::new(indexer, daemon.clone(), settings);
        BlockProcessor::start_in_arbiter(&arbiters[1].handle(), move |_| processor);
        let (on_synced, _) = tokio::sync::oneshot::channel();
        let settings = MempoolSettings {
            coin,
            poll_interval: POLL,
            on_synced,
            on_update: vec![collector.recipient()],
        };
        let actor = {
            let (mempool, daemon) = (Arc::clone(&mempool), daemon.clone());
            MempoolActor::start_in_arbiter(&arbiters[2].handle(), move |_| {
                MempoolActor::new(mempool, &daemon, store, settings)
            })
        };
        Running {
            mempool,
            actor,
            updates,
            daemon,
            arbiters,
            _system: system,
            _dir: dir,
        }
    }

    /// Waits until the mempool was refreshed at the daemon's height and holds `txids`.
    fn wait_for(&self, node: &Litecoind, txids: &HashSet<Txid>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let height = Height::new(node.height());
            {
                let mempool = self.mempool.read().unwrap();
                let held: HashSet<Txid> = txids
                    .iter()
                    .filter(|t| mempool.tx(t).is_some())
                    .copied()
                    .collect();
                if mempool.synced_height() == Some(height)
                    && held == *txids
                    && mempool.len() == txids.len()
                {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "mempool at height {:?} with {} txs; expected height {height} and {} txs",
                    mempool.synced_height(),
                    mempool.len(),
                    txids.len()
                );
            }
            self.actor.do_send(Refresh);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn touched_since(&self, from: usize) -> HashSet<HashX> {
        let updates = self.updates.lock().unwrap();
        updates[from..]
            .iter()
            .flat_map(|u| u.touched.iter().copied())
            .collect()
    }

    fn update_count(&self) -> usize {
        self.updates.lock().unwrap().len()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.daemon.shutdown();
        for arbiter in self.arbiters.drain(..) {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}

fn txid(value: &Value) -> Txid {
    Txid::from_str(value.as_str().unwrap()).unwrap()
}

fn hashx_of(script_hex: &str) -> HashX {
    ScriptHash::from_script(&from_hex(script_hex).unwrap()).hashx()
}

fn daemon_mempool(node: &Litecoind) -> HashSet<Txid> {
    node.call("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .map(txid)
        .collect()
}

/// Spends `vout` of `parent` to `outputs` (address → LTC, or "data" → hex), signed by
/// the wallet. Returns the txid.
fn spend(node: &Litecoind, parent: &Txid, vout: u32, outputs: Value) -> Txid {
    let raw = node.call(
        "createrawtransaction",
        json!([[{"txid": parent.to_string(), "vout": vout}], outputs]),
    );
    let signed = node.call("signrawtransactionwithwallet", json!([raw]));
    assert_eq!(signed["complete"], json!(true), "{signed}");
    txid(&node.call("sendrawtransaction", json!([signed["hex"]])))
}

/// The output of `tx` paying `address`.
fn vout_to(node: &Litecoind, tx: &Txid, address: &str) -> (u32, u64) {
    let decoded = node.call("getrawtransaction", json!([tx.to_string(), true]));
    decoded["vout"]
        .as_array()
        .unwrap()
        .iter()
        // litecoind 0.21 lists `addresses`; later daemons say `address`.
        .find(|out| {
            let spk = &out["scriptPubKey"];
            spk["address"] == json!(address) || spk["addresses"][0] == json!(address)
        })
        .map(|out| (out["n"].as_u64().unwrap() as u32, to_sats(&out["value"])))
        .unwrap_or_else(|| panic!("{tx} does not pay {address}: {decoded}"))
}

/// What the daemon says about its mempool (minus `skip`), per script and per tx.
#[derive(Default)]
struct DaemonView {
    /// txid → (fee, vsize, has unconfirmed parents)
    txs: HashMap<Txid, (u64, u32, bool)>,
    balance: HashMap<HashX, i64>,
    history: HashMap<HashX, Vec<MempoolEntry>>,
    unspent: HashMap<HashX, BTreeSet<(Txid, u32, u64)>>,
    spent: HashSet<OutPoint>,
    /// Confirmed outputs the mempool spends.
    spent_confirmed: Vec<OutPoint>,
}

fn daemon_view(node: &Litecoind, skip: &HashSet<Txid>) -> DaemonView {
    let txids: HashSet<Txid> = daemon_mempool(node).difference(skip).copied().collect();
    let decoded: HashMap<Txid, Value> = txids
        .iter()
        .map(|t| {
            (
                *t,
                node.call("getrawtransaction", json!([t.to_string(), true])),
            )
        })
        .collect();
    let mut view = DaemonView::default();
    for (t, tx) in &decoded {
        for input in tx["vin"].as_array().unwrap() {
            view.spent.insert(OutPoint {
                txid: txid(&input["txid"]),
                vout: input["vout"].as_u64().unwrap() as u32,
            });
        }
        let entry = node.call("getmempoolentry", json!([t.to_string()]));
        let depends = !entry["depends"].as_array().unwrap().is_empty();
        view.txs.insert(
            *t,
            (
                to_sats(&entry["fees"]["base"]),
                entry["vsize"].as_u64().unwrap() as u32,
                depends,
            ),
        );
    }
    for (t, tx) in &decoded {
        let (fee, _, depends) = view.txs[t];
        let mut scripts = BTreeSet::new();
        for input in tx["vin"].as_array().unwrap() {
            let prevout = OutPoint {
                txid: txid(&input["txid"]),
                vout: input["vout"].as_u64().unwrap() as u32,
            };
            let (script, value) = match decoded.get(&prevout.txid) {
                Some(parent) => {
                    let out = &parent["vout"][prevout.vout as usize];
                    (out["scriptPubKey"]["hex"].clone(), to_sats(&out["value"]))
                }
                None => {
                    view.spent_confirmed.push(prevout);
                    let out = node.call(
                        "gettxout",
                        json!([prevout.txid.to_string(), prevout.vout, false]),
                    );
                    (out["scriptPubKey"]["hex"].clone(), to_sats(&out["value"]))
                }
            };
            let hashx = hashx_of(script.as_str().unwrap());
            *view.balance.entry(hashx).or_default() -= value as i64;
            scripts.insert(hashx.0);
        }
        for out in tx["vout"].as_array().unwrap() {
            let script = out["scriptPubKey"]["hex"].as_str().unwrap();
            if is_unspendable(script) {
                continue;
            }
            let hashx = hashx_of(script);
            let (vout, value) = (out["n"].as_u64().unwrap() as u32, to_sats(&out["value"]));
            *view.balance.entry(hashx).or_default() += value as i64;
            scripts.insert(hashx.0);
            if !view.spent.contains(&OutPoint { txid: *t, vout }) {
                view.unspent
                    .entry(hashx)
                    .or_default()
                    .insert((*t, vout, value));
            }
        }
        for script in scripts {
            view.history
                .entry(HashX(script))
                .or_default()
                .push(MempoolEntry {
                    txid: *t,
                    height: if depends { -1 } else { 0 },
                    fee,
                });
        }
    }
    for entries in view.history.values_mut() {
        entries.sort_by_key(|e| (-e.height, e.txid.to_string()));
    }
    view
}

/// Every query of the mempool agrees with the daemon.
fn assert_matches_daemon(mempool: &Mempool, view: &DaemonView) {
    assert_eq!(mempool.len(), view.txs.len());
    for (t, (fee, vsize, depends)) in &view.txs {
        let tx = mempool.tx(t).unwrap_or_else(|| panic!("{t} missing"));
        assert_eq!(
            (tx.fee, tx.vsize, tx.has_unconfirmed_inputs),
            (*fee, *vsize, *depends),
            "fee, vsize, unconfirmed parents of {t}"
        );
    }
    for (hashx, history) in &view.history {
        assert_eq!(&mempool.history(hashx), history, "history of {hashx:?}");
        assert_eq!(
            mempool.balance_delta(hashx),
            view.balance[hashx],
            "balance of {hashx:?}"
        );
        let unspent: Vec<_> = view
            .unspent
            .get(hashx)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let mut got = mempool.unspent(hashx);
        got.sort();
        assert_eq!(got, unspent, "unspent of {hashx:?}");
    }
    for outpoint in &view.spent_confirmed {
        assert!(
            mempool.is_spent(outpoint),
            "{outpoint} spent in the mempool"
        );
    }
}

#[test]
fn mempool_follows_the_daemon() {
    let _ = env_logger::builder().is_test(true).try_init();
    let node = Litecoind::start();
    node.mine(110);
    let running = Running::start(&node);
    running.wait_for(&node, &HashSet::new());
    assert!(running.mempool.read().unwrap().fee_histogram().is_empty());

    // A chain of three unconfirmed transactions (the last with an OP_RETURN output),
    // wallet payments to each address kind, and a payment to several addresses.
    let from = running.update_count();
    let addresses: Vec<String> = ["bech32", "legacy", "p2sh-segwit"]
        .iter()
        .map(|kind| {
            node.call("getnewaddress", json!(["", kind]))
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let parent = txid(&node.call("sendtoaddress", json!([addresses[0], 2.0])));
    let (vout, _) = vout_to(&node, &parent, &addresses[0]);
    let child = spend(&node, &parent, vout, json!({ addresses[1].clone(): 1.999 }));
    let grandchild = spend(
        &node,
        &child,
        0,
        json!([{ addresses[2].clone(): 1.99 }, {"data": "cafe"}]),
    );
    for address in &addresses {
        node.call("sendtoaddress", json!([address, 0.5]));
    }
    let many: BTreeMap<&str, f64> = addresses.iter().map(|a| (a.as_str(), 0.25)).collect();
    node.call("sendmany", json!(["", many]));

    let expected = daemon_mempool(&node);
    assert_eq!(expected.len(), 7);
    running.wait_for(&node, &expected);
    let view = daemon_view(&node, &HashSet::new());
    {
        let mempool = running.mempool.read().unwrap();
        assert_matches_daemon(&mempool, &view);
        assert!(mempool.tx(&grandchild).unwrap().has_unconfirmed_inputs);
        assert_eq!(
            mempool.history(&hashx_of_address(&node, &addresses[2]))[0].height,
            0
        );
    }
    let touched = running.touched_since(from);
    for hashx in view.history.keys() {
        assert!(touched.contains(hashx), "{hashx:?} not announced");
    }

    // Only the parent is mined: its child is now at height 0, its grandchild still -1.
    let from = running.update_count();
    let tip = Height::new(node.height());
    node.call(
        "generateblock",
        json!([node.miner_address(), [parent.to_string()]]),
    );
    let expected = daemon_mempool(&node);
    assert!(!expected.contains(&parent) && expected.contains(&child));
    running.wait_for(&node, &expected);
    let view = daemon_view(&node, &HashSet::new());
    {
        let mempool = running.mempool.read().unwrap();
        assert_matches_daemon(&mempool, &view);
        assert!(!mempool.tx(&child).unwrap().has_unconfirmed_inputs);
        assert!(mempool.tx(&grandchild).unwrap().has_unconfirmed_inputs);
    }
    let updates = running.updates.lock().unwrap()[from..].to_vec();
    assert!(updates.iter().all(|u| u.height >= tip));
    assert!(
        updates.iter().any(|u| u.height == tip.next()),
        "no update at the new height"
    );
    assert!(
        running
            .touched_since(from)
            .contains(&hashx_of_address(&node, &addresses[0]))
    );

    // Everything is mined: the mempool empties and says so at the new height.
    node.mine(1);
    running.wait_for(&node, &HashSet::new());
    assert_eq!(running.mempool.read().unwrap().vsize(), 0);

    // Past MWEB activation: the peg-in waiting for block 432 is skipped, not dropped.
    node.mine(MWEB_ACTIVATION - 1 - node.height());
    let pegin = txid(&Value::String(node.mweb_pegin()));
    let marker = txid(&node.call("sendtoaddress", json!([addresses[1], 0.1])));
    assert!(daemon_mempool(&node).contains(&pegin));
    let skip: HashSet<Txid> = [pegin].into_iter().collect();
    let expected: HashSet<Txid> = daemon_mempool(&node).difference(&skip).copied().collect();
    assert!(expected.contains(&marker));
    running.wait_for(&node, &expected);
    assert_matches_daemon(&running.mempool.read().unwrap(), &daemon_view(&node, &skip));
    node.mine(1);
    running.wait_for(&node, &HashSet::new());
}

fn hashx_of_address(node: &Litecoind, address: &str) -> HashX {
    let info = node.call("getaddressinfo", json!([address]));
    hashx_of(info["scriptPubKey"].as_str().unwrap())
}
