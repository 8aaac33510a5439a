//! ElectrumX-compatible configuration: every ElectrumX environment variable, also settable
//! as a `--flag`, checked once at start-up into a typed [`Config`]. An existing ElectrumX
//! environment file works unchanged; a bad value stops start-up with one line naming the
//! variable, the value and what is accepted.
//!
//! [`Settings`] holds the raw text (clap fills it from flags, then from the environment);
//! [`Config::from_settings`] applies ElectrumX's rules: booleans are true when non-empty
//! (even "0"), integers are decimal, defaults depend on COIN and NET.

mod services;
mod settings;
mod values;

pub use services::{Host, Protocol, Service};
pub use settings::Settings;

use crate::coins::{self, Coin};
use crate::daemon::DaemonUrl;
use services::{parse_report_services, parse_services};
use std::path::PathBuf;
use std::time::Duration;
use values::{
    MAX_I, boolean, fraction, integer, invalid, non_empty, parse_log_level, subnets, zmq_endpoint,
};

/// A start-up configuration problem. Displays as one line saying what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is required: {what}")]
    Missing { var: &'static str, what: String },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var} is obsolete; remove it: {replacement}")]
    Obsolete {
        var: &'static str,
        replacement: &'static str,
    },
}

/// DROP_CLIENT compiled with Python's `re.match` semantics: anchored at the start of the
/// client name only.
pub fn drop_client_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})"))
}

/// ElectrumX's obsolete variables (it refuses to start when one is set non-empty), and
/// what replaced each. RPC_PORT is read by the admin client `ferrumx-rpc`, not the server.
const OBSOLETE: &[(&str, &str)] = &[
    (
        "MAX_SUBSCRIPTIONS",
        "use MAX_SESSION_SUBSCRIPTIONS (per session); session cost also limits them",
    ),
    (
        "MAX_SUBS",
        "use MAX_SESSION_SUBSCRIPTIONS (per session); session cost also limits them",
    ),
    (
        "MAX_SESSION_SUBS",
        "use MAX_SESSION_SUBSCRIPTIONS (per session); session cost also limits them",
    ),
    (
        "BANDWIDTH_LIMIT",
        "bandwidth is priced by BANDWIDTH_UNIT_COST",
    ),
    ("HOST", "use SERVICES, e.g. SERVICES=tcp://host:50001"),
    ("TCP_PORT", "use SERVICES, e.g. SERVICES=tcp://:50001"),
    ("SSL_PORT", "use SERVICES, e.g. SERVICES=ssl://:50002"),
    (
        "RPC_HOST",
        "use SERVICES, e.g. SERVICES=rpc://localhost:8000",
    ),
    (
        "RPC_PORT",
        "use SERVICES=rpc://:PORT (RPC_PORT is only for the admin client ferrumx-rpc)",
    ),
    (
        "REPORT_HOST",
        "use REPORT_SERVICES, e.g. REPORT_SERVICES=tcp://example.com:50001",
    ),
    (
        "REPORT_TCP_PORT",
        "use REPORT_SERVICES, e.g. REPORT_SERVICES=tcp://example.com:50001",
    ),
    (
        "REPORT_SSL_PORT",
        "use REPORT_SERVICES, e.g. REPORT_SERVICES=ssl://example.com:50002",
    ),
    (
        "REPORT_HOST_TOR",
        "use REPORT_SERVICES with the .onion host",
    ),
    (
        "REPORT_TCP_PORT_TOR",
        "use REPORT_SERVICES with the .onion host",
    ),
    (
        "REPORT_SSL_PORT_TOR",
        "use REPORT_SERVICES with the .onion host",
    ),
    (
        "DROP_CLIENT_UNKNOWN",
        "clients that do not send server.version first are always dropped",
    ),
];

/// PEER_DISCOVERY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerDiscovery {
    /// Serve the coin's hard-coded peer list, contact nobody.
    Off,
    /// Only this server in `server.peers.subscribe`.
    SelfOnly,
    /// Discover and verify peers.
    On,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub coin: &'static Coin,
    /// ElectrumX changes into this directory at start; relative banner paths are
    /// relative to it.
    pub db_directory: PathBuf,
    /// In failover order; never empty.
    pub daemon_urls: Vec<DaemonUrl>,
    pub services: Vec<Service>,
    pub report_services: Vec<Service>,
    /// RPC_ALLOW_REMOTE: an rpc:// service may listen beyond loopback.
    pub rpc_allow_remote: bool,
    /// Both set whenever a service is ssl or wss.
    pub ssl_certfile: Option<PathBuf>,
    pub ssl_keyfile: Option<PathBuf>,
    pub allow_root: bool,
    pub log_level: log::LevelFilter,
    /// Python logging format (`%(levelname)s`, `%(name)s`, `%(message)s`, `%(asctime)s`).
    pub log_format: String,
    pub donation_address: String,
    pub banner_file: Option<PathBuf>,
    pub tor_banner_file: Option<PathBuf>,
    pub anon_logs: bool,
    /// `None` when LOG_SESSIONS is 0.
    pub log_sessions: Option<Duration>,
    /// DROP_CLIENT's regular expression, not yet compiled (Python `re.match` semantics:
    /// anchored at the start of the client name).
    pub drop_client: Option<String>,
    /// DAEMON_PASSTHROUGH_SUBNETS: who may call daemon.passthrough (empty: nobody).
    pub daemon_passthrough_subnets: Vec<crate::net::Subnet>,
    pub reorg_limit: u32,
    /// `None`: follow the memory budget ([`crate::memory::Budget`]).
    pub cache_mb: Option<u64>,
    /// 0: flush during catch-up only when CACHE_MB is full.
    pub flush_blocks: u32,
    /// COMPACT_MIN_FREE_MB: after the initial sync the index file is rebuilt
    /// ([`crate::store::Store::compact`]) when at least this many MB of it are free pages or slack.
    pub compact_min_free_mb: u64,
    pub daemon_poll_interval_blocks: Duration,
    pub daemon_poll_interval_mempool: Duration,
    /// DAEMON_LONG_POLL: new blocks noticed by a long-poll RPC (unless ZMQ hashblock).
    pub daemon_long_poll: bool,
    /// DAEMON_ZMQ_HASHBLOCK: where the daemon publishes new blocks' hashes.
    pub zmq_hashblock: Option<crate::zmq::Endpoint>,
    /// DAEMON_ZMQ_HASHTX: where the daemon publishes new transactions' hashes.
    pub zmq_hashtx: Option<crate::zmq::Endpoint>,
    /// At least 350,000.
    pub max_send: usize,
    pub max_recv: usize,
    /// Before the open-file limit is applied (see MAX_SESSIONS).
    pub max_sessions: usize,
    /// MAX_SESSIONS_PER_IP (0: no limit; loopback exempt).
    pub max_sessions_per_ip: usize,
    /// MAX_SESSIONS_PER_SUBNET: per IPv4 /24 or IPv6 /64 (0: no limit; loopback exempt).
    pub max_sessions_per_subnet: usize,
    /// MAX_BATCH: most items of a batch (0: no limit).
    pub max_batch: usize,
    /// FIRST_MESSAGE_TIMEOUT: a new connection's first complete line must arrive within it.
    pub first_message_timeout: Duration,
    /// LINE_TIMEOUT: a line in progress must be complete within it of its first byte.
    pub line_timeout: Duration,
    /// MAX_SESSION_SUBSCRIPTIONS: scripts, outpoints and transactions per session (0: no
    /// limit).
    pub max_session_subscriptions: usize,
    /// MAX_SUBSCRIPTIONS_PER_IP: the sessions of one client address together (0: no
    /// limit).
    pub max_subscriptions_per_ip: usize,
    /// MAX_TOTAL_SUBSCRIPTIONS: every session together (0: no limit).
    pub max_total_subscriptions: usize,
    pub cost_soft_limit: u64,
    /// At least `cost_soft_limit`, and above it unless both are 0.
    pub cost_hard_limit: u64,
    pub bandwidth_unit_cost: u64,
    pub initial_concurrent: u32,
    pub request_sleep: Duration,
    pub request_timeout: Duration,
    pub session_timeout: Duration,
    pub session_group_by_subnet_ipv4: u8,
    pub session_group_by_subnet_ipv6: u8,
    pub session_group_timeslice_weight: f64,
    pub peer_discovery: PeerDiscovery,
    pub peer_announce: bool,
    pub force_proxy: bool,
    pub tor_proxy_host: String,
    /// `None`: try 9050, 9150 and 1080.
    pub tor_proxy_port: Option<u16>,
    pub blacklist_url: Option<String>,
}

/// The smallest MAX_SEND: a protocol header chunk is almost this large.
pub const MIN_MAX_SEND: usize = 350_000;

impl Config {
    /// Validates `settings`. `env` reads environment variables that are not flags: the
    /// obsolete ones, EVENT_LOOP_POLICY, and HOME for the default cookie file.
    pub fn from_settings(
        s: Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        for (var, replacement) in OBSOLETE {
            if env(var).is_some_and(|v| !v.is_empty()) {
                return Err(ConfigError::Obsolete { var, replacement });
            }
        }
        if let Some(policy) = env("EVENT_LOOP_POLICY")
            && policy != "uvloop"
        {
            return Err(invalid(
                "EVENT_LOOP_POLICY",
                &policy,
                "accepted: uvloop (ferrumx has no Python event loop and ignores it), or unset",
            ));
        }

        let db_directory = non_empty(s.db_directory).ok_or_else(|| ConfigError::Missing {
            var: "DB_DIRECTORY",
            what: "the directory of the index database, e.g. DB_DIRECTORY=/var/lib/ferrumx".into(),
        })?;
        if let Some(engine) = s.db_engine {
            let lower = engine.trim().to_ascii_lowercase();
            if !["leveldb", "rocksdb", "lmdb"].contains(&lower.as_str()) {
                return Err(invalid(
                    "DB_ENGINE",
                    &engine,
                    "accepted: leveldb, rocksdb or lmdb (all mean ferrumx's LMDB index)",
                ));
            }
        }
        let daemon_url = s.daemon_url.ok_or_else(|| ConfigError::Missing {
            var: "DAEMON_URL",
            what: "the coin daemon's JSON-RPC URL, e.g. http://user:password@127.0.0.1:8332/"
                .into(),
        })?;
        let coin_name = s.coin.unwrap_or_else(|| "Bitcoin".into());
        let net = s.net.unwrap_or_else(|| "mainnet".into());
        let coin = coins::lookup(&coin_name, &net).map_err(|e| match e {
            coins::CoinError::UnknownCoin { accepted, .. } => {
                invalid("COIN", &coin_name, &format!("accepted: {accepted}"))
            }
            coins::CoinError::UnknownNet { coin, accepted, .. } => {
                invalid("NET", &net, &format!("{coin} networks are {accepted}"))
            }
        })?;

        let cookie_file = match non_empty(s.daemon_cookie_file) {
            Some(path) => Some(PathBuf::from(path)),
            None => env("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| coin.default_cookie_file(home.as_ref())),
        };
        let daemon_urls = DaemonUrl::parse_list(&daemon_url, coin.rpc_port, cookie_file.as_deref())
            .map_err(|e| ConfigError::Invalid {
                var: "DAEMON_URL",
                value: e.url,
                reason: e.reason,
            })?;

        let peer_discovery = match s
            .peer_discovery
            .as_deref()
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => PeerDiscovery::On,
            Some(v) if v.is_empty() || v == "off" => PeerDiscovery::Off,
            Some(v) if v == "self" => PeerDiscovery::SelfOnly,
            Some(_) => PeerDiscovery::On,
        };
        let peer_announce = boolean(s.peer_announce, true);
        let banner_file = non_empty(s.banner_file).map(PathBuf::from);
        let tor_banner_file = match s.tor_banner_file {
            Some(file) => non_empty(Some(file)).map(PathBuf::from),
            None => banner_file.clone(),
        };
        let log_level = match s.log_level {
            None => log::LevelFilter::Info,
            Some(level) => parse_log_level(&level).ok_or_else(|| {
                invalid(
                    "LOG_LEVEL",
                    &level,
                    "accepted: error, warning, info, debug, trace (also critical, warn, notset)",
                )
            })?,
        };
        let blacklist_url = match s.blacklist_url {
            Some(url) => non_empty(Some(url)),
            None => coin.blacklist_url.map(str::to_owned),
        };

        let cost_soft_limit = integer("COST_SOFT_LIMIT", s.cost_soft_limit, 1000, 0, MAX_I)?;
        let cost_hard_limit = integer("COST_HARD_LIMIT", s.cost_hard_limit, 10_000, 0, MAX_I)?;
        if cost_hard_limit < cost_soft_limit {
            return Err(invalid(
                "COST_HARD_LIMIT",
                &cost_hard_limit.to_string(),
                &format!("must be at least COST_SOFT_LIMIT ({cost_soft_limit})"),
            ));
        }
        // A hard limit equal to the soft one would divide by zero in throttling.
        let cost_hard_limit = if cost_hard_limit == cost_soft_limit && cost_soft_limit > 0 {
            cost_soft_limit + 1
        } else {
            cost_hard_limit
        };

        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let log_sessions = integer("LOG_SESSIONS", s.log_sessions, 3600, 0, MAX_I)?;
        let services = parse_services("SERVICES", s.services.as_deref().unwrap_or(""), true)?;
        let report_services =
            parse_report_services(s.report_services.as_deref().unwrap_or(""), peer_announce)?;
        let rpc_allow_remote = boolean(s.rpc_allow_remote, false);
        if !rpc_allow_remote
            && let Some(remote) = services.iter().find(|svc| {
                matches!(svc.protocol, Protocol::Rpc | Protocol::Http) && !svc.host.is_loopback()
            })
        {
            return Err(invalid(
                "SERVICES",
                &remote.to_string(),
                "the admin RPC and the metrics have no authentication, so rpc:// and http:// \
                 listen only on loopback (localhost, 127.0.0.1, [::1]); set RPC_ALLOW_REMOTE \
                 to allow it anyway",
            ));
        }
        let (ssl_certfile, ssl_keyfile) = (non_empty(s.ssl_certfile), non_empty(s.ssl_keyfile));
        if let Some(tls) = services.iter().find(|svc| svc.protocol.is_tls()) {
            for (var, value) in [
                ("SSL_CERTFILE", &ssl_certfile),
                ("SSL_KEYFILE", &ssl_keyfile),
            ] {
                if value.is_none() {
                    return Err(ConfigError::Missing {
                        var,
                        what: format!(
                            "SERVICES has {tls}, which needs a certificate (SSL_CERTFILE) and \
                             its private key (SSL_KEYFILE)"
                        ),
                    });
                }
            }
        }

        Ok(Config {
            coin,
            db_directory: PathBuf::from(db_directory),
            daemon_urls,
            services,
            report_services,
            rpc_allow_remote,
            ssl_certfile: ssl_certfile.map(PathBuf::from),
            ssl_keyfile: ssl_keyfile.map(PathBuf::from),
            allow_root: boolean(s.allow_root, false),
            log_level,
            log_format: s
                .log_format
                .unwrap_or_else(|| "%(levelname)s:%(name)s:%(message)s".into()),
            donation_address: s.donation_address.unwrap_or_default(),
            banner_file,
            tor_banner_file,
            anon_logs: boolean(s.anon_logs, false),
            log_sessions: (log_sessions > 0).then(|| secs(log_sessions)),
            drop_client: match non_empty(s.drop_client) {
                Some(pattern) => {
                    drop_client_regex(&pattern).map_err(|e| ConfigError::Invalid {
                        var: "DROP_CLIENT",
                        value: pattern.clone(),
                        reason: format!("not a regular expression: {e}"),
                    })?;
                    Some(pattern)
                }
                None => None,
            },
            daemon_passthrough_subnets: subnets(
                "DAEMON_PASSTHROUGH_SUBNETS",
                s.daemon_passthrough_subnets,
            )?,
            reorg_limit: integer(
                "REORG_LIMIT",
                s.reorg_limit,
                coin.reorg_limit.into(),
                1,
                u32::MAX.into(),
            )? as u32,
            cache_mb: s
                .cache_mb
                .map(|mb| integer("CACHE_MB", Some(mb), 0, 0, MAX_I))
                .transpose()?,
            flush_blocks: integer("FLUSH_BLOCKS", s.flush_blocks, 0, 0, u32::MAX.into())? as u32,
            compact_min_free_mb: integer(
                "COMPACT_MIN_FREE_MB",
                s.compact_min_free_mb,
                256,
                0,
                MAX_I,
            )?,
            daemon_poll_interval_blocks: ms(integer(
                "DAEMON_POLL_INTERVAL_BLOCKS",
                s.daemon_poll_interval_blocks,
                5000,
                1,
                MAX_I,
            )?),
            daemon_poll_interval_mempool: ms(integer(
                "DAEMON_POLL_INTERVAL_MEMPOOL",
                s.daemon_poll_interval_mempool,
                5000,
                1,
                MAX_I,
            )?),
            daemon_long_poll: match s.daemon_long_poll.as_deref().map(str::trim) {
                None | Some("") => true,
                Some(v) if v.eq_ignore_ascii_case("on") => true,
                Some(v) if v.eq_ignore_ascii_case("off") => false,
                Some(v) => return Err(invalid("DAEMON_LONG_POLL", v, "accepted: on, off")),
            },
            zmq_hashblock: zmq_endpoint(crate::zmq::Topic::HashBlock, s.daemon_zmq_hashblock)?,
            zmq_hashtx: zmq_endpoint(crate::zmq::Topic::HashTx, s.daemon_zmq_hashtx)?,
            max_send: (integer("MAX_SEND", s.max_send, 8_100_000, 0, MAX_I)? as usize)
                .max(MIN_MAX_SEND),
            max_recv: integer("MAX_RECV", s.max_recv, 1_000_000, 1, MAX_I)? as usize,
            max_sessions: integer("MAX_SESSIONS", s.max_sessions, 1000, 0, MAX_I)? as usize,
            max_sessions_per_ip: integer(
                "MAX_SESSIONS_PER_IP",
                s.max_sessions_per_ip,
                20,
                0,
                MAX_I,
            )? as usize,
            max_sessions_per_subnet: integer(
                "MAX_SESSIONS_PER_SUBNET",
                s.max_sessions_per_subnet,
                200,
                0,
                MAX_I,
            )? as usize,
            max_batch: integer("MAX_BATCH", s.max_batch, 1000, 0, MAX_I)? as usize,
            first_message_timeout: secs(integer(
                "FIRST_MESSAGE_TIMEOUT",
                s.first_message_timeout,
                15,
                1,
                MAX_I,
            )?),
            line_timeout: secs(integer("LINE_TIMEOUT", s.line_timeout, 30, 1, MAX_I)?),
            max_session_subscriptions: integer(
                "MAX_SESSION_SUBSCRIPTIONS",
                s.max_session_subscriptions,
                100_000,
                0,
                MAX_I,
            )? as usize,
            max_subscriptions_per_ip: integer(
                "MAX_SUBSCRIPTIONS_PER_IP",
                s.max_subscriptions_per_ip,
                250_000,
                0,
                MAX_I,
            )? as usize,
            max_total_subscriptions: integer(
                "MAX_TOTAL_SUBSCRIPTIONS",
                s.max_total_subscriptions,
                10_000_000,
                0,
                MAX_I,
            )? as usize,
            cost_soft_limit,
            cost_hard_limit,
            bandwidth_unit_cost: integer(
                "BANDWIDTH_UNIT_COST",
                s.bandwidth_unit_cost,
                5000,
                1,
                MAX_I,
            )?,
            initial_concurrent: integer(
                "INITIAL_CONCURRENT",
                s.initial_concurrent,
                10,
                1,
                u32::MAX.into(),
            )? as u32,
            request_sleep: ms(integer("REQUEST_SLEEP", s.request_sleep, 2500, 0, MAX_I)?),
            request_timeout: secs(integer("REQUEST_TIMEOUT", s.request_timeout, 30, 1, MAX_I)?),
            session_timeout: secs(integer(
                "SESSION_TIMEOUT",
                s.session_timeout,
                600,
                1,
                MAX_I,
            )?),
            session_group_by_subnet_ipv4: integer(
                "SESSION_GROUP_BY_SUBNET_IPV4",
                s.session_group_by_subnet_ipv4,
                24,
                0,
                32,
            )? as u8,
            session_group_by_subnet_ipv6: integer(
                "SESSION_GROUP_BY_SUBNET_IPV6",
                s.session_group_by_subnet_ipv6,
                48,
                0,
                128,
            )? as u8,
            session_group_timeslice_weight: fraction(
                "SESSION_GROUP_TIMESLICE_WEIGHT",
                s.session_group_timeslice_weight,
                crate::cost::DEFAULT_TIME_SLICE_WEIGHT,
            )?,
            peer_discovery,
            peer_announce,
            force_proxy: boolean(s.force_proxy, false),
            tor_proxy_host: non_empty(s.tor_proxy_host).unwrap_or_else(|| "localhost".into()),
            tor_proxy_port: match s.tor_proxy_port {
                None => None,
                Some(port) => Some(integer("TOR_PROXY_PORT", Some(port), 0, 1, 65535)? as u16),
            },
            blacklist_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::DaemonAuth;
    use clap::Parser;
    use std::collections::HashMap;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["ferrumx"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    const REQUIRED: [&str; 4] = [
        "--db-directory=/db",
        "--daemon-url=u:p@127.0.0.1",
        "--coin=Litecoin",
        "--net=regtest",
    ];

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Config from the required flags plus `args`, with the environment `env`.
    fn config_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // A flag given by the test replaces the required one of the same name.
        let name = |arg: &str| arg.split('=').next().unwrap_or_default().to_owned();
        let mut all: Vec<&str> = REQUIRED
            .iter()
            .filter(|req| !args.iter().any(|arg| name(arg) == name(req)))
            .copied()
            .collect();
        all.extend_from_slice(args);
        Config::from_settings(settings(&all), &move |name| env.get(name).cloned())
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        config_env(args, &[])
    }

    fn error(args: &[&str]) -> String {
        config(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_electrumx_and_the_coin() {
        let c = config(&[]).unwrap();
        assert_eq!(c.coin.name, "Litecoin");
        assert_eq!(c.db_directory, PathBuf::from("/db"));
        assert_eq!(c.daemon_urls[0].to_string(), "127.0.0.1:19443/");
        assert!(c.services.is_empty() && c.report_services.is_empty());
        assert_eq!((c.ssl_certfile, c.ssl_keyfile), (None, None));
        assert!(!c.allow_root && !c.anon_logs && !c.force_proxy && c.peer_announce);
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert_eq!(c.log_format, "%(levelname)s:%(name)s:%(message)s");
        assert_eq!(c.donation_address, "");
        assert_eq!((c.banner_file, c.tor_banner_file), (None, None));
        assert_eq!(c.log_sessions, Some(Duration::from_secs(3600)));
        assert_eq!(c.drop_client, None);
        assert_eq!(c.reorg_limit, 4000);
        assert_eq!(c.cache_mb, None, "follows the memory budget");
        assert_eq!(c.daemon_poll_interval_blocks, Duration::from_millis(5000));
        assert_eq!(c.daemon_poll_interval_mempool, Duration::from_millis(5000));
        assert_eq!((c.zmq_hashblock, c.zmq_hashtx), (None, None));
        assert!(c.daemon_long_poll);
        assert_eq!(
            (c.max_send, c.max_recv, c.max_sessions),
            (8_100_000, 1_000_000, 1000)
        );
        assert_eq!((c.cost_soft_limit, c.cost_hard_limit), (1000, 10_000));
        assert_eq!((c.bandwidth_unit_cost, c.initial_concurrent), (5000, 10));
        assert_eq!(c.request_sleep, Duration::from_millis(2500));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.session_timeout, Duration::from_secs(600));
        assert_eq!(
            (c.max_sessions_per_ip, c.max_sessions_per_subnet),
            (20, 200)
        );
        assert_eq!(c.first_message_timeout, Duration::from_secs(15));
        assert_eq!(c.max_batch, 1000);
        assert_eq!(c.line_timeout, Duration::from_secs(30));
        assert_eq!(c.max_session_subscriptions, 100_000);
        assert_eq!(c.max_subscriptions_per_ip, 250_000);
        assert_eq!(c.max_total_subscriptions, 10_000_000);
        assert_eq!(
            (
                c.session_group_by_subnet_ipv4,
                c.session_group_by_subnet_ipv6
            ),
            (24, 48)
        );
        assert_eq!(c.peer_discovery, PeerDiscovery::On);
        assert_eq!(
            (c.tor_proxy_host.as_str(), c.tor_proxy_port),
            ("localhost", None)
        );
        assert_eq!(c.blacklist_url, None);

        let btc = Config::from_settings(
            settings(&["--db-directory=d", "--daemon-url=u:p@h"]),
            &no_env,
        )
        .unwrap();
        assert_eq!((btc.coin.name, btc.coin.net), ("Bitcoin", "mainnet"));
        assert_eq!(btc.reorg_limit, 200);
        assert_eq!(btc.daemon_urls[0].port, 8332);
        assert_eq!(
            btc.blacklist_url.as_deref(),
            Some("https://electrum.org/blacklist.json")
        );
    }

    #[test]
    fn every_setting_is_read() {
        let c = config(&[
            "--db-engine=RocksDB",
            "--services=tcp://:50001,ssl://:50002,rpc://",
            "--report-services=tcp://example.com:50001",
            "--ssl-certfile=c.pem",
            "--ssl-keyfile=k.pem",
            "--allow-root",
            "--log-level=WARNING",
            "--log-format=%(message)s",
            "--donation-address=rltc1q",
            "--banner-file=banner",
            "--anon-logs=yes",
            "--log-sessions=0",
            "--drop-client=1\\.[0-2]\\.\\d+",
            "--reorg-limit=10",
            "--cache-mb=+2_000",
            "--daemon-poll-interval-blocks=100",
            "--daemon-poll-interval-mempool=200",
            "--daemon-long-poll=OFF",
            "--daemon-zmq-hashblock=tcp://127.0.0.1:28332",
            "--daemon-zmq-hashtx=ipc:///run/zmq",
            "--max-send=1000",
            "--max-recv=2000",
            "--max-sessions=3",
            "--cost-soft-limit=0",
            "--cost-hard-limit=0",
            "--bandwidth-unit-cost=7",
            "--initial-concurrent=8",
            "--request-sleep=0",
            "--request-timeout=9",
            "--session-timeout=11",
            "--session-group-by-subnet-ipv4=16",
            "--session-group-by-subnet-ipv6=64",
            "--peer-discovery=SELF",
            "--force-proxy",
            "--tor-proxy-host=tor",
            "--tor-proxy-port=9150",
            "--blacklist-url=https://example.com/b.json",
            "--daemon-cookie-file=/x/.cookie",
            "--daemon-passthrough-subnets=10.1.2.3/16,,::1",
        ])
        .unwrap();
        assert_eq!(c.services.len(), 3);
        assert_eq!(c.report_services[0].to_string(), "tcp://example.com:50001");
        assert_eq!(c.ssl_certfile, Some(PathBuf::from("c.pem")));
        assert_eq!(c.ssl_keyfile, Some(PathBuf::from("k.pem")));
        assert!(c.allow_root && c.anon_logs && c.force_proxy);
        assert_eq!(c.log_level, log::LevelFilter::Warn);
        assert_eq!(c.log_format, "%(message)s");
        assert_eq!(c.donation_address, "rltc1q");
        assert_eq!(c.banner_file, Some(PathBuf::from("banner")));
        assert_eq!(c.tor_banner_file, c.banner_file, "defaults to BANNER_FILE");
        assert_eq!(c.log_sessions, None);
        assert_eq!(c.drop_client.as_deref(), Some("1\\.[0-2]\\.\\d+"));
        let subnets: Vec<String> = c
            .daemon_passthrough_subnets
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(subnets, ["10.1.0.0/16", "::1/128"]);
        assert_eq!((c.reorg_limit, c.cache_mb), (10, Some(2000)));
        assert_eq!(c.daemon_poll_interval_blocks, Duration::from_millis(100));
        assert_eq!(c.daemon_poll_interval_mempool, Duration::from_millis(200));
        assert_eq!(
            c.zmq_hashblock.map(|e| e.to_string()).as_deref(),
            Some("tcp://127.0.0.1:28332")
        );
        assert_eq!(
            c.zmq_hashtx.map(|e| e.to_string()).as_deref(),
            Some("ipc:///run/zmq")
        );
        assert!(!c.daemon_long_poll);
        assert_eq!(
            error(&["--daemon-long-poll=1"]),
            "DAEMON_LONG_POLL=\"1\" is invalid: accepted: on, off"
        );
        assert!(
            error(&["--daemon-zmq-hashblock=tcp://*:28332"])
                .starts_with("DAEMON_ZMQ_HASHBLOCK=\"tcp://*:28332\" is invalid: ")
        );
        assert_eq!(c.max_send, MIN_MAX_SEND, "raised to the minimum");
        assert_eq!((c.max_recv, c.max_sessions), (2000, 3));
        assert_eq!((c.cost_soft_limit, c.cost_hard_limit), (0, 0));
        assert_eq!((c.bandwidth_unit_cost, c.initial_concurrent), (7, 8));
        assert_eq!(c.request_sleep, Duration::ZERO);
        assert_eq!(c.request_timeout, Duration::from_secs(9));
        assert_eq!(c.session_timeout, Duration::from_secs(11));
        assert_eq!(
            (
                c.session_group_by_subnet_ipv4,
                c.session_group_by_subnet_ipv6
            ),
            (16, 64)
        );
        assert_eq!(c.peer_discovery, PeerDiscovery::SelfOnly);
        assert_eq!(
            (c.tor_proxy_host.as_str(), c.tor_proxy_port),
            ("tor", Some(9150))
        );
        assert_eq!(
            c.blacklist_url.as_deref(),
            Some("https://example.com/b.json")
        );
    }

    #[test]
    fn drop_client_must_compile_and_anchors_at_the_start() {
        assert_eq!(
            error(&["--drop-client=electrum(["]).split(':').next(),
            Some("DROP_CLIENT=\"electrum([\" is invalid")
        );
        let c = config(&["--drop-client=Electrum 3\\."]).unwrap();
        let regex = drop_client_regex(c.drop_client.as_deref().unwrap()).unwrap();
        assert!(regex.is_match("Electrum 3.3.8"));
        // Python's re.match: anchored at the start, not the end.
        assert!(!regex.is_match("my Electrum 3.3"));
    }

    #[test]
    fn passthrough_subnets_must_parse() {
        assert!(config(&[]).unwrap().daemon_passthrough_subnets.is_empty());
        let message = error(&["--daemon-passthrough-subnets=10.0.0.0/8,10.0.0/8"]);
        assert!(
            message.starts_with("DAEMON_PASSTHROUGH_SUBNETS=\"10.0.0/8\" is invalid"),
            "{message}"
        );
    }

    #[test]
    fn timeslice_weight_is_a_fraction() {
        assert_eq!(config(&[]).unwrap().session_group_timeslice_weight, 0.03);
        let c = config(&["--session-group-timeslice-weight=0"]).unwrap();
        assert_eq!(c.session_group_timeslice_weight, 0.0);
        assert!(error(&["--session-group-timeslice-weight=2"]).contains("from 0 to 1"));
        assert!(error(&["--session-group-timeslice-weight=x"]).contains("from 0 to 1"));
    }

    #[test]
    fn booleans_are_true_when_non_empty_even_zero() {
        assert!(config(&["--allow-root=0"]).unwrap().allow_root);
        assert!(config(&["--allow-root=false"]).unwrap().allow_root);
        assert!(!config(&["--allow-root="]).unwrap().allow_root);
        assert!(!config(&["--allow-root=  "]).unwrap().allow_root);
        assert!(!config(&["--peer-announce="]).unwrap().peer_announce);
        assert!(config(&["--peer-announce=no"]).unwrap().peer_announce);
    }

    #[test]
    fn peer_discovery_modes() {
        let mode = |v: &str| {
            config(&[&format!("--peer-discovery={v}")])
                .unwrap()
                .peer_discovery
        };
        assert_eq!(mode("off"), PeerDiscovery::Off);
        assert_eq!(mode(" OFF "), PeerDiscovery::Off);
        assert_eq!(mode(""), PeerDiscovery::Off);
        assert_eq!(mode("self"), PeerDiscovery::SelfOnly);
        assert_eq!(mode("on"), PeerDiscovery::On);
        assert_eq!(mode("anything"), PeerDiscovery::On);
    }

    #[test]
    fn cost_limits_must_be_ordered_and_equal_ones_are_separated() {
        assert_eq!(
            error(&["--cost-soft-limit=500", "--cost-hard-limit=400"]),
            "COST_HARD_LIMIT=\"400\" is invalid: must be at least COST_SOFT_LIMIT (500)"
        );
        let c = config(&["--cost-soft-limit=500", "--cost-hard-limit=500"]).unwrap();
        assert_eq!((c.cost_soft_limit, c.cost_hard_limit), (500, 501));
    }

    #[test]
    fn bad_values_give_one_line_naming_variable_value_and_choices() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--cache-mb=lots"],
                "CACHE_MB=\"lots\" is invalid: accepted: a whole number, at least 0",
            ),
            (
                &["--reorg-limit=0"],
                "REORG_LIMIT=\"0\" is invalid: accepted: a whole number, at least 1",
            ),
            (
                &["--max-recv=-5"],
                "MAX_RECV=\"-5\" is invalid: accepted: a whole number, at least 1",
            ),
            (
                &["--session-group-by-subnet-ipv4=33"],
                "SESSION_GROUP_BY_SUBNET_IPV4=\"33\" is invalid: accepted: a whole number from 0 \
                 to 32",
            ),
            (
                &["--tor-proxy-port=70000"],
                "TOR_PROXY_PORT=\"70000\" is invalid: accepted: a whole number from 1 to 65535",
            ),
            (&["--request-timeout="], "REQUEST_TIMEOUT=\"\" is invalid"),
            (
                &["--bandwidth-unit-cost=0"],
                "BANDWIDTH_UNIT_COST=\"0\" is invalid",
            ),
            (&["--max-send=1_"], "MAX_SEND=\"1_\" is invalid"),
            (
                &["--log-level=verbose"],
                "LOG_LEVEL=\"verbose\" is invalid: accepted: error, warning, info, debug, trace \
                 (also critical, warn, notset)",
            ),
            (
                &["--db-engine=sqlite"],
                "DB_ENGINE=\"sqlite\" is invalid: accepted: leveldb, rocksdb or lmdb (all mean \
                 ferrumx's LMDB index)",
            ),
            (
                &["--coin=Dogecoin"],
                "COIN=\"Dogecoin\" is invalid: accepted: Bitcoin (mainnet, testnet, testnet4, \
                 signet, mutinynet, regtest), Litecoin (mainnet, testnet, regtest)",
            ),
            (
                &["--net=signet"],
                "NET=\"signet\" is invalid: Litecoin networks are mainnet, testnet, regtest",
            ),
            (
                &["--daemon-url=https://u:secret@h"],
                "DAEMON_URL=\"https://***@h\" is invalid: https is not supported",
            ),
        ];
        for (args, message) in cases {
            let got = error(args);
            assert!(got.starts_with(message), "{args:?}: {got}");
            assert!(!got.contains('\n'), "{got}");
        }
        assert_eq!(config(&["--cache-mb= 7 "]).unwrap().cache_mb, Some(7));
    }

    #[test]
    fn required_settings_are_named() {
        let err = Config::from_settings(settings(&["--daemon-url=u:p@h"]), &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DB_DIRECTORY is required: the directory of the index database, e.g. \
             DB_DIRECTORY=/var/lib/ferrumx"
        );
        let err = Config::from_settings(settings(&["--db-directory=d"]), &no_env).unwrap_err();
        assert!(
            err.to_string().starts_with("DAEMON_URL is required: "),
            "{err}"
        );
        assert_eq!(
            error(&["--services=ssl://:50002"]),
            "SSL_CERTFILE is required: SERVICES has ssl://:50002, which needs a certificate \
             (SSL_CERTFILE) and its private key (SSL_KEYFILE)"
        );
        let err = error(&["--services=wss://:50004", "--ssl-certfile=c"]);
        assert!(err.starts_with("SSL_KEYFILE is required"), "{err}");
    }

    #[test]
    fn services_parse_as_electrumx() {
        let c = config(&[
            "--services=tcp://:50001, SSL://23.45.67.78:50002,rpC://localhost,\
             ws://[1234:5678:abcd::5601]:8000,rpc://:8001,wss://h.example:1,http://:9100",
            "--ssl-certfile=c",
            "--ssl-keyfile=k",
        ])
        .unwrap();
        let shown: Vec<String> = c.services.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            shown,
            [
                "tcp://:50001",
                "ssl://23.45.67.78:50002",
                "rpc://localhost:8000",
                "ws://[1234:5678:abcd::5601]:8000",
                "rpc://localhost:8001",
                "wss://h.example:1",
                "http://localhost:9100",
            ]
        );
        assert_eq!(c.services[0].host, Host::AllInterfaces);
        assert_eq!(c.services[1].host, Host::Ip("23.45.67.78".parse().unwrap()));
        let bare = config(&["--services=rpc"]).unwrap();
        assert_eq!(bare.services[0].to_string(), "rpc://localhost:8000");
        let all = config(&["--services=tcp://all_interfaces:1"]).unwrap();
        assert_eq!(all.services[0].host, Host::AllInterfaces);
    }

    #[test]
    fn rpc_listens_on_loopback_unless_forced() {
        for ok in [
            "rpc",
            "rpc://:8001",
            "http://:9100",
            "http://127.0.0.1:9101",
            "rpc://127.0.0.1:1",
            "rpc://[::1]:2",
            "rpc://LOCALHOST:3",
        ] {
            assert!(config(&[&format!("--services={ok}")]).is_ok(), "{ok}");
        }
        for remote in [
            "rpc://0.0.0.0:8000",
            "rpc://all_interfaces:8000",
            "rpc://h.example:1",
            "http://0.0.0.0:9100",
            "http://all_interfaces:9100",
        ] {
            let err = error(&[&format!("--services={remote}")]);
            assert!(
                err.starts_with("SERVICES=") && err.contains("set RPC_ALLOW_REMOTE"),
                "{remote}: {err}"
            );
            let forced = config(&[&format!("--services={remote}"), "--rpc-allow-remote"]);
            assert!(forced.unwrap().rpc_allow_remote, "{remote}");
        }
    }

    #[test]
    fn bad_services_are_rejected_with_reasons() {
        let cases = [
            (
                "tcp://:50001,ssl://:50001",
                "address :50001 has multiple services",
            ),
            ("tcp://h.onion:50001", "cannot listen on a Tor .onion host"),
            (
                "ftp://:21",
                "unknown protocol \"ftp\"; accepted: tcp, ssl, ws, wss, rpc, http",
            ),
            ("tcp://:", "the port is missing"),
            ("tcp://h", "the port is missing"),
            ("tcp://:0", "invalid port \"0\""),
            ("tcp://:http", "invalid port \"http\""),
            ("localhost:50001", "expected protocol://host:port"),
            (
                "tcp://bad host:1",
                "is neither a host name nor an IP address",
            ),
            ("tcp://-x:1", "is neither a host name nor an IP address"),
        ];
        for (list, reason) in cases {
            let err = error(&[&format!("--services={list}")]);
            assert!(
                err.starts_with("SERVICES=") && err.contains(reason),
                "{list}: {err}"
            );
        }
    }

    #[test]
    fn report_services_follow_electrumx_rules() {
        let ok = config(&["--report-services=tcp://example.com:50001,ssl://abc.onion:50002"]);
        assert_eq!(ok.unwrap().report_services.len(), 2);
        let cases = [
            ("rpc://localhost:8000", "only tcp, ssl, ws and wss"),
            ("http://example.com:80", "only tcp, ssl, ws and wss"),
            ("tcp://localhost:1", "localhost cannot be advertised"),
            ("tcp://224.0.0.1:1", "multicast or unspecified"),
            ("tcp://0.0.0.0:1", "multicast or unspecified"),
            ("tcp://192.168.1.2:1", "private IP address"),
            ("tcp://127.0.0.1:1", "private IP address"),
            ("tcp://[fd00::1]:1", "private IP address"),
            ("tcp://:50001", "the host is missing"),
            ("tcp://example.com", "the port is missing"),
            ("rpc", "expected protocol://host:port"),
        ];
        for (list, reason) in cases {
            let err = error(&[&format!("--report-services={list}")]);
            assert!(
                err.starts_with("REPORT_SERVICES=") && err.contains(reason),
                "{list}: {err}"
            );
        }
        let private = config(&["--report-services=tcp://10.0.0.1:1", "--peer-announce="]);
        assert!(private.is_ok(), "private IPs are fine when not announcing");
    }

    #[test]
    fn daemon_urls_with_and_without_credentials() {
        let c = config_env(
            &["--daemon-url=http://u:p@a:1/,b, [::1]:3//"],
            &[("HOME", "/home/me")],
        )
        .unwrap();
        let urls = &c.daemon_urls;
        assert_eq!(urls.len(), 3);
        assert_eq!(urls[0].to_string(), "a:1/");
        assert_eq!(
            urls[0].auth,
            DaemonAuth::UserPass {
                user: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(urls[1].to_string(), "b:19443/");
        let cookie = PathBuf::from("/home/me/.litecoin/regtest/.cookie");
        assert_eq!(urls[1].auth, DaemonAuth::CookieFile(cookie.clone()));
        assert_eq!(urls[2].to_string(), "[::1]:3/");
        assert_eq!(urls[2].auth, DaemonAuth::CookieFile(cookie));

        let own = config(&["--daemon-url=h", "--daemon-cookie-file=/run/c"]).unwrap();
        assert_eq!(
            own.daemon_urls[0].auth,
            DaemonAuth::CookieFile("/run/c".into())
        );
        let err = error(&["--daemon-url=h"]);
        assert!(err.contains("set DAEMON_COOKIE_FILE"), "no HOME: {err}");
    }

    #[test]
    fn obsolete_variables_stop_start_up_with_their_replacement() {
        let err = config_env(&[], &[("TCP_PORT", "50001")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TCP_PORT is obsolete; remove it: use SERVICES, e.g. SERVICES=tcp://:50001"
        );
        let err = config_env(&[], &[("RPC_PORT", "8000")]).unwrap_err();
        assert!(
            err.to_string().contains("only for the admin client"),
            "{err}"
        );
        let err = config_env(&[], &[("DROP_CLIENT_UNKNOWN", "1")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DROP_CLIENT_UNKNOWN is obsolete"),
            "{err}"
        );
        for (var, _) in OBSOLETE {
            assert!(config_env(&[], &[(var, "x")]).is_err(), "{var}");
            assert!(
                config_env(&[], &[(var, "")]).is_ok(),
                "{var} set empty is ignored"
            );
        }
    }

    #[test]
    fn event_loop_policy_uvloop_is_accepted_and_others_are_not() {
        assert!(config_env(&[], &[("EVENT_LOOP_POLICY", "uvloop")]).is_ok());
        let err = config_env(&[], &[("EVENT_LOOP_POLICY", "asyncio")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("EVENT_LOOP_POLICY=\"asyncio\" is invalid")
        );
    }

    #[test]
    fn empty_strings_mean_unset_for_paths_and_lists() {
        let c = config(&[
            "--banner-file=b",
            "--tor-banner-file=",
            "--blacklist-url=",
            "--drop-client=",
            "--services=",
        ])
        .unwrap();
        assert_eq!(c.banner_file, Some(PathBuf::from("b")));
        assert_eq!(
            c.tor_banner_file, None,
            "an empty TOR_BANNER_FILE means none"
        );
        assert_eq!((c.blacklist_url, c.drop_client), (None, None));
        assert!(c.services.is_empty());
    }
}
