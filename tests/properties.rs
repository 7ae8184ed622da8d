//! Property tests over the parsers and the pure policy: no input makes them
//! panic, and the prefix table agrees with a plain scan.

use std::net::IpAddr;

use ipnet::IpNet;
use playgate::decision::{Credential, PlayRequest};
use playgate::domain::glob_matches;
use playgate::domain::parse_network;
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
