//! The machine's ceilings for `scripts/bench`: the same actix-web server and
//! PostgreSQL pool as playgate, with handlers that do (almost) nothing.
//!
//! - `GET /noop` answers 200 at once: the HTTP ceiling.
//! - `GET /upsert?key=K` does one session upsert (the statement shape of a
//!   playgate refresh) and answers 200: the one-round-trip ceiling.
//! - `GET /insert?key=K` inserts one new session row (autocommit: one commit
//!   per request) and answers 200: the one-insert ceiling an admission is
//!   compared with. `sessions` has a unique index on the key of open rows,
//!   so K must be new on every request.
//!
//! Usage: `ceiling <listen address> <database url>` (the database must be migrated).

use actix_web::{web, App, HttpResponse, HttpServer};
use playgate::config::{Settings, SettingsArgs};
use playgate::store::Pool;

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: String,
}

async fn noop() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// One statement with the request's key, its own commit: 200, or 500 with the error.
async fn one_statement(pool: &Pool, sql: &str, key: &str) -> HttpResponse {
    let result = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| e.to_string())?;
        client
            .execute(&statement, &[&key])
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

async fn upsert(pool: web::Data<Pool>, query: web::Query<KeyQuery>) -> HttpResponse {
    one_statement(
        &pool,
        "INSERT INTO sessions (key, login, stream, client_ip, expires_at)
         VALUES ($1, 'ceiling', 'ceiling', '127.0.0.1', now() + interval '90 seconds')
         ON CONFLICT (key) WHERE ended_at IS NULL
         DO UPDATE SET last_seen_at = now(), expires_at = EXCLUDED.expires_at",
        &query.key,
    )
    .await
}

async fn insert(pool: web::Data<Pool>, query: web::Query<KeyQuery>) -> HttpResponse {
    one_statement(
        &pool,
        "INSERT INTO sessions (key, login, stream, client_ip, expires_at)
         VALUES ($1, 'ceiling', 'ceiling', '127.0.0.1', now() + interval '1 hour')",
        &query.key,
    )
    .await
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let database_url = args.next();
    let settings = Settings::from_args(&SettingsArgs {
        database_url,
        ..Default::default()
    })
    .expect("valid settings");
    let pool = web::Data::new(settings.database.create_pool().expect("pool"));
    HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .route("/noop", web::get().to(noop))
            // A webhook receiver that takes every delivery (scripts/bench --webhooks).
            .route("/noop", web::post().to(noop))
            .route("/upsert", web::get().to(upsert))
            .route("/insert", web::get().to(insert))
    })
    .bind(listen)?
    .run()
    .await
}
