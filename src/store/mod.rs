//! Every SQL statement of playgate lives under this module.

pub mod audit;
pub mod ip_rules;
pub mod listen;
pub mod migrations;
pub mod packages;
pub mod policy;
pub mod sessions;
pub mod sql;
pub mod stats;
pub mod tokens;
pub mod ui_sessions;
pub mod user_import;
pub mod users;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::domain::ErrorChain;
use sql::Typed;

pub use deadpool_postgres::Client;

/// How long a request may wait for a pooled connection; a hook must answer
/// well within the streamers' own timeouts (seconds), never hang.
const POOL_WAIT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Server-side cap for any one statement.
const STATEMENT_TIMEOUT_MS: u64 = 5_000;

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
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// A connection, pool or time-out failure: the database is unreachable
    /// rather than refusing this statement.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Timeout => true,
            StoreError::Db(e) => e.is_closed() || e.as_db_error().is_none(),
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

pub fn pg_config(database_url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| StoreError::Other(format!("DATABASE_URL: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("playgate");
    config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    Ok(config)
}

/// Creates the database named in the URL when it does not exist and the
/// server lets us (two replicas racing to create it is fine).
pub async fn ensure_database(database_url: &str) -> Result<(), StoreError> {
    let config = pg_config(database_url)?;
    match connect(&config).await {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e.into()),
    }
    let name = config.get_dbname().unwrap_or("postgres").to_string();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = connect(&admin).await?;
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

/// A single connection outside the pool, its driver running in the background.
pub async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("database connection closed: {e}");
        }
    });
    Ok(client)
}

/// The pool every request borrows from: at most `max_size` connections.
pub fn create_pool(database_url: &str, max_size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        pg_config(database_url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(POOL_WAIT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Other(format!("database pool: {e}")))
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
