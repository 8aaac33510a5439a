//! What the SessionManager tells a session. The messages live here, apart from the
//! actor, so that the manager can name them without depending on the session (which
//! depends on the manager for what it reports).

use actix::prelude::*;

/// How fast a session's cost decays now (slower when the server holds many
/// subscriptions). With its groups' standings and its own cost, the session derives its
/// concurrency limit and per-request sleep (`CostLimits::throttling`).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Decay {
    pub per_sec: f64,
}

/// Ends a session (admin `disconnect`, or idle past SESSION_TIMEOUT).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: &'static str,
}

/// Turns the logging of a session's requests on or off (admin `log`).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct SetLogged(pub bool);
