//! Session cost accounting, the rules of ElectrumX's anti-DoS model (aiorpcX's
//! `SessionBase` and ElectrumX's `SessionManager`): what bytes and errors cost, how
//! cost decays, how a session's cost and its groups' extra cost become a
//! concurrency limit and a per-request sleep, and how clients are grouped (by subnet and
//! by connection time slice). Pure functions: the actors apply them. What each method
//! costs is priced by the method itself (`protocol::methods`), from the work it did.

use std::net::IpAddr;
use std::time::Duration;

/// What a new connection costs (aiorpcX starts every session at this cost).
pub const CONNECTION_COST: f64 = 5.0;
/// Added for every error a request ends with.
pub const ERROR_BASE_COST: f64 = 100.0;
/// Added, on top of the error cost, for a message that is not JSON.
pub const PARSE_ERROR_COST: f64 = 1000.0;
/// A session re-derives its throttling when its cost moved this much since the last time.
pub const RECALC_DELTA: f64 = 100.0;
/// How often group costs are refunded and decay rates recomputed (ElectrumX: 300 s).
pub const RECALC_INTERVAL: Duration = Duration::from_secs(300);
/// Sessions that connect within the same period of this length share a time-slice group.
pub const TIME_SLICE: Duration = Duration::from_secs(300);
/// The default weight of the time-slice group: a burst of new connections slows all of
/// them a little, much less than sharing a subnet does.
pub const DEFAULT_TIME_SLICE_WEIGHT: f64 = 0.03;
/// The weight of a subnet group: its members' cost counts in full.
pub const SUBNET_WEIGHT: f64 = 1.0;

/// The limits every session is held to (COST_SOFT_LIMIT, COST_HARD_LIMIT,
/// INITIAL_CONCURRENT, REQUEST_SLEEP, BANDWIDTH_UNIT_COST).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostLimits {
    pub soft: f64,
    pub hard: f64,
    pub initial_concurrent: u32,
    /// The sleep before each request at the hard limit.
    pub request_sleep: Duration,
    pub bandwidth_unit_cost: f64,
}

/// How a session must run its requests now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throttling {
    /// Requests it may run at once; 0 means the session is over the hard limit: its next
    /// request is refused with "excessive resource usage" and it is disconnected.
    pub concurrency: u32,
    /// 0 below the soft limit, 1 at the hard limit: the share of REQUEST_SLEEP slept
    /// before each request.
    pub fraction: f64,
}

impl Throttling {
    pub fn excessive(&self) -> bool {
        self.concurrency == 0
    }
}

impl CostLimits {
    /// How far the weighted cost a group adds to its members must move before they are
    /// told: 1% of the soft limit (at least 1), since throttling starts only there; with
    /// throttling off, 100 (the standing then only shows in the admin sessions table).
    /// With thousands of sessions in a group, telling them of every small move would
    /// cost as much as the notifications themselves.
    pub fn standing_step(&self) -> f64 {
        if self.hard <= self.soft {
            100.0
        } else {
            (self.soft / 100.0).max(1.0)
        }
    }

    /// aiorpcX's `recalc_concurrency`: concurrency falls linearly from
    /// INITIAL_CONCURRENT at the soft limit to 0 at the hard limit, and the sleep grows
    /// the same way. `total` is the session's cost plus its groups' extra cost. Limits of
    /// 0 (hard == soft) turn throttling off.
    pub fn throttling(&self, total: f64) -> Throttling {
        let range = self.hard - self.soft;
        if range <= 0.0 {
            return Throttling {
                concurrency: self.initial_concurrent,
                fraction: 0.0,
            };
        }
        let fraction = ((total - self.soft) / range).max(0.0);
        let target = ((1.0 - fraction) * f64::from(self.initial_concurrent))
            .ceil()
            .max(0.0);
        Throttling {
            concurrency: target.min(f64::from(self.initial_concurrent)) as u32,
            fraction,
        }
    }

    /// The throttling of a session whose own cost is `own` and whose groups add
    /// `extra`. Group standing may slow a session, but one under the soft limit on its
    /// own is never refused for it: at worst it runs one request at a time, each after
    /// the full REQUEST_SLEEP. (aiorpcX refuses it: one hostile member of a time slice
    /// would get every innocent session in that slice disconnected.)
    pub fn session_throttling(&self, own: f64, extra: f64) -> Throttling {
        let throttling = self.throttling(own + extra);
        if throttling.excessive() && own < self.soft {
            Throttling {
                concurrency: 1,
                fraction: throttling.fraction,
            }
        } else {
            throttling
        }
    }

    /// How long to sleep before a request at this throttling.
    pub fn sleep(&self, throttling: &Throttling) -> Duration {
        self.request_sleep
            .mul_f64(throttling.fraction.clamp(0.0, 1.0))
    }

    /// Cost decay per second: slower when the server holds many subscriptions
    /// (ElectrumX: `hard / (10000 + 5 * subscriptions)`), so that a busy server forgives
    /// more slowly.
    pub fn decay_per_sec(&self, total_subscriptions: usize) -> f64 {
        self.hard / (10_000.0 + 5.0 * total_subscriptions as f64)
    }

    /// What is taken off every group's retained cost each `interval` (ElectrumX: 600 per
    /// 300 s at the default hard limit).
    pub fn group_refund(&self, interval: Duration) -> f64 {
        interval.as_secs_f64() * self.hard / 5000.0
    }

    /// The cost of `bytes` sent or received.
    pub fn bandwidth_cost(&self, bytes: usize) -> f64 {
        bytes as f64 / self.bandwidth_unit_cost
    }
}

/// A cost after `elapsed` of decay at `rate` per second; never negative.
pub fn decayed(cost: f64, elapsed: Duration, rate: f64) -> f64 {
    (cost - elapsed.as_secs_f64() * rate).max(0.0)
}

/// The cost a session's groups add to its own: for each group, the group's cost (its
/// retained cost plus all members') less the session's own, times the group's weight.
/// `groups` yields (group cost, weight).
pub fn extra_cost(session_cost: f64, groups: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    groups
        .into_iter()
        .map(|(group_cost, weight)| (group_cost - session_cost).max(0.0) * weight)
        .sum()
}

/// The subnet group of a client address: "a.b.c.0/24", "2001:db8:1::/48". Private,
/// loopback and link-local addresses belong to no group (ElectrumX exempts them), unless
/// `group_loopback` asks to group loopback addresses like public ones (for tests, which
/// only have loopback). A prefix of 0 bits still groups (everyone in one group).
pub fn subnet_group_name(
    ip: IpAddr,
    ipv4_bits: u8,
    ipv6_bits: u8,
    group_loopback: bool,
) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    if crate::net::is_private(&ip) && !(group_loopback && ip.is_loopback()) {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(ipv4_bits.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let network = std::net::Ipv4Addr::from(u32::from(v4) & mask);
            format!("{network}/{bits}")
        }
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_bits.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{bits}")
        }
    })
}

/// The time-slice group of a session that connected `since_start` after the server
/// started: "t0", "t1", ... (one per TIME_SLICE).
pub fn time_slice_name(since_start: Duration) -> String {
    format!("t{}", since_start.as_secs() / TIME_SLICE.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_under_the_soft_limit_is_slowed_not_refused_for_its_groups() {
        let limits = limits();
        let slowed = limits.session_throttling(100.0, 50_000.0);
        assert_eq!(slowed.concurrency, 1);
        assert_eq!(limits.sleep(&slowed), Duration::from_millis(2500));
        // Over the soft limit on its own, its groups can take it over the hard limit.
        assert!(limits.session_throttling(1000.0, 9000.0).excessive());
        // Its own cost alone over the hard limit: refused whatever its groups.
        assert!(limits.session_throttling(10_000.0, 0.0).excessive());
        // Nothing changes below the hard limit.
        assert_eq!(
            limits.session_throttling(100.0, 2000.0),
            limits.throttling(2100.0)
        );
    }

    fn limits() -> CostLimits {
        CostLimits {
            soft: 1000.0,
            hard: 10_000.0,
            initial_concurrent: 10,
            request_sleep: Duration::from_millis(2500),
            bandwidth_unit_cost: 5000.0,
        }
    }

    #[test]
    fn below_the_soft_limit_nothing_is_throttled() {
        let t = limits().throttling(999.0);
        assert_eq!(t.concurrency, 10);
        assert_eq!(t.fraction, 0.0);
        assert_eq!(limits().sleep(&t), Duration::ZERO);
        assert!(!t.excessive());
    }

    #[test]
    fn between_the_limits_concurrency_falls_and_sleep_grows() {
        let t = limits().throttling(5500.0);
        assert_eq!(t.fraction, 0.5);
        assert_eq!(t.concurrency, 5);
        assert_eq!(limits().sleep(&t), Duration::from_millis(1250));
        // ceil: just above the soft limit keeps full concurrency.
        assert_eq!(limits().throttling(1001.0).concurrency, 10);
        assert_eq!(limits().throttling(9999.0).concurrency, 1);
    }

    #[test]
    fn at_the_hard_limit_the_session_is_excessive() {
        assert!(limits().throttling(10_000.0).excessive());
        let over = limits().throttling(50_000.0);
        assert!(over.excessive());
        assert_eq!(limits().sleep(&over), Duration::from_millis(2500));
    }

    #[test]
    fn equal_limits_turn_throttling_off() {
        let off = CostLimits {
            soft: 0.0,
            hard: 0.0,
            ..limits()
        };
        let t = off.throttling(1e12);
        assert_eq!((t.concurrency, t.fraction), (10, 0.0));
    }

    #[test]
    fn cost_decays_to_zero_and_no_further() {
        assert_eq!(decayed(100.0, Duration::from_secs(30), 1.0), 70.0);
        assert_eq!(decayed(100.0, Duration::from_secs(300), 1.0), 0.0);
        assert_eq!(decayed(10.0, Duration::from_millis(500), 2.0), 9.0);
    }

    #[test]
    fn decay_slows_with_subscriptions() {
        assert_eq!(limits().decay_per_sec(0), 1.0);
        assert_eq!(limits().decay_per_sec(2000), 0.5);
    }

    #[test]
    fn groups_refund_600_per_300_seconds_by_default() {
        assert_eq!(limits().group_refund(RECALC_INTERVAL), 600.0);
    }

    #[test]
    fn bandwidth_costs_one_per_unit() {
        assert_eq!(limits().bandwidth_cost(5000), 1.0);
        assert_eq!(limits().bandwidth_cost(500), 0.1);
    }

    #[test]
    fn extra_cost_is_the_others_share_times_weight() {
        // Subnet group: 3000 of which the session is 1000; time slice: 10000 at 0.03.
        let extra = extra_cost(1000.0, [(3000.0, 1.0), (10_000.0, 0.03)]);
        assert!((extra - (2000.0 + 270.0)).abs() < 1e-9);
        assert_eq!(extra_cost(1000.0, []), 0.0);
        // Alone in its group with nothing retained: no extra cost.
        assert_eq!(extra_cost(1000.0, [(1000.0, 1.0)]), 0.0);
    }

    #[test]
    fn subnet_groups() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            subnet_group_name(ip("1.2.3.4"), 24, 48, false).as_deref(),
            Some("1.2.3.0/24")
        );
        assert_eq!(
            subnet_group_name(ip("1.2.3.4"), 16, 48, false).as_deref(),
            Some("1.2.0.0/16")
        );
        assert_eq!(
            subnet_group_name(ip("1.2.3.4"), 0, 48, false).as_deref(),
            Some("0.0.0.0/0")
        );
        assert_eq!(
            subnet_group_name(ip("1.2.3.4"), 32, 48, false).as_deref(),
            Some("1.2.3.4/32")
        );
        assert_eq!(
            subnet_group_name(ip("2a01:4f8:1:2:3::1"), 24, 48, false).as_deref(),
            Some("2a01:4f8:1::/48")
        );
        // An IPv4 client on a dual-stack socket is grouped as IPv4.
        assert_eq!(
            subnet_group_name(ip("::ffff:8.8.4.4"), 24, 48, false).as_deref(),
            Some("8.8.4.0/24")
        );
    }

    #[test]
    fn private_addresses_are_exempt() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert_eq!(
                subnet_group_name(ip(private), 24, 48, false),
                None,
                "{private}"
            );
        }
        // Tests group loopback like a public subnet.
        assert_eq!(
            subnet_group_name(ip("127.0.1.7"), 24, 48, true).as_deref(),
            Some("127.0.1.0/24")
        );
        assert_eq!(subnet_group_name(ip("10.0.0.1"), 24, 48, true), None);
    }

    #[test]
    fn group_standings_move_in_steps_of_a_hundredth_of_the_soft_limit() {
        let limits = |soft, hard| CostLimits {
            soft,
            hard,
            initial_concurrent: 10,
            request_sleep: Duration::ZERO,
            bandwidth_unit_cost: 5000.0,
        };
        assert_eq!(limits(1000.0, 10_000.0).standing_step(), 10.0);
        assert_eq!(limits(50.0, 300.0).standing_step(), 1.0);
        assert_eq!(limits(0.0, 0.0).standing_step(), 100.0);
    }

    #[test]
    fn time_slices_are_five_minutes() {
        assert_eq!(time_slice_name(Duration::from_secs(0)), "t0");
        assert_eq!(time_slice_name(Duration::from_secs(299)), "t0");
        assert_eq!(time_slice_name(Duration::from_secs(300)), "t1");
        assert_eq!(time_slice_name(Duration::from_secs(3601)), "t12");
    }
}
