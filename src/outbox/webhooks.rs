//! Webhook delivery (SPEC §12) in the Standard Webhooks format.
//!
//! Session events are queued by triggers in the admission's own
//! transaction (sql/V21), `limit.reached` by the engine through
//! [`Subscriptions::limit_reached`] (a spawned insert, only while some
//! webhook wants it). Every replica runs a [`Worker`]: it claims due
//! attempts with `FOR UPDATE SKIP LOCKED` under a lease, delivers them
//! concurrently (bounded), and records each outcome, queueing the next
//! attempt after 5 s, 10 s, 20 s, … (at most 1 h apart) for 24 h. A worker
//! that dies mid-delivery leaves its attempts to another once the lease is
//! over: at least once, every attempt with the event's `webhook-id`.
//!
//! Secrets: a webhook's secret signs and is never logged, nor is a
//! signature; errors are recorded without the URL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};

use crate::background::{tick, StopSignal};
pub use crate::config::WebhookSettings;
use crate::domain::{ErrorChain, Reason};
use crate::metrics::Metrics;
use crate::store::webhooks::{self as store, Claimed, Outcome};
use crate::store::{Pool, StoreError};

/// The events a webhook may subscribe to.
pub const EVENT_TYPES: [&str; 3] = ["session.started", "session.ended", "limit.reached"];
/// What `POST /api/v1/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes of a generated secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
const MAX_URL: usize = 2048;
/// Retries are at most this far apart …
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// … and stop this long after the event.
const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// Connections of the worker's own pool: a dead receiver or a burst of
/// events never takes a connection the decisions need.
pub const POOL_SIZE: usize = 4;
/// `limit.reached` inserts under way at most; beyond, one is dropped (and
/// said so) rather than queued without bound.
const MAX_PENDING_INSERTS: usize = 256;
/// Longest error text kept per attempt.
const MAX_ERROR: usize = 300;

/// Names that are cloud metadata services whatever they resolve to.
const METADATA_NAMES: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

// ---- URLs and addresses ----

/// Link-local and cloud metadata addresses (169.254.0.0/16 with AWS, GCP
/// and Azure's 169.254.169.254, fe80::/10, AWS's fd00:ec2::254, Alibaba's
/// 100.100.100.200), IPv4-mapped forms included.
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_refused(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_refused(v4),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        },
    }
}

fn v4_refused(v4: Ipv4Addr) -> bool {
    v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200)
}

fn is_metadata_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    METADATA_NAMES.contains(&host.as_str())
}

/// Why a receiver may not be at `ip`, if it may not: a link-local or
/// metadata address (unless `PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL`), or one
/// outside `PLAYGATE_WEBHOOK_NETWORKS` when that is set.
pub fn refused_address(settings: &WebhookSettings, ip: IpAddr) -> Option<&'static str> {
    let ip = crate::domain::canonical_ip(ip);
    if !settings.allow_link_local && is_link_local_or_metadata(ip) {
        return Some(
            "is a link-local or cloud metadata address (PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL=true allows it)",
        );
    }
    match &settings.networks {
        Some(networks) if !networks.iter().any(|network| network.contains(&ip)) => {
            Some("is outside PLAYGATE_WEBHOOK_NETWORKS")
        }
        _ => None,
    }
}

/// A receiver's URL as given: http or https, a host, no credentials, and
/// no refused address (`refused_address`) or metadata name. Loopback and
/// private addresses are allowed. The reason is one line.
pub fn check_url(text: &str, settings: &WebhookSettings) -> Result<reqwest::Url, String> {
    if text.len() > MAX_URL {
        return Err(format!("a URL has at most {MAX_URL} bytes"));
    }
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not '{}'",
            url.scheme()
        ));
    }
    // Credentials there would be shown to observers, audited and logged
    // with the URL: the signature is what authenticates playgate.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "a URL with a login or password is not taken: receivers check the signature instead"
                .to_string(),
        );
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    // An IPv6 literal is bracketed; the parser has normalised IPv4
    // literals (hexadecimal, octal, short forms) already.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => {
            if let Some(why) = refused_address(settings, ip) {
                return Err(format!("{ip} {why}"));
            }
        }
        Err(_) if !settings.allow_link_local && is_metadata_name(host) => {
            return Err(format!(
                "'{host}' is a cloud metadata service (PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL=true allows it)"
            ));
        }
        Err(_) => {}
    }
    Ok(url)
}

/// Names resolved as usual, without the addresses a receiver may not have
/// (a name may point at a metadata service even though its URL passed).
struct GuardedResolver(WebhookSettings);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let settings = self.0.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&settings, &host, found)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What a name resolved to, less the refused addresses; an error when
/// nothing is left (recorded as the attempt's failure).
fn allowed_addresses(
    settings: &WebhookSettings,
    host: &str,
    found: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, String> {
    let mut refused = None;
    let mut allowed = Vec::with_capacity(found.len());
    for address in found {
        match refused_address(settings, address.ip()) {
            Some(why) => refused = refused.or(Some((address.ip(), why))),
            None => allowed.push(address),
        }
    }
    match refused {
        Some((ip, why)) if allowed.is_empty() => Err(format!(
            "{host} resolves only to addresses a receiver may not have: {ip} {why}"
        )),
        _ => Ok(allowed),
    }
}

// ---- Secrets and signatures ----

/// `whsec_` and the base64 of 32 bytes of the operating system's CSPRNG.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::fill(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key of a secret `whsec_<base64>` (24–64 bytes); the message
/// never quotes the secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        format!("a secret is '{SECRET_PREFIX}' and base64; leave it out to generate one")
    })?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("the part after '{SECRET_PREFIX}' is not base64"))?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        return Err(format!(
            "a secret's key has {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes (this one has {})",
            key.len()
        ));
    }
    Ok(key)
}

/// `v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>`.
pub fn signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-id` of every attempt of an event.
pub fn message_id(msg_id: uuid::Uuid) -> String {
    format!("msg_{}", msg_id.simple())
}

/// `{"type", "timestamp", "data"}`: the same bytes on every attempt.
pub fn body(event_type: &str, at: DateTime<Utc>, data: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    }))
    .expect("JSON values serialise")
}

/// The delay before attempt `attempt + 1`: base · 2^(attempt − 1), at most 1 h.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    super::doubled(
        base,
        attempt.saturating_sub(1).max(0) as u32,
        MAX_RETRY_DELAY,
    )
}

// ---- What the engine tells ----

/// Whether some enabled webhook wants `limit.reached`, as of the worker's
/// last poll (or this replica's last webhook write), and the spawned
/// inserts of those events.
pub struct Subscriptions {
    limit_reached: AtomicBool,
    pool: Pool,
    inserts: Arc<Semaphore>,
}

impl Subscriptions {
    pub fn new(pool: Pool) -> Subscriptions {
        Subscriptions {
            limit_reached: AtomicBool::new(false),
            pool,
            inserts: Arc::new(Semaphore::new(MAX_PENDING_INSERTS)),
        }
    }

    pub fn wants_limit_reached(&self) -> bool {
        self.limit_reached.load(Ordering::Relaxed)
    }

    /// Reads again whether any enabled webhook wants `limit.reached`.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let wanted = store::subscribed(&client, "limit.reached").await?;
        self.limit_reached.store(wanted, Ordering::Relaxed);
        Ok(())
    }

    /// A refused start: queues `limit.reached` when the reason is one of
    /// `session_limit`, `device_limit`, `stream_full` and some webhook
    /// wants it. Never waits: the insert is spawned.
    #[allow(clippy::too_many_arguments)]
    pub fn limit_reached(
        &self,
        reason: Reason,
        user: Option<&str>,
        stream: &str,
        client_ip: IpAddr,
        max_sessions: Option<i32>,
        active_sessions: Option<i64>,
    ) {
        if !matches!(
            reason,
            Reason::SessionLimit | Reason::DeviceLimit | Reason::StreamFull
        ) || !self.wants_limit_reached()
        {
            return;
        }
        let Ok(permit) = Arc::clone(&self.inserts).try_acquire_owned() else {
            log::warn!("webhooks: too many limit.reached events under way, one dropped");
            return;
        };
        let data = json!({
            "user": user,
            "stream": stream,
            "client_ip": crate::domain::canonical_ip(client_ip).to_string(),
            "reason": reason.as_str(),
            "max_sessions": max_sessions,
            "active_sessions": active_sessions,
        });
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let written = async {
                let client = pool.get().await?;
                store::enqueue(&client, "limit.reached", &data, None).await
            }
            .await;
            if let Err(e) = written {
                log::warn!("webhooks: queueing a limit.reached event failed: {e}");
            }
        });
    }
}

// ---- The worker ----

pub struct Worker {
    pool: Pool,
    http: reqwest::Client,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    subscriptions: Arc<Subscriptions>,
    in_flight: Arc<Semaphore>,
    /// The last claim filled every free slot.
    backlog: AtomicBool,
    wake: Notify,
    /// Finished attempts, to the recorder, which writes them in batches.
    finished: tokio::sync::mpsc::UnboundedSender<Finished>,
    recorder: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Finished>>>,
}

/// An attempt made, to be recorded.
struct Finished {
    job: Claimed,
    outcome: Outcome,
    gave_up: bool,
}

/// Finished attempts written per statement at most.
const RECORD_BATCH: usize = 256;

impl Worker {
    pub fn new(
        pool: Pool,
        settings: WebhookSettings,
        metrics: Arc<Metrics>,
        subscriptions: Arc<Subscriptions>,
    ) -> Worker {
        let mut http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("playgate/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_link_local || settings.networks.is_some() {
            http = http.dns_resolver(Arc::new(GuardedResolver(settings.clone())));
        }
        let (finished, recorder) = tokio::sync::mpsc::unbounded_channel();
        Worker {
            finished,
            recorder: std::sync::Mutex::new(Some(recorder)),
            pool,
            http: http.build().expect("an HTTP client with rustls"),
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            backlog: AtomicBool::new(false),
            wake: Notify::new(),
            settings,
            metrics,
            subscriptions,
        }
    }

    /// Polls until the application stops; deliveries under way when it
    /// does are dropped (their lease runs out and another replica, or this
    /// one after a restart, makes them).
    pub async fn run(self, mut stop: StopSignal) {
        let worker = Arc::new(self);
        let recorder = worker
            .recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(recorder) = recorder {
            tokio::spawn(Arc::clone(&worker).record(recorder, stop.clone()));
        }
        let mut failing = false;
        let mut refreshed: Option<Instant> = None;
        loop {
            let polled = async {
                // Once per poll interval, however often a backlog wakes the loop.
                if refreshed.is_none_or(|at| at.elapsed() >= worker.settings.poll_interval) {
                    worker.subscriptions.refresh().await?;
                    refreshed = Some(Instant::now());
                }
                worker.poll(&stop).await
            }
            .await;
            match polled {
                Ok((claimed, asked)) => {
                    failing = false;
                    // Every free slot filled: more may be due. Finishing
                    // deliveries wake the loop once a quarter of the slots
                    // is free again, rather than waiting for the next tick.
                    let backlog = asked > 0 && claimed == asked;
                    worker.backlog.store(backlog, Ordering::Relaxed);
                    if backlog && worker.in_flight.available_permits() > 0 {
                        if *stop.borrow() {
                            return;
                        }
                        continue;
                    }
                }
                // Said once per outage, not every 200 ms.
                Err(e) if !failing => {
                    failing = true;
                    log::warn!("webhook worker: {e}");
                }
                Err(_) => {}
            }
            tokio::select! {
                running = tick(worker.settings.poll_interval, &mut stop) => if !running {
                    return;
                },
                _ = worker.wake.notified() => {}
            }
        }
    }

    /// After a delivery: wake the loop when there is a backlog and enough
    /// free slots to be worth a claim.
    fn slot_freed(&self) {
        if self.backlog.load(Ordering::Relaxed)
            && self.in_flight.available_permits() >= (self.settings.max_in_flight / 4).max(1)
        {
            self.wake.notify_one();
        }
    }

    /// Claims what is due (as many as there are free delivery slots) and
    /// starts delivering it; the number claimed, and the number asked for.
    async fn poll(self: &Arc<Self>, stop: &StopSignal) -> Result<(usize, usize), StoreError> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok((0, 0));
        }
        let claimed = {
            let client = self.pool.get().await?;
            store::claim(&client, free as i64, self.settings.lease).await?
        };
        let count = claimed.len();
        for job in claimed {
            let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
                break; // cannot happen: only this loop takes permits
            };
            let worker = Arc::clone(self);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = worker.deliver(job) => {}
                    _ = stop.wait_for(|stopping| *stopping) => {}
                }
                drop(permit);
                worker.slot_freed();
            });
        }
        Ok((count, free))
    }

    /// One attempt, and its outcome recorded.
    async fn deliver(&self, job: Claimed) {
        let result = self.send(&job).await;
        let now = Utc::now();
        let (outcome, gave_up) = match result {
            Ok(status) if (200..300).contains(&status) => (
                Outcome {
                    delivered: true,
                    response_status: Some(status as i32),
                    error: None,
                    retry_at: None,
                },
                false,
            ),
            failed => {
                let (response_status, error) = match failed {
                    Ok(status) => (Some(status as i32), format!("answered HTTP {status}")),
                    Err(error) => (None, error),
                };
                let next = now
                    + chrono::Duration::from_std(retry_delay(
                        self.settings.retry_base,
                        job.attempt,
                    ))
                    .unwrap_or(chrono::Duration::MAX);
                let deadline =
                    job.event_at + chrono::Duration::from_std(RETRY_FOR).expect("24 h fits");
                let retry_at = (next <= deadline).then_some(next);
                (
                    Outcome {
                        delivered: false,
                        response_status,
                        error: Some(clip(&error)),
                        retry_at,
                    },
                    retry_at.is_none(),
                )
            }
        };
        // Recorded with others in one statement; the slot is free at once.
        let _ = self.finished.send(Finished {
            job,
            outcome,
            gave_up,
        });
    }

    /// Writes finished attempts as they come, as many at a time as have
    /// come (one commit for a batch of deliveries, not one each), until the
    /// worker is gone. An attempt not written (the database failing) is
    /// made again once its lease has run out: at least once.
    async fn record(
        self: Arc<Self>,
        mut finished: tokio::sync::mpsc::UnboundedReceiver<Finished>,
        mut stop: StopSignal,
    ) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        loop {
            tokio::select! {
                received = finished.recv_many(&mut batch, RECORD_BATCH) => if received == 0 {
                    return;
                },
                // Stopping: what has finished is still written, then no more.
                _ = stop.wait_for(|stopping| *stopping) => {
                    while finished.try_recv().map(|done| batch.push(done)).is_ok() {}
                    if batch.is_empty() {
                        return;
                    }
                }
            }
            let pairs: Vec<(&Claimed, &Outcome)> =
                batch.iter().map(|f| (&f.job, &f.outcome)).collect();
            let written = async {
                let client = self.pool.get().await?;
                store::finish_all(&client, &pairs).await
            }
            .await;
            match written {
                Ok(ids) => {
                    for done in &batch {
                        if ids.contains(&done.job.delivery_id) {
                            self.recorded(done);
                        } else {
                            // Another worker took the attempt over once the lease ended.
                            log::debug!(
                                "webhook {}: attempt {} of {} was taken over after its lease",
                                done.job.webhook_id,
                                done.job.attempt,
                                message_id(done.job.msg_id)
                            );
                        }
                    }
                }
                Err(e) => log::warn!(
                    "webhooks: recording {} attempts failed (they are made again after their lease): {e}",
                    batch.len()
                ),
            }
            batch.clear();
            if *stop.borrow() {
                return;
            }
        }
    }

    fn recorded(&self, done: &Finished) {
        let result = match (done.outcome.delivered, done.gave_up) {
            (true, _) => "delivered",
            (false, false) => "failed",
            (false, true) => "gave_up",
        };
        self.metrics.webhook_delivery(result);
        if done.gave_up {
            log::warn!(
                "webhook {}: gave up event {} ({}) after {} attempts over 24 h: {}",
                done.job.webhook_id,
                message_id(done.job.msg_id),
                done.job.event_type,
                done.job.attempt,
                done.outcome.error.as_deref().unwrap_or("")
            );
        }
    }

    /// The POST; the receiver's status, or why there was none.
    async fn send(&self, job: &Claimed) -> Result<u16, String> {
        let url = check_url(&job.url, &self.settings)?;
        let key = secret_key(&job.secret)?;
        let id = message_id(job.msg_id);
        let timestamp = Utc::now().timestamp();
        let body = body(&job.event_type, job.event_at, &job.data);
        let signature = signature(&key, &id, timestamp, &body);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let e = e.without_url();
                if e.is_timeout() {
                    format!("no answer within {} s", self.settings.timeout.as_secs_f64())
                } else {
                    ErrorChain(&e).to_string()
                }
            })?;
        Ok(response.status().as_u16())
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let strict = WebhookSettings::default();
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://billing.example/webhooks?src=playgate",
            "http://10.1.2.3/x",
            "http://[::1]:8080/",
            "http://192.168.1.10/",
            "http://crm.internal/in",
        ] {
            assert!(check_url(good, &strict).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("ftp://billing.example/", "scheme"),
            ("billing.example/hook", "not a URL"),
            ("file:///etc/passwd", "scheme"),
            ("http://user:pw@billing.example/", "password"),
            ("http://user@billing.example/", "password"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://169.254.10.1/", "link-local"),
            ("http://0xa9fea9fe/", "link-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[fd00:ec2::254]/", "link-local"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://100.100.100.200/", "link-local"),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                "metadata",
            ),
            ("http://METADATA.google.internal./", "metadata"),
        ] {
            let error = check_url(bad, &strict).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let open = WebhookSettings {
            allow_link_local: true,
            ..WebhookSettings::default()
        };
        assert!(check_url("http://169.254.169.254/", &open).is_ok());
        assert!(check_url("http://metadata.google.internal/", &open).is_ok());
        assert!(check_url(
            &format!("http://a.example/{}", "x".repeat(MAX_URL)),
            &strict
        )
        .is_err());
        // PLAYGATE_WEBHOOK_NETWORKS: literals outside it are refused, names
        // are resolved (and filtered) at delivery.
        let local = WebhookSettings {
            networks: Some(vec![
                "127.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap(),
            ]),
            ..WebhookSettings::default()
        };
        assert!(check_url("http://127.0.0.1:9000/", &local).is_ok());
        assert!(check_url("http://[::ffff:127.0.0.1]/", &local).is_ok());
        assert!(check_url("http://crm.example/", &local).is_ok());
        let error = check_url("http://10.0.0.1/", &local).unwrap_err();
        assert!(error.contains("PLAYGATE_WEBHOOK_NETWORKS"), "{error}");
    }

    #[test]
    fn secrets() {
        let one = generate_secret();
        assert!(one.starts_with("whsec_"));
        assert_eq!(secret_key(&one).unwrap().len(), SECRET_BYTES);
        assert_ne!(one, generate_secret());
        assert!(secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([7u8; 65])),
        ] {
            let error = secret_key(bad).unwrap_err();
            assert!(!error.contains(bad), "{error}");
        }
    }

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (and of its
        // libraries' tests).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        let base = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=12).map(|n| retry_delay(base, n).as_secs()).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(retry_delay(base, 1000), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, 0), base);
    }

    #[test]
    fn bodies_are_the_standard_shape() {
        let at = "2026-12-02T05:00:00.250Z".parse().unwrap();
        let body: Value =
            serde_json::from_slice(&body("session.started", at, &json!({"stream": "news"})))
                .unwrap();
        assert_eq!(
            body,
            json!({"type": "session.started", "timestamp": "2026-12-02T05:00:00.250Z",
                   "data": {"stream": "news"}})
        );
        assert_eq!(
            message_id("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap()),
            "msg_67e5504410b1426f9247bb680e5fe0c8"
        );
    }

    #[test]
    fn names_resolving_to_metadata_addresses_are_refused_at_delivery() {
        let strict = WebhookSettings::default();
        let address = |text: &str| SocketAddr::new(text.parse().unwrap(), 0);
        let error = allowed_addresses(&strict, "evil.example", vec![address("169.254.169.254")])
            .unwrap_err();
        assert!(
            error.contains("evil.example") && error.contains("link-local"),
            "{error}"
        );
        assert!(allowed_addresses(&strict, "six.example", vec![address("fd00:ec2::254")]).is_err());
        assert_eq!(
            allowed_addresses(
                &strict,
                "mixed.example",
                vec![address("169.254.169.254"), address("10.0.0.7")]
            )
            .unwrap(),
            [address("10.0.0.7")]
        );
        assert_eq!(
            allowed_addresses(
                &strict,
                "localhost",
                vec![address("127.0.0.1"), address("::1")]
            )
            .unwrap(),
            [address("127.0.0.1"), address("::1")]
        );
        let local = WebhookSettings {
            networks: Some(vec!["127.0.0.0/8".parse().unwrap()]),
            ..WebhookSettings::default()
        };
        let error =
            allowed_addresses(&local, "crm.example", vec![address("203.0.113.5")]).unwrap_err();
        assert!(error.contains("PLAYGATE_WEBHOOK_NETWORKS"), "{error}");
        assert!(allowed_addresses(&strict, "nowhere.example", vec![])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn refused_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "100.100.100.200",
        ] {
            assert!(is_link_local_or_metadata(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.0.1",
            "fd00::1",
            "8.8.8.8",
            "fec0::1",
        ] {
            assert!(!is_link_local_or_metadata(ip.parse().unwrap()), "{ip}");
        }
    }
}
