//! Confab's wire contract, shared by the server (`chat-runtime`) and the Rust
//! client (`confab-client`): WebSocket protocol v1's typed frames and their
//! JSON encoding, the error and close codes ([`codes`]) and the data the
//! frames carry ([`model`]); the REST API's answers ([`rest`]). No I/O.
//!
//! Every frame is one JSON object in one WebSocket text message, tagged by
//! `type`. [`decode`] turns bytes into a [`ClientFrame`] or a typed
//! [`ProtocolError`] (never a panic); [`encode`] turns a [`ServerFrame`] into
//! the text that goes on the wire. `docs/protocol.md` documents every frame;
//! a test round-trips each example there.

pub mod codes;
pub mod model;
pub mod rest;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use codes::{CloseCode, ErrorCode};

use crate::model::{ChatId, ChatKind, MediaId, MediaKind, Member, Message, Role, Seq, UserId};

/// Largest frame the server decodes; larger ones get a `too_large` error.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest text body of a message, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest page of history a client may ask for.
pub const MAX_PAGE: u32 = 200;

/// Kinds of message a client may send. Media kinds carry the `media_id` of
/// an upload (`POST /v1/media`) and an optional caption in `body`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    #[default]
    Text,
    Image,
    Video,
    Audio,
    File,
}

impl SendKind {
    /// The media kind of a media message; `None` for text.
    pub fn media(self) -> Option<MediaKind> {
        match self {
            Self::Text => None,
            Self::Image => Some(MediaKind::Image),
            Self::Video => Some(MediaKind::Video),
            Self::Audio => Some(MediaKind::Audio),
            Self::File => Some(MediaKind::File),
        }
    }
}

/// Largest caption of a media message, in bytes.
pub const MAX_CAPTION_BYTES: usize = 1024;

/// Checks a send's fields: text needs a body; media needs a media id and
/// takes an optional caption.
pub fn check_send(
    kind: SendKind,
    client_msg_id: &str,
    body: &str,
    media_id: Option<&str>,
) -> Result<(), &'static str> {
    if client_msg_id.is_empty() || client_msg_id.len() > 64 {
        return Err("client_msg_id must be 1 to 64 bytes");
    }
    match (kind.media(), media_id) {
        (None, Some(_)) => Err("a text message takes no media_id"),
        (None, None) if body.is_empty() || body.len() > MAX_BODY_BYTES => {
            Err("body must be 1 to 16384 bytes")
        }
        (None, None) => Ok(()),
        (Some(_), None) => Err("a media message needs the media_id of an upload"),
        (Some(_), Some(id)) if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err("media_id must be 64 hex digits")
        }
        (Some(_), Some(_)) if body.len() > MAX_CAPTION_BYTES => {
            Err("a caption must be at most 1024 bytes")
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Frames a device sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame of every connection: authenticates and resumes.
    Hello {
        token: String,
        /// Highest seq this device holds per chat; the server sends what is
        /// newer before live events.
        #[serde(default)]
        watermarks: BTreeMap<ChatId, Seq>,
    },
    Send {
        chat_id: ChatId,
        client_msg_id: String,
        #[serde(default)]
        kind: SendKind,
        /// Text, or a media message's caption.
        #[serde(default)]
        body: String,
        /// The upload a media message carries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<MediaId>,
    },
    Delivered {
        chat_id: ChatId,
        seq: Seq,
    },
    Read {
        chat_id: ChatId,
        seq: Seq,
    },
    Typing {
        chat_id: ChatId,
    },
    Ping {},
    Chats {
        req_id: String,
    },
    History {
        req_id: String,
        chat_id: ChatId,
        #[serde(default)]
        before: Option<Seq>,
        #[serde(default)]
        limit: Option<u32>,
    },
    OpenDirect {
        req_id: String,
        phone: String,
    },
    CreateGroup {
        req_id: String,
        title: String,
        #[serde(default)]
        members: Vec<UserId>,
    },
    /// Joins a group with its invite code (see `invite`).
    Join {
        req_id: String,
        chat_id: ChatId,
        invite: String,
    },
    /// Admins: the group's invite code, made on first use.
    Invite {
        req_id: String,
        chat_id: ChatId,
    },
    /// Admins: replaces the group's invite code; the old one stops working.
    ResetInvite {
        req_id: String,
        chat_id: ChatId,
    },
    Leave {
        req_id: String,
        chat_id: ChatId,
    },
    AddMember {
        req_id: String,
        chat_id: ChatId,
        user_id: UserId,
    },
    RemoveMember {
        req_id: String,
        chat_id: ChatId,
        user_id: UserId,
    },
    Presence {
        req_id: String,
        user_id: UserId,
    },
    /// Finds a registered user by phone number (contact discovery).
    Lookup {
        req_id: String,
        phone: String,
    },
}

/// The frame types a client may send, for telling "unknown type" from "invalid".
const CLIENT_TYPES: &[&str] = &[
    "hello",
    "send",
    "delivered",
    "read",
    "typing",
    "ping",
    "chats",
    "history",
    "open_direct",
    "create_group",
    "join",
    "invite",
    "reset_invite",
    "leave",
    "add_member",
    "remove_member",
    "presence",
    "lookup",
];

/// A chat as listed by `chats` (getAll) and returned by chat operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatView {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    pub title: String,
    pub members: Vec<MemberView>,
    /// Highest seq in the chat.
    pub last_seq: Seq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Message>,
    /// Messages after the user's read watermark.
    pub unread: u64,
    pub delivered_seq: Seq,
    pub read_seq: Seq,
}

/// A member as shown to other members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemberView {
    pub user_id: UserId,
    pub display_name: String,
    pub phone: String,
    pub role: Role,
    pub delivered_seq: Seq,
    pub read_seq: Seq,
}

impl MemberView {
    pub fn new(m: &Member, display_name: String, phone: String) -> Self {
        Self {
            user_id: m.user_id,
            display_name,
            phone,
            role: m.role,
            delivered_seq: m.delivered_seq,
            read_seq: m.read_seq,
        }
    }
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        user_id: UserId,
        session_id: String,
        /// Send a `ping` at least this often; silence for twice as long closes.
        heartbeat_ms: u64,
        max_frame_bytes: usize,
    },
    /// The backlog after `hello` is complete; live events follow.
    Synced {
        /// Highest seq per chat at the time of sync.
        chats: BTreeMap<ChatId, Seq>,
    },
    /// The message is durably stored at `seq`.
    Sent {
        chat_id: ChatId,
        client_msg_id: String,
        seq: Seq,
        sent_at: i64,
        /// True when this `client_msg_id` was stored before (a retry).
        duplicate: bool,
    },
    Message {
        message: Message,
    },
    Receipt {
        chat_id: ChatId,
        user_id: UserId,
        delivered_seq: Seq,
        read_seq: Seq,
        /// Every member other than the sender holds messages up to here.
        delivered_all_seq: Seq,
        /// Every member other than the sender has read up to here.
        read_all_seq: Seq,
    },
    Typing {
        chat_id: ChatId,
        user_id: UserId,
    },
    Presence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<String>,
        user_id: UserId,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<i64>,
    },
    Pong {},
    Chats {
        req_id: String,
        chats: Vec<ChatView>,
    },
    History {
        req_id: String,
        chat_id: ChatId,
        /// Newest first.
        messages: Vec<Message>,
        /// Pass as `before` for the next (older) page; absent at the start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_before: Option<Seq>,
    },
    Chat {
        req_id: String,
        chat: ChatView,
    },
    Ok {
        req_id: String,
    },
    /// Answers `invite` and `reset_invite`.
    Invite {
        req_id: String,
        chat_id: ChatId,
        invite: String,
    },
    /// Answers `lookup`.
    User {
        req_id: String,
        user_id: UserId,
        display_name: String,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// An error frame with no request attached.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            req_id: None,
            client_msg_id: None,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("frame is not a JSON object with a string `type`: {0}")]
    BadFrame(String),
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    #[error("invalid `{kind}` frame: {reason}")]
    Invalid { kind: String, reason: String },
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::BadFrame(_) => ErrorCode::BadFrame,
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::Invalid { .. } => ErrorCode::Invalid,
        }
    }
}

/// The ids a frame carried, read from it even when it is refused: the
/// refusal names them, so a client with several requests in flight knows
/// which one failed. Ids longer than [`MAX_ECHOED_ID`] bytes are not echoed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Correlation {
    pub req_id: Option<String>,
    pub client_msg_id: Option<String>,
}

/// Longest id a refusal echoes.
pub const MAX_ECHOED_ID: usize = 256;

impl Correlation {
    /// The ids of `bytes` if it is a JSON object with string ids.
    pub fn read(bytes: &[u8]) -> Self {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(bytes) else {
            return Self::default();
        };
        let id = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|s| s.len() <= MAX_ECHOED_ID)
                .map(str::to_owned)
        };
        Self {
            req_id: id("req_id"),
            client_msg_id: id("client_msg_id"),
        }
    }
}

/// Decodes one client frame.
pub fn decode(bytes: &[u8]) -> Result<ClientFrame, ProtocolError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge(bytes.len()));
    }
    match serde_json::from_slice::<ClientFrame>(bytes) {
        Ok(frame) => validate(frame),
        Err(e) => Err(classify(bytes, e)),
    }
}

/// Explains a failed decode: not JSON, unknown type, or invalid fields.
fn classify(bytes: &[u8], err: serde_json::Error) -> ProtocolError {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return ProtocolError::BadFrame(e.to_string()),
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => ProtocolError::BadFrame("missing string field `type`".into()),
        Some(t) if !CLIENT_TYPES.contains(&t) => ProtocolError::UnknownType(t.to_owned()),
        Some(t) => ProtocolError::Invalid {
            kind: t.to_owned(),
            reason: err.to_string(),
        },
    }
}

fn invalid(kind: &str, reason: &str) -> ProtocolError {
    ProtocolError::Invalid {
        kind: kind.into(),
        reason: reason.into(),
    }
}

/// Checks the limits serde cannot express on frames that need no lookup
/// (a send's sizes); the rest is the operation's (`crate::ops`).
fn validate(frame: ClientFrame) -> Result<ClientFrame, ProtocolError> {
    if let ClientFrame::Send {
        client_msg_id,
        body,
        kind,
        media_id,
        ..
    } = &frame
    {
        check_send(*kind, client_msg_id, body, media_id.as_deref())
            .map_err(|reason| invalid("send", reason))?;
    }
    Ok(frame)
}

/// Encodes a server frame as the text of one WebSocket message.
pub fn encode(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).expect("server frames always serialize")
}

#[cfg(test)]
mod tests;
