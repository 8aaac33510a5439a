//! SOCKS5 as a client speaks it to reach a peer through Tor (or another proxy): the
//! greeting without authentication, CONNECT by name (so that the proxy resolves onion
//! names) or by address, and the proxy's replies checked. The bytes only: the Peers
//! actor does the reading and writing.

use std::net::IpAddr;

/// What a SOCKS proxy refused, or answered that is not SOCKS5.
#[derive(Debug, thiserror::Error)]
#[error("SOCKS proxy: {0}")]
pub struct SocksError(String);

/// The greeting offering no authentication.
pub const GREETING: [u8; 3] = [5, 1, 0];

/// Checks the proxy's answer to the greeting.
pub fn check_method(reply: [u8; 2]) -> Result<(), SocksError> {
    match reply {
        [5, 0] => Ok(()),
        [5, 0xff] => Err(SocksError("no acceptable authentication method".into())),
        other => Err(SocksError(format!("unexpected greeting reply {other:?}"))),
    }
}

/// CONNECT to `host:port`, the host sent as a name (resolved by the proxy, as
/// onion names must be) unless it is an IP address.
pub fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, SocksError> {
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len())
                .map_err(|_| SocksError(format!("host name too long: {host}")))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// The first bytes of the CONNECT reply (version, status, reserved, address
/// type, and the name length for a name); returns how many bytes remain (the bound
/// address and port), or the proxy's refusal.
pub fn reply_rest(head: [u8; 5]) -> Result<usize, SocksError> {
    let [version, status, _, kind, first] = head;
    if version != 5 {
        return Err(SocksError(format!(
            "not a SOCKS5 reply (version {version})"
        )));
    }
    if status != 0 {
        let reason = match status {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(SocksError(format!("{reason} (code {status})")));
    }
    // One byte of the address was read with the header.
    match kind {
        1 => Ok(4 - 1 + 2),
        4 => Ok(16 - 1 + 2),
        3 => Ok(usize::from(first) + 2),
        other => Err(SocksError(format!("unknown address type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks5_messages() {
        assert!(check_method([5, 0]).is_ok());
        assert!(check_method([5, 0xff]).is_err());
        assert!(check_method([4, 0]).is_err());
        assert_eq!(
            connect_request("ab.onion", 80).expect("request"),
            [&[5u8, 1, 0, 3, 8][..], b"ab.onion", &[0, 80]].concat()
        );
        assert_eq!(
            connect_request("1.2.3.4", 443).expect("request"),
            vec![5, 1, 0, 1, 1, 2, 3, 4, 1, 187]
        );
        assert!(connect_request(&"a".repeat(300), 1).is_err());
        assert_eq!(reply_rest([5, 0, 0, 1, 127]).expect("ok"), 5);
        assert_eq!(reply_rest([5, 0, 0, 3, 10]).expect("ok"), 12);
        assert!(reply_rest([5, 5, 0, 1, 0]).is_err());
    }
}
