//! Reading: the user's chats (most recently active first), one chat as a
//! member sees it, and pages of its history — never before the seq the
//! member joined at.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt, stream};

use crate::error::ApiError;
use crate::model::{Chat, ChatId, Member, Message, Seq, UserId};
use crate::node::Node;
use crate::protocol::{ChatView, ErrorCode, MAX_PAGE, MemberView};

/// Store reads in flight while listing chats: a user's chats are read
/// side by side, not one round trip after another.
const READS_IN_FLIGHT: usize = 16;

/// A member's display name and phone, as other members see them.
type Names = HashMap<UserId, (String, String)>;

/// What the store holds about one chat a user belongs to.
struct ChatParts {
    meta: Chat,
    members: Vec<Member>,
    me: Member,
    last_message: Option<Message>,
}

impl ChatParts {
    /// The chat as its member sees it, members named from `names`.
    fn view(self, names: &Names) -> ChatView {
        let last_seq = self.last_message.as_ref().map_or(0, |m| m.seq);
        let members = self
            .members
            .iter()
            .map(|m| {
                let (name, phone) = names.get(&m.user_id).cloned().unwrap_or_default();
                MemberView::new(m, name, phone)
            })
            .collect();
        ChatView {
            chat_id: self.meta.id,
            kind: self.meta.kind,
            title: self.meta.title,
            members,
            last_seq,
            last_message: self.last_message,
            unread: last_seq.saturating_sub(self.me.read_seq),
            delivered_seq: self.me.delivered_seq,
            read_seq: self.me.read_seq,
        }
    }
}

impl Node {
    /// getAll: the user's chats, most recently active first. Chats are read
    /// side by side and each member's name once, however many chats share
    /// them.
    pub async fn chats(&self, user: UserId) -> Result<Vec<ChatView>, ApiError> {
        let ids = self.store.user_chats(user).await?;
        let chats: Vec<ChatParts> = stream::iter(ids)
            .map(|id| async move {
                match self.chat_parts(user, id).await {
                    Ok(parts) => Ok(Some(parts)),
                    // Left or removed since the list was read.
                    Err(e) if e.code == ErrorCode::NotMember => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .try_filter_map(|parts| async move { Ok(parts) })
            .try_collect()
            .await?;
        let people = chats
            .iter()
            .flat_map(|c| c.members.iter().map(|m| m.user_id));
        let names = self.names(people.collect()).await?;
        let mut out: Vec<ChatView> = chats.into_iter().map(|c| c.view(&names)).collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.sent_at)));
        Ok(out)
    }
    /// One chat as `user` sees it; `not_member` unless they belong to it.
    pub async fn chat_view(&self, user: UserId, chat: ChatId) -> Result<ChatView, ApiError> {
        let parts = self.chat_parts(user, chat).await?;
        let names = self
            .names(parts.members.iter().map(|m| m.user_id).collect())
            .await?;
        Ok(parts.view(&names))
    }
    /// The chat, its members and its last message, if `user` is a member.
    async fn chat_parts(&self, user: UserId, chat: ChatId) -> Result<ChatParts, ApiError> {
        let (meta, members, last) = futures::try_join!(
            self.store.chat(chat),
            self.store.members(chat),
            self.store.messages_before(chat, None, 1),
        )?;
        let meta = meta.ok_or_else(|| ApiError::not_found("chat"))?;
        let me = members
            .iter()
            .find(|m| m.user_id == user)
            .cloned()
            .ok_or_else(ApiError::not_member)?;
        Ok(ChatParts {
            meta,
            members,
            me,
            last_message: last.into_iter().next(),
        })
    }
    /// The names of `users`, read side by side; a user no longer stored
    /// has none.
    async fn names(&self, users: BTreeSet<UserId>) -> Result<Names, ApiError> {
        let names = stream::iter(users)
            .map(|u| async move {
                let user = self.store.user(u).await?;
                Ok::<_, ApiError>(user.map(|user| (u, (user.display_name, user.phone))))
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .try_filter_map(|named| async move { Ok(named) })
            .try_collect()
            .await?;
        Ok(names)
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
        let (meta, member) =
            futures::try_join!(self.store.chat(chat), self.store.member(chat, user))?;
        meta.ok_or_else(|| ApiError::not_found("chat"))?;
        member.ok_or_else(ApiError::not_member)
    }
}
