//! `server.*` methods and `server.version`'s negotiation. The settings they report,
//! [`ServerInfo`], live with the shared query state in [`super::context`].

use super::RpcError;
pub use super::context::ServerInfo;
use super::context::{DaemonCall, QueryContext, QueryState, missing_field, network_info};
use super::params::{Signature, bind, non_negative_integer, py_str};
use super::version::{ProtocolVersion, negotiate, protocol_max, protocol_min};
use super::work::{Args, HandlerError, Work};
use crate::config::{Host, Service};
use crate::peers::unix_now;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, ToSocketAddrs};

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

/// How many characters of a client's name a session keeps (as ElectrumX).
const CLIENT_NAME_CHARS: usize = 100;

/// How many characters of a client's string an error message repeats: a 900 KB version
/// string is not sent back whole. ElectrumX repeats it whole; a real client's fits.
const ECHOED_CHARS: usize = 200;

/// `text` as an error message repeats it: cut at [`ECHOED_CHARS`], marked when cut.
fn echoed(text: &str) -> String {
    match text.char_indices().nth(ECHOED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
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
            "unsupported client: {}",
            echoed(&full_name)
        )));
    }
    let client_name: String = full_name.chars().take(CLIENT_NAME_CHARS).collect();
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
                "unsupported protocol version: {}",
                echoed(&requested)
            )))
        }
    }
}

/// `server.features`: how to reach this server (from REPORT_SERVICES) and what it serves.
/// Protocol 1.7 drops `hash_function` (script hashes are gone from it).
pub fn features(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    let mut features = features_of(ctx.server);
    if ctx.protocol.is_at_least(V1_7)
        && let Some(map) = features.as_object_mut()
    {
        map.remove("hash_function");
    }
    Ok(features)
}

const V1_7: &[u32] = &[1, 7];

/// `server.ping(pong_len=0, data="")`: `null` below protocol 1.7; from 1.7 `data` must
/// be hex (odd lengths allowed; it only pads the request) and the answer is `pong_len`
/// zeros, at most MAX_SEND of them.
pub fn ping(ctx: &QueryContext, args: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    if !ctx.protocol.is_at_least(V1_7) {
        return Ok(Value::Null);
    }
    if let Some(data) = args.get(1) {
        padding(data)?;
    }
    // A length past u64 is as much too high as any past MAX_SEND.
    let pong_len = match args.get(0) {
        Some(value) => non_negative_integer(value)?.exact().unwrap_or(u64::MAX),
        None => 0,
    };
    if pong_len > ctx.max_send as u64 {
        return Err(RpcError::bad_request("pong_len value too high").into());
    }
    Ok(json!({"data": "0".repeat(pong_len as usize)}))
}

/// A `server.ping` notification from the client (protocol 1.7): checks `data`, answers
/// nothing.
pub fn ping_notification(
    _: &QueryContext,
    args: &Args,
    _: &mut Work,
) -> Result<Value, HandlerError> {
    if let Some(data) = args.get(0) {
        padding(data)?;
    }
    Ok(Value::Null)
}

/// The padding of the `server.ping` notifications a server sends as noise (about the
/// length of a script notification).
pub const NOISE_PING_LEN: usize = 128;

/// How many `server.ping` notifications a protocol 1.7 session sends as noise after a
/// round of notifications, as ElectrumX 2.0: after a block, one if fewer than two
/// notifications went out, then more while a 1-in-10 draw says so; after a mempool
/// change, one with the probability of a mempool refresh in ten minutes. Either way an
/// observer cannot tell from the traffic whether a block touched the client.
pub fn noise_pings(
    height_changed: bool,
    sent: usize,
    mempool_refresh: std::time::Duration,
    rng: &mut crate::rng::SplitMix64,
) -> usize {
    let mut draw = || rng.next_u64() as f64 / (u64::MAX as f64 + 1.0);
    if height_changed {
        let mut pings = usize::from(sent < 2);
        // Bounded: a run of more than 20 tens has a chance of 10^-20.
        while pings < 20 && draw() < 0.1 {
            pings += 1;
        }
        pings
    } else {
        usize::from(draw() < mempool_refresh.as_secs_f64() / 600.0)
    }
}

/// ElectrumX's `assert_hex_str(data, allow_odd_len=True)`.
fn padding(data: &Value) -> Result<(), RpcError> {
    let even = data.as_str().map(|text| {
        if text.len() % 2 == 1 {
            format!("0{text}")
        } else {
            text.to_string()
        }
    });
    match even.as_deref().and_then(crate::hashes::from_hex) {
        Some(_) => Ok(()),
        None => Err(RpcError::bad_request(format!(
            "{} should be a hex string",
            py_str(data)
        ))),
    }
}

/// The `server.features` answer (also what the peer directory announces).
pub fn features_of(server: &ServerInfo) -> Value {
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
pub fn banner(ctx: &QueryContext, _: &Args, work: &mut Work) -> Result<Value, HandlerError> {
    Ok(banner_with(ctx.server, ctx.state, work.daemon())?)
}

fn banner_with(
    server: &ServerInfo,
    state: &QueryState,
    daemon: &mut DaemonCall,
) -> Result<Value, RpcError> {
    let default = format!("You are connected to an {} server.", software_version());
    let Some(path) = &server.banner_file else {
        return Ok(Value::String(default));
    };
    let text = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()));
    match text {
        Ok(text) => Ok(Value::String(replaced_banner(server, state, daemon, text)?)),
        Err(e) => {
            log::error!("reading banner file {}: {e}", path.display());
            Ok(Value::String(default))
        }
    }
}

fn replaced_banner(
    server: &ServerInfo,
    state: &QueryState,
    daemon: &mut DaemonCall,
    banner: String,
) -> Result<String, RpcError> {
    let info = network_info(daemon, state)?;
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
pub fn donation_address(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    Ok(Value::String(ctx.server.donation_address.clone()))
}

/// `server.peers.subscribe`: the peers this server vouches for (see
/// [`PeerDirectory::subscribe_list`]); nobody without peer discovery, as ElectrumX.
/// Not a subscription: nothing is ever notified.
pub fn peers_subscribe(ctx: &QueryContext, _: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    Ok(peers_list(ctx.server, ctx.client_ip))
}

fn peers_list(server: &ServerInfo, client: Option<IpAddr>) -> Value {
    server.peers.subscribe_list(client, unix_now())
}

/// `server.add_peer(features)`: whether the peer is accepted for checking (see
/// [`PeerDirectory::on_add_peer`]: discovery on, rate limits, the host resolving to the
/// client's address); always `false` without peer discovery.
pub fn add_peer(ctx: &QueryContext, args: &Args, _: &mut Work) -> Result<Value, HandlerError> {
    Ok(offer_peer(
        ctx.server,
        ctx.client_ip,
        args.required(0),
        &resolve_host,
    ))
}

fn offer_peer(
    server: &ServerInfo,
    client: Option<IpAddr>,
    features: &Value,
    resolve: &dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> Value {
    Value::Bool(
        server
            .peers
            .on_add_peer(features, client, unix_now(), resolve),
    )
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
    use crate::daemon::DaemonError;
    use crate::peers::{PeerDirectory, PeerSettings};
    use crate::protocol::context::daemon_error;
    use crate::protocol::methods::check_args;
    use std::sync::Arc;

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

    #[test]
    fn long_client_strings_are_kept_and_echoed_bounded() {
        let long = "é".repeat(900_000);
        let VersionOutcome::Agreed { client_name, .. } =
            version(&json!([long, "1.4"]), false, None)
        else {
            panic!("not agreed")
        };
        assert_eq!(client_name.chars().count(), CLIENT_NAME_CHARS);
        let VersionOutcome::ErrorAndDisconnect(error) = version(&json!(["x", long]), false, None)
        else {
            panic!("not refused")
        };
        let shown = format!(
            "unsupported protocol version: {}...",
            "é".repeat(ECHOED_CHARS)
        );
        assert_eq!(error, RpcError::bad_request(shown));
        let drop = crate::config::drop_client_regex("é").unwrap();
        let VersionOutcome::ErrorAndDisconnect(error) =
            version(&json!([long, "1.4"]), false, Some(&drop))
        else {
            panic!("not dropped")
        };
        let shown = format!("unsupported client: {}...", "é".repeat(ECHOED_CHARS));
        assert_eq!(error, RpcError::bad_request(shown));
        assert_eq!(echoed("short"), "short");
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
                "protocol_max": "1.7.0",
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
            banner_with(&server, &QueryState::default(), &mut no_daemon).unwrap(),
            json!(expected)
        );
        server.banner_file = Some("/nonexistent/ferrumx-banner".into());
        assert_eq!(
            banner_with(&server, &QueryState::default(), &mut no_daemon).unwrap(),
            json!(expected)
        );
        assert_eq!(
            check_args("server.banner", &json!(["x"])).unwrap_err().code,
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
        let state = QueryState::default();
        for _ in 0..2 {
            assert_eq!(
                banner_with(&server, &state, &mut daemon).unwrap(),
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
        let err = banner_with(&broken, &QueryState::default(), &mut failing).unwrap_err();
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
        assert_eq!(peers_list(&server, client), json!([]));
        assert_eq!(
            check_args("server.peers.subscribe", &json!([1]))
                .unwrap_err()
                .code,
            RpcError::INVALID_ARGS
        );
        let features = json!({"hosts": {"1.2.3.4": {"tcp_port": 50001}}});
        assert_eq!(
            offer_peer(&server, client, &features, &resolve),
            json!(false)
        );
        assert_eq!(
            offer_peer(&server, client, &Value::Null, &resolve),
            json!(false)
        );
        assert_eq!(
            check_args("server.add_peer", &json!([])).unwrap_err().code,
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
            offer_peer(&server, client, &features, &resolve),
            json!(true)
        );
        assert_eq!(
            offer_peer(&server, client, &features, &resolve),
            json!(false),
            "rate-limited"
        );
        // Accepted, never verified yet: not listed.
        assert_eq!(server.peers.table().len(), 1);
        assert_eq!(peers_list(&server, client), json!([]));
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

    fn at(protocol: &[u32]) -> crate::protocol::transaction::test_fixture::Fixture {
        use crate::protocol::transaction::test_fixture::Fixture;
        let mut fixture = Fixture::new(Arc::new(litecoin()), &[]);
        fixture.protocol = ProtocolVersion::new(protocol);
        fixture
    }

    #[test]
    fn features_drop_hash_function_from_protocol_1_7() {
        use crate::protocol::methods::call;
        let features = |protocol: &[u32]| {
            at(protocol)
                .query(|ctx| call(ctx, "server.features", &json!([])))
                .unwrap()
        };
        assert_eq!(features(&[1, 6])["hash_function"], "sha256");
        assert_eq!(features(&[1, 6])["protocol_max"], "1.7.0");
        assert!(features(&[1, 7]).get("hash_function").is_none());
    }

    #[test]
    fn ping_pads_its_answer_from_protocol_1_7() {
        use crate::protocol::methods::call;
        let ping = |protocol: &[u32], params: Value| {
            at(protocol).query(|ctx| call(ctx, "server.ping", &params))
        };
        // Below 1.7 the arguments are ignored, as ElectrumX ignores them.
        assert_eq!(ping(&[1, 6], json!([5, "xyz"])), Ok(Value::Null));
        assert_eq!(ping(&[1, 7], json!([])), Ok(json!({"data": ""})));
        assert_eq!(ping(&[1, 7], json!([3, "abc"])), Ok(json!({"data": "000"})));
        assert_eq!(
            ping(&[1, 7], json!({"pong_len": "2"})),
            Ok(json!({"data": "00"}))
        );
        let error = |params| ping(&[1, 7], params).unwrap_err().message;
        assert_eq!(error(json!([1, "xyz"])), "xyz should be a hex string");
        assert_eq!(error(json!([1, 12])), "12 should be a hex string");
        assert_eq!(error(json!([-1])), "-1 should be a non-negative integer");
        assert_eq!(error(json!([u64::MAX / 2])), "pong_len value too high");
    }

    #[test]
    fn noise_pings_follow_electrumx_s_odds() {
        use crate::rng::SplitMix64;
        use std::time::Duration;
        let mut rng = SplitMix64::new(7);
        let refresh = Duration::from_secs(5);
        let (mut quiet, mut busy, mut mempool) = (0, 0, 0);
        for _ in 0..10_000 {
            quiet += noise_pings(true, 0, refresh, &mut rng);
            busy += noise_pings(true, 2, refresh, &mut rng);
            mempool += noise_pings(false, 0, refresh, &mut rng);
        }
        // One each, then a geometric tail of mean 1/9; the mempool's 1 in 120.
        assert!((11_000..11_250).contains(&quiet), "{quiet}");
        assert!((1_000..1_250).contains(&busy), "{busy}");
        assert!((50..120).contains(&mempool), "{mempool}");
    }
}
