//! The in-memory policy view of one replica: users, tokens, packages and IP
//! rules, reloaded whole when PostgreSQL notifies a change (triggers on the
//! policy tables, channel `playgate_policy`) and on a periodic check, so a
//! change made through any replica is in force on all of them within a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use crate::decision::policy::PolicySnapshot;
use crate::store::{self, StoreError};

pub const CHANNEL: &str = "playgate_policy";
/// A full reload even without notifications: covers a notification lost while
/// the listening connection was down.
const PERIODIC_RELOAD: Duration = Duration::from_secs(30);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub struct PolicyView {
    /// The snapshot in force, and the number of the reload that loaded it.
    current: RwLock<(u64, Arc<PolicySnapshot>)>,
    pool: Pool,
    loaded_at: RwLock<Option<Instant>>,
    /// Numbers reloads in the order they start.
    reloads_started: AtomicU64,
}

impl PolicyView {
    pub fn new(pool: Pool) -> PolicyView {
        PolicyView {
            current: RwLock::new((0, Arc::new(PolicySnapshot::default()))),
            pool,
            loaded_at: RwLock::new(None),
            reloads_started: AtomicU64::new(0),
        }
    }

    /// The snapshot in force; cheap (an Arc clone).
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        Arc::clone(&self.current.read().expect("policy view lock").1)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded_at.read().expect("policy view lock").is_some()
    }

    /// Reads the policy tables and swaps the new snapshot in, unless a reload
    /// that started later has already done so: two overlapping reloads (the
    /// listener's and a caller's) must not leave the older data in force.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let number = self.reloads_started.fetch_add(1, Ordering::SeqCst) + 1;
        let mut client = self.pool.get().await?;
        let snapshot = store::policy::load_snapshot(&mut client).await?;
        let users = snapshot.user_count();
        {
            let mut current = self.current.write().expect("policy view lock");
            if current.0 > number {
                return Ok(());
            }
            *current = (number, Arc::new(snapshot));
        }
        *self.loaded_at.write().expect("policy view lock") = Some(Instant::now());
        log::debug!(
            "policy view reloaded: {users} users in {:?}",
            started.elapsed()
        );
        Ok(())
    }

    /// Listens for changes until `shutdown` turns true, reconnecting as needed.
    pub async fn keep_fresh(
        self: Arc<Self>,
        database_url: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.listen_once(&database_url, &mut shutdown).await {
                Ok(()) => return,
                Err(e) => log::warn!("policy change listener: {e}; reconnecting"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One listening connection; returns Ok on shutdown, Err when the connection is lost.
    async fn listen_once(
        &self,
        database_url: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let config = store::pg_config(database_url)?;
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if notify_tx.send(()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("policy change listener connection: {e}");
                        break;
                    }
                }
            }
        });
        let result = async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            // Changes made while we were not listening.
            self.reload().await?;
            loop {
                tokio::select! {
                    received = notify_rx.recv() => {
                        if received.is_none() {
                            return Err(StoreError::Other("connection closed".into()));
                        }
                        // A burst of changes (an import) costs one reload.
                        while notify_rx.try_recv().is_ok() {}
                        self.reload().await?;
                    }
                    _ = tokio::time::sleep(PERIODIC_RELOAD) => self.reload().await?,
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
        .await;
        driver.abort();
        result
    }
}
