//! The native format: `pglink=v1.<kid>.<payload>.<sig>`, payload the
//! base64url of a JSON object, sig base64url(HMAC-SHA256(key, `v1.<kid>.<payload>`)).

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::query::Query;
use super::{Context, IssueRequest, LinkError, LinkFormat, LinkScope, SigningKey, VerifiedLink};
use crate::domain::{parse_network, Login};

const PARAM: &str = "pglink";
/// A payload larger than any issued one is refused before it is decoded.
const MAX_PAYLOAD: usize = 2048;
const MAX_NONCE: usize = 128;

/// The claims; unknown fields are refused, so that a restriction added by a
/// newer issuer is never silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    s: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    u: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    once: bool,
    #[serde(default)]
    n: Option<String>,
}

/// The issuer's compact JSON, fields in this order (the research vectors').
#[derive(Serialize)]
struct IssuedClaims<'a> {
    s: &'a str,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    once: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a str>,
}

pub(super) fn present(query: &Query<'_>) -> bool {
    query.has(PARAM)
}

fn mac(key: &SigningKey, signed: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.secret()).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

pub(super) fn verify(
    key: &SigningKey,
    context: &Context<'_>,
    query: &Query<'_>,
) -> Result<VerifiedLink, LinkError> {
    let link = query.required(PARAM)?;
    let rest = link.strip_prefix("v1.").ok_or(LinkError::Invalid)?;
    let (kid, rest) = rest.split_once('.').ok_or(LinkError::Invalid)?;
    if kid != key.id() {
        return Err(LinkError::Invalid);
    }
    let (payload, sig) = rest.split_once('.').ok_or(LinkError::Invalid)?;
    // 32 bytes are 43 characters unpadded; the strict decoder refuses
    // non-zero trailing bits, so a signature has one spelling.
    if sig.len() != 43 || payload.len() > MAX_PAYLOAD {
        return Err(LinkError::Invalid);
    }
    let mut tag = [0u8; 33];
    let length = URL_SAFE_NO_PAD
        .decode_slice(sig, &mut tag)
        .map_err(|_| LinkError::Invalid)?;
    let signed = &link[..link.len() - sig.len() - 1];
    mac(key, signed)
        .verify_slice(&tag[..length])
        .map_err(|_| LinkError::Invalid)?;

    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| LinkError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
    if claims.s.is_empty() || claims.nbf.is_some_and(|nbf| nbf > claims.exp) {
        return Err(LinkError::Invalid);
    }
    let user = match &claims.u {
        Some(login) => Some(Login::parse(login).ok_or(LinkError::Invalid)?),
        None => None,
    };
    let network = match &claims.ip {
        Some(text) => Some(parse_network(text).ok_or(LinkError::Invalid)?),
        None => None,
    };
    let once_nonce = match (claims.once, claims.n) {
        (false, _) => None,
        (true, Some(n)) if !n.is_empty() && n.len() <= MAX_NONCE => Some(n),
        (true, _) => return Err(LinkError::Invalid),
    };
    let scope = LinkScope::StreamGlob(claims.s);
    if !scope.matches(context.stream, None) {
        return Err(LinkError::Invalid);
    }
    context.within_window(claims.nbf, claims.exp)?;
    if network.is_some_and(|net| !net.contains(&context.ip)) {
        return Err(LinkError::IpMismatch);
    }
    Ok(VerifiedLink {
        key_id: key.id().to_string(),
        format: LinkFormat::Playgate,
        user,
        not_before: claims.nbf,
        expires_at: claims.exp,
        once_nonce,
        scope,
    })
}

pub(super) fn issue(key: &SigningKey, request: &IssueRequest<'_>, ip: Option<IpNet>) -> String {
    let nonce = request.once.then(|| {
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    });
    issue_with_nonce(key, request, ip, nonce.as_deref())
}

pub(super) fn issue_with_nonce(
    key: &SigningKey,
    request: &IssueRequest<'_>,
    ip: Option<IpNet>,
    nonce: Option<&str>,
) -> String {
    let claims = IssuedClaims {
        s: request.stream,
        exp: request.expires_at,
        nbf: request.not_before,
        u: request.user.map(Login::as_str),
        // A single address is written bare, a network as CIDR.
        ip: ip.map(|net| {
            if net.prefix_len() == net.max_prefix_len() {
                IpAddr::to_string(&net.addr())
            } else {
                net.to_string()
            }
        }),
        once: request.once,
        n: nonce,
    };
    let json = serde_json::to_vec(&claims).expect("claims serialise");
    let signed = format!("v1.{}.{}", key.id(), URL_SAFE_NO_PAD.encode(json));
    let sig = URL_SAFE_NO_PAD.encode(mac(key, &signed).finalize().into_bytes());
    format!("{PARAM}={signed}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{request, A_END, A_IP, A_START};
    use super::super::{verify, KeyOptions};
    use super::*;

    fn k1() -> SigningKey {
        SigningKey::new("k1", "secret-of-k1", KeyOptions::Playgate).unwrap()
    }

    // /work/links-research.md §5 (computed with python3 hmac/base64 and openssl).
    const MINIMAL: &str = "pglink=v1.k1.eyJzIjoibmV3cyIsImV4cCI6MTg5MzQ1NjAwMH0.UkLHSx1Sxajbgu5lRNRFkYY8PS7TiTde56uYZqqHQ7E";
    const FULL: &str = "pglink=v1.k1.eyJzIjoibmV3cyIsImV4cCI6MTg5MzQ1NjAwMCwibmJmIjoxODkzNDUyNDAwLCJ1IjoiYWxpY2UiLCJpcCI6IjIwMy4wLjExMy4wLzI0Iiwib25jZSI6dHJ1ZSwibiI6IjNxMi03dyJ9.YyZfAGA2JaBdaYbQ-JBNZeeJRBvu5QSUXdoWWUfgGFg";

    #[test]
    fn research_vectors_verify() {
        let link = verify(&request("news", None, MINIMAL), &[k1()], A_START, 60).unwrap();
        assert_eq!(link.expires_at, A_END);
        assert_eq!(link.user, None);
        assert_eq!(link.scope, LinkScope::StreamGlob("news".into()));

        let link = verify(&request("news", None, FULL), &[k1()], A_START, 60).unwrap();
        assert_eq!(link.user, Login::parse("alice"));
        assert_eq!(link.not_before, Some(A_START));
        assert_eq!(link.once_nonce.as_deref(), Some("3q2-7w"));
        let outside: IpAddr = "198.51.100.1".parse().unwrap();
        let mut elsewhere = request("news", None, FULL);
        elsewhere.client_ip = outside;
        assert_eq!(
            verify(&elsewhere, &[k1()], A_START, 60),
            Err(LinkError::IpMismatch)
        );
        assert_eq!(A_IP, request("news", None, FULL).client_ip);
    }

    #[test]
    fn research_vectors_are_what_the_issuer_writes() {
        let minimal = IssueRequest {
            stream: "news",
            uri: None,
            user: None,
            expires_at: A_END,
            not_before: None,
            ip: None,
            once: false,
        };
        assert_eq!(issue_with_nonce(&k1(), &minimal, None, None), MINIMAL);
        let alice = Login::parse("alice").unwrap();
        let full = IssueRequest {
            user: Some(&alice),
            not_before: Some(A_START),
            once: true,
            ..minimal
        };
        let net: IpNet = "203.0.113.0/24".parse().unwrap();
        assert_eq!(
            issue_with_nonce(&k1(), &full, Some(net), Some("3q2-7w")),
            FULL
        );
    }

    #[test]
    fn python_default_json_spacing_is_as_valid() {
        // /work/links-research.md §5 pitfalls: json.dumps with spaces, same key.
        let spaced = "pglink=v1.k1.eyJzIjogIm5ld3MiLCAiZXhwIjogMTg5MzQ1NjAwMH0.PxBvFByLIWKW1U-a12830QaQb2zcypTGZtNRjpZl3E0";
        assert!(verify(&request("news", None, spaced), &[k1()], A_START, 60).is_ok());
    }

    #[test]
    fn malformed_native_links_are_invalid() {
        let (payload, sig) = MINIMAL["pglink=v1.k1.".len()..].split_once('.').unwrap();
        let padded_sig = format!("pglink=v1.k1.{payload}.{sig}=");
        // FULL's signature has a `-`: in the standard alphabet it is `+`.
        let std_alphabet = FULL.replace("Q-JB", "Q+JB");
        let wrong_kid = MINIMAL.replace("v1.k1.", "v1.k2.");
        let v2 = MINIMAL.replace("v1.", "v2.");
        let no_sig = format!("pglink=v1.k1.{payload}");
        let long_payload = format!("pglink=v1.k1.{}.{sig}", "A".repeat(5000));
        for query in [
            "pglink=",
            "pglink=v1",
            "pglink=v1...",
            "pglink=v1.k1.%%%.%%%",
            &no_sig,
            &padded_sig,
            &std_alphabet,
            &wrong_kid,
            &v2,
            &long_payload,
            &format!("{MINIMAL}&{MINIMAL}"),
        ] {
            assert_eq!(
                verify(&request("news", None, query), &[k1()], A_START, 60),
                Err(LinkError::Invalid),
                "{query}"
            );
        }
    }

    #[test]
    fn signed_but_malformed_claims_are_invalid() {
        let key = k1();
        let sign = |json: &str| {
            let signed = format!("v1.k1.{}", URL_SAFE_NO_PAD.encode(json));
            let sig = URL_SAFE_NO_PAD.encode(mac(&key, &signed).finalize().into_bytes());
            format!("pglink={signed}.{sig}")
        };
        for json in [
            r#"{"s":"news"}"#,
            r#"{"s":"news","exp":"1893456000"}"#,
            r#"{"s":"news","exp":1e30}"#,
            r#"{"s":"news","exp":99999999999999999999999}"#,
            r#"{"s":"","exp":1893456000}"#,
            r#"{"s":"news","exp":1893456000,"x":1}"#,
            r#"{"s":"news","exp":1893456000,"exp":1893456001}"#,
            r#"{"s":"news","exp":1893456000,"u":"not a login"}"#,
            r#"{"s":"news","exp":1893456000,"ip":"nowhere"}"#,
            r#"{"s":"news","exp":1893456000,"once":true}"#,
            r#"{"s":"news","exp":1893456000,"once":true,"n":""}"#,
            r#"{"s":"news","exp":1893452400,"nbf":1893456000}"#,
            "[1,2]",
            "not json",
        ] {
            let query = sign(json);
            assert_eq!(
                verify(
                    &request("news", None, &query),
                    std::slice::from_ref(&key),
                    A_START,
                    60
                ),
                Err(LinkError::Invalid),
                "{json}"
            );
        }
        // Non-UTF-8 inside the payload.
        let signed = format!(
            "v1.k1.{}",
            URL_SAFE_NO_PAD.encode(b"{\"s\":\"\xff\",\"exp\":1}")
        );
        let sig = URL_SAFE_NO_PAD.encode(mac(&key, &signed).finalize().into_bytes());
        let query = format!("pglink={signed}.{sig}");
        assert_eq!(
            verify(&request("news", None, &query), &[key], A_START, 60),
            Err(LinkError::Invalid)
        );
    }
}
