//! Property tests over the parsers and the pure policy: no input makes them
//! panic, the prefix table agrees with a plain scan, and a signed link with
//! any one byte changed is refused.

use std::net::IpAddr;

use ipnet::IpNet;
use playgate::decision::{Credential, PlayRequest};
use playgate::domain::glob_matches;
use playgate::domain::parse_network;
use playgate::domain::Login;
use playgate::links::{self, IssueRequest, KeyOptions, LinkFormat, LinkRequest, SigningKey};
use playgate::policy_view::PrefixTable;
use proptest::prelude::*;

fn naive_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| naive_glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && naive_glob(rest, &text[1..]),
    }
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // Addresses near each other, so that networks overlap often.
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::from([10, a, b, 1])),
    ]
}

fn any_network() -> impl Strategy<Value = IpNet> {
    (any_ip(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpNet::new(ip, len % (max + 1)).unwrap().trunc()
    })
}

proptest! {
    #[test]
    fn glob_agrees_with_a_backtracking_matcher(pattern in "[ab*/]{0,8}", text in "[ab/]{0,10}") {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(glob_matches(&pattern, &text), naive_glob(&p, &t));
    }

    #[test]
    fn glob_never_panics(pattern in ".{0,40}", text in ".{0,40}") {
        let _ = glob_matches(&pattern, &text);
    }

    #[test]
    fn prefix_table_finds_the_most_specific_network(
        networks in prop::collection::vec(any_network(), 0..40),
        probes in prop::collection::vec(any_ip(), 1..20),
    ) {
        let mut table = PrefixTable::default();
        for (index, network) in networks.iter().enumerate() {
            table.insert(*network, index);
        }
        for ip in probes {
            // A plain scan: the longest prefix containing the IP, first inserted on ties.
            let expected = networks
                .iter()
                .enumerate()
                .filter(|(_, net)| net.contains(&ip))
                .max_by_key(|(index, net)| (net.prefix_len(), std::cmp::Reverse(*index)))
                .map(|(index, net)| (*net, index));
            let found = table.lookup(ip).map(|index| (networks[*index], *index));
            match (expected, found) {
                (None, None) => {}
                (Some((net, _)), Some((found_net, _))) => prop_assert_eq!(net, found_net),
                other => prop_assert!(false, "{:?} for {}", other, ip),
            }
        }
    }

    #[test]
    fn network_parsing_never_panics(text in ".{0,60}") {
        if let Some(network) = parse_network(&text) {
            prop_assert_eq!(network, network.trunc());
        }
    }

    #[test]
    fn session_keys_never_panic_and_hide_tokens(
        stream in ".{0,30}",
        token in "[a-z0-9]{8,20}",
        session in proptest::option::of(".{0,300}"),
        ip in any_ip(),
    ) {
        let mut request = PlayRequest::new("decide", stream, ip);
        request.credential = Credential::Token(token.clone());
        request.session = session;
        let key = request.session_key();
        prop_assert!(key.len() <= 300);
        if key.starts_with("h:") {
            prop_assert!(!key.contains(&token));
        }
    }
}

/// One key of each format and option that changes what is signed, with the
/// address and user its links carry.
fn link_key(case: usize) -> (SigningKey, Option<&'static str>, bool) {
    use serde_json::json;
    let configurations = [
        (
            LinkFormat::Playgate,
            json!({}),
            Some("203.0.113.0/24"),
            true,
        ),
        (LinkFormat::Playgate, json!({}), None, false),
        (
            LinkFormat::SecureToken,
            json!({}),
            Some("203.0.113.7"),
            true,
        ),
        (
            LinkFormat::SecureToken,
            json!({"check_ip": false}),
            None,
            false,
        ),
        (
            LinkFormat::SecureToken,
            json!({"subject": "path"}),
            Some("203.0.113.7"),
            false,
        ),
        (LinkFormat::Nginx, json!({}), Some("203.0.113.7"), false),
        (LinkFormat::Wowza, json!({}), None, false),
        (
            LinkFormat::Wowza,
            json!({"algorithm": "sha384", "check_ip": true}),
            Some("203.0.113.7"),
            false,
        ),
        (
            LinkFormat::Wowza,
            json!({"algorithm": "sha512", "prefix": "zhash"}),
            None,
            false,
        ),
        (LinkFormat::Akamai, json!({}), Some("203.0.113.7"), false),
        (
            LinkFormat::Akamai,
            json!({"algorithm": "sha1"}),
            None,
            false,
        ),
        (
            LinkFormat::Akamai,
            json!({"algorithm": "md5", "param": "hdnts"}),
            None,
            false,
        ),
    ];
    let (format, options, ip, user) = configurations[case % configurations.len()].clone();
    let secret = links::generate_secret(format);
    let key = SigningKey::new(
        "k1",
        &secret,
        KeyOptions::from_json(format, &options).unwrap(),
    )
    .unwrap();
    (key, ip, user)
}

const LINK_KEYS: usize = 12;

proptest! {
    #[test]
    fn a_link_with_one_byte_changed_is_refused(
        case in 0..LINK_KEYS,
        stream in "[a-z0-9_]{1,16}",
        not_before in proptest::option::of(0i64..1_000),
        lifetime in 1i64..100_000,
        position in any::<prop::sample::Index>(),
        replacement in 0x20u8..0x7f,
    ) {
        let (key, ip, with_user) = link_key(case);
        let now = 1_900_000_000;
        let alice = Login::parse("alice").unwrap();
        let nginx = key.format() == LinkFormat::Nginx;
        let path = format!("/live/{stream}/index.m3u8");
        let issue = IssueRequest {
            stream: &stream,
            uri: Some(&path),
            user: with_user.then_some(&alice),
            expires_at: now + lifetime,
            not_before: (!nginx).then(|| not_before.map(|nb| now - nb)).flatten(),
            ip: ip.map(|ip| parse_network(ip).unwrap()),
            once: with_user && key.format() == LinkFormat::Playgate,
        };
        let query = links::issue(&key, &issue, now).unwrap();
        let request = |query| LinkRequest {
            stream: &stream,
            path: Some(&path),
            client_ip: "203.0.113.7".parse().unwrap(),
            query,
        };
        let keys = std::slice::from_ref(&key);
        prop_assert!(links::verify(&request(&query), keys, now, 60).is_ok());

        let mut bytes = query.clone().into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != replacement);
        // Wowza's padding is optional on input, and `&` leaves an empty
        // parameter: `…hash=X=` and `…hash=X&` are the same link.
        prop_assume!(!(key.format() == LinkFormat::Wowza && bytes[at] == b'=' && replacement == b'&'
            && bytes[at..].iter().all(|&b| b == b'=' || b == b'&')));
        bytes[at] = replacement;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(
            links::verify(&request(&tampered), keys, now, 60).is_err(),
            "{} accepted", tampered
        );
    }

    #[test]
    fn link_verification_never_panics(
        case in 0..LINK_KEYS,
        query in "[a-zA-Z0-9_.~=&%!*/+-]{0,200}",
        path in proptest::option::of("[/a-z.*?]{0,30}"),
        now in any::<i64>(),
        skew in any::<u64>(),
    ) {
        let (key, _, _) = link_key(case);
        let request = LinkRequest {
            stream: "news",
            path: path.as_deref(),
            client_ip: "203.0.113.7".parse().unwrap(),
            query: &query,
        };
        let _ = links::verify(&request, std::slice::from_ref(&key), now, skew);
        let _ = links::find_link(&query, std::slice::from_ref(&key));
    }
}
