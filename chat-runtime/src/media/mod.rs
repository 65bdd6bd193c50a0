//! Media sharing: photos, videos, voice notes and files through object-storage
//! buckets (DESIGN §2, the `Blobs` seam).
//!
//! # Layout
//! - [`sniff`]: what an upload is, from its bytes (pure).
//! - [`record`]: access, dedup, shares, downloads and retention as pure
//!   changes to a [`MediaRecord`](crate::model::MediaRecord).
//! - [`thumb`]: image dimensions, thumbnail and BlurHash.
//! - [`signed`]: signed, expiring download links.
//! - [`buckets`]: one `object_store` per configured bucket.
//! - [`service`]: [`Media`], the shell that streams uploads and downloads,
//!   checks what a send attaches and runs the retention sweeper; and
//!   [`record_share`], which the chat's shard calls once a message carrying
//!   media is stored.
//!
//! Objects are content-addressed: a media id is the SHA-256 of its bytes, so
//! the same file uploaded twice is stored once. Its record in the `Store`
//! says who uploaded it, where it was shared and who downloaded it; every
//! change to it is a compare-and-set.

pub mod buckets;
pub mod record;
pub mod service;
pub mod signed;
pub mod sniff;
pub mod thumb;

/// Sample media for the tests and the bench (`confab-bench abuse`).
pub mod fixtures;

pub use service::{Download, Media, Uploaded, record_share};

use crate::error::ApiError;

/// When a client refused for [`MediaError::DecodersBusy`] may retry.
pub const DECODE_RETRY_MS: u64 = 1_000;
use crate::protocol::ErrorCode;
use crate::store::StoreError;

/// Why a media request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("uploads to this bucket are limited to {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("this server takes no {kind} uploads (no media bucket is configured for them)")]
    NoBucket { kind: String },
    #[error("declared {declared:?} but the bytes are {actual}")]
    UnsupportedType { declared: String, actual: String },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
    #[error(
        "the image is {width}×{height} pixels; images are limited to {} megapixels",
        thumb::MAX_PIXELS / 1_000_000
    )]
    TooManyPixels { width: u32, height: u32 },
    #[error("the server is making other previews; retry the upload shortly")]
    DecodersBusy,
    #[error("the upload body failed: {0}")]
    Body(String),
    #[error("an upload must not be empty")]
    Empty,
    #[error("media not found")]
    NotFound,
    #[error("media was deleted by the bucket's retention policy")]
    Gone,
    #[error("you are not a member of a chat where this media was shared")]
    NotShared,
    #[error("this is a {actual} upload, not a {sent}")]
    KindMismatch { sent: String, actual: String },
    #[error("the link's signature is not valid")]
    BadLink,
    #[error("the link has expired; ask for a new one")]
    LinkExpired,
    #[error("a link's ttl must be 1 to {} seconds (7 days)", signed::MAX_TTL_SECS)]
    BadTtl,
    #[error("range not satisfiable for {size} bytes")]
    Range { size: u64 },
    #[error("the object is being deleted; retry")]
    Busy,
    #[error("media configuration: {0}")]
    Config(String),
    #[error("object storage: {0}")]
    Blobs(#[from] object_store::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        let e = match e {
            MediaError::Store(s) => return s.into(),
            other => other,
        };
        let code = match &e {
            MediaError::TooLarge { .. } | MediaError::TooManyPixels { .. } => ErrorCode::TooLarge,
            MediaError::UnsupportedType { .. }
            | MediaError::Undecodable(_)
            | MediaError::NoBucket { .. } => ErrorCode::UnsupportedMediaType,
            MediaError::Body(_)
            | MediaError::Empty
            | MediaError::KindMismatch { .. }
            | MediaError::BadTtl => ErrorCode::Invalid,
            MediaError::NotFound => ErrorCode::NotFound,
            MediaError::Gone => ErrorCode::Gone,
            // Exactly what media that does not exist answers: whether an id
            // exists is nobody's business but its readers'.
            MediaError::NotShared => {
                return ApiError::new(ErrorCode::NotFound, MediaError::NotFound.to_string());
            }
            MediaError::BadLink => ErrorCode::Forbidden,
            MediaError::LinkExpired => ErrorCode::LinkExpired,
            MediaError::Range { .. } => ErrorCode::RangeNotSatisfiable,
            MediaError::Busy => ErrorCode::Unavailable,
            MediaError::DecodersBusy => {
                let retry = std::time::Duration::from_millis(DECODE_RETRY_MS);
                return ApiError::new(ErrorCode::Unavailable, e.to_string()).retry_after(retry);
            }
            MediaError::Store(_) | MediaError::Config(_) | MediaError::Blobs(_) => {
                tracing::error!(error = %e, "media backend failure");
                return ApiError::new(ErrorCode::Internal, "object storage failure; retry");
            }
        };
        ApiError::new(code, e.to_string())
    }
}
