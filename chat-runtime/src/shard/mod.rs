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
//! - [`batch`]: splitting a batch by chat or shard, answering in order.
//! - `client`: the [`ShardClient`] seam and its typed calls.
//! - [`remote`]: the NATS transport of the `ShardClient` seam.

pub mod batch;
mod cache;
mod chat;
mod client;
#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
mod invite;
mod pushes;
pub mod remote;
mod sequencer;
#[cfg(test)]
mod tests;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use client::{LocalShardClient, ShardClient};
pub use sequencer::{Claim, Minter, Shard};

use crate::bus::Origin;
use crate::error::ApiError;
use crate::model::{ChatId, Content, Seq, UserId};

/// A change to a chat, on behalf of `user`. Serializable: in clusters it
/// travels from gateway to shard in the agreed wire version ([`wire`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Consecutive sends of one device (often just one), answered in order:
    /// each chat's share is sequenced and stored in one write (natural
    /// batching under load).
    Send {
        user: UserId,
        items: Vec<SendItem>,
        /// The session they came from: it is not sent its own messages back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
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

/// Where a send landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub seq: Seq,
    pub sent_at: i64,
    /// The chat already held this `client_msg_id`: `seq` is the first copy's.
    pub duplicate: bool,
}

/// The shard's answer; [`ShardClient`]'s typed methods unwrap it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum Reply {
    /// Answers `Send`, one result per item, in order.
    Sent(Vec<Result<Sent, ApiError>>),
    Chat(ChatId),
    /// Answers `OpenDirect`: the chat, and whether this call created it.
    Direct {
        chat: ChatId,
        created: bool,
    },
    /// A group's invite code.
    Invite(String),
    Done,
}

impl Command {
    /// The chat the command changes; `None` for commands that create one
    /// (any shard may take those: it mints an id it owns).
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            Self::Send { items, .. } => items.first().map(|i| i.chat),
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
