//! Property tests over the parsers and the pure policy: no input makes them
//! panic, the prefix table agrees with a plain scan, and a signed link with
//! any one byte changed is refused.

use std::net::IpAddr;

use ipnet::IpNet;
use playgate::decision::{Credential, PlayRequest};
use playgate::domain::access_rule::{self, AccessRuleRecord, RuleConditions};
use playgate::domain::glob_matches;
use playgate::domain::parse_network;
use playgate::domain::Login;
use playgate::domain::RuleAction;
use playgate::links::{self, IssueRequest, KeyOptions, LinkFormat, LinkRequest, SigningKey};
use playgate::policy_view::{AccessRules, PrefixTable, RuleSubject};
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

// ---- Access rules (issue 20): the compiled rule set against a plain scan ----

fn pick<T: Clone + std::fmt::Debug>(pool: &'static [T]) -> impl Strategy<Value = Vec<T>> {
    // Absent two times in three, else one to three values of the pool.
    prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(prop::sample::select(pool), 1..=3),
    ]
}

fn any_rule_conditions() -> impl Strategy<Value = RuleConditions> {
    (
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(
                (0u8..4, 0u8..4, prop::sample::select(&[8u8, 16, 24, 32][..])).prop_map(
                    |(a, b, len)| IpNet::new(IpAddr::from([10, a, b, 1]), len).unwrap().trunc()
                ),
                1..=3
            ),
        ],
        pick(&["RU", "KZ", "XX", "DE"]),
        pick(&[0u32, 1, 2, 3]),
        pick(&["", "*bot*", "vlc*", "*"]),
        pick(&["", "*.example.com", "example.com"]),
        pick(&["news", "sport/*", "*", "a", "sp*", "sport/1*hd", "new*"]),
        pick(&["hls", "rtmp"]),
        pick(&["decide", "astra"]),
        any::<u8>(),
    )
        .prop_map(
            |(
                networks,
                countries,
                asns,
                agents,
                referers,
                streams,
                protocols,
                dialects,
                negate_bits,
            )| {
                let text = |values: Vec<&str>| values.into_iter().map(String::from).collect();
                let mut c = RuleConditions {
                    networks,
                    countries: text(countries),
                    asns,
                    user_agents: text(agents),
                    referers: text(referers),
                    streams: text(streams),
                    protocols: text(protocols),
                    dialects: text(dialects),
                    negate: Vec::new(),
                };
                c.negate = access_rule::CONDITIONS
                    .iter()
                    .enumerate()
                    .filter(|(bit, name)| negate_bits & (1 << bit) != 0 && c.has(name))
                    .map(|(_, name)| name.to_string())
                    .collect();
                c
            },
        )
        .prop_filter("a rule has a condition", |c| !c.is_empty())
}

/// SPEC §10 read literally: every condition the rule has must match; a
/// condition matches when any value does, or, negated, when none does;
/// a referer condition never matches outside a start.
fn naive_rule_matches(c: &RuleConditions, s: &RuleSubject) -> bool {
    let chars = |text: &str| text.chars().collect::<Vec<char>>();
    let glob = |pattern: &str, text: &str| naive_glob(&chars(pattern), &chars(text));
    let country = std::str::from_utf8(&s.country).unwrap();
    let agent = s.user_agent.to_lowercase();
    let conditions: [(&str, bool, bool); 8] = [
        (
            "networks",
            !c.networks.is_empty(),
            c.networks.iter().any(|n| n.contains(&s.ip)),
        ),
        (
            "countries",
            !c.countries.is_empty(),
            c.countries.iter().any(|x| x == country),
        ),
        ("asns", !c.asns.is_empty(), c.asns.contains(&s.asn)),
        (
            "user_agents",
            !c.user_agents.is_empty(),
            c.user_agents.iter().any(|p| glob(p, &agent)),
        ),
        ("referers", !c.referers.is_empty(), false),
        (
            "streams",
            !c.streams.is_empty(),
            c.streams.iter().any(|p| glob(p, s.stream)),
        ),
        (
            "protocols",
            !c.protocols.is_empty(),
            c.protocols.iter().any(|p| p == s.protocol),
        ),
        (
            "dialects",
            !c.dialects.is_empty(),
            c.dialects.iter().any(|d| d == s.dialect),
        ),
    ];
    conditions.iter().all(|&(name, has, any)| {
        if !has {
            return true;
        }
        if name == "referers" {
            return match s.referer_host {
                None => false,
                Some(host) => c.referers.iter().any(|p| glob(p, host)) != c.negated(name),
            };
        }
        any != c.negated(name)
    })
}

proptest! {
    #[test]
    fn access_rules_agree_with_a_plain_scan(
        rules in prop::collection::vec((any_rule_conditions(), any::<bool>(), 1i32..20), 0..12),
        probes in prop::collection::vec(
            (
                (0u8..4, 0u8..4, any::<u8>()),
                prop::sample::select(&["RU", "KZ", "XX", "DE"][..]),
                0u32..4,
                prop::sample::select(&["", "GoogleBot/2", "VLC/3", "x"][..]),
                prop::sample::select(&[None, Some(""), Some("a.example.com"), Some("example.com"), Some("evil.test")][..]),
                prop::sample::select(&["news", "sport/1", "sport/1_hd", "a", "b", "s"][..]),
                prop::sample::select(&["hls", "rtmp"][..]),
                prop::sample::select(&["decide", "astra"][..]),
            ),
            1..20,
        ),
    ) {
        let records: Vec<AccessRuleRecord> = rules
            .iter()
            .enumerate()
            .map(|(i, (conditions, allow, position))| AccessRuleRecord {
                id: i as i64 + 1,
                position: *position,
                action: if *allow { RuleAction::Allow } else { RuleAction::Deny },
                conditions: conditions.clone(),
            })
            .collect();
        let set = AccessRules::build(records.clone());
        let mut in_order = records;
        in_order.sort_by_key(|rule| (rule.position, rule.id));
        for ((a, b, c), country, asn, agent, referer, stream, protocol, dialect) in probes {
            let subject = RuleSubject {
                ip: IpAddr::from([10, a, b, c]),
                country: country.as_bytes().try_into().unwrap(),
                asn,
                user_agent: agent,
                referer_host: referer,
                stream,
                protocol,
                dialect,
            };
            let expected = in_order
                .iter()
                .find(|rule| naive_rule_matches(&rule.conditions, &subject))
                .map(|rule| (rule.id, rule.action));
            let found = set.first_match(&subject).map(|m| (m.id, m.action));
            prop_assert_eq!(found, expected, "{:?}", subject);
        }
    }
}
