//! The embedded store's keyspaces (one LSM tree each), how rows are encoded,
//! and the row writes that several operations share.
//!
//! Keys are built by [`keys`](super::keys); values are JSON for records and
//! big-endian numbers or raw ids for the small index rows.

use fjall::{
    KeyspaceCreateOptions, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace,
    SingleWriterWriteTx as Tx,
};

use super::keys::{self, Key};
use crate::model::{ChatId, Member, Message, UserId};
use crate::store::{StoreError, backend};

/// Every keyspace of the store. Handles are cheap to clone.
#[derive(Clone)]
pub(super) struct Keyspaces {
    /// user id → user (JSON).
    pub users: SingleWriterTxKeyspace,
    /// phone → user id.
    pub phones: SingleWriterTxKeyspace,
    /// chat id → chat (JSON).
    pub chats: SingleWriterTxKeyspace,
    /// (chat, user) → member (JSON).
    pub members: SingleWriterTxKeyspace,
    /// (chat, user) → (delivered seq, read seq), big-endian: a member's
    /// watermarks, kept apart from the member row. Every receipt writes a
    /// version of its row, and an LSM tree's scans step over every version
    /// still in memory: in the member rows, scanning a busy group's members
    /// (presence does, on each connect and disconnect) cost one step per
    /// receipt. Point reads of these rows seek past the old versions.
    pub marks: SingleWriterTxKeyspace,
    /// (user, chat) → (): a user's chats.
    pub user_chats: SingleWriterTxKeyspace,
    /// (min user, max user) → direct chat id.
    pub direct: SingleWriterTxKeyspace,
    /// (chat, seq) → message (JSON).
    pub messages: SingleWriterTxKeyspace,
    /// (chat, sender, client_msg_id) → seq.
    pub dedup: SingleWriterTxKeyspace,
    /// (sent at, dedup key) → (): dedup entries by age, for expiry.
    pub dedup_age: SingleWriterTxKeyspace,
    /// user id → last seen (ms).
    pub last_seen: SingleWriterTxKeyspace,
    /// token id → expiry (ms).
    pub revoked: SingleWriterTxKeyspace,
    /// media id → record (JSON).
    pub media: SingleWriterTxKeyspace,
    /// (chat, user) → (): users an admin removed, who may not join again.
    pub bans: SingleWriterTxKeyspace,
    /// chat → its current invite code.
    pub invites: SingleWriterTxKeyspace,
    /// (user, device id) → device (JSON).
    pub devices: SingleWriterTxKeyspace,
}

impl Keyspaces {
    /// Opens (or creates) every keyspace, so readers never miss one.
    pub(super) fn open(db: &SingleWriterTxDatabase) -> Result<Self, StoreError> {
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(backend)
        };
        Ok(Self {
            users: open("users")?,
            phones: open("phones")?,
            chats: open("chats")?,
            members: open("chat_members")?,
            marks: open("chat_marks")?,
            user_chats: open("user_chats")?,
            direct: open("direct_chats")?,
            messages: open("messages")?,
            dedup: open("dedup")?,
            dedup_age: open("dedup_age")?,
            last_seen: open("last_seen")?,
            revoked: open("revoked_tokens")?,
            media: open("media")?,
            bans: open("chat_bans")?,
            invites: open("chat_invites")?,
            devices: open("devices")?,
        })
    }
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(backend)
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(backend)
}

/// The raw row at `key`, as `r` sees it (a snapshot, or the writer's
/// transaction with its own writes).
pub(super) fn get(
    r: &impl Readable,
    ks: &SingleWriterTxKeyspace,
    key: impl AsRef<[u8]>,
) -> Result<Option<fjall::Slice>, StoreError> {
    r.get(ks.inner(), key).map_err(backend)
}

/// The JSON row at `key`, decoded.
pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    r: &impl Readable,
    ks: &SingleWriterTxKeyspace,
    key: impl AsRef<[u8]>,
) -> Result<Option<T>, StoreError> {
    get(r, ks, key)?.map(|v| decode(&v)).transpose()
}

/// Every JSON row whose key starts with `prefix`, in key order.
pub(super) fn prefix_json<T: serde::de::DeserializeOwned>(
    r: &impl Readable,
    ks: &SingleWriterTxKeyspace,
    prefix: impl AsRef<[u8]>,
) -> Result<Vec<T>, StoreError> {
    r.prefix(ks.inner(), prefix)
        .map(|row| decode(&row.value().map_err(backend)?))
        .collect()
}

/// Every key that starts with `prefix`, in order.
pub(super) fn prefix_keys(
    r: &impl Readable,
    ks: &SingleWriterTxKeyspace,
    prefix: impl AsRef<[u8]>,
) -> Result<Vec<fjall::Slice>, StoreError> {
    r.prefix(ks.inner(), prefix)
        .map(|row| row.key().map_err(backend))
        .collect()
}

/// Writes `m`'s rows — only its marks row when nothing else of it changed
/// (a sender's watermarks move with every batch it sends).
pub(super) fn put_member_rows(
    tx: &mut Tx,
    ks: &Keyspaces,
    chat: ChatId,
    m: &Member,
) -> Result<(), StoreError> {
    let key = Key::new().id(chat).id(m.user_id).done();
    let stored: Option<Member> = get_json(tx, &ks.members, &key)?;
    let only_marks_moved = |s: Member| {
        let (delivered_seq, read_seq) = (m.delivered_seq, m.read_seq);
        Member {
            delivered_seq,
            read_seq,
            ..s
        } == *m
    };
    if stored.is_some_and(only_marks_moved) {
        put_marks(tx, ks, chat, m);
        return Ok(());
    }
    tx.insert(&ks.members, key, encode(m)?);
    put_marks(tx, ks, chat, m);
    tx.insert(&ks.user_chats, Key::new().id(m.user_id).id(chat).done(), []);
    Ok(())
}

pub(super) fn remove_member_rows(tx: &mut Tx, ks: &Keyspaces, chat: ChatId, user: UserId) {
    tx.remove(&ks.members, Key::new().id(chat).id(user).done());
    tx.remove(&ks.marks, Key::new().id(chat).id(user).done());
    tx.remove(&ks.user_chats, Key::new().id(user).id(chat).done());
}

/// Writes `m`'s watermarks to its marks row.
pub(super) fn put_marks(tx: &mut Tx, ks: &Keyspaces, chat: ChatId, m: &Member) {
    let mut row = [0u8; 16];
    row[..8].copy_from_slice(&m.delivered_seq.to_be_bytes());
    row[8..].copy_from_slice(&m.read_seq.to_be_bytes());
    tx.insert(&ks.marks, Key::new().id(chat).id(m.user_id).done(), row);
}

/// `m` (a member row of `chat`) with the watermarks of its marks row where
/// they are ahead. Rows written before the marks had a keyspace of their
/// own have none: their member row holds their watermarks.
pub(super) fn with_marks(
    r: &impl Readable,
    ks: &Keyspaces,
    chat: ChatId,
    mut m: Member,
) -> Result<Member, StoreError> {
    if let Some(row) = get(r, &ks.marks, Key::new().id(chat).id(m.user_id).done())? {
        if row.len() != 16 {
            return Err(backend("a marks row is not two seqs"));
        }
        let seq = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 of the 16 bytes"));
        m.raise(seq(&row[..8]), seq(&row[8..]));
    }
    Ok(m)
}

/// Drops up to `limit` dedup entries of messages sent before `before_ms`;
/// how many it dropped.
pub(super) fn expire_dedup(
    tx: &mut Tx,
    ks: &Keyspaces,
    before_ms: i64,
    limit: usize,
) -> Result<usize, StoreError> {
    let end = Key::new().i64(before_ms).done();
    let expired = tx
        .range(ks.dedup_age.inner(), ..end)
        .take(limit)
        .map(|row| row.key().map_err(backend))
        .collect::<Result<Vec<_>, _>>()?;
    for age in &expired {
        tx.remove(&ks.dedup, keys::dedup_of_age(age));
        tx.remove(&ks.dedup_age, age.clone());
    }
    Ok(expired.len())
}

/// Writes `msg` with its dedup entry (the caller has checked its seq is free).
pub(super) fn put_message(tx: &mut Tx, ks: &Keyspaces, msg: &Message) -> Result<(), StoreError> {
    tx.insert(
        &ks.messages,
        keys::message(msg.chat_id, msg.seq),
        encode(msg)?,
    );
    if !msg.client_msg_id.is_empty() {
        let dedup = keys::dedup(msg.chat_id, msg.sender, &msg.client_msg_id);
        tx.insert(&ks.dedup_age, keys::dedup_age(msg.sent_at, &dedup), []);
        tx.insert(&ks.dedup, dedup, msg.seq.to_be_bytes());
    }
    Ok(())
}
