//! Peer discovery as ElectrumX does it (its `lib/peer.py` and `server/peers.py`), without
//! sockets: what a peer is (a host and the features it announced), when it is good, stale,
//! never reached or bad, which peers `server.peers.subscribe` lists and in what form, when
//! a peer is retried and when it is forgotten, the checks a peer's answers must pass, the
//! rate limit and source check of `server.add_peer`, and the blacklist. The Peers actor
//! (`actors/peers.rs`) connects to peers and applies these rules; client sessions and the
//! admin interface read the same [`PeerDirectory`] without going through the actor.
//!
//! - `peer`: a peer, its real name, the ways to reach it, its status.
//! - `checks`: the checks a peer's answers must pass; peer lists and the blacklist.
//! - `schedule`: the peer timers: retries with backoff, rechecks before stale.
//! - `settings`: what discovery is told at start-up.
//! - `table`: the known peers and discovery's memory around them.
//! - `directory`: the table shared by the actor, client sessions and the admin.

mod checks;
mod directory;
mod peer;
mod schedule;
mod settings;
mod table;

#[cfg(test)]
mod fixtures;

pub use checks::{
    BlacklistError, check_features, check_header, check_tip, check_version_reply, parse_blacklist,
    parse_peer_list,
};
pub use directory::PeerDirectory;
pub use peer::{ConnectionTry, Family, Peer, PeerStatus, PortKind};
pub use schedule::PeerTimers;
pub use settings::PeerSettings;
pub use table::{PeerEvent, PeerId, PeerTable};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A peer's `server.add_peer` is honoured at most once per this many seconds per bucket.
pub const PEER_ADD_PAUSE: f64 = 600.0;
/// A peer whose tip is further than this from ours is bad.
pub const MAX_TIP_HEIGHT_DIFF: u32 = 5;
/// The header this far below the lower of the two tips must be the same on both sides.
pub const MAX_CHAINSPLIT_LEN: u32 = 10;
/// How long one request to a peer may take (through Tor: [`TOR_REQUEST_TIMEOUT`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const TOR_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the blacklist is fetched again.
pub const BLACKLIST_REFRESH: Duration = Duration::from_secs(600);
/// How long after a failed search for a SOCKS proxy the next one starts.
pub const PROXY_RETRY: Duration = Duration::from_secs(900);
/// SOCKS ports tried when TOR_PROXY_PORT is not set.
pub const DEFAULT_PROXY_PORTS: [u16; 3] = [9050, 9150, 1080];

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
