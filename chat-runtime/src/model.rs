//! Domain types shared by every layer of the server: what the wire carries
//! (re-exported from the protocol crate) and what only the server keeps —
//! accounts with their password hashes, chats' metadata, media records.
//!
//! Plain data with serde derives; no I/O.

use serde::{Deserialize, Serialize};

pub use confab_protocol::model::*;

/// A registered account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// E.164-style phone number; unique across users.
    pub phone: String,
    pub display_name: String,
    /// Argon2 PHC string; never leaves the server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_hash: String,
    pub created_at: i64,
}

/// A chat's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    pub id: ChatId,
    pub kind: ChatKind,
    /// Group title; empty for direct chats.
    #[serde(default)]
    pub title: String,
    pub created_by: UserId,
    pub created_at: i64,
}

/// Lifecycle of a stored media object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    /// The object is in its bucket and may be downloaded.
    Live,
    /// The retention sweeper is deleting the object; uploads of the same
    /// bytes wait until it is done.
    Deleting,
    /// The object is gone (retention); a new upload of the bytes revives it.
    Deleted,
}

/// A media's sharing in one chat: the message that carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub chat_id: ChatId,
    /// Seq of the (latest) message carrying it, recorded by the chat's shard
    /// once that message is stored. 0 only in records of earlier versions,
    /// which recorded a share before its message was stored.
    pub seq: Seq,
    pub by: UserId,
}

/// Everything the server knows about one media object. Stored as one
/// record and changed by compare-and-set on `version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub id: MediaId,
    /// Name of the bucket that holds the object.
    pub bucket: String,
    pub kind: MediaKind,
    #[serde(flatten)]
    pub facts: MediaFacts,
    /// Users who uploaded these bytes (each proved they hold them).
    pub uploaders: Vec<UserId>,
    pub shares: Vec<Share>,
    /// Recipients who fetched the whole object (kept for delete-after-download).
    #[serde(default)]
    pub downloads: Vec<UserId>,
    pub state: MediaState,
    pub created_at: i64,
    /// Last upload or share; retention counts from here.
    pub touched_at: i64,
    /// Bumped by every change; the store's compare-and-set key.
    pub version: u64,
}
