//! Membership: direct chats (by phone number), groups — created, joined with
//! an invite code, left, members added and removed by admins — each
//! answered with the chat as the user now sees it, or nothing.

use crate::error::ApiError;
use crate::model::{ChatId, User, UserId};
use crate::node::Node;
use crate::protocol::ChatView;

impl Node {
    /// The direct chat with the user registered under `phone`, created on
    /// first use; whether this call created it.
    pub async fn open_direct(
        &self,
        user: UserId,
        phone: &str,
    ) -> Result<(ChatView, bool), ApiError> {
        let peer = self.lookup(phone).await?;
        let (chat, created) = self.shards.open_direct(user, peer.id).await?;
        Ok((self.chat_view(user, chat).await?, created))
    }
    /// The user registered under `phone` (without secrets).
    pub async fn lookup(&self, phone: &str) -> Result<User, ApiError> {
        let user = self.store.user_by_phone(phone).await?;
        user.ok_or_else(|| ApiError::not_found("user"))
    }
    /// A new group titled `title` (cleaned: 1 to 128 bytes of visible text) with `user`
    /// as its admin and `members`.
    pub async fn create_group(
        &self,
        user: UserId,
        title: &str,
        members: Vec<UserId>,
    ) -> Result<ChatView, ApiError> {
        let title = crate::text::group_title(title).map_err(ApiError::invalid)?;
        let chat = self.shards.create_group(user, title, members).await?;
        self.chat_view(user, chat).await
    }
    /// `user` joins the group with its invite code.
    pub async fn join(
        &self,
        user: UserId,
        chat: ChatId,
        invite: String,
    ) -> Result<ChatView, ApiError> {
        let chat = self.shards.join(user, chat, invite).await?;
        self.chat_view(user, chat).await
    }
    /// A group's invite code, for its admins: the current one, or (`reset`)
    /// a new one that replaces it.
    pub async fn invite(
        &self,
        user: UserId,
        chat: ChatId,
        reset: bool,
    ) -> Result<String, ApiError> {
        self.shards.invite(user, chat, reset).await
    }
    /// `user` leaves the group.
    pub async fn leave(&self, user: UserId, chat: ChatId) -> Result<(), ApiError> {
        self.shards.leave(user, chat).await
    }
    /// An admin adds `target` to the group.
    pub async fn add_member(
        &self,
        user: UserId,
        chat: ChatId,
        target: UserId,
    ) -> Result<ChatView, ApiError> {
        let chat = self.shards.add_member(user, chat, target).await?;
        self.chat_view(user, chat).await
    }
    /// An admin removes `target` from the group.
    pub async fn remove_member(
        &self,
        user: UserId,
        chat: ChatId,
        target: UserId,
    ) -> Result<(), ApiError> {
        self.shards.remove_member(user, chat, target).await
    }
}
