//! The Group actor: the sessions of one IP subnet, or those that connected in the same
//! time slice. A group's cost (what its members cost now plus what departed members left
//! behind) throttles every member, so a client cannot escape its cost by spreading work
//! over many connections or by reconnecting.
//!
//! The SessionManager owns the groups: it starts one when its first member arrives,
//! forwards its members' cost reports to it, refunds its retained cost periodically and
//! retires it once it is empty and owes nothing. The group itself tells its members its
//! standing (its cost and weight) whenever that moved enough to change their throttling;
//! each session adds up what its groups cost it ([`ferrumx::cost::extra_cost`]).

use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a group looks at its cost and tells its members when it moved.
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// The cost accounting of a group, apart from the actor around it.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Cost left behind by members that disconnected; refunded periodically.
    pub retained: f64,
    /// The members' current costs, as last reported.
    pub members: HashMap<u64, f64>,
}

impl Ledger {
    /// What the members cost now.
    pub fn members_cost(&self) -> f64 {
        self.members.values().sum()
    }

    /// ElectrumX's `SessionGroup.cost()`.
    pub fn cost(&self) -> f64 {
        self.retained + self.members_cost()
    }

    /// A member's latest cost; ignored for a session that is not (or no longer) a member.
    pub fn update(&mut self, session: u64, cost: f64) {
        if let Some(current) = self.members.get_mut(&session) {
            *current = cost;
        }
    }

    /// A member left with `cost`: it stays with the group until refunded.
    pub fn leave(&mut self, session: u64, cost: f64) {
        if self.members.remove(&session).is_some() {
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

pub struct Group {
    name: Arc<str>,
    /// How much of the group's cost counts against each member (subnet 1.0, time slice
    /// small).
    weight: f64,
    ledger: Ledger,
    sessions: HashMap<u64, Recipient<GroupStanding>>,
    /// The cost last told to the members.
    announced: f64,
    /// Members are told when the cost they see (group cost × weight) moved this much
    /// ([`ferrumx::cost::CostLimits::standing_step`]).
    announce_step: f64,
    /// Told when the group is empty and owes nothing.
    on_spent: Recipient<GroupSpent>,
}

impl Group {
    pub fn new(
        name: Arc<str>,
        weight: f64,
        announce_step: f64,
        on_spent: Recipient<GroupSpent>,
    ) -> Group {
        Group {
            name,
            weight,
            ledger: Ledger::default(),
            sessions: HashMap::new(),
            announced: 0.0,
            announce_step,
            on_spent,
        }
    }

    fn standing(&self) -> GroupStanding {
        GroupStanding {
            group: Arc::clone(&self.name),
            cost: self.ledger.cost(),
            weight: self.weight,
        }
    }

    fn announce_if_moved(&mut self) {
        let cost = self.ledger.cost();
        if ((cost - self.announced) * self.weight).abs() < self.announce_step {
            return;
        }
        self.announced = cost;
        let standing = self.standing();
        for session in self.sessions.values() {
            session.do_send(standing.clone());
        }
    }
}

impl Actor for Group {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1 << 20);
        ctx.run_interval(ANNOUNCE_INTERVAL, |group, _| group.announce_if_moved());
    }
}

// ---- Messages from the SessionManager ----

/// A session joins the group with its current cost; it is told the group's standing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub id: u64,
    pub session: Recipient<GroupStanding>,
    pub cost: f64,
}

/// A member's latest cost.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberCost {
    pub id: u64,
    pub cost: f64,
}

/// A member disconnected with this cost, which the group retains.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub id: u64,
    pub cost: f64,
}

/// Periodic refund of retained cost (ElectrumX's `_recalc_concurrency`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refund(pub f64);

/// The manager forgets the group: it stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// The admin `groups` command's view of a group.
#[derive(Clone, Debug)]
pub struct GroupState {
    pub name: Arc<str>,
    pub weight: f64,
    pub retained: f64,
    pub members_cost: f64,
}

#[derive(Message)]
#[rtype(result = "GroupState")]
pub struct GetGroupState;

// ---- Messages from a group ----

/// To each member: the group's cost and weight.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct GroupStanding {
    pub group: Arc<str>,
    pub cost: f64,
    pub weight: f64,
}

/// To the manager: the group is empty and owes nothing. The manager retires it unless a
/// session joined meanwhile. (Defined here rather than beside the manager: the group
/// only knows a `Recipient` of it, so it does not depend on the manager's module.)
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupSpent {
    pub name: Arc<str>,
}

impl Handler<Join> for Group {
    type Result = ();

    fn handle(&mut self, join: Join, _: &mut Context<Self>) {
        self.ledger.members.insert(join.id, join.cost);
        join.session.do_send(self.standing());
        self.sessions.insert(join.id, join.session);
    }
}

impl Handler<MemberCost> for Group {
    type Result = ();

    fn handle(&mut self, update: MemberCost, _: &mut Context<Self>) {
        self.ledger.update(update.id, update.cost);
    }
}

impl Handler<Leave> for Group {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Context<Self>) {
        self.ledger.leave(leave.id, leave.cost);
        self.sessions.remove(&leave.id);
    }
}

impl Handler<Refund> for Group {
    type Result = ();

    fn handle(&mut self, Refund(amount): Refund, _: &mut Context<Self>) {
        self.ledger.refund(amount);
        if self.ledger.is_spent() {
            self.on_spent.do_send(GroupSpent {
                name: Arc::clone(&self.name),
            });
        }
    }
}

impl Handler<Retire> for Group {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetGroupState> for Group {
    type Result = MessageResult<GetGroupState>;

    fn handle(&mut self, _: GetGroupState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(GroupState {
            name: Arc::clone(&self.name),
            weight: self.weight,
            retained: self.ledger.retained,
            members_cost: self.ledger.members_cost(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departed_members_cost_is_retained_then_refunded() {
        let mut ledger = Ledger::default();
        ledger.members.extend([(1, 200.0), (2, 100.0)]);
        ledger.leave(1, 200.0);
        assert_eq!(
            (ledger.retained, ledger.members_cost(), ledger.cost()),
            (200.0, 100.0, 300.0)
        );
        // Leaving twice, or a report from a departed member, changes nothing.
        ledger.leave(1, 200.0);
        ledger.update(1, 900.0);
        assert_eq!(ledger.cost(), 300.0);
        ledger.update(2, 150.0);
        assert_eq!(ledger.cost(), 350.0);
        ledger.leave(2, 150.0);
        assert!(!ledger.is_spent());
        ledger.refund(250.0);
        assert_eq!(ledger.retained, 100.0);
        ledger.refund(600.0);
        assert_eq!(ledger.retained, 0.0);
        assert!(ledger.is_spent());
    }
}
