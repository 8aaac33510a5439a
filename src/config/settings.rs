//! The raw settings: one per ElectrumX environment variable, each also a `--flag` (clap
//! fills them from the flags, then from the environment). [`super::Config`] checks them.

/// The raw settings, one per ElectrumX environment variable. Also read from the
/// environment but not flags: EVENT_LOOP_POLICY (only `uvloop`, accepted and ignored), and
/// the obsolete variables, which stop start-up when set.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Settings {
    /// Coin: Bitcoin or Litecoin (case-insensitive) [default: Bitcoin]
    #[arg(long, env = "COIN", value_name = "NAME", help_heading = "Coin")]
    pub coin: Option<String>,

    /// Network: mainnet, testnet, testnet4, signet, mutinynet, regtest (Bitcoin); mainnet,
    /// testnet, regtest (Litecoin) [default: mainnet]
    #[arg(long, env = "NET", value_name = "NAME", help_heading = "Coin")]
    pub net: Option<String>,

    /// Directory of the index database (required)
    #[arg(
        long,
        env = "DB_DIRECTORY",
        value_name = "DIR",
        help_heading = "Required"
    )]
    pub db_directory: Option<String>,

    /// Database engine: leveldb, rocksdb or lmdb. ferrumx always keeps its own LMDB index;
    /// ElectrumX's values are accepted so that its environment files work unchanged
    /// [default: lmdb]
    #[arg(
        long,
        env = "DB_ENGINE",
        value_name = "ENGINE",
        help_heading = "Required"
    )]
    pub db_engine: Option<String>,

    /// Coin daemon JSON-RPC URLs, comma-separated, failing over round-robin:
    /// [http://][user:password@]host[:port][/]. The port defaults to the coin's RPC port;
    /// without user:password the daemon's cookie file is used (required)
    #[arg(
        long,
        env = "DAEMON_URL",
        value_name = "URLS",
        help_heading = "Required"
    )]
    pub daemon_url: Option<String>,

    /// Cookie file for DAEMON_URL entries without user:password (ferrumx only)
    /// [default: the daemon's default, e.g. ~/.bitcoin/.cookie, ~/.litecoin/regtest/.cookie]
    #[arg(
        long,
        env = "DAEMON_COOKIE_FILE",
        value_name = "FILE",
        help_heading = "Required"
    )]
    pub daemon_cookie_file: Option<String>,

    /// Services to listen on, comma-separated protocol://host:port with protocol tcp, ssl,
    /// ws, wss, rpc, or http (ferrumx: metrics). Host defaults to all interfaces (rpc:
    /// localhost); the port is required except for rpc (8000). Tor .onion hosts and two
    /// services on one address are rejected [default: none]
    #[arg(long, env = "SERVICES", value_name = "LIST", help_heading = "Services")]
    pub services: Option<String>,

    /// Allow an rpc:// service on an address other than loopback (ferrumx only). The
    /// admin RPC has no authentication: anyone who reaches it can stop the server.
    /// Boolean: any non-empty value is true, even "0" [default: off]
    #[arg(long, env = "RPC_ALLOW_REMOTE", value_name = "ANY", num_args = 0..=1,
          default_missing_value = "1", help_heading = "Services")]
    pub rpc_allow_remote: Option<String>,

    /// Services to advertise to clients and peers, comma-separated protocol://host:port
    /// (tcp, ssl, ws, wss), host and port required; no localhost, multicast or unspecified
    /// IPs, and no private IPs while PEER_ANNOUNCE is on [default: none]
    #[arg(
        long,
        env = "REPORT_SERVICES",
        value_name = "LIST",
        help_heading = "Services"
    )]
    pub report_services: Option<String>,

    /// TLS certificate file (PEM), required when SERVICES has ssl or wss
    #[arg(
        long,
        env = "SSL_CERTFILE",
        value_name = "FILE",
        help_heading = "Services"
    )]
    pub ssl_certfile: Option<String>,

    /// TLS private key file (PEM), required when SERVICES has ssl or wss
    #[arg(
        long,
        env = "SSL_KEYFILE",
        value_name = "FILE",
        help_heading = "Services"
    )]
    pub ssl_keyfile: Option<String>,

    /// Allow running as root. Boolean: any non-empty value is true, even "0" [default: off]
    #[arg(long, env = "ALLOW_ROOT", value_name = "ANY", num_args = 0..=1,
          default_missing_value = "1", help_heading = "Miscellaneous")]
    pub allow_root: Option<String>,

    /// Log level: error, warning, info, debug, trace (also critical, warn, notset)
    /// [default: info]
    #[arg(
        long,
        env = "LOG_LEVEL",
        value_name = "LEVEL",
        help_heading = "Miscellaneous"
    )]
    pub log_level: Option<String>,

    /// Log line format, Python logging style [default: %(levelname)s:%(name)s:%(message)s]
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_name = "FORMAT",
        help_heading = "Miscellaneous"
    )]
    pub log_format: Option<String>,

    /// Donation address shown to clients [default: none]
    #[arg(
        long,
        env = "DONATION_ADDRESS",
        value_name = "ADDRESS",
        help_heading = "Miscellaneous"
    )]
    pub donation_address: Option<String>,

    /// Banner file shown to clients, relative to DB_DIRECTORY if relative; $SERVER_VERSION,
    /// $DAEMON_VERSION, $DONATION_ADDRESS etc. are substituted [default: none]
    #[arg(
        long,
        env = "BANNER_FILE",
        value_name = "FILE",
        help_heading = "Miscellaneous"
    )]
    pub banner_file: Option<String>,

    /// Banner file for clients connecting over Tor [default: BANNER_FILE]
    #[arg(
        long,
        env = "TOR_BANNER_FILE",
        value_name = "FILE",
        help_heading = "Miscellaneous"
    )]
    pub tor_banner_file: Option<String>,

    /// Hide client IP addresses in logs. Boolean: any non-empty value is true, even "0"
    /// [default: off]
    #[arg(long, env = "ANON_LOGS", value_name = "ANY", num_args = 0..=1,
          default_missing_value = "1", help_heading = "Miscellaneous")]
    pub anon_logs: Option<String>,

    /// Seconds between session statistics in the log; 0 turns them off [default: 3600]
    #[arg(
        long,
        env = "LOG_SESSIONS",
        value_name = "SECONDS",
        help_heading = "Miscellaneous"
    )]
    pub log_sessions: Option<String>,

    /// Regular expression: disconnect clients whose server.version client name matches
    /// it at the start [default: none]
    #[arg(
        long,
        env = "DROP_CLIENT",
        value_name = "REGEX",
        help_heading = "Miscellaneous"
    )]
    pub drop_client: Option<String>,

    /// Comma-separated subnets (10.10.2.0/24, 127.0.0.1, fd00::/8) whose clients may call
    /// daemon.passthrough, which hands any daemon RPC but `stop` to the daemon (ferrumx,
    /// as Fulcrum's daemon_passthrough_subnets) [default: none: nobody may]
    #[arg(
        long,
        env = "DAEMON_PASSTHROUGH_SUBNETS",
        value_name = "SUBNETS",
        help_heading = "Miscellaneous"
    )]
    pub daemon_passthrough_subnets: Option<String>,

    /// Deepest chain reorganisation to be able to undo, in blocks [default: by network:
    /// Bitcoin 200, its test networks 8000, Litecoin 800, its test networks 4000]
    #[arg(
        long,
        env = "REORG_LIMIT",
        value_name = "BLOCKS",
        help_heading = "Miscellaneous"
    )]
    pub reorg_limit: Option<String>,

    /// Memory for the initial-sync cache, in MB [default: three quarters of what the
    /// memory limit leaves to the sync, at most 2048; a larger value is capped to that]
    #[arg(
        long,
        env = "CACHE_MB",
        value_name = "MB",
        help_heading = "Cache and polling"
    )]
    pub cache_mb: Option<String>,

    /// During catch-up, also flush after this many blocks (0: only when CACHE_MB is
    /// full) [default: 0]. ferrumx's own; small values bound the work a crash loses.
    #[arg(
        long,
        env = "FLUSH_BLOCKS",
        value_name = "BLOCKS",
        help_heading = "Cache and polling"
    )]
    pub flush_blocks: Option<String>,

    /// After the initial sync, rebuild the index file (every table copied in key order,
    /// every page full) when at least this many MB of it are free pages or half-empty
    /// pages' slack [default: 256].
    /// ferrumx's own: LMDB copies every page a write changes, so a long sync leaves much
    /// of the file free and its pages half-empty.
    #[arg(
        long,
        env = "COMPACT_MIN_FREE_MB",
        value_name = "MB",
        help_heading = "Cache and polling"
    )]
    pub compact_min_free_mb: Option<String>,

    /// Milliseconds between polls of the daemon for new blocks [default: 5000]
    #[arg(
        long,
        env = "DAEMON_POLL_INTERVAL_BLOCKS",
        value_name = "MS",
        help_heading = "Cache and polling"
    )]
    pub daemon_poll_interval_blocks: Option<String>,

    /// Milliseconds between polls of the daemon's mempool [default: 5000]
    #[arg(
        long,
        env = "DAEMON_POLL_INTERVAL_MEMPOOL",
        value_name = "MS",
        help_heading = "Cache and polling"
    )]
    pub daemon_poll_interval_mempool: Option<String>,

    /// Notice new blocks at once by a long-poll RPC of the daemon (waitforblockheight),
    /// which holds one of the daemon's RPC threads: on or off (ferrumx only) [default: on]
    #[arg(
        long,
        env = "DAEMON_LONG_POLL",
        value_name = "on|off",
        help_heading = "Cache and polling"
    )]
    pub daemon_long_poll: Option<String>,

    /// The daemon's ZMQ hashblock endpoint, tcp://HOST:PORT or ipc://PATH, as its
    /// -zmqpubhashblock (ferrumx only): new blocks are noticed from it instead of by a
    /// long-poll of the daemon's RPC; polling stays as the fallback [default: none]
    #[arg(
        long,
        env = "DAEMON_ZMQ_HASHBLOCK",
        value_name = "ENDPOINT",
        help_heading = "Cache and polling"
    )]
    pub daemon_zmq_hashblock: Option<String>,

    /// The daemon's ZMQ hashtx endpoint, as its -zmqpubhashtx (ferrumx only): a new
    /// mempool transaction refreshes the mempool at once (at most a fifth of the time is
    /// spent refreshing) [default: none]
    #[arg(
        long,
        env = "DAEMON_ZMQ_HASHTX",
        value_name = "ENDPOINT",
        help_heading = "Cache and polling"
    )]
    pub daemon_zmq_hashtx: Option<String>,

    /// Largest response sent to a client, in bytes; values below 350000 count as 350000
    /// [default: 8100000]
    #[arg(long, env = "MAX_SEND", value_name = "BYTES", help_heading = "Limits")]
    pub max_send: Option<String>,

    /// Largest request accepted from a client, in bytes [default: 1000000]
    #[arg(long, env = "MAX_RECV", value_name = "BYTES", help_heading = "Limits")]
    pub max_recv: Option<String>,

    /// Most client connections; listening pauses at the limit (lowered further if the
    /// open-file limit is small) [default: 1000]
    #[arg(long, env = "MAX_SESSIONS", value_name = "N", help_heading = "Limits")]
    pub max_sessions: Option<String>,

    /// Most connections from one address; 0 for no limit. Loopback is exempt (a Tor
    /// service or TLS proxy on the same machine brings every client from 127.0.0.1)
    /// [default: 20]
    #[arg(
        long,
        env = "MAX_SESSIONS_PER_IP",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_sessions_per_ip: Option<String>,

    /// Most connections from one IPv4 /24 or IPv6 /64; 0 for no limit; loopback exempt
    /// [default: 200]
    #[arg(
        long,
        env = "MAX_SESSIONS_PER_SUBNET",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_sessions_per_subnet: Option<String>,

    /// Most requests a batch may hold; a longer batch is refused whole (0: no limit)
    /// [default: 1000]
    #[arg(long, env = "MAX_BATCH", value_name = "N", help_heading = "Limits")]
    pub max_batch: Option<String>,

    /// Seconds a new connection has to send its first complete message (which must be
    /// `server.version`) before it is closed [default: 15]
    #[arg(
        long,
        env = "FIRST_MESSAGE_TIMEOUT",
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub first_message_timeout: Option<String>,

    /// Seconds a line may take to arrive once its first byte has: a session with a line
    /// in progress for longer is closed; idle sessions between lines are not affected
    /// [default: 30]
    #[arg(
        long,
        env = "LINE_TIMEOUT",
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub line_timeout: Option<String>,

    /// Most scripts, outpoints and transactions one session may be subscribed to at once;
    /// a subscription past it is refused (0: no limit) [default: 100000]
    #[arg(
        long,
        env = "MAX_SESSION_SUBSCRIPTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_session_subscriptions: Option<String>,

    /// Most subscriptions the sessions of one client address (an IPv4 address, an IPv6
    /// /64; loopback exempt) may hold together (0: no limit) [default: 250000]
    #[arg(
        long,
        env = "MAX_SUBSCRIPTIONS_PER_IP",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_subscriptions_per_ip: Option<String>,

    /// Most subscriptions all sessions may hold together (0: no limit) [default: 10000000]
    #[arg(
        long,
        env = "MAX_TOTAL_SUBSCRIPTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_total_subscriptions: Option<String>,

    /// Session cost above which requests are throttled [default: 1000]
    #[arg(
        long,
        env = "COST_SOFT_LIMIT",
        value_name = "COST",
        help_heading = "Limits"
    )]
    pub cost_soft_limit: Option<String>,

    /// Session cost at which the session is disconnected; must be >= COST_SOFT_LIMIT, and
    /// is raised to soft + 1 when equal and non-zero [default: 10000]
    #[arg(
        long,
        env = "COST_HARD_LIMIT",
        value_name = "COST",
        help_heading = "Limits"
    )]
    pub cost_hard_limit: Option<String>,

    /// Bytes sent and received that cost 1.0 [default: 5000]
    #[arg(
        long,
        env = "BANDWIDTH_UNIT_COST",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub bandwidth_unit_cost: Option<String>,

    /// Concurrent requests per session before throttling [default: 10]
    #[arg(
        long,
        env = "INITIAL_CONCURRENT",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub initial_concurrent: Option<String>,

    /// Longest throttling sleep before a request, in milliseconds [default: 2500]
    #[arg(
        long,
        env = "REQUEST_SLEEP",
        value_name = "MS",
        help_heading = "Limits"
    )]
    pub request_sleep: Option<String>,

    /// Seconds before a request is abandoned with "server busy" [default: 30]
    #[arg(
        long,
        env = "REQUEST_TIMEOUT",
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub request_timeout: Option<String>,

    /// Seconds of silence before a session is disconnected [default: 600]
    #[arg(
        long,
        env = "SESSION_TIMEOUT",
        value_name = "SECONDS",
        help_heading = "Limits"
    )]
    pub session_timeout: Option<String>,

    /// Prefix length grouping IPv4 clients for cost accounting, 0-32 [default: 24]
    #[arg(
        long,
        env = "SESSION_GROUP_BY_SUBNET_IPV4",
        value_name = "BITS",
        help_heading = "Limits"
    )]
    pub session_group_by_subnet_ipv4: Option<String>,

    /// Prefix length grouping IPv6 clients for cost accounting, 0-128 [default: 48]
    #[arg(
        long,
        env = "SESSION_GROUP_BY_SUBNET_IPV6",
        value_name = "BITS",
        help_heading = "Limits"
    )]
    pub session_group_by_subnet_ipv6: Option<String>,

    /// How much of the cost of the sessions that connected in the same five-minute slice
    /// counts against each of them, 0-1; 0 turns time-slice groups off (ferrumx only;
    /// ElectrumX's predecessor used 0.03) [default: 0.03]
    #[arg(
        long,
        env = "SESSION_GROUP_TIMESLICE_WEIGHT",
        value_name = "WEIGHT",
        help_heading = "Limits"
    )]
    pub session_group_timeslice_weight: Option<String>,

    /// Peer discovery: on, off (or empty), or self (only this server in the peer list);
    /// case-insensitive, any other value means on [default: on]
    #[arg(
        long,
        env = "PEER_DISCOVERY",
        value_name = "MODE",
        help_heading = "Peers"
    )]
    pub peer_discovery: Option<String>,

    /// Announce this server to peers. Boolean: any non-empty value is true, even "0"; set
    /// it empty to turn it off [default: on]
    #[arg(long, env = "PEER_ANNOUNCE", value_name = "ANY", num_args = 0..=1,
          default_missing_value = "1", help_heading = "Peers")]
    pub peer_announce: Option<String>,

    /// Reach all peers through the SOCKS proxy. Boolean: any non-empty value is true, even
    /// "0" [default: off]
    #[arg(long, env = "FORCE_PROXY", value_name = "ANY", num_args = 0..=1,
          default_missing_value = "1", help_heading = "Peers")]
    pub force_proxy: Option<String>,

    /// Host of the Tor SOCKS proxy [default: localhost]
    #[arg(
        long,
        env = "TOR_PROXY_HOST",
        value_name = "HOST",
        help_heading = "Peers"
    )]
    pub tor_proxy_host: Option<String>,

    /// Port of the Tor SOCKS proxy, 1-65535 [default: try 9050, 9150, 1080]
    #[arg(
        long,
        env = "TOR_PROXY_PORT",
        value_name = "PORT",
        help_heading = "Peers"
    )]
    pub tor_proxy_port: Option<String>,

    /// URL of the list of blacklisted peers; empty for none [default: by network; Bitcoin
    /// mainnet https://electrum.org/blacklist.json]
    #[arg(
        long,
        env = "BLACKLIST_URL",
        value_name = "URL",
        help_heading = "Peers"
    )]
    pub blacklist_url: Option<String>,
}
