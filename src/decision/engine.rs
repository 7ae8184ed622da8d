//! Runs a `PlayRequest` through the whole decision: the pure policy (steps
//! 1–5) against the in-memory view, then admission (steps 6–8): a refresh of
//! a session this replica admitted from its memory (`live`, heartbeats
//! written in batches), anything else in PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::admission_batch::AdmissionBatcher;
use super::denial_tally::DenialTally;
use super::evaluate;
use super::live::{self, Found, LiveSessions, Viewer, ViewerRef};
use super::viewer_cookie::CookieKey;
use super::{Credential, Decision, Event, PlayRequest, Reason, ViewerCookie};
use crate::config::Settings;
use crate::domain::access_rule;
use crate::domain::{
    canonical_ip, Geo, HlsContinuation, LimitPolicy, OnDbError, RuleAction, SessionCommit, Zapping,
};
use crate::geoip::GeoIp;
use crate::metrics::Metrics;
use crate::outbox::webhooks::Subscriptions;
use crate::password::{Check, PasswordVerifier};
use crate::policy_view::{PolicySnapshot, PolicyUser, PolicyView, RuleMatch, RuleSubject};
use crate::rate_limit::{FailureLimiter, Guesser};
use crate::store::denials;
use crate::store::link_uses;
use crate::store::sessions::{self, ActiveViewer, Admission, AdmitOutcome, Heartbeat, Refusal};
use crate::store::{Pool, StoreError};
use crate::upstream::ministra::{MinistraClient, Verdict};

/// How often the refreshes answered from memory are written, as one batch.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// Rows per heartbeat statement: small enough to finish well within the
/// database timeout even on a loaded server, so a backlog drains instead of
/// turning into ever larger statements that time out.
const HEARTBEAT_BATCH: usize = 2000;
/// A session is answered from memory only while its row has this long to
/// live: room for a few batches to extend it, even slow ones.
const LIVE_MARGIN: Duration = Duration::from_secs(2);

/// How a request without credentials found the session it continues (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FoundBy {
    Cookie,
    PlaybackId,
    ClientIp,
}

/// Who a session is admitted for, and for how long the answer holds.
struct Grantee<'a> {
    login: Option<&'a str>,
    max_sessions: Option<i32>,
    max_devices: Option<i32>,
    reason: Reason,
    duration: Duration,
}

pub struct Engine {
    pool: Pool,
    policy: Arc<PolicyView>,
    metrics: Arc<Metrics>,
    session_duration: Duration,
    session_grace: Duration,
    limit_policy: LimitPolicy,
    on_db_error: OnDbError,
    db_timeout: Duration,
    passwords: Arc<PasswordVerifier>,
    failures: Arc<FailureLimiter>,
    live: LiveSessions,
    admissions: Arc<AdmissionBatcher>,
    ministra: Option<MinistraClient>,
    cookie_key: CookieKey,
    hls_continuation: HlsContinuation,
    zapping: Zapping,
    max_viewers: Option<i32>,
    link_skew: Duration,
    geoip: Arc<GeoIp>,
    denials: DenialTally,
    webhooks: Arc<Subscriptions>,
}

/// What the engine shares with the rest of the service.
pub struct EngineParts {
    pub pool: Pool,
    pub policy: Arc<PolicyView>,
    pub metrics: Arc<Metrics>,
    pub passwords: Arc<PasswordVerifier>,
    pub failures: Arc<FailureLimiter>,
    pub cookie_key: CookieKey,
    pub geoip: Arc<GeoIp>,
    /// `limit.reached` events (SPEC §12).
    pub webhooks: Arc<Subscriptions>,
}

impl Engine {
    pub fn new(settings: &Settings, parts: EngineParts) -> Engine {
        let EngineParts {
            pool,
            policy,
            metrics,
            passwords,
            failures,
            cookie_key,
            geoip,
            webhooks,
        } = parts;
        let admissions = AdmissionBatcher::new(
            pool.clone(),
            metrics.clone(),
            settings.session_commit == SessionCommit::Durable,
            // Half the pool at most for admissions: heartbeats, stops and
            // the admin API keep connections even under a flash crowd.
            settings.database.pool_size / 2,
        );
        Engine {
            pool,
            policy,
            metrics,
            session_duration: settings.session_duration,
            session_grace: settings.session_grace,
            limit_policy: settings.limit_policy,
            on_db_error: settings.on_db_error,
            db_timeout: settings.db_timeout,
            passwords,
            failures,
            live: LiveSessions::new(LIVE_MARGIN, settings.outage_grace),
            admissions,
            ministra: settings.ministra_url.as_deref().map(MinistraClient::new),
            cookie_key,
            hls_continuation: settings.hls_continuation,
            zapping: settings.zapping,
            max_viewers: settings.max_viewers,
            link_skew: settings.link_skew,
            geoip,
            denials: DenialTally::default(),
            webhooks,
        }
    }

    pub fn session_duration(&self) -> Duration {
        self.session_duration
    }

    /// Decides and records the decision in the metrics.
    pub async fn decide(&self, request: PlayRequest) -> Decision {
        let started = Instant::now();
        let request = self.located(request);
        let decision = self.decide_unrecorded(&request).await;
        self.record(&request, &decision, started);
        decision
    }

    /// Forward-auth (SPEC §3 "HLS and DASH viewers"). A request without
    /// credentials (HLS/DASH segments and child playlists, whose relative
    /// URLs drop the token) continues its player's active session, found by
    /// the viewer cookie, else the playback session id, else (unless
    /// `PLAYGATE_HLS_CONTINUATION=strict`) stream, client IP and user agent
    /// among sessions bound to no player; the session's user is re-checked
    /// (steps 1, 4, 5). Otherwise the request is decided as it is (IP rules,
    /// IP-bound users, else `no_credentials`): only a request with
    /// credentials starts a session for a token or password user. An allowed
    /// playlist request of a user's session carries the viewer cookie, but
    /// not one continued by address: a neighbour riding on a session of a
    /// cookie-less player must not bind it to himself and shut that player out.
    pub async fn decide_or_continue(&self, request: PlayRequest) -> Decision {
        let started = Instant::now();
        let request = self.located(request);
        // A signed link is a credential: it starts a session, it is never
        // read as a segment continuing one.
        // Segments carry no query: no snapshot taken, nothing parsed.
        let with_link = !request.query.0.is_empty()
            && crate::links::find_link(&request.query.0, self.policy.snapshot().link_keys())
                .is_some();
        let continued = match with_link {
            true => None,
            false => self.continue_session(&request).await,
        };
        let (mut decision, found_by) = match continued {
            Some((decision, by)) => (decision, Some(by)),
            None => (self.decide_unrecorded(&request).await, None),
        };
        let credentialed = found_by.is_none() && (with_link || !request.credential.is_none());
        if decision.allow && credentialed {
            self.bind_playback_id(&request, &decision).await;
        }
        let by_player = matches!(found_by, Some(FoundBy::Cookie | FoundBy::PlaybackId));
        if decision.allow && (credentialed || by_player) {
            decision.viewer_cookie = self.viewer_cookie(&request, &decision);
        }
        self.record(&request, &decision, started);
        decision
    }

    fn record(&self, request: &PlayRequest, decision: &Decision, started: Instant) {
        self.metrics.record_decision(
            request.dialect,
            decision.allow,
            decision.reason,
            started.elapsed(),
        );
        if !decision.allow {
            self.denials.record(decision.reason);
            // A spawned insert, only while a webhook wants the event.
            self.webhooks.limit_reached(
                decision.reason,
                decision.user.as_deref(),
                &request.stream,
                request.client_ip,
                decision.max_sessions,
                decision.active_sessions,
            );
            let rule = match decision.rule {
                Some(id) if decision.reason == Reason::RuleDenied => {
                    self.metrics.rule_denied(id);
                    format!(" rule={id}")
                }
                _ => String::new(),
            };
            log::info!(
                "deny {} dialect={} stream={} ip={} user={}{rule}",
                decision.reason.as_str(),
                request.dialect,
                request.stream,
                request.client_ip,
                decision.user.as_deref().unwrap_or("-")
            );
        }
    }

    /// A hook whose request could not be parsed still counts in the metrics.
    pub fn record_bad_request(&self, dialect: &str) {
        self.metrics
            .record_decision(dialect, false, Reason::BadRequest, Duration::ZERO);
        self.denials.record(Reason::BadRequest);
    }

    /// Adds this replica's denials counted since the last call to the
    /// database's per-minute counts; kept for the next call when the write
    /// fails, so none is lost.
    pub async fn write_denial_counts(&self) -> Result<(), StoreError> {
        let counts = self.denials.take();
        if counts.is_empty() {
            return Ok(());
        }
        let written = async {
            let client = self.pool.get().await?;
            denials::add(&client, &counts).await
        }
        .await;
        if written.is_err() {
            self.denials.restore(counts);
        }
        written
    }

    fn answer(&self, allow: bool, reason: Reason) -> Decision {
        Decision {
            allow,
            reason,
            user: None,
            session_id: None,
            duration: self.session_duration.as_secs(),
            max_sessions: None,
            active_sessions: None,
            rule: None,
            viewer_cookie: None,
        }
    }

    async fn decide_unrecorded(&self, request: &PlayRequest) -> Decision {
        let key = request.session_key();
        match request.event {
            Event::Stop => return self.stop(request, &key).await,
            Event::Publish => return self.answer(false, Reason::PublishNotAllowed),
            Event::Start | Event::Refresh => {}
        }
        // One snapshot for the rules and the identity steps.
        let snapshot = self.policy.snapshot();
        let matched = access_rule(&snapshot, request, request.event == Event::Start);
        if let Some(rule) = matched.filter(|rule| rule.action == RuleAction::Deny) {
            return self.rule_denied(rule.id, None);
        }
        let mut decision = self.decide_identity(request, &key, snapshot).await;
        decision.rule = matched.map(|rule| rule.id);
        decision
    }

    fn rule_denied(&self, rule: i64, login: Option<String>) -> Decision {
        Decision {
            user: login,
            rule: Some(rule),
            ..self.answer(false, Reason::RuleDenied)
        }
    }

    /// The client's country and AS number, where some rule or user needs them.
    fn located(&self, mut request: PlayRequest) -> PlayRequest {
        if self.policy.snapshot().needs_geo() {
            request.geo = self.geoip.lookup(request.client_ip);
        }
        request
    }

    /// Steps 4–10, for a request no access rule denied.
    async fn decide_identity(
        &self,
        request: &PlayRequest,
        key: &str,
        snapshot: Arc<PolicySnapshot>,
    ) -> Decision {
        let guessing =
            !request.credential.is_none() && snapshot.ip_rule(request.client_ip).is_none();
        if guessing && self.failures.is_limited(&guesser(request)) {
            return self.answer(false, Reason::RateLimited);
        }
        let password_verified = match self.verify_password_if_needed(request, &snapshot).await {
            // Every core is busy with bcrypt: refuse rather than queue.
            Some(Check::Busy) => return self.answer(false, Reason::RateLimited),
            Some(Check::Valid) => Some(true),
            Some(Check::Invalid) => Some(false),
            None => None,
        };
        let now = Utc::now();
        let evaluated = evaluate::evaluate_link(request, &snapshot, now, self.link_skew)
            .unwrap_or_else(|| evaluate::evaluate(request, &snapshot, now, password_verified));
        let admitted = match evaluated {
            Ok(admitted) => admitted,
            Err(Reason::UnknownToken) if self.ministra.is_some() => {
                drop(snapshot);
                return self.ask_ministra(request, key).await;
            }
            Err(reason) => {
                if matches!(reason, Reason::UnknownToken | Reason::BadCredentials) {
                    self.failures.record_failure(&guesser(request));
                }
                return self.answer(false, reason);
            }
        };
        drop(snapshot);

        let login = admitted.user.as_ref().map(|user| user.login.as_str());
        if let Some(grant) = &admitted.link {
            if let Err(reason) = self.may_start_with(request, key, login, grant).await {
                return Decision {
                    user: login.map(str::to_string),
                    ..self.answer(false, reason)
                };
            }
        }
        let max_sessions = admitted.user.as_ref().and_then(|user| user.max_sessions);
        let grantee = Grantee {
            login,
            max_sessions,
            max_devices: admitted.user.as_ref().and_then(|user| user.max_devices),
            reason: admitted.reason,
            duration: self.session_duration,
        };
        self.admit_session(request, key, grantee).await
    }

    /// A signed link past its window, or a `once` link used before, may only
    /// go on with the active session it started (a player reloading its
    /// playlist with the same link), never start another (SPEC §9). A once
    /// link's first start records its nonce, exactly once across replicas.
    async fn may_start_with(
        &self,
        request: &PlayRequest,
        key: &str,
        login: Option<&str>,
        grant: &evaluate::LinkGrant,
    ) -> Result<(), Reason> {
        if !grant.expired && grant.once_nonce.is_none() {
            return Ok(());
        }
        let spent = if grant.expired {
            Reason::LinkExpired
        } else {
            Reason::LinkUsed
        };
        let active = match self.live.session_of(key) {
            Some(active) => Some(active),
            None => self
                .bounded(async {
                    let client = self.pool.get().await?;
                    sessions::active_of_key(&client, key, login).await
                })
                .await
                .map_err(|e| self.link_state_failed(e))?,
        };
        if let Some((session_id, cookie_bound)) = active {
            // A player bound to its viewer cookie goes on only with it: a
            // second player on the same device (same address and agent, so
            // the same key behind forward-auth) with the same link starts
            // nothing (SPEC §3: never continued by IP and agent alone).
            let its_player = !cookie_bound
                || request
                    .hls
                    .cookies
                    .iter()
                    .any(|cookie| self.cookie_key.verify(cookie) == Some(session_id));
            return if its_player { Ok(()) } else { Err(spent) };
        }
        if grant.expired {
            return Err(spent);
        }
        let Some(nonce) = grant.once_nonce.as_deref() else {
            return Ok(());
        };
        let expires_at = chrono::DateTime::from_timestamp(grant.expires_at, 0)
            .unwrap_or_else(Utc::now)
            .max(Utc::now());
        let first = self
            .bounded(async {
                let client = self.pool.get().await?;
                link_uses::first_use(&client, &grant.key_id, nonce, expires_at).await
            })
            .await
            .map_err(|e| self.link_state_failed(e))?;
        if first {
            Ok(())
        } else {
            Err(Reason::LinkUsed)
        }
    }

    /// Whether a link may start cannot be told without the database: as for
    /// any new session then (`PLAYGATE_ON_DB_ERROR` is about admitting new
    /// sessions; a once link admitted twice is worse than one refused).
    fn link_state_failed(&self, error: StoreError) -> Reason {
        log::warn!("signed link state lookup failed: {error}");
        Reason::DbUnavailable
    }

    /// Steps 6–8 for a request that the policy let through.
    async fn admit_session(
        &self,
        request: &PlayRequest,
        key: &str,
        grantee: Grantee<'_>,
    ) -> Decision {
        let reason = grantee.reason;
        let (login, max_sessions, duration) =
            (grantee.login, grantee.max_sessions, grantee.duration);
        let mut decision = match self.admit(request, key, &grantee).await {
            Ok(AdmitOutcome::Allowed {
                session_id,
                active_sessions,
                started,
                watched_seconds,
                ..
            }) => {
                if started {
                    self.metrics.session_started(&request.stream);
                }
                self.metrics.watched(&request.stream, watched_seconds);
                Decision {
                    session_id: Some(session_id),
                    active_sessions: login.map(|_| active_sessions),
                    ..self.answer(true, reason)
                }
            }
            Ok(AdmitOutcome::Refused {
                refusal,
                active_sessions,
            }) => {
                let reason = match refusal {
                    Refusal::Kicked => Reason::SessionKicked,
                    Refusal::Limit => Reason::SessionLimit,
                    Refusal::Full => Reason::StreamFull,
                    Refusal::Device => Reason::DeviceLimit,
                };
                Decision {
                    active_sessions: login.map(|_| active_sessions),
                    ..self.answer(false, reason)
                }
            }
            // The database answered, and refused this statement (a row it
            // cannot store, a schema out of step): admitting anyway would let
            // the viewer play with no session recorded and no limit kept, for
            // as long as the cause lasts. Deny, whatever PLAYGATE_ON_DB_ERROR
            // says: that setting is about the database being unreachable.
            Err(e) if !e.is_unavailable() => {
                log::error!("session admission failed: {e}");
                self.answer(false, Reason::DbUnavailable)
            }
            Err(e) => {
                log::warn!("session admission failed: {e}");
                match (self.live.outage_answer(key), self.on_db_error) {
                    // An active session keeps playing through an outage, for a bounded time.
                    (Some(session_id), _) => Decision {
                        session_id: Some(session_id),
                        ..self.answer(true, reason)
                    },
                    (None, OnDbError::Deny) => self.answer(false, Reason::DbUnavailable),
                    (None, OnDbError::Allow) => self.answer(true, reason),
                }
            }
        };
        decision.user = login.map(str::to_string);
        decision.max_sessions = max_sessions;
        decision.duration = duration.as_secs();
        decision
    }

    /// The continuation part of `decide_or_continue`; None when the request
    /// has credentials, or no active session of a known user is found.
    async fn continue_session(&self, request: &PlayRequest) -> Option<(Decision, FoundBy)> {
        if !request.credential.is_none() || !matches!(request.event, Event::Start | Event::Refresh)
        {
            return None;
        }
        if let Some(decision) = self.continue_from_memory(request) {
            return Some((decision, FoundBy::ClientIp));
        }
        let (found, by) = self.find_player_session(request).await?;
        let matched = access_rule(&self.policy.snapshot(), request, false);
        if let Some(rule) = matched.filter(|rule| rule.action == RuleAction::Deny) {
            return Some((self.rule_denied(rule.id, found.login.clone()), by));
        }
        let grantee = match found.login.as_deref() {
            Some(login) => {
                let (user, verdict) = self.recheck(request, login)?;
                if let Err(reason) = verdict {
                    return Some((self.denied_on_recheck(login.to_string(), &user, reason), by));
                }
                Grantee {
                    login: Some(login),
                    max_sessions: user.max_sessions,
                    max_devices: user.max_devices,
                    reason: Reason::Ok,
                    duration: self.session_duration,
                }
            }
            // An anonymous viewer of a signed link: its cookie (set by the
            // link's start, never by an allow rule's) names the session.
            // Allow-listed viewers are decided by their IP as they are.
            None if by == FoundBy::Cookie => {
                if self.policy.snapshot().ip_rule(request.client_ip) == Some(RuleAction::Deny) {
                    return Some((self.answer(false, Reason::IpDenied), by));
                }
                Grantee {
                    login: None,
                    max_sessions: None,
                    max_devices: None,
                    reason: Reason::Ok,
                    duration: self.session_duration,
                }
            }
            None => return None,
        };
        let mut decision = self.admit_session(request, &found.key, grantee).await;
        decision.rule = matched.map(|rule| rule.id);
        if let (true, Some(session_id)) = (decision.allow, decision.session_id) {
            self.live.continued(
                &found.key,
                found.playback_id.as_deref(),
                found.cookie_seen,
                by == FoundBy::ClientIp,
            );
            // The player keeps cookies: from now on only its cookie (or
            // playback id) continues the session, on every replica.
            if by == FoundBy::Cookie && !found.cookie_seen {
                self.bind(session_id, &found.key, None, true).await
            }
        }
        Some((decision, by))
    }

    /// A continued request names no credentials; they were checked when the
    /// session started. What can change since is re-checked, as a refresh
    /// does. None: the user is gone.
    fn recheck(
        &self,
        request: &PlayRequest,
        login: &str,
    ) -> Option<(Arc<PolicyUser>, Result<(), Reason>)> {
        evaluate::recheck_session_user(
            &self.policy.snapshot(),
            login,
            canonical_ip(request.client_ip),
            request.geo.country,
            &request.stream,
            Utc::now(),
        )
    }

    fn denied_on_recheck(&self, login: String, user: &PolicyUser, reason: Reason) -> Decision {
        Decision {
            user: Some(login),
            max_sessions: user.max_sessions,
            ..self.answer(false, reason)
        }
    }

    /// The common HLS segment, answered under one lock of the live
    /// sessions: a player without cookie or playback id whose session this
    /// replica knows by client IP and can answer from memory. The user is
    /// re-checked as on the usual path, which decides whatever this does
    /// not (None).
    fn continue_from_memory(&self, request: &PlayRequest) -> Option<Decision> {
        if !request.hls.cookies.is_empty()
            || request.hls.playback_id.is_some()
            || self.hls_continuation == HlsContinuation::Strict
        {
            return None;
        }
        let viewer = viewer_ref(request);
        let mut continued = self
            .live
            .continue_viewer(viewer, self.session_duration + self.session_grace)?;
        // Anonymous (allow-listed) viewers: as the usual path decides.
        let Some(login) = continued.login.take() else {
            self.live.undo(&continued);
            return None;
        };
        let matched = access_rule(&self.policy.snapshot(), request, false);
        if let Some(rule) = matched.filter(|rule| rule.action == RuleAction::Deny) {
            self.live.undo(&continued);
            return Some(self.rule_denied(rule.id, Some(login)));
        }
        match self.recheck(request, &login) {
            Some((user, Ok(()))) => {
                self.metrics.session_refreshed(true);
                Some(Decision {
                    rule: matched.map(|rule| rule.id),
                    user: Some(login),
                    session_id: Some(continued.hit.session_id),
                    active_sessions: Some(continued.hit.active_sessions),
                    max_sessions: user.max_sessions,
                    ..self.answer(true, Reason::Ok)
                })
            }
            Some((user, Err(reason))) => {
                self.live.undo(&continued);
                Some(self.denied_on_recheck(login, &user, reason))
            }
            // The user is gone: as the usual path decides.
            None => {
                self.live.undo(&continued);
                None
            }
        }
    }

    /// The active session this player's request belongs to, and how it was
    /// found: from memory, else from the database.
    async fn find_player_session(&self, request: &PlayRequest) -> Option<(Found, FoundBy)> {
        let dialect = request.dialect;
        for value in &request.hls.cookies {
            let Some(session_id) = self.cookie_key.verify(value) else {
                continue;
            };
            let found = self
                .remembered_or_looked_up(self.live.by_session(session_id), |client| async move {
                    sessions::find_active_by_id(&client, dialect, session_id).await
                })
                .await;
            // A cookie names a session of one stream only.
            if let Some(found) = found.filter(|found| found.stream == request.stream) {
                return Some((found, FoundBy::Cookie));
            }
        }
        if let Some(playback_id) = request.hls.playback_id.as_deref() {
            let stream = request.stream.as_str();
            let remembered = self.live.by_playback(dialect, stream, playback_id);
            let found = self
                .remembered_or_looked_up(remembered, |client| async move {
                    sessions::find_active_by_playback_id(&client, dialect, stream, playback_id)
                        .await
                })
                .await;
            if let Some(found) = found {
                return Some((found, FoundBy::PlaybackId));
            }
        }
        if self.hls_continuation == HlsContinuation::Strict {
            return None;
        }
        let viewer = viewer_ref(request);
        let found = self
            .remembered_or_looked_up(self.live.latest_of(viewer), |client| async move {
                sessions::find_active_viewer(
                    &client,
                    viewer.dialect,
                    viewer.stream,
                    viewer.client_ip,
                    viewer.user_agent,
                )
                .await
            })
            .await;
        found.map(|found| (found, FoundBy::ClientIp))
    }

    /// The session this replica remembers, else the database's answer to
    /// `query`; a failed lookup is logged and finds nothing.
    async fn remembered_or_looked_up<F, Fut>(
        &self,
        remembered: Option<Found>,
        query: F,
    ) -> Option<Found>
    where
        F: FnOnce(crate::store::Client) -> Fut,
        Fut: std::future::Future<Output = Result<Option<ActiveViewer>, StoreError>>,
    {
        if remembered.is_some() {
            return remembered;
        }
        let found = self
            .bounded(async {
                let client = self.pool.get().await?;
                query(client).await
            })
            .await;
        match found {
            Ok(found) => found.map(|row| Found {
                key: row.key,
                login: row.login,
                stream: row.stream,
                playback_id: row.playback_id,
                cookie_seen: row.cookie_seen,
            }),
            Err(e) => {
                log::warn!("session lookup failed: {e}");
                None
            }
        }
    }

    /// A credentialed request's playback session id becomes its session's
    /// (once, or again when the player restarted with a new one).
    async fn bind_playback_id(&self, request: &PlayRequest, decision: &Decision) {
        let (Some(playback_id), Some(session_id)) =
            (request.hls.playback_id.as_deref(), decision.session_id)
        else {
            return;
        };
        let key = request.session_key();
        let known = self.live.binding_of(&key);
        if known.is_some_and(|(known, _)| known.as_deref() == Some(playback_id)) {
            return;
        }
        self.bind(session_id, &key, Some(playback_id), false).await;
    }

    /// Writes a binding (sql/V11 announces it to every replica) and
    /// remembers it; a failure leaves the session continuable as before.
    async fn bind(
        &self,
        session_id: Uuid,
        key: &str,
        playback_id: Option<&str>,
        cookie_seen: bool,
    ) {
        let written = self
            .bounded(async {
                let client = self.pool.get().await?;
                sessions::bind_viewer(&client, session_id, playback_id, cookie_seen).await
            })
            .await;
        match written {
            Ok(_) => self.live.bound(key, playback_id, cookie_seen),
            Err(e) => log::warn!("binding session {session_id} to its player failed: {e}"),
        }
    }

    /// The viewer cookie for the answer to an allowed playlist request of a
    /// user's session: it names the session for the player's next requests,
    /// for as long as the session holds.
    fn viewer_cookie(&self, request: &PlayRequest, decision: &Decision) -> Option<ViewerCookie> {
        let scope = request.hls.playlist.as_ref()?;
        let session_id = decision.session_id?;
        // A user's session, or a signed link's anonymous one; never one an
        // allow rule admitted, which its address alone decides.
        if decision.user.is_none() && decision.reason != Reason::Ok {
            return None;
        }
        Some(ViewerCookie {
            value: self.cookie_key.sign(session_id),
            scope: scope.clone(),
            max_age: decision.duration + self.session_grace.as_secs(),
        })
    }

    /// SPEC §6: a token playgate does not know, checked with the portal. IP
    /// rules were applied before; the portal's user, limit and duration
    /// become the session's.
    async fn ask_ministra(&self, request: &PlayRequest, key: &str) -> Decision {
        let (Some(ministra), Some(token)) = (&self.ministra, request.credential.token()) else {
            return self.answer(false, Reason::UnknownToken);
        };
        match ministra.check(token).await {
            Verdict::Allowed(grant) => {
                let grantee = Grantee {
                    login: Some(&grant.login),
                    max_sessions: grant.max_sessions,
                    max_devices: None,
                    reason: Reason::Ok,
                    duration: grant.duration,
                };
                self.admit_session(request, key, grantee).await
            }
            Verdict::Denied => {
                self.failures.record_failure(&guesser(request));
                self.answer(false, Reason::UnknownToken)
            }
            Verdict::Unavailable => self.answer(false, Reason::UpstreamUnavailable),
        }
    }

    /// Database work of a hook, bounded by `db_timeout`: a database that
    /// hangs must not hang the streamer.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.db_timeout, work)
            .await
            .unwrap_or_else(|_| Err(StoreError::Timeout))
    }

    /// Steps 7–10. A refresh of a session this replica answered for is
    /// answered from memory, its heartbeat written with the next batch;
    /// anything else is decided by PostgreSQL.
    async fn admit(
        &self,
        request: &PlayRequest,
        key: &str,
        grantee: &Grantee<'_>,
    ) -> Result<AdmitOutcome, StoreError> {
        let (login, duration) = (grantee.login, grantee.duration);
        let hold = duration + self.session_grace;
        if let Some(hit) = self.live.refresh(key, login, hold, request.bytes) {
            self.metrics.session_refreshed(true);
            return Ok(AdmitOutcome::Allowed {
                session_id: hit.session_id,
                active_sessions: hit.active_sessions,
                started: false,
                // Counted when the heartbeat is written.
                watched_seconds: 0.0,
                replaced: 0,
                limited: 0,
            });
        }
        // Where the viewer is, for the row: what the rule check looked up,
        // else looked up now (only admissions reach here, not the refreshes
        // answered from memory).
        let geo = match request.geo {
            Geo::UNKNOWN => self.geoip.lookup(request.client_ip),
            known => known,
        };
        let admission = Admission {
            key: key.to_string(),
            login: login.map(str::to_string),
            max_sessions: grantee.max_sessions,
            limit_policy: self.limit_policy,
            stream: request.stream.clone(),
            client_ip: canonical_ip(request.client_ip),
            protocol: request.protocol.clone(),
            dialect: request.dialect,
            streamer: request.streamer.clone(),
            user_agent: request.user_agent.clone(),
            bytes: request.bytes,
            hold,
            block: duration,
            device: request.device(),
            max_devices: grantee.max_devices,
            packages: self.policy.snapshot().packages_of_stream(&request.stream),
            refresh: request.event == Event::Refresh,
            zapping: self.zapping == Zapping::Replace,
            max_viewers: self.max_viewers,
            country: self.geoip.has_country_db().then_some(geo.country),
            asn: self.geoip.has_asn_db().then_some(geo.asn),
            token_hash: login
                .and(request.credential.token())
                .map(crate::domain::hash_token),
        };
        let asked_at = Instant::now();
        let outcome = self.bounded(self.admissions.admit(admission)).await?;
        if let AdmitOutcome::Allowed {
            session_id,
            active_sessions,
            started,
            replaced,
            limited,
            ..
        } = outcome
        {
            if !started {
                self.metrics.session_refreshed(false);
            }
            self.metrics.sessions_ended("replaced", replaced);
            self.metrics.sessions_ended("limit", limited);
            // This start ended other sessions of the user (zapping,
            // kick_oldest) in the same statement: their next refresh must
            // reach the database (refused), not this replica's memory, even
            // before the end is announced.
            if let (true, Some(login)) = (replaced + limited > 0, login) {
                self.live.forget_login(login);
            }
            let admitted = live::Admitted {
                session_id,
                login: login.map(str::to_string),
                viewer: viewer_of(request),
                hold,
                active_sessions,
                asked_at,
            };
            self.live.admitted(key, admitted);
        }
        Ok(outcome)
    }

    /// Writes the refreshes answered from memory since the last batch, in
    /// statements of at most `HEARTBEAT_BATCH` rows, for at most one
    /// interval; returns how many sessions it covered. A failed statement
    /// puts its beats back and ends the round: the next round starts with a
    /// batch of the same bounded size.
    pub async fn write_heartbeats(&self) -> Result<usize, StoreError> {
        let started = Instant::now();
        let mut written = 0;
        loop {
            let covered = self.write_heartbeat_batch().await?;
            written += covered;
            if covered < HEARTBEAT_BATCH || started.elapsed() >= HEARTBEAT_INTERVAL {
                return Ok(written);
            }
        }
    }

    async fn write_heartbeat_batch(&self) -> Result<usize, StoreError> {
        let beats = self.live.take_beats(HEARTBEAT_BATCH);
        if beats.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        let rows: Vec<Heartbeat> = beats
            .iter()
            .map(|beat| Heartbeat {
                session_id: beat.session_id,
                age: now.saturating_duration_since(beat.seen_at),
                hold: beat.hold,
                bytes: beat.bytes,
            })
            .collect();
        let written = self
            .bounded(async {
                let client = self.pool.get().await?;
                sessions::heartbeat(&client, &rows).await
            })
            .await;
        match written {
            Ok(extended) => {
                for row in &extended {
                    self.metrics.watched(&row.stream, row.watched_seconds);
                }
                let ids: Vec<Uuid> = extended.iter().map(|row| row.session_id).collect();
                self.live.written(&beats, &ids);
                Ok(beats.len())
            }
            Err(e) => {
                self.live.unwritten(beats);
                Err(e)
            }
        }
    }

    /// A session ended (through this replica, or announced by PostgreSQL):
    /// its next refresh is decided by the database.
    pub fn forget_session(&self, session_id: Uuid) {
        self.live.forget_session(session_id);
    }

    /// A user's sessions were ended (the account was deleted).
    pub fn forget_user_sessions(&self, login: &str) {
        self.live.forget_login(login);
    }

    /// Announcements may have been missed (the listening connection was
    /// down): every next refresh is decided by the database again.
    pub fn forget_all_sessions(&self) {
        self.live.clear();
    }

    /// A stop always succeeds for the streamer; it ends the session if there is one.
    async fn stop(&self, request: &PlayRequest, key: &str) -> Decision {
        self.live.forget_key(key);
        let stopped = self
            .bounded(async {
                let client = self.pool.get().await?;
                sessions::stop(&client, key, request.bytes).await
            })
            .await;
        let mut decision = self.answer(true, Reason::Ok);
        match stopped {
            Ok(Some(stopped)) => {
                self.metrics.sessions_ended("stopped", 1);
                self.metrics
                    .watched(&stopped.stream, stopped.watched_seconds);
                decision.session_id = Some(stopped.session_id);
                decision.user = stopped.login;
            }
            Ok(None) => {}
            Err(e) => log::warn!("session stop failed: {e}"),
        }
        decision
    }

    /// bcrypt, only when the request carries login:password and no IP rule
    /// settles it first; off the executor, once per verified triple, and
    /// `Busy` rather than one more when the cap is reached.
    async fn verify_password_if_needed(
        &self,
        request: &PlayRequest,
        snapshot: &PolicySnapshot,
    ) -> Option<Check> {
        let Credential::Password { login, password } = &request.credential else {
            return None;
        };
        if snapshot.ip_rule(request.client_ip).is_some() {
            return None;
        }
        let Some(hash) = snapshot
            .user(login)
            .and_then(|user| user.password_hash.clone())
        else {
            // As slow as a wrong password, so logins cannot be probed by timing.
            return Some(self.passwords.verify_unknown(login, password).await);
        };
        Some(self.passwords.verify(login, password, &hash).await)
    }
}

/// SPEC §2 step 3: the first access rule the request matches, unless
/// an IP list settles it first (steps 1–2). `start`: whether referer
/// conditions apply (a start's request carries the page's referer;
/// refreshes and segments carry none).
fn access_rule(snapshot: &PolicySnapshot, request: &PlayRequest, start: bool) -> Option<RuleMatch> {
    let rules = snapshot.access_rules();
    if rules.is_empty() || snapshot.ip_rule(request.client_ip).is_some() {
        return None;
    }
    let referer = start.then(|| access_rule::referer_host(&request.referer));
    rules.first_match(&RuleSubject {
        ip: request.client_ip,
        country: request.geo.country,
        asn: request.geo.asn,
        user_agent: &request.user_agent,
        referer_host: referer.as_deref(),
        stream: &request.stream,
        protocol: &request.protocol,
        dialect: request.dialect,
    })
}

/// Who is guessing, for the failure limiter: the client, as its caller
/// claims it where the caller is known (`/hook/decide`).
fn guesser(request: &PlayRequest) -> Guesser {
    match request.caller {
        Some(caller) => Guesser::via(caller, request.client_ip),
        None => Guesser::client(request.client_ip),
    }
}

/// Who is fetching: how a request without credentials finds its session.
/// The request's viewer, borrowed (for lookups).
fn viewer_ref(request: &PlayRequest) -> ViewerRef<'_> {
    ViewerRef {
        dialect: request.dialect,
        stream: &request.stream,
        client_ip: canonical_ip(request.client_ip),
        user_agent: &request.user_agent,
    }
}

fn viewer_of(request: &PlayRequest) -> Viewer {
    Viewer {
        dialect: request.dialect,
        stream: request.stream.clone(),
        client_ip: canonical_ip(request.client_ip),
        user_agent: request.user_agent.clone(),
    }
}
