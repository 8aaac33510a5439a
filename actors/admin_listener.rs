//! The `rpc://` service: ElectrumX's LocalRPC connections, newline JSON-RPC with named
//! parameters (no `server.version`, no size limit), each command answered by the Admin
//! actor. Loopback only unless RPC_ALLOW_REMOTE is set (checked in the configuration):
//! there is no authentication.

use crate::admin::{Admin, Command, RpcTraffic, StopServer};
use actix::prelude::*;
use ferrumx::protocol::RpcError;
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
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
