//! The core's error: a stable [`ErrorCode`] plus a message for humans.
//!
//! Everything the core refuses (sessions, sequencing, REST) is one of these;
//! the WebSocket shell turns it into an `error` frame and the REST shell into
//! an HTTP status with the same code.

use crate::protocol::ErrorCode;
use crate::store::StoreError;

/// What a backend failure came from (a driver's, a file's, a client's own
/// error), kept as the source of the seams' errors.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A refused or failed request. Serializable: shards answer gateways with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `rate_limited`: when the client may try again.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn not_member() -> Self {
        Self::new(ErrorCode::NotMember, "you are not a member of this chat")
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    /// `self`, telling the client when to try again (`wait`, at least 1 ms).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_ms = Some(wait.as_millis().max(1) as u64);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(taken) => {
                Self::new(ErrorCode::Conflict, format!("{taken} already exists"))
            }
            StoreError::Backend(cause) => {
                tracing::error!(error = %cause, "store failure");
                Self::new(ErrorCode::Internal, "storage failure; retry the request")
            }
        }
    }
}
