//! The checks a peer's answers must pass during verification (ElectrumX's
//! `server/peers.py`), with its messages for a bad peer, and the documents discovery
//! reads: a peer's `server.peers.subscribe` list and the blacklist.

use super::peer::Peer;
use super::{BadPeer, MAX_CHAINSPLIT_LEN, MAX_TIP_HEIGHT_DIFF};
use crate::coins::PeerPorts;
use crate::hashes::Height;
use crate::python::{py_str, py_type, with_commas};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The blacklist document is not what BLACKLIST_URL must serve.
#[derive(Debug, thiserror::Error)]
#[error("the blacklist is not a JSON list of strings: {0}")]
pub struct BlacklistError(String);

fn bad_type(method: &str, value: &Value) -> BadPeer {
    BadPeer(format!(
        "{method} returned bad result type {}",
        py_type(value)
    ))
}

/// A peer's `server.version` answer: two strings, the first its software version.
pub fn check_version_reply(result: &Value) -> Result<String, BadPeer> {
    let Value::Array(items) = result else {
        return Err(bad_type("server.version", result));
    };
    match items.as_slice() {
        [Value::String(version), Value::String(_)] => Ok(version.clone()),
        _ => Err(BadPeer(format!(
            "bad server.version result: {}",
            py_str(result)
        ))),
    }
}

/// A peer's `blockchain.headers.subscribe` answer against our height: its height must be
/// within [`MAX_TIP_HEIGHT_DIFF`] of ours. Returns the height whose header both must
/// agree on (a little below the lower tip, so a short chain split is not a failure).
pub fn check_tip(our_height: Height, result: &Value) -> Result<Height, BadPeer> {
    let Value::Object(map) = result else {
        return Err(bad_type("blockchain.headers.subscribe", result));
    };
    let height = map.get("height").unwrap_or(&Value::Null);
    let their_height = match height {
        Value::Number(n) if !n.is_f64() => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| BadPeer(format!("invalid height {}", py_str(height))))?;
    let ours = i64::from(our_height.to_u32());
    if (ours - their_height).abs() > i64::from(MAX_TIP_HEIGHT_DIFF) {
        return Err(BadPeer(format!(
            "bad height {} (ours: {})",
            with_commas(i128::from(their_height)),
            with_commas(i128::from(ours))
        )));
    }
    // Within MAX_TIP_HEIGHT_DIFF of ours, so a valid height unless it is negative.
    let lower = Height::try_from(their_height).map_or(Height::GENESIS, |h| h.min(our_height));
    Ok(lower.saturating_sub(MAX_CHAINSPLIT_LEN))
}

/// A peer's `blockchain.block.header` answer must be our header at that height.
pub fn check_header(ours: &str, theirs: &Value) -> Result<(), BadPeer> {
    let Value::String(theirs) = theirs else {
        return Err(bad_type("blockchain.block.header", theirs));
    };
    if theirs != ours {
        return Err(BadPeer(format!(
            "our header {ours} and theirs {theirs} differ"
        )));
    }
    Ok(())
}

/// A peer's `server.features` answer: our genesis block, and the host we reached it by
/// among its hosts. Returns the features.
pub fn check_features<'a>(
    host: &str,
    genesis_hex: &str,
    result: &'a Value,
) -> Result<&'a Map<String, Value>, BadPeer> {
    let Value::Object(features) = result else {
        return Err(bad_type("server.features", result));
    };
    let empty = Value::Object(Map::new());
    let hosts = features.get("hosts").unwrap_or(&empty);
    let Value::Object(hosts) = hosts else {
        return Err(bad_type("server.features", hosts));
    };
    if features.get("genesis_hash").and_then(Value::as_str) != Some(genesis_hex) {
        return Err(BadPeer("incorrect genesis hash".into()));
    }
    let hosts: Vec<String> = hosts.keys().map(|h| h.to_lowercase()).collect();
    if !hosts.contains(&host.to_lowercase()) {
        let listed: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
        return Err(BadPeer(format!(
            "not listed in own hosts list [{}]",
            listed.join(", ")
        )));
    }
    Ok(features)
}

/// A peer's `server.peers.subscribe` answer, `[[ip, host, [details…]], …]`, as peers
/// learnt from `source`.
pub fn parse_peer_list(
    result: &Value,
    source: &str,
    defaults: PeerPorts,
) -> Result<Vec<Peer>, BadPeer> {
    let Value::Array(entries) = result else {
        return Err(bad_type("server.peers.subscribe", result));
    };
    let bad = || BadPeer("bad server.peers.subscribe response".into());
    entries
        .iter()
        .map(|entry| {
            let host = entry.get(1).and_then(Value::as_str).ok_or_else(bad)?;
            let details = entry.get(2).and_then(Value::as_array).ok_or_else(bad)?;
            let mut parts = vec![host];
            for detail in details {
                parts.push(detail.as_str().ok_or_else(bad)?);
            }
            Ok(Peer::from_real_name(&parts.join(" "), source, defaults))
        })
        .collect()
}

/// Reads a blacklist: a JSON list of host names (`*.domain` for a whole domain) and IP
/// addresses, compared lowercase.
pub fn parse_blacklist(text: &[u8]) -> Result<HashSet<String>, BlacklistError> {
    let value: Value = serde_json::from_slice(text).map_err(|e| BlacklistError(e.to_string()))?;
    let entries: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => return Err(BlacklistError(format!("got {}", py_type(other)))),
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            Value::String(s) => Ok(s.to_lowercase()),
            other => Err(BlacklistError(format!("entry {other}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::fixtures::*;

    #[test]
    fn answers_of_a_peer_are_checked() {
        assert_eq!(
            check_version_reply(&json!(["ElectrumX 1.16", "1.4"])),
            Ok("ElectrumX 1.16".into())
        );
        assert_eq!(
            check_version_reply(&json!({"a": 1})),
            Err(BadPeer(
                "server.version returned bad result type dict".into()
            ))
        );
        assert_eq!(
            check_version_reply(&json!(["x"])),
            Err(BadPeer("bad server.version result: ['x']".into()))
        );
        assert_eq!(
            check_tip(Height::new(100), &json!({"height": 103, "hex": ""})),
            Ok(Height::new(90))
        );
        assert_eq!(
            check_tip(Height::new(3), &json!({"height": 5})),
            Ok(Height::GENESIS)
        );
        assert_eq!(
            check_tip(Height::new(1000), &json!({"height": 2000})),
            Err(BadPeer("bad height 2,000 (ours: 1,000)".into()))
        );
        assert_eq!(
            check_tip(Height::new(10), &json!({"height": "10"})),
            Err(BadPeer("invalid height 10".into()))
        );
        assert_eq!(check_header("00ab", &json!("00ab")), Ok(()));
        assert!(check_header("00ab", &json!("00ac")).is_err());
        assert!(check_header("00ab", &json!(null)).is_err());
        let f = json!({"hosts": {"Peer.Example.com": {}}, "genesis_hash": "g"});
        assert!(check_features("peer.example.COM", "g", &f).is_ok());
        assert_eq!(
            check_features("peer.example.com", "other", &f),
            Err(BadPeer("incorrect genesis hash".into()))
        );
        assert_eq!(
            check_features("x.example.com", "g", &f),
            Err(BadPeer(
                "not listed in own hosts list ['peer.example.com']".into()
            ))
        );
        assert!(check_features("x", "g", &json!({"hosts": [], "genesis_hash": "g"})).is_err());
    }

    #[test]
    fn peer_lists_are_parsed_or_refused() {
        let list = json!([
            ["1.2.3.4", "a.example.com", ["v1.4", "s50002", "t50001"]],
            ["b.onion", "b.onion", ["v1.4", "t"]],
        ]);
        let peers = parse_peer_list(&list, "src.example.com", PORTS).expect("parsed");
        assert_eq!(peers.len(), 2);
        assert_eq!(
            (peers[0].ssl_port, peers[1].tcp_port),
            (Some(50002), Some(50001))
        );
        assert_eq!(peers[0].source, "src.example.com");
        for bad in [
            json!([["x"]]),
            json!([["a", "b", "v1.4"]]),
            json!([["a", "b", [1]]]),
            json!("x"),
        ] {
            assert!(parse_peer_list(&bad, "s", PORTS).is_err(), "{bad}");
        }
    }

    #[test]
    fn blacklists_are_json_lists_of_names() {
        let set =
            parse_blacklist(br#"["Bad.Example.com", "*.evil.net", "1.2.3.4"]"#).expect("list");
        assert!(set.contains("bad.example.com") && set.contains("*.evil.net"));
        assert!(parse_blacklist(b"{}").is_err());
        assert!(parse_blacklist(b"[1]").is_err());
        assert!(parse_blacklist(b"<html>").is_err());
    }
}
