//! `server.*` methods.

use super::RpcError;
use super::params::{Signature, bind, py_str};
use super::version::{ProtocolVersion, negotiate};
use serde_json::{Value, json};

/// What the `server.*` methods report, fixed at start-up from the configuration.
pub struct ServerInfo {
    pub coin: &'static crate::coins::Coin,
}

/// The software name and version clients see in `server.version`.
pub fn software_version() -> String {
    format!("ferrumx {}", env!("CARGO_PKG_VERSION"))
}

const VERSION_SIG: Signature = Signature {
    names: &["client_name", "protocol_version"],
    required: 0,
    extra_ok: true,
};

/// What a `server.version` request decided.
#[derive(Debug, PartialEq)]
pub enum VersionOutcome {
    /// Negotiated: remember the client name and protocol, send `reply`.
    Agreed {
        client_name: String,
        protocol: ProtocolVersion,
        reply: Value,
    },
    /// Send this error and keep the session.
    Error(RpcError),
    /// Send this error, then close the connection.
    ErrorAndDisconnect(RpcError),
}

/// `server.version(client_name='', protocol_version=None, *extra)`. `already_sent` is
/// whether this session negotiated before (only the first request counts).
pub fn version(params: &Value, already_sent: bool) -> VersionOutcome {
    let slots = match bind("server.version", params, &VERSION_SIG) {
        Ok(slots) => slots,
        Err(e) => return VersionOutcome::Error(e),
    };
    if already_sent {
        return VersionOutcome::Error(RpcError::bad_request("server.version already sent"));
    }
    let client_name: String = match slots[0] {
        None | Some(Value::Null) => String::new(),
        Some(name) => py_str(name).chars().take(100).collect(),
    };
    match negotiate(slots[1]) {
        Some(protocol) => {
            let reply = json!([software_version(), protocol.to_string()]);
            VersionOutcome::Agreed {
                client_name,
                protocol,
                reply,
            }
        }
        None => {
            let requested = slots[1].map_or_else(|| "None".to_string(), py_str);
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(format!(
                "unsupported protocol version: {requested}"
            )))
        }
    }
}

/// The `server.*` methods other than `server.version` (which changes the session's
/// state and is handled by the session); `None` for any other method.
pub fn dispatch(
    _ctx: &super::QueryContext,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    Some(match method {
        "server.ping" => ping(params),
        _ => return None,
    })
}

const NO_ARGS: Signature = Signature {
    names: &[],
    required: 0,
    extra_ok: false,
};

/// `server.ping`: no arguments, `null` result.
pub fn ping(params: &Value) -> Result<Value, RpcError> {
    bind("server.ping", params, &NO_ARGS)?;
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiates_once() {
        let VersionOutcome::Agreed {
            client_name,
            protocol,
            reply,
        } = version(&json!(["electrum 4.5", ["1.4", "1.6"]]), false)
        else {
            panic!("not agreed")
        };
        assert_eq!(client_name, "electrum 4.5");
        assert_eq!(protocol.to_string(), "1.6");
        assert_eq!(reply[1], "1.6");
        assert_eq!(
            version(&json!([]), true),
            VersionOutcome::Error(RpcError::bad_request("server.version already sent"))
        );
    }

    #[test]
    fn unsupported_versions_disconnect() {
        assert_eq!(
            version(&json!(["x", "1.2"]), false),
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(
                "unsupported protocol version: 1.2"
            ))
        );
        assert_eq!(
            version(&json!(["x", ["1.0", "1.1"]]), false),
            VersionOutcome::ErrorAndDisconnect(RpcError::bad_request(
                "unsupported protocol version: ['1.0', '1.1']"
            ))
        );
    }

    #[test]
    fn extra_arguments_are_ignored() {
        assert!(matches!(
            version(&json!(["x", "1.4", "extra"]), false),
            VersionOutcome::Agreed { .. }
        ));
        assert!(matches!(
            version(&json!({"client_name": "x", "foo": 1}), false),
            VersionOutcome::Agreed { .. }
        ));
    }
}
