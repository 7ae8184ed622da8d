//! Across the formats: issue → verify round trips, windows, scopes,
//! addresses, rotation, `find_link`, issue errors. The published and
//! computed vectors are in each format's file.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde_json::{json, Value};

use super::*;

/// The shared inputs of /work/links-research.md.
pub(super) const A_START: i64 = 1893452400;
pub(super) const A_END: i64 = 1893456000;
pub(super) const A_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

pub(super) fn request<'a>(
    stream: &'a str,
    path: Option<&'a str>,
    query: &'a str,
) -> LinkRequest<'a> {
    LinkRequest {
        stream,
        path,
        client_ip: A_IP,
        query,
    }
}

pub(super) fn key_json(format: LinkFormat, secret: &str, options: Value) -> SigningKey {
    let id = format!("{}-1", format.as_str());
    SigningKey::new(
        &id,
        secret,
        KeyOptions::from_json(format, &options).unwrap(),
    )
    .unwrap()
}

fn issue_request(stream: &str) -> IssueRequest<'_> {
    IssueRequest {
        stream,
        uri: None,
        user: None,
        expires_at: A_END,
        not_before: None,
        ip: None,
        once: false,
    }
}

fn net(text: &str) -> Option<IpNet> {
    Some(crate::domain::parse_network(text).unwrap())
}

/// One configuration to issue and verify: the request it is for, a request
/// it is not for, and what another address gets.
struct Case {
    name: &'static str,
    key: SigningKey,
    issue: IssueRequest<'static>,
    at: (&'static str, Option<&'static str>),
    elsewhere: (&'static str, Option<&'static str>),
    /// `None`: the link is not bound to an address.
    other_address: Option<LinkError>,
}

fn cases(alice: &'static Login) -> Vec<Case> {
    use LinkFormat::*;
    let base = issue_request("news");
    let sha = |format, options| key_json(format, "s3cr3t", options);
    let akamai = |options| {
        key_json(
            Akamai,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            options,
        )
    };
    let path = Some("/live/news/index.m3u8");
    vec![
        Case {
            name: "playgate minimal",
            key: sha(Playgate, json!({})),
            issue: base,
            at: ("news", None),
            elsewhere: ("sport", None),
            other_address: None,
        },
        Case {
            name: "playgate full",
            key: sha(Playgate, json!({})),
            issue: IssueRequest {
                stream: "news*",
                user: Some(alice),
                not_before: Some(A_START),
                ip: net("203.0.113.0/24"),
                once: true,
                ..base
            },
            at: ("news_hd", None),
            elsewhere: ("sport", None),
            other_address: Some(LinkError::IpMismatch),
        },
        Case {
            name: "playgate single address",
            key: sha(Playgate, json!({})),
            issue: IssueRequest {
                ip: net("203.0.113.7"),
                ..base
            },
            at: ("news", None),
            elsewhere: ("news2", None),
            other_address: Some(LinkError::IpMismatch),
        },
        Case {
            name: "securetoken by stream",
            key: sha(SecureToken, json!({})),
            issue: IssueRequest {
                ip: net("203.0.113.7"),
                user: Some(alice),
                ..base
            },
            at: ("news", None),
            elsewhere: ("sport", None),
            other_address: Some(LinkError::Invalid),
        },
        Case {
            name: "securetoken no_check_ip",
            key: sha(SecureToken, json!({"check_ip": false})),
            issue: IssueRequest {
                not_before: Some(A_START),
                ..base
            },
            at: ("news", None),
            elsewhere: ("sport", None),
            other_address: None,
        },
        Case {
            name: "securetoken by path",
            key: sha(SecureToken, json!({"subject": "path"})),
            issue: IssueRequest {
                uri: Some("/tv/news/index.m3u8"),
                ip: net("203.0.113.7"),
                ..base
            },
            at: ("news", Some("/tv/news/index.m3u8")),
            elsewhere: ("news", Some("/tv/news/other.m3u8")),
            other_address: Some(LinkError::Invalid),
        },
        Case {
            name: "nginx default template",
            key: sha(Nginx, json!({})),
            issue: IssueRequest {
                uri: path,
                ip: net("203.0.113.7"),
                ..base
            },
            at: ("news", path),
            elsewhere: ("news", Some("/live/sport/index.m3u8")),
            other_address: Some(LinkError::Invalid),
        },
        Case {
            name: "nginx without the address, / + stream",
            key: sha(
                Nginx,
                json!({"template": "$secret|${uri}|$secure_link_expires"}),
            ),
            issue: base,
            at: ("news", None),
            elsewhere: ("sport", None),
            other_address: None,
        },
        Case {
            name: "wowza sha256",
            key: sha(Wowza, json!({})),
            issue: IssueRequest {
                stream: "live/news",
                not_before: Some(A_START),
                ..base
            },
            at: ("live/news", None),
            elsewhere: ("live/sport", None),
            other_address: None,
        },
        Case {
            name: "wowza sha384 with the address",
            key: sha(Wowza, json!({"algorithm": "sha384", "check_ip": true})),
            issue: IssueRequest {
                stream: "live/news",
                ip: net("203.0.113.7"),
                ..base
            },
            at: ("live/news", None),
            elsewhere: ("live/sport", None),
            other_address: Some(LinkError::Invalid),
        },
        Case {
            name: "wowza sha512, own prefix",
            key: sha(Wowza, json!({"algorithm": "sha512", "prefix": "zhash"})),
            issue: IssueRequest {
                stream: "live/news",
                ..base
            },
            at: ("live/news", None),
            elsewhere: ("live/sport", None),
            other_address: None,
        },
        Case {
            name: "akamai sha256, ip and start",
            key: akamai(json!({})),
            issue: IssueRequest {
                uri: Some("/live/news/*!/live/news-hd/index.m3u8"),
                ip: net("203.0.113.7"),
                not_before: Some(A_START),
                ..base
            },
            at: ("news", Some("/live/news-hd/index.m3u8")),
            elsewhere: ("news", Some("/live/news-hd/other.m3u8")),
            other_address: Some(LinkError::IpMismatch),
        },
        Case {
            name: "akamai sha1, ? glob",
            key: akamai(json!({"algorithm": "sha1"})),
            issue: IssueRequest {
                uri: Some("/live/news/seg-?.ts"),
                ..base
            },
            at: ("news", Some("/live/news/seg-7.ts")),
            elsewhere: ("news", Some("/live/news/seg-10.ts")),
            other_address: None,
        },
        Case {
            name: "akamai md5, own parameter, / + stream",
            key: akamai(json!({"algorithm": "md5", "param": "hdnts"})),
            issue: base,
            at: ("news", None),
            elsewhere: ("sport", None),
            other_address: None,
        },
    ]
}

#[test]
fn issued_links_verify_and_nothing_else_does() {
    let alice: &'static Login = Box::leak(Box::new(Login::parse("alice").unwrap()));
    let skew = 60;
    for case in cases(alice) {
        let name = case.name;
        let keys = std::slice::from_ref(&case.key);
        let query =
            issue(&case.key, &case.issue, A_START).unwrap_or_else(|e| panic!("{name}: {e}"));
        let at = |stream, path, ip| LinkRequest {
            stream,
            path,
            client_ip: ip,
            query: &query,
        };
        let here = at(case.at.0, case.at.1, A_IP);
        let link =
            verify(&here, keys, A_START + 10, skew).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(link.key_id, case.key.id(), "{name}");
        assert_eq!(link.format, case.key.format(), "{name}");
        assert_eq!(link.expires_at, A_END, "{name}");
        assert_eq!(link.user.as_ref(), case.issue.user, "{name}");
        assert_eq!(link.once_nonce.is_some(), case.issue.once, "{name}");
        assert!(link.scope.matches(case.at.0, case.at.1), "{name}");
        assert!(
            !link.scope.matches(case.elsewhere.0, case.elsewhere.1),
            "{name}"
        );
        assert_eq!(find_link(&query, keys), Some(case.key.format()), "{name}");

        // The window, with the skew on both ends; a securetoken link starts
        // when it was issued.
        let start = match case.key.format() {
            LinkFormat::SecureToken => Some(case.issue.not_before.unwrap_or(A_START)),
            _ => case.issue.not_before,
        };
        assert_eq!(link.not_before, start, "{name}");
        if let Some(start) = start {
            let skew = skew as i64;
            assert!(verify(&here, keys, start - skew, 60).is_ok(), "{name}");
            assert_eq!(
                verify(&here, keys, start - skew - 1, 60),
                Err(LinkError::Expired),
                "{name}"
            );
            assert_eq!(
                verify(&here, keys, start - 1, 0),
                Err(LinkError::Expired),
                "{name}"
            );
            assert_eq!(
                verify(&here, keys, i64::MIN, 0),
                Err(LinkError::Expired),
                "{name}"
            );
        }
        assert!(verify(&here, keys, A_END, 0).is_ok(), "{name}");
        assert!(verify(&here, keys, A_END + 60, 60).is_ok(), "{name}");
        assert_eq!(
            verify(&here, keys, A_END + 61, 60),
            Err(LinkError::Expired),
            "{name}"
        );
        assert_eq!(
            verify(&here, keys, A_END + 1, 0),
            Err(LinkError::Expired),
            "{name}"
        );
        assert_eq!(
            verify(&here, keys, i64::MAX, u64::MAX),
            Ok(link.clone()),
            "{name}"
        );

        // Another stream or path.
        let elsewhere = at(case.elsewhere.0, case.elsewhere.1, A_IP);
        assert_eq!(
            verify(&elsewhere, keys, A_START + 10, skew),
            Err(LinkError::Invalid),
            "{name}"
        );

        // Another address; the same one IPv4-mapped is the same.
        let other = at(case.at.0, case.at.1, "198.51.100.1".parse().unwrap());
        let expected = case.other_address.map_or(Ok(link.clone()), Err);
        assert_eq!(verify(&other, keys, A_START + 10, skew), expected, "{name}");
        let mapped = at(case.at.0, case.at.1, "::ffff:203.0.113.7".parse().unwrap());
        assert_eq!(
            verify(&mapped, keys, A_START + 10, skew),
            Ok(link.clone()),
            "{name}"
        );

        // Another key of the same format (another secret) refuses it.
        let other_secret = if case.key.format() == LinkFormat::Akamai {
            "00ff"
        } else {
            "other"
        };
        let stranger =
            SigningKey::new(case.key.id(), other_secret, case.key.options().clone()).unwrap();
        assert_eq!(
            verify(&here, &[stranger], A_START + 10, skew),
            Err(LinkError::Invalid),
            "{name}"
        );
        // No keys: nothing verifies.
        assert_eq!(
            verify(&here, &[], A_START + 10, skew),
            Err(LinkError::Invalid),
            "{name}"
        );
    }
}

#[test]
fn rotation_tries_every_key_passed() {
    for format in [
        LinkFormat::SecureToken,
        LinkFormat::Nginx,
        LinkFormat::Wowza,
    ] {
        let old = SigningKey::new("old", "first", KeyOptions::defaults(format)).unwrap();
        let new = SigningKey::new("new", "second", KeyOptions::defaults(format)).unwrap();
        let request = IssueRequest {
            ip: match format {
                LinkFormat::Wowza => None,
                _ => net("203.0.113.7"),
            },
            ..issue_request("news")
        };
        for (signer, other) in [(&old, &new), (&new, &old)] {
            let query = issue(signer, &request, A_START).unwrap();
            let req = self::request("news", None, &query);
            let both = [old.clone(), new.clone()];
            assert_eq!(
                verify(&req, &both, A_START, 60).unwrap().key_id,
                signer.id()
            );
            // A disabled key is not passed: its links are refused.
            assert_eq!(
                verify(&req, std::slice::from_ref(other), A_START, 60),
                Err(LinkError::Invalid)
            );
            // The key whose signature holds tells why it refuses.
            assert_eq!(verify(&req, &both, A_END + 61, 60), Err(LinkError::Expired));
        }
    }
    // Native links name their key.
    let k1 = SigningKey::new("k1", "first", KeyOptions::Playgate).unwrap();
    let k2 = SigningKey::new("k2", "second", KeyOptions::Playgate).unwrap();
    let query = issue(&k2, &issue_request("news"), A_START).unwrap();
    let req = request("news", None, &query);
    assert_eq!(
        verify(&req, &[k1.clone(), k2.clone()], A_START, 60)
            .unwrap()
            .key_id,
        "k2"
    );
    assert_eq!(verify(&req, &[k1], A_START, 60), Err(LinkError::Invalid));
    // A key of another format with the same id does not take a native link.
    let impostor =
        SigningKey::new("k2", "second", KeyOptions::defaults(LinkFormat::Nginx)).unwrap();
    assert_eq!(
        verify(&req, &[impostor], A_START, 60),
        Err(LinkError::Invalid)
    );
}

#[test]
fn links_are_found_by_their_parameters() {
    let wowza = key_json(LinkFormat::Wowza, "x", json!({"prefix": "zhash"}));
    let akamai = key_json(LinkFormat::Akamai, "00", json!({"param": "hdnts"}));
    let keys = [wowza, akamai];
    let hash = "08d619464b3d7d1d33b79d6f83f02cfcf9541795";
    for (query, found) in [
        ("pglink=v1.k1.x.y", Some(LinkFormat::Playgate)),
        ("?a=1&pglink=", Some(LinkFormat::Playgate)),
        (
            &format!("token={hash}-a1b2c3d4-1893456000-1893452400") as &str,
            Some(LinkFormat::SecureToken),
        ),
        ("token=Sx7dwmJ1rMX0A6QOz9Y5S4z8K5bfb9RXyEUg0tbeBZI", None),
        ("token=abc-def-1-2", None),
        ("md5=abc&expires=1", Some(LinkFormat::Nginx)),
        ("expires=1", None),
        ("md5=abc", None),
        (
            "wowzatokenendtime=1&wowzatokenhash=abc",
            Some(LinkFormat::Wowza),
        ),
        ("zhashendtime=1&zhashhash=abc", Some(LinkFormat::Wowza)),
        ("wowzatokenendtime=1", None),
        ("__token__=exp=1~hmac=00", Some(LinkFormat::Akamai)),
        ("hdnts=exp=1~hmac=00", Some(LinkFormat::Akamai)),
        ("", None),
        ("token=&user_id=alice", None),
    ] {
        assert_eq!(find_link(query, &keys), found, "{query}");
    }
    // Without the keys, only the default names are known.
    assert_eq!(find_link("zhashendtime=1&zhashhash=abc", &[]), None);
    assert_eq!(find_link("hdnts=exp=1~hmac=00", &[]), None);
}

#[test]
fn what_a_format_cannot_carry_is_an_issue_error() {
    use LinkFormat::*;
    let key = |format, options| key_json(format, "00aa", options);
    let alice = Login::parse("alice").unwrap();
    let base = issue_request("news");
    let with_ip = IssueRequest {
        ip: net("203.0.113.7"),
        ..base
    };
    for (key, request, error) in [
        (key(Nginx, json!({})), base, IssueError::NeedsIp),
        (key(SecureToken, json!({})), base, IssueError::NeedsIp),
        (
            key(Wowza, json!({"check_ip": true})),
            base,
            IssueError::NeedsIp,
        ),
        (
            key(Wowza, json!({})),
            with_ip,
            IssueError::IpNotCarried(Wowza),
        ),
        (
            key(SecureToken, json!({"check_ip": false})),
            with_ip,
            IssueError::IpNotCarried(SecureToken),
        ),
        (
            key(
                Nginx,
                json!({"template": "$secure_link_expires$uri $secret"}),
            ),
            with_ip,
            IssueError::IpNotCarried(Nginx),
        ),
        (
            key(SecureToken, json!({})),
            IssueRequest {
                ip: net("203.0.113.0/24"),
                ..base
            },
            IssueError::NotAnAddress(SecureToken),
        ),
        (
            key(Akamai, json!({})),
            IssueRequest {
                ip: net("2001:db8::/64"),
                ..base
            },
            IssueError::NotAnAddress(Akamai),
        ),
        (
            key(Akamai, json!({})),
            IssueRequest {
                user: Some(&alice),
                ..base
            },
            IssueError::UserNotCarried,
        ),
        (
            key(Wowza, json!({})),
            IssueRequest {
                user: Some(&alice),
                ..base
            },
            IssueError::UserNotCarried,
        ),
        (
            key(SecureToken, json!({})),
            IssueRequest {
                once: true,
                ..with_ip
            },
            IssueError::OnceNotCarried,
        ),
        (
            key(Nginx, json!({})),
            IssueRequest {
                not_before: Some(A_START),
                ..with_ip
            },
            IssueError::NotBeforeNotCarried,
        ),
        (
            key(Playgate, json!({})),
            IssueRequest {
                expires_at: A_START,
                ..base
            },
            IssueError::Window,
        ),
        (
            key(Playgate, json!({})),
            IssueRequest {
                not_before: Some(A_END),
                ..base
            },
            IssueError::Window,
        ),
        (
            key(Playgate, json!({})),
            IssueRequest { stream: "", ..base },
            IssueError::EmptyStream,
        ),
        (
            key(Nginx, json!({})),
            IssueRequest {
                uri: Some("/../etc/passwd"),
                ..with_ip
            },
            IssueError::Uri("an absolute path that stays under /"),
        ),
        (
            key(Nginx, json!({})),
            IssueRequest {
                uri: Some("/live/news/index.m3u8?x=1"),
                ..with_ip
            },
            IssueError::Uri("a path, without query or fragment"),
        ),
        (
            key(Akamai, json!({})),
            IssueRequest {
                uri: Some("/live/~news/*"),
                ..base
            },
            IssueError::Uri(
                "normalised absolute paths or globs, !-separated, without ~ & # % + or spaces",
            ),
        ),
        (
            key(Akamai, json!({})),
            IssueRequest {
                uri: Some("/live/news/*!relative"),
                ..base
            },
            IssueError::Uri(
                "normalised absolute paths or globs, !-separated, without ~ & # % + or spaces",
            ),
        ),
    ] {
        assert_eq!(
            issue(&key, &request, A_START),
            Err(error.clone()),
            "{error}"
        );
        assert!(!error.to_string().contains('\n'));
    }
    // A native link takes a network, and a user and once.
    let playgate = key(Playgate, json!({}));
    let full = IssueRequest {
        ip: net("2001:db8::/64"),
        user: Some(&alice),
        once: true,
        ..base
    };
    let query = issue(&playgate, &full, A_START).unwrap();
    let mut req = request("news", None, &query);
    req.client_ip = "2001:db8::42".parse().unwrap();
    let link = verify(&req, &[playgate], A_START, 0).unwrap();
    assert_eq!(link.user, Some(alice));
    assert_eq!(link.once_nonce.as_ref().map(String::len), Some(22));
}

#[test]
fn garbage_never_panics_and_is_invalid() {
    let keys: Vec<SigningKey> = LinkFormat::ALL
        .into_iter()
        .map(|format| {
            let secret = if format == LinkFormat::Akamai {
                "00"
            } else {
                "s"
            };
            let options = match format {
                LinkFormat::SecureToken => json!({"subject": "path"}),
                _ => json!({}),
            };
            key_json(format, secret, options)
        })
        .collect();
    let long = "9".repeat(100_000);
    let queries = [
        "pglink=v1.playgate-1.%ff%fe.%00".to_string(),
        "pglink=v1.playgate-1.....".to_string(),
        "pglink=v1.playgate-1.eyJ9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        format!("token={}-{long}-{long}-{long}", "a".repeat(40)),
        "token=%C0%80aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-s-1-1".to_string(),
        format!("md5={long}&expires={long}"),
        "md5=====&expires=1".to_string(),
        "md5=%&expires=%%".to_string(),
        format!("wowzatokenhash=%ff&wowzatokenendtime={long}"),
        "wowzatokenhash==&wowzatokenendtime=1&wowzatoken%ff=1".to_string(),
        "__token__=~~~~hmac=~".to_string(),
        "__token__=exp=1~acl=~hmac=zz".to_string(),
        format!("__token__=exp={long}~acl=*~hmac=00"),
        "&&&===&&&".to_string(),
        "é=é&pglink=é".to_string(),
    ];
    for query in &queries {
        for path in [None, Some("/a/b"), Some("../x"), Some("")] {
            let req = LinkRequest {
                stream: "é",
                path,
                client_ip: "::".parse().unwrap(),
                query,
            };
            assert_eq!(
                verify(&req, &keys, 0, 60),
                Err(LinkError::Invalid),
                "{query}"
            );
            let _ = find_link(query, &keys);
        }
    }
}

#[test]
fn errors_name_their_reasons_only() {
    assert_eq!(LinkError::Invalid.reason(), "link_invalid");
    assert_eq!(LinkError::Expired.reason(), "link_expired");
    assert_eq!(LinkError::IpMismatch.reason(), "ip_mismatch");
    assert_eq!(LinkError::Expired.to_string(), "link_expired");
    for format in LinkFormat::ALL {
        assert_eq!(LinkFormat::parse(format.as_str()), Some(format));
        assert_eq!(
            serde_json::to_value(format).unwrap(),
            json!(format.as_str())
        );
    }
    assert_eq!(LinkFormat::parse("Playgate"), None);
}
