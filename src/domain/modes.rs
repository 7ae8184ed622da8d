//! Operating modes chosen in the configuration and obeyed by the decision
//! and the store.

/// What happens to a new session when the user already has `max_sessions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPolicy {
    RejectNew,
    KickOldest,
}

/// What a hook answers when PostgreSQL cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDbError {
    Deny,
    Allow,
}
