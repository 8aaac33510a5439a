//! The end-to-end test harness: a real regtest litecoind, a builder for a varied chain
//! (with its own signer), the expected index computed independently from the daemon's
//! blocks, a launcher for the ferrumx binary and a raw Electrum client. Each test file uses
//! a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod certs;
pub mod chain_builder;
pub mod electrum;
pub mod electrumx;
pub mod ferrumx;
pub mod fulcrum;
pub mod litecoind;
pub mod signer;
pub mod truth;

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How long a request to the admin or metrics port may take.
const ADMIN_WAIT: Duration = Duration::from_secs(60);

/// Polls `done` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// One raw JSON-RPC request to a server's admin (`rpc://`) port; the whole reply object.
pub fn admin_request(port: u16, request: &Value) -> Value {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    stream
        .set_read_timeout(Some(ADMIN_WAIT))
        .expect("read timeout");
    writeln!(&stream, "{request}").expect("send to the admin port");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("read from the admin port");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// `GET path` from a server's metrics (`http://`) port: the status line and the body.
pub fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    stream
        .set_read_timeout(Some(ADMIN_WAIT))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// A blocking TCP connection to `server` from the loopback address `source` (such as
/// 127.0.0.2: tests that count clients per address or subnet need several), with a 30 s
/// read timeout and no Nagle delay.
pub fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let source: IpAddr = source.parse().expect("source address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        tokio::time::timeout(Duration::from_secs(10), socket.connect(server))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The daemon polled every 100 ms, so tests see blocks and the mempool at once.
pub const FAST_POLLING: [(&str, &str); 2] = [
    ("DAEMON_POLL_INTERVAL_BLOCKS", "100"),
    ("DAEMON_POLL_INTERVAL_MEMPOOL", "100"),
];

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999 by default), so
/// neither an outgoing connection nor another bind to port 0 is handed a port between
/// the moment it is found free and the moment the server under test binds it.
const TEST_PORTS: std::ops::Range<u32> = 12_000..32_000;

/// A TCP port on 127.0.0.1 that is free now and that no other caller in this process
/// is handed: ports are taken in turn from TEST_PORTS, from a start that differs per
/// process, skipping any in use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TURN: AtomicU32 = AtomicU32::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = (start + TURN.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(TEST_PORTS.start + offset).expect("TEST_PORTS fit in u16");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {TEST_PORTS:?}")
}

/// The last `lines` lines of a text file, or a note saying why it could not be read; used
/// in panic messages so a failed start explains itself.
pub fn file_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
