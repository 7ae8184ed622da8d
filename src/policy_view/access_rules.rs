//! The enabled access rules of the snapshot (SPEC §10), compiled for the
//! hot path: every refresh runs them (SPEC §2 step 3), so a request looks
//! up only the rules that can match it instead of walking the list. Each
//! rule is filed under one condition it does not negate whose values can be
//! looked up exactly (networks by prefix, AS numbers, countries, exact
//! streams, dialects, protocols); a request gathers the rules filed under
//! its own values, plus the few that could not be filed, and checks them in
//! position order. First match wins.

use std::net::IpAddr;

use ipnet::IpNet;

use super::prefix::FastMap;
use crate::domain::access_rule::{AccessRuleRecord, RuleConditions};
use crate::domain::{canonical_ip, canonical_network, glob_matches, RuleAction};

/// What the rules look at in a request.
#[derive(Clone, Copy, Debug)]
pub struct RuleSubject<'a> {
    pub ip: IpAddr,
    /// Upper-case ISO code, `XX` when unknown.
    pub country: [u8; 2],
    /// 0 when unknown.
    pub asn: u32,
    pub user_agent: &'a str,
    /// The referer's host (`""`: none sent) on a start; None on a refresh or
    /// a segment, where rules with a referer condition do not apply.
    pub referer_host: Option<&'a str>,
    pub stream: &'a str,
    pub protocol: &'a str,
    pub dialect: &'a str,
}

/// The rule that decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    pub id: i64,
    pub action: RuleAction,
}

#[derive(Debug)]
struct Compiled {
    id: i64,
    action: RuleAction,
    conditions: RuleConditions,
    countries: Vec<[u8; 2]>,
}

#[derive(Debug, Default)]
pub struct AccessRules {
    /// In position order; the indexes below hold places in this list.
    rules: Vec<Compiled>,
    /// (prefix length, is IPv6, network → rules), longest first.
    by_network: Vec<(u8, bool, FastMap<IpNet, Vec<u32>>)>,
    by_asn: FastMap<u32, Vec<u32>>,
    by_country: FastMap<[u8; 2], Vec<u32>>,
    by_stream: FastMap<String, Vec<u32>>,
    by_dialect: FastMap<String, Vec<u32>>,
    by_protocol: FastMap<String, Vec<u32>>,
    /// Rules with no condition that could be looked up: checked always.
    unfiled: Vec<u32>,
    needs_country: bool,
    needs_asn: bool,
}

impl AccessRules {
    /// From the enabled rules, in any order (they are sorted by position).
    pub fn build(mut records: Vec<AccessRuleRecord>) -> AccessRules {
        records.sort_by_key(|rule| (rule.position, rule.id));
        let mut set = AccessRules::default();
        for (place, record) in records.into_iter().enumerate() {
            let place = place as u32;
            let c = &record.conditions;
            set.needs_country |= !c.countries.is_empty();
            set.needs_asn |= !c.asns.is_empty();
            set.file(place, c);
            let countries = c
                .countries
                .iter()
                .filter_map(|code| code.as_bytes().try_into().ok())
                .collect();
            set.rules.push(Compiled {
                id: record.id,
                action: record.action,
                conditions: record.conditions,
                countries,
            });
        }
        set.by_network
            .sort_by_key(|(len, v6, _)| (*v6, u8::MAX - len));
        set
    }

    fn file(&mut self, place: u32, c: &RuleConditions) {
        let usable = |name: &str, has: bool| has && !c.negated(name);
        if usable("networks", !c.networks.is_empty()) {
            for network in &c.networks {
                let network = canonical_network(*network);
                let (len, v6) = (network.prefix_len(), matches!(network, IpNet::V6(_)));
                let level = match self
                    .by_network
                    .iter()
                    .position(|(l, six, _)| *l == len && *six == v6)
                {
                    Some(at) => at,
                    None => {
                        self.by_network.push((len, v6, FastMap::default()));
                        self.by_network.len() - 1
                    }
                };
                self.by_network[level]
                    .2
                    .entry(network)
                    .or_default()
                    .push(place);
            }
        } else if usable("asns", !c.asns.is_empty()) {
            for asn in &c.asns {
                self.by_asn.entry(*asn).or_default().push(place);
            }
        } else if usable("countries", !c.countries.is_empty()) {
            for code in &c.countries {
                if let Ok(code) = code.as_bytes().try_into() {
                    self.by_country.entry(code).or_default().push(place);
                }
            }
        } else if usable("streams", !c.streams.is_empty())
            && c.streams.iter().all(|s| !s.contains('*'))
        {
            for stream in &c.streams {
                self.by_stream
                    .entry(stream.clone())
                    .or_default()
                    .push(place);
            }
        } else if usable("dialects", !c.dialects.is_empty()) {
            for dialect in &c.dialects {
                self.by_dialect
                    .entry(dialect.clone())
                    .or_default()
                    .push(place);
            }
        } else if usable("protocols", !c.protocols.is_empty()) {
            for protocol in &c.protocols {
                self.by_protocol
                    .entry(protocol.clone())
                    .or_default()
                    .push(place);
            }
        } else {
            self.unfiled.push(place);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Some rule looks at the client's country: worth a GeoIP lookup.
    pub fn needs_country(&self) -> bool {
        self.needs_country
    }

    pub fn needs_asn(&self) -> bool {
        self.needs_asn
    }

    /// Some rule has a condition on countries or ASNs.
    pub fn uses_geoip(&self) -> bool {
        self.needs_country || self.needs_asn
    }

    /// The first rule, in position order, that the request matches.
    pub fn first_match(&self, subject: &RuleSubject) -> Option<RuleMatch> {
        if self.rules.is_empty() {
            return None;
        }
        let ip = canonical_ip(subject.ip);
        let mut candidates: Vec<u32> = self.unfiled.clone();
        for (len, v6, networks) in &self.by_network {
            if *v6 != ip.is_ipv6() {
                continue;
            }
            let Ok(network) = IpNet::new(ip, *len) else {
                continue;
            };
            if let Some(places) = networks.get(&network.trunc()) {
                candidates.extend_from_slice(places);
            }
        }
        let mut gather = |places: Option<&Vec<u32>>| {
            if let Some(places) = places {
                candidates.extend_from_slice(places);
            }
        };
        gather(self.by_asn.get(&subject.asn));
        gather(self.by_country.get(&subject.country));
        gather(self.by_stream.get(subject.stream));
        gather(self.by_dialect.get(subject.dialect));
        gather(self.by_protocol.get(subject.protocol));
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_unstable();
        candidates.dedup();
        // Lower-cased once, and only if a candidate looks at it.
        let mut user_agent: Option<String> = None;
        candidates.iter().find_map(|&place| {
            let rule = &self.rules[place as usize];
            rule.matches(subject, ip, &mut user_agent)
                .then_some(RuleMatch {
                    id: rule.id,
                    action: rule.action,
                })
        })
    }
}

impl Compiled {
    fn matches(&self, s: &RuleSubject, ip: IpAddr, user_agent: &mut Option<String>) -> bool {
        let c = &self.conditions;
        // Each condition the rule has: any value matches, or, negated, none.
        let holds = |name: &str, any: bool| any != c.negated(name);
        if !c.networks.is_empty()
            && !holds(
                "networks",
                // Stored canonical (parse_network): IPv4-mapped as IPv4.
                c.networks.iter().any(|n| n.contains(&ip)),
            )
        {
            return false;
        }
        if !self.countries.is_empty() && !holds("countries", self.countries.contains(&s.country)) {
            return false;
        }
        if !c.asns.is_empty() && !holds("asns", c.asns.contains(&s.asn)) {
            return false;
        }
        if !c.streams.is_empty()
            && !holds(
                "streams",
                c.streams.iter().any(|p| glob_matches(p, s.stream)),
            )
        {
            return false;
        }
        if !c.protocols.is_empty()
            && !holds("protocols", c.protocols.iter().any(|p| p == s.protocol))
        {
            return false;
        }
        if !c.dialects.is_empty() && !holds("dialects", c.dialects.iter().any(|d| d == s.dialect)) {
            return false;
        }
        if !c.referers.is_empty() {
            // Starts only: refreshes and segments carry no referer.
            let Some(host) = s.referer_host else {
                return false;
            };
            if !holds("referers", c.referers.iter().any(|p| glob_matches(p, host))) {
                return false;
            }
        }
        if !c.user_agents.is_empty() {
            let agent = user_agent.get_or_insert_with(|| s.user_agent.to_lowercase());
            if !holds(
                "user_agents",
                c.user_agents.iter().any(|p| glob_matches(p, agent)),
            ) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access_rule::{conditions, RawConditions};

    fn rule(id: i64, action: RuleAction, raw: RawConditions) -> AccessRuleRecord {
        AccessRuleRecord {
            id,
            position: id as i32,
            action,
            conditions: conditions(&raw).unwrap(),
        }
    }

    fn subject<'a>(ip: &str, country: &str, stream: &'a str) -> RuleSubject<'a> {
        RuleSubject {
            ip: ip.parse().unwrap(),
            country: country.as_bytes().try_into().unwrap(),
            asn: 0,
            user_agent: "VLC/3.0",
            referer_host: Some(""),
            stream,
            protocol: "hls",
            dialect: "forward-auth",
        }
    }

    #[test]
    fn first_match_wins_and_an_allow_shields_later_denies() {
        let rules = AccessRules::build(vec![
            rule(
                2,
                RuleAction::Deny,
                RawConditions {
                    streams: vec!["sport/*".into()],
                    countries: vec!["RU".into(), "KZ".into()],
                    negate: vec!["countries".into()],
                    ..Default::default()
                },
            ),
            rule(
                1,
                RuleAction::Allow,
                RawConditions {
                    networks: vec!["192.0.2.0/24".into()],
                    ..Default::default()
                },
            ),
        ]);
        let id = |s: &RuleSubject| rules.first_match(s).map(|m| (m.id, m.action));
        assert_eq!(
            id(&subject("192.0.2.9", "DE", "sport/1")),
            Some((1, RuleAction::Allow))
        );
        assert_eq!(
            id(&subject("198.51.100.1", "DE", "sport/1")),
            Some((2, RuleAction::Deny))
        );
        assert_eq!(id(&subject("198.51.100.1", "RU", "sport/1")), None);
        assert_eq!(id(&subject("198.51.100.1", "DE", "news")), None);
        assert_eq!(
            id(&subject("::ffff:192.0.2.9", "XX", "x")),
            Some((1, RuleAction::Allow))
        );
    }

    #[test]
    fn a_referer_rule_applies_to_starts_only() {
        let rules = AccessRules::build(vec![rule(
            1,
            RuleAction::Deny,
            RawConditions {
                referers: vec!["".into(), "*.example.com".into()],
                negate: vec!["referers".into()],
                ..Default::default()
            },
        )]);
        let mut start = subject("192.0.2.1", "XX", "a");
        start.referer_host = Some("evil.test");
        assert!(rules.first_match(&start).is_some());
        start.referer_host = Some("www.example.com");
        assert!(rules.first_match(&start).is_none());
        start.referer_host = Some("");
        assert!(rules.first_match(&start).is_none());
        start.referer_host = None;
        assert!(
            rules.first_match(&start).is_none(),
            "a refresh is not denied"
        );
    }

    #[test]
    fn user_agents_match_in_any_case_and_empty_means_none_sent() {
        let rules = AccessRules::build(vec![rule(
            1,
            RuleAction::Deny,
            RawConditions {
                user_agents: vec!["".into(), "*bot*".into()],
                ..Default::default()
            },
        )]);
        let mut s = subject("192.0.2.1", "XX", "a");
        for (agent, denied) in [("", true), ("GoogleBot/2", true), ("VLC/3.0", false)] {
            s.user_agent = agent;
            assert_eq!(rules.first_match(&s).is_some(), denied, "{agent}");
        }
    }
}
