//! Start-up: opens the index, checks the daemon, starts the actors, opens the client
//! listeners after the first catch-up, and hands SIGINT/SIGTERM to [`crate::shutdown`].

use crate::admin::{self, Admin, AdminSetup};
use crate::block_processor::{BlockProcessor, BlockProcessorSettings, ChainUpdate};
use crate::gate::{ConnectionCaps, ListenerGate};
use crate::listener;
use crate::mempool::{MempoolActor, MempoolSettings, MempoolUpdate};
use crate::notifier::{Notifier, RefreshMempoolOnBlocks};
use crate::session::SessionShared;
use crate::session_manager::{SessionManager, SessionManagerSettings};
use crate::shutdown::{self, Shutdown};
use crate::supervisor::supervise_task;
use crate::wake::TipChanged;
use actix::prelude::*;
use ferrumx::config::{Config, Host, Protocol};
use ferrumx::cost::CostLimits;
use ferrumx::daemon::{Daemon, DaemonError, DaemonPool, DaemonUrlError};
use ferrumx::index::{IndexError, Indexer};
use ferrumx::mempool::{Mempool, SharedMempool};
use ferrumx::peers::{PeerDirectory, PeerSettings};
use ferrumx::protocol::blockchain::history_limit;
use ferrumx::protocol::server::{self as server_methods, ServerInfo};
use ferrumx::store::{Store, StoreError};
use ferrumx::subscription_caps::SubscriptionCaps;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long one daemon request may take before it is retried.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    DaemonUrl(#[from] DaemonUrlError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(std::io::Error),
    #[error("the server stopped with exit code {0}")]
    Exit(i32),
}

pub fn open_store(config: &Config) -> Result<Arc<Store>, StoreError> {
    let coin = config.coin;
    Ok(Arc::new(Store::open(
        &config.db_directory,
        coin.name,
        coin.net,
        &coin.genesis_hash(),
    )?))
}

/// Runs the server until it is told to stop. Returns after the index is flushed.
pub fn run(config: Config) -> Result<(), ServerError> {
    let store = open_store(&config)?;
    let state = store.state()?;
    if let Some(state) = &state {
        log::info!(
            "index {}: height {:?}, {} txs, coin {} {}",
            store.dir(),
            state.height,
            state.tx_count,
            state.coin,
            state.net
        );
    }
    let daemon = Daemon::new(config.daemon_urls.clone(), DAEMON_TIMEOUT)?;
    // Its genesis block is checked by the block processor before it indexes anything.
    log::info!("daemon at {}", daemon.current_url());

    // A certificate that cannot be used is reported now, not after a long catch-up.
    let certificates = if config.services.iter().any(|s| s.protocol.is_tls()) {
        Some(crate::tls::Certificates::load(
            config.ssl_certfile.as_deref(),
            config.ssl_keyfile.as_deref(),
        )?)
    } else {
        None
    };
    let indexer = Indexer::new(Arc::clone(&store), config.reorg_limit)?;
    let memory_budget =
        ferrumx::memory::Budget::new(ferrumx::memory::MemoryLimit::detect(), config.cache_mb);
    log::info!("{}", memory_budget.describe());
    let stop = Arc::new(AtomicBool::new(false));
    let system = System::new();
    let workers: Vec<Arbiter> = (0..worker_count()).map(|_| worker_arbiter()).collect();
    let worker_handles: Vec<ArbiterHandle> = workers.iter().map(Arbiter::handle).collect();
    let block_arbiter = Arbiter::new();
    let mempool_arbiter = Arbiter::new();
    let config = Arc::new(config);

    let startup_config = Arc::clone(&config);
    let startup_store = Arc::clone(&store);
    let startup_daemon = daemon.clone();
    let startup_stop = Arc::clone(&stop);
    system.block_on(async move {
        actix_rt::spawn(crate::tls::reload_on_hangup(certificates.clone()));
        let mempool: SharedMempool = Arc::new(RwLock::new(Mempool::default()));
        let notifier_store = Arc::clone(&startup_store);
        let notifier = Supervisor::start(move |_| Notifier::new(notifier_store));
        let (mempool_synced_tx, mempool_synced_rx) =
            tokio::sync::oneshot::channel::<MempoolUpdate>();
        let mempool_settings = MempoolSettings {
            coin: startup_config.coin,
            poll_interval: startup_config.daemon_poll_interval_mempool,
            on_synced: mempool_synced_tx,
            on_update: vec![notifier.clone().recipient()],
        };
        let mempool_actor = {
            let (mempool, daemon, store) = (
                Arc::clone(&mempool),
                startup_daemon.clone(),
                Arc::clone(&startup_store),
            );
            Supervisor::start_in_arbiter(&mempool_arbiter.handle(), move |_| {
                MempoolActor::new(mempool, &daemon, store, mempool_settings)
            })
        };
        notifier.do_send(RefreshMempoolOnBlocks(mempool_actor.clone().recipient()));
        let (supervised_mempool, supervised_notifier) = (mempool_actor.clone(), notifier.clone());
        let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel::<ChainUpdate>();
        let settings = BlockProcessorSettings {
            coin: startup_config.coin,
            cache_mb: usize::try_from(memory_budget.cache_bytes >> 20).unwrap_or(usize::MAX),
            flush_blocks: startup_config.flush_blocks,
            compact_min_free: startup_config.compact_min_free_mb.saturating_mul(1 << 20),
            poll_interval: startup_config.daemon_poll_interval_blocks,
            stop: Arc::clone(&startup_stop),
            on_caught_up: caught_up_tx,
            on_update: vec![notifier.clone().recipient()],
        };
        // The admin interface is up from the start, and hears of every chain update.
        let mut tip_changed: Option<Recipient<TipChanged>> = None;
        let admin = Admin::create(|ctx| {
            let mut settings = settings;
            settings.on_update.push(ctx.address().recipient());
            let processor = BlockProcessor::new(indexer, startup_daemon.clone(), settings);
            let processor = Supervisor::start_in_arbiter(&block_arbiter.handle(), |_| processor);
            tip_changed = Some(processor.clone().recipient());
            let watched = processor.clone();
            actix_rt::spawn(watchdog(vec![(
                "block processor",
                Box::new(move || watched.connected()),
            )]));
            let shutdown = Shutdown::new(
                startup_stop,
                startup_daemon.clone(),
                processor.clone().recipient(),
            );
            actix_rt::spawn(shutdown::on_signal(shutdown.clone()));
            Admin::new(AdminSetup {
                config: Arc::clone(&startup_config),
                store: Arc::clone(&startup_store),
                daemon: startup_daemon.clone(),
                mempool: Arc::clone(&mempool),
                supervised: vec![
                    ("block_processor", processor.clone().recipient()),
                    ("mempool", supervised_mempool.recipient()),
                    ("notifier", supervised_notifier.recipient()),
                ],
                force_reorg: processor.recipient(),
                shutdown,
            })
        });
        actix_rt::spawn(watchdog(vec![
            ("notifier", {
                let notifier = notifier.clone();
                Box::new(move || notifier.connected())
            }),
            ("mempool", {
                let mempool_actor = mempool_actor.clone();
                Box::new(move || mempool_actor.connected())
            }),
        ]));
        open_admin_listeners(&startup_config, &admin).await;
        actix_rt::spawn(async move {
            let Ok(update) = caught_up_rx.await else {
                return;
            };
            admin.do_send(admin::CaughtUp);
            log::info!(
                "index at height {} (daemon {})",
                update.height,
                update.daemon_height
            );
            if let Some(tip_changed) = tip_changed {
                notice_at_once(
                    &startup_config,
                    &startup_daemon,
                    tip_changed,
                    mempool_actor.clone().recipient(),
                );
            }
            let Ok(synced) = mempool_synced_rx.await else {
                return;
            };
            log::info!(
                "mempool synced at height {}: opening listeners",
                synced.height
            );
            let gate = ListenerGate::new(
                max_sessions(&startup_config),
                ConnectionCaps::from_config(&startup_config),
            );
            let manager =
                SessionManager::new(session_manager_settings(&startup_config, gate.clone()))
                    .start();
            let shared = Arc::new(SessionShared {
                store: startup_store,
                mempool,
                notifier,
                mempool_refresh: mempool_actor.recipient(),
                daemon: DaemonPool::new(startup_daemon),
                server: server_info(&startup_config),
                state: Default::default(),
                max_send: startup_config.max_send,
                max_recv: startup_config.max_recv,
                max_batch: startup_config.max_batch,
                line_timeout: startup_config.line_timeout,
                max_subscriptions: startup_config.max_session_subscriptions,
                subscription_caps: SubscriptionCaps::new(
                    startup_config.max_subscriptions_per_ip,
                    startup_config.max_total_subscriptions,
                    ferrumx::test_switches::cap_loopback(),
                ),
                history_limit: history_limit(startup_config.max_send),
                manager,
                gate,
                limits: cost_limits(&startup_config),
                request_timeout: startup_config.request_timeout,
                anon_logs: startup_config.anon_logs,
                latency: Default::default(),
            });
            admin.do_send(admin::Attach(Arc::clone(&shared)));
            open_listeners(
                &startup_config,
                certificates,
                Arc::clone(&shared),
                worker_handles,
            )
            .await;
            // ---- Peer discovery: the Peers actor starts once our own listeners are up
            // (it checks this server too), as ElectrumX. ----
            crate::peers::start(
                Arc::clone(&startup_config),
                Arc::clone(&shared.store),
                Arc::clone(&shared.server.peers),
            );
            // ---- end of peer discovery ----
        });
    });
    let result = system.run_with_code();
    match result {
        Ok(0) => Ok(()),
        Ok(code) => Err(ServerError::Exit(code)),
        Err(e) => Err(ServerError::Runtime(e)),
    }
}

/// New blocks (and, with ZMQ hashtx, transactions) noticed the moment the daemon has
/// them: from its ZMQ notifications when DAEMON_ZMQ_HASHBLOCK is set, else from a
/// long-poll RPC (unless DAEMON_LONG_POLL is off). Started after the first catch-up, which needs the daemon's RPC
/// threads; the polls go on beside them as the fallback.
fn notice_at_once(
    config: &Config,
    daemon: &Daemon,
    blocks: Recipient<TipChanged>,
    transactions: Recipient<crate::wake::TxNoticed>,
) {
    if config.zmq_hashblock.is_none() && config.daemon_long_poll {
        crate::long_poll::start(daemon, blocks.clone(), config.daemon_poll_interval_blocks);
    }
    crate::zmq::start(
        config.zmq_hashblock.clone(),
        config.zmq_hashtx.clone(),
        daemon,
        crate::zmq::Wake {
            blocks,
            transactions,
        },
    );
}

/// Descriptors kept for the index, the daemon and listeners (ElectrumX keeps 350).
const RESERVED_FILES: u64 = 350;

/// Raises the open-file soft limit to the hard limit, as ElectrumX does, and returns
/// the soft limit now in force (`None` if it cannot be read).
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// MAX_SESSIONS, lowered to what the open-file limit allows.
fn max_sessions(config: &Config) -> usize {
    let mut max_sessions = config.max_sessions;
    if let Some(files) = raise_open_file_limit() {
        let allowed = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        if allowed < max_sessions {
            log::warn!(
                "MAX_SESSIONS lowered from {max_sessions} to {allowed}: the open-file limit is {files}"
            );
            max_sessions = allowed;
        }
    }
    max_sessions
}

fn session_manager_settings(config: &Config, gate: ListenerGate) -> SessionManagerSettings {
    SessionManagerSettings {
        limits: cost_limits(config),
        session_timeout: config.session_timeout,
        log_sessions: config.log_sessions,
        anon_logs: config.anon_logs,
        ipv4_bits: config.session_group_by_subnet_ipv4,
        ipv6_bits: config.session_group_by_subnet_ipv6,
        group_loopback: ferrumx::test_switches::group_loopback(),
        time_slice_weight: config.session_group_timeslice_weight,
        gate,
    }
}

/// Blocking threads (queries on LMDB snapshots) per session arbiter. The queries are
/// CPU-bound, so a few per core keep the cores busy; tokio's default (512) let a burst
/// of wallets start hundreds of threads, each with its own malloc arena holding on to
/// freed reply buffers.
const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// An arbiter for sessions, with a bounded blocking pool.
fn worker_arbiter() -> Arbiter {
    Arbiter::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
            .build()
            .expect("cannot start a session thread's runtime (out of threads or memory?)")
    })
}

fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn open_listeners(
    config: &Config,
    certificates: Option<Arc<crate::tls::Certificates>>,
    shared: Arc<SessionShared>,
    workers: Vec<ArbiterHandle>,
) {
    for service in &config.services {
        let address = bind_address(&service.host, service.port);
        let tls = || {
            certificates.clone().ok_or(crate::tls::TlsError::NotSet {
                var: "SSL_CERTFILE",
            })
        };
        let transport = match service.protocol {
            Protocol::Tcp => Ok(listener::Transport::Tcp),
            Protocol::Ssl => tls().map(listener::Transport::Ssl),
            Protocol::Ws => Ok(listener::Transport::Ws),
            Protocol::Wss => tls().map(listener::Transport::Wss),
            // Open from start-up: see `open_admin_listeners`.
            Protocol::Rpc | Protocol::Http => continue,
        };
        let transport = match transport {
            Ok(transport) => transport,
            Err(e) => {
                log::error!("cannot serve {service}: {e}");
                System::current().stop_with_code(1);
                return;
            }
        };
        match tokio::net::TcpListener::bind(&address).await {
            Ok(tcp) => {
                log::info!("{} server listening on {address}", transport.name());
                // A listener that fails is bound again and restarted, after a backoff.
                let (workers, shared) = (workers.clone(), Arc::clone(&shared));
                let mut bound = Some(tcp);
                actix_rt::spawn(supervise_task(transport.name(), move || {
                    let tcp = bound.take().or_else(|| rebind(&address))?;
                    Some(listener::serve(
                        tcp,
                        transport.clone(),
                        workers.clone(),
                        Arc::clone(&shared),
                    ))
                }));
            }
            Err(e) => {
                log::error!("{}", ServerError::Listen { address, source: e });
                System::current().stop_with_code(1);
                return;
            }
        }
    }
}

/// Binds a listener again after a failure; `None` (logged) if the address is gone.
fn rebind(address: &str) -> Option<tokio::net::TcpListener> {
    let bound = std::net::TcpListener::bind(address).and_then(|tcp| {
        tcp.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(tcp)
    });
    match bound {
        Ok(tcp) => Some(tcp),
        Err(e) => {
            log::error!("cannot listen on {address} again: {e}; giving up on it");
            None
        }
    }
}

/// The admin RPC and metrics services, open before catch-up so that a long sync can be
/// watched and stopped.
async fn open_admin_listeners(config: &Config, admin: &Addr<Admin>) {
    for service in &config.services {
        if !matches!(service.protocol, Protocol::Rpc | Protocol::Http) {
            continue;
        }
        let address = bind_address(&service.host, service.port);
        match tokio::net::TcpListener::bind(&address).await {
            Ok(tcp) if service.protocol == Protocol::Rpc => {
                log::info!("RPC server listening on {address}");
                actix_rt::spawn(crate::admin_listener::serve(tcp, admin.clone()));
            }
            Ok(tcp) => {
                log::info!("metrics server listening on {address}");
                actix_rt::spawn(crate::metrics::serve(tcp, admin.clone().recipient()));
            }
            Err(e) => {
                log::error!("{}", ServerError::Listen { address, source: e });
                System::current().stop_with_code(1);
                return;
            }
        }
    }
}

fn bind_address(host: &Host, port: u16) -> String {
    match host {
        Host::AllInterfaces => format!("0.0.0.0:{port}"),
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Host::Ip(ip) => format!("{ip}:{port}"),
        Host::Name(name) => format!("{name}:{port}"),
    }
}

/// Whether a supervised actor's mailbox is still there.
type AliveCheck = Box<dyn Fn() -> bool>;

/// The last line of defence: a supervised actor that died outside its guards (its
/// mailbox is gone) cannot be restarted in place, so the process exits with an error
/// for the service manager to restart it. The index is safe: LMDB keeps its last commit.
async fn watchdog(actors: Vec<(&'static str, AliveCheck)>) {
    loop {
        actix_rt::time::sleep(Duration::from_secs(1)).await;
        if let Some((name, _)) = actors.iter().find(|(_, alive)| !alive()) {
            log::error!("the {name} actor is gone and cannot be restarted: exiting");
            System::current().stop_with_code(1);
            return;
        }
    }
}

/// The limits every session is held to: COST_SOFT_LIMIT, COST_HARD_LIMIT,
/// INITIAL_CONCURRENT, REQUEST_SLEEP, BANDWIDTH_UNIT_COST.
pub fn cost_limits(config: &Config) -> CostLimits {
    CostLimits {
        soft: config.cost_soft_limit as f64,
        hard: config.cost_hard_limit as f64,
        initial_concurrent: config.initial_concurrent,
        request_sleep: config.request_sleep,
        bandwidth_unit_cost: config.bandwidth_unit_cost as f64,
    }
}

/// What the `server.*` methods report, from the configuration: DONATION_ADDRESS,
/// BANNER_FILE, REPORT_SERVICES, DROP_CLIENT, and the peer directory (PEER_* settings,
/// this server's identities as peers, which `server.features` describes).
pub fn server_info(config: &Config) -> ServerInfo {
    let mut server = ServerInfo {
        donation_address: config.donation_address.clone(),
        banner_file: config
            .banner_file
            .as_ref()
            .map(|path| config.db_directory.join(path)),
        report_services: config.report_services.clone(),
        mempool_refresh: config.daemon_poll_interval_mempool,
        // Validated with the configuration.
        drop_client: config
            .drop_client
            .as_deref()
            .and_then(|pattern| ferrumx::config::drop_client_regex(pattern).ok()),
        passthrough_subnets: config.daemon_passthrough_subnets.clone(),
        ..ServerInfo::new(config.coin)
    };
    let features = server_methods::features_of(&server);
    server.peers = Arc::new(PeerDirectory::new(PeerSettings::from_config(
        config, &features,
    )));
    server
}
