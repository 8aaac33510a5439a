//! What a peer is: a host and the features it announced (as `server.features` returns
//! them, canonicalized as ElectrumX does), its "real name" form, the ways to reach it,
//! the buckets that limit how many peers one address may place, and its status.

use super::schedule::PeerTimers;
use crate::coins::PeerPorts;
use crate::net::{is_global, is_private, is_valid_hostname};
use crate::python::{py_int, py_truthy};
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a peer is reached on one of its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    Ssl,
    Tcp,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Ssl => "SSL",
            PortKind::Tcp => "TCP",
        }
    }
}

/// Which addresses of a host name to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// One way to try a peer: SSL or TCP, a port, an address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionTry {
    pub kind: PortKind,
    pub port: u16,
    pub family: Family,
}

/// A peer server: its host (a name, an IP address or a `.onion` name), the features it
/// announced (as `server.features` returns them), and what discovery knows of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub host: String,
    /// As announced, with ElectrumX's canonical `pruning`, `server_version`,
    /// `protocol_min`, `protocol_max`, `ssl_port` and `tcp_port` keys set.
    pub features: Map<String, Value>,
    /// Where it was learnt from: `env`, `coins.py`, `RPC`, a peer's host, a client's IP;
    /// `peer` once verified.
    pub source: String,
    /// The address it was last reached at (none for onion peers).
    pub ip_addr: Option<String>,
    /// Unix time of the last successful verification (0: never).
    pub last_good: f64,
    /// Unix time of the last connection attempt (0: never).
    pub last_try: f64,
    /// Failed tries since the last success.
    pub try_count: u32,
    /// It failed a check (another chain, a bad answer, blacklisted).
    pub bad: bool,
    /// Ports it announced that differ from the ones it is known by, to try next time.
    pub other_ports: Vec<(PortKind, Option<u16>)>,
    pub ssl_port: Option<u16>,
    pub tcp_port: Option<u16>,
    pub pruning: Option<i64>,
    pub server_version: Option<String>,
    pub protocol_min: String,
    pub protocol_max: String,
}

impl Peer {
    /// A peer at `host` with these features; `host` must be one of `features["hosts"]`.
    pub fn new(host: &str, features: &Map<String, Value>, source: &str) -> Option<Peer> {
        let listed = features
            .get("hosts")
            .and_then(Value::as_object)
            .is_some_and(|hosts| hosts.contains_key(host));
        listed.then(|| Peer::listed(host, features, source))
    }

    /// A peer at `host`, one of `features["hosts"]`.
    fn listed(host: &str, features: &Map<String, Value>, source: &str) -> Peer {
        let mut peer = Peer {
            host: host.to_string(),
            features: features.clone(),
            source: source.to_string(),
            ip_addr: None,
            last_good: 0.0,
            last_try: 0.0,
            try_count: 0,
            bad: false,
            other_ports: Vec::new(),
            ssl_port: port_of(host, features, "ssl_port"),
            tcp_port: port_of(host, features, "tcp_port"),
            pruning: py_integer(features.get("pruning")).filter(|&p| p > 0),
            server_version: features
                .get("server_version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            protocol_min: version_string(features.get("protocol_min")),
            protocol_max: version_string(features.get("protocol_max")),
        };
        peer.canonicalize();
        peer
    }

    fn canonicalize(&mut self) {
        let f = &mut self.features;
        f.insert("pruning".into(), json!(self.pruning));
        f.insert("server_version".into(), json!(self.server_version));
        f.insert("protocol_min".into(), json!(self.protocol_min));
        f.insert("protocol_max".into(), json!(self.protocol_max));
        f.insert("ssl_port".into(), json!(self.ssl_port));
        f.insert("tcp_port".into(), json!(self.tcp_port));
    }

    /// One peer per host of a `server.add_peer` features object (none if it is not an
    /// object with a `hosts` object).
    pub fn from_features(features: &Value, source: &str) -> Vec<Peer> {
        let Some(map) = features.as_object() else {
            return Vec::new();
        };
        let Some(hosts) = map.get("hosts").and_then(Value::as_object) else {
            return Vec::new();
        };
        hosts
            .keys()
            .filter_map(|host| Peer::new(host, map, source))
            .collect()
    }

    /// A peer from its "real name", as in the coin's list or `ferrumx-rpc add_peer`:
    /// `host [vVERSION] [pPRUNING] [s[PORT]] [t[PORT]]` (a bare `s` or `t` is the coin's
    /// default port).
    pub fn from_real_name(real_name: &str, source: &str, defaults: PeerPorts) -> Peer {
        let mut host = "nohost".to_string();
        let mut features = Map::new();
        let mut ports = Map::new();
        for (n, part) in real_name.split_whitespace().enumerate() {
            if n == 0 {
                host = part.to_string();
                continue;
            }
            let (letter, rest) = part.split_at(part.chars().next().map_or(0, char::len_utf8));
            match letter {
                "s" | "t" => {
                    let port = match (rest.is_empty(), letter) {
                        (true, "s") => defaults.ssl.to_string(),
                        (true, _) => defaults.tcp.to_string(),
                        (false, _) => rest.to_string(),
                    };
                    let key = if letter == "s" {
                        "ssl_port"
                    } else {
                        "tcp_port"
                    };
                    ports.insert(key.into(), Value::String(port));
                }
                "v" => {
                    features.insert("protocol_max".into(), json!(rest));
                    features.insert("protocol_min".into(), json!(rest));
                }
                "p" => {
                    features.insert("pruning".into(), json!(rest));
                }
                _ => {}
            }
        }
        for (key, value) in &ports {
            features.insert(key.clone(), value.clone());
        }
        let mut hosts = Map::new();
        hosts.insert(host.clone(), Value::Object(ports));
        features.insert("hosts".into(), Value::Object(hosts));
        Peer::listed(&host, &features, source)
    }

    /// The name as listed in `server.peers.subscribe`: host, `v` and the maximum
    /// protocol, `p` and the pruning height if any, `s` and `t` with their ports.
    /// (ElectrumX always writes the port: its comparison with the default never matches.)
    pub fn real_name(&self) -> String {
        let mut parts = vec![self.host.clone(), format!("v{}", self.protocol_max)];
        if let Some(pruning) = self.pruning {
            parts.push(format!("p{pruning}"));
        }
        if let Some(port) = self.ssl_port {
            parts.push(format!("s{port}"));
        }
        if let Some(port) = self.tcp_port {
            parts.push(format!("t{port}"));
        }
        parts.join(" ")
    }

    /// The `server.peers.subscribe` entry: `[ip or host, host, [details]]`.
    pub fn to_tuple(&self) -> Value {
        let name = self.real_name();
        let details: Vec<&str> = name.split(' ').skip(1).collect();
        json!([
            self.ip_addr.as_deref().unwrap_or(&self.host),
            self.host,
            details
        ])
    }

    pub fn is_tor(&self) -> bool {
        self.host.ends_with(".onion")
    }

    /// The host as an IP address, if it is one.
    pub fn ip_address(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// A usable address or host name (ElectrumX `is_valid`).
    pub fn is_valid(&self) -> bool {
        match self.ip_address() {
            Some(ip) => {
                (is_global(&ip) || is_private(&ip)) && !(ip.is_multicast() || ip.is_unspecified())
            }
            None => is_valid_hostname(&self.host),
        }
    }

    /// Reachable from the internet: valid, not a private address, not `localhost`.
    /// `allow_loopback` (tests only) lets loopback addresses count as public.
    pub fn is_public(&self, allow_loopback: bool) -> bool {
        match self.ip_address() {
            Some(ip) if allow_loopback && ip.is_loopback() => true,
            Some(ip) => self.is_valid() && !is_private(&ip),
            None => self.is_valid() && self.host != "localhost",
        }
    }

    /// Peers among `others` with the same host (case-insensitive) or IP address.
    pub fn matches<'a>(&self, others: impl IntoIterator<Item = &'a Peer>) -> Vec<&'a Peer> {
        let host = self.host.to_lowercase();
        others
            .into_iter()
            .filter(|other| {
                let other_host = other.host.to_lowercase();
                other_host == host
                    || self.ip_addr.as_deref() == Some(other_host.as_str())
                    || other.ip_addr.as_deref() == Some(self.host.as_str())
            })
            .collect()
    }

    /// ElectrumX's bucket for limiting peers at one address: `onion`, the IPv4 address,
    /// the IPv6 /64, or empty before the peer was reached.
    pub fn internal_bucket(&self) -> String {
        self.bucket(32, 64)
    }

    /// The bucket `server.peers.subscribe` lists at most two peers of: the IPv4 /16, the
    /// IPv6 /56.
    pub fn external_bucket(&self) -> String {
        self.bucket(16, 56)
    }

    fn bucket(&self, v4_bits: u32, v6_bits: u32) -> String {
        if self.is_tor() {
            return "onion".into();
        }
        let Some(ip) = self
            .ip_addr
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            return String::new();
        };
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - v4_bits).unwrap_or(0);
                let network = Ipv4Addr::from(u32::from(v4) & mask);
                if v4_bits == 32 {
                    network.to_string()
                } else {
                    format!("{network}/{v4_bits}")
                }
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - v6_bits).unwrap_or(0);
                format!("{}/{v6_bits}", Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    /// The ways to try this peer, its announced ports first (SSL before TCP), then the
    /// other ports it announced since (which are used up).
    pub fn connection_tries(&mut self) -> Vec<ConnectionTry> {
        let mut pairs = vec![
            (PortKind::Ssl, self.ssl_port),
            (PortKind::Tcp, self.tcp_port),
        ];
        pairs.append(&mut self.other_ports);
        let families: &[Family] = match self.ip_address() {
            Some(ip) => match Family::of(&ip) {
                Family::V4 => &[Family::V4],
                Family::V6 => &[Family::V6],
            },
            None => &[Family::V4, Family::V6],
        };
        pairs
            .into_iter()
            .filter_map(|(kind, port)| Some((kind, port?)))
            .flat_map(|(kind, port)| {
                families
                    .iter()
                    .map(move |&family| ConnectionTry { kind, port, family })
            })
            .collect()
    }

    /// Remembers the ports of `other` that differ from this peer's (its operator may have
    /// changed them); whether there are any to try.
    pub fn check_ports(&mut self, other: &Peer) -> bool {
        for (kind, mine, theirs) in [
            (PortKind::Ssl, self.ssl_port, other.ssl_port),
            (PortKind::Tcp, self.tcp_port, other.tcp_port),
        ] {
            if mine != theirs && !self.other_ports.contains(&(kind, theirs)) {
                self.other_ports.push((kind, theirs));
            }
        }
        !self.other_ports.is_empty()
    }

    /// Takes the features (and what follows from them) of `other`.
    pub fn update_features_from(&mut self, other: &Peer) {
        self.features = other.features.clone();
        self.ssl_port = other.ssl_port;
        self.tcp_port = other.tcp_port;
        self.pruning = other.pruning;
        self.server_version = other.server_version.clone();
        self.protocol_min = other.protocol_min.clone();
        self.protocol_max = other.protocol_max.clone();
    }

    /// Takes the features a peer answered to `server.features`, if they list its host.
    pub fn update_features(&mut self, features: &Map<String, Value>) {
        if let Some(other) = Peer::new(&self.host, features, &self.source) {
            self.update_features_from(&other);
        }
    }

    /// What `server.version` said the peer runs.
    pub fn set_server_version(&mut self, version: &str) {
        self.server_version = Some(version.to_string());
        self.features
            .insert("server_version".into(), Value::String(version.to_string()));
    }

    /// Good, stale, never or bad, `now` being Unix time.
    pub fn status(&self, now: f64, timers: &PeerTimers) -> PeerStatus {
        if self.bad {
            PeerStatus::Bad
        } else if self.last_good > now - timers.stale.as_secs_f64() {
            PeerStatus::Good
        } else if self.last_good != 0.0 {
            PeerStatus::Stale
        } else {
            PeerStatus::Never
        }
    }

    /// The admin `peers` entry (ElectrumX's `Peer.serialize` plus the status).
    pub fn rpc_entry(&self, status: PeerStatus) -> Value {
        json!({
            "host": self.host,
            "features": self.features,
            "source": self.source,
            "ip_addr": self.ip_addr,
            "last_good": py_time(self.last_good),
            "last_try": py_time(self.last_try),
            "try_count": self.try_count,
            "status": status.as_str(),
        })
    }
}

/// 0 stays the integer 0, as ElectrumX's never-set times print.
fn py_time(t: f64) -> Value {
    if t == 0.0 { json!(0) } else { json!(t) }
}

/// ElectrumX `Peer._port`: the port under `hosts[host]`, or the top-level one when that
/// entry is empty; valid only from 1 to 65535.
fn port_of(host: &str, features: &Map<String, Value>, key: &str) -> Option<u16> {
    let entry = features.get("hosts")?.as_object()?.get(host);
    let top = Value::Object(features.clone());
    let container = match entry {
        Some(entry) if py_truthy(entry) => entry,
        _ => &top,
    };
    let port = py_integer(container.as_object()?.get(key))?;
    u16::try_from(port).ok().filter(|&p| p > 0)
}

/// ElectrumX `Peer._integer`: an integer, or a string Python's `int()` reads.
fn py_integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => py_int(s),
        _ => None,
    }
}

/// ElectrumX's `version_string(protocol_tuple(value))`: "1.4" stays, "1" is "1.0",
/// anything unreadable is "0.0".
fn version_string(value: Option<&Value>) -> String {
    let parts: Option<Vec<i64>> = value
        .and_then(Value::as_str)
        .and_then(|s| s.split('.').map(py_int).collect());
    let mut parts = parts.unwrap_or_else(|| vec![0]);
    while parts.len() < 2 {
        parts.push(0);
    }
    parts
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A peer's state as the admin `peers` command and `getinfo` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// Verified within the stale time (3 hours).
    Good,
    /// Verified once, not lately.
    Stale,
    /// Never verified.
    Never,
    /// Failed a check.
    Bad,
}

impl PeerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerStatus::Good => "good",
            PeerStatus::Stale => "stale",
            PeerStatus::Never => "never",
            PeerStatus::Bad => "bad",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::fixtures::*;

    #[test]
    fn real_names_parse_and_print_as_electrumx() {
        let p = Peer::from_real_name(
            "electrum.example.com v1.4 p1000 s t50011",
            "coins.py",
            PORTS,
        );
        assert_eq!(p.host, "electrum.example.com");
        assert_eq!(
            (p.ssl_port, p.tcp_port, p.pruning),
            (Some(50002), Some(50011), Some(1000))
        );
        assert_eq!(
            (p.protocol_min.as_str(), p.protocol_max.as_str()),
            ("1.4", "1.4")
        );
        // The default port is written out: ElectrumX compares an int with a string.
        assert_eq!(
            p.real_name(),
            "electrum.example.com v1.4 p1000 s50002 t50011"
        );
        assert_eq!(
            p.to_tuple(),
            json!([
                "electrum.example.com",
                "electrum.example.com",
                ["v1.4", "p1000", "s50002", "t50011"]
            ])
        );
        let mut reached = p.clone();
        reached.ip_addr = Some("1.2.3.4".into());
        assert_eq!(reached.to_tuple()[0], "1.2.3.4");
        // No version: "0.0"; a bad port is no port.
        let q = Peer::from_real_name("h.example.org sxyz t", "RPC", PORTS);
        assert_eq!(q.real_name(), "h.example.org v0.0 t50001");
        assert_eq!(Peer::from_real_name("", "RPC", PORTS).host, "nohost");
    }

    #[test]
    fn features_are_canonicalized() {
        let mut f = features("h.example.com", Some(50001), Some(50002));
        f.insert("protocol_max".into(), json!("1"));
        f.insert("pruning".into(), json!("-5"));
        let p = Peer::new("h.example.com", &f, "x").expect("listed");
        assert_eq!(p.features["protocol_max"], "1.0");
        assert_eq!(p.features["pruning"], Value::Null);
        assert_eq!(p.features["tcp_port"], 50001);
        assert_eq!(p.features["ssl_port"], 50002);
        assert!(Peer::new("other.example.com", &f, "x").is_none());
        // An empty hosts entry: the top-level ports count; string ports are read.
        let f = json!({"hosts": {"a.example.com": {}}, "tcp_port": "50010", "ssl_port": 70000});
        let p = Peer::new("a.example.com", f.as_object().expect("object"), "x").expect("listed");
        assert_eq!((p.tcp_port, p.ssl_port), (Some(50010), None));
        // From add_peer's argument: one peer per host; anything else gives none.
        assert_eq!(
            Peer::from_features(
                &json!({"hosts": {"a.example.com": {}, "b.example.com": {}}}),
                "1.2.3.4"
            )
            .len(),
            2
        );
        assert!(Peer::from_features(&json!([1, 2]), "s").is_empty());
        assert!(Peer::from_features(&json!({"hosts": [1]}), "s").is_empty());
    }

    #[test]
    fn public_and_valid_hosts() {
        let public = |host: &str| Peer::from_real_name(host, "x", PORTS).is_public(false);
        assert!(public("electrum.example.com"));
        assert!(public("8.8.8.8"));
        assert!(public("2a01:4f8::1"));
        assert!(!public("localhost"));
        assert!(!public("127.0.0.1"));
        assert!(!public("10.1.2.3"));
        assert!(!public("192.168.1.1"));
        assert!(!public("::1"));
        assert!(!public("fd00::1"));
        assert!(!public("100.64.0.1"), "shared address space is not valid");
        assert!(!public("224.0.0.1"));
        assert!(!public("bad_host-.com"));
        assert!(!public("example.123"));
        assert!(public("abcdefghij.onion"));
        let loopback = Peer::from_real_name("127.0.0.2 t1", "x", PORTS);
        assert!(loopback.is_public(true), "tests may allow loopback peers");
        assert!(!Peer::from_real_name("10.0.0.1", "x", PORTS).is_public(true));
    }

    #[test]
    fn statuses_follow_the_stale_time() {
        let now = 1_000_000.0;
        let mut p = peer("a.example.com", 1);
        assert_eq!(p.status(now, &TIMERS), PeerStatus::Never);
        p.last_good = now - 60.0;
        assert_eq!(p.status(now, &TIMERS), PeerStatus::Good);
        p.last_good = now - 3.0 * 3600.0 - 1.0;
        assert_eq!(p.status(now, &TIMERS), PeerStatus::Stale);
        p.bad = true;
        assert_eq!(p.status(now, &TIMERS), PeerStatus::Bad);
        let entry = p.rpc_entry(PeerStatus::Bad);
        assert_eq!(entry["status"], "bad");
        assert_eq!(entry["last_try"], json!(0));
        assert_eq!(entry["features"]["tcp_port"], 1);
    }

    #[test]
    fn connection_tries_ssl_first_then_changed_ports() {
        let mut p = Peer::new(
            "1.2.3.4",
            &features("1.2.3.4", Some(50001), Some(50002)),
            "x",
        )
        .expect("listed");
        let tries = p.connection_tries();
        assert_eq!(
            tries,
            vec![
                ConnectionTry {
                    kind: PortKind::Ssl,
                    port: 50002,
                    family: Family::V4
                },
                ConnectionTry {
                    kind: PortKind::Tcp,
                    port: 50001,
                    family: Family::V4
                },
            ]
        );
        let moved = Peer::new(
            "1.2.3.4",
            &features("1.2.3.4", Some(60001), Some(50002)),
            "x",
        )
        .expect("listed");
        assert!(p.check_ports(&moved));
        let tries = p.connection_tries();
        assert_eq!(tries.len(), 3);
        assert_eq!(tries[2].port, 60001);
        assert!(p.other_ports.is_empty(), "the other ports are tried once");
    }

    #[test]
    fn buckets() {
        let mut p = peer("a.example.com", 1);
        assert_eq!(p.internal_bucket(), "");
        p.ip_addr = Some("1.2.3.4".into());
        assert_eq!(
            (p.internal_bucket(), p.external_bucket()),
            ("1.2.3.4".into(), "1.2.0.0/16".into())
        );
        p.ip_addr = Some("2a01:4f8:1:2:3::1".into());
        assert_eq!(p.internal_bucket(), "2a01:4f8:1:2::/64");
        assert_eq!(p.external_bucket(), "2a01:4f8:1::/56");
        assert_eq!(peer("x.onion", 1).external_bucket(), "onion");
    }

    #[test]
    fn versions_read_as_electrumx() {
        assert_eq!(version_string(Some(&json!("1.4.2"))), "1.4.2");
        assert_eq!(version_string(Some(&json!("x"))), "0.0");
        assert_eq!(version_string(None), "0.0");
    }
}
