//! Every SQL statement of playgate lives under this module.

pub mod access_rules;
pub mod audit;
pub mod denials;
pub mod ip_rules;
pub mod link_uses;
pub mod listen;
pub mod migrations;
pub mod packages;
pub mod policy;
pub mod sessions;
pub mod signing_keys;
pub mod sql;
pub mod stats;
pub mod streamers;
pub mod tls;
pub mod tokens;
pub mod ui_sessions;
pub mod user_import;
pub mod users;
pub mod viewer_cookie;
pub mod webhooks;

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::domain::ErrorChain;
use sql::Typed;

/// How long a request may wait for a pooled connection; a hook must answer
/// well within the streamers' own timeouts (seconds), never hang.
const POOL_WAIT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Server-side cap for any one statement.
pub const STATEMENT_TIMEOUT_MS: u64 = 5_000;

/// A failed database call. `Display` carries the whole cause chain (the
/// server's message included), so one `{e}` in a log line says what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {}", ErrorChain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {}", ErrorChain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database did not answer within `PLAYGATE_DB_TIMEOUT_MS`.
    #[error("database did not answer in time")]
    Timeout,
    /// The database was unreachable for a statement this caller shared
    /// (a batch of admissions); the text is the original error's.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// A connection, pool or time-out failure: the database is unreachable
    /// (or shutting down, overloaded, read-only) rather than refusing this
    /// statement. Hooks keep active sessions through the first kind and deny
    /// on the second, whatever `PLAYGATE_ON_DB_ERROR` says.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Timeout | StoreError::Unavailable(_) => true,
            // No SQL state: the connection or the protocol failed, not a statement.
            StoreError::Db(e) => e.is_closed() || e.code().is_none_or(unavailable_state),
            StoreError::Other(_) => false,
        }
    }

    /// The SQL state of a database error, to map unique violations to 409 etc.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            StoreError::Db(e) => e.code(),
            StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    /// The constraint a database error names (a unique violation's index).
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Db(e) => e.as_db_error().and_then(|e| e.constraint()),
            _ => None,
        }
    }
}

/// SQL states that say the server cannot serve now, not that it refuses this
/// statement: connection exceptions (08), insufficient resources (53: too
/// many connections, disk full), shutting down or starting (57P01–57P03), a
/// statement cancelled by `statement_timeout` (57014), a read-only standby
/// (25006, during a fail-over).
fn unavailable_state(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "25006")
}

/// One PostgreSQL endpoint as a URL names it: the driver's settings
/// (several hosts, `target_session_attrs`, …) and how TLS is checked.
#[derive(Clone)]
pub struct Endpoint {
    config: tokio_postgres::Config,
    tls: tls::Tls,
    /// The setting the URL came from (`DATABASE_URL`, …), for messages.
    pub setting: &'static str,
    /// The URL with its password hidden.
    shown: String,
}

impl Endpoint {
    /// Reads a URL (or libpq key=value string) and, for `verify-*`, its
    /// root certificates; the error says what is wrong, without the URL.
    pub fn parse(setting: &'static str, url: &str) -> Result<Endpoint, String> {
        let keys = tls::take_tls_keys(url)?;
        let mut config: tokio_postgres::Config = keys
            .rest
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {}", ErrorChain(&e)))?;
        let tls = tls::Tls::new(keys.sslmode.as_deref(), keys.sslrootcert.as_deref())?;
        config.ssl_mode(tls.mode.driver());
        config.connect_timeout(CONNECT_TIMEOUT);
        // A server gone without a word (a primary powered off) is noticed in
        // about 30 s even by an idle connection, a LISTEN's above all; the
        // system's defaults take hours. Settings of the URL are kept.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(15));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        config.application_name("playgate");
        Ok(Endpoint {
            config,
            tls,
            setting,
            shown: crate::domain::redact_database_url(url),
        })
    }

    pub fn dbname(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    /// The same server, another database.
    pub fn with_dbname(&self, dbname: &str) -> Endpoint {
        let mut endpoint = self.clone();
        endpoint.config.dbname(dbname);
        endpoint
    }

    /// One connection outside any pool, its driver running in the background.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.connector.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("database connection closed: {}", ErrorChain(&e));
            }
        });
        Ok(client)
    }

    pub(crate) async fn connect_raw(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
                    tokio_postgres::Socket,
                >>::Stream,
            >,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.connector.clone()).await
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Where playgate's connections go (SPEC §13), and how they may be used.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// The pool of the request path and the admin API (`DATABASE_URL`).
    pub main: Endpoint,
    /// A direct connection: `LISTEN`, migrations, creating the database
    /// (`PLAYGATE_LISTEN_DATABASE_URL`, default `DATABASE_URL`).
    pub listen: Endpoint,
    /// The statistics and the timeline (`PLAYGATE_STATS_DATABASE_URL`, default `DATABASE_URL`).
    pub stats: Endpoint,
    /// Named prepared statements and the startup `options`; off behind a
    /// transaction pooler (`PLAYGATE_DB_PREPARED`).
    pub prepared: bool,
    pub pool_size: usize,
}

impl DatabaseSettings {
    pub fn create_pool(&self) -> Result<Pool, StoreError> {
        Pool::new(&self.main, self.pool_size, self.prepared)
    }

    /// Statistics are few and slow: a small pool of their own, so that they
    /// never take the hooks' connections.
    pub fn create_stats_pool(&self) -> Result<Pool, StoreError> {
        Pool::new(
            &self.stats,
            STATS_POOL_SIZE.min(self.pool_size),
            self.prepared,
        )
    }
}

/// Connections of the statistics pool.
pub const STATS_POOL_SIZE: usize = 4;

/// Creates the database named in the URL when it does not exist and the
/// server lets us (two replicas racing to create it is fine).
pub async fn ensure_database(endpoint: &Endpoint) -> Result<(), StoreError> {
    match endpoint.connect().await {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e.into()),
    }
    let name = endpoint.dbname().unwrap_or("postgres").to_string();
    let client = endpoint.with_dbname("postgres").connect().await?;
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&statement).await {
        Ok(()) => {
            log::info!("created database {name}");
            Ok(())
        }
        // A replica starting at the same moment created it first.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A pool of connections to one endpoint: at most `max_size`.
#[derive(Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    prepared: bool,
}

impl Pool {
    pub fn new(endpoint: &Endpoint, max_size: usize, prepared: bool) -> Result<Pool, StoreError> {
        let mut config = endpoint.config.clone();
        if prepared {
            config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
        }
        // Each host of a multi-host URL may take the whole connect timeout
        // (an old primary that no longer answers) before the next is tried.
        let hosts = config
            .get_hosts()
            .len()
            .max(config.get_hostaddrs().len())
            .max(1);
        let create_timeout = CONNECT_TIMEOUT * hosts as u32 + Duration::from_secs(1);
        let manager = Manager::from_config(
            config,
            endpoint.tls.connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let inner = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(create_timeout))
            .recycle_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Other(format!("database pool: {e}")))?;
        Ok(Pool { inner, prepared })
    }

    pub async fn get(&self) -> Result<Client, deadpool_postgres::PoolError> {
        let inner = if self.inner.status().available > 0 {
            self.inner.get().await?
        } else {
            // A new connection is opened in a task of its own: when the
            // caller gives up first (a hook's PLAYGATE_DB_TIMEOUT_MS, while
            // a failover makes connecting slow), the connection still gets
            // made and waits in the pool, instead of every attempt being cut
            // short and none ever reaching the new primary.
            let pool = self.inner.clone();
            match tokio::spawn(async move { pool.get().await }).await {
                Ok(got) => got?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(deadpool_postgres::PoolError::Closed),
            }
        };
        Ok(Client {
            inner: Some(inner),
            prepared: self.prepared,
            abandoned: AtomicBool::new(false),
        })
    }

    pub fn status(&self) -> deadpool_postgres::Status {
        self.inner.status()
    }
}

/// A pooled connection (deadpool's, which it derefs to); what depends on
/// whether the server keeps prepared statements goes through its methods.
pub struct Client {
    /// Always Some but in `drop`.
    inner: Option<deadpool_postgres::Client>,
    prepared: bool,
    /// A request-path statement was under way when its caller gave up.
    abandoned: AtomicBool,
}

impl Deref for Client {
    type Target = deadpool_postgres::Client;

    fn deref(&self) -> &Self::Target {
        self.inner.as_ref().expect("a pooled connection")
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.inner.as_mut().expect("a pooled connection")
    }
}

impl Drop for Client {
    /// A connection whose statement was abandoned still waits for its
    /// answer, which may never come (a primary gone without a word): it is
    /// closed rather than lent to the next request.
    fn drop(&mut self) {
        if self.abandoned.load(Ordering::Relaxed) {
            if let Some(inner) = self.inner.take() {
                drop(deadpool_postgres::Client::take(inner));
            }
        }
    }
}

impl Client {
    /// Begins a transaction. Without the startup `options` (behind a
    /// transaction pooler) the statement cap is set for the transaction.
    pub async fn transaction(
        &mut self,
    ) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
        let prepared = self.prepared;
        let transaction = self.deref_mut().transaction().await?;
        if !prepared {
            transaction
                .batch_execute(&format!(
                    "SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"
                ))
                .await?;
        }
        Ok(transaction)
    }

    /// A statement of the request path: prepared once per connection where
    /// the server keeps it (`PLAYGATE_DB_PREPARED=on`), else one unnamed
    /// round trip. Given up on before its answer, the connection is closed.
    pub(crate) async fn query_hot(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.abandoned.store(true, Ordering::Relaxed);
        let rows = self.query_hot_unguarded(statement, params).await;
        self.abandoned.store(false, Ordering::Relaxed);
        rows
    }

    async fn query_hot_unguarded(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let client: &deadpool_postgres::Client = self;
        if !self.prepared {
            return client.query_typed(statement, params).await;
        }
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let prepared = client.prepare_typed_cached(statement, &types).await?;
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|(value, _)| *value).collect();
        client.query(&prepared, &values).await
    }
}

/// Something statements are sent on: a connection or a transaction.
/// (deadpool's `GenericClient` predates `query_typed`, and is sealed.)
pub trait Db: Sync {
    fn query_typed(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    fn query_typed_one(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send;

    fn query_typed_opt(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send;

    fn execute_typed(
        &self,
        statement: &str,
        params: &[Typed<'_>],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send;

    fn batch_execute(
        &self,
        statements: &str,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send;
}

macro_rules! db {
    ($type:ty, $inner:ty, |$this:ident| $as_inner:expr) => {
        impl Db for $type {
            fn query_typed(
                &self,
                statement: &str,
                params: &[Typed<'_>],
            ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
                let $this = self;
                <$inner>::query_typed($as_inner, statement, params)
            }

            fn query_typed_one(
                &self,
                statement: &str,
                params: &[Typed<'_>],
            ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
                let $this = self;
                <$inner>::query_typed_one($as_inner, statement, params)
            }

            fn query_typed_opt(
                &self,
                statement: &str,
                params: &[Typed<'_>],
            ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
                let $this = self;
                <$inner>::query_typed_opt($as_inner, statement, params)
            }

            fn execute_typed(
                &self,
                statement: &str,
                params: &[Typed<'_>],
            ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
                let $this = self;
                <$inner>::execute_typed($as_inner, statement, params)
            }

            fn batch_execute(
                &self,
                statements: &str,
            ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send {
                let $this = self;
                <$inner>::batch_execute($as_inner, statements)
            }
        }
    };
}

db!(tokio_postgres::Client, tokio_postgres::Client, |c| c);
db!(
    tokio_postgres::Transaction<'_>,
    tokio_postgres::Transaction<'_>,
    |t| t
);
db!(deadpool_postgres::Client, tokio_postgres::Client, |c| c);
db!(
    deadpool_postgres::Transaction<'_>,
    tokio_postgres::Transaction<'_>,
    |t| t
);
db!(Client, tokio_postgres::Client, |c| c);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failover_is_unavailability_not_a_wrong_statement() {
        for state in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(unavailable_state(&state), "{state:?}");
        }
        for state in [SqlState::UNIQUE_VIOLATION, SqlState::SYNTAX_ERROR] {
            assert!(!unavailable_state(&state), "{state:?}");
        }
    }

    #[test]
    fn passwords_are_hidden_in_both_forms() {
        let endpoint = Endpoint::parse("DATABASE_URL", "host=db password=s3cr3t").unwrap();
        assert!(!format!("{endpoint:?}").contains("s3cr3t"));
    }

    #[test]
    fn unavailable_states() {
        for state in [
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::DISK_FULL,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(unavailable_state(&state), "{state:?}");
        }
        for state in [
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::UNIQUE_VIOLATION,
            SqlState::UNDEFINED_TABLE,
        ] {
            assert!(!unavailable_state(&state), "{state:?}");
        }
        assert!(StoreError::Timeout.is_unavailable());
        assert!(!StoreError::Other("x".into()).is_unavailable());
    }
}
