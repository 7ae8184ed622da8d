//! nginx `secure_link` + `secure_link_md5`: `md5=<hash>&expires=<unix>`,
//! hash the unpadded base64url of MD5(the key's template, substituted).

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use md5::{Digest, Md5};

use super::keys::Part;
use super::query::{self, Query};
use super::{
    issue_path, Context, IssueError, IssueRequest, LinkError, LinkFormat, LinkScope, NginxOptions,
    SigningKey, VerifiedLink,
};
use crate::domain::canonical_ip;

const HASH: &str = "md5";
const EXPIRES: &str = "expires";

/// Both are needed: `expires` alone is too common a name to take a query
/// for a link by.
pub(super) fn present(query: &Query<'_>) -> bool {
    query.has(HASH) && query.has(EXPIRES)
}

fn digest(options: &NginxOptions, expires: &str, uri: &str, ip: &str, secret: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for part in options.parts() {
        match part {
            Part::Text(text) => md5.update(text.as_bytes()),
            Part::Expires => md5.update(expires.as_bytes()),
            Part::Uri => md5.update(uri.as_bytes()),
            Part::RemoteAddr => md5.update(ip.as_bytes()),
            Part::Secret => md5.update(secret),
        }
    }
    md5.finalize().into()
}

pub(super) fn verify(
    key: &SigningKey,
    options: &NginxOptions,
    context: &Context<'_>,
    query: &Query<'_>,
) -> Result<VerifiedLink, LinkError> {
    let hash = query::decode_utf8(query.required(HASH)?)?;
    // `$secure_link_expires` is the text as received (leading zeros are
    // hashed); nginx refuses an empty, non-numeric or zero one as invalid.
    let expires_text = query.required(EXPIRES)?;
    let expires = query::parse_time(expires_text)?;
    if expires <= 0 {
        return Err(LinkError::Invalid);
    }
    // nginx tolerates `=` padding; the unpadded rest must be the canonical
    // 22 characters of 16 bytes.
    let unpadded = hash.trim_end_matches('=');
    if unpadded.len() != 22 || hash.len() - unpadded.len() > 2 {
        return Err(LinkError::Invalid);
    }
    let mut received = [0u8; 17];
    let length = URL_SAFE_NO_PAD
        .decode_slice(unpadded, &mut received)
        .map_err(|_| LinkError::Invalid)?;
    let uri = context.resource.as_deref().ok_or(LinkError::Invalid)?;
    let expected = digest(options, expires_text, uri, &context.ip_text, key.secret());
    if !query::same(&expected, &received[..length]) {
        return Err(LinkError::Invalid);
    }
    context.within_window(None, expires)?;
    Ok(VerifiedLink {
        key_id: key.id().to_string(),
        format: LinkFormat::Nginx,
        user: None,
        not_before: None,
        expires_at: expires,
        once_nonce: None,
        scope: LinkScope::Path(uri.to_string()),
    })
}

pub(super) fn issue(
    key: &SigningKey,
    options: &NginxOptions,
    request: &IssueRequest<'_>,
    ip: Option<IpAddr>,
) -> Result<String, IssueError> {
    if request.not_before.is_some() {
        return Err(IssueError::NotBeforeNotCarried);
    }
    let ip = match (options.uses_remote_addr(), ip) {
        (true, Some(ip)) => canonical_ip(ip).to_string(),
        (true, None) => return Err(IssueError::NeedsIp),
        (false, None) => String::new(),
        (false, Some(_)) => return Err(IssueError::IpNotCarried(LinkFormat::Nginx)),
    };
    let uri = issue_path(request)?;
    let expires = request.expires_at.to_string();
    let hash = digest(options, &expires, &uri, &ip, key.secret());
    Ok(format!(
        "{HASH}={}&{EXPIRES}={expires}",
        URL_SAFE_NO_PAD.encode(hash)
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{key_json, request, A_END};
    use super::super::verify;
    use super::*;

    #[test]
    fn nginx_doc_vector() {
        // V2.1, nginx.org ngx_http_secure_link_module doc example
        // (nginx/nginx.org xml/en/docs/http/ngx_http_secure_link_module.xml @ 3924a7f8).
        let key = key_json(LinkFormat::Nginx, "secret", json!({}));
        let mut req = request(
            "link",
            Some("/s/link"),
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",
        );
        req.client_ip = "127.0.0.1".parse().unwrap();
        let link = verify(&req, std::slice::from_ref(&key), 2147483000, 0).unwrap();
        assert_eq!(link.expires_at, 2147483647);
        assert_eq!(link.scope, LinkScope::Path("/s/link".into()));
    }

    #[test]
    fn computed_vectors_and_nginx_boundaries() {
        // V2.2 and V2.3, /work/links-research.md §2 (openssl md5 | base64 | tr, python3).
        let key = key_json(LinkFormat::Nginx, "s3cr3t", json!({}));
        let keys = std::slice::from_ref(&key);
        let v22 = "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=1893456000";
        let path = Some("/live/news/index.m3u8");
        // expires == now is still valid; one second later it is expired (no skew).
        assert!(verify(&request("news", path, v22), keys, A_END, 0).is_ok());
        assert_eq!(
            verify(&request("news", path, v22), keys, A_END + 1, 0),
            Err(LinkError::Expired)
        );
        // The digits are hashed verbatim.
        let zero = "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=01893456000";
        assert_eq!(
            verify(&request("news", path, zero), keys, A_END, 0),
            Err(LinkError::Invalid)
        );
        // Padding is tolerated, encoded or not.
        for padded in [
            "md5=uO89dZKVjtLfOvynRJ4_Ng==&expires=1893456000",
            "md5=uO89dZKVjtLfOvynRJ4_Ng%3D%3D&expires=1893456000",
        ] {
            assert!(
                verify(&request("news", path, padded), keys, A_END, 0).is_ok(),
                "{padded}"
            );
        }
        // The same path, not normalised, is the same $uri.
        assert!(verify(
            &request("news", Some("/live//news/./index.m3u8"), v22),
            keys,
            A_END,
            0
        )
        .is_ok());
        // V2.3: without a path the uri is / + stream.
        let v23 = "md5=SUzJFVXxaar6p63C7ohagQ&expires=1893456000";
        assert!(verify(&request("news", None, v23), keys, A_END, 0).is_ok());
        assert_eq!(
            verify(&request("sport", None, v23), keys, A_END, 0),
            Err(LinkError::Invalid)
        );
        // The issuer writes V2.2.
        let issued = issue(
            &key,
            match key.options() {
                super::super::KeyOptions::Nginx(o) => o,
                _ => unreachable!(),
            },
            &IssueRequest {
                stream: "news",
                uri: path,
                user: None,
                expires_at: A_END,
                not_before: None,
                ip: None,
                once: false,
            },
            Some("203.0.113.7".parse().unwrap()),
        );
        assert_eq!(issued.as_deref(), Ok(v22));
    }

    #[test]
    fn malformed_nginx_links_are_invalid() {
        let key = key_json(LinkFormat::Nginx, "s3cr3t", json!({}));
        let path = Some("/live/news/index.m3u8");
        for query in [
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=",
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=0",
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=-1",
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=1e9",
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=99999999999999999999999",
            "md5=uO89dZKVjtLfOvynRJ4_Ng===&expires=1893456000",
            "md5=uO89dZKVjtLfOvynRJ4_Nh&expires=1893456000",
            "md5=uO89dZKVjtLfOvynRJ4/Ng&expires=1893456000",
            "md5=uO89dZKVjtLfOvynRJ4_&expires=1893456000",
            "md5=%ff%fe&expires=1893456000",
            "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=1893456000&expires=1893456000",
        ] {
            assert_eq!(
                verify(
                    &request("news", path, query),
                    std::slice::from_ref(&key),
                    A_END,
                    0
                ),
                Err(LinkError::Invalid),
                "{query}"
            );
        }
        // A path climbing above the root cannot be signed.
        let v22 = "md5=uO89dZKVjtLfOvynRJ4_Ng&expires=1893456000";
        assert_eq!(
            verify(
                &request("news", Some("/../live/news/index.m3u8"), v22),
                &[key],
                A_END,
                0
            ),
            Err(LinkError::Invalid)
        );
    }
}
