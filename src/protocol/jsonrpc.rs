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
    /// A response (no `method`): ignored.
    Response,
    /// Already answered by the session (a `server.version` inside the first batch).
    Answered {
        id: Value,
        result: Value,
    },
    Invalid {
        id: Value,
        error: RpcError,
    },
}

/// An incoming message, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Single(Item),
    Batch(Vec<Item>),
}

/// The JSON-RPC flavour of a connection, detected from its first message as aiorpcX
/// does: `"jsonrpc": "2.0"` is strict 2.0, `"1.0"` (or a message with both `result` and
/// `error`) is 1.0, anything else is the loose dialect that accepts both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Loose,
    V2,
    V1,
}

impl Dialect {
    fn of_payload(payload: &Value) -> Dialect {
        let Value::Object(object) = payload else {
            return Dialect::Loose;
        };
        match object.get("jsonrpc").and_then(Value::as_str) {
            Some("2.0") => Dialect::V2,
            Some("1.0") => Dialect::V1,
            _ if object.contains_key("result") && object.contains_key("error") => Dialect::V1,
            _ => Dialect::Loose,
        }
    }

    fn detect(value: &Value) -> Dialect {
        match value {
            Value::Array(items) => {
                let kinds: Vec<Dialect> = items.iter().map(Dialect::of_payload).collect();
                if kinds.iter().all(|k| Some(k) == kinds.first()) {
                    kinds.first().copied().unwrap_or(Dialect::Loose)
                } else if kinds.contains(&Dialect::V2) {
                    Dialect::V2
                } else if kinds.contains(&Dialect::V1) {
                    Dialect::V1
                } else {
                    Dialect::Loose
                }
            }
            other => Dialect::of_payload(other),
        }
    }
}

/// Decodes one line. A line that is not JSON yields the parse error to send back.
/// `dialect` is detected on the connection's first message and then kept.
pub fn parse_message(line: &[u8], dialect: &mut Option<Dialect>) -> Result<Message, RpcError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| RpcError::new(RpcError::PARSE_ERROR, "messages must be encoded in UTF-8"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|_| RpcError::new(RpcError::PARSE_ERROR, "invalid JSON"))?;
    let dialect = *dialect.get_or_insert_with(|| Dialect::detect(&value));
    match value {
        Value::Array(items) => {
            if dialect == Dialect::V1 {
                return Err(RpcError::new(
                    RpcError::INVALID_REQUEST,
                    "JSONRPCv1 does not support batches",
                ));
            }
            if items.is_empty() {
                return Err(RpcError::new(RpcError::INVALID_REQUEST, "batch is empty"));
            }
            Ok(Message::Batch(
                items
                    .into_iter()
                    .map(|item| parse_item(item, dialect))
                    .collect(),
            ))
        }
        other => Ok(Message::Single(parse_item(other, dialect))),
    }
}

fn parse_item(value: Value, dialect: Dialect) -> Item {
    let Value::Object(mut object) = value else {
        return Item::Invalid {
            id: Value::Null,
            error: RpcError::new(
                RpcError::INVALID_REQUEST,
                "request object must be a dictionary",
            ),
        };
    };
    if !object.contains_key("method") {
        // A message without "method" is a response: clients have no business sending
        // one, and aiorpcX drops it without a word.
        return Item::Response;
    }
    let id = match (object.remove("id"), dialect) {
        (None, Dialect::V1) => {
            return Item::Invalid {
                id: Value::Null,
                error: RpcError::new(RpcError::INVALID_REQUEST, "request has no \"id\""),
            };
        }
        // 1.0 puts no constraint on the id's type; null still means a notification.
        (Some(id), Dialect::V1) => Some(id).filter(|id| !id.is_null()),
        (None | Some(Value::Null), _) => None,
        // aiorpcX accepts any Python number, and booleans are numbers in Python.
        (Some(id @ (Value::String(_) | Value::Number(_) | Value::Bool(_))), _) => Some(id),
        (Some(bad), _) => {
            return Item::Invalid {
                id: Value::Null,
                error: RpcError::new(
                    RpcError::INVALID_REQUEST,
                    format!("invalid \"id\": {}", crate::protocol::params::py_str(&bad)),
                ),
            };
        }
    };
    if dialect == Dialect::V2 && object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Item::Invalid {
            id: id.unwrap_or(Value::Null),
            error: RpcError::new(RpcError::INVALID_REQUEST, "\"jsonrpc\" is not \"2.0\""),
        };
    }
    // Absent params are no arguments; anything but a list (or, except in 1.0, an
    // object) is refused before the method is even looked at, as aiorpcX does.
    let params = object.remove("params").unwrap_or(Value::Array(Vec::new()));
    let params_ok = match dialect {
        Dialect::V1 => params.is_array(),
        _ => params.is_array() || params.is_object(),
    };
    if !params_ok {
        return Item::Invalid {
            id: id.unwrap_or(Value::Null),
            error: RpcError::invalid_args(format!(
                "invalid request arguments: {}",
                crate::protocol::params::py_str(&params)
            )),
        };
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => {
            return Item::Invalid {
                id: id.unwrap_or(Value::Null),
                error: RpcError::new(RpcError::METHOD_NOT_FOUND, "method must be a string"),
            };
        }
    };
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

/// A response in `dialect`: 1.0 carries both `result` and `error`, one of them null.
pub fn response(dialect: Option<Dialect>, id: &Value, result: &Result<Value, RpcError>) -> String {
    match (dialect, result) {
        (Some(Dialect::V1), Ok(value)) => {
            format!("{{\"result\":{value},\"error\":null,\"id\":{id}}}")
        }
        (Some(Dialect::V1), Err(error)) => {
            let message = Value::String(error.message.clone());
            format!(
                "{{\"result\":null,\"error\":{{\"code\":{},\"message\":{message}}},\"id\":{id}}}",
                error.code
            )
        }
        (_, Ok(value)) => result_response(id, value),
        (_, Err(error)) => error_response(id, error),
    }
}

/// A server-to-client notification, serialized.
pub fn notification(method: &str, params: &Value) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":{},\"params\":{params}}}",
        Value::String(method.into())
    )
}

/// How many bytes `value` takes as compact JSON, counted without building the text.
pub fn encoded_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_is_the_length_of_the_text() {
        for value in [
            json!(null),
            json!([1, "two", {"three": 3.5, "é\"\n": [true, false]}]),
            json!("x".repeat(1000)),
        ] {
            assert_eq!(
                encoded_len(&value),
                serde_json::to_string(&value).unwrap().len()
            );
        }
    }
    use serde_json::json;

    #[test]
    fn requests_batches_and_notifications() {
        let msg = parse_message(br#"{"id":1,"method":"server.ping"}"#, &mut None).unwrap();
        assert_eq!(
            msg,
            Message::Single(Item::Request(Request {
                method: "server.ping".into(),
                params: json!([]),
                id: Some(json!(1))
            }))
        );
        let Message::Batch(items) = parse_message(
            br#"[{"id":"a","method":"x","params":[1]},{"method":"y"},5]"#,
            &mut None,
        )
        .unwrap() else {
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
            parse_message(b"{nope", &mut None).unwrap_err().code,
            RpcError::PARSE_ERROR
        );
        assert_eq!(
            parse_message(b"\xff\xfe", &mut None).unwrap_err().code,
            RpcError::PARSE_ERROR
        );
        assert_eq!(
            parse_message(b"[]", &mut None).unwrap_err().message,
            "batch is empty"
        );
        let Message::Single(Item::Invalid { error, id }) =
            parse_message(br#"{"id":3,"method":7}"#, &mut None).unwrap()
        else {
            panic!("accepted a numeric method")
        };
        assert_eq!((error.code, id), (RpcError::METHOD_NOT_FOUND, json!(3)));
        let Message::Single(Item::Invalid { error, .. }) =
            parse_message(br#"{"id":[1],"method":"x"}"#, &mut None).unwrap()
        else {
            panic!("accepted a list id")
        };
        assert_eq!(error.code, RpcError::INVALID_REQUEST);
    }

    #[test]
    fn the_first_message_fixes_the_dialect() {
        let mut dialect = None;
        parse_message(
            br#"{"jsonrpc":"2.0","id":1,"method":"server.ping"}"#,
            &mut dialect,
        )
        .unwrap();
        assert_eq!(dialect, Some(Dialect::V2));
        let Message::Single(Item::Invalid { error, id }) =
            parse_message(br#"{"id":2,"method":"server.ping"}"#, &mut dialect).unwrap()
        else {
            panic!("strict 2.0 accepted a message without \"jsonrpc\"")
        };
        assert_eq!(
            (error.message.as_str(), id),
            ("\"jsonrpc\" is not \"2.0\"", json!(2))
        );

        let mut loose = None;
        parse_message(br#"{"id":1,"method":"server.ping"}"#, &mut loose).unwrap();
        assert_eq!(loose, Some(Dialect::Loose));
        let Message::Single(Item::Invalid { error, id }) =
            parse_message(br#"{"id":2,"method":7,"params":null}"#, &mut loose).unwrap()
        else {
            panic!("null params accepted")
        };
        // Params are checked before the method, as aiorpcX does.
        assert_eq!(
            (error.message.as_str(), id),
            ("invalid request arguments: None", json!(2))
        );
        assert_eq!(
            parse_message(br#"{"id":3,"result":1}"#, &mut loose).unwrap(),
            Message::Single(Item::Response)
        );
        assert!(matches!(
            parse_message(br#"{"id":true,"method":"x"}"#, &mut loose).unwrap(),
            Message::Single(Item::Request(Request {
                id: Some(Value::Bool(true)),
                ..
            }))
        ));

        let mut v1 = None;
        parse_message(
            br#"{"jsonrpc":"1.0","id":1,"method":"x","params":[]}"#,
            &mut v1,
        )
        .unwrap();
        assert_eq!(v1, Some(Dialect::V1));
        let err = parse_message(br#"[{"id":1,"method":"x"}]"#, &mut v1).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_REQUEST);
        assert!(matches!(
            parse_message(br#"{"method":"x","params":[]}"#, &mut v1).unwrap(),
            Message::Single(Item::Invalid { .. })
        ));
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
