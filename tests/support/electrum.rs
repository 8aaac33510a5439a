//! A raw newline-delimited JSON-RPC client over TCP, for what the electrum-client crate
//! cannot express: exact error codes, batches, notifications interleaved with replies,
//! malformed or hostile lines, and watching the server close the connection.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// How long a read waits before the client gives up on the server.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An Electrum error: (code, message).
pub type RpcError = (i64, String);

pub struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
    /// Notifications that arrived while waiting for a reply.
    notifications: VecDeque<Value>,
}

impl RawClient {
    /// Connects without sending anything (a server expects `server.version` first; see
    /// `handshake`).
    pub fn connect(addr: SocketAddr) -> io::Result<RawClient> {
        RawClient::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(10))?)
    }

    /// Over a connection already made (from a chosen source address, say).
    pub fn from_stream(stream: TcpStream) -> io::Result<RawClient> {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 0,
            notifications: VecDeque::new(),
        })
    }

    /// `server.version` with this client's name and the given protocol version; returns the
    /// server's answer ([server software, negotiated version]).
    pub fn handshake(&mut self, protocol: &str) -> Result<Value, RpcError> {
        self.call("server.version", json!(["ferrumx-tests", protocol]))
    }

    /// Sends one request and waits for the reply with its id; notifications arriving
    /// meanwhile are kept for `next_notification`. Panics on I/O errors, a closed
    /// connection or a reply that is neither a result nor an error.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.fresh_id();
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw_line(&request.to_string())
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let message = self
                .read_json()
                .unwrap_or_else(|e| panic!("waiting for the reply to {method}: {e}"))
                .unwrap_or_else(|| {
                    panic!("server closed the connection before answering {method}")
                });
            if message.get("id") == Some(&json!(id)) {
                return outcome(&message);
            }
            self.keep_unsolicited(message);
        }
    }

    /// As `call`, but an I/O error or a closed connection is returned, not a panic.
    pub fn try_call(&mut self, method: &str, params: Value) -> io::Result<Result<Value, RpcError>> {
        let id = self.fresh_id();
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw_line(&request.to_string())?;
        loop {
            let Some(message) = self.read_json()? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("server closed the connection before answering {method}"),
                ));
            };
            if message.get("id") == Some(&json!(id)) {
                return Ok(outcome(&message));
            }
            if message.get("method").is_some() {
                self.notifications.push_back(message);
            }
        }
    }

    /// Sends the requests as one JSON array; returns the outcomes in request order,
    /// whatever order the server answered in.
    pub fn batch(&mut self, requests: &[(&str, Value)]) -> Vec<Result<Value, RpcError>> {
        let first = self
            .send_batch(requests)
            .unwrap_or_else(|e| panic!("sending a batch: {e}"));
        loop {
            let message = self
                .read_json()
                .unwrap_or_else(|e| panic!("waiting for a batch reply: {e}"))
                .unwrap_or_else(|| panic!("server closed the connection before the batch reply"));
            let Some(replies) = message.as_array() else {
                self.keep_unsolicited(message);
                continue;
            };
            let mut outcomes: Vec<Option<Result<Value, RpcError>>> = vec![None; requests.len()];
            for reply in replies {
                let slot = reply["id"]
                    .as_u64()
                    .and_then(|id| id.checked_sub(first))
                    .and_then(|i| outcomes.get_mut(i as usize))
                    .unwrap_or_else(|| panic!("batch reply with an unknown id: {reply}"));
                *slot = Some(outcome(reply));
            }
            return outcomes
                .into_iter()
                .enumerate()
                .map(|(i, o)| o.unwrap_or_else(|| panic!("no reply to batch request {i}")))
                .collect();
        }
    }

    /// As `batch`, but a closed connection or an I/O error is returned, not a panic, and a
    /// single error answered for the whole batch (-101, say) comes back as one outcome.
    pub fn try_batch(
        &mut self,
        requests: &[(&str, Value)],
    ) -> io::Result<Vec<Result<Value, RpcError>>> {
        let first = self.send_batch(requests)?;
        loop {
            let Some(message) = self.read_json()? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection before the batch reply",
                ));
            };
            let Some(replies) = message.as_array() else {
                if message.get("method").is_some() {
                    self.notifications.push_back(message);
                    continue;
                }
                return Ok(vec![outcome(&message)]);
            };
            let mut outcomes: Vec<Result<Value, RpcError>> = Vec::with_capacity(replies.len());
            let mut ids: Vec<u64> = Vec::with_capacity(replies.len());
            for reply in replies {
                ids.push(reply["id"].as_u64().unwrap_or(u64::MAX));
                outcomes.push(outcome(reply));
            }
            // In request order (unknown ids last).
            let mut order: Vec<usize> = (0..outcomes.len()).collect();
            order.sort_by_key(|&i| ids[i].saturating_sub(first));
            let mut slots: Vec<Option<Result<Value, RpcError>>> =
                outcomes.into_iter().map(Some).collect();
            return Ok(order.into_iter().filter_map(|i| slots[i].take()).collect());
        }
    }

    /// Sends the requests as one JSON array with fresh ids; the first id.
    fn send_batch(&mut self, requests: &[(&str, Value)]) -> io::Result<u64> {
        let first = self.next_id;
        let body: Vec<Value> = requests
            .iter()
            .map(|(method, params)| {
                let id = self.fresh_id();
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            })
            .collect();
        self.send_raw_line(&Value::Array(body).to_string())?;
        Ok(first)
    }

    /// The connection itself (to write without reading, say).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Writes `line` as is, adding the newline if missing.
    pub fn send_raw_line(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        if !line.ends_with('\n') {
            self.writer.write_all(b"\n")?;
        }
        self.writer.flush()
    }

    /// Writes bytes as is: partial lines, invalid UTF-8, floods.
    pub fn send_raw_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// The next line from the server without its newline; `None` once the server closed
    /// the connection. Errors on timeout (see `set_read_timeout`).
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches(['\r', '\n']).to_string())),
        }
    }

    /// The next line parsed as JSON; `None` once the server closed the connection.
    pub fn read_json(&mut self) -> io::Result<Option<Value>> {
        let Some(line) = self.read_line()? else {
            return Ok(None);
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {line:?}")))
    }

    /// The next notification: one kept while waiting for a reply, else the next line read.
    /// `None` if nothing arrives within `timeout` or the connection closed.
    pub fn next_notification(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(n) = self.notifications.pop_front() {
            return Some(n);
        }
        self.set_read_timeout(timeout);
        let message = self.read_json();
        self.set_read_timeout(READ_TIMEOUT);
        match message {
            Ok(Some(m)) if m.get("method").is_some() => Some(m),
            Ok(Some(m)) => panic!("expected a notification, got {m}"),
            Ok(None) => None,
            Err(e) if is_timeout(&e) => None,
            Err(e) => panic!("reading a notification: {e}"),
        }
    }

    /// The next notification of `method`, skipping others; panics after `wait`.
    pub fn expect_notification(&mut self, method: &str, wait: Duration) -> Value {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Some(n) = self.next_notification(Duration::from_millis(500))
                && n["method"] == method
            {
                return n["params"].clone();
            }
        }
        panic!("no {method} notification within {wait:?}");
    }

    /// True once the server has closed the connection (reads EOF or a reset within
    /// `timeout`); lines still arriving before the close are discarded.
    pub fn is_closed_by_server(&mut self, timeout: Duration) -> bool {
        self.set_read_timeout(timeout);
        let closed = loop {
            match self.read_line() {
                Ok(None) => break true,
                Ok(Some(_)) => continue,
                Err(e) if is_timeout(&e) => break false,
                Err(_) => break true,
            }
        };
        self.set_read_timeout(READ_TIMEOUT);
        closed
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn keep_unsolicited(&mut self, message: Value) {
        assert!(
            message.get("method").is_some(),
            "unexpected message from the server: {message}"
        );
        self.notifications.push_back(message);
    }
}

/// A reply's result or error.
fn outcome(reply: &Value) -> Result<Value, RpcError> {
    if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
        let code = error["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("error without an integer code: {reply}"));
        let message = error["message"].as_str().unwrap_or_default().to_string();
        return Err((code, message));
    }
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => panic!("reply with neither result nor error: {reply}"),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
