//! Drop calls: a viewer whose session playgate ended (kick, `kick_oldest`,
//! zapping, an account or token barred) is cut off at its streamer through
//! the streamer's control API (SPEC §12), not at a refresh that may come a
//! minute later, or never (Astra).
//!
//! The calls are rows of `streamer_calls`, written by a trigger in the
//! transaction that ends the session (sql/V20). Every replica polls for due
//! rows and claims a few with `FOR UPDATE SKIP LOCKED` and a lease: one
//! replica makes a given call, and when it dies mid-call another takes the
//! row over once the lease has passed. Nothing here is on a hook's path: a
//! dead control API never slows a decision.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;

use crate::background::{tick, StopSignal};
use crate::metrics::Metrics;
use crate::store::streamers::{self, ControlApi, DueCall};
use crate::store::Pool;

/// How often each replica looks for due calls: well within SPEC §12's 1 s.
const POLL: Duration = Duration::from_millis(200);
/// Calls claimed per poll, and in flight per replica.
const CLAIM: i64 = 32;
/// One attempt's time limit; the MediaMTX fallback may make two requests.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than an attempt can take: a row is only taken over from a
/// replica that stopped.
const LEASE: Duration = Duration::from_secs(15);
/// Retries start after 1 s and double, at most this far apart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The streamer dropped the viewer.
    Dropped,
    /// The streamer no longer has it: nothing to retry.
    Gone(String),
    /// Worth another attempt (the API down, an error, an unknown answer).
    Failed(String),
}

impl Outcome {
    /// The `result` label of `playgate_streamer_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Dropped => "dropped",
            Outcome::Gone(_) => "gone",
            Outcome::Failed(_) => "error",
        }
    }
}

/// The HTTP client of every control call: short timeouts, no redirects
/// (a control URL that redirects is misconfigured, and the credentials
/// must not follow it elsewhere).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client settings are valid")
}

/// Makes due drop calls until the application stops.
pub async fn deliver(pool: Pool, metrics: Arc<Metrics>, retry_for: Duration, mut stop: StopSignal) {
    let http = http_client();
    let slots = Arc::new(Semaphore::new(CLAIM as usize));
    while tick(POLL, &mut stop).await {
        let free = slots.available_permits() as i64;
        if free == 0 {
            continue;
        }
        let claimed = async {
            let client = pool.get().await?;
            streamers::claim_calls(&client, free, LEASE).await
        }
        .await;
        let due = match claimed {
            Ok(due) => due,
            Err(e) => {
                log::warn!("looking for due streamer calls failed: {e}");
                continue;
            }
        };
        for call in due {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (pool, metrics, http) = (pool.clone(), Arc::clone(&metrics), http.clone());
            tokio::spawn(async move {
                attempt(&pool, &metrics, &http, call, retry_for).await;
                drop(permit);
            });
        }
    }
}

async fn attempt(
    pool: &Pool,
    metrics: &Metrics,
    http: &reqwest::Client,
    call: DueCall,
    retry_for: Duration,
) {
    let outcome = drop_viewer(http, &call).await;
    metrics.streamer_call(&call.api.kind, outcome.label());
    let (status, result, retry_in) = match &outcome {
        Outcome::Dropped => ("done", "dropped".to_string(), None),
        Outcome::Gone(detail) => ("done", format!("already gone: {detail}"), None),
        Outcome::Failed(detail) => {
            let delay = backoff(call.attempts);
            let age = (Utc::now() - call.created_at).to_std().unwrap_or_default();
            if age + delay > retry_for {
                metrics.streamer_call(&call.api.kind, "given_up");
                log::warn!(
                    "streamer {} ({}): gave up dropping session {} after {} attempts: {detail}",
                    call.api.name,
                    call.api.kind,
                    call.session_id,
                    call.attempts + 1
                );
                ("failed", detail.clone(), None)
            } else {
                log::debug!(
                    "streamer {}: drop of session {} failed ({detail}), again in {delay:?}",
                    call.api.name,
                    call.session_id
                );
                ("pending", detail.clone(), Some(delay))
            }
        }
    };
    let recorded = async {
        let client = pool.get().await?;
        streamers::call_attempted(&client, call.id, status, &result, retry_in).await
    }
    .await;
    if let Err(e) = recorded {
        // The lease runs out and the call is made again: at least once.
        log::warn!("recording a streamer call failed: {e}");
    }
}

/// 1 s, 2 s, 4 s, … at most `MAX_BACKOFF`.
pub fn backoff(attempts_before: i32) -> Duration {
    super::doubled(
        Duration::from_secs(1),
        attempts_before.max(0) as u32,
        MAX_BACKOFF,
    )
}

/// The call SPEC §12 gives for the streamer's kind.
pub async fn drop_viewer(http: &reqwest::Client, call: &DueCall) -> Outcome {
    let base = call.api.control_url.trim_end_matches('/');
    match call.api.kind.as_str() {
        "nginx-rtmp" => {
            // The hook's session id is `{clientid}/{app}/{name}`, its stream
            // `{app}/{name}` (hooks/nginx_rtmp.rs).
            let clientid = call.target.split('/').next().unwrap_or_default();
            let (app, name) = call.stream.split_once('/').unwrap_or((&call.stream, ""));
            if clientid.is_empty() || app.is_empty() || name.is_empty() {
                // Empty arguments widen nginx's walk to every session.
                return Outcome::Failed(format!("no client id in '{}'", call.target));
            }
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("app", app)
                .append_pair("name", name)
                .append_pair("clientid", clientid)
                .finish();
            let request = http.get(format!("{base}/drop/client?{query}"));
            match send(request, &call.api).await {
                Ok((200, body)) => match body.trim().parse::<u64>() {
                    Ok(0) => Outcome::Gone("no such connection".into()),
                    Ok(_) => Outcome::Dropped,
                    Err(_) => Outcome::Failed(format!("answer '{}'", excerpt(&body))),
                },
                Ok((status, body)) => Outcome::Failed(status_text(status, &body)),
                Err(e) => Outcome::Failed(e),
            }
        }
        "srs" => {
            let request = http.delete(format!(
                "{base}/api/v1/clients/{}",
                path_segment(&call.target)
            ));
            match send(request, &call.api).await {
                // SRS answers 200 with its own code: 0 done, 2049
                // ERROR_RTMP_CLIENT_NOT_FOUND (srs_app_http_api.cpp).
                Ok((200, body)) => match srs_code(&body) {
                    Some(0) => Outcome::Dropped,
                    Some(SRS_CLIENT_NOT_FOUND) => Outcome::Gone("code 2049".into()),
                    Some(code) => Outcome::Failed(format!("SRS code {code}")),
                    None => Outcome::Failed(format!("answer '{}'", excerpt(&body))),
                },
                Ok((status, body)) => Outcome::Failed(status_text(status, &body)),
                Err(e) => Outcome::Failed(e),
            }
        }
        "mediamtx" => {
            let kinds = mediamtx_kinds(&call.protocol);
            if kinds.is_empty() {
                return Outcome::Failed(format!("no kick for protocol '{}'", call.protocol));
            }
            let mut last = String::new();
            for kind in kinds {
                let request = http.post(format!(
                    "{base}/v3/{kind}/kick/{}",
                    path_segment(&call.target)
                ));
                match send(request, &call.api).await {
                    Ok((status, _)) if (200..300).contains(&status) => return Outcome::Dropped,
                    // Not a session of this kind: the TLS variant, else gone.
                    Ok((404, body)) => last = status_text(404, &body),
                    Ok((status, body)) => return Outcome::Failed(status_text(status, &body)),
                    Err(e) => return Outcome::Failed(e),
                }
            }
            Outcome::Gone(last)
        }
        "astra" => {
            let body = serde_json::json!({"cmd": "close-session", "id": call.target});
            let request = json_post(http, &format!("{base}/control/"), &body);
            match send(request, &call.api).await {
                Ok((status, _)) if (200..300).contains(&status) => Outcome::Dropped,
                Ok((status, body)) => Outcome::Failed(status_text(status, &body)),
                Err(e) => Outcome::Failed(e),
            }
        }
        "flussonic" => {
            let request = http.delete(format!(
                "{base}/streamer/api/v3/sessions/{}",
                path_segment(&call.target)
            ));
            match send(request, &call.api).await {
                Ok((status, _)) if (200..300).contains(&status) => Outcome::Dropped,
                Ok((404, _)) => Outcome::Gone("404".into()),
                Ok((status, body)) => Outcome::Failed(status_text(status, &body)),
                Err(e) => Outcome::Failed(e),
            }
        }
        other => Outcome::Failed(format!("unknown streamer kind '{other}'")),
    }
}

const SRS_CLIENT_NOT_FOUND: i64 = 2049;

fn srs_code(body: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

/// MediaMTX's kick endpoints for a hook's `protocol`, in the order tried
/// (the plain kind first, then its TLS twin).
pub fn mediamtx_kinds(protocol: &str) -> &'static [&'static str] {
    match protocol.to_ascii_lowercase().as_str() {
        "rtsp" => &["rtspsessions", "rtspssessions"],
        "rtsps" => &["rtspssessions"],
        "rtmp" => &["rtmpconns", "rtmpsconns"],
        "rtmps" => &["rtmpsconns"],
        "webrtc" => &["webrtcsessions"],
        "srt" => &["srtconns"],
        "hls" => &["hlssessions"],
        _ => &[],
    }
}

/// Whether a control API answers with these credentials: a read (or, for
/// nginx-rtmp, a drop that matches no connection) the vendor documents.
pub async fn probe(http: &reqwest::Client, api: &ControlApi) -> Result<String, String> {
    let base = api.control_url.trim_end_matches('/');
    let request = match api.kind.as_str() {
        // Connection numbers start at 1: client 0 is nobody.
        "nginx-rtmp" => http.get(format!(
            "{base}/drop/client?app=playgate-probe&name=playgate-probe&clientid=0"
        )),
        "srs" => http.get(format!("{base}/api/v1/versions")),
        "mediamtx" => http.get(format!("{base}/v3/paths/list")),
        "astra" => json_post(
            http,
            &format!("{base}/control/"),
            &serde_json::json!({"cmd": "sessions"}),
        ),
        "flussonic" => http.get(format!("{base}/streamer/api/v3/sessions?limit=1")),
        other => return Err(format!("unknown streamer kind '{other}'")),
    };
    match send(request, api).await? {
        (status, _) if (200..300).contains(&status) => Ok(format!("HTTP {status}")),
        (401 | 403, _) => Err("the control API refused the credentials".into()),
        (status, body) => Err(status_text(status, &body)),
    }
}

/// A POST of a JSON body (reqwest's `json` feature is not built in).
fn json_post(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// Sends with HTTP Basic when a username is set; the status and the
/// start of the body, or the transport error in words.
async fn send(request: reqwest::RequestBuilder, api: &ControlApi) -> Result<(u16, String), String> {
    let request = if api.username.is_empty() {
        request
    } else {
        request.basic_auth(&api.username, Some(&api.password))
    };
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok((status, body))
}

/// reqwest's errors name the URL (a control URL's path may say more than
/// the log should): the cause chain without it.
fn transport_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", TIMEOUT.as_secs());
    }
    crate::domain::ErrorChain(&error.without_url()).to_string()
}

fn status_text(status: u16, body: &str) -> String {
    let body = excerpt(body);
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    }
}

fn excerpt(text: &str) -> String {
    text.trim()
        .chars()
        .take(120)
        .filter(|c| !c.is_control())
        .collect()
}

/// RFC 3986's unreserved characters stay as they are; everything else is
/// escaped, so an id cannot add a path segment or a query.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn mediamtx_kinds_follow_the_protocol() {
        assert_eq!(mediamtx_kinds("rtsp"), ["rtspsessions", "rtspssessions"]);
        assert_eq!(mediamtx_kinds("RTMP"), ["rtmpconns", "rtmpsconns"]);
        assert_eq!(mediamtx_kinds("webrtc"), ["webrtcsessions"]);
        assert!(mediamtx_kinds("").is_empty());
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(path_segment("9f3b-1c.a_~"), "9f3b-1c.a_~");
        assert_eq!(path_segment("../x?y=1"), "..%2Fx%3Fy%3D1");
    }

    #[test]
    fn srs_codes_are_read_from_the_body() {
        assert_eq!(srs_code(r#"{"code":0}"#), Some(0));
        assert_eq!(srs_code(r#"{"code":2049}"#), Some(2049));
        assert_eq!(srs_code("0"), None);
    }
}
