//! Operating modes chosen in the configuration and obeyed by the decision
//! and the store.

/// What happens to a new session when the user already has `max_sessions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPolicy {
    RejectNew,
    KickOldest,
}

/// How an admission's transaction commits (PLAYGATE_SESSION_COMMIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCommit {
    /// `durable`: the answer waits until the session row is on disk.
    Durable,
    /// `async`: PostgreSQL's `synchronous_commit = off` for admissions; a
    /// crash of PostgreSQL can lose the admissions of its last moments
    /// (docs/performance.md).
    Async,
}

/// What a hook answers when PostgreSQL cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDbError {
    Deny,
    Allow,
}

/// How a forward-auth request without credentials may find its session
/// besides the viewer cookie and the playback session id (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsContinuation {
    /// `ip`: also by stream, client IP and user agent, for players that keep
    /// no cookie and send no playback session id (never for a session bound
    /// to its player by either).
    Ip,
    /// `strict`: by the cookie or the playback session id only.
    Strict,
}

/// What a start past a user's limit does when its device is watching
/// another stream of the user (SPEC §11, PLAYGATE_ZAPPING).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zapping {
    /// `replace`: the device's least recently seen other stream ends
    /// `replaced` and the start is admitted (channel switching).
    Replace,
    /// `count`: the old session counts until it times out.
    Count,
}
