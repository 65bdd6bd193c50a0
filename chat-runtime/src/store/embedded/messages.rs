//! A chat's message log in redb: appends (all or none, with their membership
//! change), the dedup lookup, the head, and pages either side of a seq.
//! Each runs inside the transaction it is given; the group commit and the
//! read snapshots are the caller's.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::tables::*;
use crate::model::{ChatId, Message, Seq, UserId};
use crate::store::{MemberChange, StoreError, Taken, backend};

/// Appends `msgs` of `chat` and then `change`; a seq already stored writes nothing.
pub(super) fn append_all(
    txn: &WriteTransaction,
    chat: ChatId,
    msgs: &[Message],
    change: Option<MemberChange>,
) -> Result<(), StoreError> {
    // Check every seq before writing any, so a conflict writes nothing.
    {
        let t = txn.open_table(MESSAGES).map_err(backend)?;
        for m in msgs {
            if t.get((m.chat_id.as_u128(), m.seq))
                .map_err(backend)?
                .is_some()
            {
                return Err(StoreError::Conflict(Taken::Seq));
            }
        }
    }
    for m in msgs {
        put_message(txn, m)?;
    }
    let msg = Message {
        chat_id: chat,
        ..msgs[msgs.len() - 1].clone()
    };
    match change {
        Some(MemberChange::Put(m)) => put_member_rows(txn, msg.chat_id, &m)?,
        Some(MemberChange::Remove(user)) => {
            let (c, u) = (msg.chat_id.as_u128(), user.as_u128());
            txn.open_table(MEMBERS)
                .map_err(backend)?
                .remove((c, u))
                .map_err(backend)?;
            txn.open_table(USER_CHATS)
                .map_err(backend)?
                .remove((u, c))
                .map_err(backend)?;
        }
        None => {}
    }
    Ok(())
}

pub(super) fn dedup(
    txn: &ReadTransaction,
    chat: ChatId,
    sender: UserId,
    client_msg_id: &str,
) -> Result<Option<Seq>, StoreError> {
    let t = txn.open_table(DEDUP).map_err(backend)?;
    Ok(t.get((chat.as_u128(), sender.as_u128(), client_msg_id))
        .map_err(backend)?
        .map(|v| v.value()))
}

pub(super) fn head(txn: &ReadTransaction, chat: ChatId) -> Result<Seq, StoreError> {
    let t = txn.open_table(MESSAGES).map_err(backend)?;
    let c = chat.as_u128();
    let last = t
        .range((c, 0)..=(c, u64::MAX))
        .map_err(backend)?
        .next_back();
    match last {
        Some(row) => Ok(row.map_err(backend)?.0.value().1),
        None => Ok(0),
    }
}

pub(super) fn before(
    txn: &ReadTransaction,
    chat: ChatId,
    before: Option<Seq>,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let t = txn.open_table(MESSAGES).map_err(backend)?;
    let c = chat.as_u128();
    let end = before.unwrap_or(u64::MAX);
    t.range((c, 0)..(c, end))
        .map_err(backend)?
        .rev()
        .take(limit)
        .map(|row| decode(row.map_err(backend)?.1.value()))
        .collect()
}

pub(super) fn after(
    txn: &ReadTransaction,
    chat: ChatId,
    after: Seq,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let t = txn.open_table(MESSAGES).map_err(backend)?;
    let c = chat.as_u128();
    if after == u64::MAX {
        return Ok(Vec::new());
    }
    t.range((c, after + 1)..=(c, u64::MAX))
        .map_err(backend)?
        .take(limit)
        .map(|row| decode(row.map_err(backend)?.1.value()))
        .collect()
}
