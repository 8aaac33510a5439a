//! The peers this server knows and what discovery remembers around them (the blacklist,
//! `server.add_peer` rate limits, the SOCKS proxy): which peers are accepted, checked,
//! merged and forgotten, and which are listed to clients.

use super::peer::{ConnectionTry, Peer, PeerStatus};
use super::schedule::PeerTimers;
use super::settings::PeerSettings;
use super::{BadPeer, PEER_ADD_PAUSE};
use crate::rng::SplitMix64;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// A peer's handle in the directory (stable while it is known).
pub type PeerId = u64;

/// What the Peers actor must do after a change to the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// Start checking a newly accepted peer.
    Monitor(PeerId),
    /// Try this peer now rather than at its next scheduled time.
    Retry(PeerId),
}

/// One known peer.
#[derive(Clone, Debug)]
struct Entry {
    id: PeerId,
    peer: Peer,
    /// One of this server's own identities.
    myself: bool,
}

/// The peers this server knows and what discovery remembers around them.
#[derive(Debug)]
pub struct PeerTable {
    entries: Vec<Entry>,
    next_id: PeerId,
    blacklist: HashSet<String>,
    /// Last `server.add_peer` per bucket (a domain, or one bucket for all IP hosts).
    recent_adds: HashMap<String, f64>,
    permit_onion_time: f64,
    /// The SOCKS proxy, once found.
    proxy: Option<SocketAddr>,
    allow_loopback: bool,
    timers: PeerTimers,
    rng: SplitMix64,
}

impl PeerTable {
    pub fn new(rng: SplitMix64) -> PeerTable {
        PeerTable {
            entries: Vec::new(),
            next_id: 1,
            blacklist: HashSet::new(),
            recent_adds: HashMap::new(),
            permit_onion_time: 0.0,
            proxy: None,
            allow_loopback: false,
            timers: PeerTimers::ELECTRUMX,
            rng,
        }
    }

    /// How the Peers actor runs: `allow_loopback` and faster `timers` are for tests.
    pub(super) fn configure(&mut self, allow_loopback: bool, timers: PeerTimers) {
        self.allow_loopback = allow_loopback;
        self.timers = timers;
    }

    pub fn timers(&self) -> PeerTimers {
        self.timers
    }

    pub fn allow_loopback(&self) -> bool {
        self.allow_loopback
    }

    pub fn proxy(&self) -> Option<SocketAddr> {
        self.proxy
    }

    pub fn set_proxy(&mut self, proxy: Option<SocketAddr>) {
        self.proxy = proxy;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: PeerId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    pub fn get(&self, id: PeerId) -> Option<&Peer> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.peer)
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.entries
            .iter_mut()
            .find(|e| e.id == id)
            .map(|e| &mut e.peer)
    }

    pub fn is_myself(&self, id: PeerId) -> bool {
        self.entries.iter().any(|e| e.id == id && e.myself)
    }

    pub fn remove(&mut self, id: PeerId) {
        self.entries.retain(|e| e.id != id);
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.entries.iter().map(|e| &e.peer)
    }

    /// The known peers that are `peer` (same host or address).
    fn matching(&self, peer: &Peer) -> Vec<PeerId> {
        let matched = peer.matches(self.peers());
        self.entries
            .iter()
            .filter(|e| matched.iter().any(|m| std::ptr::eq(*m, &e.peer)))
            .map(|e| e.id)
            .collect()
    }

    /// Whether the blacklist names the peer's host, its domain (`*.example.com`) or the
    /// address it was reached at.
    pub fn is_blacklisted(&self, peer: &Peer) -> bool {
        let host = peer.host.to_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        let domain = format!("*.{}", labels[labels.len().saturating_sub(2)..].join("."));
        self.blacklist.contains(&host)
            || self.blacklist.contains(&domain)
            || peer
                .ip_addr
                .as_ref()
                .is_some_and(|ip| self.blacklist.contains(ip))
    }

    /// A new blacklist; the known peers it names, to be tried again (and found bad).
    pub fn set_blacklist(&mut self, blacklist: HashSet<String>) -> Vec<PeerEvent> {
        self.blacklist = blacklist;
        self.entries
            .iter()
            .filter(|e| self.is_blacklisted(&e.peer))
            .map(|e| PeerEvent::Retry(e.id))
            .collect()
    }

    /// Peers verified within the stale time, not bad, public and not blacklisted.
    fn recent_good(&self, now: f64) -> Vec<&Entry> {
        let cutoff = now - self.timers.stale.as_secs_f64();
        self.entries
            .iter()
            .filter(|e| {
                e.peer.last_good > cutoff
                    && !e.peer.bad
                    && e.peer.is_public(self.allow_loopback)
                    && !self.is_blacklisted(&e.peer)
            })
            .collect()
    }

    /// Adds the peers not already known (by host or address), at most `limit` of them
    /// chosen at random; with `check_ports`, a known peer announced with other ports is
    /// retried. Private and loopback hosts are ignored, and onion hosts without a proxy.
    pub fn note_peers(
        &mut self,
        peers: Vec<Peer>,
        limit: Option<usize>,
        check_ports: bool,
        myself: bool,
    ) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        let mut new_peers: Vec<Peer> = Vec::new();
        for peer in peers {
            if !peer.is_public(self.allow_loopback) || (peer.is_tor() && self.proxy.is_none()) {
                continue;
            }
            let known = self.matching(&peer);
            if !known.is_empty() {
                if check_ports {
                    for id in known {
                        if let Some(entry) = self.get_mut(id)
                            && entry.check_ports(&peer)
                        {
                            log::info!("ports changed for {}", peer.host);
                            events.push(PeerEvent::Retry(id));
                        }
                    }
                }
            } else if peer.matches(new_peers.iter()).is_empty() {
                new_peers.push(peer);
            }
        }
        if let Some(limit) = limit {
            self.rng.shuffle(&mut new_peers);
            new_peers.truncate(limit);
        }
        for peer in new_peers {
            log::info!("accepted new peer {} from {}", peer.host, peer.source);
            let id = self.next_id;
            self.next_id += 1;
            self.entries.push(Entry { id, peer, myself });
            events.push(PeerEvent::Monitor(id));
        }
        events
    }

    /// Starts a try of a peer: counts it and returns the ways to reach it (none if the
    /// peer is no longer known).
    pub fn begin_try(&mut self, id: PeerId) -> Option<(Peer, Vec<ConnectionTry>)> {
        let peer = self.get_mut(id)?;
        peer.try_count += 1;
        let tries = peer.connection_tries();
        Some((peer.clone(), tries))
    }

    /// Checks before verifying a peer just reached: not blacklisted, and not a second
    /// peer at one address (ElectrumX's internal buckets), or too many onion peers.
    pub fn precheck(&self, id: PeerId, now: f64) -> Result<(), BadPeer> {
        let Some(peer) = self.get(id) else {
            return Ok(());
        };
        if self.is_blacklisted(peer) {
            return Err(BadPeer("blacklisted".into()));
        }
        let others: Vec<&Entry> = self
            .recent_good(now)
            .into_iter()
            .filter(|e| e.id != id)
            .collect();
        if peer.is_tor() {
            let onion = others.iter().filter(|e| e.peer.is_tor()).count();
            if onion > others.len() / 2 && others.len() / 2 >= 100 {
                return Err(BadPeer("too many onion peers already".into()));
            }
        } else {
            let bucket = peer.internal_bucket();
            if others
                .iter()
                .any(|e| !e.peer.is_tor() && e.peer.internal_bucket() == bucket)
            {
                return Err(BadPeer(format!(
                    "too many peers already in bucket {bucket}"
                )));
            }
        }
        Ok(())
    }

    /// The peer passed every check: it is good now. Other entries for the same server
    /// are merged into it; returns those removed (their checks must stop).
    pub fn record_good(&mut self, id: PeerId, now: f64) -> Vec<PeerEvent> {
        let Some(peer) = self.get_mut(id) else {
            return Vec::new();
        };
        peer.try_count = 0;
        peer.last_good = now;
        peer.source = "peer".into();
        let peer = peer.clone();
        let matched = self.matching(&peer);
        let mut events = Vec::new();
        let several = matched.len() > 1;
        for other in matched {
            let Some(entry) = self.get_mut(other) else {
                continue;
            };
            if entry.ip_address().is_none() {
                let lists_host = entry
                    .features
                    .get("hosts")
                    .and_then(Value::as_object)
                    .is_some_and(|hosts| hosts.contains_key(&peer.host));
                if lists_host {
                    entry.update_features_from(&peer);
                }
            } else if several {
                self.remove(other);
                events.push(PeerEvent::Retry(other));
            }
        }
        // Forget add_peer buckets that have waited out the pause.
        self.recent_adds.retain(|_, t| *t + PEER_ADD_PAUSE >= now);
        events
    }

    /// A try failed (every way of reaching the peer, or a check). Whether the peer is
    /// now forgotten: after 3 failures in a row, or 10 for a peer that was once good.
    pub fn record_failure(&mut self, id: PeerId) -> bool {
        let Some(peer) = self.get(id) else {
            return true;
        };
        let limit = if peer.last_good != 0.0 && !peer.bad {
            10
        } else {
            3
        };
        if peer.try_count >= limit {
            let what = if peer.bad { "bad" } else { "unreachable" };
            log::info!("forgetting {what} peer: {}", peer.host);
            self.remove(id);
            true
        } else {
            false
        }
    }

    /// How long until the next try of a peer.
    pub fn retry_pause(&self, id: PeerId) -> Option<Duration> {
        self.get(id)
            .map(|peer| self.timers.retry_pause(peer.try_count))
    }

    /// The features to announce to a peer that listed `remote_peers`, if PEER_ANNOUNCE
    /// is on, it is not ourselves, our first clearnet identity is public and the peer
    /// does not already list it with the same ports.
    pub fn features_to_register(
        &self,
        settings: &PeerSettings,
        id: PeerId,
        remote_peers: &[Peer],
    ) -> Option<Map<String, Value>> {
        if !settings.announce || self.is_myself(id) {
            return None;
        }
        let mine = settings.myselves.iter().find(|p| !p.is_tor())?;
        let mine = self
            .entries
            .iter()
            .find(|e| e.myself && e.peer.host == mine.host)
            .map_or(mine, |e| &e.peer);
        if !mine.is_public(self.allow_loopback) {
            return None;
        }
        let listed = mine
            .matches(remote_peers.iter())
            .iter()
            .any(|p| p.tcp_port == mine.tcp_port && p.ssl_port == mine.ssl_port);
        (!listed).then(|| mine.features.clone())
    }

    /// The `server.peers.subscribe` answer: our identities verified lately, then at most
    /// two recent good peers per /16 (IPv6: /56), then onion peers (a quarter of the
    /// rest, at least 10; 50 for a client coming through our Tor proxy).
    pub fn subscribe_list(&mut self, now: f64, client_is_tor: bool) -> Value {
        let cutoff = now - self.timers.stale.as_secs_f64();
        let mut chosen: Vec<PeerId> = self
            .entries
            .iter()
            .filter(|e| e.myself && e.peer.last_good > cutoff)
            .map(|e| e.id)
            .collect();
        let mut buckets: Vec<(String, Vec<PeerId>)> = Vec::new();
        let mut onion: Vec<PeerId> = Vec::new();
        for entry in self.recent_good(now) {
            if entry.peer.is_tor() {
                onion.push(entry.id);
                continue;
            }
            let bucket = entry.peer.external_bucket();
            match buckets.iter_mut().find(|(name, _)| *name == bucket) {
                Some((_, ids)) => ids.push(entry.id),
                None => buckets.push((bucket, vec![entry.id])),
            }
        }
        for (_, mut ids) in buckets {
            self.rng.shuffle(&mut ids);
            for id in ids.into_iter().take(2) {
                if !chosen.contains(&id) {
                    chosen.push(id);
                }
            }
        }
        self.rng.shuffle(&mut onion);
        let max_onion = if client_is_tor {
            50
        } else {
            10.max(chosen.len() / 4)
        };
        for id in onion.into_iter().take(max_onion) {
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        Value::Array(
            chosen
                .iter()
                .filter_map(|&id| self.get(id))
                .map(Peer::to_tuple)
                .collect(),
        )
    }

    /// `getinfo`'s `peers` counts.
    pub fn counts(&self, now: f64) -> Value {
        let mut counts = [0usize; 4];
        for peer in self.peers() {
            counts[peer.status(now, &self.timers) as usize] += 1;
        }
        json!({
            "bad": counts[PeerStatus::Bad as usize],
            "good": counts[PeerStatus::Good as usize],
            "never": counts[PeerStatus::Never as usize],
            "stale": counts[PeerStatus::Stale as usize],
            "total": self.entries.len(),
        })
    }

    /// The admin `peers` answer: good peers first, most recently verified first, bad
    /// ones last.
    pub fn rpc_entries(&self, now: f64) -> Value {
        let mut peers: Vec<&Peer> = self.peers().collect();
        peers.sort_by(|a, b| a.bad.cmp(&b.bad).then(b.last_good.total_cmp(&a.last_good)));
        Value::Array(
            peers
                .into_iter()
                .map(|p| p.rpc_entry(p.status(now, &self.timers)))
                .collect(),
        )
    }

    /// The `server.add_peer` rate limit: one request per [`PEER_ADD_PAUSE`] per bucket
    /// (the last two labels of the host name; one bucket for every IP address). Every
    /// request restarts the pause. Whether this one may go on.
    pub fn add_peer_allowed(&mut self, peer: &Peer, now: f64) -> bool {
        let bucket = if peer.ip_address().is_some() {
            "ip_addr".to_string()
        } else {
            let host = peer.host.to_lowercase();
            let labels: Vec<&str> = host.split('.').collect();
            labels[labels.len().saturating_sub(2)..].join(".")
        };
        let last = self.recent_adds.insert(bucket, now).unwrap_or(0.0);
        last + PEER_ADD_PAUSE < now
    }

    /// A new onion peer is let in once per random window of up to 20 minutes.
    pub fn permit_onion_peer(&mut self, now: f64) -> bool {
        if now < self.permit_onion_time {
            return false;
        }
        self.permit_onion_time = now + self.rng.below(1200) as f64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::fixtures::*;

    #[test]
    fn unreachable_peers_are_forgotten_after_three_tries_good_ones_after_ten() {
        let mut t = table();
        let events = t.note_peers(vec![peer("a.example.com", 1)], None, false, false);
        let id = ids(&events)[0];
        for n in 1..=3 {
            let (_, tries) = t.begin_try(id).expect("known");
            assert_eq!(tries.len(), 2, "TCP over IPv4 and IPv6");
            assert_eq!(t.record_failure(id), n == 3, "try {n}");
        }
        assert!(!t.contains(id));

        let events = t.note_peers(vec![peer("b.example.com", 1)], None, false, false);
        let id = ids(&events)[0];
        t.begin_try(id);
        t.record_good(id, 100.0);
        assert_eq!(
            t.get(id).map(|p| (p.try_count, p.source.as_str())),
            Some((0, "peer"))
        );
        for n in 1..=10 {
            t.begin_try(id);
            assert_eq!(t.record_failure(id), n == 10, "try {n}");
        }
        // A bad peer, even once good, goes after three.
        let events = t.note_peers(vec![peer("c.example.com", 1)], None, false, false);
        let id = ids(&events)[0];
        t.record_good(id, 100.0);
        if let Some(p) = t.get_mut(id) {
            p.bad = true;
        }
        for n in 1..=3 {
            t.begin_try(id);
            assert_eq!(t.record_failure(id), n == 3);
        }
    }

    #[test]
    fn note_peers_skips_known_private_and_onion_without_proxy_and_limits() {
        let mut t = table();
        let events = t.note_peers(
            vec![
                peer("a.example.com", 1),
                peer("A.EXAMPLE.COM", 2),
                peer("192.168.0.1", 1),
                peer("xyz.onion", 1),
            ],
            None,
            false,
            false,
        );
        assert_eq!(ids(&events).len(), 1);
        assert_eq!(t.len(), 1);
        // Port change of a known peer: retried, not added.
        let events = t.note_peers(vec![peer("a.example.com", 9)], Some(2), true, false);
        assert!(matches!(events.as_slice(), [PeerEvent::Retry(_)]));
        // At most two of many new peers.
        let many: Vec<Peer> = (0..6)
            .map(|i| peer(&format!("p{i}.example.net"), 1))
            .collect();
        assert_eq!(ids(&t.note_peers(many, Some(2), false, false)).len(), 2);
        assert_eq!(t.len(), 3);
        // With a proxy, onion peers are accepted.
        t.set_proxy(Some("127.0.0.1:9050".parse().expect("addr")));
        assert_eq!(
            ids(&t.note_peers(vec![peer("xyz.onion", 1)], None, false, false)).len(),
            1
        );
    }

    #[test]
    fn subscribe_lists_two_per_bucket_ourselves_and_onions() {
        let now = 1_000_000.0;
        let mut t = table();
        t.set_proxy(Some("127.0.0.1:9050".parse().expect("addr")));
        let mine = vec![verified("me.example.org", "5.6.7.8", now)];
        t.note_peers(mine, None, false, true);
        let mut peers = vec![
            verified("a.example.com", "1.2.3.4", now),
            verified("b.example.com", "1.2.9.9", now),
            verified("c.example.com", "1.2.200.1", now),
            verified("d.example.com", "9.9.9.9", now),
            verified("e.example.com", "2a01:4f8::1", now),
            verified("x1.onion", "", now),
        ];
        peers[5].ip_addr = None;
        let mut stale = verified("old.example.com", "8.8.8.8", now);
        stale.last_good = now - 4.0 * 3600.0;
        peers.push(stale);
        let mut bad = verified("bad.example.com", "8.8.4.4", now);
        bad.bad = true;
        peers.push(bad);
        t.note_peers(peers, None, false, false);
        let list = t.subscribe_list(now, false);
        let hosts: Vec<&str> = list
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e[1].as_str())
            .collect();
        assert_eq!(hosts[0], "me.example.org");
        assert_eq!(
            hosts
                .iter()
                .filter(|h| h.ends_with("example.com")
                    && !h.starts_with('d')
                    && !h.starts_with('e'))
                .count(),
            2,
            "two of the three in 1.2.0.0/16: {hosts:?}"
        );
        for host in ["d.example.com", "e.example.com", "x1.onion"] {
            assert!(hosts.contains(&host), "{host} in {hosts:?}");
        }
        assert!(!hosts.contains(&"old.example.com") && !hosts.contains(&"bad.example.com"));
        assert_eq!(
            list[0],
            json!(["5.6.7.8", "me.example.org", ["v1.6", "t50001"]])
        );
        // Blacklisted peers are not listed.
        t.set_blacklist(["*.example.com".to_string()].into_iter().collect());
        let list = t.subscribe_list(now, false);
        assert_eq!(list.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn precheck_refuses_blacklisted_and_a_second_peer_at_one_address() {
        let now = 1_000_000.0;
        let mut t = table();
        let first = ids(&t.note_peers(
            vec![verified("a.example.com", "1.2.3.4", now)],
            None,
            false,
            false,
        ))[0];
        let mut second = peer("b.example.org", 1);
        second.ip_addr = Some("1.2.3.4".into());
        let second = ids(&t.note_peers(vec![second], None, false, false))[0];
        assert_eq!(t.precheck(first, now), Ok(()));
        assert_eq!(
            t.precheck(second, now),
            Err(BadPeer("too many peers already in bucket 1.2.3.4".into()))
        );
        t.set_blacklist(["b.example.org".to_string()].into_iter().collect());
        assert_eq!(t.precheck(second, now), Err(BadPeer("blacklisted".into())));
        let retried = t.set_blacklist(["1.2.3.4".to_string()].into_iter().collect());
        assert_eq!(retried.len(), 2, "both reached at a blacklisted address");
    }

    #[test]
    fn add_peer_is_rate_limited_per_bucket() {
        let mut t = table();
        let now = 1_000_000.0;
        let ip = peer("1.2.3.4", 1);
        let other_ip = peer("5.6.7.8", 1);
        assert!(t.add_peer_allowed(&ip, now));
        assert!(
            !t.add_peer_allowed(&other_ip, now + 1.0),
            "one bucket for all IPs"
        );
        assert!(t.add_peer_allowed(&peer("a.example.com", 1), now + 2.0));
        assert!(!t.add_peer_allowed(&peer("b.EXAMPLE.com", 1), now + 3.0));
        assert!(t.add_peer_allowed(&peer("b.example.net", 1), now + 3.0));
        // Each refused request restarts the pause.
        assert!(!t.add_peer_allowed(&ip, now + 500.0));
        assert!(!t.add_peer_allowed(&ip, now + 1000.0));
        assert!(t.add_peer_allowed(&ip, now + 1601.0));
        // Onion peers: once per random window.
        assert!(t.permit_onion_peer(now));
        let next = t.permit_onion_time;
        assert!(next >= now && next < now + 1200.0);
        if next > now {
            assert!(!t.permit_onion_peer(now));
        }
    }

    #[test]
    fn announce_only_when_the_peer_does_not_list_us() {
        let mine = Peer::new(
            "me.example.org",
            &features("me.example.org", Some(50001), Some(50002)),
            "env",
        )
        .expect("listed");
        let coin = crate::coins::lookup("Litecoin", "regtest").expect("coin");
        let settings = PeerSettings {
            discovery: PeerDiscovery::On,
            announce: true,
            myselves: vec![mine.clone()],
            ..PeerSettings::disabled(coin)
        };
        let mut t = table();
        let them = ids(&t.note_peers(vec![peer("them.example.com", 1)], None, false, false))[0];
        let announced = t.features_to_register(&settings, them, &[]);
        assert_eq!(
            announced
                .as_ref()
                .and_then(|f| f["hosts"].as_object())
                .map(|h| h.contains_key("me.example.org")),
            Some(true)
        );
        assert_eq!(
            t.features_to_register(&settings, them, std::slice::from_ref(&mine)),
            None
        );
        let moved = Peer::from_real_name("me.example.org v1.6 s50002 t50009", "x", PORTS);
        assert!(t.features_to_register(&settings, them, &[moved]).is_some());
        let quiet = PeerSettings {
            announce: false,
            ..settings.clone()
        };
        assert_eq!(t.features_to_register(&quiet, them, &[]), None);
        let me = ids(&t.note_peers(vec![mine], None, false, true))[0];
        assert_eq!(
            t.features_to_register(&settings, me, &[]),
            None,
            "not to ourselves"
        );
    }

    #[test]
    fn record_good_merges_an_ip_entry_into_the_named_peer() {
        let mut t = table();
        let named = ids(&t.note_peers(vec![peer("a.example.com", 1)], None, false, false))[0];
        let by_ip = ids(&t.note_peers(vec![peer("1.2.3.4", 1)], None, false, false))[0];
        if let Some(p) = t.get_mut(named) {
            p.ip_addr = Some("1.2.3.4".into());
        }
        let events = t.record_good(named, 5.0);
        assert_eq!(events, vec![PeerEvent::Retry(by_ip)]);
        assert!(t.contains(named) && !t.contains(by_ip));
    }
}
