//! The Electrum protocol as ElectrumX speaks it, independent of sockets and actors:
//! JSON-RPC messages ([`jsonrpc`]), argument binding and validation with ElectrumX's
//! messages ([`params`]), version negotiation ([`version`]), the table of every method
//! with its parameters, handler and price ([`methods`]), what the methods share
//! ([`context`]: the query context, the caches, the daemon helpers), and the methods,
//! one module per family: [`server`], [`blockchain`] (headers and scripts),
//! [`outpoint`] (protocol 1.7's outpoint status), [`transaction`], [`fees`] (fee
//! estimates and `mempool.*`), and Fulcrum's extras ([`extras`]).

pub mod blockchain;
pub mod checkpoints;
pub mod context;
pub mod extras;
pub mod fees;
pub mod jsonrpc;
pub mod methods;
pub mod outpoint;
pub mod params;
pub mod server;
pub mod transaction;
pub mod version;
pub mod work;

use std::fmt;

/// `{:,d}`, where the methods have always found it.
pub use crate::python::with_commas;

/// A JSON-RPC error as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub const BAD_REQUEST: i64 = 1;
    pub const DAEMON_ERROR: i64 = 2;
    /// Fulcrum's `Code_App_LimitExceeded` (its subscription and batch limits).
    pub const LIMIT_EXCEEDED: i64 = 4;
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

    /// An answer longer than MAX_SEND. (sic) ElectrumX's message has no closing
    /// parenthesis.
    pub fn response_too_large(max_send: usize) -> RpcError {
        RpcError::new(
            Self::INVALID_REQUEST,
            format!(
                "response too large (over {} bytes",
                with_commas(max_send as i128)
            ),
        )
    }

    /// A subscription past MAX_SESSION_SUBSCRIPTIONS: Fulcrum's code and its words,
    /// with the limit.
    pub fn subscription_limit(max: usize) -> RpcError {
        RpcError::new(
            Self::LIMIT_EXCEEDED,
            format!(
                "Subscription limit reached: at most {} per session \
                 (MAX_SESSION_SUBSCRIPTIONS)",
                with_commas(max as i128)
            ),
        )
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
