//! A primary fails over to its synchronous standby under hook load (SPEC
//! §13): two replicas on the multi-host URL
//! (`host1,host2?target_session_attrs=read-write`) keep answering through
//! the switch as through an outage, reach the new primary by themselves,
//! and lose no admission they answered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::private_pg::PrivatePostgres;

const DB_TIMEOUT: Duration = Duration::from_millis(1000);
const WORKERS: usize = 12;

/// One hook answer of the load.
#[derive(Clone, Debug)]
struct Answer {
    worker: usize,
    event: &'static str,
    sent: Instant,
    took: Duration,
    status: u16,
    allow: bool,
    reason: String,
    session_id: Option<String>,
}

/// Viewers that start, refresh five times and stop, over and over, each on
/// its own replica (as a streamer keeps asking the same backend).
fn load(
    replicas: [String; 2],
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|worker| {
            let url = format!("{}/hook/decide", replicas[worker % 2]);
            let (stop, answers) = (stop.clone(), answers.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let token = format!("viewer{}", worker % 4);
                let ask = |event: &'static str, session: String| {
                    let (http, url, token, answers) =
                        (http.clone(), url.clone(), token.clone(), answers.clone());
                    async move {
                        let body = json!({"stream": "live", "ip": "192.0.2.1", "token": token,
                                          "session": session, "event": event});
                        let sent = Instant::now();
                        let (status, decision) = match http.post(&url).json(&body).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                (
                                    status,
                                    response.json::<Value>().await.unwrap_or(Value::Null),
                                )
                            }
                            Err(_) => (0, Value::Null),
                        };
                        let answer = Answer {
                            worker,
                            event,
                            sent,
                            took: sent.elapsed(),
                            status,
                            allow: decision["allow"] == true,
                            reason: reason(&decision).to_string(),
                            session_id: decision["session_id"].as_str().map(str::to_string),
                        };
                        answers.lock().unwrap().push(answer.clone());
                        answer
                    }
                };
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let session = format!("w{worker}-{n}");
                    if !ask("start", session.clone()).await.allow {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    for _ in 0..5 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        ask("refresh", session.clone()).await;
                    }
                    ask("stop", session).await;
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn a_failover_to_the_synchronous_standby_loses_nothing_answered() {
    let test_started = Instant::now();
    let Some(primary) = PrivatePostgres::start() else {
        return;
    };
    let standby = primary.standby();
    // Synchronous from now on: a commit waits for the standby's flush.
    let (admin, connection) = tokio_postgres::connect(
        &format!("{}/postgres", primary.server_url()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for statement in [
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin
        .query_opt(
            "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
            &[],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The database, created on the primary, replayed on the standby (whose
    // statistics pool connects at start-up).
    let db = TestDb::on(&primary.server_url());
    admin
        .batch_execute(&format!("CREATE DATABASE {}", db.name))
        .await
        .unwrap();
    drop(admin);
    let on_standby = format!("postgres://postgres@127.0.0.1:{}/{}", standby.port, db.name);
    while tokio_postgres::connect(&on_standby, tokio_postgres::NoTls)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the standby never replayed the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{}?target_session_attrs=read-write",
        primary.port, standby.port, db.name
    );
    let replica = on_standby;
    let configure = |settings: &mut playgate::Settings| {
        settings.database = database_settings(&both, None, Some(&replica), None);
        settings.db_timeout = DB_TIMEOUT;
    };
    let a = spawn_on(db.clone(), configure).await;
    let b = spawn_on(db.clone(), configure).await;
    seed_admins(&a).await;
    for n in 0..4 {
        let login: &'static str = format!("viewer{n}").leak();
        a.create(user(login).token(login)).await;
    }
    a.create(user("limited").token("limited").limit(3)).await;
    a.create(user("probe").token("probe")).await;
    b.reload().await;

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let workers = load(
        [a.address.clone(), b.address.clone()],
        stop.clone(),
        answers.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The statistics come from the standby, which follows the primary.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let streams = a.admin("GET", "/api/v1/stats/streams", None, 200).await;
        let plays = streams["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["stream"] == "live")
            .map_or(0, |item| item["plays"].as_i64().unwrap());
        if plays > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no plays on the standby: {streams}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let crashed = Instant::now();
    primary.halt();
    tokio::time::sleep(Duration::from_secs(2)).await;
    standby.promote();
    let promoted = Instant::now();
    println!(
        "crash at {:?}, promoted {:?} later",
        crashed - test_started,
        promoted - crashed
    );

    // New starts are admitted again on both replicas within 10 s…
    let deadline = promoted + Duration::from_secs(10);
    let recovered = loop {
        let recovered: Vec<Instant> = (0..2)
            .filter_map(|replica| {
                answers
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|answer| {
                        answer.worker % 2 == replica
                            && answer.event == "start"
                            && answer.allow
                            && answer.sent >= promoted
                    })
                    .map(|answer| answer.sent)
                    .min()
            })
            .collect();
        if recovered.len() == 2 {
            break recovered.into_iter().max().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "new starts not admitted on both replicas within 10 s of the promotion"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "both replicas admit again {:?} after the promotion",
        recovered - promoted
    );
    // …and from then on, every one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();

    // No 5xx, no hung request, through the whole switch.
    let slowest = answers.iter().map(|answer| answer.took).max().unwrap();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            answer.took <= DB_TIMEOUT + Duration::from_secs(1),
            "{answer:?}"
        );
    }
    // Active sessions were kept through it (outage keep-alive, then the new primary).
    let refreshes: Vec<&Answer> = answers.iter().filter(|a| a.event == "refresh").collect();
    let during: usize = refreshes
        .iter()
        .filter(|answer| answer.sent >= crashed && answer.sent < recovered)
        .count();
    assert!(during > 0, "no refresh fell into the switch");
    for answer in &refreshes {
        assert!(answer.allow, "an active session was refused: {answer:?}");
    }
    let denied_starts = answers
        .iter()
        .filter(|answer| answer.event == "start" && !answer.allow)
        .inspect(|answer| assert_eq!(answer.reason, "db_unavailable", "{answer:?}"))
        .count();
    assert!(denied_starts > 0, "the load never saw the switch");
    for answer in answers
        .iter()
        .filter(|a| a.event == "start" && a.sent >= recovered + Duration::from_millis(500))
    {
        assert!(
            answer.allow,
            "a start after the recovery was refused: {answer:?}"
        );
    }
    println!(
        "{} answers, slowest {slowest:?}; {} refreshes ({during} during the switch), {denied_starts} starts refused while no primary was there",
        answers.len(),
        refreshes.len()
    );

    // Every admission answered before the crash (and after it) is on the new primary.
    let admitted_before: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|a| a.event == "start" && a.allow && a.sent + a.took < crashed)
        .map(|a| a.session_id.as_deref().unwrap().parse().unwrap())
        .collect();
    let admitted: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|a| a.event == "start" && a.allow)
        .map(|a| a.session_id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(!admitted_before.is_empty());
    let (new_primary, connection) = tokio_postgres::connect(&replica, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let present = |ids: Vec<uuid::Uuid>| {
        let new_primary = &new_primary;
        async move {
            let found: i64 = new_primary
                .query_one("SELECT count(*) FROM sessions WHERE id = ANY($1)", &[&ids])
                .await
                .unwrap()
                .get(0);
            (found, ids.len() as i64)
        }
    };
    let (found, expected) = present(admitted_before).await;
    assert_eq!(
        found, expected,
        "admissions answered before the crash were lost"
    );
    let (found, expected) = present(admitted).await;
    assert_eq!(found, expected, "admissions answered were lost");

    for app in [&a, &b] {
        assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
    }
    // The policy listeners reconnected: a change through A is in force on B.
    let changed = Instant::now();
    a.admin(
        "PATCH",
        "/api/v1/users/probe",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let probe = with(play("live", "192.0.2.1"), json!({"token": "probe"}));
    while reason(&b.decide(probe.clone()).await) != "user_disabled" {
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "B never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Limits are exact on the new primary: 20 concurrent starts, 3 allowed.
    let mut starts = Vec::new();
    for n in 0..20 {
        let (url, http) = if n % 2 == 0 {
            (format!("{}/hook/decide", a.address), a.http.clone())
        } else {
            (format!("{}/hook/decide", b.address), b.http.clone())
        };
        starts.push(tokio::spawn(async move {
            let body = json!({"stream": "live", "ip": "192.0.2.1", "token": "limited", "session": format!("l{n}")});
            let answer: Value = http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
            reason(&answer).to_string()
        }));
    }
    let mut reasons = Vec::new();
    for start in starts {
        reasons.push(start.await.unwrap());
    }
    assert_eq!(
        reasons.iter().filter(|r| *r == "ok").count(),
        3,
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| r == "ok" || r == "session_limit"),
        "{reasons:?}"
    );
    let active: i64 = new_primary
        .query_one(
            "SELECT count(*) FROM sessions WHERE login = 'limited' AND ended_at IS NULL AND expires_at > now()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 3);
    println!("failover test took {:?}", test_started.elapsed());
}
