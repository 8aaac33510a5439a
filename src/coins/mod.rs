//! The networks ferrumx serves, as ElectrumX's `COIN`/`NET` pairs: genesis, ports, address
//! formats and the small per-coin rules the server needs. One static table, so that adding
//! a network is one entry and every rule about it is in one place.

mod peers;

use bitcoin::bech32::{Fe32, Hrp, segwit};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, base58};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// ElectrumX's default ports of peer servers that do not announce theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerPorts {
    pub tcp: u16,
    pub ssl: u16,
}

const MAINNET_PEER_PORTS: PeerPorts = PeerPorts {
    tcp: 50001,
    ssl: 50002,
};
const TESTNET_PEER_PORTS: PeerPorts = PeerPorts {
    tcp: 51001,
    ssl: 51002,
};

/// How `blockchain.estimatefee` targets are rounded before asking the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeTargets {
    /// Bitcoin Core's fee estimator buckets (ElectrumX `bucket_estimatefee_block_target`),
    /// so that nearby targets share one cached answer.
    BitcoinBuckets,
    /// Passed through unchanged.
    Identity,
}

/// One network of one coin. All values are ElectrumX's unless a comment says otherwise.
#[derive(Debug, PartialEq, Eq)]
pub struct Coin {
    /// ElectrumX's `COIN` name (matched case-insensitively).
    pub name: &'static str,
    /// ElectrumX's `NET` name.
    pub net: &'static str,
    /// Unit shown by the admin `query` command (ElectrumX `SHORTNAME`: test networks have
    /// their own, XTN and XLT).
    pub shortname: &'static str,
    /// Hash of block 0 in display (byte-reversed) hex.
    pub genesis_hex: &'static str,
    /// The daemon's default JSON-RPC port, used when DAEMON_URL gives none.
    pub rpc_port: u16,
    /// Default REORG_LIMIT: how many blocks of undo information to keep.
    pub reorg_limit: u32,
    /// Ports assumed for peers that announce a service without one.
    pub peer_ports: PeerPorts,
    /// Base58 version byte of P2PKH addresses.
    pub p2pkh_verbyte: u8,
    /// Base58 version bytes of P2SH addresses; the first is used when encoding.
    pub p2sh_verbytes: &'static [u8],
    /// Human-readable part of segwit (bech32/bech32m) addresses.
    pub bech32_hrp: &'static str,
    /// Whether blocks and transactions may carry MimbleWimble extension block data.
    pub mweb: bool,
    /// The daemon's data directory under the user's home, e.g. `.bitcoin`.
    pub daemon_dir: &'static str,
    /// The network's subdirectory of the data directory; empty on mainnet.
    pub net_dir: &'static str,
    /// Rounding of fee estimate targets.
    pub fee_targets: FeeTargets,
    /// How often the mempool fee histogram is recomputed, in seconds.
    pub histogram_refresh_secs: u64,
    /// Base units per coin (satoshis, litoshis).
    pub value_per_coin: u64,
    /// Default BLACKLIST_URL for peer discovery, if the coin has one.
    pub blacklist_url: Option<&'static str>,
    /// ElectrumX's hard-coded peers (`PEERS`), as real names: where discovery starts.
    pub peers: &'static [&'static str],
}

/// Every network ferrumx can serve.
pub static COINS: &[Coin] = &[
    Coin {
        name: "Bitcoin",
        net: "mainnet",
        shortname: "BTC",
        genesis_hex: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        rpc_port: 8332,
        reorg_limit: 200,
        peer_ports: MAINNET_PEER_PORTS,
        p2pkh_verbyte: 0x00,
        p2sh_verbytes: &[0x05],
        bech32_hrp: "bc",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: Some("https://electrum.org/blacklist.json"),
        peers: peers::BITCOIN_MAINNET,
    },
    Coin {
        name: "Bitcoin",
        net: "testnet",
        shortname: "XTN",
        genesis_hex: "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
        rpc_port: 18332,
        reorg_limit: 8000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0xc4],
        bech32_hrp: "tb",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "testnet3",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: peers::BITCOIN_TESTNET,
    },
    Coin {
        name: "Bitcoin",
        net: "testnet4",
        shortname: "XTN",
        genesis_hex: "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
        rpc_port: 48332,
        reorg_limit: 8000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0xc4],
        bech32_hrp: "tb",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "testnet4",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: peers::BITCOIN_TESTNET4,
    },
    Coin {
        name: "Bitcoin",
        net: "signet",
        shortname: "XTN",
        genesis_hex: "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        rpc_port: 38332,
        reorg_limit: 8000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0xc4],
        bech32_hrp: "tb",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "signet",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: &[],
    },
    // A custom signet (same genesis as signet; its daemon is a signet bitcoind).
    Coin {
        name: "Bitcoin",
        net: "mutinynet",
        shortname: "XTN",
        genesis_hex: "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        rpc_port: 38332,
        reorg_limit: 8000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0xc4],
        bech32_hrp: "tb",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "signet",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: peers::BITCOIN_MUTINYNET,
    },
    Coin {
        name: "Bitcoin",
        net: "regtest",
        shortname: "XTN",
        genesis_hex: "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        rpc_port: 18443,
        reorg_limit: 8000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0xc4],
        bech32_hrp: "bcrt",
        mweb: false,
        daemon_dir: ".bitcoin",
        net_dir: "regtest",
        fee_targets: FeeTargets::BitcoinBuckets,
        histogram_refresh_secs: 120,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: &[],
    },
    Coin {
        name: "Litecoin",
        net: "mainnet",
        shortname: "LTC",
        genesis_hex: "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
        rpc_port: 9332,
        reorg_limit: 800,
        peer_ports: MAINNET_PEER_PORTS,
        p2pkh_verbyte: 0x30,
        p2sh_verbytes: &[0x32, 0x05],
        bech32_hrp: "ltc",
        mweb: true,
        daemon_dir: ".litecoin",
        net_dir: "",
        fee_targets: FeeTargets::Identity,
        histogram_refresh_secs: 500,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: peers::LITECOIN_MAINNET,
    },
    Coin {
        name: "Litecoin",
        net: "testnet",
        shortname: "XLT",
        genesis_hex: "4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0",
        rpc_port: 19332,
        reorg_limit: 4000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0x3a, 0xc4],
        bech32_hrp: "tltc",
        mweb: true,
        daemon_dir: ".litecoin",
        net_dir: "testnet4",
        fee_targets: FeeTargets::Identity,
        histogram_refresh_secs: 500,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: peers::LITECOIN_TESTNET,
    },
    Coin {
        name: "Litecoin",
        net: "regtest",
        shortname: "XLT",
        genesis_hex: "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9",
        // litecoind's real regtest default. ElectrumX inherits 19332 from its testnet class,
        // so there DAEMON_URL must name the port; here both forms work.
        rpc_port: 19443,
        reorg_limit: 4000,
        peer_ports: TESTNET_PEER_PORTS,
        p2pkh_verbyte: 0x6f,
        p2sh_verbytes: &[0x3a, 0xc4],
        bech32_hrp: "rltc",
        mweb: true,
        daemon_dir: ".litecoin",
        net_dir: "regtest",
        fee_targets: FeeTargets::Identity,
        histogram_refresh_secs: 500,
        value_per_coin: 100_000_000,
        blacklist_url: None,
        peers: &[],
    },
];

/// An unknown COIN or NET.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinError {
    #[error("unknown coin {coin:?}; accepted: {accepted}")]
    UnknownCoin { coin: String, accepted: String },
    #[error("{coin} has no network {net:?}; accepted: {accepted}")]
    UnknownNet {
        coin: &'static str,
        net: String,
        accepted: String,
    },
}

/// Finds a network by ElectrumX's COIN and NET values (both case-insensitive).
pub fn lookup(coin: &str, net: &str) -> Result<&'static Coin, CoinError> {
    let (coin, net) = (coin.trim(), net.trim());
    let of_coin: Vec<&'static Coin> = COINS
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(coin))
        .collect();
    let Some(first) = of_coin.first() else {
        return Err(CoinError::UnknownCoin {
            coin: coin.to_owned(),
            accepted: accepted_list(),
        });
    };
    of_coin
        .iter()
        .find(|c| c.net.eq_ignore_ascii_case(net))
        .copied()
        .ok_or_else(|| CoinError::UnknownNet {
            coin: first.name,
            net: net.to_owned(),
            accepted: nets_of(first.name).join(", "),
        })
}

/// The networks whose genesis block is `hash` (signet and mutinynet share one).
pub fn by_genesis(hash: &BlockHash) -> Vec<&'static Coin> {
    COINS.iter().filter(|c| c.genesis_hash() == *hash).collect()
}

fn nets_of(name: &str) -> Vec<&'static str> {
    COINS
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.net)
        .collect()
}

/// "Bitcoin (mainnet, testnet, ...), Litecoin (mainnet, ...)", for error messages.
fn accepted_list() -> String {
    let mut names: Vec<&'static str> = COINS.iter().map(|c| c.name).collect();
    names.dedup();
    names
        .iter()
        .map(|name| format!("{name} ({})", nets_of(name).join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An address this coin cannot pay to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{address:?} is not a valid base58 or bech32 address (bad character or checksum)")]
    Malformed { address: String },
    #[error("{address:?} has version byte {verbyte:#04x}: not P2PKH or P2SH on {coin} {net}")]
    WrongVersion {
        address: String,
        verbyte: u8,
        coin: &'static str,
        net: &'static str,
    },
    #[error("{address:?} is a segwit address for {hrp:?}, but {coin} {net} uses {expected:?}")]
    WrongHrp {
        address: String,
        hrp: String,
        expected: &'static str,
        coin: &'static str,
        net: &'static str,
    },
}

const OP_0: u8 = 0x00;
const OP_1: u8 = 0x51;
const OP_DUP: u8 = 0x76;
const OP_HASH160: u8 = 0xa9;
const OP_EQUAL: u8 = 0x87;
const OP_EQUALVERIFY: u8 = 0x88;
const OP_CHECKSIG: u8 = 0xac;

impl Coin {
    /// The genesis block hash. The table is checked by a unit test, so parsing cannot fail
    /// for a table entry; a malformed entry would yield the all-zero hash.
    pub fn genesis_hash(&self) -> BlockHash {
        BlockHash::from_str(self.genesis_hex).unwrap_or_else(|_| BlockHash::all_zeros())
    }

    /// The daemon's cookie file inside the data directory `data_dir` (e.g. `~/.bitcoin`).
    pub fn cookie_file(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.net_dir).join(".cookie")
    }

    /// The daemon's default cookie file for a user whose home directory is `home`.
    pub fn default_cookie_file(&self, home: &Path) -> PathBuf {
        self.cookie_file(&home.join(self.daemon_dir))
    }

    /// Rounds a `blockchain.estimatefee` target as ElectrumX does for this coin.
    pub fn bucket_estimatefee_block_target(&self, n: u32) -> u32 {
        match self.fee_targets {
            FeeTargets::Identity => n,
            // Bitcoin Core's estimator horizons (policy/fees.h): exact up to 12 blocks, then
            // 2-block steps to 48, then 24-block steps to 1008; 25 is common enough to keep.
            FeeTargets::BitcoinBuckets => match n {
                0..=1 => 1,
                2..=12 => n,
                25 => 25,
                13..=48 => n / 2 * 2,
                49..=1008 => n / 24 * 24,
                _ => 1008,
            },
        }
    }

    /// How often the mempool fee histogram is recomputed.
    pub fn histogram_refresh(&self) -> Duration {
        Duration::from_secs(self.histogram_refresh_secs)
    }

    /// The scriptPubKey an address of this network pays to: base58 P2PKH or P2SH with
    /// this coin's version bytes, or a segwit program of any version with this coin's
    /// bech32 prefix (bech32 for v0, bech32m for v1+, as BIP-350 requires).
    pub fn address_to_script(&self, address: &str) -> Result<Vec<u8>, AddressError> {
        if let Ok((hrp, version, program)) = segwit::decode(address) {
            if hrp != Hrp::parse_unchecked(self.bech32_hrp) {
                return Err(AddressError::WrongHrp {
                    address: address.to_owned(),
                    hrp: hrp.to_lowercase(),
                    expected: self.bech32_hrp,
                    coin: self.name,
                    net: self.net,
                });
            }
            return Ok(witness_script(version.to_u8(), &program));
        }
        let raw = base58::decode_check(address).map_err(|_| AddressError::Malformed {
            address: address.to_owned(),
        })?;
        let [verbyte, hash @ ..] = raw.as_slice() else {
            return Err(AddressError::Malformed {
                address: address.to_owned(),
            });
        };
        if hash.len() != 20 {
            return Err(AddressError::Malformed {
                address: address.to_owned(),
            });
        }
        if *verbyte == self.p2pkh_verbyte {
            let mut script = vec![OP_DUP, OP_HASH160, 20];
            script.extend_from_slice(hash);
            script.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
            Ok(script)
        } else if self.p2sh_verbytes.contains(verbyte) {
            let mut script = vec![OP_HASH160, 20];
            script.extend_from_slice(hash);
            script.push(OP_EQUAL);
            Ok(script)
        } else {
            Err(AddressError::WrongVersion {
                address: address.to_owned(),
                verbyte: *verbyte,
                coin: self.name,
                net: self.net,
            })
        }
    }

    /// The address of a standard scriptPubKey (P2PKH, P2SH, witness program), or `None`
    /// for scripts that have no address (bare multisig, OP_RETURN, ...).
    pub fn script_to_address(&self, script: &[u8]) -> Option<String> {
        match script {
            [
                OP_DUP,
                OP_HASH160,
                20,
                hash @ ..,
                OP_EQUALVERIFY,
                OP_CHECKSIG,
            ] if hash.len() == 20 => Some(base58check(self.p2pkh_verbyte, hash)),
            [OP_HASH160, 20, hash @ .., OP_EQUAL] if hash.len() == 20 => {
                Some(base58check(*self.p2sh_verbytes.first()?, hash))
            }
            [op, len, program @ ..] if usize::from(*len) == program.len() => {
                let version = match *op {
                    OP_0 => 0,
                    OP_1..=0x60 => op - OP_1 + 1,
                    _ => return None,
                };
                let version = Fe32::try_from(version).ok()?;
                segwit::encode(Hrp::parse_unchecked(self.bech32_hrp), version, program).ok()
            }
            _ => None,
        }
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.net)
    }
}

fn base58check(verbyte: u8, hash: &[u8]) -> String {
    let mut data = Vec::with_capacity(1 + hash.len());
    data.push(verbyte);
    data.extend_from_slice(hash);
    base58::encode_check(&data)
}

fn witness_script(version: u8, program: &[u8]) -> Vec<u8> {
    let mut script = Vec::with_capacity(2 + program.len());
    script.push(if version == 0 {
        OP_0
    } else {
        OP_1 + version - 1
    });
    // segwit::decode guarantees 2..=40 bytes, so the length is a single push opcode.
    script.push(program.len() as u8);
    script.extend_from_slice(program);
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashes::{from_hex, to_hex};

    fn coin(name: &str, net: &str) -> &'static Coin {
        lookup(name, net).unwrap()
    }

    #[test]
    fn genesis_hashes_parse_and_round_trip() {
        for c in COINS {
            assert_ne!(c.genesis_hash(), BlockHash::all_zeros(), "{c}");
            assert_eq!(c.genesis_hash().to_string(), c.genesis_hex, "{c}");
        }
        let btc = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).block_hash();
        assert_eq!(coin("Bitcoin", "mainnet").genesis_hash(), btc);
        for (net, network) in [
            ("testnet", bitcoin::Network::Testnet),
            ("testnet4", bitcoin::Network::Testnet4),
            ("signet", bitcoin::Network::Signet),
            ("regtest", bitcoin::Network::Regtest),
        ] {
            let expected = bitcoin::constants::genesis_block(network).block_hash();
            assert_eq!(coin("bitcoin", net).genesis_hash(), expected, "{net}");
        }
        assert_eq!(
            by_genesis(&coin("Litecoin", "regtest").genesis_hash()),
            vec![coin("Litecoin", "regtest")]
        );
        assert_eq!(
            by_genesis(&coin("Bitcoin", "signet").genesis_hash()).len(),
            2
        );
    }

    #[test]
    fn table_has_one_entry_per_name_and_net_and_valid_hrps() {
        for (i, a) in COINS.iter().enumerate() {
            assert!(Hrp::parse(a.bech32_hrp).is_ok(), "{a}");
            assert!(!a.p2sh_verbytes.is_empty(), "{a}");
            for b in &COINS[i + 1..] {
                assert!(a.name != b.name || a.net != b.net, "{a} twice");
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_errors_list_choices() {
        assert_eq!(coin("LITECOIN", " Regtest ").rpc_port, 19443);
        assert_eq!(coin("bitcoin", "testnet").net_dir, "testnet3");
        let err = lookup("Dogecoin", "mainnet").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown coin \"Dogecoin\"; accepted: Bitcoin (mainnet, testnet, testnet4, signet, \
             mutinynet, regtest), Litecoin (mainnet, testnet, regtest)"
        );
        let err = lookup("litecoin", "signet").unwrap_err().to_string();
        assert_eq!(
            err,
            "Litecoin has no network \"signet\"; accepted: mainnet, testnet, regtest"
        );
    }

    #[test]
    fn ports_limits_and_cookie_paths() {
        let home = Path::new("/home/u");
        let cases = [
            ("Bitcoin", "mainnet", 8332, 200, "/home/u/.bitcoin/.cookie"),
            (
                "Bitcoin",
                "testnet",
                18332,
                8000,
                "/home/u/.bitcoin/testnet3/.cookie",
            ),
            (
                "Bitcoin",
                "testnet4",
                48332,
                8000,
                "/home/u/.bitcoin/testnet4/.cookie",
            ),
            (
                "Bitcoin",
                "signet",
                38332,
                8000,
                "/home/u/.bitcoin/signet/.cookie",
            ),
            (
                "Bitcoin",
                "regtest",
                18443,
                8000,
                "/home/u/.bitcoin/regtest/.cookie",
            ),
            (
                "Litecoin",
                "mainnet",
                9332,
                800,
                "/home/u/.litecoin/.cookie",
            ),
            (
                "Litecoin",
                "testnet",
                19332,
                4000,
                "/home/u/.litecoin/testnet4/.cookie",
            ),
            (
                "Litecoin",
                "regtest",
                19443,
                4000,
                "/home/u/.litecoin/regtest/.cookie",
            ),
        ];
        for (name, net, port, reorg, cookie) in cases {
            let c = coin(name, net);
            assert_eq!((c.rpc_port, c.reorg_limit), (port, reorg), "{c}");
            assert_eq!(c.default_cookie_file(home), PathBuf::from(cookie), "{c}");
        }
        assert_eq!(coin("Bitcoin", "mainnet").peer_ports.ssl, 50002);
        assert_eq!(coin("Litecoin", "testnet").peer_ports.tcp, 51001);
        assert!(coin("Litecoin", "mainnet").mweb && !coin("Bitcoin", "mainnet").mweb);
        assert_eq!(
            coin("Litecoin", "mainnet").histogram_refresh().as_secs(),
            500
        );
        assert_eq!(
            coin("Bitcoin", "regtest").histogram_refresh().as_secs(),
            120
        );
    }

    #[test]
    fn estimatefee_targets_are_bucketed_for_bitcoin_only() {
        let btc = coin("Bitcoin", "mainnet");
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (12, 12),
            (13, 12),
            (25, 25),
            (27, 26),
            (48, 48),
            (49, 48),
            (100, 96),
            (1008, 1008),
            (5000, 1008),
        ];
        for (n, bucket) in cases {
            assert_eq!(btc.bucket_estimatefee_block_target(n), bucket, "{n}");
        }
        assert_eq!(
            coin("Litecoin", "mainnet").bucket_estimatefee_block_target(27),
            27
        );
    }

    /// (coin, net, address, scriptPubKey hex), all paying to the same 20-byte hash (and a
    /// 32-byte v1 program). The Litecoin ones were checked with litecoind 0.21.2
    /// `validateaddress` on each network; the Bitcoin ones are checked against the `bitcoin`
    /// crate's address parser below.
    const VECTORS: &[(&str, &str, &str, &str)] = &[
        (
            "Bitcoin",
            "mainnet",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        (
            "Bitcoin",
            "mainnet",
            "3Ai1JZ8pdJb2ksieUV8FsxSNVJCpoPi8W6",
            "a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1887",
        ),
        (
            "Bitcoin",
            "mainnet",
            "bc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rcc4048ry",
            "001462e907b15cbf27d5425399ebf6f0fb50ebb88f18",
        ),
        (
            "Bitcoin",
            "testnet",
            "tb1pvt5s0v2uhuna2sjnn84ldu8m2r4m3rccvt5s0v2uhuna2sjnn84sk64sl4",
            "512062e907b15cbf27d5425399ebf6f0fb50ebb88f1862e907b15cbf27d5425399eb",
        ),
        (
            "Bitcoin",
            "regtest",
            "bcrt1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccaqhe07",
            "001462e907b15cbf27d5425399ebf6f0fb50ebb88f18",
        ),
        (
            "Litecoin",
            "mainnet",
            "LUEweDxDA4WhvWiNXXSxjM9CYzHPJv4QQF",
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        (
            "Litecoin",
            "mainnet",
            "MGv9cSYnaRSTZNzYaN7bhbgmozoGkKBvCn",
            "a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1887",
        ),
        (
            "Litecoin",
            "mainnet",
            "ltc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rcc3n0rm5",
            "001462e907b15cbf27d5425399ebf6f0fb50ebb88f18",
        ),
        (
            "Litecoin",
            "mainnet",
            "ltc1pvt5s0v2uhuna2sjnn84ldu8m2r4m3rccvt5s0v2uhuna2sjnn84szkd0ll",
            "512062e907b15cbf27d5425399ebf6f0fb50ebb88f1862e907b15cbf27d5425399eb",
        ),
        (
            "Litecoin",
            "testnet",
            "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt",
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        (
            "Litecoin",
            "testnet",
            "QVcyVJw6Fs9U6r7Emin9abs4r2rpPhBE1A",
            "a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1887",
        ),
        (
            "Litecoin",
            "testnet",
            "tltc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccxpv2g7",
            "001462e907b15cbf27d5425399ebf6f0fb50ebb88f18",
        ),
        (
            "Litecoin",
            "regtest",
            "rltc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccrddscq",
            "001462e907b15cbf27d5425399ebf6f0fb50ebb88f18",
        ),
        (
            "Litecoin",
            "regtest",
            "rltc1pvt5s0v2uhuna2sjnn84ldu8m2r4m3rccvt5s0v2uhuna2sjnn84snq4f9z",
            "512062e907b15cbf27d5425399ebf6f0fb50ebb88f1862e907b15cbf27d5425399eb",
        ),
    ];

    #[test]
    fn addresses_convert_both_ways() {
        for (name, net, address, script) in VECTORS {
            let c = coin(name, net);
            let script = from_hex(script).unwrap();
            assert_eq!(
                c.address_to_script(address),
                Ok(script.clone()),
                "{address}"
            );
            assert_eq!(c.script_to_address(&script).as_deref(), Some(*address));
            let bech32 = address.starts_with(&format!("{}1", c.bech32_hrp));
            assert_eq!(
                c.address_to_script(&address.to_uppercase()).is_ok(),
                bech32,
                "upper case is valid only for bech32: {address}"
            );
        }
    }

    #[test]
    fn litecoin_accepts_legacy_p2sh_version_but_encodes_the_new_one() {
        let ltc = coin("Litecoin", "mainnet");
        let script = "a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1887";
        let legacy = ltc.address_to_script("3Ai1JZ8pdJb2ksieUV8FsxSNVJCpoPi8W6");
        assert_eq!(legacy.map(|s| to_hex(&s)).as_deref(), Ok(script));
        let encoded = ltc.script_to_address(&from_hex(script).unwrap()).unwrap();
        assert!(encoded.starts_with('M'));
    }

    #[test]
    fn bitcoin_vectors_agree_with_the_bitcoin_crate() {
        for (name, net, address, script) in VECTORS.iter().filter(|v| v.0 == "Bitcoin") {
            let network = match *net {
                "mainnet" => bitcoin::Network::Bitcoin,
                "testnet" => bitcoin::Network::Testnet,
                _ => bitcoin::Network::Regtest,
            };
            let parsed = bitcoin::Address::from_str(address)
                .unwrap()
                .require_network(network)
                .unwrap();
            assert_eq!(
                to_hex(parsed.script_pubkey().as_bytes()),
                *script,
                "{name} {address}"
            );
        }
    }

    #[test]
    fn wrong_network_addresses_are_rejected_with_reasons() {
        let ltc = coin("Litecoin", "mainnet");
        assert_eq!(
            ltc.address_to_script("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
            Err(AddressError::WrongVersion {
                address: "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".into(),
                verbyte: 0,
                coin: "Litecoin",
                net: "mainnet",
            })
        );
        let err = ltc
            .address_to_script("bc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rcc4048ry")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"bc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rcc4048ry\" is a segwit address for \"bc\", \
             but Litecoin mainnet uses \"ltc\""
        );
        assert!(matches!(
            ltc.address_to_script("LUEweDxDA4WhvWiNXXSxjM9CYzHPJv4QQG"),
            Err(AddressError::Malformed { .. })
        ));
        assert!(matches!(
            ltc.address_to_script("ltc1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rcc3n0rm6"),
            Err(AddressError::Malformed { .. })
        ));
        assert!(ltc.address_to_script("").is_err());
    }

    #[test]
    fn scripts_without_address_give_none() {
        let btc = coin("Bitcoin", "mainnet");
        assert_eq!(btc.script_to_address(&[]), None);
        assert_eq!(
            btc.script_to_address(&from_hex("6a0401020304").unwrap()),
            None
        );
        // OP_1 with a one-byte push: below the 2-byte minimum of a witness program.
        assert_eq!(btc.script_to_address(&from_hex("510101").unwrap()), None);
    }
}
