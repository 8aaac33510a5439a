//! One Electrum connection of the load generator: newline-delimited JSON-RPC over TCP,
//! negotiated with `server.version`. Requests are written as preformatted text and
//! replies are only scanned for their id and whether they carry an error, so the
//! generator spends as little CPU as possible beside the server it measures.

use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::BenchError;

/// How long any one reply may take before the run is declared failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The members of a reply the generator looks at; `result` is scanned, never kept.
#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    error: Option<IgnoredAny>,
}

/// A message from the server.
pub enum Incoming {
    /// The reply to one request.
    Single { id: u64, error: bool },
    /// The reply to a batch: how many replies, and how many of them are errors.
    Batch { replies: usize, errors: usize },
    /// A notification (or anything without an id), which the scenarios ignore.
    Other,
}

pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
    out: String,
    next_id: u64,
}

impl Conn {
    /// Connects and negotiates `protocol`.
    pub async fn open(addr: &str, protocol: &str) -> Result<Conn, BenchError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| BenchError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(1 << 16, read),
            writer,
            line: String::new(),
            out: String::new(),
            next_id: 0,
        };
        let hello = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"server.version\",\
             \"params\":[\"ferrumx-query-bench\",{}]}}\n",
            serde_json::Value::String(protocol.to_string())
        );
        conn.writer.write_all(hello.as_bytes()).await?;
        conn.next_id = 1;
        match conn.next_message().await? {
            Incoming::Single {
                id: 0,
                error: false,
            } => Ok(conn),
            _ => Err(BenchError::Handshake(conn.line.trim().to_string())),
        }
    }

    /// Sends `method(scripthash)`; returns the request's id.
    pub async fn send(&mut self, method: &str, scripthash: &str) -> Result<u64, BenchError> {
        self.out.clear();
        let id = self.push_request(method, scripthash);
        self.out.push('\n');
        self.writer.write_all(self.out.as_bytes()).await?;
        Ok(id)
    }

    /// Sends `method(h)` for every script hash as one batch.
    pub async fn send_batch(&mut self, method: &str, hashes: &[&str]) -> Result<(), BenchError> {
        self.out.clear();
        self.out.push('[');
        for (i, hash) in hashes.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.push_request(method, hash);
        }
        self.out.push_str("]\n");
        self.writer.write_all(self.out.as_bytes()).await?;
        Ok(())
    }

    /// Script hashes are checked to be hex when loaded, so they need no JSON escaping.
    fn push_request(&mut self, method: &str, scripthash: &str) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":[\"{scripthash}\"]}}"
        ));
        id
    }

    /// The next message, within `REPLY_TIMEOUT`.
    pub async fn next_message(&mut self) -> Result<Incoming, BenchError> {
        self.line.clear();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut self.line))
            .await
            .map_err(|_| BenchError::Timeout(REPLY_TIMEOUT))??;
        if read == 0 {
            return Err(BenchError::Closed);
        }
        let text = self.line.trim_start();
        let unexpected = |_| BenchError::Unexpected(shorten(&self.line));
        if text.starts_with('[') {
            let replies: Vec<Reply> = serde_json::from_str(text).map_err(unexpected)?;
            return Ok(Incoming::Batch {
                replies: replies.len(),
                errors: replies.iter().filter(|r| r.error.is_some()).count(),
            });
        }
        let reply: Reply = serde_json::from_str(text).map_err(unexpected)?;
        Ok(match reply.id {
            Some(id) => Incoming::Single {
                id,
                error: reply.error.is_some(),
            },
            None => Incoming::Other,
        })
    }

    /// The last line read, for error messages.
    pub fn last_line(&self) -> String {
        shorten(&self.line)
    }
}

fn shorten(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
