//! Client listeners: accept connections and start a Session actor for each on one of
//! the worker arbiters, so sessions use every core.

use crate::session::{Session, SessionShared};
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};

/// Session ids are global and never reused while the server runs.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_session_id() -> u64 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Accepts plain TCP connections on `listener` until the task is dropped.
pub async fn serve_tcp(
    listener: TcpListener,
    workers: Vec<ArbiterHandle>,
    shared: Arc<SessionShared>,
) {
    let mut turn = 0usize;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                log::warn!("accept failed: {e}");
                actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Re-register the socket on the arbiter that will own it.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let worker = &workers[turn % workers.len()];
        turn += 1;
        let shared = Arc::clone(&shared);
        worker.spawn(async move {
            start_plain(std_stream, peer, shared);
        });
    }
}

fn start_plain(std_stream: std::net::TcpStream, peer: SocketAddr, shared: Arc<SessionShared>) {
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    Session::start(next_session_id(), peer, reader, writer, shared);
}
