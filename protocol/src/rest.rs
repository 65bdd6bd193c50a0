//! What the REST API answers (`docs/protocol.md`, "REST"): the bodies the
//! server writes and clients read. Request bodies are the server's own
//! (`chat-runtime`'s gateway), where they are decoded and checked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes::ErrorCode;
use crate::model::{Device, MediaFacts, MediaId, MediaKind, Message, Seq};

/// What every refused REST or media request answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// `POST /v1/login`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub token: String,
    pub user_id: Uuid,
    pub expires_at: i64,
}

/// `POST /v1/chats/{chat}/messages`'s answer: what a `sent` frame says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SentView {
    pub chat_id: Uuid,
    pub client_msg_id: String,
    pub seq: Seq,
    pub sent_at: i64,
    /// True when this `client_msg_id` was stored before (a retry).
    pub duplicate: bool,
}

/// A user as `POST /v1/register` and `GET /v1/users` show them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserView {
    pub id: Uuid,
    pub phone: String,
    pub display_name: String,
    pub created_at: i64,
}

/// A group's invite code, as its admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invite {
    pub chat_id: Uuid,
    pub invite: String,
}

/// `GET /v1/devices`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Devices {
    pub devices: Vec<Device>,
}

/// `GET /v1/chats/{chat}/messages`'s answer: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// Pass as `before` for the next (older) page; null at the start of the chat.
    pub next_before: Option<Seq>,
}

/// What `POST /v1/media` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Upload")]
pub struct UploadView {
    pub media_id: MediaId,
    pub kind: MediaKind,
    #[serde(flatten)]
    pub facts: MediaFacts,
    /// The same bytes were stored before: nothing new was written.
    pub duplicate: bool,
}

/// What `POST /v1/media/{id}/link` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "MediaLink")]
pub struct LinkView {
    /// Relative: the link's path and query, to resolve against the base
    /// URL of the server that issued it.
    pub url: String,
    pub expires_at: i64,
}
