//! Ministra / Stalker portal as an upstream authority: tokens that are not
//! playgate's are checked with the portal's Flussonic temporary-link endpoint
//! (`<portal>/server/api/chk_flussonic_tmp_link.php?token=…`).
//!
//! The portal keeps a temporary link for seconds only and expects the streamer
//! to remember its grant for `X-AuthDuration`, so a 200 is cached (keyed by the
//! token's SHA-256) for that long: refreshes never ask the portal again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{hash_token, redact_url};

/// SPEC §6: an unreachable or slow portal must never hang a streamer.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Used when the portal's 200 carries no usable X-AuthDuration.
const DEFAULT_GRANT: Duration = Duration::from_secs(36_000);
/// The longest grant believed: the portal's answer is untrusted input, and a
/// day is longer than any temporary link lives.
pub const MAX_GRANT: Duration = Duration::from_secs(86_400);
const MAX_CACHED: usize = 100_000;

/// What the portal said about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Grant),
    /// 403: unknown or expired temporary link.
    Denied,
    /// Unreachable, 5xx, anything unexpected, or slower than `TIMEOUT`.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The session's user: `ministra:<X-UserId>`.
    pub login: String,
    pub max_sessions: Option<i32>,
    /// How long the portal's answer holds (X-AuthDuration).
    pub duration: Duration,
}

/// `X-AuthDuration` as a grant's duration: whole seconds, at most
/// `MAX_GRANT`; absent, zero or unparsable → `DEFAULT_GRANT`.
pub fn grant_duration(header: Option<&str>) -> Duration {
    match header.map(str::parse::<u64>) {
        Some(Ok(seconds)) if seconds > 0 => Duration::from_secs(seconds).min(MAX_GRANT),
        // Digits beyond u64: longer than any limit.
        Some(Err(_))
            if header.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) =>
        {
            MAX_GRANT
        }
        _ => DEFAULT_GRANT,
    }
}

pub struct MinistraClient {
    check_url: String,
    /// `check_url` as logged: a password in the portal URL redacted.
    shown_url: String,
    http: reqwest::Client,
    grants: Mutex<HashMap<[u8; 32], (Grant, Instant)>>,
}

impl MinistraClient {
    /// `portal_url` as configured, e.g. `http://portal/stalker_portal`.
    pub fn new(portal_url: &str) -> MinistraClient {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client settings are valid");
        let check_url = format!(
            "{}/server/api/chk_flussonic_tmp_link.php",
            portal_url.trim_end_matches('/')
        );
        MinistraClient {
            shown_url: redact_url(&check_url),
            check_url,
            http,
            grants: Mutex::new(HashMap::new()),
        }
    }

    /// A grant remembered from an earlier 200, if it still holds.
    fn cached(&self, key: &[u8; 32]) -> Option<Grant> {
        let grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        grants
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(grant, _)| grant.clone())
    }

    fn remember(&self, key: [u8; 32], grant: &Grant) {
        let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        if grants.len() >= MAX_CACHED {
            let now = Instant::now();
            grants.retain(|_, (_, until)| *until > now);
            if grants.len() >= MAX_CACHED {
                grants.clear();
            }
        }
        // The duration is clamped when read (MAX_GRANT); checked all the
        // same: an overflow here once panicked with the lock held.
        let Some(until) = Instant::now().checked_add(grant.duration) else {
            return;
        };
        grants.insert(key, (grant.clone(), until));
    }

    pub async fn check(&self, token: &str) -> Verdict {
        let key = hash_token(token);
        if let Some(grant) = self.cached(&key) {
            return Verdict::Allowed(grant);
        }
        let response = match self
            .http
            .get(&self.check_url)
            .query(&[("token", token)])
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                // reqwest's error text includes the URL, and so the token: log the kind only.
                let kind = if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                };
                log::warn!("ministra portal {kind}: {}", self.shown_url);
                return Verdict::Unavailable;
            }
        };
        match response.status().as_u16() {
            200 => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(str::trim)
                        .filter(|value| !value.is_empty())
                };
                let Some(user_id) = header("X-UserId") else {
                    log::warn!("ministra portal answered 200 without X-UserId");
                    return Verdict::Unavailable;
                };
                let grant = Grant {
                    login: format!("ministra:{user_id}"),
                    max_sessions: header("X-Max-Sessions")
                        .and_then(|v| v.parse().ok())
                        .filter(|n: &i32| *n >= 0),
                    duration: grant_duration(header("X-AuthDuration")),
                };
                self.remember(key, &grant);
                Verdict::Allowed(grant)
            }
            403 | 404 => Verdict::Denied,
            status => {
                log::warn!("ministra portal answered {status}");
                Verdict::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_durations_are_clamped() {
        for (header, seconds) in [
            (None, DEFAULT_GRANT.as_secs()),
            (Some("120"), 120),
            (Some("0"), DEFAULT_GRANT.as_secs()),
            (Some("-5"), DEFAULT_GRANT.as_secs()),
            (Some("soon"), DEFAULT_GRANT.as_secs()),
            (Some("86401"), 86_400),
            (Some("18446744073709551615"), 86_400),
            (Some("99999999999999999999999"), 86_400),
        ] {
            assert_eq!(grant_duration(header).as_secs(), seconds, "{header:?}");
        }
    }

    #[test]
    fn a_poisoned_cache_still_answers() {
        let client = MinistraClient::new("http://127.0.0.1:9/portal");
        let grant = Grant {
            login: "ministra:1".into(),
            max_sessions: None,
            duration: Duration::from_secs(60),
        };
        client.remember([1; 32], &grant);
        // A panic while the lock is held poisons it.
        let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = client.grants.lock().unwrap();
            panic!("while holding the lock");
        }));
        assert!(poisoned.is_err() && client.grants.is_poisoned());
        assert_eq!(client.cached(&[1; 32]), Some(grant.clone()));
        client.remember([2; 32], &grant);
        assert_eq!(client.cached(&[2; 32]), Some(grant));
    }
}
