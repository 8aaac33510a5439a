//! How one setting's text becomes its value: ElectrumX's rules for booleans, integers
//! (as Python's `int()` reads them), fractions, subnet lists, ZMQ endpoints and log levels.

use super::ConfigError;
use crate::python::py_int;

/// Largest value of an unbounded integer setting (fits every target type on 64 bits).
pub(super) const MAX_I: u64 = i64::MAX as u64;

/// A comma-separated list of subnets; empty items are skipped.
pub(super) fn subnets(
    var: &'static str,
    value: Option<String>,
) -> Result<Vec<crate::net::Subnet>, ConfigError> {
    value
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|item| !item.trim().is_empty())
        .map(|item| crate::net::Subnet::parse(item).map_err(|e| invalid(var, item, &e.to_string())))
        .collect()
}

pub(crate) fn invalid(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// ElectrumX's boolean rule: set and non-empty after trimming means true, even "0".
pub(super) fn boolean(value: Option<String>, default: bool) -> bool {
    match value {
        None => default,
        Some(v) => !v.trim().is_empty(),
    }
}

pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// DAEMON_ZMQ_HASHBLOCK / DAEMON_ZMQ_HASHTX: unset or empty for none.
pub(super) fn zmq_endpoint(
    topic: crate::zmq::Topic,
    value: Option<String>,
) -> Result<Option<crate::zmq::Endpoint>, ConfigError> {
    non_empty(value)
        .map(|value| {
            crate::zmq::Endpoint::parse(&value)
                .map_err(|reason| invalid(topic.variable(), &value, &reason))
        })
        .transpose()
}

/// A number from 0 to 1.
pub(super) fn fraction(
    var: &'static str,
    value: Option<String>,
    default: f64,
) -> Result<f64, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<f64>() {
        Ok(number) if (0.0..=1.0).contains(&number) => Ok(number),
        _ => Err(invalid(var, &text, "accepted: a number from 0 to 1")),
    }
}

/// An integer setting: decimal as Python's `int()` reads it (surrounding spaces, a sign,
/// `_` between digits), then checked against `min..=max`.
pub(super) fn integer(
    var: &'static str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let accepted = if max >= u64::from(u32::MAX) {
        format!("accepted: a whole number, at least {min}")
    } else {
        format!("accepted: a whole number from {min} to {max}")
    };
    match py_int(&text) {
        Some(n) if n >= 0 && (n as u64) >= min && (n as u64) <= max => Ok(n as u64),
        _ => Err(invalid(var, &text, &accepted)),
    }
}

pub(super) fn parse_log_level(text: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "critical" | "fatal" | "error" => Error,
        "warning" | "warn" => Warn,
        "info" => Info,
        "debug" => Debug,
        "trace" | "notset" => Trace,
        "off" => Off,
        _ => return None,
    })
}
