//! The embedded store's tables, how rows are encoded, and the row writes
//! that several operations share.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::model::{ChatId, Member, Message, UserId};
use crate::store::{StoreError, Taken, backend};

pub(super) type Id = u128;
pub(super) const USERS: TableDefinition<Id, &[u8]> = TableDefinition::new("users");
pub(super) const PHONES: TableDefinition<&str, Id> = TableDefinition::new("phones");
pub(super) const CHATS: TableDefinition<Id, &[u8]> = TableDefinition::new("chats");
/// (chat, user) → member.
pub(super) const MEMBERS: TableDefinition<(Id, Id), &[u8]> = TableDefinition::new("chat_members");
/// (user, chat) → (); answers getAll.
pub(super) const USER_CHATS: TableDefinition<(Id, Id), ()> = TableDefinition::new("user_chats");
/// (min user, max user) → chat.
pub(super) const DIRECT: TableDefinition<(Id, Id), Id> = TableDefinition::new("direct_chats");
/// (chat, seq) → message.
pub(super) const MESSAGES: TableDefinition<(Id, u64), &[u8]> = TableDefinition::new("messages");
/// (chat, sender, client_msg_id) → seq.
pub(super) const DEDUP: TableDefinition<(Id, Id, &str), u64> = TableDefinition::new("dedup");
/// (sent at ms, chat, sender, client_msg_id) → (): dedup entries by age.
pub(super) const DEDUP_AGE: TableDefinition<(i64, Id, Id, &str), ()> =
    TableDefinition::new("dedup_age");
pub(super) const LAST_SEEN: TableDefinition<Id, i64> = TableDefinition::new("last_seen");
pub(super) const REVOKED: TableDefinition<&str, i64> = TableDefinition::new("revoked_tokens");
/// media id → record (JSON).
pub(super) const MEDIA: TableDefinition<&str, &[u8]> = TableDefinition::new("media");
/// (chat, user) → (): users an admin removed, who may not join again.
pub(super) const BANS: TableDefinition<(Id, Id), ()> = TableDefinition::new("chat_bans");
/// chat → its current invite code.
pub(super) const INVITES: TableDefinition<Id, &str> = TableDefinition::new("chat_invites");
/// (user, device id) → device (JSON).
pub(super) const DEVICES: TableDefinition<(Id, &str), &[u8]> = TableDefinition::new("devices");

/// Creates every table up front, so readers never miss one.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(USERS).map_err(backend)?;
    txn.open_table(PHONES).map_err(backend)?;
    txn.open_table(CHATS).map_err(backend)?;
    txn.open_table(MEMBERS).map_err(backend)?;
    txn.open_table(USER_CHATS).map_err(backend)?;
    txn.open_table(DIRECT).map_err(backend)?;
    txn.open_table(MESSAGES).map_err(backend)?;
    txn.open_table(DEDUP).map_err(backend)?;
    index_dedup_ages(txn)?;
    txn.open_table(LAST_SEEN).map_err(backend)?;
    txn.open_table(REVOKED).map_err(backend)?;
    txn.open_table(MEDIA).map_err(backend)?;
    txn.open_table(DEVICES).map_err(backend)?;
    txn.open_table(BANS).map_err(backend)?;
    txn.open_table(INVITES).map_err(backend)?;
    Ok(())
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(backend)
}

/// The JSON row at `key`, decoded.
pub(super) fn get_json<'a, K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'a>>,
) -> Result<Option<T>, StoreError> {
    table
        .get(key)
        .map_err(backend)?
        .map(|v| decode(v.value()))
        .transpose()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(backend)
}

pub(super) fn pair(a: UserId, b: UserId) -> (Id, Id) {
    let (a, b) = (a.as_u128(), b.as_u128());
    (a.min(b), a.max(b))
}

pub(super) fn put_member_rows(
    txn: &WriteTransaction,
    chat: ChatId,
    m: &Member,
) -> Result<(), StoreError> {
    let bytes = encode(m)?;
    txn.open_table(MEMBERS)
        .map_err(backend)?
        .insert((chat.as_u128(), m.user_id.as_u128()), bytes.as_slice())
        .map_err(backend)?;
    txn.open_table(USER_CHATS)
        .map_err(backend)?
        .insert((m.user_id.as_u128(), chat.as_u128()), ())
        .map_err(backend)?;
    Ok(())
}

/// Files without the age index (written before it existed) get one, dated
/// now: their entries then expire one TTL from today.
fn index_dedup_ages(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut ages = txn.open_table(DEDUP_AGE).map_err(backend)?;
    let dedup = txn.open_table(DEDUP).map_err(backend)?;
    if !ages.is_empty().map_err(backend)? || dedup.is_empty().map_err(backend)? {
        return Ok(());
    }
    let now = crate::model::now_ms();
    for row in dedup.iter().map_err(backend)? {
        let (key, _) = row.map_err(backend)?;
        let (chat, sender, id) = key.value();
        ages.insert((now, chat, sender, id), ()).map_err(backend)?;
    }
    Ok(())
}

/// Drops up to `limit` dedup entries of messages sent before `before_ms`;
/// how many it dropped.
pub(super) fn expire_dedup(
    txn: &WriteTransaction,
    before_ms: i64,
    limit: usize,
) -> Result<usize, StoreError> {
    let mut ages = txn.open_table(DEDUP_AGE).map_err(backend)?;
    let mut dedup = txn.open_table(DEDUP).map_err(backend)?;
    let mut expired = Vec::new();
    for row in ages
        .range(..(before_ms, 0, 0, ""))
        .map_err(backend)?
        .take(limit)
    {
        let (key, _) = row.map_err(backend)?;
        let (at, chat, sender, id) = key.value();
        expired.push((at, chat, sender, id.to_owned()));
    }
    for (at, chat, sender, id) in &expired {
        ages.remove((*at, *chat, *sender, id.as_str()))
            .map_err(backend)?;
        dedup
            .remove((*chat, *sender, id.as_str()))
            .map_err(backend)?;
    }
    Ok(expired.len())
}

pub(super) fn put_message(txn: &WriteTransaction, msg: &Message) -> Result<(), StoreError> {
    let bytes = encode(msg)?;
    let mut messages = txn.open_table(MESSAGES).map_err(backend)?;
    let key = (msg.chat_id.as_u128(), msg.seq);
    if messages.get(key).map_err(backend)?.is_some() {
        return Err(StoreError::Conflict(Taken::Seq));
    }
    messages.insert(key, bytes.as_slice()).map_err(backend)?;
    if !msg.client_msg_id.is_empty() {
        txn.open_table(DEDUP)
            .map_err(backend)?
            .insert(
                (
                    msg.chat_id.as_u128(),
                    msg.sender.as_u128(),
                    msg.client_msg_id.as_str(),
                ),
                msg.seq,
            )
            .map_err(backend)?;
        txn.open_table(DEDUP_AGE)
            .map_err(backend)?
            .insert(
                (
                    msg.sent_at,
                    msg.chat_id.as_u128(),
                    msg.sender.as_u128(),
                    msg.client_msg_id.as_str(),
                ),
                (),
            )
            .map_err(backend)?;
    }
    Ok(())
}
