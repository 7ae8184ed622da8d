//! What playgate tells other systems after the fact, from rows written in
//! the same transaction as what they report (an outbox), delivered by a
//! background worker on every replica: at least once, never on the
//! request path.

pub mod webhooks;
