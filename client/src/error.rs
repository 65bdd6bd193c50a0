//! The client's one error: what the server refused (with its code), what
//! the server closed (with its close code), and what went wrong on the way.

use confab_protocol::ErrorCode;

/// Why a call or a session failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: a REST status with its body, or a
    /// WebSocket `error` frame.
    #[error("refused ({status}): {code}: {message}", status = status.map_or("ws".into(), |s| s.to_string()), code = code.as_str())]
    Refused {
        code: ErrorCode,
        message: String,
        /// The HTTP status, for REST calls.
        status: Option<u16>,
        /// How long the server asked the client to wait before trying again.
        retry_after_ms: Option<u64>,
    },
    /// The server closed the WebSocket with this close code.
    #[error("closed by the server: {code} {reason}")]
    Closed { code: u16, reason: String },
    /// The connection failed or dropped without a close from the server.
    #[error("connection: {0}")]
    Connection(String),
    /// The server sent something this client cannot read, or not what the
    /// call waited for.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The connection dropped before the request was answered; whether it
    /// took effect is unknown.
    #[error("the connection dropped before an answer")]
    Disconnected,
    /// The client was closed (by the caller, or by a terminal close code).
    #[error("the client is closed")]
    Stopped,
}

impl Error {
    /// Whether the same call may succeed later: the server said "try again"
    /// (`unavailable`, `internal`, `rate_limited`) or the connection failed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Refused { code, .. } => code.retryable(),
            Self::Connection(_) | Self::Disconnected => true,
            Self::Closed { code, .. } => close_action(*code) == CloseAction::Reconnect,
            Self::Unexpected(_) | Self::Stopped => false,
        }
    }

    /// The server's error code, for a refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The error a WebSocket `error` frame stands for.
    pub(crate) fn refused(code: ErrorCode, message: String, retry_after_ms: Option<u64>) -> Self {
        Self::Refused {
            code,
            message,
            status: None,
            retry_after_ms,
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::Connection(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Connection(e.to_string())
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Connection(e.to_string())
    }
}

/// What a WebSocket close code tells the client to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect (after a backoff) and resume.
    Reconnect,
    /// Stop until the user acts (log in again, update the app).
    Terminal,
}

/// The class of a close code (`docs/protocol.md`, "Close codes"). Terminal:
/// 1000 (normal), 1009 (a message too big) and 4100–4199 (authentication,
/// protocol violations). Everything else — 1012 (restart), 4000–4099 (slow
/// consumer, capacity, heartbeat, too many sessions), and any close the
/// server did not choose (1006: the connection dropped) — means reconnect.
pub fn close_action(code: u16) -> CloseAction {
    match code {
        1000 | 1009 | 4100..=4199 => CloseAction::Terminal,
        _ => CloseAction::Reconnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_classes_follow_the_protocol() {
        for code in [1000, 1009, 4100, 4101, 4102, 4103, 4199] {
            assert_eq!(close_action(code), CloseAction::Terminal, "{code}");
        }
        for code in [1001, 1006, 1011, 1012, 4000, 4001, 4002, 4003, 4099] {
            assert_eq!(close_action(code), CloseAction::Reconnect, "{code}");
        }
    }

    #[test]
    fn refusals_say_whether_to_retry() {
        let r = |code| Error::refused(code, String::new(), None).retryable();
        assert!(r(ErrorCode::Unavailable) && r(ErrorCode::RateLimited) && r(ErrorCode::Internal));
        assert!(!r(ErrorCode::NotMember) && !r(ErrorCode::Invalid));
    }
}
