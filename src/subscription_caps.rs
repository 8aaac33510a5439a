//! Subscriptions counted across sessions: per client address (MAX_SUBSCRIPTIONS_PER_IP)
//! and on the whole server (MAX_TOTAL_SUBSCRIPTIONS). MAX_SESSION_SUBSCRIPTIONS bounds
//! one session; these bound what many sessions from one address, or from many addresses,
//! may hold together, and with it the memory and the notification work subscriptions
//! cost. A session reserves a place before it subscribes and gives places back when it
//! unsubscribes or closes.
//!
//! An address is an IPv4 address or an IPv6 /64 (one host's share of a network, where
//! a single IPv6 address costs an attacker nothing); IPv4-mapped IPv6 counts as IPv4.
//! Loopback is exempt from the per-address cap, as from the connection caps (a local
//! Tor service or proxy brings every client from it), but counts in the total.

use crate::python::with_commas;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};

/// A subscription refused by a cap: Fulcrum's code 4 (limit exceeded) with these words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapReached {
    #[error(
        "Subscription limit reached: at most {} per client address (MAX_SUBSCRIPTIONS_PER_IP)",
        with_commas(*max as i128)
    )]
    Address { max: usize },
    #[error(
        "Subscription limit reached: at most {} on this server (MAX_TOTAL_SUBSCRIPTIONS)",
        with_commas(*max as i128)
    )]
    Total { max: usize },
}

/// The places held, shared by every session.
pub struct SubscriptionCaps {
    /// 0: no per-address cap.
    per_address: usize,
    /// 0: no total cap.
    total: usize,
    /// Loopback clients count against the per-address cap too (tests only).
    cap_loopback: bool,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl SubscriptionCaps {
    pub fn new(per_address: usize, total: usize, cap_loopback: bool) -> SubscriptionCaps {
        SubscriptionCaps {
            per_address,
            total,
            cap_loopback,
            held: Mutex::default(),
        }
    }

    /// No caps (counting only).
    pub fn none() -> SubscriptionCaps {
        SubscriptionCaps::new(0, 0, false)
    }

    /// Takes one place for a subscription from `ip`, or says which cap is reached.
    pub fn reserve(&self, ip: IpAddr) -> Result<(), CapReached> {
        let key = address_key(ip);
        let capped = self.per_address > 0 && (self.cap_loopback || !key.is_loopback());
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if self.total > 0 && held.total >= self.total {
            return Err(CapReached::Total { max: self.total });
        }
        let of_address = held.by_address.entry(key).or_default();
        if capped && *of_address >= self.per_address {
            return Err(CapReached::Address {
                max: self.per_address,
            });
        }
        *of_address += 1;
        held.total += 1;
        Ok(())
    }

    /// Gives back `count` places taken for `ip`.
    pub fn release(&self, ip: IpAddr, count: usize) {
        if count == 0 {
            return;
        }
        let key = address_key(ip);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(of_address) = held.by_address.get_mut(&key) else {
            return;
        };
        // Never more than the address holds.
        let freed = count.min(*of_address);
        *of_address -= freed;
        if *of_address == 0 {
            held.by_address.remove(&key);
        }
        held.total -= freed;
    }

    /// Places held on the whole server.
    pub fn total_held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// What the per-address cap counts by: the IPv4 address, or the IPv6 /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.is_loopback() => IpAddr::V6(v6),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_share() {
        let caps = SubscriptionCaps::new(3, 0, false);
        for _ in 0..3 {
            caps.reserve(ip("10.0.0.1")).unwrap();
        }
        let refused = caps.reserve(ip("10.0.0.1")).unwrap_err();
        assert_eq!(refused, CapReached::Address { max: 3 });
        assert_eq!(
            refused.to_string(),
            "Subscription limit reached: at most 3 per client address (MAX_SUBSCRIPTIONS_PER_IP)"
        );
        caps.reserve(ip("10.0.0.2"))
            .expect("another address has its own share");
        caps.release(ip("10.0.0.1"), 1);
        caps.reserve(ip("10.0.0.1")).expect("a place given back");
        assert_eq!(caps.total_held(), 4);
    }

    #[test]
    fn the_server_holds_at_most_the_total() {
        let small = SubscriptionCaps::new(0, 2, false);
        small.reserve(ip("10.0.0.1")).unwrap();
        small.reserve(ip("10.0.0.2")).unwrap();
        let refused = small.reserve(ip("10.0.0.3")).unwrap_err();
        assert_eq!(refused, CapReached::Total { max: 2 });
        assert!(refused.to_string().contains("MAX_TOTAL_SUBSCRIPTIONS"));
        small.release(ip("10.0.0.1"), 5);
        assert_eq!(small.total_held(), 1, "only what the address held");
        small.reserve(ip("10.0.0.3")).unwrap();
        assert_eq!(
            CapReached::Total { max: 2_000_000 }.to_string(),
            "Subscription limit reached: at most 2,000,000 on this server (MAX_TOTAL_SUBSCRIPTIONS)"
        );
    }

    #[test]
    fn ipv6_counts_by_64_and_loopback_is_exempt() {
        let caps = SubscriptionCaps::new(1, 0, false);
        caps.reserve(ip("2001:db8:1:2::1")).unwrap();
        assert!(
            caps.reserve(ip("2001:db8:1:2::ffff")).is_err(),
            "the same /64"
        );
        caps.reserve(ip("2001:db8:1:3::1")).expect("another /64");
        caps.reserve(ip("::ffff:10.0.0.9")).unwrap();
        assert!(caps.reserve(ip("10.0.0.9")).is_err(), "mapped IPv4 is IPv4");
        for _ in 0..5 {
            caps.reserve(ip("127.0.0.1")).expect("loopback is exempt");
            caps.reserve(ip("::1")).expect("loopback is exempt");
        }
        let strict = SubscriptionCaps::new(1, 0, true);
        strict.reserve(ip("127.0.0.1")).unwrap();
        assert!(strict.reserve(ip("127.0.0.1")).is_err(), "capped in tests");
        let open = SubscriptionCaps::none();
        for _ in 0..10 {
            open.reserve(ip("10.0.0.1")).unwrap();
        }
        assert_eq!(open.total_held(), 10);
    }
}
