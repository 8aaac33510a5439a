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

/// The network an address is counted in for per-subnet connection limits: its IPv4 /24
/// or IPv6 /64 (an IPv4-mapped address counts as IPv4), as the network's first address.
pub fn connection_subnet(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(v4.to_bits() & !0xff)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

/// A network, `address/prefix` or a single address: who may call a restricted method
/// (DAEMON_PASSTHROUGH_SUBNETS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

/// A subnet that does not parse, and why.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a subnet: {why} (examples: 10.10.2.0/24, 127.0.0.1, fd00::/8)")]
pub struct BadSubnet {
    pub text: String,
    pub why: &'static str,
}

impl Subnet {
    /// Parses `address/prefix` or `address` (the address alone: all its bits).
    pub fn parse(text: &str) -> Result<Subnet, BadSubnet> {
        let bad = |why| BadSubnet {
            text: text.to_string(),
            why,
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad("not an IP address"))?;
        let address = canonical_ip(address);
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| bad("the prefix length is not a number of bits of the address"))?,
        };
        Ok(Subnet {
            network: masked(address, prefix),
            prefix,
        })
    }

    /// Whether `ip` (IPv4-mapped IPv6 counted as IPv4) is in this subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `ip` with all but its first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(v4.to_bits() & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(v6.to_bits() & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_their_addresses() {
        let net = Subnet::parse("10.10.2.77/24").unwrap();
        assert_eq!(net.to_string(), "10.10.2.0/24");
        assert!(net.contains("10.10.2.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.10.2.1".parse().unwrap()));
        assert!(!net.contains("10.10.3.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let one = Subnet::parse(" 127.0.0.1 ").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all = Subnet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Subnet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "x/8", "::/129", "1.2.3.4/-1"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_subnets_are_slash_24_and_slash_64() {
        let subnet = |ip: &str| connection_subnet(ip.parse().unwrap()).to_string();
        assert_eq!(subnet("203.0.113.77"), "203.0.113.0");
        assert_eq!(subnet("::ffff:203.0.113.77"), "203.0.113.0");
        assert_eq!(subnet("2a01:4f8:1:2:aaaa:bbbb:cccc:dddd"), "2a01:4f8:1:2::");
        assert_ne!(subnet("203.0.113.1"), subnet("203.0.114.1"));
    }

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
