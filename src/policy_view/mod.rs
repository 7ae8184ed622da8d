//! The in-memory policy view of one replica (a `PolicySnapshot`: users,
//! tokens, packages, IP rules, signing keys), kept fresh by the
//! notifications that the triggers on the policy tables send on channel
//! `playgate_policy`:
//!
//! - `user:<id>`: that user's row, tokens or packages changed: the user is
//!   re-read alone (the users of a burst in one query), so a change costs
//!   work in proportion to the user, not to the table;
//! - `packages`, `ip_rules`, `signing_keys`, `access_rules`: that small
//!   table is re-read;
//! - anything else (a table name: a TRUNCATE, or a statement that changed
//!   too many users to name them): a full reload;
//! - `sync:<replica>:<n>`: a marker a replica sends itself, see `reload`.
//!
//! A full reload (seconds at a million users) runs beside the listener, so
//! single-user changes keep flowing while one is under way; the versions of
//! the reads (see `snapshot`) keep their results in order. One also
//! runs every 30 s as a consistency check, and whenever the listener
//! (re)connects, for what changed while nobody listened.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::store::listen::Listener;
use crate::store::{self, Endpoint, Pool, StoreError};

pub mod access_rules;
pub mod prefix;
pub mod snapshot;

pub use access_rules::{AccessRules, RuleMatch, RuleSubject};
pub use prefix::{FastMap, PrefixTable};
pub use snapshot::{PolicySnapshot, PolicyUser, TokenEntry};

pub const CHANNEL: &str = "playgate_policy";
/// A full reload even without notifications: covers a notification lost while
/// the listening connection was down, and folds the overlay into the base.
const PERIODIC_RELOAD: Duration = Duration::from_secs(30);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// More distinct users than this waiting at once (an import committed in
/// many small transactions): one full reload instead of re-reading them.
const MAX_USER_BATCH: usize = 1000;
/// Each user re-read rebuilds the overlay's index: past this many, a full
/// reload folds it into the base before the periodic one would.
const MAX_OVERLAY: usize = 5000;
/// How long `reload` waits for its marker before reading everything itself.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

type FullReload<'a> = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send + 'a>>;

pub struct PolicyView {
    current: RwLock<Arc<PolicySnapshot>>,
    pool: Pool,
    loaded_at: RwLock<Option<Instant>>,
    /// Installs one at a time: each makes the next snapshot from the one in force.
    installing: Mutex<()>,
    /// One full read at a time: they are expensive.
    full_reloading: tokio::sync::Mutex<()>,
    /// Notifications received on the channel, over every connection so far.
    /// A read's version is this count when it starts: the read reflects
    /// every change notified up to it (committed before it was notified).
    received: Arc<AtomicU64>,
    /// Names this replica's markers on the channel that every replica shares.
    instance: String,
    syncs: Mutex<Syncs>,
}

#[derive(Default)]
struct Syncs {
    /// The listener is connected: it will see our markers.
    listening: bool,
    next: u64,
    waiting: HashMap<u64, oneshot::Sender<()>>,
}

/// What one notification asks for.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    User(i64),
    Packages,
    IpRules,
    SigningKeys,
    AccessRules,
    Everything,
    /// This replica's marker number n.
    Sync(u64),
    /// Another replica's marker.
    Nothing,
}

impl Change {
    fn parse(payload: &str, instance: &str) -> Change {
        if let Some(id) = payload.strip_prefix("user:") {
            return id.parse().map_or(Change::Everything, Change::User);
        }
        if let Some(marker) = payload.strip_prefix("sync:") {
            return match marker.rsplit_once(':') {
                Some((replica, n)) if replica == instance => {
                    n.parse().map_or(Change::Nothing, Change::Sync)
                }
                _ => Change::Nothing,
            };
        }
        match payload {
            "packages" => Change::Packages,
            "ip_rules" => Change::IpRules,
            "signing_keys" => Change::SigningKeys,
            "access_rules" => Change::AccessRules,
            _ => Change::Everything,
        }
    }
}

/// The listener's bookkeeping between batches of notifications.
#[derive(Default)]
struct Pending {
    /// The oldest and newest notifications that only a full reload covers,
    /// and that no full reload started since has covered.
    full_demanded: Option<(u64, u64)>,
    /// A full reload would help (a large overlay), but nothing waits for it.
    full_wanted: bool,
    /// Our markers (number, version) in the order received, not yet answered.
    syncs: VecDeque<(u64, u64)>,
}

impl Pending {
    fn demand_full(&mut self, version: u64) {
        self.full_demanded = Some(match self.full_demanded {
            None => (version, version),
            Some((oldest, newest)) => (oldest.min(version), newest.max(version)),
        });
    }

    /// A full reload that started at `version` is in force.
    fn full_done(&mut self, version: u64) {
        if let Some((_, newest)) = self.full_demanded {
            self.full_demanded = (newest > version).then_some((version + 1, newest));
        }
    }
}

impl PolicyView {
    pub fn new(pool: Pool) -> PolicyView {
        PolicyView {
            current: RwLock::new(Arc::new(PolicySnapshot::default())),
            pool,
            loaded_at: RwLock::new(None),
            installing: Mutex::new(()),
            full_reloading: tokio::sync::Mutex::new(()),
            received: Arc::new(AtomicU64::new(0)),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            syncs: Mutex::new(Syncs::default()),
        }
    }

    /// The snapshot in force; cheap (an Arc clone).
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded_at
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Returns once every change committed before the call is in force here.
    /// With the listener connected, that is a marker sent through the
    /// channel and waited for: the changes committed before it arrive first,
    /// and cost what they cost (a user re-read for a user changed). Without
    /// the listener, or if the marker does not come back, a full reload.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let Some((number, answered)) = self.register_sync() else {
            return self.full_reload().await.map(drop);
        };
        let payload = format!("sync:{}:{number}", self.instance);
        let sent = async {
            let client = self.pool.get().await?;
            store::policy::notify(&client, CHANNEL, &payload).await
        }
        .await;
        if let Err(e) = sent {
            self.forget_sync(number);
            return Err(e);
        }
        match tokio::time::timeout(SYNC_TIMEOUT, answered).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                // The listener went away (or is stuck): read everything.
                self.forget_sync(number);
                self.full_reload().await.map(drop)
            }
        }
    }

    /// Reads every policy table and swaps the result in; returns the
    /// read's version.
    pub async fn full_reload(&self) -> Result<u64, StoreError> {
        let _one_at_a_time = self.full_reloading.lock().await;
        let version = self.received.load(Ordering::SeqCst);
        let started = Instant::now();
        let store::policy::FullRead {
            records,
            signing_keys,
            access_rules,
        } = {
            let mut client = self.pool.get().await?;
            store::policy::load_all(&mut client).await?
        };
        let read = started.elapsed();
        // Building the indexes of a million users takes a while: off the executor.
        let fresh = tokio::task::spawn_blocking(move || {
            PolicySnapshot::build(records)
                .with_signing_keys(0, signing_keys)
                .with_access_rules(0, access_rules)
        })
        .await
        .map_err(|e| StoreError::Other(format!("policy snapshot build: {e}")))?;
        let (previous, next) = self.install(|current| current.with_full_read(fresh, version));
        *self
            .loaded_at
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        log::debug!(
            "policy view: full reload, {} users in {:?} (read {read:?}), {} re-read users kept",
            next.user_count(),
            started.elapsed(),
            next.overlay_len()
        );
        // The previous base is as big as the new one: free it off the executor,
        // and give the pages back, or every full reload would leave the
        // process at twice the view's size.
        tokio::task::spawn_blocking(move || {
            drop(previous);
            release_freed_memory();
        });
        Ok(version)
    }

    /// Makes the next snapshot from the one in force and swaps it in;
    /// returns (previous, next).
    fn install(
        &self,
        make: impl FnOnce(&PolicySnapshot) -> PolicySnapshot,
    ) -> (Arc<PolicySnapshot>, Arc<PolicySnapshot>) {
        let _one_at_a_time = self
            .installing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = self.snapshot();
        let next = Arc::new(make(&previous));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        (previous, next)
    }

    /// None when no listener would answer.
    fn register_sync(&self) -> Option<(u64, oneshot::Receiver<()>)> {
        let mut syncs = self.syncs.lock().unwrap_or_else(PoisonError::into_inner);
        if !syncs.listening {
            return None;
        }
        syncs.next += 1;
        let number = syncs.next;
        let (answer, answered) = oneshot::channel();
        syncs.waiting.insert(number, answer);
        Some((number, answered))
    }

    fn forget_sync(&self, number: u64) {
        self.syncs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&number);
    }

    fn answer_sync(&self, number: u64) {
        let answer = self
            .syncs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&number);
        if let Some(answer) = answer {
            let _ = answer.send(());
        }
    }

    /// While not listening, waiters are told at once (their senders dropped)
    /// and fall back on a full reload.
    fn set_listening(&self, listening: bool) {
        let mut syncs = self.syncs.lock().unwrap_or_else(PoisonError::into_inner);
        syncs.listening = listening;
        if !listening {
            syncs.waiting.clear();
        }
    }

    /// Listens for changes until `shutdown` turns true, reconnecting as needed.
    pub async fn keep_fresh(
        self: Arc<Self>,
        listen: Endpoint,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let result = self.listen_once(&listen, &mut shutdown).await;
            self.set_listening(false);
            match result {
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
        listen: &Endpoint,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        // Counted on arrival: a read that starts after a notification arrived sees its change.
        let Listener {
            client,
            mut notifications,
        } = Listener::connect_counting(listen, &[CHANNEL], Arc::clone(&self.received)).await?;
        async {
            let mut pending = Pending::default();
            // Changes made while we were not listening: a full reload that
            // starts after this point (a version of its own) covers them.
            pending.demand_full(self.received.fetch_add(1, Ordering::SeqCst) + 1);
            self.set_listening(true);
            let mut full: Option<FullReload<'_>> = None;
            let mut last_full = Instant::now();
            loop {
                if full.is_none()
                    && (pending.full_demanded.is_some()
                        || pending.full_wanted
                        || last_full.elapsed() >= PERIODIC_RELOAD)
                {
                    pending.full_wanted = false;
                    last_full = Instant::now();
                    full = Some(Box::pin(self.full_reload()));
                }
                let periodic = tokio::time::sleep_until((last_full + PERIODIC_RELOAD).into());
                // A temporary ban ends on time, not at the next reload.
                let next_expiry = self.snapshot().ip_rules_next_expiry();
                let expiry = async move {
                    match next_expiry {
                        Some(at) => {
                            let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                            tokio::time::sleep(wait).await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    first = notifications.next() => {
                        // Whatever else has arrived is handled as one batch.
                        let first = first?;
                        let mut batch = vec![(first.sequence, first.payload)];
                        while let Some(next) = notifications.try_next() {
                            batch.push((next.sequence, next.payload));
                        }
                        self.apply(&client, &mut pending, batch).await?;
                    }
                    done = async { full.as_mut().expect("guarded by is_some").await }, if full.is_some() => {
                        full = None;
                        pending.full_done(done?);
                    }
                    _ = periodic, if full.is_none() => {}
                    _ = expiry => self.reload_ip_rules(&client).await?,
                    _ = shutdown.changed() => return Ok(()),
                }
                self.answer_syncs(&mut pending);
            }
        }
        .await
    }

    /// Reads the IP rules again; those past their `expires_at` are left out.
    async fn reload_ip_rules(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let version = self.received.load(Ordering::SeqCst);
        let records = store::policy::load_ip_rules(client).await?;
        self.install(|current| current.with_ip_rules(version, records));
        Ok(())
    }

    /// Applies a batch of notifications: re-reads the users, packages or IP
    /// rules they name, on the listening connection (no waiting for the
    /// pool when hooks keep it busy); what needs a full reload is left to
    /// the caller.
    async fn apply(
        &self,
        client: &tokio_postgres::Client,
        pending: &mut Pending,
        batch: Vec<(u64, String)>,
    ) -> Result<(), StoreError> {
        let mut users = HashSet::new();
        let mut last_user = 0;
        let (mut packages, mut ip_rules, mut signing_keys, mut access_rules) =
            (false, false, false, false);
        for (version, payload) in batch {
            match Change::parse(&payload, &self.instance) {
                Change::User(id) => {
                    users.insert(id);
                    last_user = version;
                }
                Change::Packages => packages = true,
                Change::IpRules => ip_rules = true,
                Change::SigningKeys => signing_keys = true,
                Change::AccessRules => access_rules = true,
                Change::Everything => pending.demand_full(version),
                Change::Sync(number) => pending.syncs.push_back((number, version)),
                Change::Nothing => {}
            }
        }
        if users.len() > MAX_USER_BATCH {
            log::debug!(
                "policy view: {} users changed at once, full reload",
                users.len()
            );
            pending.demand_full(last_user);
            users.clear();
        }
        if users.is_empty() && !packages && !ip_rules && !signing_keys && !access_rules {
            return Ok(());
        }
        if packages {
            let version = self.received.load(Ordering::SeqCst);
            let records = store::policy::load_packages(client).await?;
            self.install(|current| current.with_packages(version, records));
        }
        if ip_rules {
            self.reload_ip_rules(client).await?;
        }
        if signing_keys {
            let version = self.received.load(Ordering::SeqCst);
            let records = store::policy::load_signing_keys(client).await?;
            log::debug!("policy view: {} signing keys re-read", records.len());
            self.install(|current| current.with_signing_keys(version, records));
        }
        if access_rules {
            let version = self.received.load(Ordering::SeqCst);
            let records = store::policy::load_access_rules(client).await?;
            log::debug!("policy view: {} access rules re-read", records.len());
            self.install(|current| current.with_access_rules(version, records));
        }
        if !users.is_empty() {
            let version = self.received.load(Ordering::SeqCst);
            let ids: Vec<i64> = users.into_iter().collect();
            let (found, tokens) = store::policy::load_users(client, &ids).await?;
            let (_, next) =
                self.install(|current| current.with_users(version, &ids, found, tokens));
            if next.overlay_len() > MAX_OVERLAY {
                pending.full_wanted = true;
            }
        }
        Ok(())
    }

    /// Answers our markers that nothing before them still waits for: every
    /// notification before a marker has been applied, except those left to
    /// a full reload that has not been installed yet.
    fn answer_syncs(&self, pending: &mut Pending) {
        while let Some(&(number, version)) = pending.syncs.front() {
            if pending
                .full_demanded
                .is_some_and(|(oldest, _)| oldest < version)
            {
                break;
            }
            pending.syncs.pop_front();
            self.answer_sync(number);
        }
    }
}

/// glibc keeps freed memory for reuse; a freed snapshot is large and only
/// needed again at the next full reload.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let me = "abc";
        assert_eq!(Change::parse("user:42", me), Change::User(42));
        assert_eq!(Change::parse("user:x", me), Change::Everything);
        assert_eq!(Change::parse("packages", me), Change::Packages);
        assert_eq!(Change::parse("ip_rules", me), Change::IpRules);
        assert_eq!(Change::parse("signing_keys", me), Change::SigningKeys);
        assert_eq!(Change::parse("access_rules", me), Change::AccessRules);
        assert_eq!(Change::parse("users", me), Change::Everything);
        assert_eq!(Change::parse("tokens", me), Change::Everything);
        assert_eq!(Change::parse("", me), Change::Everything);
        assert_eq!(Change::parse("sync:abc:7", me), Change::Sync(7));
        assert_eq!(Change::parse("sync:other:7", me), Change::Nothing);
    }

    #[test]
    fn a_full_reload_covers_what_was_notified_before_it_started() {
        let mut pending = Pending::default();
        pending.demand_full(5);
        pending.demand_full(9);
        pending.full_done(7);
        assert_eq!(pending.full_demanded, Some((8, 9)));
        pending.full_done(9);
        assert_eq!(pending.full_demanded, None);
    }
}
