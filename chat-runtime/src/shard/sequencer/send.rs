//! Sends: a device's batch split by chat, each chat's share sequenced by
//! its core under the chat's lock — after the store says which
//! `client_msg_id`s it already holds — and stored in one write before any
//! item is answered.

use std::collections::HashMap;

use super::Shard;
use crate::bus::Origin;
use crate::error::ApiError;
use crate::media;
use crate::model::{ChatId, UserId, now_ms};
use crate::protocol::ErrorCode;
use crate::shard::chat::Earlier;
use crate::shard::{SendItem, Sent, batch};

impl Shard {
    /// Sends a device's consecutive messages: each chat's share is sequenced
    /// under its lock and stored in one write, chats in parallel. Answers in
    /// the order of `items`.
    pub(super) async fn send_many(
        &self,
        user: UserId,
        items: Vec<SendItem>,
        origin: Option<Origin>,
    ) -> Vec<Result<Sent, ApiError>> {
        let n = items.len();
        let parts = futures::future::join_all(
            batch::split(items, |item| item.chat)
                .into_iter()
                .map(|(chat, items)| self.send_to_chat(user, chat, items, origin)),
        )
        .await;
        batch::join(n, parts.into_iter().flatten())
    }

    /// One chat's share of a batch; an unknown chat or a non-member fails
    /// every item.
    async fn send_to_chat(
        &self,
        user: UserId,
        chat: ChatId,
        items: Vec<(usize, SendItem)>,
        origin: Option<Origin>,
    ) -> Vec<(usize, Result<Sent, ApiError>)> {
        let indexes: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
        match self.sequence(user, chat, items, origin).await {
            Ok(answers) => answers,
            Err(e) => indexes.into_iter().map(|i| (i, Err(e.clone()))).collect(),
        }
    }

    async fn sequence(
        &self,
        user: UserId,
        chat: ChatId,
        items: Vec<(usize, SendItem)>,
        origin: Option<Origin>,
    ) -> Result<Vec<(usize, Result<Sent, ApiError>)>, ApiError> {
        let mut st = self.lock(chat).await?;
        st.member(user)?;
        let now = now_ms();
        let earlier = self.earlier(chat, user, &items).await;
        let media: HashMap<usize, String> = items
            .iter()
            .filter_map(|(i, item)| Some((*i, item.content.attachment()?.media_id.clone())))
            .collect();
        let batch = st.send(user, items, &earlier, now)?;
        let stored = if batch.messages.is_empty() {
            Ok(Vec::new())
        } else {
            self.append(&mut st, batch.messages, batch.change, origin)
                .await
        };
        let unshared = stored.as_ref().cloned().unwrap_or_default();
        let mut answers = batch.replies.after(stored.map(drop));
        self.shares_held(chat, user, &media, &unshared, &mut answers)
            .await;
        Ok(answers)
    }

    /// Fails (`unavailable`) each sent item whose media is not recorded as
    /// shared: its client retries, and the retry, answered as a duplicate,
    /// records the share an earlier attempt could not (a read, and nothing
    /// more, when it is there).
    async fn shares_held(
        &self,
        chat: ChatId,
        user: UserId,
        media: &HashMap<usize, String>,
        unshared: &[String],
        answers: &mut [(usize, Result<Sent, ApiError>)],
    ) {
        for (i, answer) in answers {
            let (Ok(sent), Some(media)) = (&*answer, media.get(i)) else {
                continue;
            };
            let shared = if sent.duplicate {
                let recorded = media::record_share(&*self.store, media, chat, sent.seq, user);
                recorded.await.is_ok()
            } else {
                !unshared.contains(media)
            };
            if !shared {
                *answer = Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "stored, but its media could not be shared yet: send it again",
                ));
            }
        }
    }

    /// What the store holds for each `client_msg_id` of `items`, asked once
    /// per id.
    async fn earlier(
        &self,
        chat: ChatId,
        user: UserId,
        items: &[(usize, SendItem)],
    ) -> HashMap<String, Earlier> {
        let mut out = HashMap::new();
        for (_, item) in items {
            let id = &item.client_msg_id;
            if !out.contains_key(id) {
                let found = self.stored_send(chat, user, id).await;
                out.insert(id.clone(), found);
            }
        }
        out
    }

    /// The (seq, sent_at) of a `client_msg_id` the store already holds.
    async fn stored_send(&self, chat: ChatId, user: UserId, client_msg_id: &str) -> Earlier {
        let Some(seq) = self.store.dedup(chat, user, client_msg_id).await? else {
            return Ok(None);
        };
        let sent_at = self
            .store
            .messages_after(chat, seq - 1, 1)
            .await?
            .first()
            .map_or(0, |m| m.sent_at);
        Ok(Some((seq, sent_at)))
    }
}
