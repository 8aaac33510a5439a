//! Binding JSON-RPC arguments to a method's parameters and validating them, with the
//! messages ElectrumX (aiorpcX) gives: clients and scripts match on them.

use super::RpcError;
use crate::hashes::{Height, ScriptHash, from_hex};
use serde_json::Value;

use crate::python::{PyInt, py_int_of};
/// The Python-compatibility helpers the methods use, where they have always been found.
pub use crate::python::{py_str, py_str_repr, py_truthy};

/// A method's signature: parameter names, how many are required, and whether extra
/// arguments are accepted and ignored (`server.version` takes `*args, **kwargs`).
pub struct Signature {
    pub names: &'static [&'static str],
    pub required: usize,
    pub extra_ok: bool,
}

/// Binds positional (list) or named (object) arguments to `sig`; absent params mean no
/// arguments. Returns one slot per parameter name.
pub fn bind<'a>(
    method: &str,
    params: &'a Value,
    sig: &Signature,
) -> Result<Vec<Option<&'a Value>>, RpcError> {
    let mut slots: Vec<Option<&Value>> = vec![None; sig.names.len()];
    match params {
        Value::Array(args) => {
            if args.len() < sig.required {
                return Err(too_few(method, args.len(), sig.required));
            }
            if args.len() > sig.names.len() && !sig.extra_ok {
                let s = if args.len() == 1 { "" } else { "s" };
                return Err(RpcError::invalid_args(format!(
                    "{} argument{s} passed to method {method} taking at most {}",
                    args.len(),
                    sig.names.len()
                )));
            }
            for (slot, arg) in slots.iter_mut().zip(args) {
                *slot = Some(arg);
            }
        }
        Value::Object(args) => {
            let mut missing: Vec<String> = sig.names[..sig.required]
                .iter()
                .filter(|name| !args.contains_key(**name))
                .map(|name| format!("\"{name}\""))
                .collect();
            if !missing.is_empty() {
                missing.sort();
                let s = if missing.len() == 1 { "" } else { "s" };
                return Err(RpcError::invalid_args(format!(
                    "method \"{method}\" requires parameter{s} {}",
                    missing.join(", ")
                )));
            }
            if !sig.extra_ok {
                let mut excess: Vec<String> = args
                    .keys()
                    .filter(|key| !sig.names.contains(&key.as_str()))
                    .map(|key| format!("\"{key}\""))
                    .collect();
                if !excess.is_empty() {
                    excess.sort();
                    let s = if excess.len() == 1 { "" } else { "s" };
                    return Err(RpcError::invalid_args(format!(
                        "method \"{method}\" does not take parameter{s} {}",
                        excess.join(", ")
                    )));
                }
            }
            for (slot, name) in slots.iter_mut().zip(sig.names) {
                *slot = args.get(*name);
            }
        }
        other => {
            return Err(RpcError::invalid_args(format!(
                "invalid request arguments: {}",
                py_str(other)
            )));
        }
    }
    Ok(slots)
}

fn too_few(method: &str, given: usize, required: usize) -> RpcError {
    let s = if given == 1 { "" } else { "s" };
    RpcError::invalid_args(format!(
        "{given} argument{s} passed to method \"{method}\" but it requires {required}"
    ))
}

/// A non-negative integer argument as Python's `int()` made it: its value, saturated at
/// `u64::MAX` (past that every height, count or position is out of range alike), and its
/// exact digits, which ElectrumX's messages print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Natural {
    pub value: u64,
    exact: PyInt,
}

impl Natural {
    /// The value, unless it is past `u64::MAX`.
    pub fn exact(&self) -> Option<u64> {
        self.exact.digits.parse().ok()
    }

    /// Python's `{:,d}` of the exact value.
    pub fn with_commas(&self) -> String {
        self.exact.with_commas()
    }
}

impl From<u64> for Natural {
    fn from(value: u64) -> Natural {
        Natural {
            value,
            exact: PyInt::new(false, &value.to_string()),
        }
    }
}

/// ElectrumX's `non_negative_integer`: whatever Python's `int()` accepts (integers of
/// any size, booleans, truncated floats, decimal strings), if not negative.
pub fn non_negative_integer(value: &Value) -> Result<Natural, RpcError> {
    match py_int_of(value) {
        Some(int) if !int.negative => Ok(Natural {
            value: int.digits.parse().unwrap_or(u64::MAX),
            exact: int,
        }),
        // ElectrumX names the integer it made of the value: int(-1.5) is -1.
        Some(int) => Err(RpcError::bad_request(format!(
            "{int} should be a non-negative integer"
        ))),
        None => Err(not_non_negative(value)),
    }
}

fn not_non_negative(value: &Value) -> RpcError {
    RpcError::bad_request(format!(
        "{} should be a non-negative integer",
        py_str(value)
    ))
}

/// ElectrumX's `scripthash_to_hashX`: 64 hex digits.
pub fn script_hash(value: &Value) -> Result<ScriptHash, RpcError> {
    value
        .as_str()
        .filter(|s| s.len() == 64)
        .and_then(ScriptHash::from_hex)
        .ok_or_else(|| {
            RpcError::bad_request(format!("{} is not a valid script hash", py_str(value)))
        })
}

/// ElectrumX's `assert_tx_hash`: a 64-digit hex transaction hash (display order).
pub fn tx_hash(value: &Value) -> Result<bitcoin::Txid, RpcError> {
    value
        .as_str()
        .filter(|s| s.len() == 64)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RpcError::bad_request(format!("{} should be a transaction hash", py_str(value)))
        })
}

/// ElectrumX's `assert_hex_str` followed by decoding.
pub fn hex_bytes(value: &Value) -> Result<Vec<u8>, RpcError> {
    value
        .as_str()
        .and_then(from_hex)
        .ok_or_else(|| RpcError::bad_request(format!("{} should be a hex string", py_str(value))))
}

/// A boolean flag (`verbose`, `merkle`): must be a JSON boolean.
pub fn boolean(value: &Value, name: &str) -> Result<bool, RpcError> {
    value
        .as_bool()
        .ok_or_else(|| RpcError::bad_request(format!("\"{name}\" must be a boolean")))
}

/// ElectrumX's `value not in (True, False)` checks (`verbose`, `merkle`): Python's `0` and
/// `1` equal `False` and `True`, so numbers 0 and 1 pass as well as JSON booleans.
pub fn bool_like(value: &Value, name: &str) -> Result<bool, RpcError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        _ => Err(RpcError::bad_request(format!(
            "\"{name}\" must be a boolean"
        ))),
    }
}

/// ElectrumX's `assert_list_or_tuple`: a JSON array.
pub fn list(value: &Value) -> Result<&Vec<Value>, RpcError> {
    value
        .as_array()
        .ok_or_else(|| RpcError::bad_request(format!("{} should be a list", py_str(value))))
}

// Fulcrum's extras read integers and heights its own way.

/// An integer as Fulcrum reads one (Qt's `toInt`): a JSON integer or a decimal string.
/// Fulcrum also takes booleans (as 0 and 1) and rounds fractions; ferrumx refuses both,
/// which are no height or position.
pub fn fulcrum_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(53))
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A height as Fulcrum takes one: 0 to 2³¹−1 (Qt's `int`).
pub fn fulcrum_height(value: &Value) -> Option<Height> {
    fulcrum_integer(value)
        .filter(|h| *h <= i64::from(i32::MAX))
        .and_then(|h| Height::try_from(h).ok())
}

/// `get_history`'s optional `from_height` (first height included, default 0) and
/// `to_height` (first height excluded; -1, the default, means no end and adds the
/// mempool), as Fulcrum checks them.
pub fn history_range(
    from: Option<&Value>,
    to: Option<&Value>,
) -> Result<(Height, Option<Height>), RpcError> {
    let from = match from {
        None => Height::GENESIS,
        Some(value) => fulcrum_height(value)
            .ok_or_else(|| RpcError::invalid_args("Bad from_height argument"))?,
    };
    let to = match to.map(|value| (fulcrum_integer(value), fulcrum_height(value))) {
        None | Some((Some(-1), _)) => None,
        Some((_, Some(to))) if to >= from => Some(to),
        Some(_) => return Err(RpcError::invalid_args("Bad to_height argument")),
    };
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SIG: Signature = Signature {
        names: &["height", "cp_height"],
        required: 1,
        extra_ok: false,
    };

    #[test]
    fn arity_errors_use_aiorpcx_wording() {
        let err = bind("blockchain.block.header", &json!([]), &SIG).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_ARGS);
        assert_eq!(
            err.message,
            "0 arguments passed to method \"blockchain.block.header\" but it requires 1"
        );
        let err = bind("m", &json!([1, 2, 3]), &SIG).unwrap_err();
        assert_eq!(
            err.message,
            "3 arguments passed to method m taking at most 2"
        );
        // (sic) aiorpcX quotes the method name in every arity message but that one.
        let err = bind("m", &json!(null), &SIG).unwrap_err();
        assert_eq!(err.message, "invalid request arguments: None");
        let err = bind("m", &json!({"cp_height": 1}), &SIG).unwrap_err();
        assert_eq!(err.message, "method \"m\" requires parameter \"height\"");
        let err = bind("m", &json!({"height": 1, "x": 2}), &SIG).unwrap_err();
        assert_eq!(err.message, "method \"m\" does not take parameter \"x\"");
        assert_eq!(
            bind("m", &json!({"height": 1}), &SIG).unwrap(),
            vec![Some(&json!(1)), None]
        );
    }

    #[test]
    fn non_negative_integer_accepts_what_python_int_does() {
        let value = |v: Value| non_negative_integer(&v).unwrap().value;
        assert_eq!(value(json!(5)), 5);
        assert_eq!(value(json!("5")), 5);
        assert_eq!(value(json!(" 7 ")), 7);
        assert_eq!(value(json!(5.9)), 5);
        assert_eq!(value(json!(true)), 1);
        assert_eq!(value(json!(-0.5)), 0);
        let err = non_negative_integer(&json!(-1)).unwrap_err();
        assert_eq!(err.message, "-1 should be a non-negative integer");
        // Python's message names int(value), not the value.
        for (negative, named) in [
            (json!(-1.5), "-1"),
            (json!(" -5 "), "-5"),
            (json!(-1e19), "-10000000000000000000"),
        ] {
            assert_eq!(
                non_negative_integer(&negative).unwrap_err().message,
                format!("{named} should be a non-negative integer")
            );
        }
        // Past u64: accepted (the caller finds it out of range), named in full.
        let big: Value = serde_json::from_str("18446744073709551616").unwrap();
        let big = non_negative_integer(&big).unwrap();
        assert_eq!((big.value, big.exact()), (u64::MAX, None));
        assert_eq!(big.with_commas(), "18,446,744,073,709,551,616");
        assert_eq!(
            non_negative_integer(&json!(u64::MAX)).unwrap().exact(),
            Some(u64::MAX)
        );
        assert_eq!(
            non_negative_integer(&json!(null)).unwrap_err().message,
            "None should be a non-negative integer"
        );
        assert_eq!(
            non_negative_integer(&json!("x")).unwrap_err().message,
            "x should be a non-negative integer"
        );
    }

    #[test]
    fn python_booleans_and_truthiness() {
        assert_eq!(bool_like(&json!(true), "verbose"), Ok(true));
        assert_eq!(bool_like(&json!(0), "verbose"), Ok(false));
        assert_eq!(bool_like(&json!(1.0), "merkle"), Ok(true));
        assert_eq!(
            bool_like(&json!("true"), "merkle").unwrap_err().message,
            "\"merkle\" must be a boolean"
        );
        assert_eq!(
            bool_like(&json!(2), "verbose").unwrap_err().message,
            "\"verbose\" must be a boolean"
        );
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!py_truthy(&falsy), "{falsy}");
        }
        for truthy in [
            json!(true),
            json!(2),
            json!("x"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(py_truthy(&truthy), "{truthy}");
        }
    }

    #[test]
    fn lists_are_required_with_python_wording() {
        assert_eq!(list(&json!(["a"])).unwrap().len(), 1);
        assert_eq!(
            list(&json!("ab")).unwrap_err().message,
            "ab should be a list"
        );
        assert_eq!(
            list(&json!({"a": 1})).unwrap_err().message,
            "{'a': 1} should be a list"
        );
    }

    #[test]
    fn string_repr_matches_python() {
        assert_eq!(py_str_repr("plain"), "'plain'");
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("both ' and \""), "'both \\' and \"'");
        assert_eq!(py_str_repr("a\\b\nc\td\r\u{1}"), "'a\\\\b\\nc\\td\\r\\x01'");
        assert_eq!(
            py_str_repr("caf\u{e9} \u{a0}\u{200b}"),
            "'caf\u{e9} \\xa0\\u200b'"
        );
    }

    #[test]
    fn script_hash_errors_quote_the_value_as_python_would() {
        assert_eq!(
            script_hash(&json!("zz")).unwrap_err().message,
            "zz is not a valid script hash"
        );
        assert_eq!(
            script_hash(&json!([1, "a"])).unwrap_err().message,
            "[1, 'a'] is not a valid script hash"
        );
        assert!(
            script_hash(&json!(
                "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
            ))
            .is_ok()
        );
    }
}
