//! Flussonic / Cesbo Astra / Alta securetoken:
//! `token=<hash>-<salt>-<end>-<start>[&user_id=<login>]`, hash the lowercase
//! hex SHA-1 of subject ‖ ip ‖ start ‖ end ‖ secret ‖ salt [‖ user_id].
//! Note the order: the token has end before start, the hash start before end.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

use super::query::{self, Query};
use super::{
    issue_path, Context, IssueError, IssueRequest, LinkError, LinkFormat, LinkScope,
    SecureTokenOptions, SigningKey, Subject, VerifiedLink,
};
use crate::domain::{canonical_ip, Login};

const TOKEN: &str = "token";
const USER: &str = "user_id";
/// Flussonic ≥ 20.07 writes this in place of the address when the address is
/// not checked; older issuers leave the part empty.
const NO_CHECK_IP: &str = "no_check_ip";
const MAX_SALT: usize = 128;

struct Token<'a> {
    hash: [u8; 20],
    salt: &'a str,
    end: &'a str,
    start: &'a str,
}

/// `<40 hex>-<salt without ->-<digits>-<digits>`. The time texts are kept as
/// received: they are hashed verbatim.
fn split(token: &str) -> Result<Token<'_>, LinkError> {
    let mut parts = token.split('-');
    let (Some(hash), Some(salt), Some(end), Some(start), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(LinkError::Invalid);
    };
    let mut bytes = [0u8; 20];
    query::decode_lower_hex(hash, &mut bytes)?;
    if salt.is_empty() || salt.len() > MAX_SALT {
        return Err(LinkError::Invalid);
    }
    query::parse_time(end)?;
    query::parse_time(start)?;
    Ok(Token {
        hash: bytes,
        salt,
        end,
        start,
    })
}

/// Only a token of this shape is a link; any other `token` is a playgate
/// token. The hash may be in either case here (so that an uppercase one is
/// refused as a link rather than looked up as a token).
fn shaped(token: &str) -> bool {
    let mut parts = token.split('-');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    parts
        .next()
        .is_some_and(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        && parts.next().is_some_and(|salt| !salt.is_empty())
        && digits(parts.next())
        && digits(parts.next())
        && parts.next().is_none()
}

pub(super) fn present(query: &Query<'_>) -> bool {
    query
        .pairs()
        .any(|(name, value)| name == TOKEN && query::decode_utf8(value).is_ok_and(|t| shaped(&t)))
}

fn digest(
    subject: &str,
    ip: &str,
    start: &str,
    end: &str,
    secret: &[u8],
    salt: &str,
    user: &str,
) -> [u8; 20] {
    let mut sha = Sha1::new();
    for part in [
        subject.as_bytes(),
        ip.as_bytes(),
        start.as_bytes(),
        end.as_bytes(),
        secret,
    ] {
        sha.update(part);
    }
    sha.update(salt.as_bytes());
    sha.update(user.as_bytes());
    sha.finalize().into()
}

pub(super) fn verify(
    key: &SigningKey,
    options: &SecureTokenOptions,
    context: &Context<'_>,
    query: &Query<'_>,
) -> Result<VerifiedLink, LinkError> {
    let raw = query.required(TOKEN)?;
    let decoded = query::decode_utf8(raw)?;
    let token = split(&decoded)?;
    let user_text = match query.single(USER)? {
        Some(raw) => query::decode_utf8(raw)?.into_owned(),
        None => String::new(),
    };
    // An empty user_id hashes as none at all, so it means none.
    let user = match user_text.as_str() {
        "" => None,
        login => Some(Login::parse(login).ok_or(LinkError::Invalid)?),
    };
    let (subject, scope) = match options.subject {
        Subject::Stream => (
            context.stream,
            LinkScope::Stream(context.stream.to_string()),
        ),
        Subject::Path => {
            let path = context.resource.as_deref().ok_or(LinkError::Invalid)?;
            (path, LinkScope::Path(path.to_string()))
        }
    };
    let addresses: &[&str] = if options.check_ip {
        &[&context.ip_text]
    } else {
        &[NO_CHECK_IP, ""]
    };
    let matched = addresses.iter().fold(false, |matched, ip| {
        let expected = digest(
            subject,
            ip,
            token.start,
            token.end,
            key.secret(),
            token.salt,
            &user_text,
        );
        matched | query::same(&expected, &token.hash)
    });
    if !matched {
        return Err(LinkError::Invalid);
    }
    let (start, end) = (
        query::parse_time(token.start)?,
        query::parse_time(token.end)?,
    );
    if start > end {
        return Err(LinkError::Invalid);
    }
    context.within_window(Some(start), end)?;
    Ok(VerifiedLink {
        key_id: key.id().to_string(),
        format: LinkFormat::SecureToken,
        user,
        not_before: Some(start),
        expires_at: end,
        once_nonce: None,
        scope,
    })
}

pub(super) fn issue(
    key: &SigningKey,
    options: &SecureTokenOptions,
    request: &IssueRequest<'_>,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<String, IssueError> {
    let ip = match (options.check_ip, ip) {
        (true, Some(ip)) => canonical_ip(ip).to_string(),
        (true, None) => return Err(IssueError::NeedsIp),
        (false, None) => NO_CHECK_IP.to_string(),
        (false, Some(_)) => return Err(IssueError::IpNotCarried(LinkFormat::SecureToken)),
    };
    let path;
    let subject = match options.subject {
        Subject::Stream => request.stream,
        Subject::Path => {
            path = issue_path(request)?;
            &path
        }
    };
    let salt = {
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    Ok(issue_with_salt(
        key,
        subject,
        &ip,
        request.not_before.unwrap_or(now),
        request.expires_at,
        &salt,
        request.user,
    ))
}

fn issue_with_salt(
    key: &SigningKey,
    subject: &str,
    ip: &str,
    start: i64,
    end: i64,
    salt: &str,
    user: Option<&Login>,
) -> String {
    let (start, end) = (start.to_string(), end.to_string());
    let user = user.map(Login::as_str);
    let hash = digest(
        subject,
        ip,
        &start,
        &end,
        key.secret(),
        salt,
        user.unwrap_or(""),
    );
    let mut query = format!("{TOKEN}={}-{salt}-{end}-{start}", hex::encode(hash));
    // Logins are [A-Za-z0-9._@-]: nothing to encode in a query.
    if let Some(user) = user {
        query.push_str(&format!("&{USER}={user}"));
    }
    query
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{request, A_END, A_START};
    use super::super::{verify, KeyOptions};
    use super::*;

    fn key(secret: &str, options: serde_json::Value) -> SigningKey {
        let options = KeyOptions::from_json(LinkFormat::SecureToken, &options).unwrap();
        SigningKey::new("st", secret, options).unwrap()
    }

    #[test]
    fn cesbo_alta_vendor_vector() {
        // V1.1, help.cesbo.com Alta/Astra securetoken page (cesbo/help @ 40cb1e4e,
        // src/content/docs/en/alta/ott-settings/auth-securetoken.md).
        let key = key("secret", json!({"subject": "path"}));
        let query = "token=e8bff06f373694dda657e8417fe76f6b54b69807-a5cd6c00-1669890000-1669810000";
        let mut req = request(
            "travel-channel",
            Some("/tv/travel-channel/index.m3u8"),
            query,
        );
        req.client_ip = "192.168.88.98".parse().unwrap();
        let link = verify(&req, std::slice::from_ref(&key), 1669810000, 60).unwrap();
        assert_eq!(link.expires_at, 1669890000);
        assert_eq!(link.not_before, Some(1669810000));
        assert_eq!(
            link.scope,
            LinkScope::Path("/tv/travel-channel/index.m3u8".into())
        );
        // The same token with the channel id as subject (current Astra text) does not verify.
        let by_stream = super::super::tests::key_json(LinkFormat::SecureToken, "secret", json!({}));
        assert_eq!(
            verify(&req, &[by_stream], 1669810000, 60),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn computed_vectors() {
        // V1.2–V1.6, /work/links-research.md §1 (python3 hashlib, openssl sha1).
        let checked = key("s3cr3t", json!({}));
        let unchecked = key("s3cr3t", json!({"check_ip": false}));
        let by_path = key("s3cr3t", json!({"subject": "path"}));
        let cases = [
            // V1.2 Flussonic, IP checked
            (&checked, None, "token=08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-1893456000-1893452400", None),
            // V1.3 Flussonic no_check_ip
            (&unchecked, None, "token=2a008265653f397f7fef4a171d417b51a4ebc9bc-a1b2c3d4-1893456000-1893452400&remote=no_check_ip", None),
            // V1.4 empty ip (the pre-20.07 reading)
            (&unchecked, None, "token=ed920d6cb022a2a91fde02132cf75fef54ba17e0-a1b2c3d4-1893456000-1893452400", None),
            // V1.5 Flussonic + user_id=alice
            (&checked, None, "token=1d4b9f3af420061a725bc2ca23182b11c41da08e-a1b2c3d4-1893456000-1893452400&user_id=alice", Some("alice")),
            // V1.6 path subject (Alta)
            (&by_path, Some("/tv/news/index.m3u8"), "token=ee4a74de01c0ea030e73e0531843181cb945e5d2-a1b2c3d4-1893456000-1893452400", None),
        ];
        for (key, path, query, user) in cases {
            let link = verify(
                &request("news", path, query),
                std::slice::from_ref(key),
                A_START,
                0,
            )
            .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(link.expires_at, A_END);
            assert_eq!(link.user.as_ref().map(Login::as_str), user);
        }
        // The computed vector is what the issuer writes with that salt.
        let alice = Login::parse("alice").unwrap();
        assert_eq!(
            issue_with_salt(
                &checked,
                "news",
                "203.0.113.7",
                A_START,
                A_END,
                "a1b2c3d4",
                Some(&alice)
            ),
            cases[3].2
        );
        // V1.2 checked against an address-checking key from another address.
        let mut elsewhere = request("news", None, cases[0].2);
        elsewhere.client_ip = "203.0.113.8".parse().unwrap();
        assert_eq!(
            verify(&elsewhere, std::slice::from_ref(&checked), A_START, 0),
            Err(LinkError::Invalid)
        );
        // Dropping the user_id from V1.5 breaks the hash.
        let without_user = cases[3].2.split('&').next().unwrap();
        assert_eq!(
            verify(&request("news", None, without_user), &[checked], A_START, 0),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn token_shapes() {
        assert!(shaped(
            "08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-1893456000-1893452400"
        ));
        assert!(shaped(
            "08D619464B3D7D1D33B79D6F83F02CFCF9541795-a1b2c3d4-1893456000-1893452400"
        ));
        for plain in [
            "abcdef",
            "Qm9vIQ-abc-1-2",
            "08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-1893456000",
            "08d619464b3d7d1d33b79d6f83f02cfcf9541795--1893456000-1893452400",
            "08d619464b3d7d1d33b79d6f83f02cfcf9541795-a-b-1893456000-1893452400",
            "08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-+1893456000-1893452400",
        ] {
            assert!(!shaped(plain), "{plain}");
        }
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let key = key("s3cr3t", json!({}));
        let good = "08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-1893456000-1893452400";
        for query in [
            format!("token={}", good.to_uppercase()),
            format!("token={good}&token={good}"),
            format!("token={good}&user_id=al%20ice"),
            format!("token={good}&user_id=%ff"),
            format!("token={good}&user_id=a&user_id=b"),
            "token=08d619464b3d7d1d33b79d6f83f02cfcf9541795-a1b2c3d4-99999999999999999999-1".into(),
            format!(
                "token=08d619464b3d7d1d33b79d6f83f02cfcf9541795-{}-1893456000-1893452400",
                "a".repeat(200)
            ),
        ] {
            assert_eq!(
                verify(
                    &request("news", None, &query),
                    std::slice::from_ref(&key),
                    A_START,
                    0
                ),
                Err(LinkError::Invalid),
                "{query}"
            );
        }
    }
}
