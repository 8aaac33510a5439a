//! Peer discovery as ElectrumX does it (its `lib/peer.py` and `server/peers.py`), without
//! sockets: what a peer is (a host and the features it announced), when it is good, stale,
//! never reached or bad, which peers `server.peers.subscribe` lists and in what form, when
//! a peer is retried and when it is forgotten, the checks a peer's answers must pass, the
//! rate limit and source check of `server.add_peer`, and the blacklist. The Peers actor
//! (`actors/peers.rs`) connects to peers and applies these rules; client sessions and the
//! admin interface read the same [`PeerDirectory`] without going through the actor.

use crate::coins::{Coin, PeerPorts};
use crate::config::{Config, PeerDiscovery};
use crate::hashes::Height;
use crate::protocol::params::{py_str, py_truthy};
use crate::protocol::with_commas;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A peer's `server.add_peer` is honoured at most once per this many seconds per bucket.
pub const PEER_ADD_PAUSE: f64 = 600.0;
/// A peer whose tip is further than this from ours is bad.
pub const MAX_TIP_HEIGHT_DIFF: Height = 5;
/// The header this far below the lower of the two tips must be the same on both sides.
pub const MAX_CHAINSPLIT_LEN: Height = 10;
/// How long one request to a peer may take (through Tor: [`TOR_REQUEST_TIMEOUT`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const TOR_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the blacklist is fetched again.
pub const BLACKLIST_REFRESH: Duration = Duration::from_secs(600);
/// How long after a failed search for a SOCKS proxy the next one starts.
pub const PROXY_RETRY: Duration = Duration::from_secs(900);
/// SOCKS ports tried when TOR_PROXY_PORT is not set.
pub const DEFAULT_PROXY_PORTS: [u16; 3] = [9050, 9150, 1080];

/// ElectrumX's peer timers: a peer verified within `stale` is good; failures are retried
/// after `wakeup * 2^tries`; a good peer is checked again shortly before it turns stale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerTimers {
    pub wakeup: Duration,
    pub stale: Duration,
}

impl PeerTimers {
    /// ElectrumX's: 300 s and 3 hours.
    pub const ELECTRUMX: PeerTimers = PeerTimers {
        wakeup: Duration::from_secs(300),
        stale: Duration::from_secs(3 * 3600),
    };

    /// The same timers `divisor` times faster (tests only).
    pub fn faster(divisor: u32) -> PeerTimers {
        let divisor = divisor.max(1);
        PeerTimers {
            wakeup: Self::ELECTRUMX.wakeup / divisor,
            stale: Self::ELECTRUMX.stale / divisor,
        }
    }

    /// How long to wait before the next try of a peer that has failed `try_count` times
    /// in a row (0: it was just verified, so check it again before it turns stale).
    pub fn retry_pause(&self, try_count: u32) -> Duration {
        if try_count == 0 {
            self.stale.saturating_sub(self.wakeup * 2)
        } else {
            self.wakeup.saturating_mul(1u32 << try_count.min(20))
        }
    }
}

/// The current time as ElectrumX keeps peer times: Unix seconds, fractional.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A peer failed verification: it is marked bad, with this reason in the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPeer(pub String);

/// What can go wrong around peers besides a bad peer: the blacklist, its download, a
/// SOCKS proxy.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("unsupported URL {0:?}: expected http:// or https://host[:port][/path]")]
    Url(String),
    #[error("HTTP response: {0}")]
    Http(String),
    #[error("the blacklist is not a JSON list of strings: {0}")]
    Blacklist(String),
    #[error("SOCKS proxy: {0}")]
    Socks(String),
}

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
        if !listed {
            return None;
        }
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
        Some(peer)
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
        match Peer::new(&host, &features, source) {
            Some(peer) => peer,
            // Unreachable: `host` is the one key of `hosts`.
            None => Peer::unlisted(host, source),
        }
    }

    fn unlisted(host: String, source: &str) -> Peer {
        let mut hosts = Map::new();
        hosts.insert(host.clone(), json!({}));
        let mut features = Map::new();
        features.insert("hosts".into(), Value::Object(hosts));
        Peer {
            host,
            features,
            source: source.to_string(),
            ip_addr: None,
            last_good: 0.0,
            last_try: 0.0,
            try_count: 0,
            bad: false,
            other_ports: Vec::new(),
            ssl_port: None,
            tcp_port: None,
            pruning: None,
            server_version: None,
            protocol_min: "0.0".into(),
            protocol_max: "0.0".into(),
        }
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

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single `_` between.
fn py_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let value: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -value } else { value })
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

/// aiorpcX's `is_valid_hostname`: labels of letters, digits, `-` and `_` (not starting
/// or ending with `-`), at most 63 characters each and 253 in all, the last not numeric.
pub fn is_valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    labels.iter().all(|label| {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| ok(c) || c == '-')
            && label.chars().next().is_some_and(ok)
            && label.chars().last().is_some_and(ok)
    })
}

pub use crate::net::is_private;
use crate::rng::SplitMix64;

/// Python's `is_global`: not private, and for IPv4 not the shared 100.64.0.0/10.
fn is_global(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(is_private(ip) || (a == 100 && (b & 0xc0) == 64))
        }
        IpAddr::V6(_) => !is_private(ip),
    }
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

/// Python's type name, for "returned bad result type" messages.
fn py_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn bad_type(method: &str, value: &Value) -> BadPeer {
    BadPeer(format!(
        "{method} returned bad result type {}",
        py_type(value)
    ))
}

/// A peer's `server.version` answer: two strings, the first its software version.
pub fn check_version_reply(result: &Value) -> Result<String, BadPeer> {
    let Value::Array(items) = result else {
        return Err(bad_type("server.version", result));
    };
    match items.as_slice() {
        [Value::String(version), Value::String(_)] => Ok(version.clone()),
        _ => Err(BadPeer(format!(
            "bad server.version result: {}",
            py_str(result)
        ))),
    }
}

/// A peer's `blockchain.headers.subscribe` answer against our height: its height must be
/// within [`MAX_TIP_HEIGHT_DIFF`] of ours. Returns the height whose header both must
/// agree on (a little below the lower tip, so a short chain split is not a failure).
pub fn check_tip(our_height: Height, result: &Value) -> Result<Height, BadPeer> {
    let Value::Object(map) = result else {
        return Err(bad_type("blockchain.headers.subscribe", result));
    };
    let height = map.get("height").unwrap_or(&Value::Null);
    let their_height = match height {
        Value::Number(n) if !n.is_f64() => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| BadPeer(format!("invalid height {}", py_str(height))))?;
    if (i64::from(our_height) - their_height).abs() > i64::from(MAX_TIP_HEIGHT_DIFF) {
        return Err(BadPeer(format!(
            "bad height {} (ours: {})",
            with_commas(i128::from(their_height)),
            with_commas(i128::from(our_height))
        )));
    }
    let lower = i64::from(our_height).min(their_height);
    Ok(Height::try_from((lower - i64::from(MAX_CHAINSPLIT_LEN)).max(0)).unwrap_or(0))
}

/// A peer's `blockchain.block.header` answer must be our header at that height.
pub fn check_header(ours: &str, theirs: &Value) -> Result<(), BadPeer> {
    let Value::String(theirs) = theirs else {
        return Err(bad_type("blockchain.block.header", theirs));
    };
    if theirs != ours {
        return Err(BadPeer(format!(
            "our header {ours} and theirs {theirs} differ"
        )));
    }
    Ok(())
}

/// A peer's `server.features` answer: our genesis block, and the host we reached it by
/// among its hosts. Returns the features.
pub fn check_features<'a>(
    host: &str,
    genesis_hex: &str,
    result: &'a Value,
) -> Result<&'a Map<String, Value>, BadPeer> {
    let Value::Object(features) = result else {
        return Err(bad_type("server.features", result));
    };
    let empty = Value::Object(Map::new());
    let hosts = features.get("hosts").unwrap_or(&empty);
    let Value::Object(hosts) = hosts else {
        return Err(bad_type("server.features", hosts));
    };
    if features.get("genesis_hash").and_then(Value::as_str) != Some(genesis_hex) {
        return Err(BadPeer("incorrect genesis hash".into()));
    }
    let hosts: Vec<String> = hosts.keys().map(|h| h.to_lowercase()).collect();
    if !hosts.contains(&host.to_lowercase()) {
        let listed: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
        return Err(BadPeer(format!(
            "not listed in own hosts list [{}]",
            listed.join(", ")
        )));
    }
    Ok(features)
}

/// A peer's `server.peers.subscribe` answer, `[[ip, host, [details…]], …]`, as peers
/// learnt from `source`.
pub fn parse_peer_list(
    result: &Value,
    source: &str,
    defaults: PeerPorts,
) -> Result<Vec<Peer>, BadPeer> {
    let Value::Array(entries) = result else {
        return Err(bad_type("server.peers.subscribe", result));
    };
    let bad = || BadPeer("bad server.peers.subscribe response".into());
    entries
        .iter()
        .map(|entry| {
            let host = entry.get(1).and_then(Value::as_str).ok_or_else(bad)?;
            let details = entry.get(2).and_then(Value::as_array).ok_or_else(bad)?;
            let mut parts = vec![host];
            for detail in details {
                parts.push(detail.as_str().ok_or_else(bad)?);
            }
            Ok(Peer::from_real_name(&parts.join(" "), source, defaults))
        })
        .collect()
}

/// Reads a blacklist: a JSON list of host names (`*.domain` for a whole domain) and IP
/// addresses, compared lowercase.
pub fn parse_blacklist(text: &[u8]) -> Result<HashSet<String>, PeerError> {
    let value: Value =
        serde_json::from_slice(text).map_err(|e| PeerError::Blacklist(e.to_string()))?;
    let entries: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => return Err(PeerError::Blacklist(format!("got {}", py_type(other)))),
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            Value::String(s) => Ok(s.to_lowercase()),
            other => Err(PeerError::Blacklist(format!("entry {other}"))),
        })
        .collect()
}

/// An `http://` or `https://` URL, split for a GET request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// From the first `/`, `/` if none.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, PeerError> {
        let bad = || PeerError::Url(url.to_string());
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse().map_err(|_| bad())?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad());
        }
        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    /// The request, `Connection: close` so the body ends with the connection.
    pub fn get_request(&self) -> String {
        let mut host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port != if self.tls { 443 } else { 80 } {
            host = format!("{host}:{}", self.port);
        }
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferrumx/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.path,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// The body of a complete HTTP/1.x response (read until the server closed), if its
/// status is 200: by Content-Length, chunked, or to the end.
pub fn http_body(response: &[u8]) -> Result<Vec<u8>, PeerError> {
    let http = |m: &str| PeerError::Http(m.to_string());
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| http("no end of headers"))?;
    let head = std::str::from_utf8(&response[..end]).map_err(|_| http("headers not UTF-8"))?;
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(PeerError::Http(format!("status {status_line:?}")));
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| http("bad Content-Length"))?,
            );
        }
    }
    if chunked {
        return dechunk(body);
    }
    match length {
        Some(n) if body.len() < n => Err(http("body shorter than Content-Length")),
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, PeerError> {
    let http = |m: &str| PeerError::Http(m.to_string());
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| http("truncated chunk size"))?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| http("bad chunk"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| http("bad chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(http("truncated chunk"));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// SOCKS5: the greeting offering no authentication.
pub const SOCKS5_GREETING: [u8; 3] = [5, 1, 0];

/// SOCKS5: checks the proxy's answer to the greeting.
pub fn socks5_check_method(reply: [u8; 2]) -> Result<(), PeerError> {
    match reply {
        [5, 0] => Ok(()),
        [5, 0xff] => Err(PeerError::Socks(
            "no acceptable authentication method".into(),
        )),
        other => Err(PeerError::Socks(format!(
            "unexpected greeting reply {other:?}"
        ))),
    }
}

/// SOCKS5: CONNECT to `host:port`, the host sent as a name (resolved by the proxy, as
/// onion names must be) unless it is an IP address.
pub fn socks5_connect_request(host: &str, port: u16) -> Result<Vec<u8>, PeerError> {
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len())
                .map_err(|_| PeerError::Socks(format!("host name too long: {host}")))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// SOCKS5: the first bytes of the CONNECT reply (version, status, reserved, address
/// type, and the name length for a name); returns how many bytes remain (the bound
/// address and port), or the proxy's refusal.
pub fn socks5_reply_rest(head: [u8; 5]) -> Result<usize, PeerError> {
    let [version, status, _, kind, first] = head;
    if version != 5 {
        return Err(PeerError::Socks(format!(
            "not a SOCKS5 reply (version {version})"
        )));
    }
    if status != 0 {
        let reason = match status {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(PeerError::Socks(format!("{reason} (code {status})")));
    }
    // One byte of the address was read with the header.
    match kind {
        1 => Ok(4 - 1 + 2),
        4 => Ok(16 - 1 + 2),
        3 => Ok(usize::from(first) + 2),
        other => Err(PeerError::Socks(format!("unknown address type {other}"))),
    }
}

/// ElectrumX's hard-coded peers of each network (`coin.PEERS`), as real names.
pub fn default_peers(coin: &Coin) -> &'static [&'static str] {
    match (coin.name, coin.net) {
        ("Bitcoin", "mainnet") => &[
            "electrum.vom-stausee.de s t",
            "electrum.hsmiths.com s t",
            "helicarrier.bauerj.eu s t",
            "electrum.hodlister.co s",
            "electrum3.hodlister.co s",
            "btc.usebsv.com s50006",
            "fortress.qtornado.com s443 t",
            "ecdsa.net s110 t",
            "e2.keff.org s t",
            "currentlane.lovebitco.in s t",
            "electrum.jochen-hoenicke.de s50005 t50003",
            "vps5.hsmiths.com s",
            "electrum.emzy.de s",
            "electrum1.cipig.net t10000 s20000",
            "ulrichard.ch s",
            "hodlers.beer s",
            "5.9.83.108 s",
            "v7gtzf7nua6hdmb2wtqaqioqmesdb4xrlly4zwr7bvayxv2bpg665pqd.onion t",
            "qeqgdlw2ezf3uabook2ny3lztjxxzeyyoqw2k7cempzvqpknbmevhmyd.onion t",
            "kciybn4d4vuqvobdl2kdp3r2rudqbqvsymqwg4jomzft6m6gaibaf6yd.onion t",
            "explorerzydxu5ecjrkwceayqybizmpjjznk5izmitf2modhcusuqlid.onion t110",
            "v7o2hkemnt677k3jxcbosmjjxw3p5khjyu7jwv7orfy6rwtkizbshwqd.onion t57001",
            "nf365b5sbzk5j4jreimskffwnfpka7qtamyni5doohoom3g63o5tldad.onion t",
        ],
        ("Bitcoin", "testnet") => &[
            "testnet.qtornado.com s t",
            "blackie.c3-soft.com s57006 t57005",
            "electrum.blockstream.info t60001 s60002",
            "testnet.aranguren.org s t",
            "v22019051929289916.bestsrv.de s50002 t50001",
            "explorerzydxu5ecjrkwceayqybizmpjjznk5izmitf2modhcusuqlid.onion t143",
            "gsw6sn27quwf6u3swgra6o7lrp5qau6kt3ymuyoxgkth6wntzm2bjwyd.onion s51002 t51001",
            "3tc6nefii2fwoc66dqvrwcyj64dd3r35ihgxvp4u37itsopns5fjtead.onion s50002 t50001",
        ],
        ("Bitcoin", "testnet4") => &[
            "blackie.c3-soft.com s57010 t57009",
            "testnet4-electrumx.wakiyamap.dev",
            "13.212.194.61 s60002 t50001",
            "v22019051929289916.bestsrv.de s60002 t60001",
            "fulcrum.theuplink.net s60002",
            "134.199.227.217 s50002 t50001",
            "bitcoin.stagemole.eu s5010 t5000",
            "testnet4.qtornado.com s51012 t51011",
            "gsw6sn27quwf6u3swgra6o7lrp5qau6kt3ymuyoxgkth6wntzm2bjwyd.onion s52002 t52001",
        ],
        ("Bitcoin", "mutinynet") => &["electrum.mutinynet.com t50001", "5.9.83.108 s51234"],
        ("Litecoin", "mainnet") => &[
            "ex.lug.gs s444",
            "electrum-ltc.bysh.me s t",
            "electrum-ltc.ddns.net s t",
            "electrum-ltc.wilv.in s t",
            "electrum.cryptomachine.com p1000 s t",
            "electrum.ltc.xurious.com s t",
        ],
        ("Litecoin", "testnet") => &[
            "electrum-ltc.bysh.me s t",
            "electrum.ltc.xurious.com s t",
            "ipv6-only.electrum.random.re s t",
        ],
        _ => &[],
    }
}

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

/// What does not change while the server runs.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    pub discovery: PeerDiscovery,
    pub announce: bool,
    pub force_proxy: bool,
    pub default_ports: PeerPorts,
    pub genesis_hex: &'static str,
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
            myselves: hosts
                .iter()
                .filter_map(|host| Peer::new(host, &map, "env"))
                .collect(),
        }
    }
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
            let known: Vec<PeerId> = {
                let matched = peer.matches(self.peers());
                self.entries
                    .iter()
                    .filter(|e| matched.iter().any(|m| std::ptr::eq(*m, &e.peer)))
                    .map(|e| e.id)
                    .collect()
            };
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
        let matched: Vec<PeerId> = {
            let matched = peer.matches(self.peers());
            self.entries
                .iter()
                .filter(|e| matched.iter().any(|m| std::ptr::eq(*m, &e.peer)))
                .map(|e| e.id)
                .collect()
        };
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
            let mut table = self.table();
            table.allow_loopback = allow_loopback;
            table.timers = timers;
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
                let coin_peers: Vec<Peer> = default_peers_for(&self.settings)
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
        let client_is_tor = match (table.proxy, client) {
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

fn default_peers_for(settings: &PeerSettings) -> &'static [&'static str] {
    crate::coins::COINS
        .iter()
        .find(|coin| coin.genesis_hex == settings.genesis_hex)
        .map_or(&[], default_peers)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: PeerPorts = PeerPorts {
        tcp: 50001,
        ssl: 50002,
    };
    const TIMERS: PeerTimers = PeerTimers::ELECTRUMX;

    fn features(host: &str, tcp: Option<u16>, ssl: Option<u16>) -> Map<String, Value> {
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

    fn peer(host: &str, tcp: u16) -> Peer {
        Peer::new(host, &features(host, Some(tcp), None), "test").expect("listed host")
    }

    fn verified(host: &str, ip: &str, now: f64) -> Peer {
        let mut p = peer(host, 50001);
        p.ip_addr = Some(ip.into());
        p.last_good = now - 10.0;
        p
    }

    fn table() -> PeerTable {
        PeerTable::new(SplitMix64::new(7))
    }

    fn ids(events: &[PeerEvent]) -> Vec<PeerId> {
        events
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Monitor(id) => Some(*id),
                PeerEvent::Retry(_) => None,
            })
            .collect()
    }

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
    fn retry_pauses_back_off_and_good_peers_are_checked_before_stale() {
        assert_eq!(TIMERS.retry_pause(0), Duration::from_secs(3 * 3600 - 600));
        assert_eq!(TIMERS.retry_pause(1), Duration::from_secs(600));
        assert_eq!(TIMERS.retry_pause(2), Duration::from_secs(1200));
        assert_eq!(TIMERS.retry_pause(3), Duration::from_secs(2400));
        let fast = PeerTimers::faster(1000);
        assert_eq!(fast.retry_pause(1), Duration::from_millis(600));
        assert_eq!(fast.stale, Duration::from_millis(10_800));
    }

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
        assert_eq!(d.table().len(), default_peers(coin).len());
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

    #[test]
    fn answers_of_a_peer_are_checked() {
        assert_eq!(
            check_version_reply(&json!(["ElectrumX 1.16", "1.4"])),
            Ok("ElectrumX 1.16".into())
        );
        assert_eq!(
            check_version_reply(&json!({"a": 1})),
            Err(BadPeer(
                "server.version returned bad result type dict".into()
            ))
        );
        assert_eq!(
            check_version_reply(&json!(["x"])),
            Err(BadPeer("bad server.version result: ['x']".into()))
        );
        assert_eq!(check_tip(100, &json!({"height": 103, "hex": ""})), Ok(90));
        assert_eq!(check_tip(3, &json!({"height": 5})), Ok(0));
        assert_eq!(
            check_tip(1000, &json!({"height": 2000})),
            Err(BadPeer("bad height 2,000 (ours: 1,000)".into()))
        );
        assert_eq!(
            check_tip(10, &json!({"height": "10"})),
            Err(BadPeer("invalid height 10".into()))
        );
        assert_eq!(check_header("00ab", &json!("00ab")), Ok(()));
        assert!(check_header("00ab", &json!("00ac")).is_err());
        assert!(check_header("00ab", &json!(null)).is_err());
        let f = json!({"hosts": {"Peer.Example.com": {}}, "genesis_hash": "g"});
        assert!(check_features("peer.example.COM", "g", &f).is_ok());
        assert_eq!(
            check_features("peer.example.com", "other", &f),
            Err(BadPeer("incorrect genesis hash".into()))
        );
        assert_eq!(
            check_features("x.example.com", "g", &f),
            Err(BadPeer(
                "not listed in own hosts list ['peer.example.com']".into()
            ))
        );
        assert!(check_features("x", "g", &json!({"hosts": [], "genesis_hash": "g"})).is_err());
    }

    #[test]
    fn peer_lists_are_parsed_or_refused() {
        let list = json!([
            ["1.2.3.4", "a.example.com", ["v1.4", "s50002", "t50001"]],
            ["b.onion", "b.onion", ["v1.4", "t"]],
        ]);
        let peers = parse_peer_list(&list, "src.example.com", PORTS).expect("parsed");
        assert_eq!(peers.len(), 2);
        assert_eq!(
            (peers[0].ssl_port, peers[1].tcp_port),
            (Some(50002), Some(50001))
        );
        assert_eq!(peers[0].source, "src.example.com");
        for bad in [
            json!([["x"]]),
            json!([["a", "b", "v1.4"]]),
            json!([["a", "b", [1]]]),
            json!("x"),
        ] {
            assert!(parse_peer_list(&bad, "s", PORTS).is_err(), "{bad}");
        }
    }

    #[test]
    fn blacklists_and_http_bodies() {
        let set =
            parse_blacklist(br#"["Bad.Example.com", "*.evil.net", "1.2.3.4"]"#).expect("list");
        assert!(set.contains("bad.example.com") && set.contains("*.evil.net"));
        assert!(parse_blacklist(b"{}").is_err());
        assert!(parse_blacklist(b"[1]").is_err());
        assert!(parse_blacklist(b"<html>").is_err());

        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n[1]\nextra";
        assert_eq!(http_body(plain).expect("body"), b"[1]\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[\"a\r\n2;x=y\r\n\"]\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).expect("body"), b"[\"a\"]");
        let closed = b"HTTP/1.0 200 OK\r\n\r\n[]";
        assert_eq!(http_body(closed).expect("body"), b"[]");
        assert!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(http_body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[]").is_err());
        assert!(http_body(b"garbage").is_err());

        let url = HttpUrl::parse("https://electrum.org/blacklist.json").expect("url");
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.path.as_str()),
            (true, "electrum.org", 443, "/blacklist.json")
        );
        let url = HttpUrl::parse("http://127.0.0.1:8080").expect("url");
        assert_eq!((url.port, url.path.as_str()), (8080, "/"));
        let url = HttpUrl::parse("http://[::1]:81/x").expect("url");
        assert_eq!((url.host.as_str(), url.port), ("::1", 81));
        for bad in ["ftp://x/", "http://", "http://h:x/", "https://u@h/"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(
            url.get_request()
                .starts_with("GET /x HTTP/1.1\r\nHost: [::1]:81\r\n")
        );
    }

    #[test]
    fn socks5_messages() {
        assert!(socks5_check_method([5, 0]).is_ok());
        assert!(socks5_check_method([5, 0xff]).is_err());
        assert!(socks5_check_method([4, 0]).is_err());
        assert_eq!(
            socks5_connect_request("ab.onion", 80).expect("request"),
            [&[5u8, 1, 0, 3, 8][..], b"ab.onion", &[0, 80]].concat()
        );
        assert_eq!(
            socks5_connect_request("1.2.3.4", 443).expect("request"),
            vec![5, 1, 0, 1, 1, 2, 3, 4, 1, 187]
        );
        assert!(socks5_connect_request(&"a".repeat(300), 1).is_err());
        assert_eq!(socks5_reply_rest([5, 0, 0, 1, 127]).expect("ok"), 5);
        assert_eq!(socks5_reply_rest([5, 0, 0, 3, 10]).expect("ok"), 12);
        assert!(socks5_reply_rest([5, 5, 0, 1, 0]).is_err());
    }

    #[test]
    fn hostnames_and_python_ints() {
        assert!(is_valid_hostname("a-b.example.com."));
        assert!(is_valid_hostname("_srv.example.com"));
        assert!(!is_valid_hostname("-a.example.com"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname(&"a".repeat(64)));
        assert!(!is_valid_hostname("1.2.3.4"));
        assert_eq!(py_int(" 1_000 "), Some(1000));
        assert_eq!(py_int("+5"), Some(5));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("0x10"), None);
        assert_eq!(version_string(Some(&json!("1.4.2"))), "1.4.2");
        assert_eq!(version_string(Some(&json!("x"))), "0.0");
        assert_eq!(version_string(None), "0.0");
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut rng = SplitMix64::new(1);
        let mut items: Vec<u32> = (0..20).collect();
        rng.shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert_ne!(items, sorted, "a shuffle of 20 moved something");
        assert!((0..100).all(|_| rng.below(3) < 3));
        assert_eq!(rng.below(0), 0);
    }
}
