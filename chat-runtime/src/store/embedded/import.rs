//! Brings a data directory written by an earlier version (a redb file,
//! `confab.redb`) into this store, once, when the store first opens there.
//!
//! Every row is copied under its new key; values keep their encoding (JSON
//! records, numbers become big-endian bytes). A marker file in the new
//! store's directory stays until the copy is durable, so an import cut short
//! starts over on the next open; the old file is then renamed (never
//! deleted) to `confab.redb.imported`.

use std::path::Path;

use fjall::{PersistMode, SingleWriterTxDatabase, SingleWriterWriteTx as Tx};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::keys::{self, Key};
use super::tables::Keyspaces;
use crate::store::{StoreError, backend};

/// The earlier version's file in a data directory.
pub(super) const OLD_FILE: &str = "confab.redb";
/// Present in the new store's directory while an import is under way.
pub(super) const MARKER: &str = "IMPORTING";
/// Rows copied per commit: bounds the memory of a large import.
const CHUNK: usize = 10_000;

type Id = u128;
const USERS: TableDefinition<Id, &[u8]> = TableDefinition::new("users");
const PHONES: TableDefinition<&str, Id> = TableDefinition::new("phones");
const CHATS: TableDefinition<Id, &[u8]> = TableDefinition::new("chats");
const MEMBERS: TableDefinition<(Id, Id), &[u8]> = TableDefinition::new("chat_members");
const USER_CHATS: TableDefinition<(Id, Id), ()> = TableDefinition::new("user_chats");
const DIRECT: TableDefinition<(Id, Id), Id> = TableDefinition::new("direct_chats");
const MESSAGES: TableDefinition<(Id, u64), &[u8]> = TableDefinition::new("messages");
const DEDUP: TableDefinition<(Id, Id, &str), u64> = TableDefinition::new("dedup");
const DEDUP_AGE: TableDefinition<(i64, Id, Id, &str), ()> = TableDefinition::new("dedup_age");
const LAST_SEEN: TableDefinition<Id, i64> = TableDefinition::new("last_seen");
const REVOKED: TableDefinition<&str, i64> = TableDefinition::new("revoked_tokens");
const MEDIA: TableDefinition<&str, &[u8]> = TableDefinition::new("media");
const BANS: TableDefinition<(Id, Id), ()> = TableDefinition::new("chat_bans");
const INVITES: TableDefinition<Id, &str> = TableDefinition::new("chat_invites");
const DEVICES: TableDefinition<(Id, &str), &[u8]> = TableDefinition::new("devices");

fn id(n: Id) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn two(a: Id, b: Id) -> Vec<u8> {
    Key::new().id(id(a)).id(id(b)).done()
}

/// Whether `dir` holds an earlier version's file still to import into `new`.
pub(super) fn pending(dir: &Path, new: &Path) -> bool {
    dir.join(OLD_FILE).exists() && (!new.exists() || new.join(MARKER).exists())
}

/// Starts an import into `new` (a store directory about to be opened):
/// clears what an earlier, unfinished attempt left and sets the marker.
pub(super) fn begin(new: &Path) -> Result<(), StoreError> {
    if new.exists() {
        std::fs::remove_dir_all(new).map_err(backend)?;
    }
    std::fs::create_dir_all(new).map_err(backend)?;
    std::fs::write(new.join(MARKER), b"").map_err(backend)
}

/// Copies every row of `dir`'s old file into `db`, makes the copy durable,
/// clears the marker and renames the old file; how many rows it copied.
pub(super) fn finish(
    dir: &Path,
    new: &Path,
    db: &SingleWriterTxDatabase,
    ks: &Keyspaces,
) -> Result<usize, StoreError> {
    let old = redb::Database::open(dir.join(OLD_FILE)).map_err(backend)?;
    let txn = old.begin_read().map_err(backend)?;
    let mut copy = Chunked {
        db,
        tx: db.write_tx(),
        rows: 0,
    };
    let names: Vec<String> = txn
        .list_tables()
        .map_err(backend)?
        .map(|t| t.name().to_owned())
        .collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    macro_rules! each {
        ($table:expr, |$k:ident, $v:ident| $put:expr) => {
            if has($table.name()) {
                let t = txn.open_table($table).map_err(backend)?;
                for row in t.iter().map_err(backend)? {
                    let (k, v) = row.map_err(backend)?;
                    let ($k, $v) = (k.value(), v.value());
                    let (space, key, value): (&fjall::SingleWriterTxKeyspace, Vec<u8>, Vec<u8>) =
                        $put;
                    copy.put(space, key, value)?;
                }
            }
        };
    }
    each!(USERS, |k, v| (
        &ks.users,
        id(k).as_bytes().to_vec(),
        v.to_vec()
    ));
    each!(PHONES, |k, v| (
        &ks.phones,
        k.as_bytes().to_vec(),
        id(v).as_bytes().to_vec()
    ));
    each!(CHATS, |k, v| (
        &ks.chats,
        id(k).as_bytes().to_vec(),
        v.to_vec()
    ));
    each!(MEMBERS, |k, v| (&ks.members, two(k.0, k.1), v.to_vec()));
    each!(USER_CHATS, |k, _v| (
        &ks.user_chats,
        two(k.0, k.1),
        Vec::new()
    ));
    each!(DIRECT, |k, v| (
        &ks.direct,
        two(k.0, k.1),
        id(v).as_bytes().to_vec()
    ));
    each!(MESSAGES, |k, v| (
        &ks.messages,
        keys::message(id(k.0), k.1),
        v.to_vec()
    ));
    each!(DEDUP, |k, v| (
        &ks.dedup,
        keys::dedup(id(k.0), id(k.1), k.2),
        v.to_be_bytes().to_vec()
    ));
    each!(DEDUP_AGE, |k, _v| (
        &ks.dedup_age,
        keys::dedup_age(k.0, &keys::dedup(id(k.1), id(k.2), k.3)),
        Vec::new()
    ));
    each!(LAST_SEEN, |k, v| (
        &ks.last_seen,
        id(k).as_bytes().to_vec(),
        v.to_be_bytes().to_vec()
    ));
    each!(REVOKED, |k, v| (
        &ks.revoked,
        k.as_bytes().to_vec(),
        v.to_be_bytes().to_vec()
    ));
    each!(MEDIA, |k, v| (&ks.media, k.as_bytes().to_vec(), v.to_vec()));
    each!(BANS, |k, _v| (&ks.bans, two(k.0, k.1), Vec::new()));
    each!(INVITES, |k, v| (
        &ks.invites,
        id(k).as_bytes().to_vec(),
        v.as_bytes().to_vec()
    ));
    each!(DEVICES, |k, v| (
        &ks.devices,
        Key::new().id(id(k.0)).tail(k.1),
        v.to_vec()
    ));
    let rows = copy.finish()?;
    drop((txn, old));
    std::fs::remove_file(new.join(MARKER)).map_err(backend)?;
    let imported = dir.join(format!("{OLD_FILE}.imported"));
    std::fs::rename(dir.join(OLD_FILE), imported).map_err(backend)?;
    Ok(rows)
}

/// Writes rows in commits of [`CHUNK`].
struct Chunked<'a> {
    db: &'a SingleWriterTxDatabase,
    tx: Tx<'a>,
    rows: usize,
}

impl<'a> Chunked<'a> {
    fn put(
        &mut self,
        space: &fjall::SingleWriterTxKeyspace,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.tx.insert(space, key, value);
        self.rows += 1;
        if self.rows.is_multiple_of(CHUNK) {
            let full = std::mem::replace(&mut self.tx, self.db.write_tx());
            full.commit().map_err(backend)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<usize, StoreError> {
        self.tx.commit().map_err(backend)?;
        self.db.persist(PersistMode::SyncAll).map_err(backend)?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Content, Member, Message, Role};
    use crate::store::Store;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn an_earlier_versions_file_is_imported_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let user = crate::store::conformance::user("+15550007");
        let (chat, peer) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let member = Member {
            user_id: user.id,
            role: Role::Member,
            joined_at: 1,
            joined_seq: 1,
            delivered_seq: 2,
            read_seq: 1,
        };
        {
            let old = redb::Database::create(dir.path().join(OLD_FILE)).unwrap();
            let txn = old.begin_write().unwrap();
            let user_json = serde_json::to_vec(&user).unwrap();
            let member_json = serde_json::to_vec(&member).unwrap();
            let message = Message {
                chat_id: chat,
                seq: 3,
                sender: user.id,
                client_msg_id: "c-3".into(),
                content: Content::Text { body: "hi".into() },
                sent_at: 5,
            };
            let message_json = serde_json::to_vec(&message).unwrap();
            let (u, c) = (user.id.as_u128(), chat.as_u128());
            txn.open_table(USERS)
                .unwrap()
                .insert(u, user_json.as_slice())
                .unwrap();
            txn.open_table(PHONES)
                .unwrap()
                .insert(user.phone.as_str(), u)
                .unwrap();
            txn.open_table(MEMBERS)
                .unwrap()
                .insert((c, u), member_json.as_slice())
                .unwrap();
            txn.open_table(USER_CHATS)
                .unwrap()
                .insert((u, c), ())
                .unwrap();
            let pair = (u.min(peer.as_u128()), u.max(peer.as_u128()));
            txn.open_table(DIRECT).unwrap().insert(pair, c).unwrap();
            txn.open_table(MESSAGES)
                .unwrap()
                .insert((c, 3), message_json.as_slice())
                .unwrap();
            txn.open_table(DEDUP)
                .unwrap()
                .insert((c, u, "c-3"), 3)
                .unwrap();
            txn.open_table(LAST_SEEN).unwrap().insert(u, 42).unwrap();
            txn.open_table(INVITES).unwrap().insert(c, "code").unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.user_by_phone(&user.phone).await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(store.member(chat, user.id).await.unwrap(), Some(member));
        assert_eq!(store.user_chats(user.id).await.unwrap(), vec![chat]);
        assert_eq!(store.direct_chat(peer, user.id).await.unwrap(), Some(chat));
        assert_eq!(store.head(chat).await.unwrap(), 3);
        assert_eq!(store.dedup(chat, user.id, "c-3").await.unwrap(), Some(3));
        assert_eq!(store.last_seen(user.id).await.unwrap(), Some(42));
        assert_eq!(store.invite(chat).await.unwrap().as_deref(), Some("code"));
        drop(store);
        // The old file is kept aside, and the next open does not import again.
        assert!(dir.path().join("confab.redb.imported").exists());
        assert!(!dir.path().join(OLD_FILE).exists());
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.head(chat).await.unwrap(), 3);
    }
}
