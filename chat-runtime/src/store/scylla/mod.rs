//! `Store` on ScyllaDB (any CQL server; tests use Apache Cassandra 5.0).
//!
//! Owns the cluster store: the schema ([`migrations`], applied at startup),
//! the prepared statements ([`queries`]), row encodings ([`rows`]), chats
//! and their direct-chat claims ([`chats`]) and the message log
//! ([`messages`]). It does not own the connection: it is handed a connected
//! `Session` (contact points, TLS and auth are the caller's; see
//! [`recommended`] for the settings it expects).
//!
//! # Where LWTs are used, and why only there
//! Lightweight transactions (Paxos) cost several round trips, so they guard
//! only the places where last-write-wins would break an invariant:
//! - **phone uniqueness** (`users_by_phone … IF NOT EXISTS`): two concurrent
//!   registrations of one phone must not both succeed;
//! - **one direct chat per pair** (`direct_chats … IF NOT EXISTS`): two users
//!   opening a chat with each other at once must land in the same chat;
//! - **media records** (`media … IF NOT EXISTS` / `IF version = ?`): uploads,
//!   shares, downloads and the retention sweeper change one record from
//!   different gateways; the compare-and-set keeps the sweeper from deleting
//!   an object a concurrent upload just re-referenced. Media changes are
//!   rare next to messages, so their Paxos rounds do not matter;
//! - **the message insert** (`messages … IF NOT EXISTS`): `Conflict(Seq)`
//!   for a seq already stored, which also fences a zombie sequencer (see
//!   [`messages`], which also gives its measured cost: 3–4× fewer inserts/s
//!   than a plain insert on our test node).
//!
//! Everything else is a plain write, safe because a chat has one writer (its
//! sequencer) and the session should give that writer monotonic client
//! timestamps ([`recommended`]) so that its writes apply in order even when
//! coordinators' clocks disagree. `advance_watermarks` reads, raises and
//! writes: correct under that single writer, not against concurrent callers.
//!
//! # Atomicity
//! Writes that must land together go in one logged batch (a chat and its
//! members; a message's side effects). The message LWT cannot join a batch
//! with other tables, so an append is "LWT, then batch", with a roll-forward
//! in `head` when a process died in between ([`messages`]). The two other
//! LWTs are ordered so that a crash leaves nothing visible (a user row no
//! phone points to) or something the next caller completes (a claimed pair
//! whose chat row is missing).

mod chats;
mod config;
mod messages;
mod migrations;
mod queries;
mod rows;

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::response::query_result::{QueryResult, QueryRowsResult};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

pub use config::{DEFAULT_DEDUP_TTL, Replication, ScyllaConfig};
pub use messages::BUCKET;
pub use migrations::latest_version;

use self::config::ttl_cap;
use self::queries::Queries;
pub(crate) use super::backend;
use super::{MemberChange, Store, StoreError, Taken};
use crate::model::{
    Chat, ChatId, Device, MediaRecord, Member, Message, Platform, Seq, User, UserId, now_ms,
};

/// Revoked tokens are kept this much longer than their expiry, so a token
/// still accepted by a gateway whose clock lags stays revoked.
const REVOKE_GRACE_SECS: i64 = 3600;

/// The settings the store expects of its session: client-side monotonic
/// timestamps, so one process's writes to a row apply in the order made.
pub fn recommended(builder: SessionBuilder) -> SessionBuilder {
    builder.timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
}

/// The CQL store. Cheap to clone.
#[derive(Clone)]
pub struct ScyllaStore {
    session: Arc<Session>,
    queries: Arc<Queries>,
    /// `ScyllaConfig::dedup_ttl` in seconds, as bound to `USING TTL`.
    dedup_ttl: i32,
}

impl ScyllaStore {
    /// Applies pending migrations to `config.keyspace` (creating it if
    /// needed), prepares every statement, and returns the store.
    pub async fn open(session: Arc<Session>, config: ScyllaConfig) -> Result<Self, StoreError> {
        config.validate()?;
        migrations::migrate(&session, &config).await?;
        let queries = Queries::prepare(&session, &config.keyspace).await?;
        Ok(Self {
            session,
            queries: Arc::new(queries),
            dedup_ttl: config.dedup_ttl.as_secs() as i32,
        })
    }

    /// Runs a prepared write (or a read whose rows are not needed).
    async fn exec(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryResult, StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(backend)
    }

    /// The rows of a prepared read (one page: for reads with a small LIMIT).
    async fn rows(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryRowsResult, StoreError> {
        self.exec(statement, values)
            .await?
            .into_rows_result()
            .map_err(backend)
    }

    /// The first row of a prepared read, if any.
    async fn first<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let rows = self.rows(statement, values).await?;
        rows.maybe_first_row::<R>().map_err(backend)
    }

    /// Every row of a prepared read, page by page.
    async fn all<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(backend)?
            .rows_stream::<R>()
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }
}

/// A `users` row: id, phone, display_name, password_hash, created_at.
type UserRow = (
    UserId,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

#[async_trait]
impl Store for ScyllaStore {
    /// The user row first, then the phone claim (LWT): a crash in between
    /// leaves a row no phone leads to, and a lost claim deletes it.
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let q = &self.queries;
        let row = (
            user.id,
            user.phone.clone(),
            user.display_name.clone(),
            user.password_hash.clone(),
            user.created_at,
        );
        self.exec(&q.insert_user, row).await?;
        let claim = self
            .exec(&q.claim_phone, (user.phone.clone(), user.id))
            .await?;
        let (applied, current) = rows::applied(claim)?;
        if applied || rows::uuid_cell(&current, "user_id")? == user.id {
            return Ok(()); // claimed now, or by an earlier try of this call
        }
        self.exec(&q.delete_user, (user.id,)).await?;
        Err(StoreError::Conflict(Taken::Phone))
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = self.first(&self.queries.select_user, (id,)).await?;
        Ok(row.map(|(id, phone, name, hash, created_at)| User {
            id,
            phone: phone.unwrap_or_default(),
            display_name: name.unwrap_or_default(),
            password_hash: hash.unwrap_or_default(),
            created_at: created_at.unwrap_or_default(),
        }))
    }

    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        let row: Option<(Option<UserId>,)> =
            self.first(&self.queries.select_phone, (phone,)).await?;
        match row {
            Some((Some(id),)) => self.user(id).await,
            _ => Ok(None),
        }
    }

    async fn create_chat(
        &self,
        chat: &Chat,
        members: &[Member],
        first: &Message,
    ) -> Result<(), StoreError> {
        self.write_chat(chat, members, Some(first)).await
    }

    /// Only a complete chat counts: a pair claimed by a creator that died
    /// before writing the chat reads as none, and `create_direct` finishes it.
    async fn direct_chat(&self, a: UserId, b: UserId) -> Result<Option<ChatId>, StoreError> {
        self.find_direct(a, b).await
    }

    /// The pair claim (LWT) first, then the chat (see `claim_direct`).
    async fn create_direct(
        &self,
        chat: &Chat,
        members: [Member; 2],
    ) -> Result<(ChatId, bool), StoreError> {
        self.claim_direct(chat, members).await
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        self.read_chat(id).await
    }

    async fn members(&self, chat: ChatId) -> Result<Vec<Member>, StoreError> {
        let rows: Vec<rows::MemberRow> = self.all(&self.queries.select_members, (chat,)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.extend(rows::member_value(row)?);
        }
        Ok(out)
    }

    /// One row, not the whole member list.
    async fn member(&self, chat: ChatId, user: UserId) -> Result<Option<Member>, StoreError> {
        let row: Option<rows::MemberRow> = self
            .first(&self.queries.select_member, (chat, user))
            .await?;
        Ok(row.map(rows::member_value).transpose()?.flatten())
    }

    async fn user_chats(&self, user: UserId) -> Result<Vec<ChatId>, StoreError> {
        let rows: Vec<(ChatId,)> = self.all(&self.queries.select_user_chats, (user,)).await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// One conditional batch per partition: all of them, or a conflict.
    async fn append_all(
        &self,
        msgs: &[Message],
        change: Option<MemberChange>,
    ) -> Result<(), StoreError> {
        self.append_messages(msgs, change.as_ref()).await
    }

    async fn dedup(
        &self,
        chat: ChatId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Seq>, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .first(&self.queries.select_dedup, (chat, sender, client_msg_id))
            .await?;
        row.and_then(|(s,)| s).map(rows::seq_value).transpose()
    }

    /// Also completes an append whose side effects a dead process left out.
    async fn head(&self, chat: ChatId) -> Result<Seq, StoreError> {
        self.head_seq(chat).await
    }

    async fn messages_before(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read_before(chat, before, limit).await
    }

    async fn messages_after(
        &self,
        chat: ChatId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let page = self.read_after(chat, after, limit).await?;
        Ok(page.into_iter().map(|(m, _)| m).collect())
    }

    /// Read, raise, write: relies on the chat's single writer (module docs).
    async fn advance_watermarks(
        &self,
        chat: ChatId,
        user: UserId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Option<Member>, StoreError> {
        let q = &self.queries;
        let Some(mut m) = self.member(chat, user).await? else {
            return Ok(None);
        };
        if m.raise(delivered, read) {
            let (d, r) = (m.delivered_seq, m.read_seq);
            let values = (rows::seq_cell(d)?, rows::seq_cell(r)?, chat, user);
            self.exec(&q.update_watermarks, values).await?;
        }
        Ok(Some(m))
    }

    async fn set_last_seen(&self, user: UserId, at: i64) -> Result<(), StoreError> {
        self.exec(&self.queries.insert_last_seen, (user, at))
            .await?;
        Ok(())
    }

    async fn last_seen(&self, user: UserId) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> =
            self.first(&self.queries.select_last_seen, (user,)).await?;
        Ok(row.and_then(|(at,)| at))
    }

    /// `expires_at` is in seconds since the Unix epoch (a token's `exp`); the
    /// row lives until then plus a grace period, within the servers' TTL limits.
    async fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = now_ms() / 1000;
        let left = expires_at.saturating_sub(now).max(0);
        let ttl = left.saturating_add(REVOKE_GRACE_SECS).min(ttl_cap(now)) as i32;
        let values = (token_id, expires_at, ttl);
        self.exec(&self.queries.insert_revoked, values).await?;
        Ok(())
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .first(&self.queries.select_revoked, (token_id,))
            .await?;
        Ok(row.is_some())
    }

    async fn media(&self, id: &str) -> Result<Option<MediaRecord>, StoreError> {
        let row: Option<(Option<String>,)> = self.first(&self.queries.select_media, (id,)).await?;
        row.and_then(|(json,)| json)
            .map(|json| serde_json::from_str(&json).map_err(backend))
            .transpose()
    }

    async fn swap_media(
        &self,
        record: &MediaRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(record).map_err(backend)?;
        let version = rows::seq_cell(record.version)?;
        let result = match expected {
            None => {
                let values = (record.id.as_str(), version, json);
                self.exec(&self.queries.insert_media, values).await?
            }
            Some(old) => {
                let values = (version, json, record.id.as_str(), rows::seq_cell(old)?);
                self.exec(&self.queries.update_media, values).await?
            }
        };
        Ok(rows::applied(result)?.0)
    }

    async fn media_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows = match after {
            None => self.rows(&self.queries.first_media, (limit,)).await?,
            Some(id) => self.rows(&self.queries.next_media, (id, limit)).await?,
        };
        rows.rows::<(String, Option<String>)>()
            .map_err(backend)?
            .filter_map(|r| r.map(|(_, json)| json).transpose())
            .map(|json| serde_json::from_str(&json.map_err(backend)?).map_err(backend))
            .collect()
    }

    async fn set_banned(&self, chat: ChatId, user: UserId, banned: bool) -> Result<(), StoreError> {
        let q = &self.queries;
        let statement = if banned { &q.insert_ban } else { &q.delete_ban };
        self.exec(statement, (chat, user)).await?;
        Ok(())
    }

    async fn is_banned(&self, chat: ChatId, user: UserId) -> Result<bool, StoreError> {
        let row: Option<(UserId,)> = self.first(&self.queries.select_ban, (chat, user)).await?;
        Ok(row.is_some())
    }

    async fn invite(&self, chat: ChatId) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            self.first(&self.queries.select_invite, (chat,)).await?;
        Ok(row.and_then(|(code,)| code))
    }

    async fn set_invite(&self, chat: ChatId, code: &str) -> Result<(), StoreError> {
        self.exec(&self.queries.insert_invite, (chat, code)).await?;
        Ok(())
    }

    async fn put_device(&self, user: UserId, device: &Device) -> Result<(), StoreError> {
        let values = (
            user,
            &device.device_id,
            device.platform.as_str(),
            &device.token,
        );
        self.exec(&self.queries.insert_device, values).await?;
        Ok(())
    }

    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        type Row = (String, Option<String>, Option<String>);
        let rows: Vec<Row> = self.all(&self.queries.select_devices, (user,)).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(device_id, platform, token)| {
                Some(Device {
                    device_id,
                    platform: Platform::parse(platform.as_deref()?)?,
                    token: token?,
                })
            })
            .collect())
    }

    async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), StoreError> {
        self.exec(&self.queries.delete_device, (user, device_id))
            .await?;
        Ok(())
    }
}
