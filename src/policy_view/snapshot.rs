//! The in-memory policy: what steps 1–6 of SPEC §2 read, per replica.
//!
//! A snapshot is an immutable base (the last full read of the policy tables)
//! plus a small overlay of the users re-read one by one since, so that a
//! change to one user costs work in proportion to that user, not to the
//! table (`policy_view` keeps it fresh). Every read carries a version — the
//! number of change notifications received when it started — and a read
//! never replaces one that started later, so a slow full read cannot bring
//! back what a user's re-read already replaced, nor the other way round.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::access_rules::AccessRules;
use super::prefix::{FastMap, PrefixTable};
use crate::domain::access_rule::AccessRuleRecord;
use crate::domain::glob_matches;
use crate::domain::{
    IpRuleRecord, PackageRecord, PolicyRecords, RuleAction, SigningKeyRecord, TokenRecord,
    UserRecord,
};
use crate::links::{KeyOptions, LinkFormat, SigningKey};

/// A user as the decision sees it: the row as read. Its `package_ids` are
/// resolved against the snapshot's packages when deciding, so that a
/// package's streams can change without re-reading every user who has it.
pub type PolicyUser = UserRecord;

/// A token's user, and when the token stops being accepted.
pub struct TokenEntry {
    pub user: Arc<PolicyUser>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Users indexed the three ways a request can name them.
#[derive(Default)]
struct UserIndex {
    by_login: foldhash::HashMap<String, Arc<PolicyUser>>,
    tokens: FastMap<[u8; 32], TokenEntry>,
    by_ip: PrefixTable<Arc<PolicyUser>>,
    /// Sorted: which users are here, to count an overlay against the base.
    ids: Vec<i64>,
    /// How many have `countries`: none, and no request needs a GeoIP lookup
    /// for step 5.
    with_countries: usize,
}

impl UserIndex {
    /// `users` in ascending id order, so that of two users bound to the
    /// same network the older wins. Tokens of other users are ignored.
    fn build(
        users: impl ExactSizeIterator<Item = Arc<PolicyUser>>,
        tokens: Vec<TokenRecord>,
    ) -> UserIndex {
        let mut index = UserIndex {
            by_login: foldhash::HashMap::with_capacity_and_hasher(users.len(), Default::default()),
            tokens: FastMap::with_capacity_and_hasher(tokens.len(), Default::default()),
            ..UserIndex::default()
        };
        let mut sorted = Vec::with_capacity(users.len());
        // The iterator allocates each user as it goes, so its login key is
        // allocated right after it: a lookup touches both, close together.
        for user in users {
            debug_assert!(sorted
                .last()
                .is_none_or(|last: &Arc<PolicyUser>| last.id < user.id));
            for network in &user.ips {
                index.by_ip.insert(*network, Arc::clone(&user));
            }
            index.by_login.insert(user.login.clone(), Arc::clone(&user));
            index.with_countries += usize::from(!user.countries.is_empty());
            sorted.push(user);
        }
        for token in tokens {
            if let Ok(at) = sorted.binary_search_by_key(&token.user_id, |user| user.id) {
                index.tokens.insert(
                    token.hash,
                    TokenEntry {
                        user: Arc::clone(&sorted[at]),
                        expires_at: token.expires_at,
                    },
                );
            }
        }
        index.ids = sorted.iter().map(|user| user.id).collect();
        index
    }

    fn contains(&self, id: i64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }
}

/// One user as re-read since the base: None when deleted.
#[derive(Clone)]
struct Patch {
    version: u64,
    user: Option<Arc<PolicyUser>>,
    tokens: Arc<[TokenRecord]>,
}

/// The users re-read since the base. Whatever the base holds for one of
/// them (its login, tokens, IP bindings) is out of date, found or not here.
#[derive(Default)]
struct Overlay {
    patches: FastMap<i64, Patch>,
    index: UserIndex,
}

impl Overlay {
    /// One lookup through base and overlay. The overlay is tried first: a
    /// login (token) there may still belong in the base to a user whose
    /// change waits for a full reload. A base entry of a user re-read since
    /// is hidden. With no user re-read (the usual case) the base answers
    /// alone.
    fn layered<'a, V>(
        &self,
        in_base: Option<&'a V>,
        in_overlay: impl Fn() -> Option<&'a V>,
        user_id: impl Fn(&V) -> i64,
    ) -> Option<&'a V> {
        if self.patches.is_empty() {
            return in_base;
        }
        if let Some(found) = in_overlay() {
            return Some(found);
        }
        in_base.filter(|found| !self.patches.contains_key(&user_id(found)))
    }
}

#[derive(Default)]
struct IpRules {
    deny: PrefixTable<()>,
    allow: PrefixTable<()>,
    /// The earliest end of a rule in force: the view builds them again then.
    next_expiry: Option<DateTime<Utc>>,
}

impl IpRules {
    /// The rules in force now: those past their `expires_at` are left out.
    fn build(rules: Vec<IpRuleRecord>) -> IpRules {
        let now = Utc::now();
        let mut built = IpRules::default();
        for rule in rules {
            match rule.expires_at {
                Some(at) if at <= now => continue,
                Some(at) => {
                    built.next_expiry = Some(built.next_expiry.map_or(at, |next| next.min(at)))
                }
                None => {}
            }
            match rule.action {
                RuleAction::Deny => built.deny.insert(rule.network, ()),
                RuleAction::Allow => built.allow.insert(rule.network, ()),
            }
        }
        built
    }
}

/// A stored key as the verifier takes it. The admin API validates what it
/// stores, so a row that does not parse was written around it: skipped,
/// by id only (never the secret).
fn link_key(record: &SigningKeyRecord) -> Option<SigningKey> {
    let parsed = LinkFormat::parse(&record.format)
        .ok_or_else(|| format!("unknown format '{}'", record.format))
        .and_then(|format| KeyOptions::from_json(format, &record.options))
        .and_then(|options| SigningKey::new(&record.id, &record.secret, options));
    match parsed {
        Ok(key) => Some(key),
        Err(reason) => {
            log::warn!("signing key '{}' left out: {reason}", record.id);
            None
        }
    }
}

fn package_map(packages: Vec<PackageRecord>) -> FastMap<i64, Package> {
    packages
        .into_iter()
        .map(|p| {
            let package = Package {
                name: p.name,
                streams: p.streams,
            };
            (p.id, package)
        })
        .collect()
}

/// A package as the decision needs it: its patterns, and its name for the
/// capacity it counts against (SPEC §11).
#[derive(Clone, Debug)]
struct Package {
    name: String,
    streams: Vec<String>,
}

/// Everything steps 1–6 need, in memory. Cloning is cheap (shared parts);
/// the `with_*` methods make the next snapshot from this one and a read.
#[derive(Clone, Default)]
pub struct PolicySnapshot {
    base: Arc<UserIndex>,
    base_version: u64,
    overlay: Arc<Overlay>,
    packages: Arc<FastMap<i64, Package>>,
    packages_version: u64,
    rules: Arc<IpRules>,
    rules_version: u64,
    /// The enabled signing keys of playback links, newest first.
    signing_keys: Arc<Vec<SigningKeyRecord>>,
    /// The same keys, parsed once for the verifier (SPEC §9).
    link_keys: Arc<Vec<SigningKey>>,
    signing_keys_version: u64,
    /// The enabled access rules, compiled (SPEC §10).
    access_rules: Arc<AccessRules>,
    access_rules_version: u64,
    user_count: usize,
}

impl PolicySnapshot {
    /// A snapshot of these rows, at version 0.
    pub fn build(records: PolicyRecords) -> PolicySnapshot {
        let PolicyRecords {
            mut users,
            tokens,
            packages,
            ip_rules,
        } = records;
        users.sort_unstable_by_key(|user| user.id);
        let base = UserIndex::build(users.into_iter().map(Arc::new), tokens);
        PolicySnapshot {
            user_count: base.ids.len(),
            base: Arc::new(base),
            packages: Arc::new(package_map(packages)),
            rules: Arc::new(IpRules::build(ip_rules)),
            ..PolicySnapshot::default()
        }
    }

    /// `fresh`, a full read that started at `version`, in force: the users
    /// re-read after it started stay as re-read, the rest is `fresh`'s.
    pub fn with_full_read(&self, fresh: PolicySnapshot, version: u64) -> PolicySnapshot {
        if version < self.base_version {
            return self.clone();
        }
        let mut next = PolicySnapshot {
            base: fresh.base,
            base_version: version,
            ..self.clone()
        };
        if version >= self.packages_version {
            next.packages = fresh.packages;
            next.packages_version = version;
        }
        if version >= self.rules_version {
            next.rules = fresh.rules;
            next.rules_version = version;
        }
        if version >= self.signing_keys_version {
            next.link_keys = fresh.link_keys;
            next.signing_keys = fresh.signing_keys;
            next.signing_keys_version = version;
        }
        if version >= self.access_rules_version {
            next.access_rules = fresh.access_rules;
            next.access_rules_version = version;
        }
        let newer = self
            .overlay
            .patches
            .iter()
            .filter(|(_, patch)| patch.version > version)
            .map(|(id, patch)| (*id, patch.clone()))
            .collect();
        next.with_overlay(newer)
    }

    /// The users `ids`, re-read at `version`: those in `users` exist (with
    /// their `tokens`), the others were deleted. A user already re-read at a
    /// later version, or covered by a later full read, is left as it is.
    pub fn with_users(
        &self,
        version: u64,
        ids: &[i64],
        users: Vec<UserRecord>,
        tokens: Vec<TokenRecord>,
    ) -> PolicySnapshot {
        if version < self.base_version {
            return self.clone();
        }
        let mut found: HashMap<i64, UserRecord> = users.into_iter().map(|u| (u.id, u)).collect();
        let mut tokens_of: HashMap<i64, Vec<TokenRecord>> = HashMap::new();
        for token in tokens {
            tokens_of.entry(token.user_id).or_default().push(token);
        }
        let mut patches = self.overlay.patches.clone();
        for &id in ids {
            if patches
                .get(&id)
                .is_some_and(|patch| patch.version > version)
            {
                continue;
            }
            // A deleted user stays as a tombstone even when the base never
            // had it: a full read that started before the deletion may still
            // be installed after this, and must not bring it back.
            let user = found.remove(&id).map(Arc::new);
            let tokens = tokens_of.remove(&id).unwrap_or_default();
            patches.insert(
                id,
                Patch {
                    version,
                    user,
                    tokens: tokens.into(),
                },
            );
        }
        self.with_overlay(patches)
    }

    /// The packages table, read at `version`.
    pub fn with_packages(&self, version: u64, packages: Vec<PackageRecord>) -> PolicySnapshot {
        if version < self.packages_version {
            return self.clone();
        }
        PolicySnapshot {
            packages: Arc::new(package_map(packages)),
            packages_version: version,
            ..self.clone()
        }
    }

    /// The IP rules, read at `version`.
    pub fn with_ip_rules(&self, version: u64, rules: Vec<IpRuleRecord>) -> PolicySnapshot {
        if version < self.rules_version {
            return self.clone();
        }
        PolicySnapshot {
            rules: Arc::new(IpRules::build(rules)),
            rules_version: version,
            ..self.clone()
        }
    }

    /// The enabled signing keys, read at `version` (a full read's are
    /// installed with it, by `with_full_read`).
    pub fn with_signing_keys(&self, version: u64, keys: Vec<SigningKeyRecord>) -> PolicySnapshot {
        if version < self.signing_keys_version {
            return self.clone();
        }
        PolicySnapshot {
            link_keys: Arc::new(keys.iter().filter_map(link_key).collect()),
            signing_keys: Arc::new(keys),
            signing_keys_version: version,
            ..self.clone()
        }
    }

    /// The enabled access rules, read at `version` (a full read's are
    /// installed with it).
    pub fn with_access_rules(&self, version: u64, rules: Vec<AccessRuleRecord>) -> PolicySnapshot {
        if version < self.access_rules_version {
            return self.clone();
        }
        PolicySnapshot {
            access_rules: Arc::new(AccessRules::build(rules)),
            access_rules_version: version,
            ..self.clone()
        }
    }

    fn with_overlay(&self, patches: FastMap<i64, Patch>) -> PolicySnapshot {
        let mut user_count = self.base.ids.len();
        let mut users = Vec::new();
        let mut tokens = Vec::new();
        for (id, patch) in &patches {
            let in_base = self.base.contains(*id);
            match &patch.user {
                Some(user) => {
                    user_count += usize::from(!in_base);
                    users.push(Arc::clone(user));
                    tokens.extend(patch.tokens.iter().cloned());
                }
                None => user_count -= usize::from(in_base),
            }
        }
        users.sort_unstable_by_key(|user| user.id);
        let index = UserIndex::build(users.into_iter(), tokens);
        PolicySnapshot {
            overlay: Arc::new(Overlay { index, patches }),
            user_count,
            ..self.clone()
        }
    }

    pub fn user(&self, login: &str) -> Option<&Arc<PolicyUser>> {
        let overlay = &*self.overlay;
        overlay.layered(
            self.base.by_login.get(login),
            || overlay.index.by_login.get(login),
            |user| user.id,
        )
    }

    pub fn token(&self, hash: &[u8; 32]) -> Option<&TokenEntry> {
        let overlay = &*self.overlay;
        overlay.layered(
            self.base.tokens.get(hash),
            || overlay.index.tokens.get(hash),
            |entry| entry.user.id,
        )
    }

    /// The user bound to the most specific network containing `ip` (of two
    /// bound to the same network, the older).
    pub fn user_by_ip(&self, ip: IpAddr) -> Option<&Arc<PolicyUser>> {
        let overlay = &*self.overlay;
        if overlay.patches.is_empty() {
            return self.base.by_ip.lookup(ip);
        }
        let base = self
            .base
            .by_ip
            .lookup_where(ip, |user| !overlay.patches.contains_key(&user.id));
        let patched = if overlay.index.by_ip.is_empty() {
            None
        } else {
            overlay.index.by_ip.lookup_where(ip, |_| true)
        };
        match (base, patched) {
            (Some((base_len, base_user)), Some((len, user))) => {
                if (base_len, std::cmp::Reverse(base_user.id)) > (len, std::cmp::Reverse(user.id)) {
                    Some(base_user)
                } else {
                    Some(user)
                }
            }
            (found, None) | (None, found) => found.map(|(_, user)| user),
        }
    }

    /// Whether the user's packages let them watch `stream` (no packages: any).
    pub fn may_watch(&self, user: &PolicyUser, stream: &str) -> bool {
        if user.package_ids.is_empty() {
            return true;
        }
        user.package_ids
            .iter()
            .filter_map(|id| self.packages.get(id))
            .flat_map(|package| &package.streams)
            .any(|pattern| glob_matches(pattern, stream))
    }

    /// The names of every package with a pattern matching `stream`, sorted:
    /// a session counts against their capacity, whoever watches (SPEC §11).
    pub fn packages_of_stream(&self, stream: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .packages
            .values()
            .filter(|package| {
                package
                    .streams
                    .iter()
                    .any(|pattern| glob_matches(pattern, stream))
            })
            .map(|package| package.name.clone())
            .collect();
        names.sort_unstable();
        names
    }

    pub fn user_count(&self) -> usize {
        self.user_count
    }

    /// Users re-read since the last full read.
    pub fn overlay_len(&self) -> usize {
        self.overlay.patches.len()
    }

    /// The enabled signing keys of playback links, newest first: a link
    /// is tried against each key of its format (rotation, SPEC §9).
    pub fn signing_keys(&self) -> &[SigningKeyRecord] {
        &self.signing_keys
    }

    /// The enabled keys as the link verifier and issuer take them.
    pub fn link_keys(&self) -> &[SigningKey] {
        &self.link_keys
    }

    /// Whether a request needs its client's country or AS number: some
    /// rule or some user looks at them (a user re-read since the base
    /// counts in both; a lookup too many costs little).
    pub fn needs_geo(&self) -> bool {
        self.access_rules.uses_geoip() || self.has_user_countries()
    }

    /// Some user is limited to countries (SPEC §2 step 5).
    pub fn has_user_countries(&self) -> bool {
        self.base.with_countries > 0 || self.overlay.index.with_countries > 0
    }

    /// Step 3: the access rules in force.
    pub fn access_rules(&self) -> &AccessRules {
        &self.access_rules
    }

    /// When an IP rule in force expires next (SPEC §4: temporary bans).
    pub fn ip_rules_next_expiry(&self) -> Option<DateTime<Utc>> {
        self.rules.next_expiry
    }

    /// Step 1–2 alone: whether an IP rule settles the request before identity.
    pub fn ip_rule(&self, ip: IpAddr) -> Option<RuleAction> {
        if self.rules.deny.lookup(ip).is_some() {
            Some(RuleAction::Deny)
        } else if self.rules.allow.lookup(ip).is_some() {
            Some(RuleAction::Allow)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> SigningKeyRecord {
        SigningKeyRecord {
            id: id.into(),
            format: "playgate".into(),
            secret: format!("secret-of-{id}-0123456789"),
            options: serde_json::json!({}),
        }
    }

    fn ids(snapshot: &PolicySnapshot) -> Vec<&str> {
        snapshot
            .signing_keys()
            .iter()
            .map(|key| key.id.as_str())
            .collect()
    }

    #[test]
    fn signing_keys_follow_their_versions() {
        let empty = PolicySnapshot::default();
        assert!(empty.signing_keys().is_empty());
        let two = empty.with_signing_keys(5, vec![key("k2"), key("k1")]);
        assert_eq!(ids(&two), ["k2", "k1"]);
        // A re-read that started earlier is older: dropped.
        assert_eq!(ids(&two.with_signing_keys(4, vec![])), ["k2", "k1"]);
        let one = two.with_signing_keys(6, vec![key("k1")]);
        assert_eq!(ids(&one), ["k1"]);
        // Other parts of the snapshot leave the keys alone.
        assert_eq!(ids(&one.with_packages(7, vec![])), ["k1"]);
        assert_eq!(ids(&one.with_ip_rules(7, vec![])), ["k1"]);
        assert_eq!(ids(&one.with_users(7, &[1], vec![], vec![])), ["k1"]);
    }

    #[test]
    fn a_full_read_replaces_the_keys_unless_they_were_re_read_after_it_started() {
        let fresh = || PolicySnapshot::default().with_signing_keys(0, vec![key("old")]);
        let disabled = PolicySnapshot::default().with_signing_keys(8, vec![]);
        // A full read that started before the key was disabled cannot bring it back.
        let stale = disabled.with_full_read(fresh(), 7);
        assert!(stale.signing_keys().is_empty());
        // One that started after it is in force.
        let later = disabled.with_full_read(fresh(), 9);
        assert_eq!(ids(&later), ["old"]);
        // And a re-read older than that full read is dropped.
        assert_eq!(ids(&later.with_signing_keys(8, vec![])), ["old"]);
    }
}
