//! Steps 1–6 of the decision (SPEC §2): a pure function of the request, the
//! policy snapshot and the clock. No I/O here; bcrypt is verified by the
//! caller and passed in, because it must run off the async executor.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Credential, PlayRequest};
use crate::domain::{canonical_ip, hash_token, Reason, RuleAction};
use crate::links::{self, LinkError, LinkRequest};
use crate::policy_view::{PolicySnapshot, PolicyUser};

/// Who steps 1–5 let through.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// None for an anonymous viewer admitted by an allow rule or a link
    /// without a user.
    pub user: Option<Arc<PolicyUser>>,
    pub reason: Reason,
    /// The signed link that identified the viewer, if one did.
    pub link: Option<LinkGrant>,
}

/// What the engine must still check of a signed link (SPEC §9): whether it
/// may start a session, which needs the session state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkGrant {
    pub key_id: String,
    /// Past its window (signature good): it may only go on with the active
    /// session it started — a player reloading its playlist with it.
    pub expired: bool,
    /// A `once` link's nonce: the first start uses it up.
    pub once_nonce: Option<String>,
    /// Unix seconds; a once nonce is remembered until then.
    pub expires_at: i64,
}

/// A signed link's window is re-checked with this skew when it failed: a
/// link whose signature holds but whose window has passed (SPEC §9, "the
/// window gates the start only").
const ANY_TIME: u64 = u64::MAX / 4;

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
    if let Some(settled) = ip_rules(snapshot, ip) {
        return settled;
    }

    // 3. Identity.
    let (user, by_secret) = match &request.credential {
        Credential::Token(token) => {
            let entry = snapshot
                .token(&hash_token(token))
                .ok_or(Reason::UnknownToken)?;
            if entry.expires_at.is_some_and(|at| at <= now) {
                return Err(Reason::TokenExpired);
            }
            (Arc::clone(&entry.user), true)
        }
        Credential::Password { login, .. } => {
            let user = snapshot.user(login).ok_or(Reason::BadCredentials)?;
            if password_verified != Some(true) {
                return Err(Reason::BadCredentials);
            }
            (Arc::clone(user), true)
        }
        Credential::Incomplete { .. } => return Err(Reason::BadCredentials),
        Credential::None => {
            let user = snapshot.user_by_ip(ip).ok_or(Reason::NoCredentials)?;
            (Arc::clone(user), false)
        }
    };

    let country = request.geo.country;
    check_account(
        snapshot,
        &user,
        ip,
        country,
        &request.stream,
        now,
        by_secret,
    )?;
    Ok(Admitted {
        user: Some(user),
        reason: Reason::Ok,
        link: None,
    })
}

/// Steps 1–2: IP rules, deny first, whatever the credentials.
fn ip_rules(snapshot: &PolicySnapshot, ip: IpAddr) -> Option<Result<Admitted, Reason>> {
    match snapshot.ip_rule(ip)? {
        RuleAction::Deny => Some(Err(Reason::IpDenied)),
        RuleAction::Allow => Some(Ok(Admitted {
            user: None,
            reason: Reason::IpAllowed,
            link: None,
        })),
    }
}

/// Steps 1–5 for a request whose query carries a signed link (SPEC §9);
/// None when it carries none (`evaluate` decides it). The link identifies
/// the viewer in place of any token beside it: its user goes through every
/// account check, a link without one admits an anonymous viewer of what it
/// names.
pub fn evaluate_link(
    request: &PlayRequest,
    snapshot: &PolicySnapshot,
    now: DateTime<Utc>,
    skew: std::time::Duration,
) -> Option<Result<Admitted, Reason>> {
    // Most requests carry no query at all (segments, most hooks).
    if request.query.0.is_empty() {
        return None;
    }
    let keys = snapshot.link_keys();
    links::find_link(&request.query.0, keys)?;
    let ip = request.client_ip;
    if let Some(settled) = ip_rules(snapshot, ip) {
        return Some(settled);
    }
    let link_request = LinkRequest {
        stream: &request.stream,
        path: request.path.as_deref(),
        client_ip: ip,
        query: &request.query.0,
    };
    let unix = now.timestamp();
    let verified = match links::verify(&link_request, keys, unix, skew.as_secs()) {
        Ok(link) => Ok((link, false)),
        Err(LinkError::Expired) => links::verify(&link_request, keys, unix, ANY_TIME)
            .map(|link| (link, true))
            .map_err(|_| Reason::LinkExpired),
        Err(LinkError::Invalid) => Err(Reason::LinkInvalid),
        Err(LinkError::IpMismatch) => Err(Reason::IpMismatch),
    };
    Some(verified.and_then(|(link, expired)| {
        let grant = LinkGrant {
            key_id: link.key_id.clone(),
            expired,
            once_nonce: link.once_nonce.clone(),
            expires_at: link.expires_at,
        };
        let Some(login) = &link.user else {
            return Ok(Admitted {
                user: None,
                reason: Reason::Ok,
                link: Some(grant),
            });
        };
        // Signed for a user playgate does not have (any more).
        let user = Arc::clone(snapshot.user(login.as_str()).ok_or(Reason::LinkInvalid)?);
        check_account(
            snapshot,
            &user,
            ip,
            request.geo.country,
            &request.stream,
            now,
            true,
        )?;
        Ok(Admitted {
            user: Some(user),
            reason: Reason::Ok,
            link: Some(grant),
        })
    }))
}

/// Steps 4–5 for an identified user: account state, the IP binding of a
/// user identified by token or password, the user's countries, packages.
fn check_account(
    snapshot: &PolicySnapshot,
    user: &PolicyUser,
    ip: IpAddr,
    country: [u8; 2],
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
    if !user.countries.is_empty() && !user.countries.iter().any(|c| c.as_bytes() == country) {
        return Err(Reason::CountryMismatch);
    }
    if !snapshot.may_watch(user, stream) {
        return Err(Reason::StreamNotAllowed);
    }
    Ok(())
}

/// A viewer continuing a session without presenting its credentials again
/// (HLS segments): what a refresh re-checks, for the session's user — deny
/// rules, account state, IP binding, countries, packages (steps 1, 4, 5;
/// the engine checks the access rules of step 3). None when the user no
/// longer exists.
pub fn recheck_session_user(
    snapshot: &PolicySnapshot,
    login: &str,
    ip: IpAddr,
    country: [u8; 2],
    stream: &str,
    now: DateTime<Utc>,
) -> Option<(Arc<PolicyUser>, Result<(), Reason>)> {
    let user = Arc::clone(snapshot.user(login)?);
    let verdict = if snapshot.ip_rule(ip) == Some(RuleAction::Deny) {
        Err(Reason::IpDenied)
    } else {
        check_account(snapshot, &user, ip, country, stream, now, true)
    };
    Some((user, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        IpRuleRecord, PackageRecord, PolicyRecords, TokenRecord, UserKind, UserRecord,
    };
    use chrono::Duration;
    use ipnet::IpNet;

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
            max_devices: None,
            enabled: true,
            countries: vec![],
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
        crate::domain::parse_network(text).unwrap()
    }

    fn rule(network: &str, action: RuleAction) -> IpRuleRecord {
        IpRuleRecord {
            network: net(network),
            action,
            expires_at: None,
        }
    }

    fn play(stream: &str, ip: &str, credential: Credential) -> PlayRequest {
        let mut request = PlayRequest::new("decide", stream, ip.parse().unwrap());
        request.credential = credential;
        request
    }

    fn with_token(clear: &str) -> Credential {
        Credential::Token(clear.into())
    }

    fn with_password(login: &str, password: &str) -> Credential {
        Credential::Password {
            login: login.into(),
            password: password.into(),
        }
    }

    fn build(
        users: Vec<UserRecord>,
        tokens: Vec<TokenRecord>,
        packages: Vec<PackageRecord>,
        ip_rules: Vec<IpRuleRecord>,
    ) -> PolicySnapshot {
        PolicySnapshot::build(PolicyRecords {
            users,
            tokens,
            packages,
            ip_rules,
        })
    }

    /// A small world: alice (token, package "sports"), bob (expired),
    /// carol (disabled), dave (bound to 10.1.0.0/16, token), erin (IP-only, 10.1.2.0/24).
    fn world() -> PolicySnapshot {
        world_without(0)
    }

    /// `world()` less the user `id` and its tokens.
    fn world_without(id: i64) -> PolicySnapshot {
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
        build(
            vec![alice, bob, carol, dave, erin]
                .into_iter()
                .filter(|user| user.id != id)
                .collect(),
            vec![
                token(1, "alice-token"),
                expired_token,
                token(2, "bob-token"),
                token(3, "carol-token"),
                token(4, "dave-token"),
            ]
            .into_iter()
            .filter(|token| token.user_id != id)
            .collect(),
            vec![PackageRecord {
                id: 10,
                name: "sports".into(),
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
    fn a_stream_counts_against_every_package_that_matches_it() {
        let snap = build(
            vec![],
            vec![],
            vec![
                PackageRecord {
                    id: 1,
                    name: "sports".into(),
                    streams: vec!["sport/*".into()],
                },
                PackageRecord {
                    id: 2,
                    name: "hd".into(),
                    streams: vec!["*_hd".into(), "news".into()],
                },
                PackageRecord {
                    id: 3,
                    name: "kids".into(),
                    streams: vec!["cartoons".into()],
                },
            ],
            vec![],
        );
        assert_eq!(snap.packages_of_stream("sport/f1_hd"), ["hd", "sports"]);
        assert_eq!(snap.packages_of_stream("news"), ["hd"]);
        assert!(snap.packages_of_stream("weather").is_empty());
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
                play("anything", "198.51.7.1", Credential::None),
                Reason::IpAllowed,
            ),
            (
                play("anything", "203.0.113.7", Credential::None),
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
                play("espn", "192.0.2.1", Credential::None),
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
                play("movie", "2001:db8:dead::1", Credential::None),
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
            Credential::Incomplete {
                login: Some("alice".into()),
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
        let in_both =
            evaluate(&play("x", "10.1.2.3", Credential::None), &snap, now(), None).unwrap();
        assert_eq!(in_both.user.unwrap().login, "erin");
        let only_dave =
            evaluate(&play("x", "10.1.3.3", Credential::None), &snap, now(), None).unwrap();
        assert_eq!(only_dave.user.unwrap().login, "dave");
        let v6 = evaluate(
            &play("x", "2001:db8:1::42", Credential::None),
            &snap,
            now(),
            None,
        )
        .unwrap();
        assert_eq!(v6.user.unwrap().login, "erin");
        let mapped = evaluate(
            &play("x", "::ffff:10.1.2.3", Credential::None),
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
        let snap = build(
            vec![alice],
            vec![token(1, "t")],
            vec![PackageRecord {
                id: 99,
                name: "sports".into(),
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

    // ---- The overlay: users re-read one by one on top of the base ----

    fn who(result: Result<Admitted, Reason>) -> Result<String, Reason> {
        result.map(|admitted| admitted.user.map_or("-".into(), |u| u.login.clone()))
    }

    fn by_token(snap: &PolicySnapshot, clear: &str) -> Result<String, Reason> {
        who(evaluate(
            &play("espn", "10.1.2.3", with_token(clear)),
            snap,
            now(),
            None,
        ))
    }

    fn by_ip(snap: &PolicySnapshot, ip: &str) -> Result<String, Reason> {
        who(evaluate(
            &play("x", ip, Credential::None),
            snap,
            now(),
            None,
        ))
    }

    /// `world()` at version 10 (a full read that started then).
    fn world_at_10() -> PolicySnapshot {
        PolicySnapshot::default().with_full_read(world(), 10)
    }

    #[test]
    fn a_renamed_user_leaves_its_old_login() {
        let snap = world_at_10();
        let mut alice = user(1, "alicia");
        alice.package_ids = vec![10];
        let next = snap.with_users(11, &[1], vec![alice], vec![token(1, "alice-token")]);
        assert!(next.user("alice").is_none());
        assert_eq!(next.user("alicia").unwrap().id, 1);
        assert_eq!(by_token(&next, "alice-token"), Ok("alicia".into()));
        // Neighbours are untouched; the count did not change.
        assert_eq!(next.user("bob").unwrap().id, 2);
        assert_eq!(next.user_count(), 5);
        // A new user may take the freed login.
        let next = next.with_users(12, &[6], vec![user(6, "alice")], vec![]);
        assert_eq!(next.user("alice").unwrap().id, 6);
        assert_eq!(next.user_count(), 6);
    }

    #[test]
    fn a_deleted_token_is_unknown_and_a_moved_one_names_its_new_user() {
        let snap = world_at_10();
        let mut alice = user(1, "alice");
        alice.package_ids = vec![10];
        let next = snap.with_users(11, &[1], vec![alice.clone()], vec![]);
        assert_eq!(by_token(&next, "alice-token"), Err(Reason::UnknownToken));
        // Her other tokens went with the re-read too (none left).
        assert_eq!(by_token(&next, "old"), Err(Reason::UnknownToken));
        // dave's token moved to alice: both users are named by the change.
        let mut dave = user(4, "dave");
        dave.ips = vec![net("10.1.0.0/16")];
        let next = next.with_users(12, &[1, 4], vec![alice, dave], vec![token(1, "dave-token")]);
        assert_eq!(by_token(&next, "dave-token"), Ok("alice".into()));
        // A token of a user nobody re-read still works.
        assert_eq!(
            reason(evaluate(
                &play("espn", "192.0.2.1", with_token("carol-token")),
                &next,
                now(),
                None
            )),
            Reason::UserDisabled
        );
    }

    #[test]
    fn a_removed_ip_binding_no_longer_identifies() {
        let snap = world_at_10();
        assert_eq!(by_ip(&snap, "10.1.3.3"), Ok("dave".into()));
        let next = snap.with_users(
            11,
            &[4],
            vec![user(4, "dave")],
            vec![token(4, "dave-token")],
        );
        assert_eq!(by_ip(&next, "10.1.3.3"), Err(Reason::NoCredentials));
        assert_eq!(by_ip(&next, "10.1.2.3"), Ok("erin".into()));
        // Without the binding, dave's token works from anywhere now.
        assert_eq!(
            reason(evaluate(
                &play("espn", "192.0.2.1", with_token("dave-token")),
                &next,
                now(),
                None
            )),
            Reason::Ok
        );
        // A binding added by a re-read: the most specific network still wins.
        let mut frank = user(7, "frank");
        frank.ips = vec![net("10.1.2.128/25")];
        let next = next.with_users(12, &[7], vec![frank], vec![]);
        assert_eq!(by_ip(&next, "10.1.2.200"), Ok("frank".into()));
        assert_eq!(by_ip(&next, "10.1.2.3"), Ok("erin".into()));
    }

    #[test]
    fn of_two_users_on_one_network_the_older_wins_across_base_and_overlay() {
        let mut first = user(1, "first");
        first.ips = vec![net("10.9.0.0/16")];
        let mut second = user(2, "second");
        second.ips = vec![net("10.9.0.0/16")];
        let base = PolicySnapshot::default().with_full_read(
            build(vec![first.clone(), second.clone()], vec![], vec![], vec![]),
            1,
        );
        assert_eq!(by_ip(&base, "10.9.1.1"), Ok("first".into()));
        // The older one deleted: the other one, which the base had shadowed.
        let without_first = base.with_users(2, &[1], vec![], vec![]);
        assert_eq!(by_ip(&without_first, "10.9.1.1"), Ok("second".into()));
        assert!(without_first.user("first").is_none());
        assert_eq!(without_first.user_count(), 1);
        // The younger one re-read: the older one in the base still wins.
        let second_reread = base.with_users(2, &[2], vec![second], vec![]);
        assert_eq!(by_ip(&second_reread, "10.9.1.1"), Ok("first".into()));
        // The older one re-read: it wins from the overlay.
        let first_reread = base.with_users(2, &[1], vec![first], vec![]);
        assert_eq!(by_ip(&first_reread, "10.9.1.1"), Ok("first".into()));
    }

    #[test]
    fn a_re_read_user_wins_over_one_whose_change_waits_for_a_full_reload() {
        // bob renamed and his token moved to alice by one bulk statement
        // (left to a full reload); then alice takes the login "bob" and is
        // re-read at once.
        let snap = world_at_10();
        let mut alice = user(1, "bob");
        alice.package_ids = vec![10];
        let next = snap.with_users(
            12,
            &[1],
            vec![alice],
            vec![token(1, "alice-token"), token(1, "bob-token")],
        );
        assert_eq!(next.user("bob").unwrap().id, 1);
        assert!(next.user("alice").is_none());
        assert_eq!(by_token(&next, "bob-token"), Ok("bob".into()));
        assert_eq!(next.token(&hash_token("bob-token")).unwrap().user.id, 1);
        // Users nobody re-read are still found, by login and by token.
        assert_eq!(next.user("carol").unwrap().id, 3);
        assert_eq!(next.token(&hash_token("carol-token")).unwrap().user.id, 3);
        assert!(next.user("mallory").is_none());
        assert!(next.token(&hash_token("nope")).is_none());
    }

    #[test]
    fn a_deleted_user_is_gone_by_every_key() {
        let snap = world_at_10();
        let next = snap.with_users(11, &[4], vec![], vec![]);
        assert!(next.user("dave").is_none());
        assert_eq!(by_token(&next, "dave-token"), Err(Reason::UnknownToken));
        assert_eq!(by_ip(&next, "10.1.3.3"), Err(Reason::NoCredentials));
        assert_eq!(next.user_count(), 4);
        assert!(recheck_session_user(
            &next,
            "dave",
            "10.1.3.3".parse().unwrap(),
            *b"XX",
            "x",
            now()
        )
        .is_none());
    }

    #[test]
    fn a_slow_full_read_does_not_bring_back_what_a_later_re_read_replaced() {
        let snap = world_at_10();
        // dave deleted (notified as 12), re-read at 12; a full read that
        // started at 11, before the deletion, finishes after that.
        let deleted = snap.with_users(12, &[4], vec![], vec![]);
        let stale_full = deleted.with_full_read(world(), 11);
        assert!(stale_full.user("dave").is_none());
        assert_eq!(
            by_token(&stale_full, "dave-token"),
            Err(Reason::UnknownToken)
        );
        assert_eq!(stale_full.overlay_len(), 1);
        // A full read that started after the re-read replaces it.
        let folded = stale_full.with_full_read(world_without(4), 12);
        assert_eq!(folded.overlay_len(), 0);
        assert!(folded.user("dave").is_none());
        // A user created and deleted between two full reads stays deleted
        // even if an older full read (which saw it) is installed later.
        let created = snap.with_users(13, &[8], vec![user(8, "gina")], vec![token(8, "g")]);
        let gone = created.with_users(14, &[8], vec![], vec![]);
        let saw_gina = build(vec![user(8, "gina")], vec![token(8, "g")], vec![], vec![]);
        let late = gone.with_full_read(saw_gina, 13);
        assert!(late.user("gina").is_none());
        assert_eq!(by_token(&late, "g"), Err(Reason::UnknownToken));
    }

    #[test]
    fn a_re_read_older_than_what_is_in_force_is_ignored() {
        let snap = world_at_10();
        // Started before the full read that is in force.
        let older_than_base = snap.with_users(9, &[2], vec![], vec![]);
        assert_eq!(older_than_base.user("bob").unwrap().id, 2);
        assert_eq!(older_than_base.overlay_len(), 0);
        // Two re-reads of one user finishing out of order.
        let newer = snap.with_users(15, &[2], vec![user(2, "robert")], vec![]);
        let then_older = newer.with_users(14, &[2], vec![], vec![]);
        assert_eq!(then_older.user("robert").unwrap().id, 2);
        // An older full read finishing late changes nothing.
        let late_full = newer.with_full_read(PolicySnapshot::default(), 5);
        assert_eq!(late_full.user("alice").unwrap().id, 1);
    }

    #[test]
    fn packages_and_ip_rules_are_replaced_without_touching_users() {
        let snap = world_at_10();
        let alice_sport = play("sport/f1", "192.0.2.1", with_token("alice-token"));
        assert_eq!(
            reason(evaluate(&alice_sport, &snap, now(), None)),
            Reason::Ok
        );
        let next = snap.with_packages(
            11,
            vec![PackageRecord {
                id: 10,
                name: "sports".into(),
                streams: vec!["news".into()],
            }],
        );
        assert_eq!(
            reason(evaluate(&alice_sport, &next, now(), None)),
            Reason::StreamNotAllowed
        );
        // A package read older than the one in force is ignored.
        let stale = next.with_packages(10, vec![]);
        assert_eq!(
            reason(evaluate(&alice_sport, &stale, now(), None)),
            Reason::StreamNotAllowed
        );
        // IP rules likewise, and a full read that started earlier keeps them.
        let denied = next.with_ip_rules(12, vec![rule("192.0.2.0/24", RuleAction::Deny)]);
        assert_eq!(
            reason(evaluate(&alice_sport, &denied, now(), None)),
            Reason::IpDenied
        );
        let after_full = denied.with_full_read(world(), 11);
        assert_eq!(
            reason(evaluate(&alice_sport, &after_full, now(), None)),
            Reason::IpDenied
        );
        // The packages read at 11 and the full read at 11: either may stand.
        let after_newer_full = denied.with_full_read(world(), 13);
        assert_eq!(
            reason(evaluate(&alice_sport, &after_newer_full, now(), None)),
            Reason::Ok
        );
    }
}
