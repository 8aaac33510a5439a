//! Address and host-name rules shared by the configuration, the session groups and peer
//! discovery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Python's `ipaddress` notion of private: addresses that are not globally reachable.
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private_v4(&v4))
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments 2001::/23
                || *v6 == Ipv6Addr::UNSPECIFIED
        }
    }
}

fn is_private_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_broadcast()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
}

/// aiorpcX's `is_valid_hostname`: labels of letters, digits, `-` and `_` (not starting
/// or ending with `-`), at most 63 characters each and 253 in all, the last not numeric.
pub fn is_valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    labels.iter().all(|label| {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| ok(c) || c == '-')
            && label.chars().next().is_some_and(ok)
            && label.chars().last().is_some_and(ok)
    })
}

/// Python's `is_global`: not private, and for IPv4 not the shared 100.64.0.0/10.
pub fn is_global(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(is_private(ip) || (a == 100 && (b & 0xc0) == 64))
        }
        IpAddr::V6(_) => !is_private(ip),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_aiorpcx() {
        assert!(is_valid_hostname("a-b.example.com."));
        assert!(is_valid_hostname("_srv.example.com"));
        assert!(!is_valid_hostname("-a.example.com"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname(&"a".repeat(64)));
        assert!(!is_valid_hostname("1.2.3.4"));
    }

    #[test]
    fn private_follows_python_ipaddress() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "192.0.2.7",
            "198.51.100.7",
            "203.0.113.7",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "100.64.0.1", "2a00:1450::1", "::ffff:8.8.8.8"] {
            assert!(!is_private(&public.parse().unwrap()), "{public}");
        }
    }
}
