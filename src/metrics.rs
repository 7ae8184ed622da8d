//! The Prometheus registry and the metric families of SPEC §7.
//!
//! Labels are bounded: a `stream` label takes at most
//! `PLAYGATE_METRICS_MAX_STREAMS` distinct values, later streams are counted as
//! `other`; users and IPs are never labels.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::domain::Reason;
use crate::store::stats::ClusterGauges;

pub const OTHER_STREAM: &str = "other";

/// The `end_reason` values of a session (SPEC §1).
pub const END_REASONS: [&str; 5] = ["stopped", "timeout", "kicked", "limit", "replaced"];

/// The `result` values of `playgate_webhook_deliveries_total` (SPEC §12):
/// an attempt delivered, failed (to be retried), or failed for the last time.
pub const WEBHOOK_RESULTS: [&str; 3] = ["delivered", "failed", "gave_up"];

pub struct Metrics {
    registry: Registry,
    decisions_total: IntCounterVec,
    decision_duration_seconds: HistogramVec,
    sessions_started_total: IntCounterVec,
    /// By rule id: bounded by the number of rules an admin writes.
    rule_denials_total: IntCounterVec,
    /// Drop calls to streamers' control APIs, by kind and result (SPEC §12).
    streamer_calls_total: IntCounterVec,
    /// `playgate_sessions_ended_total` by end reason, in `END_REASONS` order.
    sessions_ended: [prometheus::IntCounter; END_REASONS.len()],
    /// `playgate_session_refreshes_total` by source: memory, database
    /// (looked up once; a segment fetch counts one on every request).
    session_refreshes: [prometheus::IntCounter; 2],
    /// Fractional seconds are kept as milliseconds-precision f64 counters.
    watch_seconds_total: prometheus::CounterVec,
    viewers: IntGaugeVec,
    viewers_by_country: IntGaugeVec,
    active_sessions: IntGauge,
    users: IntGauge,
    db_pool_connections: IntGaugeVec,
    admission_batch_size: prometheus::Histogram,
    /// `playgate_webhook_deliveries_total` by result, in `WEBHOOK_RESULTS` order.
    webhook_deliveries: [prometheus::IntCounter; WEBHOOK_RESULTS.len()],
    stream_labels: StreamLabels,
}

/// The first `max` distinct streams keep their name as a label value.
struct StreamLabels {
    max: usize,
    known: Mutex<HashSet<String>>,
}

impl StreamLabels {
    fn label(&self, stream: &str) -> String {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.contains(stream) {
            return stream.to_string();
        }
        if known.len() < self.max && stream != OTHER_STREAM {
            known.insert(stream.to_string());
            return stream.to_string();
        }
        OTHER_STREAM.to_string()
    }
}

/// Decisions take from tens of microseconds (refresh in memory + one UPDATE)
/// to tens of milliseconds (bcrypt); buckets around 0.5–50 ms.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("unique metric");
    collector
}

impl Metrics {
    pub fn new(max_streams: usize) -> Metrics {
        let registry = Registry::new();
        let decisions_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_decisions_total",
                    "Play decisions by hook dialect, result and reason.",
                ),
                &["dialect", "result", "reason"],
            )
            .expect("valid metric"),
        );
        let decision_duration_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "playgate_decision_duration_seconds",
                    "Time to decide a hook request.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["dialect"],
            )
            .expect("valid metric"),
        );
        let sessions_started_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_sessions_started_total",
                    "Viewing sessions started, by stream.",
                ),
                &["stream"],
            )
            .expect("valid metric"),
        );
        let rule_denials_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_rule_denials_total",
                    "Requests denied by an access rule (rule_denied), by the rule's id.",
                ),
                &["rule"],
            )
            .expect("valid metric"),
        );
        let streamer_calls_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_streamer_calls_total",
                    "Drop calls to streamers' control APIs, by streamer kind and result \
                     (dropped, gone, error; given_up once retrying ends).",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
        );
        let session_refreshes_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_session_refreshes_total",
                    "Refreshes of active sessions allowed, by where they were answered: from this replica's memory (written in batches) or by the database.",
                ),
                &["source"],
            )
            .expect("valid metric"),
        );
        let sessions_ended_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_sessions_ended_total",
                    "Viewing sessions ended, by end reason, counted by the replica that ended them.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        );
        let watch_seconds_total = register(
            &registry,
            prometheus::CounterVec::new(
                Opts::new(
                    "playgate_watch_seconds_total",
                    "Seconds watched, accrued on refresh, stop and timeout, by stream.",
                ),
                &["stream"],
            )
            .expect("valid metric"),
        );
        let viewers = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "playgate_viewers",
                    "Active sessions per stream across the cluster (the same on every replica: aggregate with max).",
                ),
                &["stream"],
            )
            .expect("valid metric"),
        );
        // Labels are two letters (ISO 3166-1 codes, XX): bounded without folding.
        let viewers_by_country = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "playgate_viewers_by_country",
                    "Active sessions per country of the client address, by GeoIP at the start (XX: unknown or no country database), across the cluster (aggregate with max).",
                ),
                &["country"],
            )
            .expect("valid metric"),
        );
        let active_sessions = register(
            &registry,
            IntGauge::new(
                "playgate_active_sessions",
                "Active sessions across the cluster.",
            )
            .expect("valid metric"),
        );
        let users = register(
            &registry,
            IntGauge::new("playgate_users", "User accounts across the cluster.")
                .expect("valid metric"),
        );
        let db_pool_connections = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "playgate_db_pool_connections",
                    "PostgreSQL connections of this replica by state.",
                ),
                &["state"],
            )
            .expect("valid metric"),
        );
        let admission_batch_size = register(
            &registry,
            prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "playgate_admission_batch_size",
                    "Admissions decided together in one database round trip and commit.",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            )
            .expect("valid metric"),
        );
        let webhook_deliveries_total = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "playgate_webhook_deliveries_total",
                    "Webhook delivery attempts made by this replica, by result: delivered (2xx), failed (to be retried) or gave_up (failed, 24 h after the event).",
                ),
                &["result"],
            )
            .expect("valid metric"),
        );
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("playgate_build_info", "Version of the running playgate."),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry,
            decisions_total,
            decision_duration_seconds,
            sessions_started_total,
            rule_denials_total,
            streamer_calls_total,
            sessions_ended: END_REASONS
                .map(|reason| sessions_ended_total.with_label_values(&[reason])),
            session_refreshes: ["memory", "database"]
                .map(|source| session_refreshes_total.with_label_values(&[source])),
            watch_seconds_total,
            viewers,
            viewers_by_country,
            active_sessions,
            users,
            db_pool_connections,
            admission_batch_size,
            webhook_deliveries: WEBHOOK_RESULTS
                .map(|result| webhook_deliveries_total.with_label_values(&[result])),
            stream_labels: StreamLabels {
                max: max_streams,
                known: Mutex::new(HashSet::new()),
            },
        }
    }

    pub fn record_decision(&self, dialect: &str, allow: bool, reason: Reason, elapsed: Duration) {
        let result = if allow { "allow" } else { "deny" };
        self.decisions_total
            .with_label_values(&[dialect, result, reason.as_str()])
            .inc();
        self.decision_duration_seconds
            .with_label_values(&[dialect])
            .observe(elapsed.as_secs_f64());
    }

    pub fn rule_denied(&self, rule: i64) {
        self.rule_denials_total
            .with_label_values(&[rule.to_string().as_str()])
            .inc();
    }

    /// Kinds are the five of sql/V20, results the few of `outbox::streamer_calls`.
    pub fn streamer_call(&self, kind: &str, result: &str) {
        self.streamer_calls_total
            .with_label_values(&[kind, result])
            .inc();
    }

    pub fn session_started(&self, stream: &str) {
        let label = self.stream_labels.label(stream);
        self.sessions_started_total
            .with_label_values(&[label.as_str()])
            .inc();
    }

    /// `count` sessions ended for `reason`, one of `END_REASONS` (others
    /// are a bug, and ignored rather than given a label).
    pub fn sessions_ended(&self, reason: &str, count: u32) {
        if count == 0 {
            return;
        }
        match END_REASONS.iter().position(|known| *known == reason) {
            Some(index) => self.sessions_ended[index].inc_by(u64::from(count)),
            None => debug_assert!(false, "unknown end reason {reason}"),
        }
    }

    /// `from_memory`: answered without asking the database.
    pub fn session_refreshed(&self, from_memory: bool) {
        self.session_refreshes[usize::from(!from_memory)].inc();
    }

    /// One webhook delivery attempt, `result` one of `WEBHOOK_RESULTS`.
    pub fn webhook_delivery(&self, result: &str) {
        match WEBHOOK_RESULTS.iter().position(|known| *known == result) {
            Some(index) => self.webhook_deliveries[index].inc(),
            None => debug_assert!(false, "unknown webhook result {result}"),
        }
    }

    pub fn admission_batch(&self, size: usize) {
        self.admission_batch_size.observe(size as f64);
    }

    pub fn watched(&self, stream: &str, seconds: f64) {
        if seconds > 0.0 && seconds.is_finite() {
            let label = self.stream_labels.label(stream);
            self.watch_seconds_total
                .with_label_values(&[label.as_str()])
                .inc_by(seconds);
        }
    }

    /// Replaces the cluster-wide gauges with a fresh reading.
    pub fn set_cluster_gauges(&self, gauges: &ClusterGauges) {
        let mut folded: Vec<(String, i64)> = Vec::with_capacity(gauges.viewers_by_stream.len());
        for (stream, count) in &gauges.viewers_by_stream {
            let label = self.stream_labels.label(stream);
            match folded.iter_mut().find(|(known, _)| *known == label) {
                Some((_, total)) => *total += count,
                None => folded.push((label, *count)),
            }
        }
        self.viewers.reset();
        for (label, count) in folded {
            self.viewers.with_label_values(&[label.as_str()]).set(count);
        }
        self.viewers_by_country.reset();
        for (country, count) in &gauges.viewers_by_country {
            self.viewers_by_country
                .with_label_values(&[country.as_str()])
                .set(*count);
        }
        self.active_sessions.set(gauges.active_sessions);
        self.users.set(gauges.users);
    }

    pub fn set_pool_connections(&self, status: deadpool_postgres::Status) {
        let in_use = status.size.saturating_sub(status.available) as i64;
        self.db_pool_connections
            .with_label_values(&["in_use"])
            .set(in_use);
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(status.available as i64);
        self.db_pool_connections
            .with_label_values(&["max"])
            .set(status.max_size as i64);
        self.db_pool_connections
            .with_label_values(&["waiting"])
            .set(status.waiting as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("metrics are UTF-8")
    }
}

/// The cluster-wide gauges come from PostgreSQL on a timer, not per scrape.
pub async fn read_cluster_gauges(
    pool: crate::store::Pool,
    interval: Duration,
    metrics: std::sync::Arc<Metrics>,
    mut stop: crate::background::StopSignal,
) {
    loop {
        let result = async {
            let client = pool.get().await?;
            crate::store::stats::cluster_gauges(&client).await
        }
        .await;
        match result {
            Ok(gauges) => metrics.set_cluster_gauges(&gauges),
            Err(e) => log::warn!("reading cluster gauges failed: {e}"),
        }
        if !crate::background::tick(interval, &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_beyond_the_limit_fold_into_other() {
        let metrics = Metrics::new(2);
        for stream in ["a", "b", "c", "a", "d"] {
            metrics.session_started(stream);
        }
        let text = metrics.render();
        assert!(text.contains("playgate_sessions_started_total{stream=\"a\"} 2"));
        assert!(text.contains("playgate_sessions_started_total{stream=\"b\"} 1"));
        assert!(text.contains("playgate_sessions_started_total{stream=\"other\"} 2"));
        assert!(!text.contains("stream=\"c\""));
    }

    #[test]
    fn gauges_fold_and_replace() {
        let metrics = Metrics::new(1);
        metrics.set_cluster_gauges(&ClusterGauges {
            viewers_by_stream: vec![("a".into(), 2), ("b".into(), 3), ("c".into(), 4)],
            viewers_by_country: vec![("PL".into(), 8), ("XX".into(), 1)],
            active_sessions: 9,
            users: 5,
        });
        let text = metrics.render();
        assert!(text.contains("playgate_viewers{stream=\"a\"} 2"));
        assert!(text.contains("playgate_viewers{stream=\"other\"} 7"));
        assert!(text.contains("playgate_viewers_by_country{country=\"PL\"} 8"));
        metrics.set_cluster_gauges(&ClusterGauges {
            viewers_by_stream: vec![],
            viewers_by_country: vec![],
            active_sessions: 0,
            users: 5,
        });
        let text = metrics.render();
        assert!(!text.contains("playgate_viewers{"));
        assert!(!text.contains("playgate_viewers_by_country{"));
    }
}
