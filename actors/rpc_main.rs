//! `ferrumx-rpc`: sends one admin command to a running ferrumx, as ElectrumX's
//! `electrumx_rpc` does (same commands, arguments, port setting and output), so
//! operators' habits and scripts carry over. `--json` prints any answer as JSON.

use clap::{Parser, Subcommand};
use ferrumx::admin::{groups_lines, peers_lines, sessions_lines};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "ferrumx-rpc",
    version,
    about = "Send a ferrumx server an admin command (like ElectrumX's electrumx_rpc)"
)]
struct Cli {
    /// RPC port number [env: RPC_PORT, else 8000]
    #[arg(short, long, value_name = "PORT_NUM", global = true)]
    port: Option<u16>,
    /// Timeout for the command, in seconds
    #[arg(long, default_value_t = 30, global = true)]
    timeout: u64,
    /// Print the answer as JSON, whatever the command (for scripts)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a summary of server state
    Getinfo,
    /// Print current session groups
    Groups,
    /// Print information about peer servers for the same coin
    Peers,
    /// Print information about client sessions
    Sessions,
    /// Shut down the server cleanly
    Stop,
    /// Print the server's memory use (resident memory, index file, caches)
    Memory,
    /// Disconnect sessions
    Disconnect {
        /// Session ids, group names, or "all"
        #[arg(required = true)]
        session_ids: Vec<String>,
    },
    /// Control logging of sessions
    Log {
        /// Session ids, group names, "all", "none" or "new"
        #[arg(required = true)]
        session_ids: Vec<String>,
    },
    /// Add a peer to the peers list
    #[command(name = "add_peer")]
    AddPeer {
        /// e.g. "a.domain.name s995 t"
        real_name: String,
    },
    /// Replace the daemon's URL at run-time, and rotate to the first URL in the list
    #[command(name = "daemon_url")]
    DaemonUrl {
        /// See DAEMON_URL; empty: the URL the server was started with
        #[arg(default_value = "")]
        daemon_url: String,
    },
    /// Query the UTXO and history databases
    Query {
        /// UTXO and history output limit
        #[arg(short, long, default_value_t = 1000)]
        limit: u64,
        /// Hex scripts, or addresses, to query
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Inspect a connected client session
    #[command(name = "inspect_session")]
    InspectSession {
        /// The session's id (first column of `sessions`)
        session_id: u64,
    },
    /// Simulate a chain reorganization
    Reorg {
        /// Number of blocks to back up
        #[arg(default_value_t = 3)]
        count: u64,
    },
}

impl Command {
    /// The method name and its named parameters, as electrumx_rpc sends them.
    fn request(&self) -> (&'static str, Value) {
        match self {
            Command::Getinfo => ("getinfo", json!({})),
            Command::Groups => ("groups", json!({})),
            Command::Peers => ("peers", json!({})),
            Command::Sessions => ("sessions", json!({})),
            Command::Stop => ("stop", json!({})),
            Command::Memory => ("memory", json!({})),
            Command::Disconnect { session_ids } => {
                ("disconnect", json!({"session_ids": session_ids}))
            }
            Command::Log { session_ids } => ("log", json!({"session_ids": session_ids})),
            Command::AddPeer { real_name } => ("add_peer", json!({"real_name": real_name})),
            Command::DaemonUrl { daemon_url } => ("daemon_url", json!({"daemon_url": daemon_url})),
            Command::Query { limit, items } => ("query", json!({"items": items, "limit": limit})),
            Command::Reorg { count } => ("reorg", json!({"count": count})),
            Command::InspectSession { session_id } => {
                ("inspect_session", json!({"session_id": session_id}))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RpcClientError {
    #[error("cannot connect - is ferrumx not running, or is {0} the wrong RPC port?")]
    Connect(u16),
    #[error("error making request: {0}")]
    Io(#[from] std::io::Error),
    #[error("error making request: the server closed the connection without answering")]
    NoAnswer,
    #[error("error making request: unreadable answer: {0}")]
    BadAnswer(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let port = cli.port.unwrap_or_else(|| {
        std::env::var("RPC_PORT")
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(8000)
    });
    let (method, params) = cli.command.request();
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let reply = match send(port, timeout, method, params) {
        Ok(reply) => reply,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
        if cli.json {
            eprintln!("{error}");
        } else {
            // aiorpcX's RPCError as Python prints it: (code, 'message').
            let code = &error["code"];
            let message = error["message"].as_str().unwrap_or_default();
            println!(
                "error making request: ({code}, {})",
                ferrumx::protocol::params::py_str_repr(message)
            );
        }
        return ExitCode::FAILURE;
    }
    let result = reply.get("result").cloned().unwrap_or(Value::Null);
    match print(method, &result, cli.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn send(
    port: u16,
    timeout: Duration,
    method: &str,
    params: Value,
) -> Result<Value, RpcClientError> {
    let addresses = ("localhost", port)
        .to_socket_addrs()
        .map_err(|_| RpcClientError::Connect(port))?;
    let stream = addresses
        .into_iter()
        .find_map(|address| TcpStream::connect_timeout(&address, timeout).ok())
        .ok_or(RpcClientError::Connect(port))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 0});
    let mut writer = &stream;
    writeln!(writer, "{request}")?;
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line)? == 0 {
        return Err(RpcClientError::NoAnswer);
    }
    serde_json::from_str(&line).map_err(|e| RpcClientError::BadAnswer(e.to_string()))
}

fn print(method: &str, result: &Value, as_json: bool) -> Result<(), String> {
    let lines = match method {
        _ if as_json => vec![pretty(result)],
        "query" => result
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(ferrumx::protocol::params::py_str)
                    .collect()
            })
            .unwrap_or_else(|| vec![pretty(result)]),
        "sessions" | "groups" | "peers" => {
            let rows = result.as_array().map(Vec::as_slice).unwrap_or_default();
            let table = match method {
                "sessions" => sessions_lines(rows),
                "groups" => groups_lines(rows),
                _ => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    peers_lines(rows, now)
                }
            };
            table.map_err(|e| e.to_string())?
        }
        _ => vec![pretty(result)],
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `json.dumps(result, indent=4, sort_keys=True)`.
fn pretty(value: &Value) -> String {
    let sorted = sort_keys(value);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    match serde::Serialize::serialize(&sorted, &mut serializer) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => sorted.to_string(),
    }
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .map(|k| (k.clone(), sort_keys(&map[k])))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
