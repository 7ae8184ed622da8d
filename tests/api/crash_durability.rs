//! What a crash of PostgreSQL (kill -9 under load) costs the admissions, per
//! PLAYGATE_SESSION_COMMIT (docs/performance.md, "Commit of admissions"):
//! `durable` loses none; `async` may lose only the admissions of the last
//! moments before the crash, whose viewers are admitted again at their next
//! refresh, and every limit holds again afterwards.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use playgate::config::SessionCommit;
use serde_json::Value;

use crate::helpers::*;
use crate::private_pg::PrivatePostgres;

const USERS: usize = 400;

/// User `user`'s session `key` (its token is t<user>).
fn viewer(user: usize, key: &str, event: &str) -> Value {
    session(&format!("t{user}"), key, event)
}

struct Admitted {
    user: usize,
    session_id: uuid::Uuid,
    answered: Instant,
}

/// Starts one session per user (limit 1 each), 16 at a time, until
/// PostgreSQL is killed under it; returns what was admitted and when the
/// kill happened.
async fn admit_until_killed(app: &TestApp, cluster: &PrivatePostgres) -> (Vec<Admitted>, Instant) {
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (admitted, next) = (admitted.clone(), next.clone());
        let (http, address) = (app.http.clone(), app.address.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let user = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if user >= USERS {
                    return;
                }
                let answer = http
                    .post(format!("{address}/hook/decide"))
                    .json(&viewer(user, &format!("s{user}"), "start"))
                    .send()
                    .await;
                let Ok(answer) = answer else { continue };
                let Ok(body) = answer.json::<Value>().await else {
                    continue;
                };
                if body["allow"] == true {
                    admitted.lock().unwrap().push(Admitted {
                        user,
                        session_id: body["session_id"].as_str().unwrap().parse().unwrap(),
                        answered: Instant::now(),
                    });
                }
            }
        }));
    }
    // Kill in the middle of the stream of admissions.
    while next.load(std::sync::atomic::Ordering::SeqCst) < USERS / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill9();
    let killed = Instant::now();
    for worker in workers {
        worker.await.unwrap();
    }
    let admitted = std::mem::take(&mut *admitted.lock().unwrap());
    (admitted, killed)
}

async fn crash_under_admissions(commit: SessionCommit) {
    let Some(cluster) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb::on(&cluster.server_url());
    let app = spawn_on(db, |settings| {
        settings.session_commit = commit;
        settings.db_timeout = Duration::from_millis(1000);
    })
    .await;
    for i in 0..USERS {
        app.create(user(&format!("u{i}")).token(format!("t{i}")).limit(1))
            .await;
    }

    let (admitted, killed) = admit_until_killed(&app, &cluster).await;
    assert!(
        admitted.len() >= 50,
        "admitted before the crash: {}",
        admitted.len()
    );
    cluster.resume();

    let ids: Vec<uuid::Uuid> = admitted.iter().map(|a| a.session_id).collect();
    let kept: Vec<uuid::Uuid> = app
        .db()
        .await
        .query("SELECT id FROM session_log WHERE id = ANY($1)", &[&ids])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let lost: Vec<&Admitted> = admitted
        .iter()
        .filter(|a| !kept.contains(&a.session_id))
        .collect();
    eprintln!(
        "{commit:?}: {} admitted before kill -9, {} lost, answered {:?} before the crash",
        admitted.len(),
        lost.len(),
        lost.iter()
            .map(|a| killed.saturating_duration_since(a.answered))
            .collect::<Vec<_>>()
    );
    match commit {
        SessionCommit::Durable => assert!(lost.is_empty(), "a durable admission was lost"),
        // PostgreSQL writes asynchronous commits within 3 × wal_writer_delay
        // (200 ms by default); 2 s leaves room for a busy machine.
        SessionCommit::Async => {
            for lost in &lost {
                assert!(
                    killed.saturating_duration_since(lost.answered) < Duration::from_secs(2),
                    "an admission answered {:?} before the crash was lost",
                    killed.saturating_duration_since(lost.answered)
                );
            }
        }
    }

    // Every viewer admitted before the crash keeps watching: its refreshes
    // are allowed and it has its session row again.
    for viewer in &admitted {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let refresh = app
                .decide(self::viewer(
                    viewer.user,
                    &format!("s{}", viewer.user),
                    "refresh",
                ))
                .await;
            assert_eq!(refresh["allow"], true, "user {}: {refresh}", viewer.user);
            if app.active_sessions(&format!("u{}", viewer.user)).await == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "user {} never re-admitted",
                viewer.user
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // And the limits hold again: a second device of any of them is refused.
    for viewer in &admitted {
        let second = app
            .decide(self::viewer(viewer.user, "another-device", "start"))
            .await;
        assert_eq!(reason(&second), "session_limit", "user {}", viewer.user);
    }
    let over_limit = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT login FROM sessions WHERE ended_at IS NULL AND expires_at > now()
                                    GROUP BY login HAVING count(*) > 1) over",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(over_limit, 0);
}

#[tokio::test]
async fn a_postgres_crash_loses_no_durable_admission() {
    crash_under_admissions(SessionCommit::Durable).await;
}

#[tokio::test]
async fn a_postgres_crash_loses_only_the_last_async_admissions_and_limits_hold_again() {
    crash_under_admissions(SessionCommit::Async).await;
}
