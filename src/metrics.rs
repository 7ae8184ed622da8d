//! The Prometheus registry and the metric families of SPEC §7.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decision::Reason;

pub struct Metrics {
    registry: Registry,
    decisions_total: IntCounterVec,
    decision_duration_seconds: HistogramVec,
}

/// Decisions take from tens of microseconds (refresh in memory + one UPDATE)
/// to tens of milliseconds (bcrypt); buckets around 0.5–50 ms.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let decisions_total = IntCounterVec::new(
            Opts::new(
                "playgate_decisions_total",
                "Play decisions by hook dialect, result and reason.",
            ),
            &["dialect", "result", "reason"],
        )
        .expect("valid metric");
        let decision_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "playgate_decision_duration_seconds",
                "Time to decide a hook request.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["dialect"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("playgate_build_info", "Version of the running playgate."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for collector in [
            Box::new(decisions_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(decision_duration_seconds.clone()),
            Box::new(build_info),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Metrics {
            registry,
            decisions_total,
            decision_duration_seconds,
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

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
