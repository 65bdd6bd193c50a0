//! Failed sign-ins per account (or per client address): the first few are
//! free, then each attempt must wait twice as long as the last (1 s, 2 s,
//! 4 s ... up to 15 minutes) until one succeeds or 15 quiet minutes pass.
//! Guessing a password stays slow however many connections the guesser
//! opens. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failures allowed per account before waits start.
pub const FREE_FAILURES: u32 = 5;
/// Failures allowed per client address before waits start: one address can
/// be a whole office behind NAT, and only a quiet spell clears it.
pub const ADDRESS_FREE_FAILURES: u32 = 30;
/// The longest wait between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Accounts tracked at most; the oldest quiet ones are forgotten first.
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last: Instant,
}

/// The failure record of every account that failed lately.
#[derive(Debug)]
pub struct Guard {
    records: HashMap<String, Record>,
    free: u32,
}

impl Default for Guard {
    fn default() -> Self {
        Self::new(FREE_FAILURES)
    }
}

impl Guard {
    /// A guard that lets `free` failures through before waits start.
    pub fn new(free: u32) -> Self {
        Self {
            records: HashMap::new(),
            free,
        }
    }

    fn wait_after(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free) {
            None => Duration::ZERO,
            Some(extra) => Duration::from_secs(1u64 << extra.min(10)).min(MAX_WAIT),
        }
    }

    /// `Err(wait)` when `account` must wait before another attempt.
    pub fn check(&self, account: &str, now: Instant) -> Result<(), Duration> {
        let Some(r) = self.records.get(account) else {
            return Ok(());
        };
        let ready = r.last + self.wait_after(r.failures);
        if now < ready {
            Err(ready - now)
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt on `account`; the wait it starts, when this
    /// failure is the one after which attempts must wait.
    pub fn failed(&mut self, account: &str, now: Instant) -> Option<Duration> {
        if self.records.len() >= MAX_TRACKED && !self.records.contains_key(account) {
            self.forget_quiet(now);
        }
        let r = self.records.entry(account.to_owned()).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(r.last) >= MAX_WAIT {
            r.failures = 0; // quiet long enough: forgiven
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let failures = r.failures;
        (failures == self.free).then(|| self.wait_after(failures))
    }

    /// A successful sign-in clears `account`'s record.
    pub fn succeeded(&mut self, account: &str) {
        self.records.remove(account);
    }

    /// Drops records whose wait is long over, or (if that frees nothing)
    /// the half that failed longest ago.
    fn forget_quiet(&mut self, now: Instant) {
        self.records
            .retain(|_, r| now.duration_since(r.last) < MAX_WAIT);
        if self.records.len() >= MAX_TRACKED {
            let mut lasts: Vec<Instant> = self.records.values().map(|r| r.last).collect();
            lasts.sort();
            let cut = lasts[lasts.len() / 2];
            self.records.retain(|_, r| r.last > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double() {
        let mut g = Guard::default();
        let t0 = Instant::now();
        for i in 1..=FREE_FAILURES {
            assert_eq!(g.check("+1555", t0), Ok(()));
            let locked = g.failed("+1555", t0);
            assert_eq!(locked.is_some(), i == FREE_FAILURES, "locks once, at {i}");
        }
        // The sixth attempt waits 1 s, the next 2 s, and so on.
        assert_eq!(g.check("+1555", t0), Err(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.check("+1555", t1), Ok(()));
        g.failed("+1555", t1);
        assert_eq!(g.check("+1555", t1), Err(Duration::from_secs(2)));
        assert_eq!(
            g.check("+1666", t1),
            Ok(()),
            "other accounts are not affected"
        );
    }

    #[test]
    fn a_quiet_spell_forgives_and_the_free_count_is_per_guard() {
        let mut g = Guard::new(2);
        let t = Instant::now();
        for _ in 0..2 {
            g.failed("10.0.0.1", t);
        }
        assert_eq!(g.check("10.0.0.1", t), Err(Duration::from_secs(1)));
        let later = t + MAX_WAIT;
        g.failed("10.0.0.1", later);
        assert_eq!(g.check("10.0.0.1", later), Ok(()), "counting starts over");
    }

    #[test]
    fn a_success_clears_and_waits_are_capped() {
        let mut g = Guard::default();
        let t = Instant::now();
        for _ in 0..100 {
            g.failed("a", t);
        }
        assert_eq!(g.check("a", t), Err(MAX_WAIT));
        g.succeeded("a");
        assert_eq!(g.check("a", t), Ok(()));
    }
}
