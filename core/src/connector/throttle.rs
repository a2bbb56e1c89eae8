//! Login throttling per account and per client IP (Dex issue #3509; checklist K2).
//!
//! Two limits hold at once:
//!
//! - **per account** (online guessing of one user's password): the first
//!   [`ThrottlePolicy::account_free_failures`] failures are free; each further failure blocks
//!   the account for an exponentially growing delay (1 s, 2 s, 4 s, ... capped at
//!   [`ThrottlePolicy::account_max_delay`]). A success clears the account's counter; failures
//!   are forgotten [`ThrottlePolicy::account_forget_after`] after the last one.
//! - **per IP** (password spraying: one password tried against many users): at most
//!   [`ThrottlePolicy::ip_max_failures`] failures per [`ThrottlePolicy::ip_window`]; then the IP
//!   is blocked for the rest of the window. IPv6 addresses count per /64 (one host usually owns
//!   a whole /64), IPv4-mapped IPv6 addresses as their IPv4 address.
//!
//! No block outlasts its window or the maximum delay, so an attacker can slow a user down but
//! never lock them out for good; the price of per-account delays is that an attacker who keeps
//! failing can keep one account slowed down.
//!
//! The login flow calls, for each attempt:
//!
//! ```text
//! check(account, ip) ──Err(RetryAfter)──> answer "too many attempts" (HTTP 429), no verification
//!        │ Ok
//!        v
//! connector.login(...) ──None──> record_failure(account, ip)
//!                      └─Some──> record_success(account, ip)
//! ```
//!
//! The account key is whatever the user typed (unknown users are throttled like known ones, so
//! that the throttle does not reveal which users exist); it is compared case-insensitively, and
//! callers should scope it by connector (`"ldap/jane"`).
//!
//! State lives in this process: each replica keeps its own counters, so N replicas allow N times
//! the configured attempts, until flow storage gets rate-limit counters. Memory is bounded: each
//! map holds at most [`ThrottlePolicy::max_entries`] entries; when full, expired entries are
//! dropped first, then the least recently active eighth.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;

/// How strict the throttle is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottlePolicy {
    /// Failures of one account before delays start.
    pub account_free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub account_base_delay: Duration,
    /// The longest delay.
    pub account_max_delay: Duration,
    /// An account's failures are forgotten this long after its last failure.
    pub account_forget_after: Duration,
    /// Failures allowed from one IP (or IPv6 /64) per window.
    pub ip_max_failures: u32,
    /// The IP window; a blocked IP is blocked until the window ends.
    pub ip_window: Duration,
    /// The most entries kept per map (accounts, IPs).
    pub max_entries: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            account_base_delay: Duration::from_secs(1),
            account_max_delay: Duration::from_secs(15 * 60),
            account_forget_after: Duration::from_secs(60 * 60),
            ip_max_failures: 20,
            ip_window: Duration::from_secs(10 * 60),
            max_entries: 100_000,
        }
    }
}

/// The attempt is refused; the client may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed login attempts; retry after {} s", retry_secs(.0))]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds to put in a `Retry-After` header (rounded up, at least 1).
    pub fn seconds(&self) -> u64 {
        retry_secs(&self.0)
    }
}

fn retry_secs(d: &Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[derive(Debug, Clone, Copy)]
struct AccountState {
    failures: u32,
    last_failure: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct IpState {
    window_start: DateTime<Utc>,
    failures: u32,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, AccountState>,
    ips: HashMap<IpAddr, IpState>,
}

/// The login throttle; shared by all logins of the process.
#[derive(Debug)]
pub struct LoginThrottle {
    clock: SharedClock,
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn remaining(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or(Duration::ZERO)
}

/// The key an IP counts under: IPv4 as is, IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

fn account_key(account: &str) -> String {
    account.to_lowercase()
}

impl LoginThrottle {
    /// A throttle reading time from `clock`.
    pub fn new(clock: SharedClock, policy: ThrottlePolicy) -> Self {
        Self { clock, policy, state: Mutex::new(State::default()) }
    }

    /// The policy in force.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counters are plain values: a panic cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a login attempt for `account` from `ip` may go ahead; call before verifying.
    pub fn check(&self, account: &str, ip: IpAddr) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        let state = self.lock();
        let mut wait = Duration::ZERO;
        if let Some(a) = state.accounts.get(&account_key(account))
            && a.blocked_until > now
        {
            wait = wait.max(remaining(a.blocked_until, now));
        }
        if let Some(i) = state.ips.get(&ip_key(ip)) {
            let window_end = i.window_start + chrono(self.policy.ip_window);
            if window_end > now && i.failures >= self.policy.ip_max_failures {
                wait = wait.max(remaining(window_end, now));
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(RetryAfter(wait)) }
    }

    /// Counts a failed attempt (wrong password or unknown user).
    pub fn record_failure(&self, account: &str, ip: IpAddr) {
        let now = self.clock.now();
        let policy = &self.policy;
        let mut state = self.lock();

        let key = account_key(account);
        if !state.accounts.contains_key(&key) && state.accounts.len() >= policy.max_entries {
            let forget = chrono(policy.account_forget_after);
            evict(
                &mut state.accounts,
                policy.max_entries,
                |a| a.last_failure,
                |a| a.blocked_until <= now && a.last_failure + forget <= now,
            );
        }
        let forget = chrono(policy.account_forget_after);
        let a = state.accounts.entry(key).or_insert(AccountState {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        if a.last_failure + forget <= now {
            a.failures = 0;
        }
        a.failures = a.failures.saturating_add(1);
        a.last_failure = now;
        if a.failures > policy.account_free_failures {
            let doublings = (a.failures - policy.account_free_failures - 1).min(31);
            let delay = policy
                .account_base_delay
                .checked_mul(1u32 << doublings)
                .unwrap_or(policy.account_max_delay)
                .min(policy.account_max_delay);
            a.blocked_until = now + chrono(delay);
        }

        let key = ip_key(ip);
        let window = chrono(policy.ip_window);
        if !state.ips.contains_key(&key) && state.ips.len() >= policy.max_entries {
            evict(&mut state.ips, policy.max_entries, |i| i.window_start, |i| i.window_start + window <= now);
        }
        let i = state.ips.entry(key).or_insert(IpState { window_start: now, failures: 0 });
        if i.window_start + window <= now {
            *i = IpState { window_start: now, failures: 0 };
        }
        i.failures = i.failures.saturating_add(1);
    }

    /// Records a successful login: the account's failures are forgotten. The IP's failures are
    /// kept (a sprayer who knows one password must not reset their budget).
    pub fn record_success(&self, account: &str, _ip: IpAddr) {
        self.lock().accounts.remove(&account_key(account));
    }
}

/// Makes room in a full map: drops expired entries, then (if still full) the least recently
/// active eighth.
fn evict<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    activity: impl Fn(&V) -> DateTime<Utc>,
    expired: impl Fn(&V) -> bool,
) {
    map.retain(|_, v| !expired(v));
    if map.len() < max {
        return;
    }
    let mut times: Vec<DateTime<Utc>> = map.values().map(&activity).collect();
    let cut = (times.len() / 8).max(1);
    let (_, nth, _) = times.select_nth_unstable(cut - 1);
    let threshold = *nth;
    let mut removed = 0;
    map.retain(|_, v| {
        if removed < cut && activity(v) <= threshold {
            removed += 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;

    fn throttle(policy: ThrottlePolicy) -> (ManualClock, LoginThrottle) {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        (clock.clone(), LoginThrottle::new(Arc::new(clock), policy))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn advance(clock: &ManualClock, d: Duration) {
        clock.advance(chrono::Duration::from_std(d).unwrap());
    }

    #[test]
    fn wrong_passwords_for_one_user_give_a_growing_delay() {
        let (clock, t) = throttle(ThrottlePolicy::default());
        // Attempts from many addresses, so only the account limit is at play.
        let mut delays = Vec::new();
        for n in 0..20u8 {
            let from = IpAddr::from([10, 0, 0, n]);
            // Wait out any block, as a patient attacker would.
            if let Err(RetryAfter(d)) = t.check("jane@example.com", from) {
                delays.push(d);
                advance(&clock, d);
            }
            assert_eq!(t.check("JANE@example.com", from), Ok(()));
            t.record_failure("jane@example.com", from);
        }
        assert_eq!(delays.len(), 14, "the first 5 failures are free: {delays:?}");
        assert_eq!(delays[0], Duration::from_secs(1));
        assert_eq!(delays[1], Duration::from_secs(2));
        assert_eq!(delays[2], Duration::from_secs(4));
        assert!(delays.windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
        assert_eq!(delays.last(), Some(&Duration::from_secs(15 * 60)), "capped at 15 minutes");
        let Err(retry) = t.check("jane@example.com", ip("192.0.2.1")) else { panic!("not throttled") };
        assert_eq!(retry.seconds(), 15 * 60);
        // Other accounts are unaffected.
        assert_eq!(t.check("bob@example.com", ip("192.0.2.1")), Ok(()));
        // After the delay a correct login gets through and clears the counter.
        advance(&clock, retry.0);
        assert_eq!(t.check("jane@example.com", ip("192.0.2.1")), Ok(()));
        t.record_success("jane@example.com", ip("192.0.2.1"));
        t.record_failure("jane@example.com", ip("192.0.2.1"));
        assert_eq!(t.check("jane@example.com", ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn spraying_many_users_from_one_ip_is_blocked_until_the_window_ends() {
        let (clock, t) = throttle(ThrottlePolicy::default());
        let attacker = ip("203.0.113.7");
        for n in 0..20 {
            let user = format!("user{n}@example.com");
            assert_eq!(t.check(&user, attacker), Ok(()), "attempt {n}");
            t.record_failure(&user, attacker);
            advance(&clock, Duration::from_secs(5));
        }
        let Err(RetryAfter(wait)) = t.check("user20@example.com", attacker) else { panic!("not throttled") };
        assert_eq!(wait, Duration::from_secs(600 - 100));
        // Another client is not blocked.
        assert_eq!(t.check("user20@example.com", ip("198.51.100.1")), Ok(()));
        // After the window, a correct login from that IP works again.
        advance(&clock, wait);
        assert_eq!(t.check("user0@example.com", attacker), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let (_clock, t) = throttle(ThrottlePolicy { ip_max_failures: 2, ..ThrottlePolicy::default() });
        t.record_failure("a", ip("2001:db8::1"));
        t.record_failure("b", ip("2001:db8::2"));
        assert!(t.check("c", ip("2001:db8::ffff")).is_err());
        assert_eq!(t.check("c", ip("2001:db8:0:1::1")), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_after_a_while() {
        let (clock, t) = throttle(ThrottlePolicy::default());
        let from = ip("192.0.2.1");
        for _ in 0..5 {
            t.record_failure("jane", from);
        }
        advance(&clock, Duration::from_secs(2 * 3600));
        t.record_failure("jane", from);
        assert_eq!(t.check("jane", from), Ok(()), "the count restarted");
    }

    #[test]
    fn memory_stays_bounded() {
        let policy = ThrottlePolicy { max_entries: 64, ..ThrottlePolicy::default() };
        let (clock, t) = throttle(policy);
        for n in 0..1000u32 {
            t.record_failure(&format!("user{n}"), IpAddr::from(n.to_be_bytes()));
            advance(&clock, Duration::from_millis(10));
        }
        let state = t.lock();
        assert!(state.accounts.len() <= 64 && state.ips.len() <= 64);
        // The newest entries are kept.
        assert!(state.accounts.contains_key("user999"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1500)).seconds(), 2);
        assert_eq!(RetryAfter(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(
            RetryAfter(Duration::from_secs(3)).to_string(),
            "too many failed login attempts; retry after 3 s"
        );
    }
}
