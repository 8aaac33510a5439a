//! The Admin actor: ElectrumX's LocalRPC commands, the ones `electrumx_rpc` (and
//! `ferrumx-rpc`) send over the `rpc://` service (`admin_listener`), and the numbers
//! behind the metrics. It runs from start-up, before catch-up, so an operator can watch
//! a long sync and stop it cleanly.

use crate::block_processor::{ChainUpdate, ForceReorg};
use crate::session::SessionShared;
use crate::session_manager::{Disconnect, GetGroups, GetSessions, InspectSession, SetLogging};
use crate::shutdown::Shutdown;
use crate::supervisor::{InjectPanic, faults_enabled};
use crate::tables::{GroupRow, SessionRow, Traffic};
use actix::prelude::*;
use ferrumx::admin::query_lines;
use ferrumx::config::Config;
use ferrumx::daemon::{Daemon, DaemonAuth, DaemonUrl};
use ferrumx::hashes::Height;
use ferrumx::mempool::SharedMempool;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::params::{Signature, bind, non_negative_integer, py_str};
use ferrumx::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod stats;

use stats::PROGRESS_SAMPLE;
pub use stats::Stats;

/// What the Admin actor is given at start-up.
pub struct AdminSetup {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub daemon: Daemon,
    pub mempool: SharedMempool,
    /// The block processor, for the `reorg` command.
    pub force_reorg: Recipient<ForceReorg>,
    pub shutdown: Shutdown,
    /// The supervised actors, by name, for the test-only `test_panic` command.
    pub supervised: Vec<(&'static str, Recipient<InjectPanic>)>,
}

pub struct Admin {
    setup: AdminSetup,
    started: Instant,
    /// The first catch-up is done (a simulated reorg is refused before).
    caught_up: bool,
    /// The daemon's height at the last chain update.
    daemon_height: Option<Height>,
    /// What client sessions share, once the client listeners are open.
    shared: Option<Arc<SessionShared>>,
    /// Open admin connections by session id (ids are shared with client sessions).
    rpc_connections: BTreeMap<u64, RpcConnection>,
    /// (when, height, tx count) of the index over the last minute, for the sync rate.
    progress: std::collections::VecDeque<(Instant, Height, u64)>,
}

/// An open admin RPC connection: `sessions` lists it with the flag R, as ElectrumX lists
/// its LocalRPC sessions.
struct RpcConnection {
    peer: SocketAddr,
    connected: Instant,
    traffic: Traffic,
}

/// From an admin connection's task to the Admin actor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum RpcTraffic {
    Opened {
        id: u64,
        peer: SocketAddr,
    },
    Exchanged {
        id: u64,
        received: usize,
        sent: usize,
    },
    Closed {
        id: u64,
    },
}

impl Admin {
    pub fn new(setup: AdminSetup) -> Admin {
        Admin {
            setup,
            started: Instant::now(),
            caught_up: false,
            daemon_height: None,
            shared: None,
            rpc_connections: BTreeMap::new(),
            progress: std::collections::VecDeque::new(),
        }
    }

    /// The admin connections as rows of the `sessions` list.
    fn rpc_rows(&self) -> Vec<SessionRow> {
        self.rpc_connections
            .iter()
            .map(|(&id, c)| SessionRow {
                id,
                flags: "R".into(),
                peer: c.peer,
                client: String::new(),
                protocol: String::new(),
                cost: 0.0,
                extra_cost: 0.0,
                traffic: c.traffic,
                time: c.connected.elapsed(),
            })
            .collect()
    }

    /// Test-only (FERRUMX_TEST_FAULTS=1): makes the named supervised actor panic.
    fn test_panic(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("test_panic", params, &sig(&["actor"], 1))?;
        let name = slots[0].map(py_str).unwrap_or_default();
        let (name, actor) = self
            .setup
            .supervised
            .iter()
            .find(|(actor, _)| *actor == name)
            .ok_or_else(|| RpcError::bad_request(format!("no supervised actor {name:?}")))?;
        actor.do_send(InjectPanic);
        Ok(json!(format!("panic injected into {name}")))
    }

    /// `inspect_session`: ElectrumX 2.0's dict for a client session.
    fn inspect_session(&self, params: &Value) -> ResponseFuture<Result<Value, RpcError>> {
        let ready =
            |result| -> ResponseFuture<Result<Value, RpcError>> { Box::pin(async move { result }) };
        let id = match bind("inspect_session", params, &sig(&["session_id"], 1)) {
            Ok(slots) => match slots[0].and_then(Value::as_u64) {
                Some(id) => id,
                None => {
                    return ready(Err(RpcError::bad_request(format!(
                        "session_id must be a session number, not {}",
                        slots[0].map_or_else(|| "None".into(), py_str)
                    ))));
                }
            },
            Err(e) => return ready(Err(e)),
        };
        if self.rpc_connections.contains_key(&id) {
            // ElectrumX's wording, Python class name included.
            return ready(Err(RpcError::bad_request(format!(
                "session with id={id} is not a client session, but <class 'electrumx.server.session.LocalRPC'>"
            ))));
        }
        let manager = self.shared.as_ref().map(|shared| shared.manager.clone());
        Box::pin(async move {
            let found = match manager {
                Some(manager) => manager.send(InspectSession { id }).await.map_err(|e| {
                    log::error!("session manager unavailable: {e}");
                    RpcError::internal()
                })?,
                None => None,
            };
            found.ok_or_else(|| RpcError::bad_request(format!("no session with id={id}")))
        })
    }

    fn daemon_url(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("daemon_url", params, &sig(&["daemon_url"], 0))?;
        let text = match slots[0] {
            None | Some(Value::Null) => String::new(),
            Some(value) => py_str(value),
        };
        let urls = if text.trim().is_empty() {
            self.setup.config.daemon_urls.clone()
        } else {
            let cookie = self.cookie_file();
            DaemonUrl::parse_list(&text, self.setup.config.coin.rpc_port, cookie.as_deref())
                .map_err(|e| RpcError::bad_request(format!("an error occurred: {e}")))?
        };
        self.setup
            .daemon
            .set_urls(urls)
            .map_err(|e| RpcError::bad_request(format!("an error occurred: {e}")))?;
        Ok(Value::String(format!(
            "now using daemon at {}",
            self.setup.daemon.current_url()
        )))
    }

    /// The cookie file for a new URL without credentials: the configured one, else the
    /// coin's default.
    fn cookie_file(&self) -> Option<PathBuf> {
        let configured = self
            .setup
            .config
            .daemon_urls
            .iter()
            .find_map(|url| match &url.auth {
                DaemonAuth::CookieFile(path) => Some(path.clone()),
                DaemonAuth::UserPass { .. } => None,
            });
        configured.or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| self.setup.config.coin.default_cookie_file(home.as_ref()))
        })
    }

    fn reorg(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("reorg", params, &sig(&["count"], 1))?;
        let count = non_negative_integer(slots[0].unwrap_or(&Value::Null))?;
        if !self.caught_up {
            return Err(RpcError::bad_request("still catching up with daemon"));
        }
        let blocks = u32::try_from(count.value).unwrap_or(u32::MAX);
        self.setup.force_reorg.do_send(ForceReorg(blocks));
        Ok(Value::String(format!(
            "scheduled a reorg of {} blocks",
            count.with_commas()
        )))
    }

    /// `add_peer REAL_NAME`: the peer joins the list (and, with discovery on, is
    /// checked). Before the client listeners open there is no peer list yet.
    fn add_peer(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("add_peer", params, &sig(&["real_name"], 1))?;
        let real_name = py_str(slots[0].unwrap_or(&Value::Null));
        if self
            .peers(|peers, _| peers.add_rpc_peer(&real_name))
            .is_none()
        {
            log::info!("admin add_peer {real_name:?}: peer discovery has not started");
        }
        Ok(Value::String(format!("peer '{real_name}' added")))
    }

    /// Something of the peer directory (once the client listeners are open).
    fn peers<R>(&self, f: impl FnOnce(&ferrumx::peers::PeerDirectory, f64) -> R) -> Option<R> {
        let shared = self.shared.as_ref()?;
        Some(f(&shared.server.peers, ferrumx::peers::unix_now()))
    }
}

fn sig(names: &'static [&'static str], required: usize) -> Signature {
    Signature {
        names,
        required,
        extra_ok: false,
    }
}

impl Actor for Admin {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample_progress();
        ctx.run_interval(PROGRESS_SAMPLE, |admin, _| admin.sample_progress());
    }
}

/// One admin command.
#[derive(Message)]
#[rtype(result = "Result<Value, RpcError>")]
pub struct Command {
    pub method: String,
    pub params: Value,
}

impl Handler<Command> for Admin {
    type Result = ResponseFuture<Result<Value, RpcError>>;

    fn handle(&mut self, command: Command, _: &mut Context<Self>) -> Self::Result {
        let params = &command.params;
        let no_args = |method: &str| bind(method, params, &sig(&[], 0)).map(|_| ());
        let ready =
            |result: Result<Value, RpcError>| -> Self::Result { Box::pin(async move { result }) };
        match command.method.as_str() {
            "getinfo" => {
                if let Err(e) = no_args("getinfo") {
                    return ready(Err(e));
                }
                let stats = self.full_stats();
                let coin = self.setup.config.coin;
                let daemon = self.setup.daemon.clone();
                let peers = self.peers(|peers, now| peers.counts(now)).unwrap_or_else(
                    || json!({"bad": 0, "good": 0, "never": 0, "stale": 0, "total": 0}),
                );
                Box::pin(async move {
                    let stats = stats.await;
                    let mut info = Admin::getinfo(coin, &daemon, &stats, peers);
                    // Not in ElectrumX: failed actors restarted, by actor.
                    info["restarts"] = json!(stats.restarts);
                    // A fresh height when the daemon answers at once; else the last known.
                    let fresh = tokio::task::spawn_blocking(move || {
                        daemon.client().call_once::<Height>("getblockcount", &[])
                    })
                    .await;
                    if let Ok(Ok(height)) = fresh {
                        info["daemon height"] = json!(height);
                    }
                    Ok(info)
                })
            }
            "memory" => ready(no_args("memory").map(|()| self.memory(&self.stats()))),
            "sessions" | "groups" | "disconnect" | "log" => {
                let shared = self.shared.clone();
                let method = command.method;
                let params = command.params;
                let rpc_rows = self.rpc_rows();
                Box::pin(async move { sessions_command(shared, &method, &params, rpc_rows).await })
            }
            "inspect_session" => self.inspect_session(params),
            "test_panic" if faults_enabled() => ready(self.test_panic(params)),
            "daemon_url" => ready(self.daemon_url(params)),
            "stop" => ready(no_args("stop").map(|()| Value::String("stopping".into()))),
            "reorg" => ready(self.reorg(params)),
            "peers" => ready(no_args("peers").map(|()| {
                self.peers(|peers, now| peers.rpc_entries(now))
                    .unwrap_or_else(|| json!([]))
            })),
            "add_peer" => ready(self.add_peer(params)),
            "query" => {
                let store = Arc::clone(&self.setup.store);
                let coin = self.setup.config.coin;
                let params = command.params;
                Box::pin(async move {
                    let (items, limit) = query_params(&params)?;
                    tokio::task::spawn_blocking(move || {
                        let snapshot = store.snapshot()?;
                        query_lines(&snapshot, coin, &items, limit)
                    })
                    .await
                    .map_err(|e| {
                        log::error!("admin query task failed: {e}");
                        RpcError::internal()
                    })?
                    .map(|lines| json!(lines))
                    .map_err(|e| {
                        log::error!("admin query: {e}");
                        RpcError::internal()
                    })
                })
            }
            method => ready(Err(RpcError::new(
                RpcError::METHOD_NOT_FOUND,
                format!("unknown method \"{method}\""),
            ))),
        }
    }
}

impl Handler<RpcTraffic> for Admin {
    type Result = ();

    fn handle(&mut self, traffic: RpcTraffic, _: &mut Context<Self>) {
        match traffic {
            RpcTraffic::Opened { id, peer } => {
                self.rpc_connections.insert(
                    id,
                    RpcConnection {
                        peer,
                        connected: Instant::now(),
                        traffic: Traffic::default(),
                    },
                );
            }
            RpcTraffic::Exchanged { id, received, sent } => {
                if let Some(c) = self.rpc_connections.get_mut(&id) {
                    c.traffic += Traffic {
                        recv_count: 1,
                        recv_size: received as u64,
                        send_count: u64::from(sent > 0),
                        send_size: sent as u64,
                        ..Traffic::default()
                    };
                }
            }
            RpcTraffic::Closed { id } => {
                self.rpc_connections.remove(&id);
            }
        }
    }
}

/// The commands the session manager answers. Before the client listeners open there
/// are no sessions and no groups.
async fn sessions_command(
    shared: Option<Arc<SessionShared>>,
    method: &str,
    params: &Value,
    rpc_rows: Vec<SessionRow>,
) -> Result<Value, RpcError> {
    let unavailable = |e: MailboxError| {
        log::error!("session manager unavailable: {e}");
        RpcError::internal()
    };
    match method {
        "sessions" | "groups" => {
            bind(method, params, &sig(&[], 0))?;
            if method == "sessions" {
                let mut rows = match &shared {
                    Some(shared) => shared
                        .manager
                        .send(GetSessions)
                        .await
                        .map_err(unavailable)?,
                    None => Vec::new(),
                };
                rows.extend(rpc_rows);
                rows.sort_by_key(|row| row.id);
                return Ok(Value::Array(
                    rows.iter().map(|row| row.electrumx_row(false)).collect(),
                ));
            }
            let Some(shared) = shared else {
                return Ok(json!([]));
            };
            let manager = &shared.manager;
            let rows = manager.send(GetGroups).await.map_err(unavailable)?;
            Ok(Value::Array(
                rows.iter().map(GroupRow::electrumx_row).collect(),
            ))
        }
        _ => {
            let slots = bind(method, params, &sig(&["session_ids"], 1))?;
            let targets = match slots[0] {
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect::<Vec<String>>(),
                _ => return Err(RpcError::bad_request("expected a list of session IDs")),
            };
            let lines = match shared.as_ref().map(|shared| &shared.manager) {
                Some(manager) if method == "disconnect" => manager
                    .send(Disconnect { targets })
                    .await
                    .map_err(unavailable)?,
                Some(manager) => manager
                    .send(SetLogging { targets })
                    .await
                    .map_err(unavailable)?,
                None => targets
                    .iter()
                    .map(|target| format!("unknown: {target}"))
                    .collect(),
            };
            Ok(json!(lines))
        }
    }
}

fn query_params(params: &Value) -> Result<(Vec<String>, usize), RpcError> {
    let slots = bind("query", params, &sig(&["items", "limit"], 2))?;
    let items = match slots[0] {
        Some(Value::Array(items)) => items.iter().map(py_str).collect(),
        Some(Value::String(item)) => vec![item.clone()],
        _ => return Err(RpcError::bad_request("items should be a list of strings")),
    };
    let limit = non_negative_integer(slots[1].unwrap_or(&Value::Null))?;
    Ok((items, usize::try_from(limit.value).unwrap_or(usize::MAX)))
}

/// The first catch-up finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CaughtUp;

impl Handler<CaughtUp> for Admin {
    type Result = ();

    fn handle(&mut self, _: CaughtUp, _: &mut Context<Self>) {
        self.caught_up = true;
    }
}

/// The client listeners opened: what their sessions share (caches, counters).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Arc<SessionShared>);

impl Handler<Attach> for Admin {
    type Result = ();

    fn handle(&mut self, Attach(shared): Attach, _: &mut Context<Self>) {
        self.shared = Some(shared);
    }
}

impl Handler<ChainUpdate> for Admin {
    type Result = ();

    fn handle(&mut self, update: ChainUpdate, _: &mut Context<Self>) {
        self.daemon_height = Some(update.daemon_height);
        self.sample_progress();
    }
}

/// The numbers behind the metrics endpoint.
#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

impl Handler<GetStats> for Admin {
    type Result = ResponseFuture<Stats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.full_stats())
    }
}

/// Stop the server (after the `stop` reply was written).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopServer;

impl Handler<StopServer> for Admin {
    type Result = ();

    fn handle(&mut self, _: StopServer, _: &mut Context<Self>) {
        log::info!("admin stop command: shutting down");
        actix_rt::spawn(self.setup.shutdown.clone().run());
    }
}
