//! The HLS viewer cookie `playgate_viewer` (SPEC §3): names the session a
//! credentialed playlist request started, signed with HMAC-SHA256 by a key
//! every replica shares, so that the player's segments find that session and
//! nobody can name another.
//!
//! Value: `v1.<session id, 32 hex digits>.<base64url(HMAC-SHA256(key, "playgate_viewer.v1.<id>"))>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

pub const COOKIE_NAME: &str = "playgate_viewer";
/// Length of a fresh key (`store::viewer_cookie`), in bytes.
pub const KEY_LEN: usize = 32;

/// The signing key; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CookieKey(Vec<u8>);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey([redacted])")
    }
}

impl CookieKey {
    pub fn new(key: Vec<u8>) -> CookieKey {
        CookieKey(key)
    }

    /// A key for a replica that is the first to need one.
    pub fn random_bytes() -> Vec<u8> {
        let mut key = vec![0u8; KEY_LEN];
        rand::fill(&mut key[..]);
        key
    }

    fn mac(&self, id: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"playgate_viewer.v1.");
        mac.update(id.as_bytes());
        mac
    }

    /// The cookie's value for a session.
    pub fn sign(&self, session_id: Uuid) -> String {
        let id = session_id.simple().to_string();
        let tag = self.mac(&id).finalize().into_bytes();
        format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session a cookie value names, if this key signed it.
    pub fn verify(&self, value: &str) -> Option<Uuid> {
        let rest = value.strip_prefix("v1.")?;
        let (id, tag) = rest.split_once('.')?;
        if id.len() != 32 {
            return None;
        }
        let session_id = Uuid::try_parse(id).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // Constant time: a forger learns nothing from how long a refusal takes.
        self.mac(id).verify_slice(&tag).ok()?;
        Some(session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_values_verify_and_nothing_else_does() {
        let key = CookieKey::new(b"k".repeat(32));
        let id = Uuid::new_v4();
        let value = key.sign(id);
        assert_eq!(key.verify(&value), Some(id));
        assert!(value.bytes().all(|b| b.is_ascii_graphic() && b != b';'));
        // Another key, another id with the same tag, a changed tag: refused.
        assert_eq!(CookieKey::new(b"x".repeat(32)).verify(&value), None);
        let tag = value.rsplit_once('.').unwrap().1;
        let other = format!("v1.{}.{tag}", Uuid::new_v4().simple());
        assert_eq!(key.verify(&other), None);
        let mut changed = value.clone();
        changed.pop();
        assert_eq!(key.verify(&changed), None);
        for bad in [
            "",
            "v1.",
            "v1.x.y",
            "v2.abc.def",
            &value.replace("v1.", "v1.."),
        ] {
            assert_eq!(key.verify(bad), None, "{bad}");
        }
        assert!(!format!("{key:?}").contains("kkkk"));
    }
}
