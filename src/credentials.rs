//! A short-lived memory of verified login:password pairs, so that a player
//! re-asking every few seconds (or an admin script) does not pay bcrypt each
//! time. Used by the decision engine and by the admin API's authentication.

use std::collections::HashMap;
use std::sync::Mutex;
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

    /// bcrypt off the async executor, once per verified triple.
    pub async fn verify(&self, login: &str, password: &str, hash: &str) -> bool {
        let key = VerifiedCredentials::key(login, password, hash);
        if self.contains(&key) {
            return true;
        }
        let (password, hash) = (password.to_string(), hash.to_string());
        let valid =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
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
}
