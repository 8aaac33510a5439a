//! JSON-RPC messages as aiorpcX reads and writes them: one JSON value per line, a
//! request object or a batch (array) of them. Requests with no `id`, or a null one,
//! are notifications and get no reply.

use super::RpcError;
use serde_json::Value;

/// One request from a client.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub params: Value,
    /// `None` for a notification.
    pub id: Option<Value>,
}

/// One element of an incoming message: a request to run, or an error to answer at once.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Request(Request),
    Invalid { id: Value, error: RpcError },
}

/// An incoming message, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Single(Item),
    Batch(Vec<Item>),
}

/// Decodes one line. A line that is not JSON yields the parse error to send back.
pub fn parse_message(line: &[u8]) -> Result<Message, RpcError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| RpcError::new(RpcError::PARSE_ERROR, "messages must be encoded in UTF-8"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|_| RpcError::new(RpcError::PARSE_ERROR, "invalid JSON"))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(RpcError::new(RpcError::INVALID_REQUEST, "batch is empty"));
            }
            Ok(Message::Batch(items.into_iter().map(parse_item).collect()))
        }
        other => Ok(Message::Single(parse_item(other))),
    }
}

fn parse_item(value: Value) -> Item {
    let Value::Object(mut object) = value else {
        return Item::Invalid {
            id: Value::Null,
            error: RpcError::new(
                RpcError::INVALID_REQUEST,
                "request object must be a dictionary",
            ),
        };
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id),
        Some(bad) => {
            return Item::Invalid {
                id: Value::Null,
                error: RpcError::new(RpcError::INVALID_REQUEST, format!("invalid \"id\": {bad}")),
            };
        }
    };
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => {
            return Item::Invalid {
                id: id.unwrap_or(Value::Null),
                error: RpcError::new(RpcError::METHOD_NOT_FOUND, "method must be a string"),
            };
        }
    };
    let params = object.remove("params").unwrap_or(Value::Null);
    Item::Request(Request { method, params, id })
}

/// A success response, serialized.
pub fn result_response(id: &Value, result: &Value) -> String {
    format!("{{\"jsonrpc\":\"2.0\",\"result\":{result},\"id\":{id}}}")
}

/// An error response, serialized.
pub fn error_response(id: &Value, error: &RpcError) -> String {
    let message = Value::String(error.message.clone());
    format!(
        "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":{},\"message\":{message}}},\"id\":{id}}}",
        error.code
    )
}

/// A server-to-client notification, serialized.
pub fn notification(method: &str, params: &Value) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":{},\"params\":{params}}}",
        Value::String(method.into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_batches_and_notifications() {
        let msg = parse_message(br#"{"id":1,"method":"server.ping"}"#).unwrap();
        assert_eq!(
            msg,
            Message::Single(Item::Request(Request {
                method: "server.ping".into(),
                params: Value::Null,
                id: Some(json!(1))
            }))
        );
        let Message::Batch(items) =
            parse_message(br#"[{"id":"a","method":"x","params":[1]},{"method":"y"},5]"#).unwrap()
        else {
            panic!("not a batch")
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Item::Request(Request { id: None, .. })));
        assert!(
            matches!(&items[2], Item::Invalid { error, .. } if error.code == RpcError::INVALID_REQUEST)
        );
    }

    #[test]
    fn malformed_messages_get_the_right_codes() {
        assert_eq!(
            parse_message(b"{nope").unwrap_err().code,
            RpcError::PARSE_ERROR
        );
        assert_eq!(
            parse_message(b"\xff\xfe").unwrap_err().code,
            RpcError::PARSE_ERROR
        );
        assert_eq!(parse_message(b"[]").unwrap_err().message, "batch is empty");
        let Message::Single(Item::Invalid { error, id }) =
            parse_message(br#"{"id":3,"method":7}"#).unwrap()
        else {
            panic!("accepted a numeric method")
        };
        assert_eq!((error.code, id), (RpcError::METHOD_NOT_FOUND, json!(3)));
        let Message::Single(Item::Invalid { error, .. }) =
            parse_message(br#"{"id":[1],"method":"x"}"#).unwrap()
        else {
            panic!("accepted a list id")
        };
        assert_eq!(error.code, RpcError::INVALID_REQUEST);
    }

    #[test]
    fn responses_are_compact_json() {
        let ok = result_response(&json!(7), &json!({"a": [1, 2]}));
        assert_eq!(ok, r#"{"jsonrpc":"2.0","result":{"a":[1,2]},"id":7}"#);
        let err = error_response(&json!("x"), &RpcError::bad_request("say \"hi\""));
        let parsed: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(parsed["error"]["message"], "say \"hi\"");
        assert_eq!(parsed["error"]["code"], 1);
    }
}
