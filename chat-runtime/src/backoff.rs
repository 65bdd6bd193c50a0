//! Waits between retries of work that failed and will be tried again (a
//! shard that did not answer, a NATS watch or queue that went away):
//! exponential, and jittered, so processes that failed together — every
//! gateway when a shard fails over, every pod when NATS restarts — do not
//! retry in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Endless waits from `first` doubling up to `max`, each stretched at
/// random by up to as much again.
pub fn waits(first: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Waits for reconnecting to a service: 100 ms up to 5 s.
pub fn reconnect() -> impl Iterator<Item = Duration> + Send {
    waits(Duration::from_millis(100), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_each_within_its_jitter() {
        let (first, max) = (Duration::from_millis(20), Duration::from_millis(500));
        let waits: Vec<Duration> = waits(first, max).take(12).collect();
        let mut base = first;
        for w in &waits {
            assert!(*w >= base && *w <= base * 2, "{w:?} for {base:?}");
            base = (base * 2).min(max);
        }
        assert_eq!(waits.len(), 12, "endless");
    }

    #[test]
    fn two_processes_do_not_wait_alike() {
        let one: Vec<Duration> = reconnect().take(8).collect();
        let other: Vec<Duration> = reconnect().take(8).collect();
        assert_ne!(one, other);
    }
}
