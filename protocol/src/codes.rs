//! Stable client-facing codes: error codes carried in `error` frames and HTTP
//! bodies, and WebSocket close codes that say "reconnect" or "terminal".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a request failed. The string form is stable and documented in
/// `docs/protocol.md`; clients switch on it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object with a string `type`.
    BadFrame,
    /// The frame's `type` is not one this server knows.
    UnknownType,
    /// A field is missing or has the wrong type or an invalid value.
    Invalid,
    /// The frame or body is larger than the server accepts.
    TooLarge,
    /// No valid token was presented.
    Unauthenticated,
    /// The token has expired; log in again.
    TokenExpired,
    /// The token was revoked by a logout.
    TokenRevoked,
    /// Wrong phone number or password.
    BadCredentials,
    /// The chat or user does not exist.
    NotFound,
    /// The user is not a member of the chat.
    NotMember,
    /// The user may not do this (for example: not a group admin, or an
    /// invite that is wrong or was reset).
    Forbidden,
    /// An admin removed the user from the group; only an admin can add them back.
    Banned,
    /// The group already has the maximum of 100 members.
    GroupFull,
    /// The phone number is already registered.
    Conflict,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The server is at capacity or shutting down; retry later.
    Unavailable,
    /// An unexpected server failure; the request may be retried.
    Internal,
    /// An upload's bytes are not a type its declared kind accepts.
    UnsupportedMediaType,
    /// The media was deleted by its bucket's retention policy.
    Gone,
    /// A signed media link has expired.
    LinkExpired,
    /// A `Range` header asks for bytes the media does not have.
    RangeNotSatisfiable,
    /// The request's body did not arrive in time (the connection is closed).
    Timeout,
}

impl ErrorCode {
    /// The HTTP status the REST API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadFrame | Self::UnknownType | Self::Invalid => 400,
            Self::TooLarge => 413,
            Self::Unauthenticated | Self::TokenExpired | Self::TokenRevoked => 401,
            Self::BadCredentials => 401,
            Self::NotFound => 404,
            Self::NotMember | Self::Forbidden | Self::Banned => 403,
            Self::GroupFull | Self::Conflict => 409,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
            Self::UnsupportedMediaType => 415,
            Self::Gone => 410,
            Self::LinkExpired => 403,
            Self::RangeNotSatisfiable => 416,
            Self::Timeout => 408,
        }
    }

    /// Whether the same request may succeed later (a send: with the same
    /// `client_msg_id`): the server was busy or failing, not refusing it.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::Internal | Self::RateLimited)
    }

    /// The code's stable string form.
    /// The code as clients see it (`rate_limited`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the client logged out or asked to close.
    Normal,
    /// 1009: a message beyond the WebSocket layer's limit.
    MessageTooBig,
    /// 1012: the server is restarting; reconnect (to any gateway) and resume.
    ServerRestart,
    /// 4000: the connection fell too far behind; reconnect and resume.
    SlowConsumer,
    /// 4001: the server is at its connection limit; reconnect later.
    TryAgainLater,
    /// 4002: no heartbeat within the allowed time; reconnect and resume.
    HeartbeatTimeout,
    /// 4003: the user has as many sessions open as the server allows;
    /// reconnect later (or close another device's session).
    TooManySessions,
    /// 4100: the token is missing, invalid or expired; log in again.
    Unauthenticated,
    /// 4101: no `hello` frame arrived in time.
    AuthTimeout,
    /// 4102: the client broke the protocol (e.g. a second `hello`, or too many bad frames).
    ProtocolViolation,
    /// 4103: the session's token was revoked (logout).
    TokenRevoked,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::MessageTooBig => 1009,
            Self::ServerRestart => 1012,
            Self::SlowConsumer => 4000,
            Self::TryAgainLater => 4001,
            Self::HeartbeatTimeout => 4002,
            Self::TooManySessions => 4003,
            Self::Unauthenticated => 4100,
            Self::AuthTimeout => 4101,
            Self::ProtocolViolation => 4102,
            Self::TokenRevoked => 4103,
        }
    }

    /// Short reason sent in the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Normal => "bye",
            Self::MessageTooBig => "message too big",
            Self::ServerRestart => "server restart",
            Self::SlowConsumer => "slow consumer",
            Self::TryAgainLater => "try again later",
            Self::HeartbeatTimeout => "heartbeat timeout",
            Self::TooManySessions => "too many sessions for this user",
            Self::Unauthenticated => "unauthenticated",
            Self::AuthTimeout => "auth timeout",
            Self::ProtocolViolation => "protocol violation",
            Self::TokenRevoked => "token revoked",
        }
    }

    /// Whether a client should reconnect (and resume) after this close.
    pub fn should_reconnect(self) -> bool {
        matches!(self.code(), 1012 | 4000..=4099)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_strings_match_serde() {
        use strum::IntoEnumIterator;
        assert_eq!(ErrorCode::iter().count(), 22);
        for code in ErrorCode::iter() {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(
            ErrorCode::UnsupportedMediaType.as_str(),
            "unsupported_media_type"
        );
    }

    #[test]
    fn close_code_classes() {
        assert!(CloseCode::SlowConsumer.should_reconnect());
        assert!(CloseCode::ServerRestart.should_reconnect());
        assert!(!CloseCode::Unauthenticated.should_reconnect());
        assert!(!CloseCode::Normal.should_reconnect());
    }
}
