//! Login sessions and the failed-login limiter, both in memory (a restart logs everyone out
//! and forgets failed logins).
//!
//! - [`Sessions`]: random 256-bit tokens (hex) → the account that logged in; a session ends
//!   when idle longer than `idle`, older than `max_age`, at logout, or when its account is
//!   removed. At most [`MAX_SESSIONS`]; expired ones are pruned at each login.
//! - [`LoginLimiter`]: failed logins counted per account name and per client address;
//!   [`FREE_PER_NAME`] and [`FREE_PER_IP`] failures within [`WINDOW`] cost nothing, each
//!   further one locks for 1 s, 2 s, 4 s … up to [`MAX_DELAY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::accounts::Account;

/// Most sessions held at once; past it, the session idle the longest is dropped.
pub const MAX_SESSIONS: usize = 10_000;
/// How often a login drops the expired sessions.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Open sessions.
pub struct Sessions {
    idle: Duration,
    max_age: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    map: HashMap<String, Session>,
    /// When expired sessions were last dropped.
    pruned: Option<Instant>,
}

struct Session {
    account: Account,
    created: Instant,
    seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant, idle: Duration, max_age: Duration) -> bool {
        now.saturating_duration_since(self.seen) > idle
            || now.saturating_duration_since(self.created) > max_age
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("Sessions")
            .field("idle", &self.idle)
            .field("max_age", &self.max_age)
            .field("len", &self.len())
            .finish()
    }
}

impl Sessions {
    /// Sessions that end after `idle` without a request, or `max_age` after the login.
    pub fn new(idle: Duration, max_age: Duration) -> Sessions {
        Sessions {
            idle,
            max_age,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                pruned: None,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `account`: its token, 32 bytes from the OS-seeded CSPRNG in hex.
    pub fn create(&self, account: Account) -> String {
        self.create_at(account, Instant::now())
    }

    /// [`Sessions::create`] at `now`.
    pub fn create_at(&self, account: Account, now: Instant) -> String {
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut token);
        let token = hex(&token);
        let mut inner = self.inner();
        let Inner { map, pruned } = &mut *inner;
        // Expired sessions are dropped at a login once a minute, and whenever the map is full.
        let due = pruned.is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_EVERY);
        if due || map.len() >= MAX_SESSIONS {
            let (idle, max_age) = (self.idle, self.max_age);
            map.retain(|_, s| !s.expired(now, idle, max_age));
            *pruned = Some(now);
        }
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(t, _)| t.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            Session {
                account,
                created: now,
                seen: now,
            },
        );
        token
    }

    /// The account of a valid session (its last use is now); `None` when the token is
    /// unknown or the session expired (an expired one is removed).
    pub fn get(&self, token: &str) -> Option<Account> {
        self.get_at(token, Instant::now())
    }

    /// [`Sessions::get`] at `now`.
    pub fn get_at(&self, token: &str, now: Instant) -> Option<Account> {
        let map = &mut self.inner().map;
        let s = map.get_mut(token)?;
        if s.expired(now, self.idle, self.max_age) {
            map.remove(token);
            return None;
        }
        s.seen = s.seen.max(now);
        Some(s.account.clone())
    }

    /// End one session (logout).
    pub fn remove(&self, token: &str) {
        self.inner().map.remove(token);
    }

    /// End every session of the account `name`.
    pub fn remove_user(&self, name: &str) {
        self.inner().map.retain(|_, s| s.account.name != name);
    }

    /// Sessions held (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.inner().map.len()
    }

    /// No sessions held.
    pub fn is_empty(&self) -> bool {
        self.inner().map.is_empty()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Failures per account name within [`WINDOW`] that cost nothing.
pub const FREE_PER_NAME: u32 = 5;
/// Failures per client address within [`WINDOW`] that cost nothing.
pub const FREE_PER_IP: u32 = 20;
/// How long failures are remembered: a name or address is forgotten once it has been this
/// long without a failure and without a lock.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The lock after the first failure past the free ones; it doubles with each further one.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest lock.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Most names (and, separately, most addresses) remembered.
pub const MAX_ENTRIES: usize = 10_000;
/// An attempt let through by [`LoginLimiter::check`] and never reported as failed or
/// succeeded (a handler that panicked) stops counting after this.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts failed logins per account name and per client address, and says when to refuse.
///
/// Use: `check` before verifying a password (refuse with 429 and `Retry-After` on `Err`),
/// then exactly one of `failed` or `succeeded`. `check` reserves the attempt: while it is
/// being verified it counts as a failure for the next `check`, so many requests sent at
/// once cannot each get a free guess before the first failure is counted.
///
/// IPv6 clients are counted per /64 (one customer's usual allocation); an IPv4-mapped IPv6
/// address counts as the IPv4 address.
pub struct LoginLimiter {
    inner: Mutex<Limits>,
}

struct Limits {
    names: HashMap<String, Entry>,
    ips: HashMap<IpAddr, Entry>,
    last_prune: Option<Instant>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    /// Failures since the entry was last forgotten.
    failures: u32,
    /// The last failure.
    last: Option<Instant>,
    /// Refused until then.
    locked_until: Option<Instant>,
    /// When each attempt in flight was let through.
    pending: Vec<Instant>,
}

impl Entry {
    /// Nothing to remember at `now`.
    fn stale(&self, now: Instant) -> bool {
        self.pending.is_empty()
            && match self.locked_until.into_iter().chain(self.last).max() {
                None => true,
                Some(t) => now.saturating_duration_since(t) >= WINDOW,
            }
    }

    fn tidy(&mut self, now: Instant) {
        self.pending
            .retain(|&t| now.saturating_duration_since(t) < PENDING_TIMEOUT);
        if self.failures > 0 && self.stale(now) {
            *self = Entry::default();
        }
    }

    /// How long until an attempt is allowed (zero: now).
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if let Some(until) = self.locked_until {
            if until > now {
                return until - now;
            }
        }
        let pending = self.pending.len() as u32;
        if pending > 0 && self.failures + pending >= free {
            // Past the free attempts, one at a time: wait for the one in flight.
            return FIRST_DELAY;
        }
        Duration::ZERO
    }

    fn fail(&mut self, free: u32, now: Instant) {
        self.pending.pop();
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        if self.failures > free {
            let doublings = (self.failures - free - 1).min(31);
            let delay = FIRST_DELAY.saturating_mul(1u32 << doublings).min(MAX_DELAY);
            self.locked_until = Some(now + delay);
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> LoginLimiter {
        LoginLimiter::new()
    }
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.lock();
        f.debug_struct("LoginLimiter")
            .field("names", &l.names.len())
            .field("ips", &l.ips.len())
            .finish()
    }
}

impl LoginLimiter {
    /// Nothing counted yet.
    pub fn new() -> LoginLimiter {
        LoginLimiter {
            inner: Mutex::new(Limits {
                names: HashMap::new(),
                ips: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Limits> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May `name` try a password from `ip` at `now`? `Err(retry_after)` when the name or the
    /// address is locked. `Ok` reserves the attempt: report it with
    /// [`LoginLimiter::failed`] or [`LoginLimiter::succeeded`].
    pub fn check(&self, name: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut l = self.lock();
        l.prune(now);
        let name = name_key(name);
        let ip = ip_key(ip);
        let wait_name = l.names.get_mut(name).map_or(Duration::ZERO, |e| {
            e.tidy(now);
            e.wait(FREE_PER_NAME, now)
        });
        let wait_ip = l.ips.get_mut(&ip).map_or(Duration::ZERO, |e| {
            e.tidy(now);
            e.wait(FREE_PER_IP, now)
        });
        let wait = wait_name.max(wait_ip);
        if !wait.is_zero() {
            return Err(wait);
        }
        entry(&mut l.names, name.to_owned(), now).pending.push(now);
        entry(&mut l.ips, ip, now).pending.push(now);
        Ok(())
    }

    /// The password was wrong (or the name unknown).
    pub fn failed(&self, name: &str, ip: IpAddr, now: Instant) {
        let mut l = self.lock();
        l.prune(now);
        let e = entry(&mut l.names, name_key(name).to_owned(), now);
        e.tidy(now);
        e.fail(FREE_PER_NAME, now);
        let e = entry(&mut l.ips, ip_key(ip), now);
        e.tidy(now);
        e.fail(FREE_PER_IP, now);
    }

    /// The password was right: the name's failures are forgotten (the address's are not,
    /// so one known account cannot wash out guesses at others).
    pub fn succeeded(&self, name: &str, ip: IpAddr) {
        let mut l = self.lock();
        l.names.remove(name_key(name));
        if let Some(e) = l.ips.get_mut(&ip_key(ip)) {
            e.pending.pop();
        }
    }

    /// Names and addresses remembered.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let l = self.lock();
        (l.names.len(), l.ips.len())
    }
}

impl Limits {
    /// Forget stale entries, at most once a minute.
    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_prune = Some(now);
        prune_map(&mut self.names, now);
        prune_map(&mut self.ips, now);
    }
}

fn prune_map<K>(map: &mut HashMap<K, Entry>, now: Instant) {
    map.retain(|_, e| {
        e.tidy(now);
        !e.stale(now)
    });
}

/// The entry for `key`, made room for when the map is full: stale entries first, then the
/// one whose lock ends (or last failure was) earliest.
fn entry<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Entry>,
    key: K,
    now: Instant,
) -> &mut Entry {
    if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
        prune_map(map, now);
        while map.len() >= MAX_ENTRIES {
            let Some(k) = map
                .iter()
                .min_by_key(|(_, e)| e.locked_until.into_iter().chain(e.last).max())
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&k);
        }
    }
    map.entry(key).or_default()
}

/// Names are counted as given, cut to 64 bytes (longer ones are not valid account names).
fn name_key(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// IPv4 as is (also when mapped into IPv6); IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::division::Code;
    use crate::security::Role;

    fn account(name: &str) -> Account {
        Account {
            name: name.into(),
            role: Role::Viewer,
            division: Code::parse("61").unwrap(),
            credential: 0,
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn token_is_64_hex_digits_and_unique() {
        let s = Sessions::new(MIN, 60 * MIN);
        let a = s.create(account("wang"));
        let b = s.create(account("wang"));
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(&a), Some(account("wang")));
        assert_eq!(s.get("nope"), None);
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn idle_expiry_and_last_seen() {
        let t0 = Instant::now();
        let s = Sessions::new(30 * MIN, 12 * 60 * MIN);
        let tok = s.create_at(account("wang"), t0);
        // Used every 20 minutes: stays.
        for i in 1..=5 {
            assert!(s.get_at(&tok, t0 + i * 20 * MIN).is_some(), "use {i}");
        }
        // 31 minutes without use: gone, and removed.
        assert_eq!(s.get_at(&tok, t0 + 100 * MIN + 31 * MIN), None);
        assert_eq!(s.len(), 0);
        assert_eq!(s.get_at(&tok, t0 + 100 * MIN + 32 * MIN), None);
    }

    #[test]
    fn max_age_expiry() {
        let t0 = Instant::now();
        let s = Sessions::new(30 * MIN, 60 * MIN);
        let tok = s.create_at(account("wang"), t0);
        for i in 1..=6 {
            assert!(s.get_at(&tok, t0 + i * 10 * MIN).is_some());
        }
        // In use, but older than max_age.
        assert_eq!(s.get_at(&tok, t0 + 61 * MIN), None);
        assert!(s.is_empty());
    }

    #[test]
    fn remove_and_remove_user() {
        let s = Sessions::new(MIN, 60 * MIN);
        let a = s.create(account("wang"));
        let b = s.create(account("wang"));
        let c = s.create(account("li"));
        s.remove(&a);
        assert_eq!(s.get(&a), None);
        assert!(s.get(&b).is_some());
        s.remove_user("wang");
        assert_eq!(s.get(&b), None);
        assert_eq!(s.get(&c), Some(account("li")));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn create_prunes_expired_and_caps() {
        let t0 = Instant::now();
        let s = Sessions::new(MIN, 60 * MIN);
        for _ in 0..100 {
            s.create_at(account("wang"), t0);
        }
        assert_eq!(s.len(), 100);
        // Two minutes later all of them are idle too long: a login prunes them.
        let fresh = s.create_at(account("li"), t0 + 2 * MIN);
        assert_eq!(s.len(), 1);
        assert!(s.get_at(&fresh, t0 + 2 * MIN).is_some());

        // The cap: the session idle the longest goes first.
        let s = Sessions::new(60 * MIN, 600 * MIN);
        let first = s.create_at(account("first"), t0);
        let second = s.create_at(account("second"), t0 + Duration::from_millis(1));
        assert!(s.get_at(&first, t0 + Duration::from_millis(3)).is_some());
        let t = t0 + Duration::from_millis(4);
        for _ in 2..MAX_SESSIONS {
            s.create_at(account("x"), t);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        s.create_at(account("y"), t);
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.get_at(&second, t), None, "idle the longest: dropped");
        assert!(s.get_at(&first, t).is_some(), "used since: kept");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One failed login: check passes, then failed.
    fn fail(l: &LoginLimiter, name: &str, from: &str, now: Instant) {
        l.check(name, ip(from), now).expect("allowed");
        l.failed(name, ip(from), now);
    }

    #[test]
    fn sixth_failure_locks_and_delay_doubles() {
        let l = LoginLimiter::new();
        let mut now = Instant::now();
        for _ in 0..5 {
            fail(&l, "wang", "10.0.0.1", now);
        }
        // Five failures are free.
        assert_eq!(l.check("wang", ip("10.0.0.1"), now), Ok(()));
        l.failed("wang", ip("10.0.0.1"), now);
        // The 6th locks for 1 s, from any address.
        assert_eq!(
            l.check("wang", ip("10.0.0.9"), now),
            Err(Duration::from_secs(1))
        );
        assert_eq!(
            l.check("wang", ip("10.0.0.1"), now + Duration::from_millis(400)),
            Err(Duration::from_millis(600))
        );
        // Other names are not locked.
        assert_eq!(l.check("li", ip("10.0.0.1"), now), Ok(()));
        l.succeeded("li", ip("10.0.0.1"));
        // Each further failure doubles the lock: 2, 4, 8 … s.
        let mut expected = Duration::from_secs(1);
        for _ in 0..12 {
            now += expected;
            fail(&l, "wang", "10.0.0.1", now);
            expected = (expected * 2).min(MAX_DELAY);
            assert_eq!(l.check("wang", ip("10.0.0.1"), now), Err(expected));
        }
        // Capped at 15 minutes.
        assert_eq!(expected, MAX_DELAY);
    }

    #[test]
    fn success_clears_the_name() {
        let l = LoginLimiter::new();
        let now = Instant::now();
        for _ in 0..5 {
            fail(&l, "wang", "10.0.0.1", now);
        }
        l.check("wang", ip("10.0.0.1"), now).unwrap();
        l.succeeded("wang", ip("10.0.0.1"));
        // Five free failures again.
        for _ in 0..5 {
            fail(&l, "wang", "10.0.0.1", now);
        }
        fail(&l, "wang", "10.0.0.1", now);
        assert!(l.check("wang", ip("10.0.0.1"), now).is_err());
        // A success does not clear a lock it could not have reached… but once the lock is
        // over, a right password clears the count.
        let later = now + Duration::from_secs(1);
        l.check("wang", ip("10.0.0.1"), later).unwrap();
        l.succeeded("wang", ip("10.0.0.1"));
        assert_eq!(l.check("wang", ip("10.0.0.1"), later), Ok(()));
    }

    #[test]
    fn ip_limit_independent_of_names() {
        let l = LoginLimiter::new();
        let now = Instant::now();
        // 20 different names from one address: no name reaches its limit, the address does.
        for i in 0..20 {
            fail(&l, &format!("user{i}"), "192.0.2.7", now);
        }
        assert_eq!(l.check("user99", ip("192.0.2.7"), now), Ok(()));
        l.failed("user99", ip("192.0.2.7"), now);
        assert_eq!(
            l.check("user100", ip("192.0.2.7"), now),
            Err(Duration::from_secs(1))
        );
        // The same names from elsewhere are fine.
        assert_eq!(l.check("user100", ip("192.0.2.8"), now), Ok(()));
        l.succeeded("user100", ip("192.0.2.8"));
        // A success from the address does not clear the address's count.
        let later = now + Duration::from_secs(1);
        l.check("user0", ip("192.0.2.7"), later).unwrap();
        l.succeeded("user0", ip("192.0.2.7"));
        l.check("user1", ip("192.0.2.7"), later).unwrap();
        l.failed("user1", ip("192.0.2.7"), later);
        assert_eq!(
            l.check("user2", ip("192.0.2.7"), later),
            Err(Duration::from_secs(2))
        );
    }

    #[test]
    fn ipv6_counted_per_64() {
        let l = LoginLimiter::new();
        let now = Instant::now();
        for i in 0..21 {
            fail(&l, &format!("u{i}"), &format!("2001:db8:1:2::{i:x}"), now);
        }
        assert!(l.check("x", ip("2001:db8:1:2:ffff::1"), now).is_err());
        assert!(l.check("x", ip("2001:db8:1:3::1"), now).is_ok());
        // IPv4-mapped = IPv4.
        for i in 0..21 {
            fail(&l, &format!("v{i}"), "::ffff:192.0.2.1", now);
        }
        assert!(l.check("x", ip("192.0.2.1"), now).is_err());
    }

    #[test]
    fn concurrent_attempts_do_not_each_get_a_free_guess() {
        let l = LoginLimiter::new();
        let now = Instant::now();
        // Five requests at once pass (the free ones), the sixth waits for them.
        for _ in 0..5 {
            l.check("wang", ip("10.0.0.1"), now).unwrap();
        }
        assert!(l.check("wang", ip("10.0.0.2"), now).is_err());
        for _ in 0..5 {
            l.failed("wang", ip("10.0.0.1"), now);
        }
        // Past the free ones: one at a time.
        l.check("wang", ip("10.0.0.1"), now).unwrap();
        assert!(l.check("wang", ip("10.0.0.1"), now).is_err());
        l.failed("wang", ip("10.0.0.1"), now);
        assert_eq!(
            l.check("wang", ip("10.0.0.1"), now),
            Err(Duration::from_secs(1))
        );
        // A reservation never reported stops counting after PENDING_TIMEOUT.
        let l = LoginLimiter::new();
        for _ in 0..5 {
            l.check("li", ip("10.0.0.1"), now).unwrap();
        }
        assert!(l.check("li", ip("10.0.0.1"), now).is_err());
        assert!(l.check("li", ip("10.0.0.1"), now + PENDING_TIMEOUT).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_the_window() {
        let l = LoginLimiter::new();
        let now = Instant::now();
        for _ in 0..5 {
            fail(&l, "wang", "10.0.0.1", now);
        }
        // 15 minutes later the five are forgotten: five more are free.
        let later = now + WINDOW;
        for _ in 0..5 {
            fail(&l, "wang", "10.0.0.1", later);
        }
        assert_eq!(l.check("wang", ip("10.0.0.1"), later), Ok(()));
        l.failed("wang", ip("10.0.0.1"), later);
        assert!(l.check("wang", ip("10.0.0.1"), later).is_err());
        // A lock's window starts when the lock ends: still counted right after it.
        let after_lock = later + Duration::from_secs(1);
        fail(&l, "wang", "10.0.0.1", after_lock);
        assert_eq!(
            l.check("wang", ip("10.0.0.1"), after_lock),
            Err(Duration::from_secs(2))
        );
    }

    #[test]
    fn pruning_bounds_memory() {
        let l = LoginLimiter::new();
        let t0 = Instant::now();
        for i in 0..1000 {
            fail(
                &l,
                &format!("n{i}"),
                &format!("10.0.{}.{}", i / 256, i % 256),
                t0,
            );
        }
        assert_eq!(l.sizes(), (1000, 1000));
        // After the window, the next call prunes everything stale.
        fail(&l, "late", "10.9.9.9", t0 + WINDOW + MIN);
        assert_eq!(l.sizes(), (1, 1));

        // The cap: never more than MAX_ENTRIES names, even within the window.
        let l = LoginLimiter::new();
        for i in 0..MAX_ENTRIES + 50 {
            let t = t0 + Duration::from_millis(i as u64);
            l.check(&format!("n{i}"), ip("10.0.0.1"), t).ok();
            l.failed(&format!("n{i}"), ip("10.0.0.1"), t);
        }
        let (names, ips) = l.sizes();
        assert_eq!(names, MAX_ENTRIES);
        assert_eq!(ips, 1);
        // Long names are counted by their first 64 bytes.
        let long = "é".repeat(100);
        assert_eq!(name_key(&long).len(), 64);
    }
}
