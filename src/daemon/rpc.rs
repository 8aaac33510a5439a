//! One JSON-RPC exchange with the daemon over bitcoincore-rpc's `jsonrpc` layer: the
//! connection with its credentials, a call or a batch, and what went wrong, sorted into
//! worth retrying, reconnect, or give up.

use super::transport::{HttpTransport, TransportError};
use super::{DaemonAuth, DaemonError, DaemonUrl, RPC_IN_WARMUP, RPC_PARSE_ERROR};
use crate::hashes::decode_hex_into;
use bitcoin::BlockHash;
use bitcoincore_rpc::jsonrpc;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;

/// How one attempt went wrong.
pub(super) enum Failure {
    /// Worth retrying: the daemon is down, restarting, warming up, or sent garbage.
    Transient(String),
    /// HTTP 401: reconnect (re-reading a cookie file) and retry.
    Unauthorized,
    /// Retrying would not help.
    Fatal(DaemonError),
}

impl Failure {
    pub(super) fn describe(self, url: &DaemonUrl) -> String {
        match (self, &url.auth) {
            (Failure::Transient(problem), _) => problem,
            (Failure::Unauthorized, DaemonAuth::CookieFile(path)) => format!(
                "the daemon refused the cookie in {} (HTTP 401); re-reading it",
                path.display()
            ),
            (Failure::Unauthorized, DaemonAuth::UserPass { .. }) => {
                "the daemon refused the user name and password (HTTP 401): check DAEMON_URL".into()
            }
            (Failure::Fatal(e), _) => e.to_string(),
        }
    }
}

fn transport_failure(error: jsonrpc::Error) -> Failure {
    match error {
        jsonrpc::Error::Transport(inner) => match inner.downcast_ref::<TransportError>() {
            Some(TransportError::Unauthorized) => Failure::Unauthorized,
            Some(TransportError::Io(io))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Failure::Transient("timed out waiting for the daemon".into())
            }
            Some(TransportError::Status(code)) => Failure::Transient(format!(
                "the daemon refused the request with HTTP status {code}"
            )),
            _ => Failure::Transient(inner.to_string()),
        },
        jsonrpc::Error::Json(e) => {
            Failure::Transient(format!("the daemon's reply is not JSON-RPC: {e}"))
        }
        jsonrpc::Error::Rpc(e) => rpc_failure(e),
        other => Failure::Transient(format!("bad reply from the daemon: {other}")),
    }
}

fn rpc_failure(error: jsonrpc::error::RpcError) -> Failure {
    match error.code {
        RPC_IN_WARMUP => {
            Failure::Transient(format!("the daemon is warming up ({})", error.message))
        }
        RPC_PARSE_ERROR => Failure::Transient(format!(
            "the daemon could not parse a request ({})",
            error.message
        )),
        code => Failure::Fatal(DaemonError::Rpc {
            code,
            message: error.message,
        }),
    }
}

fn decode<T: DeserializeOwned>(method: &str, response: jsonrpc::Response) -> Result<T, Failure> {
    if let Some(error) = response.error {
        return Err(rpc_failure(error));
    }
    response.result().map_err(|e| {
        Failure::Fatal(DaemonError::BadReply {
            method: method.to_owned(),
            detail: e.to_string(),
        })
    })
}

pub(super) fn encode_params(method: &str, params: &[Value]) -> Result<Box<RawValue>, DaemonError> {
    serde_json::value::to_raw_value(params).map_err(|e| DaemonError::BadParams {
        method: method.to_owned(),
        detail: e.to_string(),
    })
}

pub(super) fn single<T: DeserializeOwned>(
    rpc: &jsonrpc::Client,
    method: &str,
    params: &RawValue,
) -> Result<T, Failure> {
    let request = rpc.build_request(method, Some(params));
    let id = request.id.clone();
    let response = rpc.send_request(request).map_err(transport_failure)?;
    if response.id != id {
        return Err(Failure::Transient(format!(
            "the daemon answered request {id} with the reply to {}",
            response.id
        )));
    }
    decode(method, response)
}

pub(super) fn batch<T: DeserializeOwned>(
    rpc: &jsonrpc::Client,
    method: &str,
    params: &[Box<RawValue>],
) -> Result<Vec<T>, Failure> {
    let requests: Vec<jsonrpc::Request> = params
        .iter()
        .map(|p| rpc.build_request(method, Some(p)))
        .collect();
    let responses = rpc.send_batch(&requests).map_err(transport_failure)?;
    let mut results = Vec::with_capacity(responses.len());
    // As ElectrumX: a warm-up or parse error anywhere retries the whole batch; otherwise
    // the first real error fails it.
    let mut fatal = None;
    for response in responses {
        let Some(response) = response else {
            return Err(Failure::Transient(
                "the daemon left a request of a batch unanswered".into(),
            ));
        };
        match decode(method, response) {
            Ok(value) => results.push(value),
            Err(Failure::Fatal(e)) => {
                fatal.get_or_insert(e);
            }
            Err(failure) => return Err(failure),
        }
    }
    match fatal {
        Some(e) => Err(Failure::Fatal(e)),
        None => Ok(results),
    }
}

pub(super) fn connect(
    url: &DaemonUrl,
    timeout: Duration,
) -> Result<(jsonrpc::Client, Arc<HttpTransport>), Failure> {
    let addr = url.host_port();
    let transport = match &url.auth {
        DaemonAuth::UserPass { user, password } => {
            HttpTransport::new(addr, Some((user, password)), timeout)
        }
        DaemonAuth::CookieFile(path) => {
            let cookie = std::fs::read_to_string(path).map_err(|e| {
                Failure::Transient(format!(
                    "cannot read the cookie file {} ({e}): is the daemon running? \
                     (or put user:password@ in DAEMON_URL, or set DAEMON_COOKIE_FILE)",
                    path.display()
                ))
            })?;
            // The cookie is `user:password`, sent as it is.
            let cookie = cookie.trim();
            let (user, password) = cookie.split_once(':').unwrap_or((cookie, ""));
            HttpTransport::new(addr, Some((user, password)), timeout)
        }
    };
    let transport = Arc::new(transport);
    let client = jsonrpc::Client::with_transport(SharedTransport(Arc::clone(&transport)));
    Ok((client, transport))
}

/// The transport as the JSON-RPC client holds it, shared with the block download.
struct SharedTransport(Arc<HttpTransport>);

impl jsonrpc::Transport for SharedTransport {
    fn send_request(&self, request: jsonrpc::Request) -> Result<jsonrpc::Response, jsonrpc::Error> {
        self.0.send_request(request)
    }

    fn send_batch(
        &self,
        requests: &[jsonrpc::Request],
    ) -> Result<Vec<jsonrpc::Response>, jsonrpc::Error> {
        self.0.send_batch(requests)
    }

    fn fmt_target(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.fmt_target(f)
    }
}

/// One reply of a `getblock` batch, its result borrowed from the reply's bytes.
#[derive(serde::Deserialize)]
struct BlockReply<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<jsonrpc::error::RpcError>,
    id: Value,
}

/// The serialized blocks `hashes` (`getblock <hash> 0`), as one batch, each handed to
/// `read`. The reply is parsed where it lies and each block's hex decoded from it into
/// the transport's kept buffer: a block is never copied as text nor decoded into fresh
/// memory (a catch-up downloads gigabytes). Failures sort as [`batch`]'s do; `read`
/// sees the blocks only once every reply is known good.
pub(super) fn blocks<R>(
    http: &HttpTransport,
    hashes: &[BlockHash],
    read: &mut dyn FnMut(&[u8]) -> R,
) -> Result<Vec<R>, Failure> {
    let mut body = String::with_capacity(hashes.len() * 110 + 2);
    body.push('[');
    for (id, hash) in hashes.iter().enumerate() {
        if id > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"getblock","params":["{hash}",0]}}"#
        ));
    }
    body.push(']');
    http.exchange_with(body.as_bytes(), |status, reply, scratch| {
        block_replies(status, reply, hashes.len(), scratch, read)
    })
    .map_err(|e| transport_failure(e.into()))?
}

/// The blocks of a `getblock` batch's reply of `count` requests (ids `0..count`), each
/// decoded into `scratch` and handed to `read`.
fn block_replies<R>(
    status: u16,
    reply: &[u8],
    count: usize,
    scratch: &mut Vec<u8>,
    read: &mut dyn FnMut(&[u8]) -> R,
) -> Result<Vec<R>, Failure> {
    if status == 401 {
        return Err(Failure::Unauthorized);
    }
    let replies: Vec<BlockReply> = serde_json::from_slice(reply).map_err(|e| {
        if status == 200 {
            Failure::Transient(format!("the daemon's reply is not JSON-RPC: {e}"))
        } else {
            Failure::Transient(format!(
                "the daemon refused the request with HTTP status {status}"
            ))
        }
    })?;
    let mut by_id: Vec<Option<&BlockReply>> = vec![None; count];
    for reply in &replies {
        if let Some(slot) = reply
            .id
            .as_u64()
            .and_then(|id| by_id.get_mut(usize::try_from(id).ok()?))
        {
            *slot = Some(reply);
        }
    }
    // As `batch`: a warm-up or parse error anywhere retries the whole batch; otherwise
    // the first real error fails it.
    let mut fatal = None;
    let mut results = Vec::with_capacity(count);
    for reply in &by_id {
        let Some(reply) = reply else {
            return Err(Failure::Transient(
                "the daemon left a request of a batch unanswered".into(),
            ));
        };
        if let Some(error) = &reply.error {
            match rpc_failure(error.clone()) {
                Failure::Fatal(e) => {
                    fatal.get_or_insert(e);
                }
                failure => return Err(failure),
            }
        }
    }
    if let Some(e) = fatal {
        return Err(Failure::Fatal(e));
    }
    for reply in by_id.into_iter().flatten() {
        let hex = reply
            .result
            .map(RawValue::get)
            .and_then(|text| text.strip_prefix('"')?.strip_suffix('"'));
        if !hex.is_some_and(|hex| decode_hex_into(hex.as_bytes(), scratch)) {
            return Err(Failure::Fatal(DaemonError::BadReply {
                method: "getblock".into(),
                detail: "a block is not hex".into(),
            }));
        }
        results.push(read(scratch));
    }
    Ok(results)
}
