//! Protocol version negotiation, as ElectrumX's `protocol_version`: the result is
//! `min(client_max, server_max)`, refused when below `max(client_min, server_min)`.

use serde_json::Value;
use std::fmt;

/// A protocol version as a tuple of integers; compared like Python tuples, so
/// `1.6 < 1.6.0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub Vec<u32>);

impl ProtocolVersion {
    pub fn new(parts: &[u32]) -> ProtocolVersion {
        ProtocolVersion(parts.to_vec())
    }

    /// Parses "1.4" style strings; anything else is `(0,)`, which nothing accepts.
    pub fn parse(value: &Value) -> ProtocolVersion {
        let invalid = ProtocolVersion(vec![0]);
        let Some(text) = value.as_str() else {
            return invalid;
        };
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.trim().parse().ok()).collect();
        parts.map_or(invalid, ProtocolVersion)
    }

    pub fn is_at_least(&self, parts: &[u32]) -> bool {
        self.0.as_slice() >= parts
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = self.0.clone();
        if parts.len() == 1 {
            parts.push(0);
        }
        let text: Vec<String> = parts.iter().map(u32::to_string).collect();
        f.write_str(&text.join("."))
    }
}

pub fn protocol_min() -> ProtocolVersion {
    ProtocolVersion::new(&[1, 4])
}

pub fn protocol_max() -> ProtocolVersion {
    ProtocolVersion::new(&[1, 7, 0])
}

/// Negotiates with what the client sent as `protocol_version` (absent, a string, or a
/// `[min, max]` pair). `None` means no common version.
pub fn negotiate(client: Option<&Value>) -> Option<ProtocolVersion> {
    let (server_min, server_max) = (protocol_min(), protocol_max());
    let (client_min, client_max) = match client {
        None | Some(Value::Null) => (server_min.clone(), server_min.clone()),
        Some(Value::Array(pair)) if pair.len() == 2 => (
            ProtocolVersion::parse(&pair[0]),
            ProtocolVersion::parse(&pair[1]),
        ),
        Some(other) => (ProtocolVersion::parse(other), ProtocolVersion::parse(other)),
    };
    let result = std::cmp::min(client_max, server_max);
    if result < std::cmp::max(client_min, server_min) || result == ProtocolVersion(vec![0]) {
        None
    } else {
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agreed(client: Value) -> Option<String> {
        negotiate(Some(&client)).map(|v| v.to_string())
    }

    #[test]
    fn negotiation_follows_electrumx() {
        assert_eq!(negotiate(None).map(|v| v.to_string()), Some("1.4".into()));
        assert_eq!(agreed(json!("1.4")), Some("1.4".into()));
        assert_eq!(agreed(json!("1.4.2")), Some("1.4.2".into()));
        assert_eq!(agreed(json!("1.6")), Some("1.6".into()));
        assert_eq!(agreed(json!(["1.4", "1.6"])), Some("1.6".into()));
        assert_eq!(agreed(json!("1.7")), Some("1.7".into()));
        assert_eq!(agreed(json!(["1.4", "1.7"])), Some("1.7".into()));
        // ElectrumX 2.0.0's maximum is (1, 7, 0): a range past it gets "1.7.0", and a
        // single version past it is refused.
        assert_eq!(agreed(json!(["1.4", "1.8"])), Some("1.7.0".into()));
        assert_eq!(agreed(json!(["1.4", "1.7.0"])), Some("1.7.0".into()));
        assert_eq!(agreed(json!("1.7.1")), None);
        assert_eq!(agreed(json!("1.8")), None);
        assert_eq!(agreed(json!(["1.1", "1.4.1"])), Some("1.4.1".into()));
        assert_eq!(agreed(json!("1.3")), None);
        assert_eq!(agreed(json!(["1.5", "1.3"])), None);
        assert_eq!(agreed(json!("junk")), None);
        assert_eq!(agreed(json!(1.4)), None);
        assert_eq!(agreed(json!(["1.4"])), None);
    }

    #[test]
    fn versions_compare_like_python_tuples() {
        assert!(ProtocolVersion::new(&[1, 6]) < ProtocolVersion::new(&[1, 6, 0]));
        assert!(ProtocolVersion::new(&[1, 4, 2]).is_at_least(&[1, 4, 2]));
        assert!(!ProtocolVersion::new(&[1, 4, 1]).is_at_least(&[1, 4, 2]));
    }
}
