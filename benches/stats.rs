//! Statistics queries over a large session history.
//!
//! `cargo bench --bench stats` builds (once, then reuses) a database
//! `playgate_bench_stats` with BENCH_ROWS (default 10 000 000) ended sessions
//! spread over 90 days, 1 000 streams and 100 000 users, then times the
//! per-stream statistics of the last 24 hours and one user's statistics of the
//! last 30 days, printing the median of several runs. BENCH_FRESH=1 rebuilds.

use std::time::{Duration, Instant};

use chrono::Utc;
use playgate::config::{Settings, SettingsArgs};
use playgate::store::{self, stats};

const DATABASE: &str = "playgate_bench_stats";
const RUNS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs harness-less benches too: only `cargo bench` passes --bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("stats bench: skipped (run it with cargo bench --bench stats)");
        return;
    }
    let server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let url = format!("{server}/{DATABASE}");
    let settings = Settings::from_args(&SettingsArgs {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .unwrap();
    let direct = &settings.database.listen;
    if std::env::var("BENCH_FRESH").is_ok_and(|v| v == "1") {
        let admin = direct.with_dbname("postgres").connect().await.unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            .await
            .unwrap();
    }
    store::ensure_database(direct).await.unwrap();
    playgate::app::migrate(direct).await.unwrap();
    let pool = settings.database.create_pool().unwrap();
    let client = pool.get().await.unwrap();

    let existing: i64 = client
        .query_one("SELECT count(*) FROM session_log", &[])
        .await
        .unwrap()
        .get(0);
    if existing < rows {
        println!(
            "generating {} sessions (once; BENCH_FRESH=1 regenerates)…",
            rows - existing
        );
        let started = Instant::now();
        // Bulk generation, not a request: lift the per-statement cap of the pool's connections.
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .unwrap();
        // Ended sessions live in the daily partitions of session_history (sql/V12).
        client
            .batch_execute(
                "SELECT playgate_history_partitions((now() AT TIME ZONE 'UTC')::date - 91,
                                                    (now() AT TIME ZONE 'UTC')::date)",
            )
            .await
            .unwrap();
        let batch = 1_000_000i64;
        let mut from = existing;
        while from < rows {
            let to = (from + batch).min(rows);
            // Session g started g × (90 days / rows) ago and lasted up to an hour.
            client
                .execute(
                    "INSERT INTO session_history (id, key, login, stream, client_ip, dialect, started_at,
                                                  last_seen_at, expires_at, ended_at, end_reason)
                     SELECT gen_random_uuid(), 'bench:' || g, 'user' || (g % 100000), 'channel-' || (g % 1000), '10.0.0.1', 'decide',
                            s, s + (g % 3600) * interval '1 second', s + (g % 3600) * interval '1 second',
                            s + (g % 3600) * interval '1 second', 'stopped'
                       FROM generate_series($1::int8, $2::int8 - 1) AS g,
                            LATERAL (SELECT now() - interval '1 hour'
                                     - g * (interval '90 days' / $3::int8) AS s) AS start",
                    &[&from, &to, &rows],
                )
                .await
                .unwrap();
            from = to;
            println!("  {from} rows ({:.0?})", started.elapsed());
        }
        client
            .batch_execute("VACUUM ANALYZE session_history")
            .await
            .unwrap();
        println!("generated in {:.1?}", started.elapsed());
    }
    let total: i64 = client
        .query_one("SELECT count(*) FROM session_log", &[])
        .await
        .unwrap()
        .get(0);

    let now = Utc::now();
    let day_ago = now - chrono::Duration::hours(24);
    let month_ago = now - chrono::Duration::days(30);
    let mut stream_times = Vec::new();
    let mut user_times = Vec::new();
    let mut streams_seen = 0;
    let mut user_sessions = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        streams_seen = stats::streams(&client, day_ago, now).await.unwrap().len();
        stream_times.push(started.elapsed());
        let started = Instant::now();
        user_sessions = stats::user(&client, "user4242", month_ago, now)
            .await
            .unwrap()
            .sessions;
        user_times.push(started.elapsed());
    }
    println!("history rows: {total}");
    println!(
        "GET /api/v1/stats/streams (last 24 h, {streams_seen} streams): median {:.1?} over {RUNS} runs",
        median(stream_times)
    );
    println!(
        "GET /api/v1/stats/users/{{login}} (last 30 days, {user_sessions} sessions): median {:.1?} over {RUNS} runs",
        median(user_times)
    );
}
