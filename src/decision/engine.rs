//! Runs a `PlayRequest` through the whole decision: the pure policy (steps
//! 1–5) against the in-memory view, then admission (steps 6–8) in PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_postgres::Pool;

use super::policy::{self, PolicySnapshot};
use super::{Decision, Event, PlayRequest, Reason};
use crate::config::{LimitPolicy, OnDbError, Settings};
use crate::credentials::VerifiedCredentials;
use crate::metrics::Metrics;
use crate::policy_view::PolicyView;
use crate::store::sessions::{self, Admission, AdmitOutcome, Refusal};
use crate::store::StoreError;

pub struct Engine {
    pool: Pool,
    policy: Arc<PolicyView>,
    metrics: Arc<Metrics>,
    session_duration: Duration,
    session_grace: Duration,
    limit_policy: LimitPolicy,
    on_db_error: OnDbError,
    verified: VerifiedCredentials,
}

impl Engine {
    pub fn new(
        settings: &Settings,
        pool: Pool,
        policy: Arc<PolicyView>,
        metrics: Arc<Metrics>,
    ) -> Engine {
        Engine {
            pool,
            policy,
            metrics,
            session_duration: settings.session_duration,
            session_grace: settings.session_grace,
            limit_policy: settings.limit_policy,
            on_db_error: settings.on_db_error,
            verified: VerifiedCredentials::default(),
        }
    }

    pub fn session_duration(&self) -> Duration {
        self.session_duration
    }

    /// Decides and records the decision in the metrics.
    pub async fn decide(&self, request: PlayRequest) -> Decision {
        let started = Instant::now();
        let decision = self.decide_unrecorded(&request).await;
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
        decision
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
        if request.event == Event::Stop {
            return self.stop(request, &key).await;
        }

        let snapshot = self.policy.snapshot();
        let password_verified = self.verify_password_if_needed(request, &snapshot).await;
        let admitted = match policy::evaluate(request, &snapshot, Utc::now(), password_verified) {
            Ok(admitted) => admitted,
            Err(reason) => return self.answer(false, reason),
        };
        drop(snapshot);

        let login = admitted.user.as_ref().map(|user| user.login.as_str());
        let max_sessions = admitted.user.as_ref().and_then(|user| user.max_sessions);
        let admission = Admission {
            key: &key,
            login,
            max_sessions,
            limit_policy: self.limit_policy,
            stream: &request.stream,
            client_ip: policy::canonical_ip(request.client_ip),
            protocol: &request.protocol,
            dialect: request.dialect,
            streamer: &request.streamer,
            user_agent: &request.user_agent,
            bytes: request.bytes,
            hold: self.session_duration + self.session_grace,
            block: self.session_duration,
        };
        let mut decision = match self.admit(&admission).await {
            Ok(AdmitOutcome::Allowed {
                session_id,
                active_sessions,
            }) => Decision {
                session_id: Some(session_id),
                active_sessions: login.map(|_| active_sessions),
                ..self.answer(true, admitted.reason)
            },
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
                match self.on_db_error {
                    OnDbError::Deny => self.answer(false, Reason::DbUnavailable),
                    OnDbError::Allow => self.answer(true, admitted.reason),
                }
            }
        };
        decision.user = login.map(str::to_string);
        decision.max_sessions = max_sessions;
        decision
    }

    async fn admit(&self, admission: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        sessions::admit(&mut client, admission).await
    }

    /// A stop always succeeds for the streamer; it ends the session if there is one.
    async fn stop(&self, request: &PlayRequest, key: &str) -> Decision {
        let stopped = async {
            let client = self.pool.get().await?;
            sessions::stop(&client, key, request.bytes).await
        }
        .await;
        let mut decision = self.answer(true, Reason::Ok);
        match stopped {
            Ok(Some((session_id, login))) => {
                decision.session_id = Some(session_id);
                decision.user = login;
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
        let credentials = &request.credentials;
        if credentials.token.is_some() || snapshot.ip_rule(request.client_ip).is_some() {
            return None;
        }
        let (Some(login), Some(password)) = (&credentials.login, &credentials.password) else {
            return None;
        };
        let Some(hash) = snapshot
            .user(login)
            .and_then(|user| user.password_hash.clone())
        else {
            return Some(false);
        };
        Some(self.verified.verify(login, password, &hash).await)
    }
}
