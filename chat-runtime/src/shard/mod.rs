//! Sequencing: the one writer of each chat's message sequence.
//!
//! A [`Command`] that changes a chat goes to the chat's shard through the
//! [`ShardClient`] seam (an in-process call in standalone; NATS request/reply
//! in clusters). The shard assigns gapless seqs, stores before it answers,
//! then fans the event out on the bus.
//!
//! - `chat`: one chat's rules as a plain state machine (seqs, dedup,
//!   membership, receipts, push decisions) — no I/O, no clock.
//! - `invite`: invite codes and bans, what a joiner must pass.
//! - `sequencer`: the [`Shard`], the shell that loads a chat, asks its core
//!   and performs the answer (store, then bus, then push queue).
//! - `cache`: the per-chat locks and the bounded cache of loaded chats.
//! - `pushes`: the background push enqueue.
//! - [`remote`]: the NATS transport of the `ShardClient` seam.

mod cache;
mod chat;
mod invite;
mod pushes;
pub mod remote;
mod sequencer;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use sequencer::{Minter, Shard};

use crate::error::ApiError;
use crate::model::{ChatId, Content, Seq, UserId};

/// A change to a chat, on behalf of `user`. Serializable: in clusters it
/// travels from gateway to shard as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Send {
        user: UserId,
        item: SendItem,
    },
    /// Consecutive sends of one device, answered in order: each chat's share
    /// is sequenced and stored in one write (natural batching under load).
    SendMany {
        user: UserId,
        items: Vec<SendItem>,
    },
    /// Raise the user's delivered and/or read watermark.
    Watermark {
        user: UserId,
        chat: ChatId,
        delivered: Seq,
        read: Seq,
    },
    Typing {
        user: UserId,
        chat: ChatId,
    },
    CreateGroup {
        user: UserId,
        title: String,
        members: Vec<UserId>,
    },
    OpenDirect {
        user: UserId,
        peer: UserId,
    },
    /// Join a group with its invite code.
    Join {
        user: UserId,
        chat: ChatId,
        invite: String,
    },
    /// An admin asks for the group's invite code (made on first use), or for
    /// a new one (`reset`: the old one stops working).
    Invite {
        user: UserId,
        chat: ChatId,
        reset: bool,
    },
    Leave {
        user: UserId,
        chat: ChatId,
    },
    AddMember {
        user: UserId,
        chat: ChatId,
        target: UserId,
    },
    RemoveMember {
        user: UserId,
        chat: ChatId,
        target: UserId,
    },
}

/// One message to send: text, or media the gateway already attached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendItem {
    pub chat: ChatId,
    pub client_msg_id: String,
    pub content: Content,
}

/// The shard's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum Reply {
    Sent {
        seq: Seq,
        sent_at: i64,
        duplicate: bool,
    },
    /// Answers `SendMany`, one result per item, in order.
    SentMany(Vec<Result<Reply, ApiError>>),
    Chat(ChatId),
    /// A group's invite code.
    Invite(String),
    Done,
}

impl Command {
    /// The chat the command changes; `None` for commands that create one
    /// (any shard may take those: it mints an id it owns).
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            Self::Send { item, .. } => Some(item.chat),
            Self::SendMany { items, .. } => items.first().map(|i| i.chat),
            Self::Watermark { chat, .. }
            | Self::Typing { chat, .. }
            | Self::Join { chat, .. }
            | Self::Invite { chat, .. }
            | Self::Leave { chat, .. }
            | Self::AddMember { chat, .. }
            | Self::RemoveMember { chat, .. } => Some(*chat),
            Self::CreateGroup { .. } | Self::OpenDirect { .. } => None,
        }
    }

    /// The user on whose behalf it runs.
    pub fn user(&self) -> UserId {
        match self {
            Self::Send { user, .. }
            | Self::SendMany { user, .. }
            | Self::Watermark { user, .. }
            | Self::Typing { user, .. }
            | Self::CreateGroup { user, .. }
            | Self::OpenDirect { user, .. }
            | Self::Join { user, .. }
            | Self::Invite { user, .. }
            | Self::Leave { user, .. }
            | Self::AddMember { user, .. }
            | Self::RemoveMember { user, .. } => *user,
        }
    }
}

/// How a gateway reaches the shard that owns a chat.
#[async_trait]
pub trait ShardClient: Send + Sync + 'static {
    async fn call(&self, command: Command) -> Result<Reply, ApiError>;
}

/// Standalone: the one shard lives in this process.
pub struct LocalShardClient(pub std::sync::Arc<Shard>);

#[async_trait]
impl ShardClient for LocalShardClient {
    async fn call(&self, command: Command) -> Result<Reply, ApiError> {
        self.0.handle(command).await
    }
}
