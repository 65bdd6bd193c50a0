//! The `Store` seam: durable truth for users, chats, members and messages.
//!
//! Two implementations share one contract and one conformance suite:
//! [`embedded`] (one data directory, used by `standalone`) and, in clusters,
//! ScyllaDB. The sequencing shard is the only writer of a chat's messages, so
//! the store does not assign seqs; it records them and refuses a seq twice.

pub mod embedded;
pub mod scylla;

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;

use async_trait::async_trait;

use crate::error::Cause;
use crate::model::{Chat, ChatId, Device, MediaRecord, Member, Message, Seq, User, UserId};

/// How long a sender's `client_msg_id` is remembered (unless configured): a
/// retry later than this may be stored twice.
pub const DEFAULT_DEDUP_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Failures of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is already taken.
    #[error("{0} already exists")]
    Conflict(Taken),
    /// The backend failed; the operation may or may not have been applied.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Cause),
}

/// The unique key a write found taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Taken {
    /// The phone number belongs to another user.
    #[error("phone")]
    Phone,
    /// The chat already holds a message at that seq.
    #[error("seq")]
    Seq,
}

/// A backend failure, from the driver's error or a message.
pub(crate) fn backend(e: impl Into<Cause>) -> StoreError {
    StoreError::Backend(e.into())
}

/// A membership change written atomically with the system message that records it.
#[derive(Clone, Debug)]
pub enum MemberChange {
    Put(Member),
    Remove(UserId),
}

/// Durable storage. Every write has completed durably when its future resolves.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a new user; `Conflict(Taken::Phone)` when the phone number is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError>;

    /// Records a chat with its first members and its first (system) message.
    async fn create_chat(
        &self,
        chat: &Chat,
        members: &[Member],
        first: &Message,
    ) -> Result<(), StoreError>;
    /// The direct chat of a pair, if it exists (order of `a`, `b` is irrelevant).
    async fn direct_chat(&self, a: UserId, b: UserId) -> Result<Option<ChatId>, StoreError>;
    /// Records `chat` as the pair's direct chat unless one exists; returns the
    /// pair's chat either way, and whether it was created now.
    async fn create_direct(
        &self,
        chat: &Chat,
        members: [Member; 2],
    ) -> Result<(ChatId, bool), StoreError>;
    async fn chat(&self, id: ChatId) -> Result<Option<Chat>, StoreError>;
    async fn members(&self, chat: ChatId) -> Result<Vec<Member>, StoreError>;
    /// `user`'s membership of `chat`, if they belong to it: the one way
    /// every layer asks.
    async fn member(&self, chat: ChatId, user: UserId) -> Result<Option<Member>, StoreError> {
        let members = self.members(chat).await?;
        Ok(members.into_iter().find(|m| m.user_id == user))
    }
    /// Ids of the chats `user` belongs to.
    async fn user_chats(&self, user: UserId) -> Result<Vec<ChatId>, StoreError>;

    /// Appends `msg` (with its seq already assigned) and, atomically with it,
    /// an optional membership change and the sender's dedup entry.
    /// `Conflict(Taken::Seq)` when the chat already holds that seq.
    async fn append(&self, msg: &Message, change: Option<MemberChange>) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(msg), change).await
    }
    /// Appends consecutive messages of one chat, in order, the membership
    /// change going with the last: all or none (a seq already stored is a
    /// `Conflict` and writes nothing). The CQL store keeps that promise per
    /// partition: a run across partitions may store a prefix on a conflict —
    /// the sequencer then reloads the chat's head, and retried sends dedup.
    async fn append_all(
        &self,
        msgs: &[Message],
        change: Option<MemberChange>,
    ) -> Result<(), StoreError>;
    /// The seq stored for a sender's `client_msg_id` in a chat, if any.
    async fn dedup(
        &self,
        chat: ChatId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Seq>, StoreError>;
    /// Highest stored seq of a chat (0 when empty).
    async fn head(&self, chat: ChatId) -> Result<Seq, StoreError>;
    /// Up to `limit` messages with seq < `before` (all when `None`), newest first.
    async fn messages_before(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Up to `limit` messages with seq > `after`, oldest first.
    async fn messages_after(
        &self,
        chat: ChatId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;

    /// Raises a member's watermarks (never lowers them; `read` also raises
    /// `delivered`). Returns the member after the change, or `None` when
    /// `user` is not a member.
    async fn advance_watermarks(
        &self,
        chat: ChatId,
        user: UserId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Option<Member>, StoreError>;

    /// Bans `user` from joining `chat` again (an admin removed them), or
    /// lifts the ban (an admin added them back).
    async fn set_banned(&self, chat: ChatId, user: UserId, banned: bool) -> Result<(), StoreError>;
    async fn is_banned(&self, chat: ChatId, user: UserId) -> Result<bool, StoreError>;
    /// The group's invite code, if it has one.
    async fn invite(&self, chat: ChatId) -> Result<Option<String>, StoreError>;
    /// Replaces the group's invite code: the old one stops working.
    async fn set_invite(&self, chat: ChatId, code: &str) -> Result<(), StoreError>;

    async fn set_last_seen(&self, user: UserId, at: i64) -> Result<(), StoreError>;
    async fn last_seen(&self, user: UserId) -> Result<Option<i64>, StoreError>;

    /// Remembers a revoked token id until it expires (`expires_at` in seconds
    /// since the epoch, as in the token).
    async fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError>;

    /// A media record by id.
    async fn media(&self, id: &str) -> Result<Option<MediaRecord>, StoreError>;
    /// Writes `record` only if the stored record's version is `expected`
    /// (`None`: no record yet). Returns whether it was written. Every change
    /// to a media record is a read, a pure change and this compare-and-set.
    async fn swap_media(
        &self,
        record: &MediaRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` media records after `after` (in the store's own order;
    /// `None` starts at the beginning): the retention sweeper's scan.
    async fn media_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError>;

    /// Registers `device` for `user`'s push notifications, replacing the
    /// device of the same id.
    async fn put_device(&self, user: UserId, device: &Device) -> Result<(), StoreError>;
    /// The user's registered devices, by device id.
    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError>;
    /// Forgets a device (signed out, or its push token was refused).
    async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_failure_keeps_its_cause() {
        let failed = backend(std::io::Error::other("disk on fire"));
        let source = std::error::Error::source(&failed).expect("a source");
        assert_eq!(source.to_string(), "disk on fire");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(failed.to_string(), "storage backend failed: disk on fire");
        assert_eq!(
            StoreError::Conflict(Taken::Phone).to_string(),
            "phone already exists"
        );
    }
}
