//! A short-lived memory of verified login:password pairs, so that a player
//! re-asking every few seconds (or an admin script) does not pay bcrypt each
//! time. Used by the decision engine and by the admin API's authentication.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a verified login:password is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX_ENTRIES: usize = 100_000;

/// Verified (login, password, stored hash) triples, keyed by their SHA-256:
/// a changed password or hash makes a different key, so it invalidates itself.
/// Neither the password nor the hash is kept, only the digest.
#[derive(Default)]
pub struct VerifiedCredentials {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    /// Verifications under way: requests for the same triple arriving
    /// meanwhile (a player's retries, many players of one account, a cold
    /// start) wait for that one bcrypt instead of each paying their own.
    in_flight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
    /// How many bcrypt verifications ran.
    bcrypt_runs: AtomicU64,
}

impl VerifiedCredentials {
    pub fn key(login: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [login, password, hash] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.finalize().into()
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        let entries = self.entries.lock().expect("credential cache lock");
        entries
            .get(key)
            .is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    pub fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.len() >= VERIFIED_MAX_ENTRIES {
            entries.retain(|_, at| at.elapsed() < VERIFIED_TTL);
            if entries.len() >= VERIFIED_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Instant::now());
    }

    /// bcrypt off the async executor, once per verified triple, however
    /// many requests ask for it at the same time.
    pub async fn verify(&self, login: &str, password: &str, hash: &str) -> bool {
        let key = VerifiedCredentials::key(login, password, hash);
        if self.contains(&key) {
            return true;
        }
        let cell = Arc::clone(
            self.in_flight
                .lock()
                .expect("credential cache lock")
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
            let mut in_flight = self.in_flight.lock().expect("credential cache lock");
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
        let cache = VerifiedCredentials::default();
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(!cache.verify("alice", "wrong", &hash).await);
        assert!(!cache.contains(&VerifiedCredentials::key("alice", "wrong", &hash)));
        assert!(cache.verify("alice", "pw", &hash).await);
        assert!(cache.contains(&VerifiedCredentials::key("alice", "pw", &hash)));
        // Another stored hash (password changed) is another key.
        let other = bcrypt::hash("pw", 4).unwrap();
        assert!(!cache.contains(&VerifiedCredentials::key("alice", "pw", &other)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_pair_share_one_bcrypt() {
        let cache = Arc::new(VerifiedCredentials::default());
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
