//! A chat's message log on CQL: append, head, paging across buckets, and
//! rolling a half-done append forward.
//!
//! # Partitions
//! `messages` is partitioned by `(chat_id, bucket)` with `bucket = seq /
//! BUCKET`, newest seq first inside a partition. Seqs are gapless from 1
//! (the sequencer's invariant), so every bucket below a chat's head is full;
//! the walks below rely on that and never scan past an empty bucket.
//!
//! # Append = one LWT + one logged batch
//! 1. `INSERT … IF NOT EXISTS` of the message row (of every message of the
//!    append, in one conditional batch on their partition: a device's
//!    queued sends to one chat cost one LWT together, not one each). **This LWT is needed for
//!    correctness**: it is the store's `Conflict(Seq)` check, and it fences
//!    a zombie sequencer (one whose lease has lapsed but which still writes):
//!    its append of a seq the new owner already wrote fails instead of
//!    silently overwriting an acknowledged message. A plain insert would be
//!    last-write-wins. **Cost** (`lwt_cost` in
//!    `e2e/tests/services/runtime_seams.rs`; one local Cassandra 5.0 node on
//!    a shared, noisy 2-core box, so relative figures only): one insert at a
//!    time, the LWT takes ≈ 1.6× a plain insert (≈ 0.9 vs 0.5 ms); with 16–64
//!    in flight on distinct chats it sustains ≈ 1.1–2.8k/s against 4–11k/s
//!    plain (3–4× fewer). A whole append (LWT + batch) took ≈ 1.6 ms one at a
//!    time, ≈ 1k/s over 16 chats.
//! 2. A logged batch with the message's side effects — the sender's dedup
//!    entry (with a TTL), the membership change, and `chat_progress.applied_seq`.
//!    A conditional batch cannot span tables, so these cannot join the LWT.
//!    If the process dies between 1 and 2, the message row (which repeats the
//!    membership change in `change_put` / `change_remove`) is still the
//!    truth: the next [`ScyllaStore::head_seq`] — which a sequencer calls
//!    before it touches a chat — finds `applied_seq < head` and re-applies
//!    the missing effects. They are upserts and deletes, so re-applying is
//!    harmless.

use scylla::serialize::row::SerializeRow;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::rows::{self, MessageRow};
use super::{ScyllaStore, backend};
use crate::model::{ChatId, Message, Seq};
use crate::store::{MemberChange, StoreError, Taken};

/// Messages per partition. A message body is at most 16 KiB
/// (`protocol::MAX_BODY_BYTES`), so even a bucket of only maximal messages
/// stays near 2048 × 16.5 KiB ≈ 34 MB, a third of the ~100 MB where
/// ScyllaDB and Cassandra start warning about large partitions; a typical
/// bucket of short texts is well under 1 MB. Smaller buckets would cost more
/// partition hops per history page; larger ones risk the limit. Changing it
/// re-buckets every stored message: it is part of the schema.
pub const BUCKET: u64 = 2048;

/// Rows read per query when rolling a chat forward.
const ROLL_FORWARD_PAGE: usize = 256;

/// The bound values of a batch, one row per statement.
pub(super) type Values = Vec<Box<dyn SerializeRow + Send + Sync>>;

fn push(
    batch: &mut Batch,
    values: &mut Values,
    s: &PreparedStatement,
    v: Box<dyn SerializeRow + Send + Sync>,
) {
    batch.append_statement(s.clone());
    values.push(v);
}

pub fn bucket(seq: Seq) -> i64 {
    (seq / BUCKET) as i64
}

fn last_in_bucket(bucket: i64) -> Seq {
    (bucket as u64 + 1) * BUCKET - 1
}

fn limit_cell(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl ScyllaStore {
    /// The bound values of a `messages` insert.
    pub(super) fn message_values(
        msg: &Message,
        change: Option<&MemberChange>,
    ) -> Result<impl SerializeRow + Send + Sync + 'static, StoreError> {
        let (kind, body, event, event_user) = rows::content_cells(&msg.content)?;
        let (put, remove) = rows::change_cells(change)?;
        Ok((
            msg.chat_id,
            bucket(msg.seq),
            rows::seq_cell(msg.seq)?,
            msg.sender,
            msg.client_msg_id.clone(),
            kind,
            body,
            event,
            event_user,
            msg.sent_at,
            put,
            remove,
        ))
    }

    /// Adds `msg`'s side effects (dedup entry, membership change, applied
    /// mark) to a batch.
    pub(super) fn push_effects(
        &self,
        batch: &mut Batch,
        values: &mut Values,
        msg: &Message,
        change: Option<&MemberChange>,
    ) -> Result<(), StoreError> {
        let q = &self.queries;
        let (chat, seq) = (msg.chat_id, rows::seq_cell(msg.seq)?);
        if !msg.client_msg_id.is_empty() {
            let v = (
                chat,
                msg.sender,
                msg.client_msg_id.clone(),
                seq,
                self.dedup_ttl,
            );
            push(batch, values, &q.insert_dedup, Box::new(v));
        }
        if let Some(change) = change {
            self.push_change(batch, values, chat, change)?;
        }
        push(batch, values, &q.set_applied, Box::new((seq, chat)));
        Ok(())
    }

    /// Adds a membership change (both `chat_members` and `user_chats`) to a batch.
    pub(super) fn push_change(
        &self,
        batch: &mut Batch,
        values: &mut Values,
        chat: ChatId,
        change: &MemberChange,
    ) -> Result<(), StoreError> {
        let q = &self.queries;
        match change {
            MemberChange::Put(m) => {
                let v = (
                    chat,
                    m.user_id,
                    rows::role_cell(m.role)?,
                    m.joined_at,
                    rows::seq_cell(m.joined_seq)?,
                    rows::seq_cell(m.delivered_seq)?,
                    rows::seq_cell(m.read_seq)?,
                );
                push(batch, values, &q.insert_member, Box::new(v));
                push(
                    batch,
                    values,
                    &q.insert_user_chat,
                    Box::new((m.user_id, chat)),
                );
            }
            MemberChange::Remove(user) => {
                push(batch, values, &q.delete_member, Box::new((chat, *user)));
                push(batch, values, &q.delete_user_chat, Box::new((*user, chat)));
            }
        }
        Ok(())
    }

    /// Runs a logged batch built by `fill`.
    pub(super) async fn logged_batch(
        &self,
        fill: impl FnOnce(&mut Batch, &mut Values) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new(BatchType::Logged);
        batch.set_consistency(Consistency::LocalQuorum);
        let mut values: Values = Vec::new();
        fill(&mut batch, &mut values)?;
        self.session
            .batch(&batch, values)
            .await
            .map_err(|e| backend(format!("logged batch: {e}")))?;
        Ok(())
    }

    /// Steps 1 and 2 of an append (see the module docs) for consecutive
    /// messages of one chat, `change` going with the last: one conditional
    /// batch claims every seq of a partition at once (all or none), then one
    /// logged batch writes their side effects. Messages usually share one
    /// partition; a run across a bucket boundary is written partition by
    /// partition, so a conflict in a later one leaves an earlier one stored
    /// whole, effects included.
    pub(super) async fn append_messages(
        &self,
        msgs: &[Message],
        change: Option<&MemberChange>,
    ) -> Result<(), StoreError> {
        let last = msgs.last().map(|m| m.seq);
        let change_of = |m: &Message| change.filter(|_| Some(m.seq) == last);
        for part in msgs.chunk_by(|a, b| bucket(a.seq) == bucket(b.seq)) {
            let mut claim = Batch::new(BatchType::Logged);
            claim.set_consistency(Consistency::LocalQuorum);
            let mut values: Values = Vec::new();
            for m in part {
                let v = Self::message_values(m, change_of(m))?;
                push(
                    &mut claim,
                    &mut values,
                    &self.queries.claim_message,
                    Box::new(v),
                );
            }
            let result = self
                .session
                .batch(&claim, values)
                .await
                .map_err(|e| backend(format!("message insert (outcome unknown): {e}")))?;
            if !rows::applied(result)?.0 {
                return Err(StoreError::Conflict(Taken::Seq));
            }
            self.logged_batch(|b, v| {
                part.iter()
                    .try_for_each(|m| self.push_effects(b, v, m, change_of(m)))
            })
            .await?;
        }
        Ok(())
    }

    /// Newest seq in one bucket.
    async fn head_in_bucket(&self, chat: ChatId, bucket: i64) -> Result<Option<Seq>, StoreError> {
        let q = &self.queries.select_head_in_bucket;
        let row: Option<(i64,)> = self.first(q, (chat, bucket)).await?;
        row.map(|(seq,)| rows::seq_value(seq)).transpose()
    }

    async fn applied_seq(&self, chat: ChatId) -> Result<Seq, StoreError> {
        let row: Option<(Option<i64>,)> = self.first(&self.queries.select_applied, (chat,)).await?;
        match row {
            Some((Some(seq),)) => rows::seq_value(seq),
            _ => Ok(0),
        }
    }

    /// `(applied_seq, head)`: walks up from the bucket of `applied_seq`
    /// (usually one query, two at a bucket boundary).
    async fn find_head(&self, chat: ChatId) -> Result<(Seq, Seq), StoreError> {
        let applied = self.applied_seq(chat).await?;
        let (mut b, mut head) = (bucket(applied), applied);
        while let Some(top) = self.head_in_bucket(chat, b).await? {
            head = head.max(top);
            if top != last_in_bucket(b) {
                break;
            }
            b += 1;
        }
        Ok((applied, head))
    }

    /// The chat's head, after rolling forward any append whose side effects
    /// are missing.
    pub(super) async fn head_seq(&self, chat: ChatId) -> Result<Seq, StoreError> {
        let (mut applied, head) = self.find_head(chat).await?;
        while applied < head {
            let page = self.read_after(chat, applied, ROLL_FORWARD_PAGE).await?;
            let progress = applied;
            for (msg, change) in page {
                if msg.seq > head {
                    break;
                }
                tracing::info!(%chat, seq = msg.seq, "store: completing an interrupted append");
                self.logged_batch(|b, v| self.push_effects(b, v, &msg, change.as_ref()))
                    .await?;
                applied = msg.seq;
            }
            if applied == progress {
                break; // a gap in seqs: nothing further to complete
            }
        }
        Ok(head)
    }

    async fn select(
        &self,
        statement: &PreparedStatement,
        chat: ChatId,
        bucket: i64,
        bound: Seq,
        limit: usize,
    ) -> Result<Vec<(Message, Option<MemberChange>)>, StoreError> {
        let values = (chat, bucket, rows::seq_cell(bound)?, limit_cell(limit));
        let rows = self.rows(statement, values).await?;
        rows.rows::<MessageRow>()
            .map_err(backend)?
            .map(|row| rows::message_value(chat, row.map_err(backend)?))
            .collect()
    }

    /// Up to `limit` messages with seq > `after`, oldest first, with the
    /// membership change each was written with.
    pub(super) async fn read_after(
        &self,
        chat: ChatId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Message, Option<MemberChange>)>, StoreError> {
        let mut out = Vec::new();
        let Some(first) = after.checked_add(1) else {
            return Ok(out);
        };
        let mut b = bucket(first);
        while out.len() < limit {
            let page = self
                .select(
                    &self.queries.select_after,
                    chat,
                    b,
                    after,
                    limit - out.len(),
                )
                .await?;
            let bucket_done = page.last().is_some_and(|(m, _)| m.seq == last_in_bucket(b));
            out.extend(page);
            if !bucket_done {
                break;
            }
            b += 1;
        }
        Ok(out)
    }

    /// Up to `limit` messages with seq < `before` (all when `None`), newest first.
    pub(super) async fn read_before(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let (_, head) = self.find_head(chat).await?;
        // Never start above the head: buckets there are empty.
        let upper = before.unwrap_or(Seq::MAX).min(head.saturating_add(1));
        let mut out = Vec::new();
        if upper <= 1 || limit == 0 {
            return Ok(out);
        }
        let mut b = bucket(upper - 1);
        loop {
            let page = self
                .select(
                    &self.queries.select_before,
                    chat,
                    b,
                    upper,
                    limit - out.len(),
                )
                .await?;
            out.extend(page.into_iter().map(|(m, _)| m));
            if out.len() >= limit || b == 0 {
                return Ok(out);
            }
            b -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_bucket_size_seqs() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(BUCKET - 1), 0);
        assert_eq!(bucket(BUCKET), 1);
        assert_eq!(last_in_bucket(0), BUCKET - 1);
        assert_eq!(bucket(last_in_bucket(5)), 5);
        assert_eq!(bucket(last_in_bucket(5) + 1), 6);
    }
}
