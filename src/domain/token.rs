//! Playback and API tokens are stored and looked up as SHA-256 only.

use sha2::{Digest, Sha256};

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 256 bits from the thread's CSPRNG, URL-safe base64 without padding (43
/// characters): generated tokens, web sessions, dummy passwords.
pub fn random_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
