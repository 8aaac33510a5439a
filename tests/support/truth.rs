//! What a correct index must contain, computed independently of ferrumx: a plain walk over
//! the daemon's blocks (`getblock <hash> 2`) that tracks every output and its spender.
//! End-to-end tests compare ferrumx's answers with the ElectrumX-shaped JSON built here.
//!
//! MWEB needs no special case: from block 432 on, each block ends with a HogEx, an
//! ordinary-looking transaction whose inputs spend the previous HogEx's first output and
//! the block's peg-in outputs (`witness_mweb_pegin` scripts) and whose outputs pay the
//! HogAddr (`witness_mweb_hogaddr`) and then any peg-outs. MWEB-internal transactions are
//! absent from the block's `tx` list; inputs or outputs marked `ismweb` would be skipped.

use std::collections::{BTreeMap, HashMap};

use bitcoin::hashes::{Hash, sha256};
use bitcoin::hex::{DisplayHex, FromHex};
use serde_json::{Value, json};

use super::litecoind::Litecoind;

/// An unspent output as the index must report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utxo {
    pub txid: String,
    pub vout: u32,
    pub height: u32,
    pub value: u64,
}

/// Everything known about one scriptPubKey.
#[derive(Clone, Debug, Default)]
pub struct ScriptTruth {
    /// Every transaction that funds or spends the script, in blockchain order, each once.
    pub history: Vec<(String, u32)>,
    /// Unspent outputs in blockchain order (height, position in block, vout).
    pub utxos: Vec<Utxo>,
    /// Sum of every output ever paid to the script, spent or not.
    pub received: u64,
}

impl ScriptTruth {
    pub fn balance(&self) -> u64 {
        self.utxos.iter().map(|u| u.value).sum()
    }
}

/// The expected index of the daemon's chain at the moment it was computed.
#[derive(Clone, Debug)]
pub struct Truth {
    pub tip: u32,
    /// Block hashes by height, genesis included.
    pub block_hashes: Vec<String>,
    /// Transactions in blocks 1..=tip, coinbases included.
    pub tx_count: usize,
    scripts: BTreeMap<String, ScriptTruth>,
    script_of_hash: HashMap<String, String>,
}

/// Where an unspent output sits, as a sort key: (height, position in block, vout).
type OutputKey = (u32, u32, u32);

/// An output not yet spent, found again when an input names it.
struct LiveOutput {
    script: String,
    key: OutputKey,
}

impl Truth {
    /// Walks blocks 1..=tip (the genesis output is unspendable and never indexed).
    pub fn from_daemon(node: &Litecoind) -> Truth {
        let tip = node.height();
        let mut block_hashes = vec![as_string(&node.call("getblockhash", json!([0])))];
        let mut live: HashMap<(String, u32), LiveOutput> = HashMap::new();
        let mut unspent: BTreeMap<String, BTreeMap<OutputKey, Utxo>> = BTreeMap::new();
        let mut scripts: BTreeMap<String, ScriptTruth> = BTreeMap::new();
        let mut tx_count = 0;
        for height in 1..=tip {
            let hash = as_string(&node.call("getblockhash", json!([height])));
            let block = node.call("getblock", json!([hash, 2]));
            for (pos, tx) in field_array(&block, "tx").iter().enumerate() {
                let pos = pos as u32;
                let txid = as_string(&tx["txid"]);
                for input in field_array(tx, "vin") {
                    // Coinbase inputs spend nothing; MWEB inputs spend MWEB outputs, which
                    // never appear among canonical outputs.
                    if input.get("coinbase").is_some() || is_mweb(input) {
                        continue;
                    }
                    let prevout = (as_string(&input["txid"]), as_u32(&input["vout"]));
                    let spent = live.remove(&prevout).unwrap_or_else(|| {
                        panic!("{txid} at height {height} spends unknown output {prevout:?}")
                    });
                    unspent
                        .get_mut(&spent.script)
                        .and_then(|m| m.remove(&spent.key))
                        .expect("a live output is in the unspent set");
                    let entry = scripts.get_mut(&spent.script).expect("script seen");
                    push_once(&mut entry.history, &txid, height);
                }
                for output in field_array(tx, "vout") {
                    if is_mweb(output) {
                        continue;
                    }
                    let script = as_string(&output["scriptPubKey"]["hex"]);
                    if is_unspendable(&script) {
                        continue;
                    }
                    let vout = as_u32(&output["n"]);
                    let value = to_sats(&output["value"]);
                    let key = (height, pos, vout);
                    let utxo = Utxo {
                        txid: txid.clone(),
                        vout,
                        height,
                        value,
                    };
                    unspent.entry(script.clone()).or_default().insert(key, utxo);
                    let entry = scripts.entry(script.clone()).or_default();
                    entry.received += value;
                    push_once(&mut entry.history, &txid, height);
                    live.insert((txid.clone(), vout), LiveOutput { script, key });
                }
                tx_count += 1;
            }
            block_hashes.push(hash);
        }
        for (script, outputs) in unspent {
            let entry = scripts.get_mut(&script).expect("script seen");
            entry.utxos = outputs.into_values().collect();
        }
        let script_of_hash = scripts
            .keys()
            .map(|script| (scripthash(script), script.clone()))
            .collect();
        Truth {
            tip,
            block_hashes,
            tx_count,
            scripts,
            script_of_hash,
        }
    }

    /// Every indexed scriptPubKey (hex) with what is known about it.
    pub fn scripts(&self) -> impl Iterator<Item = (&String, &ScriptTruth)> {
        self.scripts.iter()
    }

    /// Every indexed script's electrum scripthash.
    pub fn scripthashes(&self) -> impl Iterator<Item = &String> {
        self.script_of_hash.keys()
    }

    /// The script behind a scripthash, if the chain ever paid it.
    pub fn script_of(&self, scripthash: &str) -> Option<&str> {
        self.script_of_hash.get(scripthash).map(String::as_str)
    }

    /// What is known about a scriptPubKey (hex); `None` if the chain never paid it.
    pub fn script(&self, script_hex: &str) -> Option<&ScriptTruth> {
        self.scripts.get(script_hex)
    }

    /// The script with the longest history (the miner's or the chain builder's heavy
    /// address).
    pub fn busiest_script(&self) -> Option<(&String, &ScriptTruth)> {
        self.scripts.iter().max_by_key(|(_, s)| s.history.len())
    }

    fn by_scripthash(&self, scripthash: &str) -> Option<&ScriptTruth> {
        self.script_of(scripthash).and_then(|s| self.scripts.get(s))
    }

    /// `blockchain.scripthash.get_history` with an empty mempool.
    pub fn expected_history(&self, scripthash: &str) -> Value {
        let history = self
            .by_scripthash(scripthash)
            .map_or(&[][..], |s| &s.history);
        history
            .iter()
            .map(|(txid, height)| json!({"tx_hash": txid, "height": height}))
            .collect()
    }

    /// `blockchain.scripthash.listunspent` with an empty mempool.
    pub fn expected_listunspent(&self, scripthash: &str) -> Value {
        let utxos = self.by_scripthash(scripthash).map_or(&[][..], |s| &s.utxos);
        utxos
            .iter()
            .map(|u| {
                json!({"tx_hash": u.txid, "tx_pos": u.vout, "height": u.height, "value": u.value})
            })
            .collect()
    }

    /// `blockchain.scripthash.get_balance` with an empty mempool.
    pub fn expected_balance(&self, scripthash: &str) -> Value {
        let confirmed = self
            .by_scripthash(scripthash)
            .map_or(0, ScriptTruth::balance);
        json!({"confirmed": confirmed, "unconfirmed": 0})
    }

    /// `blockchain.scripthash.subscribe`'s status with an empty mempool: sha256 (not
    /// reversed) of the concatenated "txid:height:", or null without history.
    pub fn expected_status(&self, scripthash: &str) -> Value {
        let history = self
            .by_scripthash(scripthash)
            .map_or(&[][..], |s| &s.history);
        if history.is_empty() {
            return Value::Null;
        }
        let text: String = history
            .iter()
            .map(|(txid, height)| format!("{txid}:{height}:"))
            .collect();
        let digest = sha256::Hash::hash(text.as_bytes()).to_byte_array();
        Value::String(digest.to_lower_hex_string())
    }
}

/// The electrum scripthash of a scriptPubKey given as hex: sha256 of the script bytes,
/// byte-reversed, as hex.
pub fn scripthash(script_hex: &str) -> String {
    let bytes = Vec::<u8>::from_hex(script_hex)
        .unwrap_or_else(|e| panic!("script {script_hex:?} is not hex: {e}"));
    let mut digest = sha256::Hash::hash(&bytes).to_byte_array();
    digest.reverse();
    digest.to_lower_hex_string()
}

/// A daemon decimal amount (JSON number) in satoshis. Amounts have at most 8 decimals and
/// are far below 2^53 satoshis, so rounding the scaled double is exact.
pub fn to_sats(amount: &Value) -> u64 {
    let coins = amount
        .as_f64()
        .unwrap_or_else(|| panic!("amount {amount} is not a number"));
    assert!(coins >= 0.0, "negative amount {amount}");
    (coins * 100_000_000.0).round() as u64
}

/// ElectrumX's rule for outputs it never indexes: OP_RETURN, or OP_0 OP_RETURN.
pub fn is_unspendable(script_hex: &str) -> bool {
    script_hex.starts_with("6a") || script_hex.starts_with("006a")
}

fn is_mweb(item: &Value) -> bool {
    item.get("ismweb").and_then(Value::as_bool) == Some(true)
}

fn push_once(history: &mut Vec<(String, u32)>, txid: &str, height: u32) {
    if history.last().is_none_or(|(last, _)| last != txid) {
        history.push((txid.to_string(), height));
    }
}

fn field_array<'v>(value: &'v Value, key: &str) -> &'v Vec<Value> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("expected array field {key:?} in {value}"))
}

fn as_string(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_string()
}

fn as_u32(value: &Value) -> u32 {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| panic!("expected a small integer, got {value}"))
}
