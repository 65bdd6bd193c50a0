//! What a push service's answer means for a job: done, try again later, or
//! give up (dead letter). Pure.

use std::time::Duration;

/// Attempts per device before a job is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; each further one triples, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// A provider's answer for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The push service is away, overloaded or throttling; `after` is its
    /// `Retry-After`, if it sent one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The token is no longer valid (app uninstalled, token rotated): the
    /// device is forgotten.
    TokenGone,
    /// Refused for good (malformed request, bad credentials, no provider for
    /// the platform): retrying cannot help.
    Rejected(String),
}

/// What the notifier does with a device job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge: nothing more to do.
    Done,
    /// Acknowledge and forget the device.
    ForgetDevice,
    /// Hand it back to the queue, to come again after the delay.
    RetryAfter(Duration),
    /// Acknowledge and record it in the dead-letter queue with the reason.
    DeadLetter(String),
}

/// The delay before attempt `attempt + 1` (attempts count from 1).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 3u32.saturating_pow(attempt.saturating_sub(1));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// What to do after attempt `attempt` ended in `outcome`.
pub fn decide(attempt: u32, outcome: Outcome) -> Action {
    match outcome {
        Outcome::Delivered => Action::Done,
        Outcome::TokenGone => Action::ForgetDevice,
        Outcome::Rejected(reason) => Action::DeadLetter(reason),
        Outcome::Retry { reason, .. } if attempt >= MAX_ATTEMPTS => {
            Action::DeadLetter(format!("gave up after {attempt} attempts: {reason}"))
        }
        Outcome::Retry { after, .. } => {
            // Honour the service's Retry-After, within reason.
            let delay = after.map_or_else(|| backoff(attempt), |a| a.min(MAX_BACKOFF));
            Action::RetryAfter(delay.max(Duration::from_millis(100)))
        }
    }
}

/// How an HTTP status from a push service reads, where the service follows
/// the usual conventions (FCM, APNs and webhooks all do).
pub fn from_status(status: u16, retry_after: Option<Duration>, detail: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::TokenGone,
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("{status}: {detail}"),
            after: retry_after,
        },
        _ => Outcome::Rejected(format!("{status}: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            reason: "503".into(),
            after,
        }
    }

    #[test]
    fn backoff_triples_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(6));
        assert_eq!(backoff(3), Duration::from_secs(18));
        assert_eq!(backoff(20), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn transient_failures_retry_until_the_last_attempt_then_dead_letter() {
        assert_eq!(decide(1, retry(None)), Action::RetryAfter(backoff(1)));
        let retry_after = Some(Duration::from_secs(30));
        assert_eq!(
            decide(2, retry(retry_after)),
            Action::RetryAfter(Duration::from_secs(30))
        );
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(decide(2, retry(huge)), Action::RetryAfter(MAX_BACKOFF));
        assert!(matches!(
            decide(MAX_ATTEMPTS, retry(None)),
            Action::DeadLetter(r) if r.contains("gave up after 8 attempts")
        ));
    }

    #[test]
    fn gone_tokens_are_forgotten_and_refusals_dead_lettered_at_once() {
        assert_eq!(decide(1, Outcome::Delivered), Action::Done);
        assert_eq!(decide(1, Outcome::TokenGone), Action::ForgetDevice);
        assert_eq!(
            decide(1, Outcome::Rejected("401: bad key".into())),
            Action::DeadLetter("401: bad key".into())
        );
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(from_status(200, None, ""), Outcome::Delivered);
        assert_eq!(from_status(410, None, ""), Outcome::TokenGone);
        assert!(matches!(from_status(429, None, ""), Outcome::Retry { .. }));
        assert!(matches!(from_status(503, None, ""), Outcome::Retry { .. }));
        assert!(matches!(from_status(400, None, ""), Outcome::Rejected(_)));
        assert!(matches!(from_status(403, None, ""), Outcome::Rejected(_)));
    }
}
