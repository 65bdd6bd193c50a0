//! Embedded `Store` on fjall: one directory in the data directory, crash-safe.
//!
//! Why fjall: a log-structured store whose write path is built for appends.
//! A commit appends its rows to a journal and `fdatasync`s it; the sorted
//! tables are written later, in the background, in large sequential runs.
//! A B-tree (redb, which this store used before) instead rewrites every page
//! a commit touches, so its commit cost grew with the number of chats in it:
//! 23 ms for 256 chats against 4 ms here on the same disk, and about a fifth
//! of the CPU per message (`confab-bench store`).
//!
//! All writes go through a single writer thread that **group-commits**: it
//! takes every job queued while the previous commit ran and commits them in
//! one transaction (reading its own writes, so the checks of one job see
//! the jobs before it), answering each caller only after that commit is
//! durable. Throughput then scales with concurrency instead of being capped
//! by fsync latency.
//!
//! Reads run on the caller's thread against a snapshot.
//!
//! Dedup entries expire after [`DEFAULT_DEDUP_TTL`] (as the CQL store's rows
//! do): the writer drops expired ones, a bounded batch at a time, at most
//! once a minute.

mod import;
mod keys;
mod messages;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{SingleWriterTxDatabase, SingleWriterWriteTx as Tx, Snapshot};

use self::keys::Key;
use self::tables::*;
use self::writer::Writer;
use super::{DEFAULT_DEDUP_TTL, MemberChange, Store, StoreError, Taken, backend};
use crate::model::{Chat, ChatId, Device, MediaRecord, Member, Message, Seq, User, UserId};

/// The block cache. The working set of a chat server is the recent tail of
/// each chat (mostly still in the write buffers), so a small cache costs
/// few reads and bounds RSS.
const CACHE_BYTES: u64 = 64 << 20;

/// The embedded store. Cheap to clone; the directory is closed (and may be
/// opened again) once the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: SingleWriterTxDatabase,
    keyspaces: Keyspaces,
    writer: Arc<Writer>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir/confab.db` and starts its writer
    /// thread. A file an earlier version left in `dir` is imported first.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let path = dir.join("confab.db");
        let importing = import::pending(dir, &path);
        if importing {
            import::begin(&path)?;
        }
        let db = SingleWriterTxDatabase::builder(&path)
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(backend)?;
        let keyspaces = Keyspaces::open(&db)?;
        if importing {
            let rows = import::finish(dir, &path, &db, &keyspaces)?;
            tracing::info!(rows, "store: imported the data of an earlier version");
        }
        let writer = Writer::start(db.clone(), keyspaces.clone(), DEFAULT_DEDUP_TTL)?;
        Ok(Self {
            db,
            keyspaces,
            writer: Arc::new(writer),
        })
    }

    /// Runs `f` in the next group commit and resolves once it is durable.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx, &Keyspaces) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.writer.write(f).await
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&Snapshot, &Keyspaces) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f(&self.db.read_tx(), &self.keyspaces)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |tx, ks| {
            if get(tx, &ks.phones, &user.phone)?.is_some() {
                return Err(StoreError::Conflict(Taken::Phone));
            }
            tx.insert(&ks.phones, user.phone.as_str(), user.id.as_bytes());
            tx.insert(&ks.users, user.id.as_bytes(), encode(&user)?);
            Ok(())
        })
        .await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(|r, ks| get_json(r, &ks.users, id.as_bytes()))
    }

    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        let id =
            self.read(|r, ks| Ok(get(r, &ks.phones, phone)?.and_then(|v| keys::id_at(&v, 0))))?;
        match id {
            Some(id) => self.user(id).await,
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
        self.write(move |tx, ks| {
            tx.insert(&ks.chats, chat.id.as_bytes(), encode(&chat)?);
            for m in &members {
                put_member_rows(tx, ks, chat.id, m)?;
            }
            messages::append_all(tx, ks, chat.id, &[first], None)
        })
        .await
    }

    async fn direct_chat(&self, a: UserId, b: UserId) -> Result<Option<ChatId>, StoreError> {
        self.read(
            |r, ks| Ok(get(r, &ks.direct, keys::pair(a, b))?.and_then(|v| keys::id_at(&v, 0))),
        )
    }

    async fn create_direct(
        &self,
        chat: &Chat,
        members: [Member; 2],
    ) -> Result<(ChatId, bool), StoreError> {
        let chat = chat.clone();
        self.write(move |tx, ks| {
            let key = keys::pair(members[0].user_id, members[1].user_id);
            if let Some(existing) = get(tx, &ks.direct, &key)?.and_then(|v| keys::id_at(&v, 0)) {
                return Ok((existing, false));
            }
            tx.insert(&ks.direct, key, chat.id.as_bytes());
            tx.insert(&ks.chats, chat.id.as_bytes(), encode(&chat)?);
            for m in &members {
                put_member_rows(tx, ks, chat.id, m)?;
            }
            Ok((chat.id, true))
        })
        .await
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        self.read(|r, ks| get_json(r, &ks.chats, id.as_bytes()))
    }

    async fn member(&self, chat: ChatId, user: UserId) -> Result<Option<Member>, StoreError> {
        self.read(|r, ks| {
            get_json(r, &ks.members, Key::new().id(chat).id(user).done())?
                .map(|m| with_marks(r, ks, chat, m))
                .transpose()
        })
    }

    async fn members(&self, chat: ChatId) -> Result<Vec<Member>, StoreError> {
        self.read(|r, ks| {
            prefix_json(r, &ks.members, chat.as_bytes())?
                .into_iter()
                .map(|m| with_marks(r, ks, chat, m))
                .collect()
        })
    }

    async fn user_chats(&self, user: UserId) -> Result<Vec<ChatId>, StoreError> {
        self.read(|r, ks| {
            prefix_keys(r, &ks.user_chats, user.as_bytes())?
                .iter()
                .map(|k| {
                    keys::id_at(k, 16).ok_or_else(|| backend("a user's chat key without a chat"))
                })
                .collect()
        })
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
        self.write(move |tx, ks| messages::append_all(tx, ks, chat, &msgs, change))
            .await
    }

    async fn dedup(
        &self,
        chat: ChatId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Seq>, StoreError> {
        self.read(|r, ks| messages::dedup(r, ks, chat, sender, client_msg_id))
    }

    async fn head(&self, chat: ChatId) -> Result<Seq, StoreError> {
        self.read(|r, ks| messages::head(r, ks, chat))
    }

    async fn messages_before(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|r, ks| messages::before(r, ks, chat, before, limit))
    }

    async fn messages_after(
        &self,
        chat: ChatId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|r, ks| messages::after(r, ks, chat, after, limit))
    }

    async fn advance_watermarks(
        &self,
        chat: ChatId,
        user: UserId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Option<Member>, StoreError> {
        self.write(move |tx, ks| {
            let key = Key::new().id(chat).id(user).done();
            let Some(m) = get_json::<Member>(tx, &ks.members, &key)? else {
                return Ok(None);
            };
            let mut m = with_marks(tx, ks, chat, m)?;
            if m.raise(delivered, read) {
                put_marks(tx, ks, chat, &m);
            }
            Ok(Some(m))
        })
        .await
    }

    async fn set_banned(&self, chat: ChatId, user: UserId, banned: bool) -> Result<(), StoreError> {
        self.write(move |tx, ks| {
            let key = Key::new().id(chat).id(user).done();
            if banned {
                tx.insert(&ks.bans, key, []);
            } else {
                tx.remove(&ks.bans, key);
            }
            Ok(())
        })
        .await
    }

    async fn is_banned(&self, chat: ChatId, user: UserId) -> Result<bool, StoreError> {
        self.read(|r, ks| Ok(get(r, &ks.bans, Key::new().id(chat).id(user).done())?.is_some()))
    }

    async fn invite(&self, chat: ChatId) -> Result<Option<String>, StoreError> {
        self.read(|r, ks| {
            get(r, &ks.invites, chat.as_bytes())?
                .map(|v| String::from_utf8(v.to_vec()).map_err(backend))
                .transpose()
        })
    }

    async fn set_invite(&self, chat: ChatId, code: &str) -> Result<(), StoreError> {
        let code = code.to_owned();
        self.write(move |tx, ks| {
            tx.insert(&ks.invites, chat.as_bytes(), code.as_str());
            Ok(())
        })
        .await
    }

    async fn set_last_seen(&self, user: UserId, at: i64) -> Result<(), StoreError> {
        self.write(move |tx, ks| {
            tx.insert(&ks.last_seen, user.as_bytes(), at.to_be_bytes());
            Ok(())
        })
        .await
    }

    async fn last_seen(&self, user: UserId) -> Result<Option<i64>, StoreError> {
        self.read(|r, ks| {
            Ok(get(r, &ks.last_seen, user.as_bytes())?
                .and_then(|v| keys::u64_at_end(&v))
                .map(|n| n as i64))
        })
    }

    async fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let id = token_id.to_owned();
        self.write(move |tx, ks| {
            tx.insert(&ks.revoked, id.as_str(), expires_at.to_be_bytes());
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        self.read(|r, ks| Ok(get(r, &ks.revoked, token_id)?.is_some()))
    }

    async fn media(&self, id: &str) -> Result<Option<MediaRecord>, StoreError> {
        self.read(|r, ks| get_json(r, &ks.media, id))
    }

    async fn swap_media(
        &self,
        record: &MediaRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (id, bytes) = (record.id.clone(), encode(record)?);
        self.write(move |tx, ks| {
            let current = get_json::<MediaRecord>(tx, &ks.media, &id)?.map(|r| r.version);
            if current != expected {
                return Ok(false);
            }
            tx.insert(&ks.media, id.as_str(), bytes);
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
        self.read(|r, ks| {
            let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_bytes()));
            fjall::Readable::range::<&[u8], _>(r, ks.media.inner(), (lower, Bound::Unbounded))
                .take(limit)
                .map(|row| decode(&row.value().map_err(backend)?))
                .collect()
        })
    }

    async fn put_device(&self, user: UserId, device: &Device) -> Result<(), StoreError> {
        let (key, bytes) = (Key::new().id(user).tail(&device.device_id), encode(device)?);
        self.write(move |tx, ks| {
            tx.insert(&ks.devices, key, bytes);
            Ok(())
        })
        .await
    }

    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        self.read(|r, ks| prefix_json(r, &ks.devices, user.as_bytes()))
    }

    async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), StoreError> {
        let key = Key::new().id(user).tail(device_id);
        self.write(move |tx, ks| {
            tx.remove(&ks.devices, key);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
