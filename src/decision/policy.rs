//! Steps 1–5 of the decision: a pure function of the request, the policy
//! snapshot and the clock. No I/O here; bcrypt is verified by the caller and
//! passed in, because it must run off the async executor.
//!
//! A snapshot is an immutable base (the last full read of the policy tables)
//! plus a small overlay of the users re-read one by one since, so that a
//! change to one user costs work in proportion to that user, not to the
//! table (`policy_view` keeps it fresh). Every read carries a version — the
//! number of change notifications received when it started — and a read
//! never replaces one that started later, so a slow full read cannot bring
//! back what a user's re-read already replaced, nor the other way round.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
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

/// A user as the decision sees it.
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
    /// Empty = no packages = every stream. Resolved against the snapshot's
    /// packages when deciding, so that a package's streams can change
    /// without re-reading every user who has it.
    pub package_ids: Vec<i64>,
}

impl From<UserRecord> for PolicyUser {
    fn from(record: UserRecord) -> PolicyUser {
        PolicyUser {
            id: record.id,
            login: record.login,
            password_hash: record.password_hash,
            kind: record.kind,
            ips: record.ips,
            expires_at: record.expires_at,
            max_sessions: record.max_sessions,
            enabled: record.enabled,
            package_ids: record.package_ids,
        }
    }
}

/// FxHash (rustc's) and a finaliser: a rotate, a xor and a multiply per
/// word, several times cheaper than the default SipHash on the fixed-size
/// keys looked up per decision (SHA-256 digests, ids, networks). Logins keep
/// SipHash: on text with a common prefix (`user1…`) this one collides.
/// Only for keys that come from the database (written by admins): a
/// client's key only ever probes these maps, so it cannot flood them.
#[derive(Clone, Copy, Default)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(value.into());
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(value.into());
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    /// With splitmix64's finaliser: a table position comes from the low bits,
    /// and a product's low bits depend only on its factors' low bits, so keys
    /// differing only in their high bytes would crowd together without it.
    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Networks grouped by prefix length, looked up from the most specific down:
/// a lookup costs one hash probe per distinct prefix length, however many
/// networks there are.
#[derive(Debug)]
pub struct PrefixTable<T> {
    /// (prefix length, is IPv6, networks), longest prefix first.
    levels: Vec<(u8, bool, FastMap<IpNet, T>)>,
    /// Further values of a network already present, in insertion order:
    /// `lookup_where` falls back on them when it filters out the first.
    shadowed: FastMap<IpNet, Vec<T>>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            levels: Vec::new(),
            shadowed: FastMap::default(),
        }
    }
}

impl<T> PrefixTable<T> {
    /// The first value inserted for a network is the one `lookup` finds.
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
                self.levels.push((key.0, key.1, FastMap::default()));
                self.levels.sort_by_key(|level| std::cmp::Reverse(level.0));
                self.levels
                    .iter()
                    .position(|(len, v6, _)| (*len, *v6) == key)
                    .expect("just inserted")
            }
        };
        match self.levels[position].2.entry(network) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(_) => self.shadowed.entry(network).or_default().push(value),
        }
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

    /// The first value that `keep` accepts of the most specific network
    /// containing `ip` that has one, with that network's prefix length.
    pub fn lookup_where(&self, ip: IpAddr, keep: impl Fn(&T) -> bool) -> Option<(u8, &T)> {
        let ip = canonical_ip(ip);
        let is_v6 = ip.is_ipv6();
        self.levels
            .iter()
            .filter(|(_, v6, _)| *v6 == is_v6)
            .find_map(|(len, _, networks)| {
                let network = IpNet::new(ip, *len).ok()?.trunc();
                let first = networks.get(&network)?;
                if keep(first) {
                    return Some((*len, first));
                }
                let others = self.shadowed.get(&network)?;
                others
                    .iter()
                    .find(|value| keep(value))
                    .map(|value| (*len, value))
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

/// Users indexed the three ways a request can name them.
#[derive(Default)]
struct UserIndex {
    by_login: HashMap<String, Arc<PolicyUser>>,
    tokens: FastMap<[u8; 32], TokenEntry>,
    by_ip: PrefixTable<Arc<PolicyUser>>,
    /// Sorted: which users are here, to count an overlay against the base.
    ids: Vec<i64>,
}

impl UserIndex {
    /// `users` in ascending id order, so that of two users bound to the
    /// same network the older wins. Tokens of other users are ignored.
    fn build(
        users: impl ExactSizeIterator<Item = Arc<PolicyUser>>,
        tokens: Vec<TokenRecord>,
    ) -> UserIndex {
        let mut index = UserIndex {
            by_login: HashMap::with_capacity(users.len()),
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
    /// A login (token) here still belongs in the base to a user not re-read
    /// yet (its change is left to a full reload): lookups must then try the
    /// overlay first. Otherwise a base hit on a user not re-read is the
    /// answer, and the overlay is searched only when the base misses.
    shadows_base_login: bool,
    shadows_base_token: bool,
}

impl Overlay {
    /// One lookup through base and overlay: a base entry of a user re-read
    /// since is hidden; `shadows`: the overlay must be tried first. With no
    /// user re-read (the usual case) the base answers alone.
    fn layered<'a, V>(
        &self,
        shadows: bool,
        in_base: Option<&'a V>,
        in_overlay: impl Fn() -> Option<&'a V>,
        user_id: impl Fn(&V) -> i64,
    ) -> Option<&'a V> {
        if self.patches.is_empty() {
            return in_base;
        }
        if shadows {
            if let Some(found) = in_overlay() {
                return Some(found);
            }
        }
        match in_base {
            Some(found) if !self.patches.contains_key(&user_id(found)) => Some(found),
            _ if shadows => None,
            _ => in_overlay(),
        }
    }
}

#[derive(Default)]
struct IpRules {
    deny: PrefixTable<()>,
    allow: PrefixTable<()>,
}

impl IpRules {
    fn build(rules: Vec<IpRuleRecord>) -> IpRules {
        let mut built = IpRules::default();
        for rule in rules {
            match rule.action {
                RuleAction::Deny => built.deny.insert(rule.network, ()),
                RuleAction::Allow => built.allow.insert(rule.network, ()),
            }
        }
        built
    }
}

fn package_map(packages: Vec<PackageRecord>) -> FastMap<i64, Vec<String>> {
    packages.into_iter().map(|p| (p.id, p.streams)).collect()
}

/// Everything steps 1–5 need, in memory. Cloning is cheap (shared parts);
/// the `with_*` methods make the next snapshot from this one and a read.
#[derive(Clone, Default)]
pub struct PolicySnapshot {
    base: Arc<UserIndex>,
    base_version: u64,
    overlay: Arc<Overlay>,
    packages: Arc<FastMap<i64, Vec<String>>>,
    packages_version: u64,
    rules: Arc<IpRules>,
    rules_version: u64,
    user_count: usize,
}

impl PolicySnapshot {
    /// A snapshot of these rows, at version 0.
    pub fn build(
        users: Vec<UserRecord>,
        tokens: Vec<TokenRecord>,
        packages: Vec<PackageRecord>,
        ip_rules: Vec<IpRuleRecord>,
    ) -> PolicySnapshot {
        let mut users = users;
        users.sort_unstable_by_key(|user| user.id);
        let base = UserIndex::build(
            users
                .into_iter()
                .map(|record| Arc::new(PolicyUser::from(record))),
            tokens,
        );
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
            let user = found
                .remove(&id)
                .map(|record| Arc::new(PolicyUser::from(record)));
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
        let not_re_read = |user: &PolicyUser| !patches.contains_key(&user.id);
        let shadows_base_login = index.by_login.keys().any(|login| {
            self.base
                .by_login
                .get(login)
                .is_some_and(|user| not_re_read(user))
        });
        let shadows_base_token = index.tokens.keys().any(|hash| {
            self.base
                .tokens
                .get(hash)
                .is_some_and(|entry| not_re_read(&entry.user))
        });
        PolicySnapshot {
            overlay: Arc::new(Overlay {
                index,
                patches,
                shadows_base_login,
                shadows_base_token,
            }),
            user_count,
            ..self.clone()
        }
    }

    pub fn user(&self, login: &str) -> Option<&Arc<PolicyUser>> {
        let overlay = &*self.overlay;
        overlay.layered(
            overlay.shadows_base_login,
            self.base.by_login.get(login),
            || overlay.index.by_login.get(login),
            |user| user.id,
        )
    }

    fn token(&self, hash: &[u8; 32]) -> Option<&TokenEntry> {
        let overlay = &*self.overlay;
        overlay.layered(
            overlay.shadows_base_token,
            self.base.tokens.get(hash),
            || overlay.index.tokens.get(hash),
            |entry| entry.user.id,
        )
    }

    /// The user bound to the most specific network containing `ip` (of two
    /// bound to the same network, the older).
    fn user_by_ip(&self, ip: IpAddr) -> Option<&Arc<PolicyUser>> {
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
            .flatten()
            .any(|pattern| glob_matches(pattern, stream))
    }

    pub fn user_count(&self) -> usize {
        self.user_count
    }

    /// Users re-read since the last full read.
    pub fn overlay_len(&self) -> usize {
        self.overlay.patches.len()
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
            .token(&hash_token(token))
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
        let user = snapshot.user_by_ip(ip).ok_or(Reason::NoCredentials)?;
        (Arc::clone(user), false)
    };

    check_account(snapshot, &user, ip, &request.stream, now, by_secret)?;
    Ok(Admitted {
        user: Some(user),
        reason: Reason::Ok,
    })
}

/// Steps 4–5 for an identified user: account state, the IP binding of a
/// user identified by token or password, packages.
fn check_account(
    snapshot: &PolicySnapshot,
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
    if !snapshot.may_watch(user, stream) {
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
        check_account(snapshot, &user, ip, stream, now, true)
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
        PolicySnapshot::build(
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

    #[test]
    fn prefix_table_filtered_lookup_falls_back_on_shadowed_values() {
        let mut table = PrefixTable::default();
        table.insert(net("10.0.0.0/8"), 1);
        table.insert(net("10.1.0.0/16"), 2);
        table.insert(net("10.1.0.0/16"), 3);
        let ip = "10.1.9.9".parse().unwrap();
        assert_eq!(table.lookup_where(ip, |_| true), Some((16, &2)));
        assert_eq!(table.lookup_where(ip, |v| *v != 2), Some((16, &3)));
        assert_eq!(table.lookup_where(ip, |v| *v == 1), Some((8, &1)));
        assert_eq!(table.lookup_where(ip, |_| false), None);
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
            &play("x", ip, Credentials::default()),
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
            PolicySnapshot::build(vec![first.clone(), second.clone()], vec![], vec![], vec![]),
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
        assert!(
            recheck_session_user(&next, "dave", "10.1.3.3".parse().unwrap(), "x", now()).is_none()
        );
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
        let saw_gina =
            PolicySnapshot::build(vec![user(8, "gina")], vec![token(8, "g")], vec![], vec![]);
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
