//! The listeners' door: MAX_SESSIONS counted as connections are accepted (ElectrumX's
//! `_manage_servers`), so that accepting pauses at the limit and resumes at 95% of it;
//! MAX_SESSIONS_PER_IP and MAX_SESSIONS_PER_SUBNET (IPv4 /24, IPv6 /64), so that one
//! machine or network cannot take every slot; and FIRST_MESSAGE_TIMEOUT, read by the
//! listeners. A connection's slots are freed the moment its [`Admission`] is dropped.

use ferrumx::config::Config;
use ferrumx::net::{canonical_ip, connection_subnet};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// The per-source limits at the door (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionCaps {
    pub per_ip: usize,
    pub per_subnet: usize,
    /// Loopback counts too (tests only: by default a local Tor service or TLS proxy,
    /// which brings every client from 127.0.0.1, is not capped).
    pub cap_loopback: bool,
    pub first_message_timeout: Duration,
}

impl ConnectionCaps {
    pub fn from_config(config: &Config) -> ConnectionCaps {
        let cap_loopback = ferrumx::test_switches::cap_loopback();
        if cap_loopback {
            log::warn!("FERRUMX_TEST_CAP_LOOPBACK: loopback clients count against the caps");
        }
        ConnectionCaps {
            per_ip: config.max_sessions_per_ip,
            per_subnet: config.max_sessions_per_subnet,
            cap_loopback,
            first_message_timeout: config.first_message_timeout,
        }
    }

    /// No per-source limit (MAX_SESSIONS alone).
    pub fn none() -> ConnectionCaps {
        ConnectionCaps {
            per_ip: 0,
            per_subnet: 0,
            cap_loopback: false,
            first_message_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a connection was refused at the door.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("{0} already has {1} connections (MAX_SESSIONS_PER_IP)")]
    Address(IpAddr, usize),
    #[error("subnet {0} already has {1} connections (MAX_SESSIONS_PER_SUBNET)")]
    Subnet(IpAddr, usize),
}

/// Open connections per source address and per subnet.
#[derive(Default)]
struct SourceCounts {
    addresses: HashMap<IpAddr, usize>,
    subnets: HashMap<IpAddr, usize>,
}

impl SourceCounts {
    fn take(&mut self, ip: IpAddr, caps: &ConnectionCaps) -> Result<(), Refused> {
        let subnet = connection_subnet(ip);
        let at_address = self.addresses.get(&ip).copied().unwrap_or(0);
        let in_subnet = self.subnets.get(&subnet).copied().unwrap_or(0);
        if caps.per_ip > 0 && at_address >= caps.per_ip {
            return Err(Refused::Address(ip, at_address));
        }
        if caps.per_subnet > 0 && in_subnet >= caps.per_subnet {
            return Err(Refused::Subnet(subnet, in_subnet));
        }
        *self.addresses.entry(ip).or_default() += 1;
        *self.subnets.entry(subnet).or_default() += 1;
        Ok(())
    }

    fn give_back(&mut self, ip: IpAddr) {
        for (map, key) in [
            (&mut self.addresses, ip),
            (&mut self.subnets, connection_subnet(ip)),
        ] {
            if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// MAX_SESSIONS at the door (ElectrumX's `_manage_servers`): the listeners wait on this
/// before accepting, and admit every connection they accept; the gate closes when the
/// admitted connections reach MAX_SESSIONS and opens again when they drop to 95% of it.
/// Counting at the door, rather than in the manager's registry, means a burst of
/// connections cannot slip in while registrations are still on their way.
#[derive(Clone)]
pub struct ListenerGate {
    inner: Arc<GateState>,
}

struct GateState {
    paused: watch::Sender<bool>,
    admitted: AtomicUsize,
    max_sessions: usize,
    caps: ConnectionCaps,
    sources: Mutex<SourceCounts>,
}

impl ListenerGate {
    pub fn new(max_sessions: usize, caps: ConnectionCaps) -> ListenerGate {
        ListenerGate {
            inner: Arc::new(GateState {
                paused: watch::Sender::new(false),
                admitted: AtomicUsize::new(0),
                max_sessions: max_sessions.max(1),
                caps,
                sources: Mutex::default(),
            }),
        }
    }

    /// How long a new connection has to send its first complete line.
    pub fn first_message_timeout(&self) -> Duration {
        self.inner.caps.first_message_timeout
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, SourceCounts> {
        // The counts stay consistent whatever panicked while holding them.
        self.inner
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns at once unless accepting is paused.
    pub async fn wait_open(&self) {
        let mut paused = self.inner.paused.subscribe();
        // The sender lives as long as this gate, so `wait_for` fails only on shutdown.
        let _ = paused.wait_for(|paused| !*paused).await;
    }

    /// A connection from `peer` was accepted: unless its address or subnet is at its cap,
    /// it counts until its [`Admission`] is released.
    pub fn admit(&self, peer: IpAddr) -> Result<Admission, Refused> {
        let peer = canonical_ip(peer);
        let caps = &self.inner.caps;
        let source = (caps.cap_loopback || !peer.is_loopback()).then_some(peer);
        if let Some(ip) = source {
            self.sources().take(ip, caps)?;
        }
        Ok(self.admit_counted(source))
    }

    fn admit_counted(&self, source: Option<IpAddr>) -> Admission {
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_add(1, Ordering::AcqRel) + 1;
        if count >= max && self.set_paused(true) {
            log::info!(
                "maximum sessions {max} reached, stopping new connections until count drops to {}",
                max * 19 / 20
            );
        }
        Admission {
            gate: Some(self.clone()),
            source,
        }
    }

    fn release(&self, source: Option<IpAddr>) {
        if let Some(ip) = source {
            self.sources().give_back(ip);
        }
        let max = self.inner.max_sessions;
        let count = self.inner.admitted.fetch_sub(1, Ordering::AcqRel) - 1;
        if count <= max * 19 / 20 && self.set_paused(false) {
            log::info!("resuming listening for incoming connections");
        }
    }

    /// Whether this call changed the state.
    fn set_paused(&self, paused: bool) -> bool {
        self.inner.paused.send_if_modified(|current| {
            let changed = *current != paused;
            *current = paused;
            changed
        })
    }

    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }
}

/// One admitted connection; releasing it (or dropping it) makes room for another.
pub struct Admission {
    gate: Option<ListenerGate>,
    /// The address counted against the per-source caps (none if exempt).
    source: Option<IpAddr>,
}

impl Admission {
    pub fn release(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release(self.source);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_ip: usize, per_subnet: usize) -> ListenerGate {
        let caps = ConnectionCaps {
            per_ip,
            per_subnet,
            ..ConnectionCaps::none()
        };
        ListenerGate::new(1000, caps)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn addresses_and_subnets_are_capped_and_slots_freed_on_release() {
        let gate = gate(2, 3);
        let a1 = gate.admit(ip("203.0.113.1")).expect("first");
        let _a2 = gate
            .admit(ip("::ffff:203.0.113.1"))
            .expect("second (mapped)");
        assert_eq!(
            gate.admit(ip("203.0.113.1")).err(),
            Some(Refused::Address(ip("203.0.113.1"), 2))
        );
        let _b = gate
            .admit(ip("203.0.113.2"))
            .expect("same /24, other address");
        assert_eq!(
            gate.admit(ip("203.0.113.3")).err(),
            Some(Refused::Subnet(ip("203.0.113.0"), 3))
        );
        // Another /24 is not affected; a closed connection frees both slots at once.
        let _c = gate.admit(ip("203.0.114.1")).expect("other subnet");
        drop(a1);
        let _d = gate.admit(ip("203.0.113.3")).expect("room again");
        // IPv6: one /64.
        let _e = gate.admit(ip("2001:db8:1:2::1")).expect("v6");
        let _f = gate.admit(ip("2001:db8:1:2::2")).expect("v6");
        let _g = gate.admit(ip("2001:db8:1:2::3")).expect("v6");
        assert!(matches!(
            gate.admit(ip("2001:db8:1:2::4")),
            Err(Refused::Subnet(..))
        ));
    }

    #[test]
    fn loopback_is_exempt_unless_capped_and_zero_means_no_limit() {
        let gate = gate(1, 1);
        let held: Vec<_> = (0..5)
            .map(|_| gate.admit(ip("127.0.0.1")).expect("loopback exempt"))
            .collect();
        assert_eq!(held.len(), 5);
        let unlimited = super::tests::gate(0, 0);
        let held: Vec<_> = (0..50)
            .map(|_| unlimited.admit(ip("203.0.113.9")).expect("no limit"))
            .collect();
        assert_eq!(held.len(), 50);
        let capped = ListenerGate::new(
            1000,
            ConnectionCaps {
                per_ip: 1,
                cap_loopback: true,
                ..ConnectionCaps::none()
            },
        );
        let _one = capped.admit(ip("127.0.0.1")).expect("first");
        assert!(capped.admit(ip("127.0.0.1")).is_err());
        assert!(capped.admit(ip("127.0.0.2")).is_ok());
    }
}
