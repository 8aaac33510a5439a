//! What peer discovery is told at start-up and keeps for as long as the server runs.

use super::peer::Peer;
use crate::coins::{Coin, PeerPorts};
use crate::config::{Config, PeerDiscovery};
use serde_json::Value;

/// What does not change while the server runs.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    pub discovery: PeerDiscovery,
    pub announce: bool,
    pub force_proxy: bool,
    pub default_ports: PeerPorts,
    pub genesis_hex: &'static str,
    /// The coin's hard-coded peers, where discovery starts.
    pub coin_peers: &'static [&'static str],
    /// This server as REPORT_SERVICES describes it, one peer per host.
    pub myselves: Vec<Peer>,
}

impl PeerSettings {
    /// No discovery (what a server without configuration, or a test, gets).
    pub fn disabled(coin: &'static Coin) -> PeerSettings {
        PeerSettings {
            discovery: PeerDiscovery::Off,
            announce: false,
            force_proxy: false,
            default_ports: coin.peer_ports,
            genesis_hex: coin.genesis_hex,
            coin_peers: coin.peers,
            myselves: Vec::new(),
        }
    }

    /// From the configuration; `features` is this server's `server.features`.
    pub fn from_config(config: &Config, features: &Value) -> PeerSettings {
        let map = features.as_object().cloned().unwrap_or_default();
        let hosts: Vec<String> = map
            .get("hosts")
            .and_then(Value::as_object)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default();
        PeerSettings {
            discovery: config.peer_discovery,
            announce: config.peer_announce,
            force_proxy: config.force_proxy,
            default_ports: config.coin.peer_ports,
            genesis_hex: config.coin.genesis_hex,
            coin_peers: config.coin.peers,
            myselves: hosts
                .iter()
                .filter_map(|host| Peer::new(host, &map, "env"))
                .collect(),
        }
    }
}
