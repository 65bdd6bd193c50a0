//! The [`ShardClient`] seam: how a gateway reaches the shard that owns a
//! chat. A transport implements one method, [`ShardClient::call`]; callers
//! use the typed methods on `dyn ShardClient`, which check that each answer
//! has the shape its command promises, here and nowhere else.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Command, Reply, SendItem, Sent, Shard};
use crate::bus::Origin;
use crate::error::ApiError;
use crate::model::{ChatId, Seq, UserId};
use crate::protocol::ErrorCode;

/// The transport to the shards: in process (standalone) or NATS (clusters).
#[async_trait]
pub trait ShardClient: Send + Sync + 'static {
    /// Runs `command` on its chat's shard.
    async fn call(&self, command: Command) -> Result<Reply, ApiError>;
}

/// Standalone: the one shard lives in this process.
pub struct LocalShardClient(pub Arc<Shard>);

#[async_trait]
impl ShardClient for LocalShardClient {
    async fn call(&self, command: Command) -> Result<Reply, ApiError> {
        self.0.handle(command).await
    }
}

/// A reply of the wrong shape: a bug on one side of the wire, or two
/// versions that do not agree.
fn unexpected(reply: Reply) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("unexpected shard reply {reply:?}"),
    )
}

/// The answer to each of `n` sends from the reply to their `Send`.
pub(super) fn per_item(n: usize, reply: Result<Reply, ApiError>) -> Vec<Result<Sent, ApiError>> {
    match reply {
        Ok(Reply::Sent(answers)) if answers.len() == n => answers,
        Ok(other) => vec![Err(unexpected(other)); n],
        Err(e) => vec![Err(e); n],
    }
}

impl dyn ShardClient {
    /// Sends a device's consecutive messages, from session `origin` if any;
    /// one answer per item, in order (a failed call fails every item).
    pub async fn send(
        &self,
        user: UserId,
        items: Vec<SendItem>,
        origin: Option<Origin>,
    ) -> Vec<Result<Sent, ApiError>> {
        let n = items.len();
        if n == 0 {
            return Vec::new();
        }
        let command = Command::Send {
            user,
            items,
            origin,
        };
        per_item(n, self.call(command).await)
    }
    /// Raises `user`'s delivered and read watermarks in `chat`.
    pub async fn watermark(
        &self,
        user: UserId,
        chat: ChatId,
        delivered: Seq,
        read: Seq,
    ) -> Result<(), ApiError> {
        let command = Command::Watermark {
            user,
            chat,
            delivered,
            read,
        };
        self.done(command).await
    }
    /// Tells the chat's other members that `user` is typing.
    pub async fn typing(&self, user: UserId, chat: ChatId) -> Result<(), ApiError> {
        self.done(Command::Typing { user, chat }).await
    }
    /// Creates a group; its id.
    pub async fn create_group(
        &self,
        user: UserId,
        title: String,
        members: Vec<UserId>,
    ) -> Result<ChatId, ApiError> {
        let command = Command::CreateGroup {
            user,
            title,
            members,
        };
        self.chat(command).await
    }
    /// The direct chat of `user` and `peer`, created on first use; whether
    /// this call created it.
    pub async fn open_direct(
        &self,
        user: UserId,
        peer: UserId,
    ) -> Result<(ChatId, bool), ApiError> {
        match self.call(Command::OpenDirect { user, peer }).await? {
            Reply::Direct { chat, created } => Ok((chat, created)),
            other => Err(unexpected(other)),
        }
    }
    /// Joins a group with its invite code.
    pub async fn join(
        &self,
        user: UserId,
        chat: ChatId,
        invite: String,
    ) -> Result<ChatId, ApiError> {
        self.chat(Command::Join { user, chat, invite }).await
    }
    /// A group's invite code, for its admins (a new one with `reset`).
    pub async fn invite(
        &self,
        user: UserId,
        chat: ChatId,
        reset: bool,
    ) -> Result<String, ApiError> {
        match self.call(Command::Invite { user, chat, reset }).await? {
            Reply::Invite(code) => Ok(code),
            other => Err(unexpected(other)),
        }
    }
    /// `user` leaves a group.
    pub async fn leave(&self, user: UserId, chat: ChatId) -> Result<(), ApiError> {
        self.done(Command::Leave { user, chat }).await
    }
    /// An admin adds `target` to a group.
    pub async fn add_member(
        &self,
        user: UserId,
        chat: ChatId,
        target: UserId,
    ) -> Result<ChatId, ApiError> {
        self.chat(Command::AddMember { user, chat, target }).await
    }
    /// An admin removes `target` from a group.
    pub async fn remove_member(
        &self,
        user: UserId,
        chat: ChatId,
        target: UserId,
    ) -> Result<(), ApiError> {
        self.done(Command::RemoveMember { user, chat, target })
            .await
    }

    async fn chat(&self, command: Command) -> Result<ChatId, ApiError> {
        match self.call(command).await? {
            Reply::Chat(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }
    async fn done(&self, command: Command) -> Result<(), ApiError> {
        match self.call(command).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
