//! Damping of repeated credential failures (brute force).
//!
//! After `max_failures` failed credentials (unknown token, wrong password)
//! from one client address within `window`, further credentialed requests
//! from it are refused (`rate_limited`) until the window that started with
//! the first failure has passed. Successful requests cost one map lookup.
//!
//! Addresses are counted as a client holds them: an IPv4-mapped address as
//! the IPv4 address it is, an IPv6 address by its /64 (one subscriber's
//! prefix: a host picks any of 2^64 addresses in it at will).
//!
//! Where the client address is the caller's claim rather than a fact
//! (`/hook/decide`: the `ip` field, from whoever may call the hook), a
//! `Guesser` carries the caller's own address too, and two things change:
//! - the claimed address is counted *per caller*: failures in a victim's
//!   name from one caller limit that caller's requests for the victim, never
//!   the victim's requests arriving through other callers;
//! - the caller is counted as a whole, whatever addresses it claims, up to
//!   `caller_limit`: rotating the claimed `ip` buys at most that many
//!   guesses per window, not an unlimited number.
//!
//! The table is bounded: when full, it forgets expired entries, then the
//! oldest entries that are not limited, then the oldest ones, so a flood of
//! new addresses can neither grow memory nor stop new addresses from being
//! counted, and it frees the limited addresses last.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::canonical_ip;

/// Addresses (and caller/address pairs) tracked at most.
pub const MAX_TRACKED: usize = 100_000;

/// Who is presenting credentials: the client address the request names and,
/// when that address is only the caller's claim (`/hook/decide`), the
/// address of the caller itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guesser {
    pub client: IpAddr,
    pub caller: Option<IpAddr>,
}

impl Guesser {
    /// A client whose address is known (the admin API's peer or trusted
    /// proxy, a streamer's report of its viewer).
    pub fn client(client: IpAddr) -> Guesser {
        Guesser {
            client,
            caller: None,
        }
    }

    /// A client address as `caller` claims it.
    pub fn via(caller: IpAddr, client: IpAddr) -> Guesser {
        Guesser {
            client,
            caller: Some(caller),
        }
    }
}

/// An address as the limiter counts it: IPv4-mapped as IPv4, IPv6 by /64.
pub fn counted_as(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A client address as a fact.
    Client(IpAddr),
    /// A client address as one caller claims it.
    ClaimedBy { caller: IpAddr, client: IpAddr },
    /// Every failure of one caller, whatever address it claimed.
    Caller(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    since: Instant,
}

pub struct FailureLimiter {
    max_failures: u32,
    caller_limit: u32,
    window: Duration,
    capacity: usize,
    counts: Mutex<HashMap<Key, Count>>,
}

impl FailureLimiter {
    /// `max_failures == 0` disables damping altogether; `caller_limit == 0`
    /// only the count per caller.
    pub fn new(max_failures: u32, caller_limit: u32, window: Duration) -> FailureLimiter {
        FailureLimiter::with_capacity(max_failures, caller_limit, window, MAX_TRACKED)
    }

    pub fn with_capacity(
        max_failures: u32,
        caller_limit: u32,
        window: Duration,
        capacity: usize,
    ) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            caller_limit,
            window,
            capacity: capacity.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The keys a guesser is counted under, with the limit of each.
    fn keys(&self, who: &Guesser) -> [Option<(Key, u32)>; 2] {
        let client = counted_as(who.client);
        match who.caller.map(counted_as) {
            None => [Some((Key::Client(client), self.max_failures)), None],
            Some(caller) => [
                Some((Key::ClaimedBy { caller, client }, self.max_failures)),
                (self.caller_limit > 0).then_some((Key::Caller(caller), self.caller_limit)),
            ],
        }
    }

    fn limit_of(&self, key: &Key) -> u32 {
        match key {
            Key::Caller(_) => self.caller_limit,
            Key::Client(_) | Key::ClaimedBy { .. } => self.max_failures,
        }
    }

    fn over(&self, count: &Count, limit: u32, now: Instant) -> bool {
        limit > 0 && count.failures >= limit && now.duration_since(count.since) < self.window
    }

    pub fn is_limited(&self, who: &Guesser) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let now = Instant::now();
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        self.keys(who).iter().flatten().any(|(key, limit)| {
            counts
                .get(key)
                .is_some_and(|count| self.over(count, *limit, now))
        })
    }

    pub fn record_failure(&self, who: &Guesser) {
        if self.max_failures == 0 {
            return;
        }
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, _) in self.keys(who).into_iter().flatten() {
            if counts.len() >= self.capacity && !counts.contains_key(&key) {
                self.make_room(&mut counts, now);
            }
            let count = counts.entry(key).or_insert(Count {
                failures: 0,
                since: now,
            });
            if now.duration_since(count.since) >= self.window {
                *count = Count {
                    failures: 0,
                    since: now,
                };
            }
            count.failures = count.failures.saturating_add(1);
        }
    }

    /// Frees at least one slot, and a sixteenth of the table when nothing
    /// has expired, so that a flood pays this scan once per many inserts.
    fn make_room(&self, counts: &mut HashMap<Key, Count>, now: Instant) {
        let window = self.window;
        counts.retain(|_, count| now.duration_since(count.since) < window);
        if counts.len() < self.capacity {
            return;
        }
        let evict = (self.capacity / 16).max(1);
        // Not limited before limited, then oldest first.
        let mut order: Vec<(bool, Instant, Key)> = counts
            .iter()
            .map(|(key, count)| (self.over(count, self.limit_of(key), now), count.since, *key))
            .collect();
        order.select_nth_unstable_by(evict - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, key) in &order[..evict] {
            counts.remove(key);
        }
    }

    /// Addresses and pairs tracked now.
    pub fn tracked(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(text: &str) -> Guesser {
        Guesser::client(ip(text))
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn limits_after_max_failures_per_ip_only() {
        let limiter = FailureLimiter::new(3, 0, MINUTE);
        for _ in 0..2 {
            limiter.record_failure(&client("192.0.2.1"));
        }
        assert!(!limiter.is_limited(&client("192.0.2.1")));
        limiter.record_failure(&client("192.0.2.1"));
        assert!(limiter.is_limited(&client("192.0.2.1")));
        assert!(!limiter.is_limited(&client("192.0.2.2")));
    }

    #[test]
    fn window_expires() {
        let limiter = FailureLimiter::new(1, 0, Duration::from_millis(50));
        limiter.record_failure(&client("192.0.2.1"));
        assert!(limiter.is_limited(&client("192.0.2.1")));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!limiter.is_limited(&client("192.0.2.1")));
    }

    #[test]
    fn zero_disables() {
        let limiter = FailureLimiter::new(0, 5, MINUTE);
        for _ in 0..100 {
            limiter.record_failure(&client("192.0.2.1"));
            limiter.record_failure(&Guesser::via(ip("192.0.2.9"), ip("192.0.2.1")));
        }
        assert!(!limiter.is_limited(&client("192.0.2.1")));
        assert!(!limiter.is_limited(&Guesser::via(ip("192.0.2.9"), ip("192.0.2.1"))));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_as_ipv4() {
        let limiter = FailureLimiter::new(25, 0, MINUTE);
        // 25 guesses from 25 addresses of one /64.
        for n in 0..25 {
            limiter.record_failure(&client(&format!("2001:db8:1:2::{n:x}")));
        }
        assert!(limiter.is_limited(&client("2001:db8:1:2:ffff::1")));
        assert!(!limiter.is_limited(&client("2001:db8:1:3::1")));
        assert_eq!(limiter.tracked(), 1);

        let limiter = FailureLimiter::new(2, 0, MINUTE);
        limiter.record_failure(&client("::ffff:192.0.2.7"));
        limiter.record_failure(&client("192.0.2.7"));
        assert!(limiter.is_limited(&client("192.0.2.7")));
        assert!(limiter.is_limited(&client("::ffff:192.0.2.7")));
        assert_eq!(counted_as(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(counted_as(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }

    #[test]
    fn a_claimed_address_is_counted_per_caller() {
        let limiter = FailureLimiter::new(3, 100, MINUTE);
        let attacker = ip("203.0.113.66");
        let victim = ip("192.0.2.1");
        for _ in 0..3 {
            limiter.record_failure(&Guesser::via(attacker, victim));
        }
        assert!(limiter.is_limited(&Guesser::via(attacker, victim)));
        // The victim through another caller, or as a fact, is not locked out.
        assert!(!limiter.is_limited(&Guesser::via(ip("198.51.100.1"), victim)));
        assert!(!limiter.is_limited(&Guesser::client(victim)));
        // The attacker naming another address is not limited yet (3 < 100).
        assert!(!limiter.is_limited(&Guesser::via(attacker, ip("192.0.2.2"))));
    }

    #[test]
    fn rotating_the_claimed_address_is_limited_by_caller() {
        let limiter = FailureLimiter::new(3, 10, MINUTE);
        let attacker = ip("2001:db8:66::1");
        for n in 0..10 {
            let claimed = ip(&format!("10.0.{}.{}", n / 256, n % 256));
            assert!(!limiter.is_limited(&Guesser::via(attacker, claimed)));
            limiter.record_failure(&Guesser::via(attacker, claimed));
        }
        // Any address it names now, from anywhere in its /64.
        assert!(limiter.is_limited(&Guesser::via(ip("2001:db8:66::2"), ip("10.9.9.9"))));
        assert!(!limiter.is_limited(&Guesser::via(ip("2001:db8:67::1"), ip("10.9.9.9"))));
        // Without a caller limit, only the per-address count applies.
        let unlimited = FailureLimiter::new(3, 0, MINUTE);
        for n in 0..50 {
            unlimited.record_failure(&Guesser::via(attacker, ip(&format!("10.1.0.{n}"))));
        }
        assert!(!unlimited.is_limited(&Guesser::via(attacker, ip("10.9.9.9"))));
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_keeps_counting() {
        let limiter = FailureLimiter::with_capacity(2, 0, MINUTE, 32);
        // A limited address first, then a flood of single failures.
        limiter.record_failure(&client("192.0.2.1"));
        limiter.record_failure(&client("192.0.2.1"));
        for n in 0..1000 {
            limiter.record_failure(&client(&format!("10.0.{}.{}", n / 256, n % 256)));
        }
        assert!(limiter.tracked() <= 32);
        // New addresses are still counted and limited…
        limiter.record_failure(&client("198.51.100.9"));
        limiter.record_failure(&client("198.51.100.9"));
        assert!(limiter.is_limited(&client("198.51.100.9")));
        // …and the limited address was kept through the flood.
        assert!(limiter.is_limited(&client("192.0.2.1")));
    }

    #[test]
    fn a_full_table_of_limited_addresses_forgets_the_oldest() {
        let limiter = FailureLimiter::with_capacity(1, 0, MINUTE, 16);
        for n in 0..16 {
            limiter.record_failure(&client(&format!("10.0.0.{n}")));
            std::thread::sleep(Duration::from_millis(1));
        }
        limiter.record_failure(&client("198.51.100.9"));
        assert!(limiter.is_limited(&client("198.51.100.9")));
        assert!(!limiter.is_limited(&client("10.0.0.0")), "the oldest went");
        assert!(limiter.is_limited(&client("10.0.0.15")));
    }
}
