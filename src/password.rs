//! Every bcrypt hash and verification of playgate: hashing for the admin API,
//! the imports and the bootstrap admin; verifying for the hooks and the
//! admin API's sign-in, with a short-lived memory of verified
//! login:password pairs (a player re-asking every few seconds, or an admin
//! script, does not pay bcrypt each time), and a dummy hash so that an
//! unknown login costs what a wrong password costs.
//!
//! Verifications run at most `concurrency` at a time (a semaphore, default
//! one per core): beyond that a check answers `Check::Busy` at once, without
//! running bcrypt, and the caller refuses the request (`rate_limited`), so
//! guessing at logins cannot take every core away from the rest of the
//! service. Hashing (admin writes, imports) is not capped: it is an admin's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// bcrypt failed (only for a cost out of range or a failed worker thread).
#[derive(Debug, thiserror::Error)]
#[error("bcrypt: {0}")]
pub struct HashError(String);

/// bcrypt at the default cost, on the calling thread: for code already off
/// the async executor (the imports' worker threads).
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| HashError(e.to_string()))
}

/// bcrypt at the default cost, off the async executor.
pub async fn hash(password: &str) -> Result<String, HashError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| HashError(e.to_string()))?
}

/// How long a verified login:password is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX_ENTRIES: usize = 100_000;

/// What a password check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Valid,
    Invalid,
    /// `concurrency` verifications were under way: nothing was checked.
    Busy,
}

/// One bcrypt verification per core at a time, unless configured.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Verified (login, password, stored hash) triples, keyed by their SHA-256:
/// a changed password or hash makes a different key, so it invalidates itself.
/// Neither the password nor the hash is kept, only the digest.
pub struct PasswordVerifier {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    /// Verifications under way: requests for the same triple arriving
    /// meanwhile (a player's retries, many players of one account, a cold
    /// start) wait for that one bcrypt instead of each paying their own.
    in_flight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
    /// How many bcrypt verifications ran.
    bcrypt_runs: AtomicU64,
    /// One permit per bcrypt verification allowed to run at once.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for PasswordVerifier {
    fn default() -> PasswordVerifier {
        PasswordVerifier::new(default_concurrency())
    }
}

/// The verification under way for a triple could not start.
#[derive(Clone, Copy, Debug)]
struct NoSlot;

impl PasswordVerifier {
    /// At most `concurrency` (at least 1) bcrypt verifications at once.
    pub fn new(concurrency: usize) -> PasswordVerifier {
        PasswordVerifier {
            entries: Mutex::default(),
            in_flight: Mutex::default(),
            bcrypt_runs: AtomicU64::new(0),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
        }
    }

    /// How many bcrypt verifications ran since start (of real hashes and of
    /// the dummy alike).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    pub fn key(login: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [login, password, hash] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.finalize().into()
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    pub fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= VERIFIED_MAX_ENTRIES {
            entries.retain(|_, at| at.elapsed() < VERIFIED_TTL);
            if entries.len() >= VERIFIED_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Instant::now());
    }

    /// For a login that does not exist: one bcrypt of a dummy hash, so
    /// that an unknown login cannot be told from a wrong password by time
    /// (nor by a `Busy` only known logins would get). `Invalid` or `Busy`.
    pub async fn verify_unknown(&self, login: &str, password: &str) -> Check {
        // Made once (the first callers wait for it rather than each hashing).
        static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let dummy = DUMMY
            .get_or_init(|| async {
                hash(&crate::domain::token::random_secret())
                    .await
                    .unwrap_or_default()
            })
            .await;
        match self.verify(login, password, dummy).await {
            Check::Busy => Check::Busy,
            Check::Valid | Check::Invalid => Check::Invalid,
        }
    }

    /// bcrypt off the async executor, once per verified triple, however
    /// many requests ask for it at the same time, and `Busy` without
    /// running it when `concurrency` verifications are under way.
    pub async fn verify(&self, login: &str, password: &str, hash: &str) -> Check {
        let key = PasswordVerifier::key(login, password, hash);
        if self.contains(&key) {
            return Check::Valid;
        }
        let cell = Arc::clone(
            self.in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        let checked = cell
            .get_or_try_init(|| {
                let (password, hash) = (password.to_string(), hash.to_string());
                let slot = Arc::clone(&self.slots).try_acquire_owned();
                if slot.is_ok() {
                    self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
                }
                async move {
                    let slot = slot.map_err(|_| NoSlot)?;
                    Ok(tokio::task::spawn_blocking(move || {
                        // Held until bcrypt is done, even if the request
                        // that asked went away meanwhile.
                        let _slot = slot;
                        bcrypt::verify(password, &hash).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false))
                }
            })
            .await
            .copied();
        {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if in_flight
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &cell))
            {
                in_flight.remove(&key);
            }
        }
        match checked {
            Ok(true) => {
                self.insert(key);
                Check::Valid
            }
            Ok(false) => Check::Invalid,
            Err(NoSlot) => Check::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_only_verified_triples() {
        let cache = PasswordVerifier::new(2);
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(cache.verify("alice", "wrong", &hash).await, Check::Invalid);
        assert!(!cache.contains(&PasswordVerifier::key("alice", "wrong", &hash)));
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Valid);
        assert!(cache.contains(&PasswordVerifier::key("alice", "pw", &hash)));
        // Another stored hash (password changed) is another key.
        let other = bcrypt::hash("pw", 4).unwrap();
        assert!(!cache.contains(&PasswordVerifier::key("alice", "pw", &other)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_pair_share_one_bcrypt() {
        let cache = Arc::new(PasswordVerifier::new(4));
        // Cost 10: long enough (tens of ms) for the requests to overlap.
        let hash = bcrypt::hash("pw", 10).unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|n| {
                let (cache, hash) = (Arc::clone(&cache), hash.clone());
                let password = if n % 2 == 0 { "pw" } else { "wrong" };
                tokio::spawn(async move { (n, cache.verify("alice", password, &hash).await) })
            })
            .collect();
        for task in tasks {
            let (n, check) = task.await.unwrap();
            let expected = if n % 2 == 0 {
                Check::Valid
            } else {
                Check::Invalid
            };
            assert_eq!(check, expected);
        }
        // One for the right pair, one for the wrong one (not remembered, but
        // shared while under way).
        assert_eq!(cache.bcrypt_runs(), 2);
        assert!(cache.in_flight.lock().unwrap().is_empty());
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Valid);
        assert_eq!(cache.bcrypt_runs(), 2);
    }

    #[tokio::test]
    async fn over_the_cap_nothing_runs() {
        let cache = PasswordVerifier::new(1);
        let hash = bcrypt::hash("pw", 4).unwrap();
        // The dummy hash exists before the cap is taken.
        assert_eq!(cache.verify_unknown("nobody", "pw").await, Check::Invalid);
        assert_eq!(cache.bcrypt_runs(), 1);
        let taken = Arc::clone(&cache.slots).try_acquire_owned().unwrap();
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Busy);
        assert_eq!(cache.verify("alice", "wrong", &hash).await, Check::Busy);
        assert_eq!(cache.verify_unknown("nobody", "pw").await, Check::Busy);
        assert_eq!(cache.bcrypt_runs(), 1, "no bcrypt ran over the cap");
        assert!(cache.in_flight.lock().unwrap().is_empty());
        drop(taken);
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Valid);
        assert_eq!(cache.bcrypt_runs(), 2);
        // A remembered pair needs no slot.
        let _taken = Arc::clone(&cache.slots).try_acquire_owned().unwrap();
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Valid);
    }

    #[tokio::test]
    async fn an_unknown_login_runs_bcrypt_each_time() {
        let cache = PasswordVerifier::new(1);
        for n in 1..=3 {
            assert_eq!(
                cache.verify_unknown("nobody", "guess").await,
                Check::Invalid
            );
            assert_eq!(cache.bcrypt_runs(), n);
        }
    }
}
