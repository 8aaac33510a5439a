//! The `rpc://` service: ElectrumX's LocalRPC connections, newline JSON-RPC with named
//! parameters (no `server.version`), each command answered by the Admin actor. Loopback
//! only unless RPC_ALLOW_REMOTE is set (checked in the configuration): there is no
//! authentication. Each line is bounded in size ([`MAX_ADMIN_LINE`]) and must arrive
//! within [`ADMIN_READ_TIMEOUT`], so a stuck or hostile local client holds nothing for
//! long.

use crate::admin::{Admin, Command, RpcTraffic, StopServer};
use actix::prelude::*;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest admin request line: commands are a few hundred bytes (ElectrumX sets no
/// limit; an unbounded line is unbounded memory).
pub const MAX_ADMIN_LINE: usize = 1_000_000;

/// How long an admin connection may wait between complete lines (`ferrumx-rpc` sends
/// its line at once and waits for the answer, which is not counted).
pub const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts admin connections until the server stops.
pub async fn serve(listener: TcpListener, admin: Addr<Admin>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                log::debug!("admin connection from {peer}");
                actix_rt::spawn(connection(stream, peer, admin.clone()));
            }
            Err(e) => {
                log::warn!("admin listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, admin: Addr<Admin>) {
    let id = crate::listener::next_session_id();
    admin.do_send(RpcTraffic::Opened { id, peer });
    serve_connection(stream, id, &admin).await;
    admin.do_send(RpcTraffic::Closed { id });
}

async fn serve_connection(stream: TcpStream, id: u64, admin: &Addr<Admin>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut dialect: Option<Dialect> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let bounded = (&mut reader).take(MAX_ADMIN_LINE as u64 + 1);
        let read = tokio::time::timeout(ADMIN_READ_TIMEOUT, read_line(bounded, &mut line));
        match read.await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) if line.len() > MAX_ADMIN_LINE => {
                log::warn!("admin connection {id}: a line over {MAX_ADMIN_LINE} bytes; closed");
                return;
            }
            Ok(Ok(_)) => {}
            Err(_) => {
                log::info!(
                    "admin connection {id}: no complete line in {ADMIN_READ_TIMEOUT:?}; closed"
                );
                return;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (reply, stop) = answer(&line, &mut dialect, admin).await;
        let sent = reply.as_ref().map_or(0, |reply| reply.len() + 1);
        admin.do_send(RpcTraffic::Exchanged {
            id,
            received: line.len(),
            sent,
        });
        if let Some(mut reply) = reply {
            reply.push('\n');
            if writer.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        if stop {
            let _ = writer.flush().await;
            admin.do_send(StopServer);
        }
    }
}

async fn read_line(
    mut reader: impl tokio::io::AsyncBufRead + Unpin,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    reader.read_until(b'\n', line).await
}

/// The reply to one line (none for notifications), and whether it stopped the server.
async fn answer(
    line: &[u8],
    dialect: &mut Option<Dialect>,
    admin: &Addr<Admin>,
) -> (Option<String>, bool) {
    let message = match jsonrpc::parse_message(line, dialect) {
        Ok(message) => message,
        Err(error) => {
            return (
                Some(jsonrpc::response(*dialect, &Value::Null, &Err(error))),
                false,
            );
        }
    };
    let dialect = *dialect;
    match message {
        RpcMessage::Single(item) => {
            let (reply, stop) = answer_item(item, dialect, admin).await;
            (reply, stop)
        }
        RpcMessage::Batch(items) => {
            let mut parts = Vec::new();
            let mut stop = false;
            for item in items {
                let (reply, stopped) = answer_item(item, dialect, admin).await;
                parts.extend(reply);
                stop |= stopped;
            }
            let reply = (!parts.is_empty()).then(|| format!("[{}]", parts.join(",")));
            (reply, stop)
        }
    }
}

async fn answer_item(
    item: Item,
    dialect: Option<Dialect>,
    admin: &Addr<Admin>,
) -> (Option<String>, bool) {
    let Request { method, params, id } = match item {
        Item::Request(request) => request,
        Item::Invalid { id, error } => {
            return (Some(jsonrpc::response(dialect, &id, &Err(error))), false);
        }
        Item::Response => return (None, false),
        Item::Answered { id, result } => {
            return (Some(jsonrpc::response(dialect, &id, &Ok(result))), false);
        }
    };
    let is_stop = method == "stop";
    let result = match admin.send(Command { method, params }).await {
        Ok(result) => result,
        Err(e) => {
            log::error!("admin actor unavailable: {e}");
            Err(RpcError::internal())
        }
    };
    let stop = is_stop && result.is_ok();
    let reply = id.map(|id| jsonrpc::response(dialect, &id, &result));
    (reply, stop)
}
