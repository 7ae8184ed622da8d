//! Application state, routes, background tasks and the server's life cycle.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpResponse};
use deadpool_postgres::Pool;
use serde_json::json;
use tokio::sync::watch;

use crate::config::Settings;
use crate::decision::engine::HEARTBEAT_INTERVAL;
use crate::decision::Engine;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::policy_view::PolicyView;
use crate::store::listen::Listener;
use crate::store::{self, migrations, sessions, stats, users, StoreError};

/// Largest request body any route accepts.
const MAX_BODY_BYTES: usize = 64 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// In-flight requests get this long to finish after SIGTERM/SIGINT.
const SHUTDOWN_TIMEOUT_SECS: u64 = 25;
/// Channel of `sql/V6__session_ended_notify.sql`.
const SESSION_ENDED_CHANNEL: &str = "playgate_session_ended";
const LISTEN_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Shared by every handler (as `web::Data`).
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub policy: Arc<PolicyView>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    background: Arc<watch::Sender<bool>>,
}

impl Application {
    /// Prepares the database, loads the policy view, starts the background
    /// tasks and binds the port (port 0 picks a free one).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        store::ensure_database(&settings.database_url).await?;
        if settings.migrate_on_start {
            migrate(&settings.database_url).await?;
        }
        let pool = store::create_pool(&settings)?;
        if let Some((login, password)) = &settings.bootstrap_admin {
            bootstrap_admin(&pool, login, password).await?;
        }
        let policy = Arc::new(PolicyView::new(pool.clone()));
        policy.reload().await?;

        let metrics = Arc::new(Metrics::new(settings.metrics_max_streams));
        let engine = Arc::new(Engine::new(
            &settings,
            pool.clone(),
            Arc::clone(&policy),
            Arc::clone(&metrics),
        ));
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            pool: pool.clone(),
            policy: Arc::clone(&policy),
            metrics,
            engine,
        });

        let (background, stop_signal) = watch::channel(false);
        tokio::spawn(
            Arc::clone(&policy).keep_fresh(settings.database_url.clone(), stop_signal.clone()),
        );
        tokio::spawn(sweep_sessions(
            pool.clone(),
            Arc::clone(&settings),
            Arc::clone(&state.metrics),
            stop_signal.clone(),
        ));
        tokio::spawn(write_heartbeats(
            Arc::clone(&state.engine),
            stop_signal.clone(),
        ));
        tokio::spawn(follow_session_ends(
            Arc::clone(&state.engine),
            settings.database_url.clone(),
            stop_signal.clone(),
        ));
        tokio::spawn(read_cluster_gauges(
            pool,
            settings.stats_interval,
            Arc::clone(&state.metrics),
            stop_signal,
        ));

        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            address: settings.listen,
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: settings.listen,
                source,
            })?
            .port();
        let server_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(server_state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .configure(routes)
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        // Longer than clients' usual pool idle time would invite a race where
        // the server closes a connection the client is just reusing; 75 s is
        // what proxies (nginx upstream keepalive) expect of a backend.
        .keep_alive(KEEP_ALIVE)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: settings.listen,
            source,
        })?
        .run();
        log::info!("playgate listening on port {port}");
        Ok(Application {
            port,
            server,
            state,
            background: Arc::new(background),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Stops the server (gracefully) and the background tasks, from outside.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            server: self.server.handle(),
            background: Arc::clone(&self.background),
        }
    }

    /// Serves until SIGTERM/SIGINT (or `AppHandle::stop`): stops accepting,
    /// lets in-flight requests finish, then stops the background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.background.send(true);
        // The last refreshes answered from memory.
        if let Err(e) = self.state.engine.write_heartbeats().await {
            log::warn!("writing the last heartbeats failed: {e}");
        }
        result
    }
}

#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
    background: Arc<watch::Sender<bool>>,
}

impl AppHandle {
    pub async fn stop(&self, graceful: bool) {
        let _ = self.background.send(true);
        self.server.stop(graceful).await;
    }
}

/// Applies pending migrations on a connection of its own.
pub async fn migrate(database_url: &str) -> Result<Vec<i32>, StoreError> {
    let mut client = store::connect(&store::pg_config(database_url)?).await?;
    migrations::run(&mut client).await
}

async fn bootstrap_admin(pool: &Pool, login: &str, password: &str) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    if users::admin_exists(&client).await? {
        return Ok(());
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password, bcrypt::DEFAULT_COST))
        .await
        .map_err(|e| StoreError::Other(format!("bcrypt: {e}")))?
        .map_err(|e| StoreError::Other(format!("bcrypt: {e}")))?;
    if users::ensure_bootstrap_admin(&mut client, login, &hash).await? {
        log::info!("created bootstrap admin '{login}'");
    }
    Ok(())
}

/// Sleeps `interval`; false when the application is stopping.
async fn tick(interval: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(interval) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

async fn sweep_sessions(
    pool: Pool,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    while tick(settings.sweep_interval, &mut stop).await {
        let result = async {
            let mut client = pool.get().await?;
            sessions::sweep(
                &mut client,
                settings.history_days,
                settings.session_duration,
            )
            .await
        }
        .await;
        match result {
            Ok(swept) => {
                for (stream, seconds) in &swept.watched_by_stream {
                    metrics.watched(stream, *seconds);
                }
                if swept.timed_out > 0 || swept.purged > 0 {
                    log::debug!(
                        "sweep: {} sessions timed out, {} history rows purged",
                        swept.timed_out,
                        swept.purged
                    );
                }
            }
            Err(e) => log::warn!("session sweep failed: {e}"),
        }
    }
}

/// Refreshes answered from memory reach PostgreSQL in one batch per interval.
async fn write_heartbeats(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    while tick(HEARTBEAT_INTERVAL, &mut stop).await {
        if let Err(e) = engine.write_heartbeats().await {
            log::warn!("writing heartbeats failed: {e}");
        }
    }
}

/// Sessions ended through another replica (or by the sweeper) are forgotten
/// here as soon as PostgreSQL announces it.
async fn follow_session_ends(
    engine: Arc<Engine>,
    database_url: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match Listener::connect(&database_url, &[SESSION_ENDED_CHANNEL]).await {
            Ok(Listener {
                mut notifications, ..
            }) => {
                // Ends announced while no one listened are unknown.
                engine.forget_all_sessions();
                loop {
                    tokio::select! {
                        received = notifications.next() => match received {
                            Ok(ended) => match ended.payload.parse() {
                                Ok(session_id) => engine.forget_session(session_id),
                                Err(_) => log::warn!("unexpected session end payload"),
                            },
                            Err(e) => {
                                log::warn!("session end listener: {e}; reconnecting");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(e) => log::warn!("session end listener: {e}; reconnecting"),
        }
        if !tick(LISTEN_RECONNECT_DELAY, &mut stop).await {
            return;
        }
    }
}

/// The cluster-wide gauges come from PostgreSQL on a timer, not per scrape.
async fn read_cluster_gauges(
    pool: Pool,
    interval: Duration,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let result = async {
            let client = pool.get().await?;
            stats::cluster_gauges(&client).await
        }
        .await;
        match result {
            Ok(gauges) => metrics.set_cluster_gauges(
                &gauges.viewers_by_stream,
                gauges.active_sessions,
                gauges.users,
            ),
            Err(e) => log::warn!("reading cluster gauges failed: {e}"),
        }
        if !tick(interval, &mut stop).await {
            return;
        }
    }
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .configure(crate::hooks::routes)
        .configure(crate::admin::routes)
        .configure(crate::ui::routes)
        .default_service(web::to(|| async { ApiError::not_found().into_response() }));
}

impl ApiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers, is migrated, and the policy view is loaded.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = async {
        let client = state.pool.get().await?;
        migrations::current_version(&client).await
    }
    .await;
    let problem = match checked {
        Ok(Some(version)) if version >= migrations::latest_version() => {
            if state.policy.is_loaded() {
                None
            } else {
                Some("policy view not loaded".to_string())
            }
        }
        Ok(version) => Some(format!(
            "database schema at version {}, {} needed",
            version.unwrap_or(0),
            migrations::latest_version()
        )),
        Err(e) => {
            log::warn!("readiness check: {e}");
            Some("database unavailable".to_string())
        }
    };
    match problem {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "reason": reason})),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.set_pool_connections(state.pool.status());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
