//! Chats on CQL: a chat's row written with its members (and its first
//! message) in one logged batch, reading it back, and the one direct chat
//! per pair, claimed with an LWT and completed by whoever finds it unfinished.

use scylla::value::CqlValue;

use super::{ScyllaStore, rows};
use crate::model::{Chat, ChatId, Member, Message, UserId};
use crate::store::{MemberChange, StoreError};

/// A pair's key in `direct_chats`, whichever order it is given in.
fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    (a.min(b), a.max(b))
}

impl ScyllaStore {
    /// One logged batch: the chat, its members, and optionally its first message.
    pub(super) async fn write_chat(
        &self,
        chat: &Chat,
        members: &[Member],
        first: Option<&Message>,
    ) -> Result<(), StoreError> {
        let q = &self.queries;
        let chat_values = (
            chat.id,
            rows::kind_cell(chat.kind)?,
            chat.title.clone(),
            chat.created_by,
            chat.created_at,
        );
        self.logged_batch(|batch, values| {
            batch.append_statement(q.insert_chat.clone());
            values.push(Box::new(chat_values));
            for m in members {
                self.push_change(batch, values, chat.id, &MemberChange::Put(m.clone()))?;
            }
            if let Some(first) = first {
                // A brand-new chat id: nothing to fence, so a plain insert.
                batch.append_statement(q.insert_message.clone());
                values.push(Box::new(Self::message_values(first, None)?));
                self.push_effects(batch, values, first, None)?;
            }
            Ok(())
        })
        .await
    }

    /// Writes a direct chat's row and its two members.
    async fn write_direct(&self, chat: &Chat, members: &[Member; 2]) -> Result<(), StoreError> {
        self.write_chat(chat, members, None).await
    }

    pub(super) async fn read_chat(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        type ChatRow = (Option<String>, Option<String>, Option<UserId>, Option<i64>);
        let row: Option<ChatRow> = self.first(&self.queries.select_chat, (id,)).await?;
        let Some((Some(kind), title, created_by, created_at)) = row else {
            return Ok(None);
        };
        Ok(Some(Chat {
            id,
            kind: rows::kind_value(&kind)?,
            title: title.unwrap_or_default(),
            created_by: created_by.unwrap_or_default(),
            created_at: created_at.unwrap_or_default(),
        }))
    }

    /// The pair's chat, only once its row is written.
    pub(super) async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
    ) -> Result<Option<ChatId>, StoreError> {
        let row: Option<(Option<ChatId>, Option<UserId>, Option<i64>)> =
            self.first(&self.queries.select_direct, pair(a, b)).await?;
        let Some((Some(id), _, _)) = row else {
            return Ok(None);
        };
        Ok(self.read_chat(id).await?.map(|c| c.id))
    }

    /// The pair claim (LWT) first, then the chat. A caller that loses the
    /// claim but finds the winner's chat row missing writes it (with the
    /// winner's id, creator and time) so the pair is never stuck.
    pub(super) async fn claim_direct(
        &self,
        chat: &Chat,
        members: [Member; 2],
    ) -> Result<(ChatId, bool), StoreError> {
        let (lo, hi) = pair(members[0].user_id, members[1].user_id);
        let claim = (lo, hi, chat.id, chat.created_by, chat.created_at);
        let result = self.exec(&self.queries.claim_direct, claim).await?;
        let (applied, current) = rows::applied(result)?;
        let existing = if applied {
            chat.id
        } else {
            rows::uuid_cell(&current, "chat_id")?
        };
        let ours = existing == chat.id; // claimed now, or by an earlier try
        if ours || self.read_chat(existing).await?.is_none() {
            let winner = Chat {
                id: existing,
                created_by: rows::uuid_cell(&current, "created_by").unwrap_or(chat.created_by),
                created_at: match rows::cell(&current, "created_at") {
                    Some(CqlValue::BigInt(t)) => *t,
                    _ => chat.created_at,
                },
                ..chat.clone()
            };
            self.write_direct(&winner, &members).await?;
        }
        Ok((existing, ours))
    }
}
