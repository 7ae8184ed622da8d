//! Access rules (SPEC §10): the row, its conditions and their validation.
//! How a set of rules is matched against a request is the policy view's
//! (`policy_view::access_rules`), which compiles these records.

use ipnet::IpNet;

use super::records::RuleAction;
use super::validate::{self, clip, ValidationError};

/// The condition names, in the order the API lists them.
pub const CONDITIONS: [&str; 8] = [
    "networks",
    "countries",
    "asns",
    "user_agents",
    "referers",
    "streams",
    "protocols",
    "dialects",
];

/// The dialects' route names (`dialects` condition values).
pub const DIALECTS: [&str; 8] = [
    "decide",
    "astra",
    "flussonic",
    "nginx-rtmp",
    "srs",
    "mediamtx",
    "ovenmediaengine",
    "forward-auth",
];

/// An access rule's conditions, validated: an empty list is a condition the
/// rule does not have. Text values are as the admin gave them, except that
/// user-agent globs, referer hosts and country codes are kept in one case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleConditions {
    pub networks: Vec<IpNet>,
    /// Upper case, assigned ISO 3166-1 alpha-2 codes or `XX`.
    pub countries: Vec<String>,
    pub asns: Vec<u32>,
    /// Lower case globs; `""` = no user agent.
    pub user_agents: Vec<String>,
    /// Lower case host names or `*.`-globs; `""` = no referer.
    pub referers: Vec<String>,
    pub streams: Vec<String>,
    pub protocols: Vec<String>,
    pub dialects: Vec<String>,
    /// Names from `CONDITIONS`, each one the rule has.
    pub negate: Vec<String>,
}

impl RuleConditions {
    /// Whether the rule has the named condition (a name from `CONDITIONS`).
    pub fn has(&self, name: &str) -> bool {
        match name {
            "networks" => !self.networks.is_empty(),
            "countries" => !self.countries.is_empty(),
            "asns" => !self.asns.is_empty(),
            "user_agents" => !self.user_agents.is_empty(),
            "referers" => !self.referers.is_empty(),
            "streams" => !self.streams.is_empty(),
            "protocols" => !self.protocols.is_empty(),
            "dialects" => !self.dialects.is_empty(),
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        CONDITIONS.iter().all(|name| !self.has(name))
    }

    pub fn negated(&self, name: &str) -> bool {
        self.negate.iter().any(|n| n == name)
    }
}

/// An enabled rule as the store reads it for the policy view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRuleRecord {
    pub id: i64,
    pub position: i32,
    pub action: RuleAction,
    pub conditions: RuleConditions,
}

/// The conditions as the API takes them (absent = empty).
#[derive(Clone, Debug, Default)]
pub struct RawConditions {
    pub networks: Vec<String>,
    pub countries: Vec<String>,
    pub asns: Vec<i64>,
    pub user_agents: Vec<String>,
    pub referers: Vec<String>,
    pub streams: Vec<String>,
    pub protocols: Vec<String>,
    pub dialects: Vec<String>,
    pub negate: Vec<String>,
}

/// Values per condition: a rule is a policy line, not a database; a longer
/// list (a whole country's networks) belongs in the IP lists.
const MAX_VALUES: usize = 10_000;
const MAX_VALUE_LEN: usize = 1024;

/// Validates every condition (422 naming the field); a rule with none is
/// refused with field `conditions`.
pub fn conditions(raw: &RawConditions) -> Result<RuleConditions, ValidationError> {
    let checked = RuleConditions {
        networks: {
            bounded("networks", raw.networks.len())?;
            validate::networks("networks", &raw.networks)?
        },
        countries: countries("countries", &raw.countries)?,
        asns: {
            bounded("asns", raw.asns.len())?;
            let mut asns = Vec::new();
            for &asn in &raw.asns {
                let asn = u32::try_from(asn).map_err(|_| {
                    ValidationError::new(
                        "asns",
                        format!("{asn} is not an AS number (0 to 4294967295)"),
                    )
                })?;
                push_new(&mut asns, asn);
            }
            asns
        },
        user_agents: texts("user_agents", &raw.user_agents, |value| {
            printable(value)
                .then(|| value.to_lowercase())
                .ok_or("control characters")
        })?,
        referers: texts("referers", &raw.referers, referer_pattern)?,
        // Globs as package patterns take them (SPEC §10).
        streams: {
            bounded("streams", raw.streams.len())?;
            validate::patterns(&raw.streams)?
        },
        protocols: texts("protocols", &raw.protocols, |value| {
            let word = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            word.then(|| value.to_string())
                .ok_or("not a protocol name (lower case letters, digits, '-'; hls, rtmp, dash, …)")
        })?,
        dialects: texts("dialects", &raw.dialects, |value| {
            DIALECTS
                .contains(&value)
                .then(|| value.to_string())
                .ok_or("not a dialect (decide, astra, flussonic, nginx-rtmp, srs, mediamtx, ovenmediaengine, forward-auth)")
        })?,
        negate: Vec::new(),
    };
    if checked.is_empty() {
        return Err(ValidationError::new(
            "conditions",
            "a rule needs at least one condition (networks, countries, asns, user_agents, referers, streams, protocols or dialects)",
        ));
    }
    let mut negate = Vec::new();
    for name in &raw.negate {
        if !CONDITIONS.contains(&name.as_str()) {
            return Err(ValidationError::new(
                "negate",
                format!(
                    "'{}' is not a condition (networks, countries, asns, user_agents, referers, streams, protocols, dialects)",
                    clip(name)
                ),
            ));
        }
        if !checked.has(name) {
            return Err(ValidationError::new(
                "negate",
                format!("'{name}' is negated but the rule has no {name} condition"),
            ));
        }
        push_new(&mut negate, name.clone());
    }
    Ok(RuleConditions { negate, ..checked })
}

fn bounded(field: &'static str, count: usize) -> Result<(), ValidationError> {
    if count > MAX_VALUES {
        return Err(ValidationError::new(
            field,
            format!("more than {MAX_VALUES} values"),
        ));
    }
    Ok(())
}

fn push_new<T: PartialEq>(values: &mut Vec<T>, value: T) {
    if !values.contains(&value) {
        values.push(value);
    }
}

fn printable(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

fn texts(
    field: &'static str,
    values: &[String],
    check: impl Fn(&str) -> Result<String, &'static str>,
) -> Result<Vec<String>, ValidationError> {
    bounded(field, values.len())?;
    let mut checked = Vec::with_capacity(values.len());
    for value in values {
        if value.len() > MAX_VALUE_LEN {
            return Err(ValidationError::new(
                field,
                format!("'{}…' is longer than {MAX_VALUE_LEN} bytes", clip(value)),
            ));
        }
        let value = check(value)
            .map_err(|why| ValidationError::new(field, format!("'{}': {why}", clip(value))))?;
        push_new(&mut checked, value);
    }
    Ok(checked)
}

/// A referer condition value: a host name (`example.com`), a glob of hosts
/// (`*.example.com`), or `""` for "no referer".
fn referer_pattern(value: &str) -> Result<String, &'static str> {
    let host = value.to_ascii_lowercase();
    let valid = host.is_empty()
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | ':'));
    if !valid {
        return Err("not a host name or *.host glob (no scheme, no path)");
    }
    Ok(host)
}

/// The host a `Referer` header names, lower case (`https://www.Example.com:8443/x`
/// → `www.example.com`); empty when there is none.
pub fn referer_host(referer: &str) -> String {
    let rest = referer.split_once("://").map_or(referer, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        // An IPv6 literal keeps its colons.
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.to_ascii_lowercase()
}

/// An assigned ISO 3166-1 alpha-2 code or `XX` (unknown), upper case.
pub fn country(field: &'static str, value: &str) -> Result<String, ValidationError> {
    let code = value.to_ascii_uppercase();
    let known = code == "XX"
        || (code.len() == 2
            && ISO_3166_ALPHA2
                .split(' ')
                .any(|assigned| assigned == code.as_str()));
    if known {
        Ok(code)
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "'{}' is not an ISO 3166-1 alpha-2 country code (or XX for unknown)",
                clip(value)
            ),
        ))
    }
}

/// Country codes: a list of them, each validated, duplicates dropped.
pub fn countries(field: &'static str, values: &[String]) -> Result<Vec<String>, ValidationError> {
    bounded(field, values.len())?;
    let mut codes = Vec::new();
    for value in values {
        push_new(&mut codes, country(field, value)?);
    }
    Ok(codes)
}

/// The 249 officially assigned ISO 3166-1 alpha-2 codes (ISO 3166
/// Maintenance Agency, as of 2024).
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawConditions {
        RawConditions::default()
    }

    #[test]
    fn the_assigned_codes_are_249() {
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
        assert_eq!(country("c", "ru").unwrap(), "RU");
        assert_eq!(country("c", "XX").unwrap(), "XX");
        for bad in ["UK", "EU", "R", "RUS", "", "zz"] {
            assert_eq!(country("c", bad).unwrap_err().field, "c", "{bad}");
        }
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(RawConditions, &str)> = vec![
            (raw(), "conditions"),
            (
                RawConditions {
                    networks: vec!["10.0.0.0/33".into()],
                    ..raw()
                },
                "networks",
            ),
            (
                RawConditions {
                    countries: vec!["SU".into()],
                    ..raw()
                },
                "countries",
            ),
            (
                RawConditions {
                    asns: vec![-1],
                    ..raw()
                },
                "asns",
            ),
            (
                RawConditions {
                    asns: vec![1 << 32],
                    ..raw()
                },
                "asns",
            ),
            (
                RawConditions {
                    streams: vec!["sport/[ab]".into()],
                    ..raw()
                },
                "streams",
            ),
            (
                RawConditions {
                    referers: vec!["https://example.com/".into()],
                    ..raw()
                },
                "referers",
            ),
            (
                RawConditions {
                    dialects: vec!["wowza".into()],
                    ..raw()
                },
                "dialects",
            ),
            (
                RawConditions {
                    protocols: vec!["HLS".into()],
                    ..raw()
                },
                "protocols",
            ),
            (
                RawConditions {
                    streams: vec!["a".into()],
                    negate: vec!["country".into()],
                    ..raw()
                },
                "negate",
            ),
            (
                RawConditions {
                    streams: vec!["a".into()],
                    negate: vec!["countries".into()],
                    ..raw()
                },
                "negate",
            ),
        ];
        for (raw, field) in cases {
            assert_eq!(conditions(&raw).unwrap_err().field, field, "{raw:?}");
        }
    }

    #[test]
    fn values_are_kept_in_one_case_and_once() {
        let checked = conditions(&RawConditions {
            countries: vec!["ru".into(), "RU".into(), "kz".into()],
            user_agents: vec!["*Bot*".into(), "".into()],
            referers: vec!["*.Example.COM".into()],
            networks: vec!["192.0.2.7".into()],
            negate: vec!["countries".into(), "countries".into()],
            ..raw()
        })
        .unwrap();
        assert_eq!(checked.countries, ["RU", "KZ"]);
        assert_eq!(checked.user_agents, ["*bot*", ""]);
        assert_eq!(checked.referers, ["*.example.com"]);
        assert_eq!(checked.networks[0].to_string(), "192.0.2.7/32");
        assert_eq!(checked.negate, ["countries"]);
    }

    #[test]
    fn a_referer_is_read_for_its_host() {
        for (header, host) in [
            ("https://www.Example.com:8443/embed?x=1", "www.example.com"),
            ("http://user:pw@site.example/", "site.example"),
            ("https://[2001:db8::1]:443/", "2001:db8::1"),
            ("example.org/page", "example.org"),
            ("", ""),
        ] {
            assert_eq!(referer_host(header), host, "{header}");
        }
    }
}
