//! The daemon's binary REST interface (`-rest=1`), used for bulk block download: raw
//! bytes instead of hex inside JSON halve what the daemon serializes and we decode.
//! Optional: when the daemon does not serve REST, callers use JSON-RPC.

use crate::http::{self, HttpError};
use bitcoin::BlockHash;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Largest body accepted (a block is at most 4 MB; Litecoin MWEB data adds a little).
const MAX_BODY: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("REST request to {addr} failed: {source}")]
    Http { addr: String, source: HttpError },
    #[error("REST {path} from {addr} answered HTTP {status}")]
    Status {
        addr: String,
        path: String,
        status: u16,
    },
}

/// Requests to the daemon's REST interface, one connection each: the daemon's HTTP
/// server leaves Nagle's algorithm on, and with our delayed ACKs a kept-alive
/// connection stalls 40 ms per block; a fresh loopback connection costs far less.
pub struct RestClient {
    addr: String,
    timeout: Duration,
}

impl RestClient {
    /// `addr` is `host:port` of the daemon's RPC server (REST shares it).
    pub fn new(addr: String, timeout: Duration) -> RestClient {
        RestClient { addr, timeout }
    }

    /// Whether the daemon serves REST (`/rest/chaininfo.json` answers 200).
    pub fn is_available(&mut self) -> bool {
        self.get("/rest/chaininfo.json").is_ok()
    }

    /// The serialized block with this hash.
    pub fn block(&mut self, hash: &BlockHash) -> Result<Vec<u8>, RestError> {
        self.get(&format!("/rest/block/{hash}.bin"))
    }

    fn get(&mut self, path: &str) -> Result<Vec<u8>, RestError> {
        let failed = |source| RestError::Http {
            addr: self.addr.clone(),
            source,
        };
        let mut stream = TcpStream::connect(&self.addr)
            .and_then(|stream| {
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                Ok(stream)
            })
            .map_err(|e| failed(e.into()))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(http::get_request(&self.addr, path).as_bytes())
            .map_err(|e| failed(e.into()))?;
        let (status, body) = http::read_response(&mut stream, MAX_BODY).map_err(failed)?;
        if status != 200 {
            return Err(RestError::Status {
                addr: self.addr.clone(),
                path: path.into(),
                status,
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// An HTTP server answering each connection's request with the next canned reply.
    fn serve(replies: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap() == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                writer.write_all(&reply).unwrap();
            }
        });
        addr
    }

    fn reply(status: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn fetches_bodies_and_reports_errors() {
        let addr = serve(vec![
            reply("200 OK", b"{}"),
            reply("200 OK", &[1, 2, 3]),
            reply("404 Not Found", b"x"),
        ]);
        let mut client = RestClient::new(addr, Duration::from_secs(5));
        assert!(client.is_available());
        let hash = BlockHash::from_byte_array([7; 32]);
        assert_eq!(client.block(&hash).unwrap(), vec![1, 2, 3]);
        assert!(matches!(
            client.block(&hash),
            Err(RestError::Status { status: 404, .. })
        ));
    }

    #[test]
    fn a_closed_port_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(!RestClient::new(addr, Duration::from_secs(1)).is_available());
    }

    use bitcoin::hashes::Hash;
}
