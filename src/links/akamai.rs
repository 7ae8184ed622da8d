//! Akamai EdgeAuth / Auth Token 2.0 ACL tokens:
//! `__token__=[ip=…~][st=…~]exp=…~acl=…[~id=…][~data=…]~hmac=…`, hmac the
//! lowercase hex HMAC of the hex-decoded key over the bytes before `~hmac=`.

use std::net::IpAddr;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;

use super::query::{self, Query};
use super::{
    issue_path, AkamaiAlgorithm, AkamaiOptions, Context, IssueError, IssueRequest, LinkError,
    LinkFormat, LinkScope, SigningKey, VerifiedLink,
};
use crate::domain::canonical_ip;

const HMAC_FIELD: &str = "~hmac=";
const MAX_TOKEN: usize = 4096;

pub(super) fn present(query: &Query<'_>, options: &AkamaiOptions) -> bool {
    query.has(options.param())
}

fn hmac_length(algorithm: AkamaiAlgorithm) -> usize {
    match algorithm {
        AkamaiAlgorithm::Sha256 => 32,
        AkamaiAlgorithm::Sha1 => 20,
        AkamaiAlgorithm::Md5 => 16,
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], signed: &str) -> M {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

fn signature_holds(algorithm: AkamaiAlgorithm, key: &[u8], signed: &str, tag: &[u8]) -> bool {
    // verify_slice compares in constant time.
    match algorithm {
        AkamaiAlgorithm::Sha256 => mac::<Hmac<Sha256>>(key, signed).verify_slice(tag).is_ok(),
        AkamaiAlgorithm::Sha1 => mac::<Hmac<Sha1>>(key, signed).verify_slice(tag).is_ok(),
        AkamaiAlgorithm::Md5 => mac::<Hmac<Md5>>(key, signed).verify_slice(tag).is_ok(),
    }
}

fn sign(algorithm: AkamaiAlgorithm, key: &[u8], signed: &str) -> String {
    match algorithm {
        AkamaiAlgorithm::Sha256 => {
            hex::encode(mac::<Hmac<Sha256>>(key, signed).finalize().into_bytes())
        }
        AkamaiAlgorithm::Sha1 => {
            hex::encode(mac::<Hmac<Sha1>>(key, signed).finalize().into_bytes())
        }
        AkamaiAlgorithm::Md5 => hex::encode(mac::<Hmac<Md5>>(key, signed).finalize().into_bytes()),
    }
}

/// `id` and `data` are signed and kept only to refuse their repetition:
/// playgate takes its user from native and securetoken links alone.
#[derive(Default)]
struct Fields<'a> {
    ip: Option<&'a str>,
    st: Option<&'a str>,
    exp: Option<&'a str>,
    acl: Option<&'a str>,
    #[allow(dead_code)]
    id: Option<&'a str>,
    #[allow(dead_code)]
    data: Option<&'a str>,
}

/// The fields as received, each at most once; a field EdgeAuth does not
/// write is refused rather than ignored.
fn fields(signed: &str) -> Result<Fields<'_>, LinkError> {
    let mut fields = Fields::default();
    for field in signed.split('~') {
        let (name, value) = field.split_once('=').ok_or(LinkError::Invalid)?;
        let slot = match name {
            "ip" => &mut fields.ip,
            "st" => &mut fields.st,
            "exp" => &mut fields.exp,
            "acl" => &mut fields.acl,
            "id" => &mut fields.id,
            "data" => &mut fields.data,
            _ => return Err(LinkError::Invalid),
        };
        if slot.replace(value).is_some() {
            return Err(LinkError::Invalid);
        }
    }
    Ok(fields)
}

pub(super) fn verify(
    key: &SigningKey,
    options: &AkamaiOptions,
    context: &Context<'_>,
    query: &Query<'_>,
) -> Result<VerifiedLink, LinkError> {
    // The raw value: with "escape early" the signed text holds %xx and `+`,
    // so decoding it would break the HMAC.
    let token = query.required(options.param())?;
    if token.len() > MAX_TOKEN {
        return Err(LinkError::Invalid);
    }
    let at = token.rfind(HMAC_FIELD).ok_or(LinkError::Invalid)?;
    let (signed, hex) = (&token[..at], &token[at + HMAC_FIELD.len()..]);
    let mut tag = [0u8; 32];
    let tag = &mut tag[..hmac_length(options.algorithm)];
    query::decode_lower_hex(hex, tag)?;
    if !signature_holds(options.algorithm, key.secret(), signed, tag) {
        return Err(LinkError::Invalid);
    }

    // SPEC §9 names ACL tokens; URL tokens (no acl, `url=` signed but not
    // sent) are not accepted.
    let fields = fields(signed)?;
    let (exp, acl) = (
        fields.exp.ok_or(LinkError::Invalid)?,
        fields.acl.ok_or(LinkError::Invalid)?,
    );
    let end = query::parse_time(exp)?;
    let start = fields.st.map(query::parse_time).transpose()?;
    if start.is_some_and(|start| start > end) {
        return Err(LinkError::Invalid);
    }
    let globs: Vec<String> = acl.split('!').map(str::to_string).collect();
    let path = context.resource.as_deref().ok_or(LinkError::Invalid)?;
    if !globs.iter().any(|glob| query::wildcard_matches(glob, path)) {
        return Err(LinkError::Invalid);
    }
    context.within_window(start, end)?;
    if let Some(ip) = fields.ip {
        // Escaped early, an IPv6 address reads 2001%3adb8%3a%3a1.
        let ip: IpAddr = query::decode_utf8(ip)?
            .parse()
            .map_err(|_| LinkError::Invalid)?;
        if canonical_ip(ip) != context.ip {
            return Err(LinkError::IpMismatch);
        }
    }
    Ok(VerifiedLink {
        key_id: key.id().to_string(),
        format: LinkFormat::Akamai,
        user: None,
        not_before: start,
        expires_at: end,
        once_nonce: None,
        scope: LinkScope::PathGlobs(globs),
    })
}

/// `uri` (default `/` + stream) is the ACL: one path or `!`-separated globs.
pub(super) fn issue(
    key: &SigningKey,
    options: &AkamaiOptions,
    request: &IssueRequest<'_>,
    ip: Option<IpAddr>,
) -> Result<String, IssueError> {
    let default_acl;
    let acl = match request.uri {
        Some(uri) => uri,
        None => {
            default_acl = issue_path(request)?;
            &default_acl
        }
    };
    // `~` separates fields; `&` `#` `%` `+` and spaces would need an encoding
    // the verifier does not undo. Each glob must be a normalised absolute
    // path, or the verifier could never match it.
    let valid = !acl.contains(['~', '&', '#', '%', '+', ' '])
        && !acl.chars().any(char::is_control)
        && acl
            .split('!')
            .all(|glob| query::normalize_path(glob).is_some_and(|p| p == glob));
    if !valid {
        return Err(IssueError::Uri(
            "normalised absolute paths or globs, !-separated, without ~ & # % + or spaces",
        ));
    }
    let mut fields = Vec::new();
    if let Some(ip) = ip {
        fields.push(format!("ip={}", canonical_ip(ip)));
    }
    if let Some(start) = request.not_before {
        fields.push(format!("st={start}"));
    }
    fields.push(format!("exp={}", request.expires_at));
    fields.push(format!("acl={acl}"));
    let signed = fields.join("~");
    let hmac = sign(options.algorithm, key.secret(), &signed);
    Ok(format!("{}={signed}{HMAC_FIELD}{hmac}", options.param()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{key_json, request, A_IP};
    use super::super::{verify, KeyOptions};
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const T0: i64 = 1700000000;

    fn akamai(options: serde_json::Value) -> SigningKey {
        key_json(LinkFormat::Akamai, KEY, options)
    }

    #[test]
    fn edgeauth_python_vectors() {
        // A1–A8: computed by running the official akamai-edgeauth 0.3.2 (PyPI;
        // akamai/EdgeAuth-Token-Python @ cbf374da), cross-checked with openssl
        // (/work/links-research.md §4).
        let sha256 = akamai(json!({}));
        let cases: [(SigningKey, &str, &str, Option<&str>); 6] = [
            // A1
            (sha256.clone(), "/live/news/index.m3u8", "st=1700000000~exp=1700003600~acl=/live/news/*~hmac=48626a3720e5a2c778293eafd6f3f5f09a0b9639291aaa2bc048528246705e30", None),
            // A2 sha1
            (akamai(json!({"algorithm": "sha1"})), "/live/news/a.ts", "st=1700000000~exp=1700003600~acl=/live/news/*~hmac=b3b8818a3f7534a526a90bba5fe867a9d380c7cc", None),
            // A3 md5
            (akamai(json!({"algorithm": "md5"})), "/live/news/", "st=1700000000~exp=1700003600~acl=/live/news/*~hmac=08b8e24ad3756d5c60bc42ce6bc05204", None),
            // A4 ip, id, data, two ACLs
            (sha256.clone(), "/live/sport/index.m3u8", "ip=203.0.113.7~st=1700000000~exp=1700003600~acl=/live/news/*!/live/sport/index.m3u8~id=sess-42~data=alice~hmac=1e56fc6f77f7e0da37ee4edef01aabf2bf71ce3c71fd81caebd6b4bfbaddeaf8", None),
            // A7 escape_early: IPv6 escaped, data escaped
            (sha256.clone(), "/live/news/index.m3u8", "ip=2001%3adb8%3a%3a1~st=1700000000~exp=1700003600~acl=/live/news/*~data=a+b%2fc~hmac=390d040d4e9d2d7b8a6736e3beec129685bf06cd7a4ada42c669ff1714ba1067", Some("2001:db8::1")),
            // A5 no st
            (sha256.clone(), "/news/index.m3u8", "exp=1893456000~acl=/news/*~hmac=4a90f04546d067315ee36b434f9079604b5f3567afa6b72c2f95679d42d97f3d", None),
        ];
        for (key, path, token, ip) in cases {
            let query = format!("__token__={token}");
            let mut req = request("news", Some(path), &query);
            if let Some(ip) = ip {
                req.client_ip = ip.parse().unwrap();
            }
            let link = verify(&req, &[key], T0, 0).unwrap_or_else(|e| panic!("{token}: {e}"));
            assert!(link.expires_at == T0 + 3600 || link.expires_at == 1893456000);
            assert!(matches!(link.scope, LinkScope::PathGlobs(_)));
        }
        // A4 from another address: in the clear, so ip_mismatch.
        let a4 = format!("__token__={}", cases_a4());
        let mut req = request("news", Some("/live/news/x.ts"), &a4);
        req.client_ip = "198.51.100.1".parse().unwrap();
        assert_eq!(
            verify(&req, std::slice::from_ref(&sha256), T0, 0),
            Err(LinkError::IpMismatch)
        );
        req.client_ip = A_IP;
        assert!(verify(&req, std::slice::from_ref(&sha256), T0, 0).is_ok());
        // A4's second ACL is exact: another file under /live/sport is not in it.
        let req = request("sport", Some("/live/sport/other.m3u8"), &a4);
        assert_eq!(
            verify(&req, std::slice::from_ref(&sha256), T0, 0),
            Err(LinkError::Invalid)
        );

        // A6, a URL token: its signature covers `~url=…`, not sent; refused.
        let a6 = "__token__=st=1700000000~exp=1700003600~hmac=bcd92133377e5959d5a5e0a3df130e6ac5f0a4b68e0805420d0a522618a42388";
        assert_eq!(
            verify(
                &request("news", Some("/live/news/index.m3u8"), a6),
                std::slice::from_ref(&sha256),
                T0,
                0
            ),
            Err(LinkError::Invalid)
        );
        // A8, salted: the salt is signed but never sent, so a verifier without
        // it cannot check the link.
        let a8 = "__token__=st=1700000000~exp=1700003600~acl=/live/news/*~hmac=8f4612a8d779d33a7b308576d84cde6d3876873050d49be934f737e933f353d3";
        assert_eq!(
            verify(
                &request("news", Some("/live/news/index.m3u8"), a8),
                std::slice::from_ref(&sha256),
                T0,
                0
            ),
            Err(LinkError::Invalid)
        );

        // The issuer writes A1.
        let KeyOptions::Akamai(o) = sha256.options() else {
            unreachable!()
        };
        let issued = issue(
            &sha256,
            o,
            &IssueRequest {
                stream: "news",
                uri: Some("/live/news/*"),
                user: None,
                expires_at: T0 + 3600,
                not_before: Some(T0),
                ip: None,
                once: false,
            },
            None,
        );
        assert_eq!(issued.unwrap(), format!("__token__={}", cases_first()));
    }

    fn cases_first() -> &'static str {
        "st=1700000000~exp=1700003600~acl=/live/news/*~hmac=48626a3720e5a2c778293eafd6f3f5f09a0b9639291aaa2bc048528246705e30"
    }

    fn cases_a4() -> &'static str {
        "ip=203.0.113.7~st=1700000000~exp=1700003600~acl=/live/news/*!/live/sport/index.m3u8~id=sess-42~data=alice~hmac=1e56fc6f77f7e0da37ee4edef01aabf2bf71ce3c71fd81caebd6b4bfbaddeaf8"
    }

    #[test]
    fn acl_globs_match_the_normalised_path() {
        let key = akamai(json!({}));
        let query = format!("__token__={}", cases_first());
        for (path, ok) in [
            ("/live/news/index.m3u8", true),
            ("/live/news/720p/seg-1.ts", true),
            ("/live/news/", true),
            ("/live/news", false),
            ("/live/sport/index.m3u8", false),
            ("/live/news/../sport/index.m3u8", false),
            ("/live//news/index.m3u8", true),
            ("/../live/news/index.m3u8", false),
        ] {
            let result = verify(
                &request("news", Some(path), &query),
                std::slice::from_ref(&key),
                T0,
                0,
            );
            assert_eq!(result.is_ok(), ok, "{path}: {result:?}");
        }
        // Without a path, / + stream.
        let a5 = "__token__=exp=1893456000~acl=/news/*~hmac=4a90f04546d067315ee36b434f9079604b5f3567afa6b72c2f95679d42d97f3d";
        assert!(verify(
            &request("news/hd", None, a5),
            std::slice::from_ref(&key),
            T0,
            0
        )
        .is_ok());
        assert_eq!(
            verify(&request("sport", None, a5), &[key], T0, 0),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn custom_parameter_name() {
        let key = akamai(json!({"param": "hdnts"}));
        let query = format!("hdnts={}", cases_first());
        assert!(verify(
            &request("news", Some("/live/news/a.ts"), &query),
            std::slice::from_ref(&key),
            T0,
            0
        )
        .is_ok());
        let default_name = format!("__token__={}", cases_first());
        assert_eq!(
            verify(
                &request("news", Some("/live/news/a.ts"), &default_name),
                &[key],
                T0,
                0
            ),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let key = akamai(json!({}));
        let good = cases_first();
        let (signed, hmac) = good.split_once("~hmac=").unwrap();
        let k = hex::decode(KEY).unwrap();
        let resign = |signed: &str| {
            format!(
                "__token__={signed}~hmac={}",
                sign(AkamaiAlgorithm::Sha256, &k, signed)
            )
        };
        for query in [
            "__token__=".to_string(),
            "__token__=hmac=00".to_string(),
            format!("__token__={signed}"),
            format!("__token__={signed}~hmac={}", hmac.to_uppercase()),
            format!("__token__={signed}~hmac={}", &hmac[..62]),
            format!("__token__={signed}~hmac={hmac}~x=1"),
            format!("__token__={good}&__token__={good}"),
            format!(
                "__token__={}",
                good.replace("acl=/live/news/*", "acl=/live/*")
            ),
            // Signed, but not what EdgeAuth writes:
            resign("st=1700000000~acl=/live/news/*"),
            resign("st=1700000000~exp=1700003600"),
            resign("st=1700000000~exp=1700003600~exp=1700003601~acl=/live/news/*"),
            resign("st=1700000000~exp=1700003600~acl=/live/news/*~user=alice"),
            resign("st=1700003601~exp=1700003600~acl=/live/news/*"),
            resign("st=x~exp=1700003600~acl=/live/news/*"),
            resign("ip=nowhere~exp=1700003600~acl=/live/news/*"),
            resign("exp=1700003600~acl=/live/news/*~broken"),
            format!("__token__={}", "~".repeat(5000)),
        ] {
            assert_eq!(
                verify(
                    &request("news", Some("/live/news/a.ts"), &query),
                    std::slice::from_ref(&key),
                    T0,
                    0
                ),
                Err(LinkError::Invalid),
                "{query}"
            );
        }
    }
}
