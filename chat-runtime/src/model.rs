//! Domain types shared by every layer: users, chats, members, messages.
//!
//! Plain data with serde derives; no I/O and no behaviour beyond small helpers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's stable identifier.
pub type UserId = Uuid;
/// A chat's (1:1 or group) stable identifier.
pub type ChatId = Uuid;
/// Position of a message in its chat: gapless, strictly increasing from 1.
pub type Seq = u64;

/// A group holds at most this many members (DESIGN §2, invariant 6).
pub const MAX_GROUP_MEMBERS: usize = 100;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

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

/// Whether a chat is between two users or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
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

/// A member's role in a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

/// A user's membership of a chat, with their receipt watermarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub role: Role,
    pub joined_at: i64,
    /// Highest seq any of the user's devices holds.
    pub delivered_seq: Seq,
    /// Highest seq the user has read.
    pub read_seq: Seq,
}

impl Member {
    pub fn new(user_id: UserId, role: Role, joined_at: i64) -> Self {
        Self {
            user_id,
            role,
            joined_at,
            delivered_seq: 0,
            read_seq: 0,
        }
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text { body: String },
    /// A membership change, written by the server into the chat's sequence so
    /// that every device sees it in order and on resume.
    System { event: SystemEvent, user_id: UserId },
}

/// Membership changes recorded as system messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    Created,
    Joined,
    Left,
    Added,
    Removed,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub chat_id: ChatId,
    pub seq: Seq,
    pub sender: UserId,
    /// The sender's idempotency key; empty for system messages.
    #[serde(default)]
    pub client_msg_id: String,
    #[serde(flatten)]
    pub content: Content,
    pub sent_at: i64,
}
