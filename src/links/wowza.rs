//! Wowza SecureToken v2: `<p>starttime`, `<p>endtime`, other `<p>*` and
//! `<p>hash` = base64 (`-_` alphabet) of SHA-2(stream `?` the byte-sorted,
//! `&`-joined items: every `<p>*` but the hash as `name=value`, the secret,
//! and the client address when `check_ip`).

use std::net::IpAddr;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::query::{self, Query};
use super::{
    Context, IssueError, IssueRequest, LinkError, LinkFormat, LinkScope, SigningKey, VerifiedLink,
    WowzaAlgorithm, WowzaOptions,
};
use crate::domain::canonical_ip;

/// Hashed parameters beyond these many are refused rather than sorted.
const MAX_ITEMS: usize = 32;

pub(super) fn present(query: &Query<'_>, options: &WowzaOptions) -> bool {
    query
        .pairs()
        .any(|(name, _)| name.strip_prefix(options.prefix()) == Some("hash"))
}

fn digest(algorithm: WowzaAlgorithm, stream: &str, items: &[Vec<u8>]) -> Vec<u8> {
    fn run<D: Digest>(stream: &str, items: &[Vec<u8>]) -> Vec<u8> {
        let mut hash = D::new();
        hash.update(stream.as_bytes());
        hash.update(b"?");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                hash.update(b"&");
            }
            hash.update(item);
        }
        hash.finalize().to_vec()
    }
    match algorithm {
        WowzaAlgorithm::Sha256 => run::<Sha256>(stream, items),
        WowzaAlgorithm::Sha384 => run::<Sha384>(stream, items),
        WowzaAlgorithm::Sha512 => run::<Sha512>(stream, items),
    }
}

pub(super) fn verify(
    key: &SigningKey,
    options: &WowzaOptions,
    context: &Context<'_>,
    query: &Query<'_>,
) -> Result<VerifiedLink, LinkError> {
    let (mut hash, mut start, mut end) = (None, None, None);
    let mut names: Vec<&str> = Vec::with_capacity(4);
    let mut items: Vec<Vec<u8>> = Vec::with_capacity(4);
    for (name, raw) in query.pairs() {
        let Some(suffix) = name.strip_prefix(options.prefix()) else {
            continue;
        };
        // A hashed parameter given twice is ambiguous: which one would the
        // streamer have read?
        if names.contains(&name) || names.len() == MAX_ITEMS {
            return Err(LinkError::Invalid);
        }
        names.push(name);
        match suffix {
            "hash" => {
                hash = Some(raw);
                continue;
            }
            "starttime" => start = Some(raw),
            "endtime" => end = Some(raw),
            _ => {}
        }
        // Wowza hashes the values as it received them, decoded.
        let mut item = Vec::with_capacity(name.len() + 1 + raw.len());
        item.extend_from_slice(name.as_bytes());
        item.push(b'=');
        item.extend_from_slice(&query::decode(raw));
        items.push(item);
    }
    let (hash, end) = (
        hash.ok_or(LinkError::Invalid)?,
        end.ok_or(LinkError::Invalid)?,
    );
    let end = query::parse_time(&query::decode_utf8(end)?)?;
    let start = match start {
        Some(raw) => Some(query::parse_time(&query::decode_utf8(raw)?)?),
        None => None,
    };
    items.push(key.secret().to_vec());
    if options.check_ip {
        items.push(context.ip_text.as_bytes().to_vec());
    }
    items.sort_unstable();

    // Padding is optional (and may arrive as %3D); the rest must be the
    // canonical unpadded encoding of exactly one digest.
    let decoded = query::decode_utf8(hash)?;
    let unpadded = decoded.trim_end_matches('=');
    if decoded.len() - unpadded.len() > 2 {
        return Err(LinkError::Invalid);
    }
    let received = URL_SAFE_NO_PAD
        .decode(unpadded)
        .map_err(|_| LinkError::Invalid)?;
    let expected = digest(options.algorithm, context.stream, &items);
    if !query::same(&expected, &received) {
        return Err(LinkError::Invalid);
    }
    if start.is_some_and(|start| start > end) {
        return Err(LinkError::Invalid);
    }
    context.within_window(start, end)?;
    Ok(VerifiedLink {
        key_id: key.id().to_string(),
        format: LinkFormat::Wowza,
        user: None,
        not_before: start,
        expires_at: end,
        once_nonce: None,
        scope: LinkScope::Stream(context.stream.to_string()),
    })
}

pub(super) fn issue(
    key: &SigningKey,
    options: &WowzaOptions,
    request: &IssueRequest<'_>,
    ip: Option<IpAddr>,
) -> Result<String, IssueError> {
    let ip = match (options.check_ip, ip) {
        (true, Some(ip)) => Some(canonical_ip(ip).to_string()),
        (true, None) => return Err(IssueError::NeedsIp),
        (false, None) => None,
        (false, Some(_)) => return Err(IssueError::IpNotCarried(LinkFormat::Wowza)),
    };
    let prefix = options.prefix();
    let mut params = Vec::new();
    if let Some(start) = request.not_before {
        params.push(format!("{prefix}starttime={start}"));
    }
    params.push(format!("{prefix}endtime={}", request.expires_at));
    let mut items: Vec<Vec<u8>> = params.iter().map(|p| p.clone().into_bytes()).collect();
    items.push(key.secret().to_vec());
    items.extend(ip.map(String::into_bytes));
    items.sort_unstable();
    let hash = URL_SAFE.encode(digest(options.algorithm, request.stream, &items));
    params.push(format!("{prefix}hash={hash}"));
    Ok(params.join("&"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{key_json, request, A_END, A_START};
    use super::super::verify;
    use super::*;

    #[test]
    fn third_party_vectors() {
        // V3.1 and V3.2: UCLA "Bruincast" media-service Jest tests; IP in the hash.
        let ucla_ip: IpAddr = "172.18.0.1".parse().unwrap();
        let stream = "2020s-v/mp4:eeb162-1-20200331-18431.mp4";
        for (secret, query, start) in [
            (
                "afakesecret",
                "wowzatokenendtime=1595365679&wowzatokenhash=YVNbN1yQoLZdB1iL0-dao8Bjn0emRwZuSPmTw738TtQ=",
                None,
            ),
            (
                "afakesecret69420",
                "wowzatokenstarttime=1595275679&wowzatokenendtime=1595365679&wowzatokenhash=21m26u_t6BykDG7PTuUWhoob3LJ-KzoZvKTkh9EgQ0k=",
                Some(1595275679),
            ),
        ] {
            let key = key_json(LinkFormat::Wowza, secret, json!({"check_ip": true}));
            let mut req = request(stream, None, query);
            req.client_ip = ucla_ip;
            let link = verify(&req, &[key], 1595300000, 0).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(link.expires_at, 1595365679);
            assert_eq!(link.not_before, start);
        }
        // V3.3: cjreeder/securetoken_generator README, prefix zhashinstance, no IP.
        // (Its start is after its end: the hash holds, the link is refused as malformed.)
        let key = key_json(
            LinkFormat::Wowza,
            "mysecuresharedsecret",
            json!({"prefix": "zhashinstance"}),
        );
        let query = "zhashinstancestarttime=1706333933&zhashinstanceendtime=1706312333&zhashinstancehash=u4OoUQUj2IFz18aKsf0Gn0DGoadV7WhtWlZkypXCXfc=";
        let items = [
            b"mysecuresharedsecret".to_vec(),
            b"zhashinstanceendtime=1706312333".to_vec(),
            b"zhashinstancestarttime=1706333933".to_vec(),
        ];
        assert_eq!(
            URL_SAFE.encode(digest(WowzaAlgorithm::Sha256, "live-app/stream01", &items)),
            "u4OoUQUj2IFz18aKsf0Gn0DGoadV7WhtWlZkypXCXfc="
        );
        assert_eq!(
            verify(
                &request("live-app/stream01", None, query),
                &[key],
                1706312333,
                0
            ),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn computed_vectors() {
        // V3.4–V3.8, /work/links-research.md §3 (openssl dgst | base64 | tr, python3).
        let window = "wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000";
        for (options, extra, hash) in [
            // V3.4 sha256, IP on
            (json!({"check_ip": true}), "", "ng2MdVcHdQLN9oBVs5pkZN_YtGW674-wzCJsPdU1GG8="),
            // V3.5 sha256, IP off
            (json!({}), "", "IdjPprFq7klY48qfbGFCfpJySnG7BKNEb5wOaXZOY2U="),
            // V3.6 sha384, IP on (48 bytes: no padding)
            (json!({"check_ip": true, "algorithm": "sha384"}), "", "9571JA5v0xC94AAbmHsb3JJkR4cmF06qUz5BmzghNIfmb0Cvafcua2c77_cvVmz5"),
            // V3.7 sha512, IP on
            (json!({"check_ip": true, "algorithm": "sha512"}), "", "cn247vjwrR8VgTTGZ9FG_HENmSu9CKd9DWqk6yIXAtrPTgxvDbAlcrsVEpgXex0N4Rwk08zbfyMy6KGXNHq6iQ=="),
            // V3.8 sha256, custom parameter, IP off
            (json!({}), "&wowzatokenCustomParameter=abc", "bi_49HFMv1PQnEJHH_-fKSyG8m7DkLWBKrjUGzqfOCI="),
        ] {
            let key = key_json(LinkFormat::Wowza, "s3cr3t", options.clone());
            let query = format!("{window}{extra}&wowzatokenhash={hash}");
            let keys = std::slice::from_ref(&key);
            let link = verify(&request("live/news", None, &query), keys, A_START, 0)
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!((link.not_before, link.expires_at), (Some(A_START), A_END));
            // Padding optional, or percent-encoded.
            let bare = query.trim_end_matches('=');
            assert!(verify(&request("live/news", None, bare), keys, A_START, 0).is_ok());
            let encoded = format!("{bare}{}", "%3D".repeat(query.len() - bare.len()));
            assert!(verify(&request("live/news", None, &encoded), keys, A_START, 0).is_ok(), "{encoded}");
            // Another stream.
            assert_eq!(verify(&request("live/sport", None, &query), keys, A_START, 0), Err(LinkError::Invalid));
            // The issuer writes the same hash (without custom parameters).
            if extra.is_empty() {
                let KeyOptions::Wowza(o) = key.options() else { unreachable!() };
                let ip = options["check_ip"].as_bool().map(|_| "203.0.113.7".parse().unwrap());
                let issued = issue(&key, o, &IssueRequest {
                    stream: "live/news",
                    uri: None,
                    user: None,
                    expires_at: A_END,
                    not_before: Some(A_START),
                    ip: None,
                    once: false,
                }, ip)
                .unwrap();
                assert_eq!(issued, format!("{window}&wowzatokenhash={hash}"));
            }
        }
        // IP on: another address changes the hash.
        let key = key_json(LinkFormat::Wowza, "s3cr3t", json!({"check_ip": true}));
        let query = format!("{window}&wowzatokenhash=ng2MdVcHdQLN9oBVs5pkZN_YtGW674-wzCJsPdU1GG8=");
        let mut req = request("live/news", None, &query);
        req.client_ip = "203.0.113.8".parse().unwrap();
        assert_eq!(verify(&req, &[key], A_START, 0), Err(LinkError::Invalid));
    }

    #[test]
    fn vendor_doc_example_does_not_reproduce() {
        // V3.0: the Wowza doc's RTSP example prints a hash its own string does
        // not give (/work/links-research.md §3); SHA-256 of the string is this.
        let items = [
            b"wowzatokenCustomParameter=abcdef".to_vec(),
            b"wowzatokenendtime=1500000000".to_vec(),
            b"xyzSharedSecret".to_vec(),
        ];
        let hash = URL_SAFE.encode(digest(
            WowzaAlgorithm::Sha256,
            "vod/_myInstance_/sample.mp4",
            &items,
        ));
        assert_eq!(hash, "kJ591xB2lT-X0OA9UdoRx61uwp6A_IoSc_jCx_9h1l8=");
        assert_ne!(hash, "m20I4XSU1EmtzHmz8PbbRsX5OcVi7Km-qI1J3acEV-c=");
    }

    #[test]
    fn malformed_wowza_links_are_invalid() {
        let key = key_json(LinkFormat::Wowza, "s3cr3t", json!({}));
        let hash = "IdjPprFq7klY48qfbGFCfpJySnG7BKNEb5wOaXZOY2U=";
        for query in [
            format!("wowzatokenstarttime=1893452400&wowzatokenhash={hash}"),
            "wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000".to_string(),
            format!("wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000&wowzatokenhash={hash}&wowzatokenhash={hash}"),
            format!("wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000&wowzatokenendtime=1893456000&wowzatokenhash={hash}"),
            format!("wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000&wowzatokenhash={hash}=="),
            // V3.8 in the standard alphabet (`+/` for `-_`).
            "wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000&wowzatokenCustomParameter=abc&wowzatokenhash=bi/49HFMv1PQnEJHH/+fKSyG8m7DkLWBKrjUGzqfOCI=".to_string(),
            "wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000&wowzatokenhash=%ff".to_string(),
            format!("wowzatokenstarttime=x&wowzatokenendtime=1893456000&wowzatokenhash={hash}"),
            format!("wowzatokenstarttime=1893452400&wowzatokenendtime=1893456000{}&wowzatokenhash={hash}", "&wowzatokenx=1".repeat(40)),
        ] {
            assert_eq!(
                verify(&request("live/news", None, &query), std::slice::from_ref(&key), A_START, 0),
                Err(LinkError::Invalid),
                "{query}"
            );
        }
    }

    use super::super::KeyOptions;
}
