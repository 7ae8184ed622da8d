//! Runs a `PlayRequest` through the whole decision: the pure policy (steps
//! 1–5) against the in-memory view, then admission (steps 6–8): a refresh of
//! a session this replica admitted from its memory (`live`, heartbeats
//! written in batches), anything else in PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::evaluate;
use super::live::{self, LiveSessions, Viewer};
use super::{Credential, Decision, Event, PlayRequest, Reason};
use crate::config::Settings;
use crate::domain::{canonical_ip, LimitPolicy, OnDbError};
use crate::metrics::Metrics;
use crate::password::PasswordVerifier;
use crate::policy_view::{PolicySnapshot, PolicyView};
use crate::rate_limit::FailureLimiter;
use crate::store::sessions::{self, Admission, AdmitOutcome, Heartbeat, Refusal};
use crate::store::{Pool, StoreError};
use crate::upstream::ministra::{MinistraClient, Verdict};

/// How often the refreshes answered from memory are written, as one batch.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// A session is answered from memory only while its row has this long to
/// live: room for a few batches to extend it, even slow ones.
const LIVE_MARGIN: Duration = Duration::from_secs(2);

/// Who a session is admitted for, and for how long the answer holds.
struct Grantee<'a> {
    login: Option<&'a str>,
    max_sessions: Option<i32>,
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
    ministra: Option<MinistraClient>,
}

impl Engine {
    pub fn new(
        settings: &Settings,
        pool: Pool,
        policy: Arc<PolicyView>,
        metrics: Arc<Metrics>,
        passwords: Arc<PasswordVerifier>,
        failures: Arc<FailureLimiter>,
    ) -> Engine {
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
            ministra: settings.ministra_url.as_deref().map(MinistraClient::new),
        }
    }

    pub fn session_duration(&self) -> Duration {
        self.session_duration
    }

    /// Decides and records the decision in the metrics.
    pub async fn decide(&self, request: PlayRequest) -> Decision {
        let started = Instant::now();
        let decision = self.decide_unrecorded(&request).await;
        self.record(&request, &decision, started);
        decision
    }

    /// For a request without credentials (forward-auth: HLS/DASH segments and
    /// child playlists, whose relative URLs drop the token): continues the
    /// active session of the same stream, client IP and user agent when there
    /// is one, re-checking the session's user (steps 1, 4, 5); otherwise
    /// decides the request as it is (IP rules, IP-bound users, else
    /// `no_credentials`). Only a request with credentials starts a session
    /// for a token or password user.
    pub async fn decide_or_continue(&self, request: PlayRequest) -> Decision {
        let started = Instant::now();
        let decision = match self.continue_session(&request).await {
            Some(decision) => decision,
            None => self.decide_unrecorded(&request).await,
        };
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
            log::info!(
                "deny {} dialect={} stream={} ip={} user={}",
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
        }
    }

    async fn decide_unrecorded(&self, request: &PlayRequest) -> Decision {
        let key = request.session_key();
        match request.event {
            Event::Stop => return self.stop(request, &key).await,
            Event::Publish => return self.answer(false, Reason::PublishNotAllowed),
            Event::Start | Event::Refresh => {}
        }

        let snapshot = self.policy.snapshot();
        let guessing =
            !request.credential.is_none() && snapshot.ip_rule(request.client_ip).is_none();
        if guessing && self.failures.is_limited(request.client_ip) {
            return self.answer(false, Reason::RateLimited);
        }
        let password_verified = self.verify_password_if_needed(request, &snapshot).await;
        let admitted = match evaluate::evaluate(request, &snapshot, Utc::now(), password_verified) {
            Ok(admitted) => admitted,
            Err(Reason::UnknownToken) if self.ministra.is_some() => {
                drop(snapshot);
                return self.ask_ministra(request, &key).await;
            }
            Err(reason) => {
                if matches!(reason, Reason::UnknownToken | Reason::BadCredentials) {
                    self.failures.record_failure(request.client_ip);
                }
                return self.answer(false, reason);
            }
        };
        drop(snapshot);

        let login = admitted.user.as_ref().map(|user| user.login.as_str());
        let max_sessions = admitted.user.as_ref().and_then(|user| user.max_sessions);
        let grantee = Grantee {
            login,
            max_sessions,
            reason: admitted.reason,
            duration: self.session_duration,
        };
        self.admit_session(request, &key, grantee).await
    }

    /// Steps 6–8 for a request that the policy let through.
    async fn admit_session(
        &self,
        request: &PlayRequest,
        key: &str,
        grantee: Grantee<'_>,
    ) -> Decision {
        let Grantee {
            login,
            max_sessions,
            reason,
            duration,
        } = grantee;
        let admission = Admission {
            key,
            login,
            max_sessions,
            limit_policy: self.limit_policy,
            stream: &request.stream,
            client_ip: canonical_ip(request.client_ip),
            protocol: &request.protocol,
            dialect: request.dialect,
            streamer: &request.streamer,
            user_agent: &request.user_agent,
            bytes: request.bytes,
            hold: duration + self.session_grace,
            block: duration,
        };
        let mut decision = match self.admit(request, &admission).await {
            Ok(AdmitOutcome::Allowed {
                session_id,
                active_sessions,
                started,
                watched_seconds,
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
                };
                Decision {
                    active_sessions: login.map(|_| active_sessions),
                    ..self.answer(false, reason)
                }
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
    /// has credentials, or no active session of a known user matches.
    async fn continue_session(&self, request: &PlayRequest) -> Option<Decision> {
        if !request.credential.is_none() || !matches!(request.event, Event::Start | Event::Refresh)
        {
            return None;
        }
        let viewer = viewer_of(request);
        let (key, login) = match self.live.latest_of(&viewer) {
            Some(known) => known,
            None => {
                let found = self
                    .bounded(async {
                        let client = self.pool.get().await?;
                        sessions::find_active_viewer(
                            &client,
                            viewer.dialect,
                            &viewer.stream,
                            viewer.client_ip,
                            &viewer.user_agent,
                        )
                        .await
                    })
                    .await;
                match found {
                    Ok(Some(found)) => (found.key, found.login),
                    Ok(None) => return None,
                    Err(e) => {
                        log::warn!("session lookup failed: {e}");
                        return None;
                    }
                }
            }
        };
        // Anonymous (allow-listed) viewers are decided by their IP as they are.
        let login = login?;
        // The credentials were checked when the session started; re-check
        // what can change since, as a refresh does.
        let (user, verdict) = evaluate::recheck_session_user(
            &self.policy.snapshot(),
            &login,
            viewer.client_ip,
            &request.stream,
            Utc::now(),
        )?;
        if let Err(reason) = verdict {
            return Some(Decision {
                user: Some(login),
                max_sessions: user.max_sessions,
                ..self.answer(false, reason)
            });
        }
        Some(
            self.admit_session(
                request,
                &key,
                Grantee {
                    login: Some(&login),
                    max_sessions: user.max_sessions,
                    reason: Reason::Ok,
                    duration: self.session_duration,
                },
            )
            .await,
        )
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
                    reason: Reason::Ok,
                    duration: grant.duration,
                };
                self.admit_session(request, key, grantee).await
            }
            Verdict::Denied => {
                self.failures.record_failure(request.client_ip);
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

    /// Steps 6–8. A refresh of a session this replica answered for is
    /// answered from memory, its heartbeat written with the next batch;
    /// anything else is decided by PostgreSQL.
    async fn admit(
        &self,
        request: &PlayRequest,
        admission: &Admission<'_>,
    ) -> Result<AdmitOutcome, StoreError> {
        if let Some(hit) = self.live.refresh(
            admission.key,
            admission.login,
            admission.hold,
            admission.bytes,
        ) {
            self.metrics.session_refreshed(true);
            return Ok(AdmitOutcome::Allowed {
                session_id: hit.session_id,
                active_sessions: hit.active_sessions,
                started: false,
                // Counted when the heartbeat is written.
                watched_seconds: 0.0,
            });
        }
        let asked_at = Instant::now();
        let outcome = self
            .bounded(async {
                let client = self.pool.get().await?;
                sessions::admit(&client, admission).await
            })
            .await?;
        if let AdmitOutcome::Allowed {
            session_id,
            active_sessions,
            started,
            ..
        } = outcome
        {
            if !started {
                self.metrics.session_refreshed(false);
            }
            let admitted = live::Admitted {
                session_id,
                login: admission.login.map(str::to_string),
                viewer: viewer_of(request),
                hold: admission.hold,
                active_sessions,
                asked_at,
            };
            self.live.admitted(admission.key, admitted);
        }
        Ok(outcome)
    }

    /// Writes the refreshes answered from memory since the last batch, in
    /// one statement; returns how many sessions it covered.
    pub async fn write_heartbeats(&self) -> Result<usize, StoreError> {
        let beats = self.live.take_beats();
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
    /// settles it first; off the executor, and once per verified triple.
    async fn verify_password_if_needed(
        &self,
        request: &PlayRequest,
        snapshot: &PolicySnapshot,
    ) -> Option<bool> {
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
            self.passwords.verify_unknown(login, password).await;
            return Some(false);
        };
        Some(self.passwords.verify(login, password, &hash).await)
    }
}

/// Who is fetching: how a request without credentials finds its session.
fn viewer_of(request: &PlayRequest) -> Viewer {
    Viewer {
        dialect: request.dialect,
        stream: request.stream.clone(),
        client_ip: canonical_ip(request.client_ip),
        user_agent: request.user_agent.clone(),
    }
}
