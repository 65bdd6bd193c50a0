//! A chat's message log: appends (all or none, with their membership
//! change), the dedup lookup, the head, and pages either side of a seq.
//! Each runs against the transaction or snapshot it is given; the group
//! commit and the read snapshots are the caller's.

use fjall::{Readable, SingleWriterWriteTx as Tx};

use super::keys::{self, Key};
use super::tables::*;
use crate::model::{ChatId, Message, Seq, UserId};
use crate::store::{MemberChange, StoreError, Taken, backend};

/// Appends `msgs` of `chat` and then `change`; a seq already stored writes nothing.
pub(super) fn append_all(
    tx: &mut Tx,
    ks: &Keyspaces,
    chat: ChatId,
    msgs: &[Message],
    change: Option<MemberChange>,
) -> Result<(), StoreError> {
    // Check every seq before writing any, so a conflict writes nothing.
    for m in msgs {
        if get(tx, &ks.messages, keys::message(m.chat_id, m.seq))?.is_some() {
            return Err(StoreError::Conflict(Taken::Seq));
        }
    }
    for m in msgs {
        put_message(tx, ks, m)?;
    }
    match change {
        Some(MemberChange::Put(m)) => put_member_rows(tx, ks, chat, &m)?,
        Some(MemberChange::Remove(user)) => remove_member_rows(tx, ks, chat, user),
        None => {}
    }
    Ok(())
}

pub(super) fn dedup(
    r: &impl Readable,
    ks: &Keyspaces,
    chat: ChatId,
    sender: UserId,
    client_msg_id: &str,
) -> Result<Option<Seq>, StoreError> {
    let row = get(r, &ks.dedup, keys::dedup(chat, sender, client_msg_id))?;
    row.map(|v| keys::u64_at_end(&v).ok_or_else(|| backend("a dedup row is not a seq")))
        .transpose()
}

pub(super) fn head(r: &impl Readable, ks: &Keyspaces, chat: ChatId) -> Result<Seq, StoreError> {
    let last = r
        .prefix(ks.messages.inner(), Key::new().id(chat).done())
        .next_back();
    match last {
        Some(row) => {
            let key = row.key().map_err(backend)?;
            keys::u64_at_end(&key).ok_or_else(|| backend("a message key without a seq"))
        }
        None => Ok(0),
    }
}

pub(super) fn before(
    r: &impl Readable,
    ks: &Keyspaces,
    chat: ChatId,
    before: Option<Seq>,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let (start, end) = (
        keys::message(chat, 0),
        keys::message(chat, before.unwrap_or(u64::MAX)),
    );
    r.range(ks.messages.inner(), start..end)
        .rev()
        .take(limit)
        .map(|row| decode(&row.value().map_err(backend)?))
        .collect()
}

pub(super) fn after(
    r: &impl Readable,
    ks: &Keyspaces,
    chat: ChatId,
    after: Seq,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    if after == u64::MAX {
        return Ok(Vec::new());
    }
    let (start, end) = (
        keys::message(chat, after + 1),
        keys::message(chat, u64::MAX),
    );
    r.range(ks.messages.inner(), start..=end)
        .take(limit)
        .map(|row| decode(&row.value().map_err(backend)?))
        .collect()
}
