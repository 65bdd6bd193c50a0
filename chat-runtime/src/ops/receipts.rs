//! Receipts: a member's delivered and read watermarks, raised (never
//! lowered) by the chat's shard, which tells the other members.

use crate::error::ApiError;
use crate::model::{ChatId, Seq, UserId};
use crate::node::Node;

impl Node {
    /// Raises `user`'s watermarks in `chat`: read implies delivered, so
    /// `delivered` is at least `read`; at least one must be a message (≥ 1).
    pub async fn mark(
        &self,
        user: UserId,
        chat: ChatId,
        delivered: Seq,
        read: Seq,
    ) -> Result<(), ApiError> {
        let delivered = delivered.max(read);
        if delivered == 0 {
            return Err(ApiError::invalid("seq must be at least 1"));
        }
        self.shards.watermark(user, chat, delivered, read).await
    }
}
