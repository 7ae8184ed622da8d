//! The server's life cycle: what `Application::build` prepares and starts,
//! the route table, and how it stops.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use std::sync::OnceLock;

use actix_web::{web, App};
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::config::{HookNetworks, Settings};
use crate::decision::engine::EngineParts;
use crate::decision::viewer_cookie::CookieKey;
use crate::decision::{upkeep, Engine};
use crate::geoip::{self, GeoIp, GeoIpError};
use crate::http::{openapi, ops, ApiError, AppState};
use crate::metrics::{self, Metrics};
use crate::outbox;
use crate::outbox::webhooks::{self, Subscriptions};
use crate::password::{self, PasswordVerifier};
use crate::policy_view::PolicyView;
use crate::rate_limit::FailureLimiter;
use crate::store::{self, listen, migrations, users, Endpoint, Pool, StoreError};

/// Largest request body any route accepts.
const MAX_BODY_BYTES: usize = 64 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// In-flight requests get this long to finish after SIGTERM/SIGINT.
const SHUTDOWN_TIMEOUT_SECS: u64 = 25;
/// How long start-up waits for its own notification on the listening connection.
const NOTIFICATION_CHECK: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A database endpoint that cannot be used, named by its setting.
    #[error("{setting}: {source}")]
    Database {
        setting: &'static str,
        source: StoreError,
    },
    /// A GeoIP database that cannot be used, named by its variable.
    #[error("{0}")]
    GeoIp(#[from] GeoIpError),
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
        if settings.hook_networks == HookNetworks::Anyone {
            // The hooks believe the client address a caller sends (SPEC §3).
            log::warn!(
                "PLAYGATE_HOOK_NETWORKS=*: anyone who reaches playgate may call /hook/* \
                 and name any client address"
            );
        }
        // Before the database: a wrong path is the quicker thing to report.
        let geoip = Arc::new(open_geoip(&settings).await?);
        let database = &settings.database;
        // A pooler may not know a database that does not exist yet.
        let direct = &database.listen;
        store::ensure_database(direct)
            .await
            .map_err(|e| unusable(direct, e))?;
        let pool = database.create_pool()?;
        reachable(&pool, &database.main).await?;
        let stats_pool = database.create_stats_pool()?;
        reachable(&stats_pool, &database.stats).await?;
        // Every endpoint as configured works before the schema is touched.
        notifications_arrive(&pool, direct).await?;
        if settings.migrate_on_start {
            migrate(direct).await.map_err(|e| unusable(direct, e))?;
        }
        if let Some((login, password)) = &settings.bootstrap_admin {
            bootstrap_admin(&pool, login, password).await?;
        }
        let policy = Arc::new(PolicyView::new(pool.clone()));
        policy.reload().await?;
        warn_of_geo_conditions_without_databases(&policy, &geoip);

        let metrics = Arc::new(Metrics::new(settings.metrics_max_streams));
        let passwords = Arc::new(PasswordVerifier::new(settings.bcrypt_concurrency));
        let failures = Arc::new(FailureLimiter::new(
            settings.auth_failure_limit,
            settings.auth_failure_caller_limit,
            settings.auth_failure_window,
        ));
        let cookie_key = viewer_cookie_key(&pool, &settings).await?;
        // Webhook work has a small pool of its own: a burst of events or a
        // dead receiver never takes a connection a decision needs.
        let webhook_pool = Pool::new(&database.main, webhooks::POOL_SIZE, database.prepared)?;
        let subscriptions = Arc::new(Subscriptions::new(webhook_pool.clone()));
        // Not fatal: the worker reads it again at its first poll.
        if let Err(e) = subscriptions.refresh().await {
            log::warn!("reading webhook subscriptions failed: {e}");
        }
        let engine = Arc::new(Engine::new(
            &settings,
            EngineParts {
                pool: pool.clone(),
                policy: Arc::clone(&policy),
                metrics: Arc::clone(&metrics),
                passwords: Arc::clone(&passwords),
                failures: Arc::clone(&failures),
                cookie_key,
                geoip: Arc::clone(&geoip),
                webhooks: Arc::clone(&subscriptions),
            },
        ));
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            pool: pool.clone(),
            stats_pool,
            policy: Arc::clone(&policy),
            metrics,
            engine,
            passwords,
            failures,
            geoip: Arc::clone(&geoip),
            webhooks: Arc::clone(&subscriptions),
        });

        let (background, stop_signal) = watch::channel(false);
        tokio::spawn(
            Arc::clone(&policy).keep_fresh(settings.database.listen.clone(), stop_signal.clone()),
        );
        tokio::spawn(upkeep::sweep_sessions(
            pool.clone(),
            Arc::clone(&settings),
            Arc::clone(&state.metrics),
            stop_signal.clone(),
        ));
        tokio::spawn(upkeep::write_heartbeats(
            Arc::clone(&state.engine),
            stop_signal.clone(),
        ));
        tokio::spawn(upkeep::write_denial_counts(
            Arc::clone(&state.engine),
            settings.stats_interval,
            stop_signal.clone(),
        ));
        tokio::spawn(upkeep::follow_session_ends(
            Arc::clone(&state.engine),
            settings.database.listen.clone(),
            stop_signal.clone(),
        ));
        tokio::spawn(outbox::streamer_calls::deliver(
            pool.clone(),
            Arc::clone(&state.metrics),
            settings.streamer_call_retry,
            stop_signal.clone(),
        ));
        tokio::spawn(
            webhooks::Worker::new(
                webhook_pool,
                settings.webhooks.clone(),
                Arc::clone(&state.metrics),
                subscriptions,
            )
            .run(stop_signal.clone()),
        );
        geoip.spawn_watcher(geoip::WATCH_INTERVAL, stop_signal.clone());
        tokio::spawn(metrics::read_cluster_gauges(
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

/// The GeoIP files, read and checked on the blocking pool (several MB each).
async fn open_geoip(settings: &Settings) -> Result<GeoIp, StartupError> {
    let files = settings.geoip.clone();
    let geoip = tokio::task::spawn_blocking(move || {
        GeoIp::open(files.country_db.as_deref(), files.asn_db.as_deref())
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    if !geoip.has_country_db() {
        log::info!("GeoIP: no PLAYGATE_GEOIP_COUNTRY_DB, every address is country XX");
    }
    if !geoip.has_asn_db() {
        log::info!("GeoIP: no PLAYGATE_GEOIP_ASN_DB, every address is AS 0");
    }
    Ok(geoip)
}

/// SPEC §10: without a database every address is XX and AS 0, so a
/// condition on them closes (or opens) for everyone; say so at start-up.
fn warn_of_geo_conditions_without_databases(policy: &PolicyView, geoip: &GeoIp) {
    let snapshot = policy.snapshot();
    let rules = snapshot.access_rules();
    if !geoip.has_country_db() && (rules.needs_country() || snapshot.has_user_countries()) {
        log::warn!(
            "access rules or users name countries, but PLAYGATE_GEOIP_COUNTRY_DB is not set: \
             every client is country XX"
        );
    }
    if !geoip.has_asn_db() && rules.needs_asn() {
        log::warn!(
            "access rules name ASNs, but PLAYGATE_GEOIP_ASN_DB is not set: every client is AS 0"
        );
    }
}

/// Applies pending migrations on a connection of its own (the direct one:
/// no statement cap, and DDL is best not sent through a pooler).
pub async fn migrate(direct: &Endpoint) -> Result<Vec<i32>, StoreError> {
    let mut client = direct.connect().await?;
    migrations::run(&mut client).await
}

/// The viewer cookie's key: `PLAYGATE_VIEWER_COOKIE_SECRET`, else the one
/// kept in the database (made by the first replica), so that every replica
/// verifies the cookies any of them set.
async fn viewer_cookie_key(pool: &Pool, settings: &Settings) -> Result<CookieKey, StoreError> {
    if let Some(secret) = &settings.viewer_cookie_secret {
        return Ok(CookieKey::new(secret.as_bytes().to_vec()));
    }
    let client = pool.get().await?;
    let key = store::viewer_cookie::shared_key(&client, &CookieKey::random_bytes()).await?;
    Ok(CookieKey::new(key))
}

fn unusable(endpoint: &Endpoint, source: StoreError) -> StartupError {
    StartupError::Database {
        setting: endpoint.setting,
        source,
    }
}

/// One connection of the pool, so that a wrong address, password or
/// certificate stops start-up naming its setting.
async fn reachable(pool: &Pool, endpoint: &Endpoint) -> Result<(), StartupError> {
    pool.get()
        .await
        .map(drop)
        .map_err(|e| unusable(endpoint, e.into()))
}

/// `LISTEN` through a transaction pooler connects and then never hears
/// anything: better to stop now than to serve stale policy.
async fn notifications_arrive(pool: &Pool, listen: &Endpoint) -> Result<(), StartupError> {
    let arrived = listen::notifications_arrive(pool, listen, NOTIFICATION_CHECK)
        .await
        .map_err(|e| unusable(listen, e))?;
    if arrived {
        return Ok(());
    }
    let through = if listen.setting == "DATABASE_URL" {
        "DATABASE_URL, as PLAYGATE_LISTEN_DATABASE_URL is not set"
    } else {
        "PLAYGATE_LISTEN_DATABASE_URL"
    };
    Err(StartupError::Database {
        setting: "PLAYGATE_LISTEN_DATABASE_URL",
        source: StoreError::Other(format!(
            "a notification sent through DATABASE_URL did not reach the connection listening \
             through {through} within {} s: LISTEN needs a direct connection to the primary \
             (or a session pooler), not a transaction pooler",
            NOTIFICATION_CHECK.as_secs()
        )),
    })
}

async fn bootstrap_admin(pool: &Pool, login: &str, password: &str) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    if users::admin_exists(&client).await? {
        return Ok(());
    }
    let hash = password::hash(password)
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?;
    if users::ensure_bootstrap_admin(&mut client, login, &hash).await? {
        log::info!("created bootstrap admin '{login}'");
    }
    Ok(())
}

/// Every route of the service, and the OpenAPI document describing them.
pub fn routes(config: &mut web::ServiceConfig) {
    static DOCUMENT: OnceLock<web::Data<openapi::Document>> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        web::Data::new(openapi::document([
            crate::hooks::ApiDoc::openapi(),
            crate::admin::ApiDoc::openapi(),
            crate::ui::ApiDoc::openapi(),
        ]))
    });
    config
        .app_data(document.clone())
        .configure(ops::routes)
        .configure(crate::hooks::routes)
        .configure(crate::admin::routes)
        .configure(crate::ui::routes)
        .default_service(web::to(|| async { ApiError::not_found().into_response() }));
}
