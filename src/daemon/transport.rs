//! The HTTP under JSON-RPC calls to the daemon: one kept-alive connection per client,
//! each reply read whole by its Content-Length and parsed from memory.
//!
//! bitcoincore-rpc's own transport parses replies with `serde_json::from_reader`, a byte
//! at a time through `io::Read`: during a catch-up, whose blocks come as hex inside JSON
//! (8 MB of it for a full 4 MB block), that was a third of ferrumx's CPU. Here a reply is
//! one `read_exact` into a buffer and `serde_json::from_slice`, which skips the long hex
//! strings with a word-at-a-time scan.

use crate::http::{self, HttpError};
use bitcoincore_rpc::jsonrpc::{self, Request, Response};
use std::fmt;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The largest reply accepted (bitcoincore-rpc's transport allows the same).
const MAX_REPLY: usize = 1 << 30;

/// What went wrong in one exchange, below JSON-RPC.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the daemon refused our credentials (HTTP 401)")]
    Unauthorized,
    #[error("the daemon answered HTTP {0} without a JSON-RPC reply")]
    Status(u16),
    #[error("connection problem ({0}) - check your daemon is running")]
    Io(#[source] std::io::Error),
    #[error("bad HTTP reply from the daemon: {0}")]
    Http(#[source] HttpError),
}

impl From<HttpError> for TransportError {
    fn from(error: HttpError) -> TransportError {
        match error {
            HttpError::Io(io) => TransportError::Io(io),
            other => TransportError::Http(other),
        }
    }
}

impl From<TransportError> for jsonrpc::Error {
    fn from(error: TransportError) -> jsonrpc::Error {
        jsonrpc::Error::Transport(Box::new(error))
    }
}

/// JSON-RPC over HTTP/1.1 to `host:port`, with Basic authentication.
pub struct HttpTransport {
    /// `host:port` (an IPv6 host in brackets): where to connect, and the Host header.
    addr: String,
    /// The Authorization header's value.
    authorization: Option<String>,
    timeout: Duration,
    /// The kept-alive connection, if the last reply left it usable, the buffer replies
    /// are read into and one for what a caller decodes from them (both kept: a
    /// catch-up reads tens of megabytes a reply).
    connection: Mutex<(Option<TcpStream>, Vec<u8>, Vec<u8>)>,
}

/// A reply buffer grown past this is let go after its reply, not kept for the next.
const KEPT_REPLY: usize = 64 << 20;

impl HttpTransport {
    pub fn new(addr: String, user_pass: Option<(&str, &str)>, timeout: Duration) -> HttpTransport {
        HttpTransport {
            addr,
            authorization: user_pass.map(|(user, pass)| {
                format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
            }),
            timeout,
            connection: Mutex::new((None, Vec::new(), Vec::new())),
        }
    }

    fn connect(&self) -> Result<TcpStream, TransportError> {
        let stream = TcpStream::connect(&self.addr).map_err(TransportError::Io)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(TransportError::Io)?;
        // The request goes in one write; never hold its tail back for an ACK.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn request_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut request = Vec::with_capacity(body.len() + 256);
        request.extend_from_slice(b"POST / HTTP/1.1\r\nHost: ");
        request.extend_from_slice(self.addr.as_bytes());
        request.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        request.extend_from_slice(body.len().to_string().as_bytes());
        if let Some(authorization) = &self.authorization {
            request.extend_from_slice(b"\r\nAuthorization: ");
            request.extend_from_slice(authorization.as_bytes());
        }
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        request
    }

    /// Posts `body`; the reply's status and body.
    pub(super) fn exchange(&self, body: &[u8]) -> Result<(u16, Vec<u8>), TransportError> {
        self.exchange_with(body, |status, reply, _| (status, reply.to_vec()))
    }

    /// Posts `body` and hands the reply's status and body to `read`, the body in the
    /// buffer kept for the next reply, with a kept scratch buffer to decode into. A
    /// kept-alive connection the daemon closed meanwhile (it times idle ones out) is
    /// replaced once.
    pub(super) fn exchange_with<R>(
        &self,
        body: &[u8],
        read: impl FnOnce(u16, &[u8], &mut Vec<u8>) -> R,
    ) -> Result<R, TransportError> {
        let request = self.request_bytes(body);
        let mut guard = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (kept, reply, scratch) = &mut *guard;
        let mut reused = kept.is_some();
        loop {
            let mut stream = match kept.take() {
                Some(stream) => stream,
                None => self.connect()?,
            };
            let sent = stream.write_all(&request).map_err(TransportError::Io);
            let received = sent.and_then(|()| {
                http::read_response_into(&mut stream, MAX_REPLY, reply)
                    .map_err(TransportError::from)
            });
            match received {
                Ok((status, reusable)) => {
                    if reusable {
                        *kept = Some(stream);
                    }
                    let result = read(status, reply, scratch);
                    for buffer in [reply, scratch] {
                        if buffer.capacity() > KEPT_REPLY {
                            *buffer = Vec::new();
                        }
                    }
                    return Ok(result);
                }
                Err(e) if reused && stale(&e) => reused = false,
                Err(e) => return Err(e),
            }
        }
    }

    fn post<R: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<R, jsonrpc::Error> {
        let (status, reply) = self.exchange(body)?;
        if status == 401 {
            return Err(TransportError::Unauthorized.into());
        }
        // The daemon answers an RPC error with a JSON-RPC reply under HTTP 404 or 500:
        // the reply says more than the status.
        serde_json::from_slice(&reply).map_err(|e| {
            if status == 200 {
                jsonrpc::Error::Json(e)
            } else {
                TransportError::Status(status).into()
            }
        })
    }
}

/// Whether a failure on a reused connection means the daemon had closed it.
fn stale(error: &TransportError) -> bool {
    use std::io::ErrorKind;
    match error {
        TransportError::Io(io) => matches!(
            io.kind(),
            ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
        ),
        TransportError::Http(HttpError::Closed) => true,
        _ => false,
    }
}

impl jsonrpc::Transport for HttpTransport {
    fn send_request(&self, request: Request) -> Result<Response, jsonrpc::Error> {
        self.post(&serde_json::to_vec(&request)?)
    }

    fn send_batch(&self, requests: &[Request]) -> Result<Vec<Response>, jsonrpc::Error> {
        self.post(&serde_json::to_vec(requests)?)
    }

    fn fmt_target(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "http://{}/", self.addr)
    }
}

/// Standard base64 with padding, for the Authorization header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_every_length() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"__cookie__:new"), "X19jb29raWVfXzpuZXc=");
    }

    /// A server that answers each connection's first request and closes it without a
    /// word, as the daemon does with a connection idle past `-rpcservertimeout`.
    fn one_request_per_connection(replies: usize) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let mut connections = 0;
            for stream in listener.incoming().take(replies) {
                let mut stream = stream.unwrap();
                connections += 1;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let reply = r#"{"result":7,"error":null,"id":1}"#;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len());
                stream.write_all((head + reply).as_bytes()).unwrap();
            }
            connections
        });
        (addr, server)
    }

    #[test]
    fn a_connection_the_daemon_closed_is_replaced() {
        let (addr, server) = one_request_per_connection(3);
        let transport = HttpTransport::new(addr, None, Duration::from_secs(5));
        for _ in 0..3 {
            let (status, body) = transport.exchange(b"{}").unwrap();
            assert_eq!(status, 200);
            assert_eq!(body, br#"{"result":7,"error":null,"id":1}"#);
            // Let the server close its end before the next request reuses ours.
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(server.join().unwrap(), 3, "one connection per request");
    }

    #[test]
    fn requests_carry_length_host_and_credentials() {
        let transport = HttpTransport::new(
            "127.0.0.1:9332".into(),
            Some(("u", "p")),
            Duration::from_secs(1),
        );
        let request = String::from_utf8(transport.request_bytes(b"{}")).unwrap();
        assert_eq!(
            request,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:9332\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nAuthorization: Basic dTpw\r\n\r\n{}"
        );
    }
}
