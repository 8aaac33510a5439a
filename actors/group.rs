//! A session group: the sessions of one IP subnet, or those that connected in the same
//! time slice. A group's cost (what its members cost now plus what departed members left
//! behind) throttles every member, so a client cannot escape its cost by spreading work
//! over many connections or by reconnecting.
//!
//! Groups are data owned by the SessionManager rather than actors of their own: every
//! change to a group comes from the manager's own messages (a session joins, reports its
//! cost, leaves) and every reader of a group is the manager, so a mailbox per group would
//! only add a hop and a copy of the members' costs.

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct Group {
    pub name: String,
    /// How much of the group's cost counts against each member (subnet 1.0, time slice
    /// small).
    pub weight: f64,
    /// Cost left behind by members that disconnected; refunded periodically.
    pub retained: f64,
    /// Session ids.
    pub members: BTreeSet<u64>,
    /// The members' current cost, recomputed by the manager on every tick.
    pub members_cost: f64,
}

impl Group {
    pub fn new(name: String, weight: f64) -> Group {
        Group {
            name,
            weight,
            retained: 0.0,
            members: BTreeSet::new(),
            members_cost: 0.0,
        }
    }

    /// ElectrumX's `SessionGroup.cost()`.
    pub fn cost(&self) -> f64 {
        self.retained + self.members_cost
    }

    /// A member left: its cost stays with the group until refunded.
    pub fn leave(&mut self, session: u64, cost: f64) {
        if self.members.remove(&session) {
            self.members_cost = (self.members_cost - cost).max(0.0);
            self.retained += cost;
        }
    }

    pub fn refund(&mut self, amount: f64) {
        self.retained = (self.retained - amount).max(0.0);
    }

    /// Nothing left to remember: the group can be forgotten.
    pub fn is_spent(&self) -> bool {
        self.members.is_empty() && self.retained <= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departed_members_cost_is_retained_then_refunded() {
        let mut group = Group::new("1.2.3.0/24".into(), 1.0);
        group.members.extend([1, 2]);
        group.members_cost = 300.0;
        group.leave(1, 200.0);
        assert_eq!(
            (group.retained, group.members_cost, group.cost()),
            (200.0, 100.0, 300.0)
        );
        // Leaving twice changes nothing.
        group.leave(1, 200.0);
        assert_eq!(group.cost(), 300.0);
        group.leave(2, 100.0);
        assert!(!group.is_spent());
        group.refund(250.0);
        assert_eq!(group.retained, 50.0);
        group.refund(600.0);
        assert_eq!(group.retained, 0.0);
        assert!(group.is_spent());
    }
}
