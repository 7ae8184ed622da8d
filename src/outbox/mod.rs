//! What playgate tells other systems after the fact (SPEC §12), from
//! outbox tables written in the transaction of what they report: drop
//! calls to the streamers' control APIs and webhooks, delivered by
//! background workers on every replica, at least once. Never on a hook's
//! path.

pub mod streamer_calls;
pub mod webhooks;

use std::time::Duration;

/// `first` doubled `doublings` times, at most `max`: the retry spacing of
/// both outboxes.
pub fn doubled(first: Duration, doublings: u32, max: Duration) -> Duration {
    first.saturating_mul(1 << doublings.min(20)).min(max)
}
