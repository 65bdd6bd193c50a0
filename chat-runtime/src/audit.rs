//! The audit trail: security-relevant events, each written as one structured
//! log line (target `audit`) and counted in `confab_audit_events_total` by
//! kind. Lines carry who and where, never a secret (no password, no token:
//! a revoked token is named by its id).

use std::time::Duration;

use crate::client::ClientAddr;
use crate::metrics::Metrics;
use crate::model::{ChatId, UserId};

/// One audited event.
#[derive(Debug)]
pub enum Event<'a> {
    /// A sign-in with a wrong password or an unknown phone number.
    SignInFailed { phone: &'a str, client: ClientAddr },
    /// Failures started the waits for a phone number or a client address.
    SignInLocked { key: &'a str, wait: Duration },
    /// A registration refused because its address registered too many.
    SignUpRefused { client: ClientAddr },
    /// A user signed out: the token is revoked everywhere.
    TokenRevoked { user: UserId, token_id: &'a str },
    /// An admin removed a member from a group.
    MemberRemoved {
        chat: ChatId,
        by: UserId,
        user: UserId,
    },
}

impl Event<'_> {
    /// The event's kind: the metric's label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SignInFailed { .. } => "sign_in_failed",
            Self::SignInLocked { .. } => "sign_in_locked",
            Self::SignUpRefused { .. } => "sign_up_refused",
            Self::TokenRevoked { .. } => "token_revoked",
            Self::MemberRemoved { .. } => "member_removed",
        }
    }
}

/// Logs `event` and counts it.
pub fn record(metrics: &Metrics, event: Event<'_>) {
    metrics.audit(event.kind());
    let kind = event.kind();
    match event {
        Event::SignInFailed { phone, client } => {
            tracing::info!(target: "audit", event = kind, phone, %client);
        }
        Event::SignInLocked { key, wait } => {
            tracing::warn!(target: "audit", event = kind, key, wait_secs = wait.as_secs());
        }
        Event::SignUpRefused { client } => {
            tracing::info!(target: "audit", event = kind, %client);
        }
        Event::TokenRevoked { user, token_id } => {
            tracing::info!(target: "audit", event = kind, %user, token_id);
        }
        Event::MemberRemoved { chat, by, user } => {
            tracing::info!(target: "audit", event = kind, %chat, %by, %user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_counted_by_kind() {
        let metrics = Metrics::new();
        let client = ClientAddr::UNKNOWN;
        for _ in 0..2 {
            record(
                &metrics,
                Event::SignInFailed {
                    phone: "+15550001",
                    client,
                },
            );
        }
        record(&metrics, Event::SignUpRefused { client });
        let text = metrics.render();
        assert!(
            text.contains("confab_audit_events_total{event=\"sign_in_failed\"} 2"),
            "{text}"
        );
        assert!(text.contains("confab_audit_events_total{event=\"sign_up_refused\"} 1"));
    }
}
