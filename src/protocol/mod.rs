//! The Electrum protocol as ElectrumX speaks it, independent of sockets and actors:
//! JSON-RPC messages ([`jsonrpc`]), argument binding and validation with ElectrumX's
//! messages ([`params`]), version negotiation ([`version`]) and the methods, one module
//! per family ([`server`], [`blockchain`]).

pub mod blockchain;
pub mod jsonrpc;
pub mod params;
pub mod server;
pub mod version;

use std::fmt;

/// A JSON-RPC error as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub const BAD_REQUEST: i64 = 1;
    pub const DAEMON_ERROR: i64 = 2;
    pub const HISTORY_TOO_LONG: i64 = 10001;
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_ARGS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;

    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::BAD_REQUEST, message)
    }

    pub fn invalid_args(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::INVALID_ARGS, message)
    }

    /// What a client gets when the server itself failed (the details go to the log).
    pub fn internal() -> RpcError {
        RpcError::new(Self::INTERNAL_ERROR, "internal server error")
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Formats an integer with thousands separators, as Python's `{:,d}` (ElectrumX uses it
/// in error messages).
pub fn with_commas(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs a query method (anything but `server.version`, which changes session state).
/// `None` if no such method exists for the negotiated protocol.
pub fn dispatch(
    ctx: &blockchain::QueryContext,
    method: &str,
    params: &serde_json::Value,
) -> Option<Result<serde_json::Value, RpcError>> {
    use blockchain as b;
    let result = match method {
        "server.ping" => server::ping(params),
        "blockchain.headers.subscribe" => b::headers_subscribe(ctx, params),
        "blockchain.block.header" => b::block_header(ctx, params),
        "blockchain.block.headers" => b::block_headers(ctx, params),
        "blockchain.scripthash.get_history" => b::get_history(ctx, params),
        "blockchain.scripthash.get_balance" => b::get_balance(ctx, params),
        "blockchain.scripthash.listunspent" => b::listunspent(ctx, params),
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_match_python() {
        assert_eq!(with_commas(0), "0");
        assert_eq!(with_commas(999), "999");
        assert_eq!(with_commas(1234), "1,234");
        assert_eq!(with_commas(1234567), "1,234,567");
        assert_eq!(with_commas(-1234), "-1,234");
    }
}
