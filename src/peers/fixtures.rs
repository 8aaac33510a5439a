//! Peers, tables and timers the unit tests of peer discovery share.

pub(super) use super::*;
pub(super) use crate::coins::PeerPorts;
pub(super) use crate::config::PeerDiscovery;
pub(super) use crate::rng::SplitMix64;
pub(super) use serde_json::{Map, Value, json};

pub(super) const PORTS: PeerPorts = PeerPorts {
    tcp: 50001,
    ssl: 50002,
};

pub(super) const TIMERS: PeerTimers = PeerTimers::ELECTRUMX;

pub(super) fn features(host: &str, tcp: Option<u16>, ssl: Option<u16>) -> Map<String, Value> {
    let mut ports = Map::new();
    if let Some(tcp) = tcp {
        ports.insert("tcp_port".into(), json!(tcp));
    }
    if let Some(ssl) = ssl {
        ports.insert("ssl_port".into(), json!(ssl));
    }
    let value = json!({
        "hosts": {host: ports},
        "pruning": null,
        "server_version": "ElectrumX 1.16.0",
        "protocol_min": "1.4",
        "protocol_max": "1.6",
        "genesis_hash": "abc",
        "hash_function": "sha256",
    });
    value.as_object().cloned().unwrap_or_default()
}

pub(super) fn peer(host: &str, tcp: u16) -> Peer {
    Peer::new(host, &features(host, Some(tcp), None), "test").expect("listed host")
}

pub(super) fn verified(host: &str, ip: &str, now: f64) -> Peer {
    let mut p = peer(host, 50001);
    p.ip_addr = Some(ip.into());
    p.last_good = now - 10.0;
    p
}

pub(super) fn table() -> PeerTable {
    PeerTable::new(SplitMix64::new(7))
}

pub(super) fn ids(events: &[PeerEvent]) -> Vec<PeerId> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Monitor(id) => Some(*id),
            PeerEvent::Retry(_) => None,
        })
        .collect()
}
