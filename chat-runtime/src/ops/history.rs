//! Reading: the user's chats (most recently active first), one chat as a
//! member sees it, and pages of its history — never before the seq the
//! member joined at.

use crate::error::ApiError;
use crate::model::{ChatId, Member, Message, Seq, UserId};
use crate::node::Node;
use crate::protocol::{ChatView, ErrorCode, MAX_PAGE, MemberView};

impl Node {
    /// getAll: the user's chats, most recently active first.
    pub async fn chats(&self, user: UserId) -> Result<Vec<ChatView>, ApiError> {
        let mut out = Vec::new();
        for id in self.store.user_chats(user).await? {
            match self.chat_view(user, id).await {
                Ok(v) => out.push(v),
                Err(e) if e.code == ErrorCode::NotMember => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.sent_at)));
        Ok(out)
    }
    /// One chat as `user` sees it; `not_member` unless they belong to it.
    pub async fn chat_view(&self, user: UserId, chat: ChatId) -> Result<ChatView, ApiError> {
        let meta = self
            .store
            .chat(chat)
            .await?
            .ok_or_else(|| ApiError::not_found("chat"))?;
        let members = self.store.members(chat).await?;
        let me = members
            .iter()
            .find(|m| m.user_id == user)
            .cloned()
            .ok_or_else(ApiError::not_member)?;
        let last_message = self
            .store
            .messages_before(chat, None, 1)
            .await?
            .into_iter()
            .next();
        let last_seq = last_message.as_ref().map_or(0, |m| m.seq);
        let mut views = Vec::with_capacity(members.len());
        for m in &members {
            let (name, phone) = match self.store.user(m.user_id).await? {
                Some(u) => (u.display_name, u.phone),
                None => (String::new(), String::new()),
            };
            views.push(MemberView::new(m, name, phone));
        }
        Ok(ChatView {
            chat_id: chat,
            kind: meta.kind,
            title: meta.title,
            members: views,
            last_seq,
            last_message,
            unread: last_seq.saturating_sub(me.read_seq),
            delivered_seq: me.delivered_seq,
            read_seq: me.read_seq,
        })
    }
    /// getMessages: a page of history, newest first, and the cursor for the
    /// next page. A member reads from the seq they joined at, never before.
    pub async fn history(
        &self,
        user: UserId,
        chat: ChatId,
        before: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<(Vec<Message>, Option<Seq>), ApiError> {
        let limit = match limit.unwrap_or(50) {
            n @ 1..=MAX_PAGE => n as usize,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        };
        let floor = self.member(user, chat).await?.joined_seq.max(1);
        let mut page = self.store.messages_before(chat, before, limit).await?;
        page.retain(|m| m.seq >= floor);
        let next = match page.last() {
            Some(m) if page.len() == limit && m.seq > floor => Some(m.seq),
            _ => None,
        };
        Ok((page, next))
    }
    /// The user's membership of a chat: `not_found` for a missing chat,
    /// `not_member` for someone else's.
    pub async fn member(&self, user: UserId, chat: ChatId) -> Result<Member, ApiError> {
        if self.store.chat(chat).await?.is_none() {
            return Err(ApiError::not_found("chat"));
        }
        self.store
            .members(chat)
            .await?
            .into_iter()
            .find(|m| m.user_id == user)
            .ok_or_else(ApiError::not_member)
    }
}
