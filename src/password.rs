//! Every bcrypt hash and verification of playgate: hashing for the admin API,
//! the imports and the bootstrap admin; verifying for the hooks and the
//! admin API's sign-in, with a short-lived memory of verified
//! login:password pairs (a player re-asking every few seconds, or an admin
//! script, does not pay bcrypt each time), and a dummy hash so that an
//! unknown login costs what a wrong password costs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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

/// Verified (login, password, stored hash) triples, keyed by their SHA-256:
/// a changed password or hash makes a different key, so it invalidates itself.
/// Neither the password nor the hash is kept, only the digest.
#[derive(Default)]
pub struct PasswordVerifier {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    /// Verifications under way: requests for the same triple arriving
    /// meanwhile (a player's retries, many players of one account, a cold
    /// start) wait for that one bcrypt instead of each paying their own.
    in_flight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
    /// How many bcrypt verifications ran.
    bcrypt_runs: AtomicU64,
}

impl PasswordVerifier {
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
    /// that an unknown login cannot be told from a wrong password by time.
    pub async fn verify_unknown(&self, login: &str, password: &str) {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let dummy = match DUMMY.get() {
            Some(dummy) => dummy.as_str(),
            None => {
                let made = hash(&crate::domain::token::random_secret())
                    .await
                    .unwrap_or_default();
                DUMMY.get_or_init(|| made).as_str()
            }
        };
        self.verify(login, password, dummy).await;
    }

    /// bcrypt off the async executor, once per verified triple, however
    /// many requests ask for it at the same time.
    pub async fn verify(&self, login: &str, password: &str, hash: &str) -> bool {
        let key = PasswordVerifier::key(login, password, hash);
        if self.contains(&key) {
            return true;
        }
        let cell = Arc::clone(
            self.in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        let valid = *cell
            .get_or_init(|| {
                let (password, hash) = (password.to_string(), hash.to_string());
                self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::task::spawn_blocking(move || {
                        bcrypt::verify(password, &hash).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false)
                }
            })
            .await;
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
        if valid {
            self.insert(key);
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_only_verified_triples() {
        let cache = PasswordVerifier::default();
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(!cache.verify("alice", "wrong", &hash).await);
        assert!(!cache.contains(&PasswordVerifier::key("alice", "wrong", &hash)));
        assert!(cache.verify("alice", "pw", &hash).await);
        assert!(cache.contains(&PasswordVerifier::key("alice", "pw", &hash)));
        // Another stored hash (password changed) is another key.
        let other = bcrypt::hash("pw", 4).unwrap();
        assert!(!cache.contains(&PasswordVerifier::key("alice", "pw", &other)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_pair_share_one_bcrypt() {
        let cache = Arc::new(PasswordVerifier::default());
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
            let (n, valid) = task.await.unwrap();
            assert_eq!(valid, n % 2 == 0);
        }
        // One for the right pair, one for the wrong one (not remembered, but
        // shared while under way).
        assert_eq!(cache.bcrypt_runs.load(Ordering::Relaxed), 2);
        assert!(cache.in_flight.lock().unwrap().is_empty());
        assert!(cache.verify("alice", "pw", &hash).await);
        assert_eq!(cache.bcrypt_runs.load(Ordering::Relaxed), 2);
    }
}
