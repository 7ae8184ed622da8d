//! Admissions grouped into one round trip (src/decision/admission_batch.rs,
//! sql/V14, restated by V17 and V20 as `playgate_admit_batch_v20`): what waits together goes together, and
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
        device: "192.0.2.1 player".into(),
        max_devices: None,
        packages: vec![],
        refresh: false,
        // The default; every admission here plays one stream, so nothing
        // is replaced and a start past the limit is refused.
        zapping: true,
        max_viewers: None,
        country: Some(*b"PL"),
        asn: Some(64500),
        token_hash: None,
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

/// `column` (key or stream) of the user's open sessions, in order.
async fn open_sessions(app: &TestApp, column: &str, login: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            &format!(
                "SELECT {column} FROM sessions WHERE login = $1 AND ended_at IS NULL ORDER BY {column}"
            ),
            &[&login],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
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
    assert_eq!(open_sessions(&app, "key", "alice").await, ["k3", "k4"]);
}

/// `SELECT playgate_admit_batch_v20(...)` of `n` new users' new sessions, as SQL text.
fn batch_statement(base: usize, n: usize) -> String {
    let array = |item: &str, cast: &str| {
        format!(
            "(SELECT array_agg({item}{cast}) FROM generate_series({base}, {base} + {n} - 1) AS i)"
        )
    };
    // One empty package list per admission.
    let no_packages = format!("(SELECT jsonb_agg('[]'::jsonb) FROM generate_series(1, {n}))");
    format!(
        "SELECT count(*) FROM playgate_admit_batch_v20({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {no_packages}, {}, true, NULL, true, {}, {}, {})",
        array("'plan-k' || i", ""),
        array("'plan-u' || i", ""),
        array("2", ""),
        array("false", ""),
        array("'news'", "::text"),
        array("'192.0.2.1'", "::inet"),
        array("''", "::text"),
        array("'decide'", "::text"),
        array("''", "::text"),
        array("''", "::text"),
        array("NULL", "::bigint"),
        array("90", "::float8"),
        array("60", "::float8"),
        array("'192.0.2.1 '", "::text"),
        array("NULL", "::int4"),
        array("false", ""),
        array("'XX'", "::text"),
        array("0", "::bigint"),
        array("NULL", "::bytea"),
    )
}

/// Eight batches of `size` new users from user `first` on, one after the
/// other on `client`: past the five custom plans a connection makes first.
async fn run_batches(client: &tokio_postgres::Client, first: usize, size: usize) {
    for round in 0..8 {
        client
            .batch_execute(&batch_statement(first + round * 100, size))
            .await
            .unwrap();
    }
}

/// The most rows any node of the batch statement's plan filtered away, read
/// from the auto_explain notices of its last run.
fn most_filtered(notices: &[String]) -> u64 {
    let plan = notices
        .iter()
        .rev()
        .find(|notice| notice.contains("WITH item AS"))
        .unwrap_or_else(|| {
            panic!(
                "no plan of the batch statement among {} notices",
                notices.len()
            )
        });
    plan.lines()
        .filter_map(|line| line.trim().strip_prefix("Rows Removed by Filter: "))
        .map(|count| count.parse::<u64>().unwrap())
        .max()
        .unwrap_or(0)
}

/// A connection's plans of `playgate_admit_batch_v20` are cached; made while
/// `sessions` was empty they scanned a whole index per lookup once the table
/// had grown (a batch of 64 took a second at 100 000 rows; the flash crowd's
/// `db_unavailable`). Until the statistics know of a table of some size,
/// each call plans for the table as it is (sql/V13, V14, V17, V20); then plans are cached
/// again, made for that size. auto_explain's plans of the batch filter no
/// more than a handful of rows per lookup in both phases.
#[tokio::test]
async fn a_batch_is_planned_for_the_table_it_finds_not_the_empty_one_it_first_saw() {
    let app = spawn_app().await;
    let writer = app.db().await;
    // No ANALYZE but the test's own.
    writer
        .batch_execute("ALTER TABLE sessions SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    let (client, mut connection) = tokio_postgres::connect(&app.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let notices = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let collected = notices.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                collected.lock().unwrap().push(notice.message().to_string());
            }
        }
    });
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_analyze = on;
             SET auto_explain.log_nested_statements = on;
             SET client_min_messages = log;",
        )
        .await
        .unwrap();
    // Plans that could be cached on the empty table (five custom ones, then
    // a generic one, were it allowed).
    run_batches(&client, 0, 10).await;
    writer
        .batch_execute(
            "INSERT INTO sessions (key, login, stream, client_ip, expires_at)
             SELECT 'bulk-' || i, 'bulk-' || i, 'news', '192.0.2.9', now() + interval '1 hour'
               FROM generate_series(1, 100000) AS i",
        )
        .await
        .unwrap();
    client
        .batch_execute(&batch_statement(1000, 64))
        .await
        .unwrap();
    let grown = most_filtered(&notices.lock().unwrap());
    assert!(
        grown < 1000,
        "after the table grew, a lookup filtered {grown} rows"
    );

    // Analyzed at that size: cached plans again (eight calls, past the
    // five custom ones), made for it.
    writer.batch_execute("ANALYZE sessions").await.unwrap();
    run_batches(&client, 2000, 64).await;
    let analyzed = most_filtered(&notices.lock().unwrap());
    assert!(
        analyzed < 1000,
        "once analyzed, a lookup filtered {analyzed} rows"
    );
    assert_eq!(app.active_sessions("plan-u1000").await, 1);
    assert_eq!(app.active_sessions("plan-u2700").await, 1);
}

/// One device starting two channels in one batch, past a limit of 1: the
/// batch's common case cannot see the first start, so it must not refuse
/// the second as if the device watched nothing (SPEC §11): the second
/// replaces the first, as one admission after the other would.
#[tokio::test]
async fn a_device_zapping_inside_one_batch_keeps_the_later_channel() {
    let app = spawn_app().await;
    let metrics = Arc::new(Metrics::new(10));
    let batcher = AdmissionBatcher::new(app.state.pool.clone(), metrics.clone(), true, 1);
    let first = admission("z1", "zapper", 1);
    let mut second = admission("z2", "zapper", 1);
    second.stream = "sport".into();
    let outcomes = admit_all(&batcher, &[first, second]).await;
    assert_eq!(metric(&metrics, "playgate_admission_batch_size_sum"), 2.0);
    assert!(
        matches!(outcomes[1], AdmitOutcome::Allowed { replaced: 1, .. }),
        "{outcomes:?}"
    );
    assert_eq!(open_sessions(&app, "stream", "zapper").await, ["sport"]);
}
