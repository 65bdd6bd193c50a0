//! The data frames carry: ids, chats' kinds and roles, members, messages
//! and their content, media facts, push devices.
//!
//! Plain data with serde derives; no I/O and no behaviour beyond small helpers.

use schemars::JsonSchema;
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

/// Whether a chat is between two users or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
}

/// A member's role in a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    /// Seq of the system message that made them a member (created, joined,
    /// added): they read the chat from here on, never what came before.
    /// 0 for members stored before it was recorded (they read everything).
    #[serde(default)]
    pub joined_seq: Seq,
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
            joined_seq: 0,
            delivered_seq: 0,
            read_seq: 0,
        }
    }

    /// Raises the watermarks to `delivered` and `read`, never lowering them
    /// (`read` raises `delivered` too); whether anything moved.
    pub fn raise(&mut self, delivered: Seq, read: Seq) -> bool {
        let d = self.delivered_seq.max(delivered).max(read);
        let r = self.read_seq.max(read);
        let moved = (d, r) != (self.delivered_seq, self.read_seq);
        (self.delivered_seq, self.read_seq) = (d, r);
        moved
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text {
        body: String,
    },
    /// A membership change, written by the server into the chat's sequence so
    /// that every device sees it in order and on resume.
    System {
        event: SystemEvent,
        /// Whom it concerns (for `created`, the creator).
        user_id: UserId,
        /// `created` only: the group's title when it was made.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        title: String,
        /// `created` only: everyone the group was made with, its creator
        /// first, so the message alone tells who started in it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<UserId>,
    },
    /// A photo (with dimensions, and a placeholder and thumbnail for previews).
    Image(Attachment),
    Video(Attachment),
    /// A voice note or audio file.
    Audio(Attachment),
    /// Any other file (documents, archives).
    File(Attachment),
}

impl Content {
    /// A system message of `event` concerning `user_id` (for `created`, see
    /// [`Content::created`]).
    pub fn system(event: SystemEvent, user_id: UserId) -> Self {
        Self::System {
            event,
            user_id,
            title: String::new(),
            members: Vec::new(),
        }
    }

    /// The `created` message of group `title`, made by `creator` with
    /// `members` (the creator first).
    pub fn created(creator: UserId, title: String, members: Vec<UserId>) -> Self {
        Self::System {
            event: SystemEvent::Created,
            user_id: creator,
            title,
            members,
        }
    }

    /// The attachment of a media message.
    pub fn attachment(&self) -> Option<&Attachment> {
        match self {
            Self::Image(a) | Self::Video(a) | Self::Audio(a) | Self::File(a) => Some(a),
            Self::Text { .. } | Self::System { .. } => None,
        }
    }

    /// A media message of `kind` carrying `a`.
    pub fn media(kind: MediaKind, a: Attachment) -> Self {
        match kind {
            MediaKind::Image => Self::Image(a),
            MediaKind::Video => Self::Video(a),
            MediaKind::Audio => Self::Audio(a),
            MediaKind::File => Self::File(a),
        }
    }
}

/// Identifies an uploaded object by its content: the SHA-256 of its bytes,
/// as 64 lowercase hex digits. The same bytes uploaded twice are one media.
pub type MediaId = String;

/// What an upload is, decided by sniffing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    File,
}

/// What the server measured of uploaded bytes; messages carry it, so
/// receivers can trust it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MediaFacts {
    /// Sniffed from the bytes, never taken from the uploader's header.
    pub content_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// A BlurHash placeholder to paint before the thumbnail arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
    /// Whether `GET /v1/media/{id}/thumbnail` has a small JPEG preview.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
    /// The name it was uploaded with (`?name=`); a message carries it only
    /// when sent as a `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The media a message carries: its upload's facts and the sender's caption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    pub media_id: MediaId,
    #[serde(flatten)]
    pub facts: MediaFacts,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
}

/// Membership changes recorded as system messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    Created,
    Joined,
    Left,
    Added,
    Removed,
    /// The last admin left; `user_id`, the longest-standing member, is admin now.
    Promoted,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// The push service a device is reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Firebase Cloud Messaging (Android, web); the token is an FCM
    /// registration token.
    Fcm,
    /// Apple Push Notification service; the token is the hex device token.
    Apns,
    /// An HTTPS endpoint that takes a JSON POST (UnifiedPush distributors,
    /// self-hosted relays); the token is the endpoint URL.
    Webhook,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::Apns => "apns",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Fcm, Self::Apns, Self::Webhook]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A device registered for push notifications.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Device {
    /// Chosen by the client; stable across app restarts.
    pub device_id: String,
    pub platform: Platform,
    /// Where the push service reaches this device (see [`Platform`]).
    pub token: String,
}
