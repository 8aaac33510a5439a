//! The Peers actor: peer discovery as ElectrumX does it. With PEER_DISCOVERY=on it
//! imports this server's own identities (REPORT_SERVICES) and the coin's peers, then
//! checks each peer on its own schedule: connect (SSL first, then TCP; onion peers, and
//! every peer with FORCE_PROXY, through the SOCKS proxy found at TOR_PROXY_HOST/PORT),
//! `server.version`, the tip and a header near it, `server.features` (same genesis block,
//! the host among its hosts), its peer list (a couple of new peers taken from it), and
//! with PEER_ANNOUNCE `server.add_peer` with our features if it does not list us. A peer
//! that fails is retried with exponential backoff and forgotten after 3 failures (10 if
//! it was once good); a bad one is remembered as bad until then. BLACKLIST_URL is fetched
//! every 10 minutes. The rules are in `ferrumx::peers`; the shared [`PeerDirectory`] is
//! what sessions and the admin interface read.
//!
//! Test-only: `FERRUMX_TEST_PEERS=1` lets loopback addresses count as public peers and
//! runs the peer timers 1,000 times faster (retries after 0.6 s, 1.2 s…; stale after
//! 10.8 s), so that several servers on one machine can discover each other in a test.

mod network;

use network::{Io, PeerConnection, connect, detect_proxy, refresh_blacklist};

use crate::supervisor::{Backoff, InjectPanic, catch_panic, injected_panic, record_restart};
use actix::prelude::*;
use bitcoin::hex::DisplayHex;
use ferrumx::config::{Config, Host, PeerDiscovery, Protocol};
use ferrumx::hashes::Height;
use ferrumx::peers::{
    BadPeer, DEFAULT_PROXY_PORTS, Peer, PeerDirectory, PeerEvent, PeerId, PeerTimers,
    REQUEST_TIMEOUT, TOR_REQUEST_TIMEOUT, check_features, check_header, check_tip,
    check_version_reply, parse_peer_list, unix_now,
};
use ferrumx::protocol::server::software_version;
use ferrumx::protocol::version::{protocol_max, protocol_min};
use ferrumx::socks5::SocksError;
use ferrumx::store::{Store, StoreError};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::sync::Notify;

/// How much faster the peer timers run under the test setting.
const TEST_SPEEDUP: u32 = 1000;
/// The longest line a peer may send (a peer list or a header is far smaller).
const MAX_LINE: u64 = 4_000_000;
/// The largest blacklist document read.
const MAX_BLACKLIST: usize = 4_000_000;
/// How long a SOCKS proxy has to answer the greeting while it is being looked for.
const PROXY_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one try of a peer failed.
#[derive(Debug, thiserror::Error)]
enum TryError {
    /// It answered something wrong: it is bad.
    #[error(transparent)]
    Bad(#[from] BadPeer),
    #[error("RPC error: {message} ({code})")]
    Rpc { code: i64, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed")]
    Closed,
    #[error("invalid JSON from peer: {0}")]
    Json(String),
    #[error("no address to connect to")]
    NoAddress,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Socks(#[from] SocksError),
    #[error("cannot read the index: {0}")]
    Store(#[from] StoreError),
    #[error("our index has no header at height {0}")]
    NoHeader(Height),
}

/// What every check of a peer shares.
struct Shared {
    directory: Arc<PeerDirectory>,
    store: Arc<Store>,
    force_proxy: bool,
    /// Outgoing connections leave from the address we serve on, so that peers see the
    /// right source (ElectrumX binds to a SERVICES IP too).
    local_v4: Option<IpAddr>,
    local_v6: Option<IpAddr>,
    /// Peers' certificates are not checked (ElectrumX does not either: most are
    /// self-signed).
    tls: Option<SslConnector>,
    /// The wake-up of each peer's check loop.
    retries: RefCell<HashMap<PeerId, Rc<Notify>>>,
}

pub struct Peers {
    shared: Rc<Shared>,
    config: Arc<Config>,
    allow_loopback: bool,
    timers: PeerTimers,
    /// Discovery was started once; a restart keeps the directory and its monitors.
    restarted: bool,
}

/// Starts the Peers actor when PEER_DISCOVERY is on (on the current arbiter); with it off
/// or `self`, as ElectrumX, nobody is contacted and `server.peers.subscribe` lists
/// nobody.
pub fn start(
    config: Arc<Config>,
    store: Arc<Store>,
    directory: Arc<PeerDirectory>,
) -> Option<Addr<Peers>> {
    let mode = match config.peer_discovery {
        PeerDiscovery::On => "on",
        PeerDiscovery::Off => "off",
        PeerDiscovery::SelfOnly => "self",
    };
    log::info!("peer discovery: {mode}");
    if config.peer_discovery != PeerDiscovery::On {
        log::info!("peer discovery is disabled");
        return None;
    }
    let test = ferrumx::test_switches::peers();
    if test {
        log::warn!(
            "FERRUMX_TEST_PEERS=1: loopback peers allowed, peer timers {TEST_SPEEDUP}x faster"
        );
    }
    let local = |v6: bool| {
        config
            .services
            .iter()
            .find_map(|service| match &service.host {
                Host::Ip(ip)
                    if ip.is_ipv6() == v6
                        && !matches!(service.protocol, Protocol::Rpc | Protocol::Http) =>
                {
                    Some(*ip)
                }
                _ => None,
            })
    };
    let tls = SslConnector::builder(SslMethod::tls_client())
        .map(|mut builder| {
            builder.set_verify(SslVerifyMode::NONE);
            builder.build()
        })
        .map_err(|e| log::error!("no TLS for peers (only TCP will be tried): {e}"))
        .ok();
    let shared = Rc::new(Shared {
        directory,
        store,
        force_proxy: config.force_proxy,
        local_v4: local(false),
        local_v6: local(true),
        tls,
        retries: RefCell::new(HashMap::new()),
    });
    let peers = Peers {
        shared,
        config,
        allow_loopback: test,
        timers: if test {
            PeerTimers::faster(TEST_SPEEDUP)
        } else {
            PeerTimers::ELECTRUMX
        },
        restarted: false,
    };
    Some(Supervisor::start(move |_| peers))
}

impl Actor for Peers {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.restarted {
            return;
        }
        let directory = &self.shared.directory;
        let settings = directory.settings();
        let clearnet = settings.myselves.iter().find(|p| !p.is_tor());
        log::info!("announce ourself: {}", settings.announce);
        log::info!(
            "my clearnet self: {}",
            clearnet.map_or("None", |p| p.host.as_str())
        );
        log::info!("force use of proxy: {}", settings.force_proxy);
        log::info!("beginning peer discovery...");
        let address = ctx.address();
        let started = directory.start(
            Box::new(move |event| address.do_send(Event(event))),
            self.allow_loopback,
            self.timers,
        );
        if !started {
            log::error!("peer discovery was already started");
            return;
        }
        if let Some(url) = self.config.blacklist_url.clone() {
            actix_rt::spawn(refresh_blacklist(Arc::clone(directory), url));
        }
        let ports = match self.config.tor_proxy_port {
            Some(port) => vec![port],
            None => DEFAULT_PROXY_PORTS.to_vec(),
        };
        actix_rt::spawn(detect_proxy(
            Arc::clone(directory),
            self.config.tor_proxy_host.clone(),
            ports,
        ));
        directory.import_peers();
    }
}

/// Work for the actor, from the directory.
#[derive(Message)]
#[rtype(result = "()")]
struct Event(PeerEvent);

/// The peer directory and the monitors outlive a restart: the actor only hands out work.
impl Supervised for Peers {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarted = true;
        record_restart("peers");
        log::warn!("peers actor restarting");
    }
}

impl Handler<InjectPanic> for Peers {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        if catch_panic("peers", || injected_panic("the peers actor")).is_err() {
            ctx.stop();
        }
    }
}

impl Handler<Event> for Peers {
    type Result = ();

    fn handle(&mut self, Event(event): Event, ctx: &mut Context<Self>) {
        let shared = &self.shared;
        let handled = catch_panic("peers", || match event {
            PeerEvent::Monitor(id) => {
                let wake = Rc::new(Notify::new());
                shared.retries.borrow_mut().insert(id, Rc::clone(&wake));
                actix_rt::spawn(supervised_monitor(Rc::clone(shared), id, wake));
            }
            PeerEvent::Retry(id) => {
                if let Some(wake) = shared.retries.borrow().get(&id) {
                    wake.notify_one();
                }
            }
        });
        if handled.is_err() {
            ctx.stop();
        }
    }
}

/// A peer's monitor that panics is started again after a backoff, so that a bug met
/// with one peer neither stops discovery nor leaves that peer unwatched for good.
async fn supervised_monitor(shared: Rc<Shared>, id: PeerId, wake: Rc<Notify>) {
    let mut backoff = Backoff::default();
    loop {
        let task = actix_rt::spawn(monitor(Rc::clone(&shared), id, Rc::clone(&wake)));
        match task.await {
            Err(e) if e.is_panic() => {
                let delay = backoff.next_delay(std::time::Instant::now());
                log::error!("the monitor of peer {id:?} panicked; restarting it in {delay:?}");
                record_restart("peer monitor");
                actix_rt::time::sleep(delay).await;
            }
            _ => return,
        }
    }
}

/// Checks one peer until it is forgotten: now, then again after its retry pause (or
/// sooner when woken).
async fn monitor(shared: Rc<Shared>, id: PeerId, wake: Rc<Notify>) {
    loop {
        if !shared.directory.table().contains(id) {
            break;
        }
        if should_drop(&shared, id).await {
            shared.directory.table().remove(id);
            break;
        }
        let Some(pause) = shared.directory.table().retry_pause(id) else {
            break;
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = wake.notified() => {}
        }
    }
    shared.retries.borrow_mut().remove(&id);
}

/// One try of a peer on each of its ways in turn until one verifies it. Whether the peer
/// is to be forgotten.
async fn should_drop(shared: &Shared, id: PeerId) -> bool {
    let directory = &shared.directory;
    let Some((peer, tries)) = directory.table().begin_try(id) else {
        return true;
    };
    let via_proxy = shared.force_proxy || peer.is_tor();
    let timeout = if peer.is_tor() {
        TOR_REQUEST_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    let mut verified: Option<String> = None;
    for way in tries {
        let started = unix_now();
        if let Some(p) = directory.table().get_mut(id) {
            p.last_try = started;
        }
        let proxy = if via_proxy {
            match directory.table().proxy() {
                Some(proxy) => Some(proxy),
                // Tried again once a proxy is found.
                None => return false,
            }
        } else {
            None
        };
        let label = format!("[{}:{} {}]", peer.host, way.port, way.kind.as_str());
        let result = tokio::time::timeout(timeout, connect(shared, &peer, way, proxy))
            .await
            .unwrap_or(Err(TryError::Timeout(timeout)));
        let result = match result {
            Ok((connection, ip)) => verify(shared, id, &peer, connection, ip, timeout).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                verified = Some(label);
                break;
            }
            Err(TryError::Bad(e)) => {
                log::error!("{label} marking bad: ({e})");
                if let Some(p) = directory.table().get_mut(id) {
                    p.bad = true;
                }
                break;
            }
            Err(TryError::Rpc { code, message }) => {
                log::error!("{label} RPC error: {message} ({code})");
            }
            Err(e) => log::info!("{label} {e}"),
        }
    }
    if let Some(label) = verified {
        let now = unix_now();
        let elapsed = directory.table().get(id).map_or(0.0, |p| now - p.last_try);
        let events = directory.table().record_good(id, now);
        directory.dispatch(events);
        log::info!("{label} verified in {elapsed:.1}s");
        false
    } else {
        directory.table().record_failure(id)
    }
}

/// ElectrumX's verification of a peer reached at `ip`.
async fn verify(
    shared: &Shared,
    id: PeerId,
    peer: &Peer,
    stream: Box<dyn Io>,
    ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), TryError> {
    let directory = &shared.directory;
    let settings = directory.settings();
    if !peer.is_tor()
        && let Some(p) = directory.table().get_mut(id)
    {
        p.ip_addr = ip.map(|ip| ip.to_string());
    }
    directory.table().precheck(id, unix_now())?;
    let mut connection = PeerConnection {
        stream: BufReader::new(stream),
        next_id: 0,
        timeout,
    };
    let versions = json!([protocol_min().to_string(), protocol_max().to_string()]);
    let reply = connection
        .request("server.version", json!([software_version(), versions]))
        .await?;
    let version = check_version_reply(&reply)?;
    if let Some(p) = directory.table().get_mut(id) {
        p.set_server_version(&version);
    }

    let tip = connection
        .request("blockchain.headers.subscribe", json!([]))
        .await?;
    let our_height = our_height(&shared.store)?;
    let check_height = check_tip(our_height, &tip)?;
    let ours = our_header(&shared.store, check_height)?;
    let theirs = connection
        .request("blockchain.block.header", json!([check_height]))
        .await?;
    check_header(&ours, &theirs)?;

    let features = connection.request("server.features", json!([])).await?;
    let features = check_features(&peer.host, settings.genesis_hex, &features)?;
    if let Some(p) = directory.table().get_mut(id) {
        p.update_features(features);
    }

    let list = connection
        .request("server.peers.subscribe", json!([]))
        .await?;
    let listed = parse_peer_list(&list, &peer.host, settings.default_ports)?;
    directory.note_listed_peers(listed.clone());
    let announce = directory
        .table()
        .features_to_register(settings, id, &listed);
    if let Some(features) = announce {
        log::info!("registering ourself with {}", peer.host);
        connection
            .request("server.add_peer", json!([features]))
            .await?;
    }
    Ok(())
}

fn our_height(store: &Store) -> Result<Height, TryError> {
    Ok(store
        .snapshot()?
        .tip()?
        .map_or(Height::GENESIS, |(height, _)| height))
}

fn our_header(store: &Store, height: Height) -> Result<String, TryError> {
    let header = store.snapshot()?.header(height)?;
    header
        .map(|h| h.to_lower_hex_string())
        .ok_or(TryError::NoHeader(height))
}
