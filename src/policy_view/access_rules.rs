//! The enabled access rules of the snapshot (SPEC §10), compiled for the
//! hot path: every refresh runs them (SPEC §2 step 3), so a request looks
//! up only the rules that can match it instead of walking the list. Each
//! rule is filed under one condition it does not negate whose values can be
//! looked up exactly (networks by prefix, AS numbers, countries, exact
//! streams, dialects, protocols); a request gathers the rules filed under
//! its own values, plus the few that could not be filed, and checks them in
//! position order. First match wins.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

use super::prefix::FastMap;
use crate::domain::access_rule::{AccessRuleRecord, RuleConditions, CONDITIONS};
use crate::domain::{canonical_ip, canonical_network, Glob, RuleAction};

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
    /// The conditions' globs, each made ready once.
    streams: Vec<Glob>,
    referers: Vec<Glob>,
    user_agents: Vec<Glob>,
    /// The negated conditions, read for every condition of every candidate.
    negated: Negated,
}

/// A set of `CONDITIONS` names, one bit each.
#[derive(Clone, Copy, Debug, Default)]
struct Negated(u16);

impl Negated {
    const NETWORKS: Negated = Negated::bit("networks");
    const COUNTRIES: Negated = Negated::bit("countries");
    const ASNS: Negated = Negated::bit("asns");
    const USER_AGENTS: Negated = Negated::bit("user_agents");
    const REFERERS: Negated = Negated::bit("referers");
    const STREAMS: Negated = Negated::bit("streams");
    const PROTOCOLS: Negated = Negated::bit("protocols");
    const DIALECTS: Negated = Negated::bit("dialects");

    /// A name's bit, found when the program is compiled.
    const fn bit(name: &str) -> Negated {
        let mut at = 0;
        while at < CONDITIONS.len() {
            // The names are lower case: the one string comparison a const fn has.
            if name.eq_ignore_ascii_case(CONDITIONS[at]) {
                return Negated(1 << at);
            }
            at += 1;
        }
        panic!("not a condition name");
    }

    fn of(conditions: &RuleConditions) -> Negated {
        let bits = CONDITIONS
            .iter()
            .enumerate()
            .filter(|(_, name)| conditions.negated(name))
            .fold(0, |bits, (at, _)| bits | 1 << at);
        Negated(bits)
    }

    fn has(self, condition: Negated) -> bool {
        self.0 & condition.0 != 0
    }
}

/// At most this many candidate lists are merged in place; a request that
/// gathers more (rules filed under very many prefix lengths) sorts a copy.
const MERGED_LISTS: usize = 16;

#[derive(Debug, Default)]
pub struct AccessRules {
    /// In position order; the indexes below hold places in this list.
    rules: Vec<Compiled>,
    /// (prefix length, is IPv6, network → rules), longest first.
    by_network: Vec<(u8, bool, FastMap<IpNet, Vec<u32>>)>,
    by_asn: FastMap<u32, Vec<u32>>,
    by_country: FastMap<[u8; 2], Vec<u32>>,
    by_stream: FastMap<String, Vec<u32>>,
    /// Stream globs by the text before their first `*` (`sport/` of
    /// `sport/*`: a territory lock), and the lengths of those prefixes.
    by_stream_prefix: FastMap<String, Vec<u32>>,
    stream_prefix_lengths: Vec<usize>,
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
                negated: Negated::of(&record.conditions),
                streams: globs(&record.conditions.streams),
                referers: globs(&record.conditions.referers),
                user_agents: globs(&record.conditions.user_agents),
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
        } else if usable("streams", !c.streams.is_empty())
            && c.streams.iter().all(|s| !s.starts_with('*'))
        {
            // A stream the glob matches starts with its literal prefix.
            for stream in &c.streams {
                let prefix = stream.split('*').next().unwrap_or_default();
                let places = self.by_stream_prefix.entry(prefix.to_string()).or_default();
                // Two patterns of one rule with one prefix: filed once.
                if places.last() != Some(&place) {
                    places.push(place);
                }
                if !self.stream_prefix_lengths.contains(&prefix.len()) {
                    self.stream_prefix_lengths.push(prefix.len());
                }
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
        let mut candidates = Candidates::default();
        let mut gather = |places| candidates.add(places);
        gather(Some(&self.unfiled));
        for (len, v6, networks) in &self.by_network {
            if *v6 != ip.is_ipv6() {
                continue;
            }
            if let Ok(network) = IpNet::new(ip, *len) {
                gather(networks.get(&network.trunc()));
            }
        }
        gather(self.by_asn.get(&subject.asn));
        gather(self.by_country.get(&subject.country));
        gather(self.by_stream.get(subject.stream));
        for &len in &self.stream_prefix_lengths {
            if let Some(prefix) = subject.stream.get(..len) {
                gather(self.by_stream_prefix.get(prefix));
            }
        }
        gather(self.by_dialect.get(subject.dialect));
        gather(self.by_protocol.get(subject.protocol));
        // Lower-cased once, and only if a candidate looks at it.
        let mut user_agent: Option<Cow<str>> = None;
        let mut decides = |place: u32| {
            let rule = &self.rules[place as usize];
            rule.matches(subject, ip, &mut user_agent)
                .then_some(RuleMatch {
                    id: rule.id,
                    action: rule.action,
                })
        };
        let Candidates {
            mut lists,
            gathered,
            overflow,
        } = candidates;
        if !overflow.is_empty() {
            let mut places: Vec<u32> = lists
                .iter()
                .chain(&overflow)
                .flat_map(|list| list.iter().copied())
                .collect();
            places.sort_unstable();
            places.dedup();
            return places.into_iter().find_map(decides);
        }
        // Merged in position order without a copy: the lowest head next,
        // a place filed under several lists checked once.
        let lists = &mut lists[..gathered];
        loop {
            let place = lists
                .iter()
                .filter_map(|list| list.first())
                .min()
                .copied()?;
            for list in lists.iter_mut() {
                if list.first() == Some(&place) {
                    *list = &list[1..];
                }
            }
            if let Some(found) = decides(place) {
                return Some(found);
            }
        }
    }
}

/// The lists of places a request gathered, each in position order.
struct Candidates<'a> {
    lists: [&'a [u32]; MERGED_LISTS],
    gathered: usize,
    overflow: Vec<&'a [u32]>,
}

impl Default for Candidates<'_> {
    fn default() -> Self {
        Candidates {
            lists: [&[]; MERGED_LISTS],
            gathered: 0,
            overflow: Vec::new(),
        }
    }
}

impl<'a> Candidates<'a> {
    fn add(&mut self, places: Option<&'a Vec<u32>>) {
        match places {
            Some(places) if self.gathered < MERGED_LISTS => {
                self.lists[self.gathered] = places;
                self.gathered += 1;
            }
            Some(places) => self.overflow.push(places),
            None => {}
        }
    }
}

impl Compiled {
    fn matches<'s>(
        &self,
        s: &RuleSubject<'s>,
        ip: IpAddr,
        user_agent: &mut Option<Cow<'s, str>>,
    ) -> bool {
        let c = &self.conditions;
        // Each condition the rule has: any value matches, or, negated, none.
        let holds = |condition: Negated, any: bool| any != self.negated.has(condition);
        if !c.networks.is_empty()
            && !holds(
                Negated::NETWORKS,
                // Stored canonical (parse_network): IPv4-mapped as IPv4.
                c.networks.iter().any(|n| n.contains(&ip)),
            )
        {
            return false;
        }
        if !self.countries.is_empty()
            && !holds(Negated::COUNTRIES, self.countries.contains(&s.country))
        {
            return false;
        }
        if !c.asns.is_empty() && !holds(Negated::ASNS, c.asns.contains(&s.asn)) {
            return false;
        }
        if !c.streams.is_empty()
            && !holds(
                Negated::STREAMS,
                self.streams.iter().any(|glob| glob.matches(s.stream)),
            )
        {
            return false;
        }
        if !c.protocols.is_empty()
            && !holds(
                Negated::PROTOCOLS,
                c.protocols.iter().any(|p| p == s.protocol),
            )
        {
            return false;
        }
        if !c.dialects.is_empty()
            && !holds(Negated::DIALECTS, c.dialects.iter().any(|d| d == s.dialect))
        {
            return false;
        }
        if !c.referers.is_empty() {
            // Starts only: refreshes and segments carry no referer.
            let Some(host) = s.referer_host else {
                return false;
            };
            if !holds(
                Negated::REFERERS,
                self.referers.iter().any(|glob| glob.matches(host)),
            ) {
                return false;
            }
        }
        if !c.user_agents.is_empty() {
            let agent = user_agent.get_or_insert_with(|| lower_case(s.user_agent));
            if !holds(
                Negated::USER_AGENTS,
                self.user_agents.iter().any(|glob| glob.matches(agent)),
            ) {
                return false;
            }
        }
        true
    }
}

fn globs(patterns: &[String]) -> Vec<Glob> {
    patterns.iter().map(|pattern| Glob::new(pattern)).collect()
}

/// The patterns are lower case; a user agent is copied only when it has
/// capitals ("Mozilla/5.0", "VLC/3.0" do; many players' do not).
fn lower_case(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
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
