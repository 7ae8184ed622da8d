//! Steps 1–5 of the decision: a pure function of the request, the policy
//! snapshot and the clock. No I/O here; bcrypt is verified by the caller and
//! passed in, because it must run off the async executor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::{hash_token, PlayRequest, Reason};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    User,
    Observer,
    Admin,
}

impl UserKind {
    pub fn parse(text: &str) -> Option<UserKind> {
        match text {
            "user" => Some(UserKind::User),
            "observer" => Some(UserKind::Observer),
            "admin" => Some(UserKind::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "user",
            UserKind::Observer => "observer",
            UserKind::Admin => "admin",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// Rows as the store reads them; the snapshot is built from these.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: i64,
    pub login: String,
    pub password_hash: Option<String>,
    pub kind: UserKind,
    pub ips: Vec<IpNet>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_sessions: Option<i32>,
    pub enabled: bool,
    pub package_ids: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub hash: [u8; 32],
    pub user_id: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct PackageRecord {
    pub id: i64,
    pub streams: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct IpRuleRecord {
    pub network: IpNet,
    pub action: RuleAction,
}

/// A user as the decision sees it: packages already flattened into patterns.
#[derive(Debug)]
pub struct PolicyUser {
    pub id: i64,
    pub login: String,
    pub password_hash: Option<String>,
    pub kind: UserKind,
    pub ips: Vec<IpNet>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_sessions: Option<i32>,
    pub enabled: bool,
    /// None = no packages = every stream.
    pub stream_patterns: Option<Vec<String>>,
}

impl PolicyUser {
    pub fn may_watch(&self, stream: &str) -> bool {
        match &self.stream_patterns {
            None => true,
            Some(patterns) => patterns.iter().any(|pattern| glob_matches(pattern, stream)),
        }
    }
}

/// Networks grouped by prefix length, looked up from the most specific down:
/// a lookup costs one hash probe per distinct prefix length, however many
/// networks there are.
#[derive(Debug)]
pub struct PrefixTable<T> {
    /// (prefix length, is IPv6, networks), longest prefix first.
    levels: Vec<(u8, bool, HashMap<IpNet, T>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable { levels: Vec::new() }
    }
}

impl<T> PrefixTable<T> {
    /// Keeps the first value inserted for a network.
    pub fn insert(&mut self, network: IpNet, value: T) {
        let network = network.trunc();
        let key = (network.prefix_len(), matches!(network, IpNet::V6(_)));
        let position = match self
            .levels
            .iter()
            .position(|(len, v6, _)| (*len, *v6) == key)
        {
            Some(position) => position,
            None => {
                self.levels.push((key.0, key.1, HashMap::new()));
                self.levels.sort_by_key(|level| std::cmp::Reverse(level.0));
                self.levels
                    .iter()
                    .position(|(len, v6, _)| (*len, *v6) == key)
                    .expect("just inserted")
            }
        };
        self.levels[position].2.entry(network).or_insert(value);
    }

    /// The value of the most specific network containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        let ip = canonical_ip(ip);
        let is_v6 = ip.is_ipv6();
        self.levels
            .iter()
            .filter(|(_, v6, _)| *v6 == is_v6)
            .find_map(|(len, _, networks)| {
                let network = IpNet::new(ip, *len).ok()?.trunc();
                networks.get(&network)
            })
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what dual-stack sockets
/// report) are matched as the IPv4 address they are.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

struct TokenEntry {
    user: Arc<PolicyUser>,
    expires_at: Option<DateTime<Utc>>,
}

/// Everything steps 1–5 need, in memory.
#[derive(Default)]
pub struct PolicySnapshot {
    users_by_login: HashMap<String, Arc<PolicyUser>>,
    tokens: HashMap<[u8; 32], TokenEntry>,
    deny_rules: PrefixTable<()>,
    allow_rules: PrefixTable<()>,
    users_by_ip: PrefixTable<Arc<PolicyUser>>,
}

impl PolicySnapshot {
    pub fn build(
        users: Vec<UserRecord>,
        tokens: Vec<TokenRecord>,
        packages: Vec<PackageRecord>,
        ip_rules: Vec<IpRuleRecord>,
    ) -> PolicySnapshot {
        let packages: HashMap<i64, Vec<String>> =
            packages.into_iter().map(|p| (p.id, p.streams)).collect();
        let mut snapshot = PolicySnapshot::default();
        let mut users_by_id = HashMap::with_capacity(users.len());
        let mut users = users;
        // Lowest id first, so that of two users bound to the same network the older wins.
        users.sort_by_key(|user| user.id);
        for record in users {
            let stream_patterns = (!record.package_ids.is_empty()).then(|| {
                record
                    .package_ids
                    .iter()
                    .filter_map(|id| packages.get(id))
                    .flatten()
                    .cloned()
                    .collect()
            });
            let user = Arc::new(PolicyUser {
                id: record.id,
                login: record.login,
                password_hash: record.password_hash,
                kind: record.kind,
                ips: record.ips,
                expires_at: record.expires_at,
                max_sessions: record.max_sessions,
                enabled: record.enabled,
                stream_patterns,
            });
            for network in &user.ips {
                snapshot.users_by_ip.insert(*network, Arc::clone(&user));
            }
            users_by_id.insert(user.id, Arc::clone(&user));
            snapshot.users_by_login.insert(user.login.clone(), user);
        }
        for token in tokens {
            if let Some(user) = users_by_id.get(&token.user_id) {
                snapshot.tokens.insert(
                    token.hash,
                    TokenEntry {
                        user: Arc::clone(user),
                        expires_at: token.expires_at,
                    },
                );
            }
        }
        for rule in ip_rules {
            match rule.action {
                RuleAction::Deny => snapshot.deny_rules.insert(rule.network, ()),
                RuleAction::Allow => snapshot.allow_rules.insert(rule.network, ()),
            }
        }
        snapshot
    }

    pub fn user(&self, login: &str) -> Option<&Arc<PolicyUser>> {
        self.users_by_login.get(login)
    }

    pub fn user_count(&self) -> usize {
        self.users_by_login.len()
    }

    /// Step 1–2 alone: whether an IP rule settles the request before identity.
    pub fn ip_rule(&self, ip: IpAddr) -> Option<RuleAction> {
        if self.deny_rules.lookup(ip).is_some() {
            Some(RuleAction::Deny)
        } else if self.allow_rules.lookup(ip).is_some() {
            Some(RuleAction::Allow)
        } else {
            None
        }
    }
}

/// Who steps 1–5 let through.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// None for an anonymous viewer admitted by an allow rule.
    pub user: Option<Arc<PolicyUser>>,
    pub reason: Reason,
}

/// The outcome of the bcrypt check the caller ran for `login:password`
/// (None when the request carried no password to check).
pub type PasswordVerified = Option<bool>;

/// SPEC §2 steps 1–5.
pub fn evaluate(
    request: &PlayRequest,
    snapshot: &PolicySnapshot,
    now: DateTime<Utc>,
    password_verified: PasswordVerified,
) -> Result<Admitted, Reason> {
    let ip = request.client_ip;
    // 1–2. IP rules: deny first, whatever the credentials.
    match snapshot.ip_rule(ip) {
        Some(RuleAction::Deny) => return Err(Reason::IpDenied),
        Some(RuleAction::Allow) => {
            return Ok(Admitted {
                user: None,
                reason: Reason::IpAllowed,
            })
        }
        None => {}
    }

    // 3. Identity.
    let credentials = &request.credentials;
    let (user, by_secret) = if let Some(token) = credentials.token.as_deref() {
        let entry = snapshot
            .tokens
            .get(&hash_token(token))
            .ok_or(Reason::UnknownToken)?;
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(Reason::TokenExpired);
        }
        (Arc::clone(&entry.user), true)
    } else if credentials.login.is_some() || credentials.password.is_some() {
        let login = credentials.login.as_deref().ok_or(Reason::BadCredentials)?;
        let user = snapshot.user(login).ok_or(Reason::BadCredentials)?;
        if password_verified != Some(true) {
            return Err(Reason::BadCredentials);
        }
        (Arc::clone(user), true)
    } else {
        let user = snapshot
            .users_by_ip
            .lookup(ip)
            .ok_or(Reason::NoCredentials)?;
        (Arc::clone(user), false)
    };

    check_account(&user, ip, &request.stream, now, by_secret)?;
    Ok(Admitted {
        user: Some(user),
        reason: Reason::Ok,
    })
}

/// Steps 4–5 for an identified user: account state, the IP binding of a
/// user identified by token or password, packages.
fn check_account(
    user: &PolicyUser,
    ip: IpAddr,
    stream: &str,
    now: DateTime<Utc>,
    identified_by_secret: bool,
) -> Result<(), Reason> {
    if !user.enabled {
        return Err(Reason::UserDisabled);
    }
    if user.expires_at.is_some_and(|at| at <= now) {
        return Err(Reason::UserExpired);
    }
    if identified_by_secret && !user.ips.is_empty() {
        let ip = canonical_ip(ip);
        if !user.ips.iter().any(|network| network.contains(&ip)) {
            return Err(Reason::IpMismatch);
        }
    }
    if !user.may_watch(stream) {
        return Err(Reason::StreamNotAllowed);
    }
    Ok(())
}

/// A viewer continuing a session without presenting its credentials again
/// (HLS segments): what a refresh re-checks, for the session's user — deny
/// rules, account state, IP binding, packages (steps 1, 4, 5). None when the
/// user no longer exists.
pub fn recheck_session_user(
    snapshot: &PolicySnapshot,
    login: &str,
    ip: IpAddr,
    stream: &str,
    now: DateTime<Utc>,
) -> Option<(Arc<PolicyUser>, Result<(), Reason>)> {
    let user = Arc::clone(snapshot.user(login)?);
    let verdict = if snapshot.ip_rule(ip) == Some(RuleAction::Deny) {
        Err(Reason::IpDenied)
    } else {
        check_account(&user, ip, stream, now, true)
    };
    Some((user, verdict))
}

/// `*` matches any run of characters, `/` included; everything else is literal.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = rest.split_last().expect("pattern contains '*'");
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Credentials;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn user(id: i64, login: &str) -> UserRecord {
        UserRecord {
            id,
            login: login.into(),
            password_hash: None,
            kind: UserKind::User,
            ips: vec![],
            expires_at: None,
            max_sessions: None,
            enabled: true,
            package_ids: vec![],
        }
    }

    fn token(user_id: i64, clear: &str) -> TokenRecord {
        TokenRecord {
            hash: hash_token(clear),
            user_id,
            expires_at: None,
        }
    }

    fn net(text: &str) -> IpNet {
        crate::config::parse_network(text).unwrap()
    }

    fn rule(network: &str, action: RuleAction) -> IpRuleRecord {
        IpRuleRecord {
            network: net(network),
            action,
        }
    }

    fn play(stream: &str, ip: &str, credentials: Credentials) -> PlayRequest {
        let mut request = PlayRequest::new("decide", stream, ip.parse().unwrap());
        request.credentials = credentials;
        request
    }

    fn with_token(clear: &str) -> Credentials {
        Credentials {
            token: Some(clear.into()),
            ..Default::default()
        }
    }

    fn with_password(login: &str, password: &str) -> Credentials {
        Credentials {
            login: Some(login.into()),
            password: Some(password.into()),
            ..Default::default()
        }
    }

    /// A small world: alice (token, package "sports"), bob (expired),
    /// carol (disabled), dave (bound to 10.1.0.0/16, token), erin (IP-only, 10.1.2.0/24).
    fn world() -> PolicySnapshot {
        let mut alice = user(1, "alice");
        alice.package_ids = vec![10];
        let mut bob = user(2, "bob");
        bob.expires_at = Some(now() - Duration::seconds(1));
        let mut carol = user(3, "carol");
        carol.enabled = false;
        let mut dave = user(4, "dave");
        dave.ips = vec![net("10.1.0.0/16")];
        let mut erin = user(5, "erin");
        erin.ips = vec![net("10.1.2.0/24"), net("2001:db8:1::/48")];
        let mut expired_token = token(1, "old");
        expired_token.expires_at = Some(now() - Duration::seconds(5));
        PolicySnapshot::build(
            vec![alice, bob, carol, dave, erin],
            vec![
                token(1, "alice-token"),
                expired_token,
                token(2, "bob-token"),
                token(3, "carol-token"),
                token(4, "dave-token"),
            ],
            vec![PackageRecord {
                id: 10,
                streams: vec!["sport/*".into(), "espn".into(), "*_hd".into()],
            }],
            vec![
                rule("198.51.100.0/24", RuleAction::Deny),
                rule("198.51.0.0/16", RuleAction::Allow),
                rule("203.0.113.7", RuleAction::Allow),
                rule("2001:db8:dead::/48", RuleAction::Deny),
            ],
        )
    }

    fn reason(result: Result<Admitted, Reason>) -> Reason {
        match result {
            Ok(admitted) => admitted.reason,
            Err(reason) => reason,
        }
    }

    #[test]
    fn each_step_yields_its_reason() {
        let snap = world();
        let cases = [
            (
                play("espn", "198.51.100.9", with_token("alice-token")),
                Reason::IpDenied,
            ),
            (
                play("anything", "198.51.7.1", Credentials::default()),
                Reason::IpAllowed,
            ),
            (
                play("anything", "203.0.113.7", Credentials::default()),
                Reason::IpAllowed,
            ),
            (
                play("espn", "192.0.2.1", with_token("nope")),
                Reason::UnknownToken,
            ),
            (
                play("espn", "192.0.2.1", with_token("old")),
                Reason::TokenExpired,
            ),
            (
                play("espn", "192.0.2.1", Credentials::default()),
                Reason::NoCredentials,
            ),
            (
                play("espn", "192.0.2.1", with_token("bob-token")),
                Reason::UserExpired,
            ),
            (
                play("espn", "192.0.2.1", with_token("carol-token")),
                Reason::UserDisabled,
            ),
            (
                play("espn", "192.0.2.1", with_token("dave-token")),
                Reason::IpMismatch,
            ),
            (
                play("espn", "10.1.200.1", with_token("dave-token")),
                Reason::Ok,
            ),
            (
                play("cnn", "192.0.2.1", with_token("alice-token")),
                Reason::StreamNotAllowed,
            ),
            (
                play("sport/f1", "192.0.2.1", with_token("alice-token")),
                Reason::Ok,
            ),
            (
                play("movie_hd", "192.0.2.1", with_token("alice-token")),
                Reason::Ok,
            ),
            (
                play("movie", "2001:db8:dead::1", Credentials::default()),
                Reason::IpDenied,
            ),
        ];
        for (request, expected) in cases {
            let got = reason(evaluate(&request, &snap, now(), None));
            assert_eq!(got, expected, "{request:?}");
        }
    }

    #[test]
    fn passwords_are_checked_by_the_caller() {
        let snap = world();
        let request = play("espn", "192.0.2.1", with_password("alice", "pw"));
        assert_eq!(
            reason(evaluate(&request, &snap, now(), Some(true))),
            Reason::Ok
        );
        assert_eq!(
            reason(evaluate(&request, &snap, now(), Some(false))),
            Reason::BadCredentials
        );
        let unknown = play("espn", "192.0.2.1", with_password("mallory", "pw"));
        assert_eq!(
            reason(evaluate(&unknown, &snap, now(), Some(true))),
            Reason::BadCredentials
        );
        let login_only = play(
            "espn",
            "192.0.2.1",
            Credentials {
                login: Some("alice".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            reason(evaluate(&login_only, &snap, now(), None)),
            Reason::BadCredentials
        );
    }

    #[test]
    fn ip_authorization_prefers_the_most_specific_network() {
        let snap = world();
        let in_both = evaluate(
            &play("x", "10.1.2.3", Credentials::default()),
            &snap,
            now(),
            None,
        )
        .unwrap();
        assert_eq!(in_both.user.unwrap().login, "erin");
        let only_dave = evaluate(
            &play("x", "10.1.3.3", Credentials::default()),
            &snap,
            now(),
            None,
        )
        .unwrap();
        assert_eq!(only_dave.user.unwrap().login, "dave");
        let v6 = evaluate(
            &play("x", "2001:db8:1::42", Credentials::default()),
            &snap,
            now(),
            None,
        )
        .unwrap();
        assert_eq!(v6.user.unwrap().login, "erin");
        let mapped = evaluate(
            &play("x", "::ffff:10.1.2.3", Credentials::default()),
            &snap,
            now(),
            None,
        )
        .unwrap();
        assert_eq!(mapped.user.unwrap().login, "erin");
    }

    #[test]
    fn expiry_is_exclusive_of_the_instant() {
        let snap = world();
        let just_before = now() - Duration::seconds(2);
        let request = play("espn", "192.0.2.1", with_token("bob-token"));
        assert_eq!(
            reason(evaluate(&request, &snap, just_before, None)),
            Reason::Ok
        );
    }

    #[test]
    fn packages_without_streams_allow_nothing() {
        let mut alice = user(1, "alice");
        alice.package_ids = vec![99];
        let snap = PolicySnapshot::build(
            vec![alice],
            vec![token(1, "t")],
            vec![PackageRecord {
                id: 99,
                streams: vec![],
            }],
            vec![],
        );
        assert_eq!(
            reason(evaluate(
                &play("espn", "192.0.2.1", with_token("t")),
                &snap,
                now(),
                None
            )),
            Reason::StreamNotAllowed
        );
    }

    #[test]
    fn globs() {
        assert!(glob_matches("sport/*", "sport/espn"));
        assert!(glob_matches("sport/*", "sport/"));
        assert!(!glob_matches("sport/*", "sports/espn"));
        assert!(glob_matches("*_hd", "news_hd"));
        assert!(!glob_matches("*_hd", "news_sd"));
        assert!(glob_matches("a*b*c", "a-b-b-c"));
        assert!(!glob_matches("a*b*c", "a-c"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("ab*ab", "ab"[..].repeat(2).as_str()));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("espn", "espn"));
        assert!(!glob_matches("espn", "espn2"));
    }

    #[test]
    fn prefix_table_most_specific_wins() {
        let mut table = PrefixTable::default();
        table.insert(net("10.0.0.0/8"), "wide");
        table.insert(net("10.1.0.0/16"), "narrow");
        table.insert(net("10.1.0.0/16"), "ignored duplicate");
        table.insert(net("::/0"), "any v6");
        assert_eq!(table.lookup("10.1.9.9".parse().unwrap()), Some(&"narrow"));
        assert_eq!(table.lookup("10.2.9.9".parse().unwrap()), Some(&"wide"));
        assert_eq!(table.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(
            table.lookup("2001:db8::1".parse().unwrap()),
            Some(&"any v6")
        );
    }
}
