//! SERVICES and REPORT_SERVICES: `protocol://host:port` entries as aiorpcX reads them,
//! and ElectrumX's rules about what may be listened on or advertised.

use super::{ConfigError, invalid};
use crate::net::is_valid_hostname;
use std::fmt;
use std::net::IpAddr;

/// A listening or advertised protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Ssl,
    Ws,
    Wss,
    /// The admin JSON-RPC.
    Rpc,
    /// ferrumx's own: a plain HTTP endpoint for metrics. Not an Electrum service.
    Http,
}

impl Protocol {
    const ALL: [Protocol; 6] = [
        Protocol::Tcp,
        Protocol::Ssl,
        Protocol::Ws,
        Protocol::Wss,
        Protocol::Rpc,
        Protocol::Http,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Ssl => "ssl",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
            Protocol::Rpc => "rpc",
            Protocol::Http => "http",
        }
    }

    /// Whether the service needs SSL_CERTFILE and SSL_KEYFILE.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::Wss)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host part of a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// Listen on every interface (host left empty in SERVICES, or `all_interfaces`).
    AllInterfaces,
    Ip(IpAddr),
    Name(String),
}

impl Host {
    /// Whether only this machine can reach the address (`localhost` counts; other names
    /// cannot be known before they resolve, so they do not).
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::AllInterfaces => false,
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name.eq_ignore_ascii_case("localhost"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::AllInterfaces => Ok(()),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// One entry of SERVICES or REPORT_SERVICES. Displays as `protocol://host:port`
/// (`tcp://:50001` for all interfaces).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub protocol: Protocol,
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.protocol, self.host, self.port)
    }
}

pub(super) fn parse_services(
    var: &'static str,
    list: &str,
    defaults: bool,
) -> Result<Vec<Service>, ConfigError> {
    let mut services: Vec<Service> = Vec::new();
    // Unlike ElectrumX, spaces around items are allowed.
    for item in list
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let service =
            parse_service(item, defaults).map_err(|reason| invalid(var, item, &reason))?;
        if services
            .iter()
            .any(|s| s.host == service.host && s.port == service.port)
        {
            return Err(invalid(
                var,
                item,
                &format!(
                    "address {}:{} has multiple services",
                    service.host, service.port
                ),
            ));
        }
        if defaults && matches!(&service.host, Host::Name(name) if name.ends_with(".onion")) {
            return Err(invalid(
                var,
                item,
                "cannot listen on a Tor .onion host (advertise it in REPORT_SERVICES)",
            ));
        }
        services.push(service);
    }
    Ok(services)
}

pub(super) fn parse_report_services(
    list: &str,
    peer_announce: bool,
) -> Result<Vec<Service>, ConfigError> {
    let services = parse_services("REPORT_SERVICES", list, false)?;
    for service in &services {
        let bad = |reason: &str| invalid("REPORT_SERVICES", &service.to_string(), reason);
        if matches!(service.protocol, Protocol::Rpc | Protocol::Http) {
            return Err(bad("only tcp, ssl, ws and wss services can be advertised"));
        }
        match &service.host {
            Host::Ip(ip) if ip.is_multicast() || ip.is_unspecified() => {
                return Err(bad(
                    "a multicast or unspecified IP address cannot be advertised",
                ));
            }
            Host::Ip(ip) if peer_announce && crate::net::is_private(ip) => {
                return Err(bad(
                    "a private IP address cannot be advertised while PEER_ANNOUNCE is on",
                ));
            }
            Host::Name(name) if name.eq_ignore_ascii_case("localhost") => {
                return Err(bad("localhost cannot be advertised"));
            }
            _ => {}
        }
    }
    Ok(services)
}

/// Parses `protocol://host:port` as aiorpcx's `Service.from_string` does. With
/// `defaults` (SERVICES), the host defaults to all interfaces (rpc: localhost) and an rpc
/// port to 8000, and a bare `rpc` is `rpc://localhost:8000`.
fn parse_service(item: &str, defaults: bool) -> Result<Service, String> {
    let (protocol, address) = match item.split_once("://") {
        Some(split) => split,
        None if defaults && item.eq_ignore_ascii_case("rpc") => (item, ""),
        None => return Err("expected protocol://host:port".into()),
    };
    let protocol = Protocol::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(protocol))
        .ok_or_else(|| {
            format!("unknown protocol {protocol:?}; accepted: tcp, ssl, ws, wss, rpc, http")
        })?;
    let (host, port) = split_address(address);
    let host = match (host, defaults, protocol) {
        ("", true, Protocol::Rpc) => Host::Name("localhost".into()),
        ("", true, _) | ("all_interfaces", true, _) => Host::AllInterfaces,
        ("", false, _) => return Err("the host is missing".into()),
        (host, _, _) => classify_host(host)?,
    };
    let port = match (port, defaults, protocol) {
        ("", true, Protocol::Rpc) => 8000,
        ("", _, _) => return Err("the port is missing (only rpc defaults to 8000)".into()),
        (port, _, _) => match port.parse::<u16>() {
            Ok(n) if n > 0 && port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("invalid port {port:?}; accepted: 1 to 65535")),
        },
    };
    Ok(Service {
        protocol,
        host,
        port,
    })
}

/// Splits `host:port` or `[ipv6]:port`; either part may be empty.
fn split_address(address: &str) -> (&str, &str) {
    if let Some(inner) = address.strip_prefix('[')
        && let Some((host, after)) = inner.split_once(']')
    {
        if after.is_empty() {
            return (host, "");
        }
        if let Some(port) = after.strip_prefix(':') {
            return (host, port);
        }
    }
    address.split_once(':').unwrap_or((address, ""))
}

/// A host name (see [`is_valid_hostname`]) or an IP address.
fn classify_host(host: &str) -> Result<Host, String> {
    if is_valid_hostname(host) {
        return Ok(Host::Name(host.to_owned()));
    }
    host.parse::<IpAddr>()
        .map(Host::Ip)
        .map_err(|_| format!("{host:?} is neither a host name nor an IP address"))
}
