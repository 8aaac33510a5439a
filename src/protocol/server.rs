//! `server.*` methods, and what every session shares: the settings these methods report,
//! the caches of the other method families, and the daemon calls they make.

use super::params::{Signature, bind, py_str, py_str_repr};
use super::transaction::MerkleLevel;
use super::version::{ProtocolVersion, negotiate, protocol_max, protocol_min};
use super::{QueryContext, RpcError};
use crate::cache::{Expiring, LruCache};
use crate::coins::Coin;
use crate::config::{Config, Host, Service};
use crate::daemon::DaemonError;
use crate::hashes::HashX;
use crate::hashes::Height;
use crate::peers::{PeerDirectory, PeerSettings, unix_now};
use crate::store::HistoryEntry;
use bitcoin::{BlockHash, Txid};
use serde_json::{Map, Value, json};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Entries of each LRU cache (ElectrumX's size for all of them).
const CACHE_ENTRIES: usize = 1000;
/// How long `getnetworkinfo` and `getmempoolinfo` answers are reused.
const DAEMON_INFO_TTL: Duration = Duration::from_secs(60);

/// A block as caches key it: a height alone could name another block after a reorg.
pub type BlockKey = (Height, BlockHash);

/// What the `server.*` methods report, fixed at start-up from the configuration, and
/// the state all sessions share (one per server, behind an `Arc`).
/// Histories kept in memory (ElectrumX keeps 1,000; ours are compact, so more).
const HISTORY_CACHE_ENTRIES: usize = 10_000;

pub struct ServerInfo {
    pub coin: &'static Coin,
    pub donation_address: String,
    /// BANNER_FILE, relative paths resolved against DB_DIRECTORY (ElectrumX runs there).
    pub banner_file: Option<PathBuf>,
    pub report_services: Vec<Service>,
    /// Confirmed histories by script, valid for the chain tip they were read at: a new
    /// block or a reorg makes every entry miss, so none is ever stale.
    pub history_cache: LruCache<(HashX, BlockHash), Arc<Vec<HistoryEntry>>>,
    /// Transaction ids of a block, in block order.
    pub txids_cache: LruCache<BlockKey, Arc<Vec<Txid>>>,
    /// One level of the merkle tree of blocks with many transactions.
    pub merkle_cache: LruCache<BlockKey, Arc<MerkleLevel>>,
    /// `blockchain.estimatefee` answers by (bucketed target, mode, chain tip).
    pub estimatefee_cache: LruCache<(u64, Option<String>, BlockHash), Value>,
    pub network_info: Expiring<Value>,
    pub mempool_info: Expiring<Value>,
    /// Transactions broadcast for clients.
    pub txs_sent: AtomicU64,
    /// The peers this server knows (kept by the Peers actor when discovery is on).
    pub peers: Arc<PeerDirectory>,
    /// DROP_CLIENT: clients whose name matches are refused at `server.version`.
    pub drop_client: Option<regex::Regex>,
}

impl ServerInfo {
    /// Defaults for `coin`: no banner file, no donation address, nothing to report.
    pub fn new(coin: &'static Coin) -> ServerInfo {
        ServerInfo {
            coin,
            donation_address: String::new(),
            banner_file: None,
            report_services: Vec::new(),
            history_cache: LruCache::new(HISTORY_CACHE_ENTRIES),
            txids_cache: LruCache::new(CACHE_ENTRIES),
            merkle_cache: LruCache::new(CACHE_ENTRIES),
            estimatefee_cache: LruCache::new(CACHE_ENTRIES),
            network_info: Expiring::new(DAEMON_INFO_TTL),
            mempool_info: Expiring::new(DAEMON_INFO_TTL),
            txs_sent: AtomicU64::new(0),
            peers: Arc::new(PeerDirectory::new(PeerSettings::disabled(coin))),
            drop_client: None,
        }
    }

    /// The settings of a running server: DONATION_ADDRESS, BANNER_FILE, REPORT_SERVICES,
    /// and the peer directory (PEER_* settings, this server's identities as peers).
    pub fn from_config(config: &Config) -> ServerInfo {
        let mut server = ServerInfo::settings_from_config(config);
        let features = features_of(&server);
        server.peers = Arc::new(PeerDirectory::new(PeerSettings::from_config(
            config, &features,
        )));
        server
    }

    fn settings_from_config(config: &Config) -> ServerInfo {
        ServerInfo {
            donation_address: config.donation_address.clone(),
            banner_file: config
                .banner_file
                .as_ref()
                .map(|path| config.db_directory.join(path)),
            report_services: config.report_services.clone(),
            // Validated with the configuration.
            drop_client: config
                .drop_client
                .as_deref()
                .and_then(|pattern| crate::config::drop_client_regex(pattern).ok()),
            ..ServerInfo::new(config.coin)
        }
    }
}

/// A daemon call as the methods make it: `(method, params) -> result`. Production code
/// passes [`ask_daemon`]; tests pass fakes.
pub type DaemonCall<'a> = dyn FnMut(&str, &[Value]) -> Result<Value, DaemonError> + 'a;

/// One attempt at a daemon call: a client's request fails fast rather than waiting for
/// a daemon that is down.
pub fn ask_daemon(
    ctx: &QueryContext,
    method: &str,
    params: &[Value],
) -> Result<Value, DaemonError> {
    ctx.daemon
        .with_client(|client| client.call_once(method, params))
}

/// ElectrumX's `daemon_request`: an error the daemon returned, as the client sees it
/// (`daemon error: DaemonError({'code': -5, 'message': '...'})`, code 2). ElectrumX
/// would wait out a daemon that does not answer; ferrumx says so instead.
pub fn daemon_error(error: DaemonError) -> RpcError {
    match error {
        DaemonError::Rpc { code, message } => RpcError::new(
            RpcError::DAEMON_ERROR,
            format!(
                "daemon error: DaemonError({{'code': {code}, 'message': {}}})",
                py_str_repr(&message)
            ),
        ),
        other => {
            log::warn!("daemon request failed: {other}");
            RpcError::new(
                RpcError::DAEMON_ERROR,
                "daemon error: the daemon did not answer; try again later",
            )
        }
    }
}

/// A daemon answer without a field ElectrumX reads: ElectrumX fails with a `KeyError`,
/// which the client sees as an internal error.
pub fn missing_field(method: &str, field: &str) -> RpcError {
    log::error!("the daemon's {method} answer has no usable {field:?}");
    RpcError::internal()
}

/// `getnetworkinfo`, reused for a minute.
pub fn network_info(daemon: &mut DaemonCall, server: &ServerInfo) -> Result<Value, RpcError> {
    server
        .network_info
        .get_or_fetch(|| daemon("getnetworkinfo", &[]))
        .map_err(daemon_error)
}

/// The software name and version clients see in `server.version`.
pub fn software_version() -> String {
    format!("ferrumx {}", env!("CARGO_PKG_VERSION"))
}

const VERSION_SIG: Signature = Signature {
    names: &["client_name", "protocol_version"],
    required: 0,
    extra_ok: true,
};

/// What a `server.version` request decided.
#[derive(Debug, PartialEq)]
pub enum VersionOutcome {
    /// Negotiated: remember the client name and protocol, send `reply`.
    Agreed {
        client_name: String,
        protocol: ProtocolVersion,
        reply: Value,
    },
    /// Send this error and keep the session.
    Error(RpcError),
    /// Send this error, then close the connection.
    ErrorAndDisconnect(RpcError),
}

/// `server.version(client_name='', protocol_version=None, *extra)`. `already_sent` is
/// whether this session negotiated before (only the first request counts); clients
/// whose name `drop_client` matches are refused and disconnected.
pub fn version(
    params: &Value,
    already_sent: bool,
    drop_client: Option<&regex::Regex>,
) -> VersionOutcome {
    let slots = match bind("server.version", params, &VERSION_SIG) {
        Ok(slots) => slots,
        Err(e) => return VersionOutcome::Error(e),
    };
    if already_sent {
        return VersionOutcome::Error(RpcError::bad_request("server.version already sent"));
    }
    let full_name = match slots[0] {
        None | Some(Value::Null) => String::new(),
        Some(name) => py_str(name),
    };
    // ElectrumX matches the whole name, then keeps at most 100 characters of it.
    if !full_name.is_empty() && drop_client.is_some_and(|regex| regex.is_match(&full_name)) {
        return VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(format!(
            "unsupported client: {full_name}"
        )));
    }
    let client_name: String = full_name.chars().take(100).collect();
    match negotiate(slots[1]) {
        Some(protocol) => {
            let reply = json!([software_version(), protocol.to_string()]);
            VersionOutcome::Agreed {
                client_name,
                protocol,
                reply,
            }
        }
        None => {
            let requested = slots[1].map_or_else(|| "None".to_string(), py_str);
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(format!(
                "unsupported protocol version: {requested}"
            )))
        }
    }
}

/// The `server.*` methods other than `server.version` (which changes the session's
/// state and is handled by the session); `None` for any other method.
pub fn dispatch(
    ctx: &QueryContext,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    Some(match method {
        "server.ping" => ping(params),
        "server.features" => features(ctx, params),
        "server.banner" => banner(ctx, params),
        "server.donation_address" => donation_address(ctx, params),
        "server.peers.subscribe" => peers_subscribe(ctx.server, ctx.client_ip, params),
        "server.add_peer" => add_peer(ctx.server, ctx.client_ip, params, &resolve_host),
        _ => return None,
    })
}

pub(super) const NO_ARGS: Signature = Signature {
    names: &[],
    required: 0,
    extra_ok: false,
};

/// `server.ping`: `null`. ElectrumX's handler already takes protocol 1.7's optional
/// `pong_len` and `data`, and below 1.7 ignores them; so does ferrumx.
pub fn ping(params: &Value) -> Result<Value, RpcError> {
    const PING: Signature = Signature {
        names: &["pong_len", "data"],
        required: 0,
        extra_ok: false,
    };
    bind("server.ping", params, &PING)?;
    Ok(Value::Null)
}

/// `server.features`: how to reach this server (from REPORT_SERVICES) and what it serves.
pub fn features(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    bind("server.features", params, &NO_ARGS)?;
    Ok(features_of(ctx.server))
}

fn features_of(server: &ServerInfo) -> Value {
    // As ElectrumX: one entry per host, the last port of a protocol winning.
    let mut hosts = Map::new();
    for service in &server.report_services {
        let host = match &service.host {
            // Python's str() of an IPv6 address has no brackets.
            Host::Ip(ip) => ip.to_string(),
            other => other.to_string(),
        };
        let ports = hosts.entry(host).or_insert_with(|| json!({}));
        ports[format!("{}_port", service.protocol)] = json!(service.port);
    }
    let services: Vec<String> = server
        .report_services
        .iter()
        .map(Service::to_string)
        .collect();
    json!({
        "hosts": hosts,
        "pruning": null,
        "server_version": software_version(),
        "protocol_min": protocol_min().to_string(),
        "protocol_max": protocol_max().to_string(),
        "genesis_hash": server.coin.genesis_hex,
        "hash_function": "sha256",
        "services": services,
    })
}

/// `server.banner`: BANNER_FILE (read on every request) with its `$` variables replaced,
/// or a line naming the server when there is none or it cannot be read.
pub fn banner(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    banner_with(ctx.server, params, &mut |method, args| {
        ask_daemon(ctx, method, args)
    })
}

fn banner_with(
    server: &ServerInfo,
    params: &Value,
    daemon: &mut DaemonCall,
) -> Result<Value, RpcError> {
    bind("server.banner", params, &NO_ARGS)?;
    let default = format!("You are connected to an {} server.", software_version());
    let Some(path) = &server.banner_file else {
        return Ok(Value::String(default));
    };
    let text = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()));
    match text {
        Ok(text) => Ok(Value::String(replaced_banner(server, daemon, text)?)),
        Err(e) => {
            log::error!("reading banner file {}: {e}", path.display());
            Ok(Value::String(default))
        }
    }
}

fn replaced_banner(
    server: &ServerInfo,
    daemon: &mut DaemonCall,
    banner: String,
) -> Result<String, RpcError> {
    let info = network_info(daemon, server)?;
    // e.g. 210201 -> "21.2.1" (ElectrumX's formula, whatever the coin's numbering).
    let version = info["version"]
        .as_i64()
        .ok_or_else(|| missing_field("getnetworkinfo", "version"))?;
    let daemon_version = format!(
        "{}.{}.{}",
        version.div_euclid(10_000),
        version.rem_euclid(10_000).div_euclid(100),
        version.rem_euclid(100)
    );
    let subversion = info["subversion"]
        .as_str()
        .ok_or_else(|| missing_field("getnetworkinfo", "subversion"))?;
    // One after the other, as ElectrumX does: a value may contain a later variable.
    let subversion_ours = software_version();
    let mut banner = banner;
    for (variable, value) in [
        ("$SERVER_VERSION", env!("CARGO_PKG_VERSION")),
        ("$SERVER_SUBVERSION", subversion_ours.as_str()),
        ("$DAEMON_VERSION", daemon_version.as_str()),
        ("$DAEMON_SUBVERSION", subversion),
        ("$DONATION_ADDRESS", server.donation_address.as_str()),
    ] {
        banner = banner.replace(variable, value);
    }
    Ok(banner)
}

/// `server.donation_address`: DONATION_ADDRESS, empty if unset.
pub fn donation_address(ctx: &QueryContext, params: &Value) -> Result<Value, RpcError> {
    bind("server.donation_address", params, &NO_ARGS)?;
    Ok(Value::String(ctx.server.donation_address.clone()))
}

/// `server.peers.subscribe`: the peers this server vouches for (see
/// [`PeerDirectory::subscribe_list`]); nobody without peer discovery, as ElectrumX.
/// Not a subscription: nothing is ever notified.
pub fn peers_subscribe(
    server: &ServerInfo,
    client: Option<IpAddr>,
    params: &Value,
) -> Result<Value, RpcError> {
    bind("server.peers.subscribe", params, &NO_ARGS)?;
    Ok(server.peers.subscribe_list(client, unix_now()))
}

/// `server.add_peer(features)`: whether the peer is accepted for checking (see
/// [`PeerDirectory::on_add_peer`]: discovery on, rate limits, the host resolving to the
/// client's address); always `false` without peer discovery.
pub fn add_peer(
    server: &ServerInfo,
    client: Option<IpAddr>,
    params: &Value,
    resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> Result<Value, RpcError> {
    let sig = Signature {
        names: &["features"],
        required: 1,
        extra_ok: false,
    };
    let slots = bind("server.add_peer", params, &sig)?;
    let features = slots[0].unwrap_or(&Value::Null);
    Ok(Value::Bool(server.peers.on_add_peer(
        features,
        client,
        unix_now(),
        resolve,
    )))
}

/// The addresses a host name resolves to (blocking: queries run on the blocking pool).
fn resolve_host(host: &str) -> std::io::Result<Vec<IpAddr>> {
    Ok((host, 80)
        .to_socket_addrs()?
        .map(|address| address.ip())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_client_refuses_and_disconnects_matching_names() {
        let regex = crate::config::drop_client_regex("Electrum 3\\.").unwrap();
        assert_eq!(
            version(&json!(["Electrum 3.3.8", "1.4"]), false, Some(&regex)),
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(
                "unsupported client: Electrum 3.3.8"
            ))
        );
        assert!(matches!(
            version(&json!(["Electrum 4.5.8", "1.4"]), false, Some(&regex)),
            VersionOutcome::Agreed { .. }
        ));
        // No name, nothing to match.
        assert!(matches!(
            version(
                &json!(["", "1.4"]),
                false,
                Some(&crate::config::drop_client_regex("").unwrap())
            ),
            VersionOutcome::Agreed { .. }
        ));
    }

    #[test]
    fn version_negotiates_once() {
        let VersionOutcome::Agreed {
            client_name,
            protocol,
            reply,
        } = version(&json!(["electrum 4.5", ["1.4", "1.6"]]), false, None)
        else {
            panic!("not agreed")
        };
        assert_eq!(client_name, "electrum 4.5");
        assert_eq!(protocol.to_string(), "1.6");
        assert_eq!(reply[1], "1.6");
        assert_eq!(
            version(&json!([]), true, None),
            VersionOutcome::Error(RpcError::bad_request("server.version already sent"))
        );
    }

    #[test]
    fn unsupported_versions_disconnect() {
        assert_eq!(
            version(&json!(["x", "1.2"]), false, None),
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(
                "unsupported protocol version: 1.2"
            ))
        );
        assert_eq!(
            version(&json!(["x", ["1.0", "1.1"]]), false, None),
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(
                "unsupported protocol version: ['1.0', '1.1']"
            ))
        );
    }

    fn litecoin() -> ServerInfo {
        ServerInfo::new(crate::coins::lookup("Litecoin", "regtest").unwrap())
    }

    fn service(text: &str) -> Service {
        let (protocol, rest) = text.split_once("://").unwrap();
        let (host, port) = rest.rsplit_once(':').unwrap();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Service {
            protocol: match protocol {
                "tcp" => crate::config::Protocol::Tcp,
                "ssl" => crate::config::Protocol::Ssl,
                _ => crate::config::Protocol::Wss,
            },
            host: host
                .parse()
                .map(Host::Ip)
                .unwrap_or_else(|_| Host::Name(host.into())),
            port: port.parse().unwrap(),
        }
    }

    #[test]
    fn features_report_services_as_electrumx() {
        let mut server = litecoin();
        server.report_services = [
            "tcp://example.com:50001",
            "ssl://example.com:50002",
            "tcp://example.com:50011",
            "wss://[2001:db8::1]:50004",
            "tcp://1.2.3.4:50001",
        ]
        .iter()
        .map(|s| service(s))
        .collect();
        assert_eq!(
            features_of(&server),
            json!({
                "hosts": {
                    "example.com": {"tcp_port": 50011, "ssl_port": 50002},
                    "2001:db8::1": {"wss_port": 50004},
                    "1.2.3.4": {"tcp_port": 50001},
                },
                "pruning": null,
                "server_version": software_version(),
                "protocol_min": "1.4",
                "protocol_max": "1.6.0",
                "genesis_hash": "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9",
                "hash_function": "sha256",
                "services": [
                    "tcp://example.com:50001",
                    "ssl://example.com:50002",
                    "tcp://example.com:50011",
                    "wss://[2001:db8::1]:50004",
                    "tcp://1.2.3.4:50001",
                ],
            })
        );
        let nobody = features_of(&litecoin());
        assert_eq!(nobody["hosts"], json!({}));
        assert_eq!(nobody["services"], json!([]));
    }

    fn no_daemon(method: &str, _: &[Value]) -> Result<Value, DaemonError> {
        panic!("unexpected daemon call {method}")
    }

    #[test]
    fn banner_defaults_to_naming_the_server() {
        let expected = format!(
            "You are connected to an ferrumx {} server.",
            env!("CARGO_PKG_VERSION")
        );
        let mut server = litecoin();
        assert_eq!(
            banner_with(&server, &json!([]), &mut no_daemon).unwrap(),
            json!(expected)
        );
        server.banner_file = Some("/nonexistent/ferrumx-banner".into());
        assert_eq!(
            banner_with(&server, &json!([]), &mut no_daemon).unwrap(),
            json!(expected)
        );
        assert_eq!(
            banner_with(&server, &json!(["x"]), &mut no_daemon)
                .unwrap_err()
                .code,
            RpcError::INVALID_ARGS
        );
    }

    #[test]
    fn banner_file_variables_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banner.txt");
        std::fs::write(
            &path,
            "$SERVER_VERSION|$SERVER_SUBVERSION|$DAEMON_VERSION|$DAEMON_SUBVERSION|$DONATION_ADDRESS\n",
        )
        .unwrap();
        let mut server = litecoin();
        server.banner_file = Some(path);
        server.donation_address = "rltc1qdonate".into();
        let mut calls = 0;
        let mut daemon = |method: &str, _: &[Value]| {
            assert_eq!(method, "getnetworkinfo");
            calls += 1;
            Ok(json!({"version": 210201, "subversion": "/LitecoinCore:0.21.2.1/"}))
        };
        let version = env!("CARGO_PKG_VERSION");
        let expected =
            format!("{version}|ferrumx {version}|21.2.1|/LitecoinCore:0.21.2.1/|rltc1qdonate\n");
        for _ in 0..2 {
            assert_eq!(
                banner_with(&server, &json!([]), &mut daemon).unwrap(),
                json!(expected)
            );
        }
        assert_eq!(calls, 1, "getnetworkinfo is reused for a minute");

        let broken = litecoin();
        let mut failing = |_: &str, _: &[Value]| {
            Err(DaemonError::Rpc {
                code: -1,
                message: "boom".into(),
            })
        };
        let mut broken = broken;
        broken.banner_file = server.banner_file.clone();
        let err = banner_with(&broken, &json!([]), &mut failing).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                2,
                "daemon error: DaemonError({'code': -1, 'message': 'boom'})"
            )
        );
    }

    #[test]
    fn without_discovery_peers_are_not_listed_or_added() {
        let server = litecoin();
        let client = Some("1.2.3.4".parse().unwrap());
        let resolve =
            |_: &str| -> std::io::Result<Vec<IpAddr>> { Ok(client.into_iter().collect()) };
        assert_eq!(
            peers_subscribe(&server, client, &json!([])).unwrap(),
            json!([])
        );
        assert_eq!(
            peers_subscribe(&server, client, &json!([1]))
                .unwrap_err()
                .code,
            RpcError::INVALID_ARGS
        );
        let features = json!({"hosts": {"1.2.3.4": {"tcp_port": 50001}}});
        assert_eq!(
            add_peer(&server, client, &json!([features]), &resolve).unwrap(),
            json!(false)
        );
        assert_eq!(
            add_peer(&server, client, &json!({"features": null}), &resolve).unwrap(),
            json!(false)
        );
        assert_eq!(
            add_peer(&server, client, &json!([]), &resolve)
                .unwrap_err()
                .code,
            RpcError::INVALID_ARGS
        );
    }

    #[test]
    fn with_discovery_add_peer_and_subscribe_use_the_directory() {
        use crate::config::PeerDiscovery;
        use crate::peers::PeerTimers;
        let mut server = litecoin();
        server.peers = Arc::new(PeerDirectory::new(PeerSettings {
            discovery: PeerDiscovery::On,
            ..PeerSettings::disabled(server.coin)
        }));
        assert!(
            server
                .peers
                .start(Box::new(|_| {}), false, PeerTimers::ELECTRUMX)
        );
        let client: Option<IpAddr> = Some("8.8.8.8".parse().unwrap());
        let resolve =
            |_: &str| -> std::io::Result<Vec<IpAddr>> { Ok(client.into_iter().collect()) };
        let features = json!({"hosts": {"peer.example.com": {"tcp_port": 50001}}});
        assert_eq!(
            add_peer(&server, client, &json!([features.clone()]), &resolve).unwrap(),
            json!(true)
        );
        assert_eq!(
            add_peer(&server, client, &json!([features]), &resolve).unwrap(),
            json!(false),
            "rate-limited"
        );
        // Accepted, never verified yet: not listed.
        assert_eq!(server.peers.table().len(), 1);
        assert_eq!(
            peers_subscribe(&server, client, &json!([])).unwrap(),
            json!([])
        );
    }

    #[test]
    fn daemon_failures_that_are_not_errors_say_so() {
        let err = daemon_error(DaemonError::Unavailable("127.0.0.1:1/: refused".into()));
        assert_eq!(err.code, 2);
        assert!(!err.message.contains("127.0.0.1"), "{}", err.message);
    }

    #[test]
    fn extra_arguments_are_ignored() {
        assert!(matches!(
            version(&json!(["x", "1.4", "extra"]), false, None),
            VersionOutcome::Agreed { .. }
        ));
        assert!(matches!(
            version(&json!({"client_name": "x", "foo": 1}), false, None),
            VersionOutcome::Agreed { .. }
        ));
    }
}
