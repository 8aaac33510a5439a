//! One JSON-RPC exchange with the daemon over bitcoincore-rpc's `jsonrpc` layer: the
//! connection with its credentials, a call or a batch, and what went wrong, sorted into
//! worth retrying, reconnect, or give up.

use super::transport::{HttpTransport, TransportError};
use super::{DaemonAuth, DaemonError, DaemonUrl, RPC_IN_WARMUP, RPC_PARSE_ERROR};
use bitcoincore_rpc::jsonrpc;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
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

pub(super) fn connect(url: &DaemonUrl, timeout: Duration) -> Result<jsonrpc::Client, Failure> {
    let addr = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
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
    Ok(jsonrpc::Client::with_transport(transport))
}
