//! The peer state shared by the Peers actor (which checks peers), client sessions
//! (`server.peers.subscribe`, `server.add_peer`) and the admin interface, behind one
//! lock, and how the actor hears of work.

use super::peer::Peer;
use super::schedule::PeerTimers;
use super::settings::PeerSettings;
use super::table::{PeerEvent, PeerTable};
use crate::config::PeerDiscovery;
use crate::net::canonical_ip;
use crate::rng::SplitMix64;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// The peer state shared by the Peers actor (which checks peers), client sessions
/// (`server.peers.subscribe`, `server.add_peer`) and the admin interface.
pub struct PeerDirectory {
    settings: PeerSettings,
    table: Mutex<PeerTable>,
    /// Set when the Peers actor starts: how it hears of work.
    actor: OnceLock<Box<dyn Fn(PeerEvent) + Send + Sync>>,
}

impl std::fmt::Debug for PeerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDirectory")
            .field("settings", &self.settings)
            .field("running", &self.is_running())
            .finish()
    }
}

impl PeerDirectory {
    pub fn new(settings: PeerSettings) -> PeerDirectory {
        PeerDirectory {
            settings,
            table: Mutex::new(PeerTable::new(SplitMix64::from_time())),
            actor: OnceLock::new(),
        }
    }

    pub fn settings(&self) -> &PeerSettings {
        &self.settings
    }

    /// The table, locked (hold it only briefly, never across a wait).
    pub fn table(&self) -> MutexGuard<'_, PeerTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Peers actor takes charge: `notify` is how it hears of peers to check;
    /// `allow_loopback` and `timers` are for tests. False if it was already started.
    pub fn start(
        &self,
        notify: Box<dyn Fn(PeerEvent) + Send + Sync>,
        allow_loopback: bool,
        timers: PeerTimers,
    ) -> bool {
        {
            self.table().configure(allow_loopback, timers);
        }
        self.actor.set(notify).is_ok()
    }

    pub fn is_running(&self) -> bool {
        self.actor.get().is_some()
    }

    /// Tells the actor (if running) what to do.
    pub fn dispatch(&self, events: Vec<PeerEvent>) {
        if let Some(notify) = self.actor.get() {
            for event in events {
                notify(event);
            }
        }
    }

    /// Our own identities, and the coin's peers unless PEER_DISCOVERY is `self`.
    pub fn import_peers(&self) {
        let myselves = self.settings.myselves.clone();
        let events = {
            let mut table = self.table();
            let mut events = table.note_peers(myselves, None, false, true);
            if self.settings.discovery != PeerDiscovery::SelfOnly {
                let coin_peers: Vec<Peer> = self
                    .settings
                    .coin_peers
                    .iter()
                    .map(|name| Peer::from_real_name(name, "coins.py", self.settings.default_ports))
                    .collect();
                events.extend(table.note_peers(coin_peers, None, false, false));
            }
            events
        };
        self.dispatch(events);
    }

    /// Peers a verified peer listed: at most two new ones.
    pub fn note_listed_peers(&self, peers: Vec<Peer>) {
        let events = self.table().note_peers(peers, Some(2), false, false);
        self.dispatch(events);
    }

    /// The admin `add_peer REAL_NAME`.
    pub fn add_rpc_peer(&self, real_name: &str) {
        let peer = Peer::from_real_name(real_name, "RPC", self.settings.default_ports);
        let events = self.table().note_peers(vec![peer], Some(2), true, false);
        self.dispatch(events);
    }

    /// `server.add_peer(features)` from a client at `source`: only with discovery on;
    /// rate-limited per bucket; an onion host once per random window; any other host
    /// must resolve (with `resolve`) to the client's address. Whether it was accepted.
    pub fn on_add_peer(
        &self,
        features: &Value,
        source: Option<IpAddr>,
        now: f64,
        resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
    ) -> bool {
        if self.settings.discovery != PeerDiscovery::On || !self.is_running() {
            return false;
        }
        let Some(source) = source else {
            log::info!("ignored add_peer request: no source info");
            return false;
        };
        let source = canonical_ip(source);
        let Some(peer) = Peer::from_features(features, &source.to_string())
            .into_iter()
            .next()
        else {
            log::info!("ignored add_peer request: no peers given");
            return false;
        };
        let (permit, reason) = {
            let mut table = self.table();
            if !table.add_peer_allowed(&peer, now) {
                return false;
            }
            if peer.is_tor() {
                (table.permit_onion_peer(now), "rate limiting")
            } else {
                (true, "")
            }
        };
        let (permit, reason) = if peer.is_tor() {
            (permit, reason)
        } else {
            match resolve(&peer.host) {
                Ok(addresses) => (
                    addresses.into_iter().any(|ip| canonical_ip(ip) == source),
                    "source-destination mismatch",
                ),
                Err(_) => (false, "address resolution failure"),
            }
        };
        if permit {
            log::info!("accepted add_peer request from {source} for {}", peer.host);
            let events = self.table().note_peers(vec![peer], Some(2), true, false);
            self.dispatch(events);
        } else {
            log::warn!(
                "rejected add_peer request from {source} for {} ({reason})",
                peer.host
            );
        }
        permit
    }

    /// The `server.peers.subscribe` answer for a client at `client`.
    pub fn subscribe_list(&self, client: Option<IpAddr>, now: f64) -> Value {
        let mut table = self.table();
        let client_is_tor = match (table.proxy(), client) {
            (Some(proxy), Some(client)) => canonical_ip(proxy.ip()) == canonical_ip(client),
            _ => false,
        };
        table.subscribe_list(now, client_is_tor)
    }

    pub fn counts(&self, now: f64) -> Value {
        self.table().counts(now)
    }

    pub fn rpc_entries(&self, now: f64) -> Value {
        self.table().rpc_entries(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::fixtures::*;

    fn directory(discovery: PeerDiscovery) -> PeerDirectory {
        let coin = crate::coins::lookup("Litecoin", "regtest").expect("coin");
        let settings = PeerSettings {
            discovery,
            ..PeerSettings::disabled(coin)
        };
        PeerDirectory::new(settings)
    }

    #[test]
    fn add_peer_checks_discovery_source_and_resolution() {
        let features = json!({"hosts": {"peer.example.com": {"tcp_port": 50001}}});
        const T0: f64 = 1_000_000.0;
        let source: Option<IpAddr> = Some("1.2.3.4".parse().expect("ip"));
        let resolves_to = |ip: &'static str| {
            move |_: &str| -> std::io::Result<Vec<IpAddr>> { Ok(vec![ip.parse().expect("ip")]) }
        };
        let off = directory(PeerDiscovery::Off);
        assert!(!off.on_add_peer(&features, source, T0, &resolves_to("1.2.3.4")));

        let on = directory(PeerDiscovery::On);
        // Not running yet: nobody would check the peer.
        assert!(!on.on_add_peer(&features, source, T0, &resolves_to("1.2.3.4")));
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&seen);
        assert!(on.start(
            Box::new(move |e| sink.lock().expect("lock").push(e)),
            false,
            TIMERS
        ));
        assert!(!on.on_add_peer(&features, None, T0, &resolves_to("1.2.3.4")));
        assert!(!on.on_add_peer(&json!({"hosts": {}}), source, T0, &resolves_to("1.2.3.4")));
        assert!(on.on_add_peer(&features, source, T0, &resolves_to("1.2.3.4")));
        assert_eq!(
            seen.lock().expect("lock").len(),
            1,
            "the peer is to be checked"
        );
        // Same domain within the pause: refused without resolving.
        let other = json!({"hosts": {"x.example.com": {"tcp_port": 1}}});
        let unresolved = |_: &str| -> std::io::Result<Vec<IpAddr>> { panic!("resolved") };
        assert!(!on.on_add_peer(&other, source, T0 + 2.0, &unresolved));
        // Another domain resolving elsewhere: source-destination mismatch.
        let elsewhere = json!({"hosts": {"y.example.net": {"tcp_port": 1}}});
        assert!(!on.on_add_peer(&elsewhere, source, T0 + 3.0, &resolves_to("9.9.9.9")));
        let failing = |_: &str| -> std::io::Result<Vec<IpAddr>> {
            Err(std::io::Error::other("no such host"))
        };
        let third = json!({"hosts": {"z.example.org": {"tcp_port": 1}}});
        assert!(!on.on_add_peer(&third, source, T0 + 4.0, &failing));
        let table = on.table();
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.peers().next().map(|p| p.source.as_str()),
            Some("1.2.3.4")
        );
    }

    #[test]
    fn counts_and_admin_entries() {
        let d = directory(PeerDiscovery::On);
        let now = unix_now();
        {
            let mut t = d.table();
            let mut bad = verified("bad.example.com", "8.8.4.4", now);
            bad.bad = true;
            t.note_peers(
                vec![
                    bad,
                    peer("never.example.com", 1),
                    verified("good.example.com", "8.8.8.8", now),
                ],
                None,
                false,
                false,
            );
        }
        assert_eq!(
            d.counts(now),
            json!({"bad": 1, "good": 1, "never": 1, "stale": 0, "total": 3})
        );
        let entries = d.rpc_entries(now);
        let hosts: Vec<&str> = entries
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e["host"].as_str())
            .collect();
        assert_eq!(
            hosts,
            ["good.example.com", "never.example.com", "bad.example.com"]
        );
        d.add_rpc_peer("rpc.example.com v1.4 t");
        assert_eq!(d.counts(now)["never"], 2);
    }

    #[test]
    fn import_uses_the_coins_peers_unless_self() {
        let coin = crate::coins::lookup("Litecoin", "mainnet").expect("coin");
        let d = PeerDirectory::new(PeerSettings {
            discovery: PeerDiscovery::On,
            ..PeerSettings::disabled(coin)
        });
        d.import_peers();
        assert_eq!(d.table().len(), coin.peers.len());
        let s = PeerDirectory::new(PeerSettings {
            discovery: PeerDiscovery::SelfOnly,
            ..PeerSettings::disabled(coin)
        });
        s.import_peers();
        assert!(s.table().is_empty());
        let lug = d
            .table()
            .peers()
            .find(|p| p.host == "ex.lug.gs")
            .map(Peer::real_name);
        assert_eq!(lug.as_deref(), Some("ex.lug.gs v0.0 s444"));
    }
}
