//! Deterministic keys and transaction signing outside the daemon's wallet. The wallet
//! syncs its database several times per transaction (about 0.1-0.2 s each on an ordinary
//! disk), far too slow for thousands of transactions; transactions signed here cost the
//! daemon only mempool acceptance.

use bitcoin::absolute::LockTime;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::hex::DisplayHex;
use bitcoin::script::{Builder as ScriptBuilder, PushBytesBuf};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Witness, base58, bech32, ecdsa,
};

use super::chain_builder::AddressKind;

/// Litecoin regtest address prefixes.
const P2PKH_VERSION: u8 = 111;
const P2SH_VERSION: u8 = 58;
const BECH32_HRP: &str = "rltc";

/// A key the harness holds, with the script it locks outputs to.
pub struct Key {
    pub kind: AddressKind,
    secret: SecretKey,
    public: CompressedPublicKey,
    pub script: ScriptBuf,
}

impl Key {
    /// The `n`th key of the harness: the same on every run.
    pub fn derive(secp: &Secp256k1<All>, n: u32, kind: AddressKind) -> Key {
        let seed = sha256::Hash::hash(format!("ferrumx harness key {n}").as_bytes());
        let secret = SecretKey::from_slice(seed.as_byte_array()).expect("valid secret key");
        let public = CompressedPublicKey(secret.public_key(secp));
        let script = match kind {
            AddressKind::Legacy => ScriptBuf::new_p2pkh(&public.pubkey_hash()),
            AddressKind::P2shSegwit => ScriptBuf::new_p2sh(&p2wpkh(&public).script_hash()),
            AddressKind::Bech32 => p2wpkh(&public),
        };
        Key {
            kind,
            secret,
            public,
            script,
        }
    }

    pub fn script_hex(&self) -> String {
        self.script.as_bytes().to_lower_hex_string()
    }

    /// The key's Litecoin regtest address.
    pub fn address(&self) -> String {
        match self.kind {
            AddressKind::Legacy => {
                base58_check(P2PKH_VERSION, self.public.pubkey_hash().as_byte_array())
            }
            AddressKind::P2shSegwit => base58_check(
                P2SH_VERSION,
                p2wpkh(&self.public).script_hash().as_byte_array(),
            ),
            AddressKind::Bech32 => {
                let hrp = bech32::Hrp::parse(BECH32_HRP).expect("valid hrp");
                bech32::segwit::encode_v0(hrp, self.public.wpubkey_hash().as_byte_array())
                    .expect("valid witness program")
            }
        }
    }
}

/// An output the harness can spend.
#[derive(Clone, Debug)]
pub struct Spendable {
    pub outpoint: OutPoint,
    pub value: u64,
    /// Index of the key (in the caller's key list) locking it.
    pub key: usize,
}

/// Builds a version-2 transaction spending `inputs` to `outputs` and signs every input
/// with SIGHASH_ALL.
pub fn sign(
    secp: &Secp256k1<All>,
    keys: &[Key],
    inputs: &[Spendable],
    outputs: Vec<TxOut>,
) -> Transaction {
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let mut signed = Vec::with_capacity(inputs.len());
    let mut cache = SighashCache::new(&tx);
    for (i, coin) in inputs.iter().enumerate() {
        let key = &keys[coin.key];
        let digest = match key.kind {
            AddressKind::Legacy => cache
                .legacy_signature_hash(i, &key.script, EcdsaSighashType::All.to_u32())
                .expect("input index in range")
                .to_byte_array(),
            AddressKind::P2shSegwit | AddressKind::Bech32 => cache
                .p2wpkh_signature_hash(
                    i,
                    &p2wpkh(&key.public),
                    Amount::from_sat(coin.value),
                    EcdsaSighashType::All,
                )
                .expect("p2wpkh script code")
                .to_byte_array(),
        };
        let signature = ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(digest), &key.secret),
            sighash_type: EcdsaSighashType::All,
        };
        signed.push((key, signature));
    }
    for (input, (key, signature)) in tx.input.iter_mut().zip(signed) {
        match key.kind {
            AddressKind::Legacy => {
                input.script_sig = ScriptBuilder::new()
                    .push_slice(signature.serialize())
                    .push_key(&PublicKey::new(key.public.0))
                    .into_script();
            }
            AddressKind::P2shSegwit => {
                let redeem = PushBytesBuf::try_from(p2wpkh(&key.public).into_bytes())
                    .expect("a p2wpkh script is a small push");
                input.script_sig = ScriptBuilder::new().push_slice(redeem).into_script();
                input.witness = Witness::p2wpkh(&signature, &key.public.0);
            }
            AddressKind::Bech32 => input.witness = Witness::p2wpkh(&signature, &key.public.0),
        }
    }
    tx
}

/// The hex the daemon's `sendrawtransaction` takes.
pub fn to_hex(tx: &Transaction) -> String {
    serialize_hex(tx)
}

fn p2wpkh(public: &CompressedPublicKey) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&public.wpubkey_hash())
}

fn base58_check(version: u8, payload: &[u8]) -> String {
    let mut data = vec![version];
    data.extend_from_slice(payload);
    base58::encode_check(&data)
}
