//! Policy propagation at a million users (issue 6).
//!
//! `cargo bench --bench propagation` creates a database
//! `playgate_bench_propagation` (dropped again at the end), fills it by plain
//! SQL with BENCH_USERS (default 1 000 000) users, each with a token, 1 % of
//! them bound to an address and half of them in a package, starts a
//! `PolicyView` listening as a replica's does, and prints:
//! - the full reload time (what every change cost each replica before);
//! - the delay from a one-user change (SQL, committed) until the view shows
//!   it, median and worst of several, for a few kinds of change;
//! - the same while a full reload is under way beside it;
//! - the writing replica's path: commit, then `PolicyView::reload()`;
//! - the cost of the decision's lookups, with an empty overlay and with
//!   1000 re-read users on top of the base.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ipnet::IpNet;
use playgate::config::{Settings, SettingsArgs};
use playgate::decision::evaluate;
use playgate::decision::{Credential, PlayRequest};
use playgate::domain::{hash_token, Reason, TokenRecord, UserKind, UserRecord};
use playgate::policy_view::{PolicySnapshot, PolicyView};
use playgate::store;

const DATABASE: &str = "playgate_bench_propagation";
/// Every user's (not a real hash: nothing here checks passwords).
const PASSWORD_HASH: &str = "$2b$04$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01";
const REPEATS: usize = 9;
/// The decision's lookups are timed over this many requests.
const LOOKUPS: usize = 200_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn worst(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn token_request(token: String) -> PlayRequest {
    let mut request = PlayRequest::new("decide", "news", "192.0.2.1".parse().unwrap());
    request.credential = Credential::Token(token);
    request
}

/// The address bound to user `id` (every hundredth user has one).
fn bound_ip(id: i64) -> IpAddr {
    format!("10.{}.{}.{}", id / 65536 % 256, id / 256 % 256, id % 256)
        .parse()
        .unwrap()
}

/// Polls the view until `visible` holds; the delay since `started`.
async fn wait_until(
    view: &PolicyView,
    started: Instant,
    visible: impl Fn(&PolicySnapshot) -> bool,
) -> Duration {
    loop {
        if visible(&view.snapshot()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "change not visible after a minute"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn evaluate(snapshot: &PolicySnapshot, request: &PlayRequest) -> Result<String, Reason> {
    evaluate::evaluate(request, snapshot, Utc::now(), None)
        .map(|admitted| admitted.user.map(|u| u.login.clone()).unwrap_or_default())
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs harness-less benches too: only `cargo bench` passes --bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("propagation bench: skipped (run it with cargo bench --bench propagation)");
        return;
    }
    // RUST_LOG=playgate=debug shows each full reload's read and build times.
    let _ = env_logger::builder().try_init();
    let server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let users: i64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let url = format!("{server}/{DATABASE}");
    let settings = Settings::from_args(&SettingsArgs {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .unwrap();
    let direct = &settings.database.listen;
    let admin = direct.with_dbname("postgres").connect().await.unwrap();
    let drop_database = format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)");
    admin.batch_execute(&drop_database).await.unwrap();
    store::ensure_database(direct).await.unwrap();
    playgate::app::migrate(direct).await.unwrap();

    // Plain connection: bulk SQL must not be capped like the pool's statements.
    let writer = direct.connect().await.unwrap();
    let started = Instant::now();
    writer
        .batch_execute(&format!(
            "INSERT INTO packages (name, streams) VALUES ('basic', '{{news,sport/*}}'), ('hd', '{{*_hd}}');
             INSERT INTO users (login, password_hash, ips, max_sessions)
             SELECT 'user' || g,
                    '{PASSWORD_HASH}',
                    CASE WHEN g % 100 = 0
                         THEN ARRAY[('10.' || (g / 65536 % 256) || '.' || (g / 256 % 256) || '.' || (g % 256))::cidr]
                         ELSE '{{}}' END,
                    2
               FROM generate_series(1, {users}) g;
             INSERT INTO tokens (user_id, hash) SELECT id, sha256(('token-' || id)::bytea) FROM users;
             INSERT INTO user_packages (user_id, package_id)
             SELECT u.id, p.id FROM users u, packages p WHERE p.name = 'basic' AND u.id % 2 = 0;
             INSERT INTO ip_rules (network, action) VALUES ('198.51.100.0/24', 'deny'), ('203.0.113.0/24', 'allow');"
        ))
        .await
        .unwrap();
    writer.batch_execute("VACUUM ANALYZE").await.unwrap();
    println!(
        "{users} users, tokens, packages written in {:.1?}",
        started.elapsed()
    );

    let view = Arc::new(PolicyView::new(settings.database.create_pool().unwrap()));

    // What every change cost each replica before: a full reload.
    let mut full = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        view.full_reload().await.unwrap();
        full.push(started.elapsed());
    }
    println!(
        "full reload of {} users: median {:.2?} ({:.2?})",
        view.snapshot().user_count(),
        median(full.clone()),
        full
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listener =
        tokio::spawn(Arc::clone(&view).keep_fresh(settings.database.listen.clone(), stopped));
    // Connected, and its own first full reload done: reload() waits for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    view.reload().await.unwrap();

    // One user changed by SQL: until the view shows it.
    let ids: Vec<i64> = (0..REPEATS as i64)
        .map(|n| 1 + (n * 104_729 + 7) % users)
        .collect();
    let mut by_kind: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut disabled = Vec::new();
    for &id in &ids {
        let login = format!("user{id}");
        let started = Instant::now();
        writer
            .execute("UPDATE users SET enabled = false WHERE id = $1", &[&id])
            .await
            .unwrap();
        disabled.push(
            wait_until(&view, started, |s| {
                s.user(&login).is_some_and(|u| !u.enabled)
            })
            .await,
        );
    }
    by_kind.push(("user disabled (UPDATE users)", disabled));
    let mut tokens = Vec::new();
    for (n, &id) in ids.iter().enumerate() {
        let token = format!("fresh-token-{n}");
        let request = token_request(token.clone());
        let started = Instant::now();
        writer
            .execute(
                "INSERT INTO tokens (user_id, hash) VALUES ($1, sha256($2::text::bytea))",
                &[&id, &token],
            )
            .await
            .unwrap();
        tokens.push(
            wait_until(&view, started, |s| {
                evaluate(s, &request) != Err(Reason::UnknownToken)
            })
            .await,
        );
    }
    by_kind.push(("token added (INSERT tokens)", tokens));
    let mut renamed = Vec::new();
    for &id in &ids {
        let (old, new) = (format!("user{id}"), format!("renamed{id}"));
        let started = Instant::now();
        writer
            .execute("UPDATE users SET login = $2 WHERE id = $1", &[&id, &new])
            .await
            .unwrap();
        renamed.push(
            wait_until(&view, started, |s| {
                s.user(&new).is_some() && s.user(&old).is_none()
            })
            .await,
        );
    }
    by_kind.push(("user renamed (UPDATE users)", renamed));
    let mut deleted = Vec::new();
    for &id in &ids {
        let login = format!("renamed{id}");
        let request = token_request(format!("token-{id}"));
        let started = Instant::now();
        writer
            .execute("DELETE FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
        deleted.push(
            wait_until(&view, started, |s| {
                s.user(&login).is_none() && evaluate(s, &request) == Err(Reason::UnknownToken)
            })
            .await,
        );
    }
    by_kind.push(("user deleted (DELETE users)", deleted));
    let mut all = Vec::new();
    for (kind, samples) in &by_kind {
        println!(
            "one-user change visible in the view, {kind}: median {:.1?}, worst {:.1?} of {}",
            median(samples.clone()),
            worst(samples),
            samples.len()
        );
        all.extend(samples.iter().copied());
    }
    println!(
        "one-user change visible in the view, all kinds: median {:.1?}, worst {:.1?} of {}",
        median(all.clone()),
        worst(&all),
        all.len()
    );

    // The same while a full reload runs beside the listener.
    let background = {
        let view = Arc::clone(&view);
        tokio::spawn(async move { view.full_reload().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut during = Vec::new();
    let mut n = 0;
    while !background.is_finished() && n < REPEATS as i64 {
        let id = users - n;
        let login = format!("user{id}");
        let started = Instant::now();
        writer
            .execute("UPDATE users SET max_sessions = 7 WHERE id = $1", &[&id])
            .await
            .unwrap();
        let delay = wait_until(&view, started, |s| {
            s.user(&login).is_some_and(|u| u.max_sessions == Some(7))
        })
        .await;
        if !background.is_finished() {
            during.push(delay);
        }
        n += 1;
    }
    background.await.unwrap();
    if during.is_empty() {
        println!("one-user change during a full reload: none measured (the reload was too quick)");
    } else {
        println!(
            "one-user change visible during a full reload: median {:.1?}, worst {:.1?} of {}",
            median(during.clone()),
            worst(&during),
            during.len()
        );
    }

    // The writing replica: the admin handler commits, then calls reload().
    let mut writes = Vec::new();
    for &id in &ids {
        let id = id + 1;
        let login = format!("user{id}");
        let started = Instant::now();
        writer
            .execute(
                "UPDATE users SET comment = 'x', max_sessions = 9 WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        view.reload().await.unwrap();
        writes.push(started.elapsed());
        assert!(view
            .snapshot()
            .user(&login)
            .is_some_and(|u| u.max_sessions == Some(9)));
    }
    println!(
        "commit + PolicyView::reload() on the writing replica: median {:.1?}, worst {:.1?} of {}",
        median(writes.clone()),
        worst(&writes),
        writes.len()
    );

    stop.send(true).unwrap();
    listener.await.unwrap();

    // Lookups, with the overlay empty (just folded) and with 1000 re-read users.
    view.full_reload().await.unwrap();
    let base = view.snapshot();
    let basic: i64 = writer
        .query_one("SELECT id FROM packages WHERE name = 'basic'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(base.overlay_len(), 0);
    // Re-read as they are (the same rows), spread over the table: lookups
    // of these go to the overlay, the others to the base past the overlay.
    let patched_ids: Vec<i64> = (1..=1000).map(|n| n * (users / 1000) - n % 2).collect();
    let records = patched_ids
        .iter()
        .map(|&id| UserRecord {
            id,
            login: format!("user{id}"),
            password_hash: Some(PASSWORD_HASH.into()),
            kind: UserKind::User,
            ips: if id % 100 == 0 {
                vec![IpNet::from(bound_ip(id))]
            } else {
                vec![]
            },
            expires_at: None,
            max_sessions: Some(2),
            max_devices: None,
            enabled: true,
            countries: vec![],
            package_ids: if id % 2 == 0 { vec![basic] } else { vec![] },
        })
        .collect();
    let tokens = patched_ids
        .iter()
        .map(|&id| TokenRecord {
            hash: hash_token(&format!("token-{id}")),
            user_id: id,
            expires_at: None,
        })
        .collect();
    let overlaid = base.with_users(u64::MAX, &patched_ids, records, tokens);
    assert_eq!(overlaid.overlay_len(), 1000);
    compare_lookups(
        users,
        &[("empty overlay", &base), ("1000 re-read users", &overlaid)],
    );
    drop((base, overlaid, view));
    admin.batch_execute(&drop_database).await.unwrap();
    println!("dropped {DATABASE}");
}

/// The requests whose lookups are timed: ids spread across the table.
struct Lookups {
    logins: Vec<String>,
    by_token: Vec<PlayRequest>,
    by_ip: Vec<PlayRequest>,
}

impl Lookups {
    fn new(users: i64) -> Lookups {
        let ids: Vec<i64> = (0..LOOKUPS as i64)
            .map(|n| 2 + (n * 7_919) % (users - 2))
            .collect();
        Lookups {
            logins: ids.iter().map(|id| format!("user{id}")).collect(),
            by_token: ids
                .iter()
                .map(|id| token_request(format!("token-{id}")))
                .collect(),
            by_ip: ids
                .iter()
                .map(|id| PlayRequest::new("decide", "news", bound_ip(id / 100 * 100 + 100)))
                .collect(),
        }
    }

    /// ns per lookup: user(login), evaluate by token, evaluate by bound IP, ip_rule.
    fn time(&self, snapshot: &PolicySnapshot) -> [f64; 4] {
        let per = |started: Instant, hits: usize| {
            assert!(hits > 0);
            started.elapsed().as_nanos() as f64 / LOOKUPS as f64
        };
        let started = Instant::now();
        // Reading a field too, as every caller does: the user's memory is touched either way.
        let hits = self
            .logins
            .iter()
            .filter(|l| snapshot.user(l).is_some_and(|u| u.enabled))
            .count();
        let user = per(started, hits);
        let started = Instant::now();
        let hits = self
            .by_token
            .iter()
            .filter(|r| evaluate(snapshot, r).is_ok())
            .count();
        let token = per(started, hits);
        let started = Instant::now();
        let hits = self
            .by_ip
            .iter()
            .filter(|r| evaluate(snapshot, r).is_ok())
            .count();
        let ip = per(started, hits);
        let started = Instant::now();
        let hits = self
            .by_ip
            .iter()
            .filter(|r| snapshot.ip_rule(r.client_ip).is_none())
            .count();
        let rule = per(started, hits);
        [user, token, ip, rule]
    }
}

/// Best of several passes, alternating between the snapshots: the machine
/// may be shared, and the best pass is the least disturbed.
fn compare_lookups(users: i64, snapshots: &[(&str, &PolicySnapshot)]) {
    let lookups = Lookups::new(users);
    let mut best = vec![[f64::MAX; 4]; snapshots.len()];
    for _ in 0..5 {
        for (best, (_, snapshot)) in best.iter_mut().zip(snapshots) {
            for (best, ns) in best.iter_mut().zip(lookups.time(snapshot)) {
                *best = best.min(ns);
            }
        }
    }
    for (name, [user, token, ip, rule]) in snapshots.iter().map(|(name, _)| name).zip(best) {
        println!(
            "lookups, best of 5 ({name}): user(login) {user:.0} ns, evaluate by token {token:.0} ns, \
             evaluate by bound IP {ip:.0} ns, ip_rule {rule:.0} ns"
        );
    }
}
