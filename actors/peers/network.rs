//! Every connection the Peers actor opens: to peers (TCP or TLS, directly or through a
//! SOCKS5 proxy) and the JSON-RPC exchange on it, to BLACKLIST_URL (HTTP or HTTPS, read
//! with `ferrumx::http`), and to a SOCKS proxy being looked for.

use super::{MAX_BLACKLIST, MAX_LINE, PROXY_PROBE_TIMEOUT, Shared, TryError};
use ferrumx::http::{self, HttpError, HttpUrl};
use ferrumx::peers::{
    BLACKLIST_REFRESH, BlacklistError, ConnectionTry, Family, PROXY_RETRY, Peer, PeerDirectory,
    PortKind, REQUEST_TIMEOUT, parse_blacklist,
};
use ferrumx::socks5;
use openssl::ssl::{Ssl, SslConnector, SslMethod};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_openssl::SslStream;

/// A byte stream to a peer: TCP, TLS over TCP, either through a SOCKS proxy.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A JSON-RPC connection to a peer (newline-delimited, as Electrum servers speak).
pub(super) struct PeerConnection {
    pub(super) stream: BufReader<Box<dyn Io>>,
    pub(super) next_id: u64,
    pub(super) timeout: Duration,
}

impl PeerConnection {
    /// Sends one request and waits for its answer (notifications are skipped).
    pub(super) async fn request(&mut self, method: &str, params: Value) -> Result<Value, TryError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.request_inner(method, params))
            .await
            .map_err(|_| TryError::Timeout(timeout))?
    }

    async fn request_inner(&mut self, method: &str, params: Value) -> Result<Value, TryError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        self.stream.get_mut().write_all(&line).await?;
        self.stream.get_mut().flush().await?;
        loop {
            let mut buffer = Vec::new();
            let read = (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut buffer)
                .await?;
            if read == 0 {
                return Err(TryError::Closed);
            }
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message: Value =
                serde_json::from_slice(&buffer).map_err(|e| TryError::Json(e.to_string()))?;
            // A notification (after blockchain.headers.subscribe, a new block).
            if message.get("id").is_none_or(Value::is_null) && message.get("method").is_some() {
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = message.get("error").filter(|e| !e.is_null()) {
                return Err(TryError::Rpc {
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                });
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }
}

/// Opens a connection to the peer one way; returns it with the address reached (none
/// through a proxy to an onion host).
pub(super) async fn connect(
    shared: &Shared,
    peer: &Peer,
    way: ConnectionTry,
    proxy: Option<SocketAddr>,
) -> Result<(Box<dyn Io>, Option<IpAddr>), TryError> {
    let (tcp, reached) = match proxy {
        Some(proxy) => {
            // Onion names go to the proxy as names; other hosts are resolved here.
            let target = if peer.is_tor() {
                None
            } else {
                Some(resolve(&peer.host, way.port, way.family).await?)
            };
            let mut tcp = TcpStream::connect(proxy).await?;
            let host = target.map_or_else(|| peer.host.clone(), |a| a.ip().to_string());
            socks5_connect(&mut tcp, &host, way.port).await?;
            (tcp, target.map(|a| a.ip()))
        }
        None => {
            let address = resolve(&peer.host, way.port, way.family).await?;
            let local = match address {
                SocketAddr::V4(_) => shared.local_v4,
                SocketAddr::V6(_) => shared.local_v6,
            };
            let socket = match address {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            if let Some(local) = local {
                socket.bind(SocketAddr::new(local, 0))?;
            }
            (socket.connect(address).await?, Some(address.ip()))
        }
    };
    let stream: Box<dyn Io> = match way.kind {
        PortKind::Tcp => Box::new(tcp),
        PortKind::Ssl => {
            let connector = shared
                .tls
                .as_ref()
                .ok_or_else(|| TryError::Tls("no TLS client".into()))?;
            let mut config = connector
                .configure()
                .map_err(|e| TryError::Tls(e.to_string()))?;
            config.set_verify_hostname(false);
            let ssl = config
                .into_ssl(&peer.host)
                .map_err(|e| TryError::Tls(e.to_string()))?;
            Box::new(tls_handshake(ssl, tcp).await.map_err(TryError::Tls)?)
        }
    };
    Ok((stream, reached))
}

/// The client side of a TLS handshake on `tcp`.
async fn tls_handshake(ssl: Ssl, tcp: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The first address of `host` in `family`.
async fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr, TryError> {
    let addresses = tokio::net::lookup_host((host, port)).await?;
    addresses
        .into_iter()
        .find(|a| Family::of(&a.ip()) == family)
        .ok_or(TryError::NoAddress)
}

/// SOCKS5 CONNECT (no authentication) on a connection to the proxy.
async fn socks5_connect(tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), TryError> {
    tcp.write_all(&socks5::GREETING).await?;
    let mut method = [0u8; 2];
    tcp.read_exact(&mut method).await?;
    socks5::check_method(method)?;
    tcp.write_all(&socks5::connect_request(host, port)?).await?;
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await?;
    let mut rest = vec![0u8; socks5::reply_rest(head)?];
    tcp.read_exact(&mut rest).await?;
    Ok(())
}

/// Fetches BLACKLIST_URL every 10 minutes; a failure is logged and the previous list
/// kept.
pub(super) async fn refresh_blacklist(directory: Arc<PeerDirectory>, url: String) {
    loop {
        match fetch_blacklist(&url).await {
            Ok(blacklist) => {
                log::info!("blacklist from {url} has {} entries", blacklist.len());
                let events = directory.table().set_blacklist(blacklist);
                directory.dispatch(events);
            }
            Err(e) => log::error!("could not retrieve blacklist from {url}: {e}"),
        }
        tokio::time::sleep(BLACKLIST_REFRESH).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Blacklist(#[from] BlacklistError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("timed out")]
    Timeout,
}

async fn fetch_blacklist(url: &str) -> Result<std::collections::HashSet<String>, FetchError> {
    let url = HttpUrl::parse(url)?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, http_get(&url))
        .await
        .map_err(|_| FetchError::Timeout)??;
    Ok(parse_blacklist(&http::body_of(&response, MAX_BLACKLIST)?)?)
}

/// A plain HTTP/1.1 GET (HTTPS with the system's certificate authorities and host name
/// check); the whole response.
async fn http_get(url: &HttpUrl) -> Result<Vec<u8>, FetchError> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let mut stream: Box<dyn Io> = if url.tls {
        let connector = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| FetchError::Tls(e.to_string()))?
            .build();
        let ssl = connector
            .configure()
            .and_then(|c| c.into_ssl(&url.host))
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        Box::new(tls_handshake(ssl, tcp).await.map_err(FetchError::Tls)?)
    } else {
        Box::new(tcp)
    };
    stream.write_all(url.get_request().as_bytes()).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    // Room for the head and chunk sizes beyond the body's limit.
    stream
        .take(2 * MAX_BLACKLIST as u64)
        .read_to_end(&mut response)
        .await?;
    Ok(response)
}

/// Looks for a SOCKS5 proxy on TOR_PROXY_HOST at TOR_PROXY_PORT (or 9050, 9150, 1080)
/// until one answers, every 15 minutes.
pub(super) async fn detect_proxy(directory: Arc<PeerDirectory>, host: String, ports: Vec<u16>) {
    loop {
        log::info!("trying to detect proxy on \"{host}\" ports {ports:?}");
        for &port in &ports {
            let probe = tokio::time::timeout(PROXY_PROBE_TIMEOUT, probe_socks5(&host, port));
            if let Ok(Ok(address)) = probe.await {
                log::info!("detected SOCKS5 proxy at {address}");
                directory.table().set_proxy(Some(address));
                return;
            }
        }
        log::info!("no proxy detected, will try later");
        tokio::time::sleep(PROXY_RETRY).await;
    }
}

async fn probe_socks5(host: &str, port: u16) -> Result<SocketAddr, TryError> {
    let mut tcp = TcpStream::connect((host, port)).await?;
    let address = tcp.peer_addr()?;
    tcp.write_all(&socks5::GREETING).await?;
    let mut reply = [0u8; 2];
    tcp.read_exact(&mut reply).await?;
    socks5::check_method(reply)?;
    Ok(address)
}
