//! What every handler shares, as `web::Data<AppState>`.

use std::sync::Arc;

use crate::config::Settings;
use crate::decision::Engine;
use crate::geoip::GeoIp;
use crate::metrics::Metrics;
use crate::outbox::webhooks::Subscriptions;
use crate::password::PasswordVerifier;
use crate::policy_view::PolicyView;
use crate::rate_limit::FailureLimiter;
use crate::store::Pool;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    /// Statistics and the timeline (`PLAYGATE_STATS_DATABASE_URL`).
    pub stats_pool: Pool,
    pub policy: Arc<PolicyView>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    /// Verified login:password pairs, for hooks and admin callers alike.
    pub passwords: Arc<PasswordVerifier>,
    /// Failed credentials per client address, for hooks and admin callers alike.
    pub failures: Arc<FailureLimiter>,
    /// Country and ASN of client addresses (SPEC §10); its files are
    /// watched and reloaded in place, so this handle stays the same.
    pub geoip: Arc<GeoIp>,
    /// Whether webhooks want `limit.reached` (refreshed after a webhook write).
    pub webhooks: Arc<Subscriptions>,
}
