//! Admissions grouped into one round trip (src/decision/admission_batch.rs,
//! sql/V12 `playgate_admit_batch`): what waits together goes together, and
//! limits stay exact inside a batch and between the batches of two replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use playgate::decision::admission_batch::AdmissionBatcher;
use playgate::domain::LimitPolicy;
use playgate::metrics::Metrics;
use playgate::store::sessions::{Admission, AdmitOutcome, Refusal};

use crate::helpers::*;

fn admission(key: &str, login: &str, max_sessions: i32) -> Admission {
    Admission {
        key: key.to_string(),
        login: Some(login.to_string()),
        max_sessions: Some(max_sessions),
        limit_policy: LimitPolicy::RejectNew,
        stream: "news".into(),
        client_ip: "192.0.2.1".parse().unwrap(),
        protocol: "hls".into(),
        dialect: "decide",
        streamer: String::new(),
        user_agent: "player".into(),
        bytes: None,
        hold: Duration::from_secs(90),
        block: Duration::from_secs(60),
    }
}

fn allowed_per_user(admissions: &[Admission], outcomes: &[AdmitOutcome]) -> HashMap<String, usize> {
    let mut allowed = HashMap::new();
    for (admission, outcome) in admissions.iter().zip(outcomes) {
        match outcome {
            AdmitOutcome::Allowed { started, .. } => {
                assert!(started, "{} is a new session", admission.key);
                *allowed.entry(admission.login.clone().unwrap()).or_insert(0) += 1;
            }
            AdmitOutcome::Refused { refusal, .. } => assert_eq!(*refusal, Refusal::Limit),
        }
    }
    allowed
}

/// Every admission through one batcher at once; the outcomes in order.
async fn admit_all(batcher: &Arc<AdmissionBatcher>, admissions: &[Admission]) -> Vec<AdmitOutcome> {
    join_all(admissions.iter().map(|a| batcher.admit(a.clone())))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Every admission at once, alternately through this replica's pool and a
/// second replica's on the same database (4 runners each).
async fn admit_on_two_replicas(app: &TestApp, admissions: &[Admission]) -> Vec<AdmitOutcome> {
    let other = spawn_on(app.db.clone(), |_| {}).await;
    let batchers = [&app.state.pool, &other.state.pool]
        .map(|pool| AdmissionBatcher::new(pool.clone(), Arc::new(Metrics::new(10)), true, 4));
    join_all(
        admissions
            .iter()
            .enumerate()
            .map(|(i, a)| batchers[i % 2].admit(a.clone())),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect()
}

fn metric(metrics: &Metrics, name: &str) -> f64 {
    parse_metrics(&metrics.render())
        .get(name)
        .copied()
        .unwrap_or_default()
}

#[tokio::test]
async fn admissions_waiting_together_go_in_one_round_trip_and_limits_hold_inside_it() {
    let app = spawn_app().await;
    let metrics = Arc::new(Metrics::new(10));
    // One runner: everything that queues behind the first call waits
    // together. All 30 are queued before the runner first runs (the test's
    // runtime has one thread), so they make one batch.
    let batcher = AdmissionBatcher::new(app.state.pool.clone(), metrics.clone(), true, 1);
    let admissions: Vec<Admission> = (0..30)
        .map(|i| admission(&format!("k{i}"), &format!("u{}", i % 10), 2))
        .collect();
    let outcomes = admit_all(&batcher, &admissions).await;
    assert_eq!(metric(&metrics, "playgate_admission_batch_size_count"), 1.0);
    assert_eq!(metric(&metrics, "playgate_admission_batch_size_sum"), 30.0);
    let allowed = allowed_per_user(&admissions, &outcomes);
    assert_eq!(allowed.len(), 10);
    assert!(allowed.values().all(|n| *n == 2), "{allowed:?}");
    for user in 0..10 {
        assert_eq!(app.active_sessions(&format!("u{user}")).await, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_batches_sharing_users_keep_every_limit() {
    let app = spawn_app().await;
    // 20 users with a limit of 3, 15 devices each, spread over both replicas
    // and started all at once.
    let admissions: Vec<Admission> = (0..300)
        .map(|i| admission(&format!("k{i}"), &format!("u{}", i % 20), 3))
        .collect();
    let outcomes = admit_on_two_replicas(&app, &admissions).await;
    let allowed = allowed_per_user(&admissions, &outcomes);
    assert_eq!(allowed.len(), 20);
    assert!(allowed.values().all(|n| *n == 3), "{allowed:?}");
    for user in 0..20 {
        assert_eq!(app.active_sessions(&format!("u{user}")).await, 3);
    }
}

/// One viewer's start reaching two replicas at once (a player retrying,
/// a proxy sending twice): one session, the same for both answers, and the
/// second is never refused by the viewer's own slot, even at a limit of 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_started_on_two_replicas_at_once_is_one_session() {
    let app = spawn_app().await;
    let admissions: Vec<Admission> = (0..40)
        .map(|i| admission(&format!("k{}", i / 2), &format!("u{}", i / 2), 1))
        .collect();
    let outcomes = admit_on_two_replicas(&app, &admissions).await;
    for (pair, answers) in outcomes.chunks(2).enumerate() {
        let ids: Vec<_> = answers
            .iter()
            .map(|outcome| match outcome {
                AdmitOutcome::Allowed {
                    session_id,
                    active_sessions,
                    ..
                } => {
                    assert_eq!(*active_sessions, 1);
                    *session_id
                }
                refused => panic!("viewer {pair}: {refused:?}"),
            })
            .collect();
        assert_eq!(ids[0], ids[1], "viewer {pair}: one session");
        assert_eq!(app.active_sessions(&format!("u{pair}")).await, 1);
    }
}

/// kick_oldest inside one batch: every start is admitted, each past the
/// limit ending the oldest, so the newest `max_sessions` remain.
#[tokio::test]
async fn kick_oldest_inside_one_batch_keeps_the_newest() {
    let app = spawn_app().await;
    let metrics = Arc::new(Metrics::new(10));
    let batcher = AdmissionBatcher::new(app.state.pool.clone(), metrics.clone(), true, 1);
    let admissions: Vec<Admission> = (0..5)
        .map(|i| Admission {
            limit_policy: LimitPolicy::KickOldest,
            ..admission(&format!("k{i}"), "alice", 2)
        })
        .collect();
    let outcomes = admit_all(&batcher, &admissions).await;
    assert_eq!(metric(&metrics, "playgate_admission_batch_size_count"), 1.0);
    for outcome in &outcomes {
        assert!(
            matches!(outcome, AdmitOutcome::Allowed { started: true, active_sessions, .. } if *active_sessions <= 2),
            "{outcome:?}"
        );
    }
    let open: Vec<String> = app
        .db()
        .await
        .query(
            "SELECT key FROM sessions WHERE login = 'alice' AND ended_at IS NULL ORDER BY key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(open, ["k3", "k4"]);
}
