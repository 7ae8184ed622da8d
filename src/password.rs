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
use tokio::sync::watch;

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

type Entries = Mutex<HashMap<[u8; 32], Instant>>;
type InFlight = Mutex<HashMap<[u8; 32], watch::Receiver<Option<Check>>>>;

/// Verified (login, password, stored hash) triples, keyed by their SHA-256:
/// a changed password or hash makes a different key, so it invalidates itself.
/// Neither the password nor the hash is kept, only the digest.
pub struct PasswordVerifier {
    entries: Arc<Entries>,
    /// Verifications under way: requests for the same triple arriving
    /// meanwhile (a player's retries, many players of one account, a cold
    /// start) wait for that one bcrypt instead of each paying their own. A
    /// verification finishes, and is remembered, even when the request that
    /// started it went away (actix drops a handler's extractors when another
    /// one fails first, e.g. on a malformed body).
    in_flight: Arc<InFlight>,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A verification under way; no longer when this is dropped (even by a
/// panic, so that a key is never left waiting for an answer that will not
/// come).
struct UnderWay {
    key: [u8; 32],
    in_flight: Arc<InFlight>,
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.key);
    }
}

fn remember(entries: &Entries, key: [u8; 32]) {
    let mut entries = lock(entries);
    if entries.len() >= VERIFIED_MAX_ENTRIES {
        entries.retain(|_, at| at.elapsed() < VERIFIED_TTL);
        if entries.len() >= VERIFIED_MAX_ENTRIES {
            entries.clear();
        }
    }
    entries.insert(key, Instant::now());
}

impl PasswordVerifier {
    /// At most `concurrency` (at least 1) bcrypt verifications at once.
    pub fn new(concurrency: usize) -> PasswordVerifier {
        PasswordVerifier {
            entries: Arc::default(),
            in_flight: Arc::default(),
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
        lock(&self.entries)
            .get(key)
            .is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    pub fn insert(&self, key: [u8; 32]) {
        remember(&self.entries, key);
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
        let mut answer = {
            let mut in_flight = lock(&self.in_flight);
            match in_flight.get(&key) {
                Some(answer) => answer.clone(),
                None => {
                    // A remembered result may have landed since the look above.
                    if self.contains(&key) {
                        return Check::Valid;
                    }
                    let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                        return Check::Busy;
                    };
                    self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
                    let (tell, answer) = watch::channel(None);
                    in_flight.insert(key, answer.clone());
                    let (entries, in_flight) =
                        (Arc::clone(&self.entries), Arc::clone(&self.in_flight));
                    let (password, hash) = (password.to_string(), hash.to_string());
                    // Not awaited here: it runs to its end whoever waits.
                    drop(tokio::task::spawn_blocking(move || {
                        let under_way = UnderWay { key, in_flight };
                        let valid = bcrypt::verify(password, &hash).unwrap_or(false);
                        // The core is free again before anyone hears of it.
                        drop(slot);
                        // Remembered before it stops being under way, so a
                        // request in between finds one or the other.
                        if valid {
                            remember(&entries, key);
                        }
                        drop(under_way);
                        let _ = tell.send(Some(if valid { Check::Valid } else { Check::Invalid }));
                    }));
                    answer
                }
            }
        };
        let check = match answer.wait_for(Option::is_some).await {
            Ok(check) => check.unwrap_or(Check::Invalid),
            // The verification died without an answer (a panic in bcrypt).
            Err(_) => Check::Invalid,
        };
        check
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_outlives_the_request_that_started_it() {
        let cache = Arc::new(PasswordVerifier::new(1));
        let hash = bcrypt::hash("pw", 8).unwrap();
        let started = {
            let (cache, hash) = (Arc::clone(&cache), hash.clone());
            tokio::spawn(async move { cache.verify("alice", "pw", &hash).await })
        };
        // Gone once bcrypt runs, as when actix drops an extractor.
        while cache.bcrypt_runs() == 0 {
            tokio::task::yield_now().await;
        }
        started.abort();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cache.in_flight.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Remembered, and its slot given back.
        assert!(cache.contains(&PasswordVerifier::key("alice", "pw", &hash)));
        assert_eq!(cache.verify("alice", "pw", &hash).await, Check::Valid);
        assert_eq!(cache.verify("alice", "other", &hash).await, Check::Invalid);
        assert_eq!(cache.bcrypt_runs(), 2);
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
