//! Embedded `Store` on redb: one file in the data directory, crash-safe.
//!
//! Why redb: pure Rust, two dependencies, copy-on-write B-trees with a
//! checksummed commit (a `kill -9` at any point leaves the last committed
//! transaction intact). Its cost is one fsync per commit, so all writes go
//! through a single writer thread that **group-commits**: it takes every job
//! queued while the previous commit ran and commits them in one transaction,
//! answering each caller only after that commit is durable. Throughput then
//! scales with concurrency instead of being capped by fsync latency
//! (`confab-bench store` measures it).
//!
//! Reads run on the caller's thread against redb's MVCC snapshots.
//!
//! Dedup entries expire after [`DEFAULT_DEDUP_TTL`] (as the CQL store's rows
//! do): the writer drops expired ones, a bounded batch at a time, at most
//! once a minute.

mod messages;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use self::tables::*;
use self::writer::Writer;
use super::{DEFAULT_DEDUP_TTL, MemberChange, Store, StoreError, Taken, backend};
use crate::model::{Chat, ChatId, Device, MediaRecord, Member, Message, Seq, User, UserId};

/// redb's page cache. Its default (1 GiB) fills with freshly written pages
/// under a steady write load; the working set of a chat server is the recent
/// tail of each chat, so a small cache costs few reads and bounds RSS.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded store. Cheap to clone; the file is closed (and may be opened
/// again) once the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    // Dropped before `writer`, whose drop joins the thread holding the other
    // reference: the database is closed when the last handle is gone.
    db: Arc<Database>,
    writer: Arc<Writer>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir/confab.redb` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("confab.redb"))
            .map_err(backend)?;
        let db = Arc::new(db);
        let txn = db.begin_write().map_err(backend)?;
        tables::create_all(&txn)?;
        txn.commit().map_err(backend)?;
        let writer = Arc::new(Writer::start(db.clone(), DEFAULT_DEDUP_TTL)?);
        Ok(Self { db, writer })
    }

    /// Runs `f` in the next group commit and resolves once it is durable.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.writer.write(f).await
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        f(&txn)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let mut phones = txn.open_table(PHONES).map_err(backend)?;
            if phones.get(user.phone.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Conflict(Taken::Phone));
            }
            let bytes = encode(&user)?;
            phones
                .insert(user.phone.as_str(), user.id.as_u128())
                .map_err(backend)?;
            txn.open_table(USERS)
                .map_err(backend)?
                .insert(user.id.as_u128(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(|txn| get_json(&txn.open_table(USERS).map_err(backend)?, id.as_u128()))
    }

    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        let id = self.read(|txn| {
            let t = txn.open_table(PHONES).map_err(backend)?;
            Ok(t.get(phone).map_err(backend)?.map(|v| v.value()))
        })?;
        match id {
            Some(id) => self.user(UserId::from_u128(id)).await,
            None => Ok(None),
        }
    }

    async fn create_chat(
        &self,
        chat: &Chat,
        members: &[Member],
        first: &Message,
    ) -> Result<(), StoreError> {
        let (chat, members, first) = (chat.clone(), members.to_vec(), first.clone());
        self.write(move |txn| {
            let bytes = encode(&chat)?;
            txn.open_table(CHATS)
                .map_err(backend)?
                .insert(chat.id.as_u128(), bytes.as_slice())
                .map_err(backend)?;
            for m in &members {
                put_member_rows(txn, chat.id, m)?;
            }
            put_message(txn, &first)
        })
        .await
    }

    async fn direct_chat(&self, a: UserId, b: UserId) -> Result<Option<ChatId>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(DIRECT).map_err(backend)?;
            Ok(t.get(pair(a, b))
                .map_err(backend)?
                .map(|v| ChatId::from_u128(v.value())))
        })
    }

    async fn create_direct(
        &self,
        chat: &Chat,
        members: [Member; 2],
    ) -> Result<(ChatId, bool), StoreError> {
        let chat = chat.clone();
        self.write(move |txn| {
            let key = pair(members[0].user_id, members[1].user_id);
            let mut direct = txn.open_table(DIRECT).map_err(backend)?;
            if let Some(existing) = direct.get(key).map_err(backend)? {
                return Ok((ChatId::from_u128(existing.value()), false));
            }
            direct.insert(key, chat.id.as_u128()).map_err(backend)?;
            drop(direct);
            let bytes = encode(&chat)?;
            txn.open_table(CHATS)
                .map_err(backend)?
                .insert(chat.id.as_u128(), bytes.as_slice())
                .map_err(backend)?;
            for m in &members {
                put_member_rows(txn, chat.id, m)?;
            }
            Ok((chat.id, true))
        })
        .await
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        self.read(|txn| get_json(&txn.open_table(CHATS).map_err(backend)?, id.as_u128()))
    }

    async fn member(&self, chat: ChatId, user: UserId) -> Result<Option<Member>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(MEMBERS).map_err(backend)?;
            get_json(&t, (chat.as_u128(), user.as_u128()))
        })
    }

    async fn members(&self, chat: ChatId) -> Result<Vec<Member>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(MEMBERS).map_err(backend)?;
            let c = chat.as_u128();
            t.range((c, 0)..=(c, u128::MAX))
                .map_err(backend)?
                .map(|row| decode(row.map_err(backend)?.1.value()))
                .collect()
        })
    }

    async fn user_chats(&self, user: UserId) -> Result<Vec<ChatId>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(USER_CHATS).map_err(backend)?;
            let u = user.as_u128();
            t.range((u, 0)..=(u, u128::MAX))
                .map_err(backend)?
                .map(|row| Ok(ChatId::from_u128(row.map_err(backend)?.0.value().1)))
                .collect()
        })
    }

    async fn append(&self, msg: &Message, change: Option<MemberChange>) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(msg), change).await
    }

    /// One job, so the messages land in one group commit, all or none.
    async fn append_all(
        &self,
        msgs: &[Message],
        change: Option<MemberChange>,
    ) -> Result<(), StoreError> {
        let Some(chat) = msgs.first().map(|m| m.chat_id) else {
            return Ok(());
        };
        let msgs = msgs.to_vec();
        self.write(move |txn| messages::append_all(txn, chat, &msgs, change))
            .await
    }

    async fn dedup(
        &self,
        chat: ChatId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Seq>, StoreError> {
        self.read(|txn| messages::dedup(txn, chat, sender, client_msg_id))
    }

    async fn head(&self, chat: ChatId) -> Result<Seq, StoreError> {
        self.read(|txn| messages::head(txn, chat))
    }

    async fn messages_before(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|txn| messages::before(txn, chat, before, limit))
    }

    async fn messages_after(
        &self,
        chat: ChatId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|txn| messages::after(txn, chat, after, limit))
    }

    async fn advance_watermarks(
        &self,
        chat: ChatId,
        user: UserId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Option<Member>, StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(MEMBERS).map_err(backend)?;
            let key = (chat.as_u128(), user.as_u128());
            let current: Option<Member> = get_json(&t, key)?;
            let Some(mut m) = current else {
                return Ok(None);
            };
            if m.raise(delivered, read) {
                let bytes = encode(&m)?;
                t.insert(key, bytes.as_slice()).map_err(backend)?;
            }
            Ok(Some(m))
        })
        .await
    }

    async fn set_banned(&self, chat: ChatId, user: UserId, banned: bool) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(BANS).map_err(backend)?;
            let key = (chat.as_u128(), user.as_u128());
            if banned {
                t.insert(key, ()).map_err(backend)?;
            } else {
                t.remove(key).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn is_banned(&self, chat: ChatId, user: UserId) -> Result<bool, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(BANS).map_err(backend)?;
            Ok(t.get((chat.as_u128(), user.as_u128()))
                .map_err(backend)?
                .is_some())
        })
    }

    async fn invite(&self, chat: ChatId) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(INVITES).map_err(backend)?;
            Ok(t.get(chat.as_u128())
                .map_err(backend)?
                .map(|v| v.value().to_owned()))
        })
    }

    async fn set_invite(&self, chat: ChatId, code: &str) -> Result<(), StoreError> {
        let code = code.to_owned();
        self.write(move |txn| {
            txn.open_table(INVITES)
                .map_err(backend)?
                .insert(chat.as_u128(), code.as_str())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_last_seen(&self, user: UserId, at: i64) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(LAST_SEEN)
                .map_err(backend)?
                .insert(user.as_u128(), at)
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn last_seen(&self, user: UserId) -> Result<Option<i64>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(LAST_SEEN).map_err(backend)?;
            Ok(t.get(user.as_u128()).map_err(backend)?.map(|v| v.value()))
        })
    }

    async fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let id = token_id.to_owned();
        self.write(move |txn| {
            txn.open_table(REVOKED)
                .map_err(backend)?
                .insert(id.as_str(), expires_at)
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(REVOKED).map_err(backend)?;
            Ok(t.get(token_id).map_err(backend)?.is_some())
        })
    }

    async fn media(&self, id: &str) -> Result<Option<MediaRecord>, StoreError> {
        self.read(|txn| get_json(&txn.open_table(MEDIA).map_err(backend)?, id))
    }

    async fn swap_media(
        &self,
        record: &MediaRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (id, bytes) = (record.id.clone(), encode(record)?);
        self.write(move |txn| {
            let mut t = txn.open_table(MEDIA).map_err(backend)?;
            let current = t
                .get(id.as_str())
                .map_err(backend)?
                .map(|v| decode::<MediaRecord>(v.value()))
                .transpose()?
                .map(|r| r.version);
            if current != expected {
                return Ok(false);
            }
            t.insert(id.as_str(), bytes.as_slice()).map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn media_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        use std::ops::Bound;
        self.read(|txn| {
            let t = txn.open_table(MEDIA).map_err(backend)?;
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            t.range::<&str>((lower, Bound::Unbounded))
                .map_err(backend)?
                .take(limit)
                .map(|row| decode(row.map_err(backend)?.1.value()))
                .collect()
        })
    }

    async fn put_device(&self, user: UserId, device: &Device) -> Result<(), StoreError> {
        let (id, bytes) = (device.device_id.clone(), encode(device)?);
        self.write(move |txn| {
            txn.open_table(DEVICES)
                .map_err(backend)?
                .insert((user.as_u128(), id.as_str()), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        use std::ops::Bound;
        self.read(|txn| {
            let t = txn.open_table(DEVICES).map_err(backend)?;
            let u = user.as_u128();
            let upper = u
                .checked_add(1)
                .map_or(Bound::Unbounded, |next| Bound::Excluded((next, "")));
            t.range::<(Id, &str)>((Bound::Included((u, "")), upper))
                .map_err(backend)?
                .map(|row| decode(row.map_err(backend)?.1.value()))
                .collect()
        })
    }

    async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), StoreError> {
        let id = device_id.to_owned();
        self.write(move |txn| {
            txn.open_table(DEVICES)
                .map_err(backend)?
                .remove((user.as_u128(), id.as_str()))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
