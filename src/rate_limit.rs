//! Damping of repeated credential failures per client IP (brute force).
//!
//! After `max_failures` failed credentials (unknown token, wrong password)
//! from one IP within `window`, further credentialed requests from that IP are
//! refused (`rate_limited`) until the window that started with the first
//! failure has passed. Keyed by IP only: the right user on another IP is
//! never locked out, and a successful request costs one map lookup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Beyond this many tracked IPs, expired entries are pruned; a flood of
/// distinct IPs cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// `max_failures == 0` disables damping.
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_limited(&self, ip: IpAddr) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.get(&ip).is_some_and(|(count, since)| {
            *count >= self.max_failures && since.elapsed() < self.window
        })
    }

    pub fn record_failure(&self, ip: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            let window = self.window;
            failures.retain(|_, (_, since)| since.elapsed() < window);
            if failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limits_after_max_failures_per_ip_only() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            limiter.record_failure(ip("192.0.2.1"));
        }
        assert!(!limiter.is_limited(ip("192.0.2.1")));
        limiter.record_failure(ip("192.0.2.1"));
        assert!(limiter.is_limited(ip("192.0.2.1")));
        assert!(!limiter.is_limited(ip("192.0.2.2")));
    }

    #[test]
    fn window_expires() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(50));
        limiter.record_failure(ip("192.0.2.1"));
        assert!(limiter.is_limited(ip("192.0.2.1")));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!limiter.is_limited(ip("192.0.2.1")));
    }

    #[test]
    fn zero_disables() {
        let limiter = FailureLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            limiter.record_failure(ip("192.0.2.1"));
        }
        assert!(!limiter.is_limited(ip("192.0.2.1")));
    }
}
