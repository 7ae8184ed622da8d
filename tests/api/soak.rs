//! Soak under concurrency: two instances on one database, random start /
//! refresh / stop / kick traffic across many users with limits, a watcher
//! checking the limits all along.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

const USERS: usize = 40;
const WORKERS: usize = 8;

fn soak_duration() -> Duration {
    let default = if std::env::var("CI").as_deref() == Ok("true") {
        120
    } else {
        20
    };
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(seconds)
}

fn limit_of(user: usize) -> i32 {
    (user % 4) as i32 + 1
}

#[tokio::test]
async fn limits_hold_under_random_traffic_on_two_replicas() {
    // Long sessions (no timeouts in the count) and a patient database timeout
    // (a loaded machine must not turn queued admissions into db_unavailable).
    let settings = |s: &mut playgate::Settings| {
        s.session_duration = Duration::from_secs(3600);
        s.db_timeout = Duration::from_secs(20);
    };
    let first = spawn_app_with(settings).await;
    let second = spawn_on(first.db.clone(), settings).await;
    for user_index in 0..USERS {
        let token = format!("token-{user_index}");
        first
            .create(
                user(&format!("u{user_index}"))
                    .token(token)
                    .limit(limit_of(user_index)),
            )
            .await;
    }
    second.reload().await;

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    let watcher_checks = Arc::new(AtomicU64::new(0));
    let watcher = {
        let pool = first.state.pool.clone();
        let (stop, violations, checks) = (stop.clone(), violations.clone(), watcher_checks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let client = pool.get().await.unwrap();
                let over: i64 = client
                    .query_one(
                        "SELECT count(*) FROM (
                            SELECT s.login FROM sessions s JOIN users u ON u.login = s.login
                             WHERE s.ended_at IS NULL AND s.expires_at > now()
                             GROUP BY s.login, u.max_sessions HAVING count(*) > u.max_sessions) over_limit",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                violations.fetch_add(over as u64, Ordering::Relaxed);
                checks.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let deadline = Instant::now() + soak_duration();
    // A kick holds for the user, stream and address (SPEC §2 step 7), so a
    // kicked user's later starts here are all refused: only those.
    let kicked_users = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let urls = [
            format!("{}/hook/decide", first.address),
            format!("{}/hook/decide", second.address),
        ];
        let http = first.http.clone();
        let pool = first.state.pool.clone();
        let kicked_users = kicked_users.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            // (user, session id) this worker holds open.
            let mut open: Vec<(usize, String)> = Vec::new();
            let mut counter = 0u64;
            let mut operations = 0u64;
            while Instant::now() < deadline {
                operations += 1;
                let url = &urls[rng.random_range(0..2)];
                let roll: u32 = rng.random_range(0..100);
                let decide = |user: usize, session: &str, event: &str| {
                    json!({"stream": "news", "ip": "192.0.2.1", "token": format!("token-{user}"),
                           "session": session, "event": event})
                };
                if open.is_empty() || roll < 45 {
                    let user = rng.random_range(0..USERS);
                    counter += 1;
                    let session = format!("w{worker}-{counter}");
                    let answer: Value = http
                        .post(url)
                        .json(&decide(user, &session, "start"))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match answer["reason"].as_str() {
                        Some("ok") => open.push((user, session)),
                        Some("session_limit") => {}
                        Some("session_kicked") if kicked_users.lock().unwrap().contains(&user) => {}
                        other => panic!("unexpected start answer {other:?} for user {user}"),
                    }
                } else {
                    let index = rng.random_range(0..open.len());
                    let (user, session) = open[index].clone();
                    if roll < 75 {
                        let answer: Value = http
                            .post(url)
                            .json(&decide(user, &session, "refresh"))
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        assert_eq!(answer["reason"], "ok", "refresh of an open session");
                    } else if roll < 92 {
                        http.post(url)
                            .json(&decide(user, &session, "stop"))
                            .send()
                            .await
                            .unwrap();
                        open.swap_remove(index);
                    } else {
                        let client = pool.get().await.unwrap();
                        // The key decide gives this session id from this caller.
                        let mut named = playgate::decision::PlayRequest::new(
                            "decide",
                            "news",
                            "192.0.2.1".parse().unwrap(),
                        );
                        named.session = Some(session.clone());
                        named.caller = Some("127.0.0.1".parse().unwrap());
                        let key = named.session_key();
                        kicked_users.lock().unwrap().insert(user);
                        let id: uuid::Uuid = client
                            .query_one(
                                "SELECT id FROM sessions WHERE key = $1 AND ended_at IS NULL",
                                &[&key],
                            )
                            .await
                            .unwrap()
                            .get(0);
                        assert!(playgate::store::sessions::kick(
                            &client,
                            id,
                            Duration::from_secs(3600)
                        )
                        .await
                        .unwrap());
                        open.swap_remove(index);
                    }
                }
            }
            (open.len() as i64, operations)
        }));
    }
    let mut left_open = 0;
    let mut operations = 0;
    for worker in workers {
        let (open, ops) = worker.await.unwrap();
        left_open += open;
        operations += ops;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let active: i64 = first
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE ended_at IS NULL AND expires_at > now()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "soak: {operations} operations, {} watcher checks, {left_open} sessions left open",
        watcher_checks.load(Ordering::Relaxed)
    );
    assert!(watcher_checks.load(Ordering::Relaxed) > 10);
    assert_eq!(
        violations.load(Ordering::Relaxed),
        0,
        "a user had more active sessions than the limit"
    );
    assert_eq!(active, left_open);
}
