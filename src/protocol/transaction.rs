//! `blockchain.transaction.*`: getting, proving and broadcasting transactions.

use super::{QueryContext, RpcError};
use serde_json::Value;

/// The methods of this family; `None` for any other method.
pub fn dispatch(
    _ctx: &QueryContext,
    method: &str,
    _params: &Value,
) -> Option<Result<Value, RpcError>> {
    match method {
        _ => None,
    }
}
