//! Every statement the store runs after startup, prepared once.
//!
//! Owns the CQL text of the data path. Writes run at LOCAL_QUORUM; the LWTs
//! (marked below) at LOCAL_SERIAL, so they are linearizable within the local
//! datacenter — where a chat's sequencer and its readers run.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use super::backend;
use super::rows::MESSAGE_COLUMNS;
use crate::store::StoreError;

/// The prepared statements, by use.
#[derive(Debug)]
pub struct Queries {
    pub insert_user: PreparedStatement,
    pub delete_user: PreparedStatement,
    pub select_user: PreparedStatement,
    /// LWT: the phone's owner is whoever inserts first.
    pub claim_phone: PreparedStatement,
    pub select_phone: PreparedStatement,

    pub insert_chat: PreparedStatement,
    pub select_chat: PreparedStatement,
    pub insert_member: PreparedStatement,
    pub delete_member: PreparedStatement,
    pub select_member: PreparedStatement,
    pub select_members: PreparedStatement,
    pub update_watermarks: PreparedStatement,
    pub insert_user_chat: PreparedStatement,
    pub delete_user_chat: PreparedStatement,
    pub select_user_chats: PreparedStatement,
    /// LWT: the pair's direct chat is whichever is inserted first.
    pub claim_direct: PreparedStatement,
    pub select_direct: PreparedStatement,

    /// LWT: a seq is written once (conflict detection and fencing).
    pub claim_message: PreparedStatement,
    /// Plain insert, for the first message of a brand-new chat only.
    pub insert_message: PreparedStatement,
    pub select_head_in_bucket: PreparedStatement,
    pub select_before: PreparedStatement,
    pub select_after: PreparedStatement,
    pub set_applied: PreparedStatement,
    pub select_applied: PreparedStatement,
    pub insert_dedup: PreparedStatement,
    pub select_dedup: PreparedStatement,

    pub insert_last_seen: PreparedStatement,
    pub select_last_seen: PreparedStatement,
    pub insert_revoked: PreparedStatement,
    pub select_revoked: PreparedStatement,

    pub select_media: PreparedStatement,
    pub insert_media: PreparedStatement,
    pub update_media: PreparedStatement,
    pub first_media: PreparedStatement,
    pub next_media: PreparedStatement,
    pub insert_ban: PreparedStatement,
    pub delete_ban: PreparedStatement,
    pub select_ban: PreparedStatement,
    pub insert_invite: PreparedStatement,
    pub select_invite: PreparedStatement,

    pub insert_device: PreparedStatement,
    pub select_devices: PreparedStatement,
    pub delete_device: PreparedStatement,
}

const MESSAGE_INSERT: &str = "INSERT INTO {ks}.messages (chat_id, bucket, seq, sender, \
    client_msg_id, kind, body, event, event_user, sent_at, change_put, change_remove) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

struct Preparer<'a> {
    session: &'a Session,
    ks: &'a str,
}

impl Preparer<'_> {
    async fn prepare(&self, cql: &str) -> Result<PreparedStatement, StoreError> {
        let cql = cql.replace("{ks}", self.ks);
        let mut p = self
            .session
            .prepare(cql.clone())
            .await
            .map_err(|e| backend(format!("preparing `{cql}`: {e}")))?;
        p.set_consistency(Consistency::LocalQuorum);
        p.set_serial_consistency(Some(SerialConsistency::LocalSerial));
        // Upserts and reads are idempotent, so the driver may retry them after
        // a timeout. LWTs are not: a retry of one that did apply reports "not
        // applied", turning our own write into a conflict.
        p.set_is_idempotent(!cql.contains(" IF "));
        Ok(p)
    }
}

impl Queries {
    pub async fn prepare(session: &Session, ks: &str) -> Result<Self, StoreError> {
        let p = Preparer { session, ks };
        let message_select = format!("SELECT {MESSAGE_COLUMNS} FROM {{ks}}.messages");
        Ok(Self {
            insert_user: p
                .prepare(
                    "INSERT INTO {ks}.users (id, phone, display_name, password_hash, created_at) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .await?,
            delete_user: p.prepare("DELETE FROM {ks}.users WHERE id = ?").await?,
            select_user: p
                .prepare(
                    "SELECT id, phone, display_name, password_hash, created_at \
                     FROM {ks}.users WHERE id = ?",
                )
                .await?,
            claim_phone: p
                .prepare(
                    "INSERT INTO {ks}.users_by_phone (phone, user_id) VALUES (?, ?) IF NOT EXISTS",
                )
                .await?,
            select_phone: p
                .prepare("SELECT user_id FROM {ks}.users_by_phone WHERE phone = ?")
                .await?,
            insert_chat: p
                .prepare(
                    "INSERT INTO {ks}.chats (id, kind, title, created_by, created_at) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .await?,
            select_chat: p
                .prepare("SELECT kind, title, created_by, created_at FROM {ks}.chats WHERE id = ?")
                .await?,
            insert_member: p
                .prepare(
                    "INSERT INTO {ks}.chat_members (chat_id, user_id, role, joined_at, \
                     joined_seq, delivered_seq, read_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .await?,
            delete_member: p
                .prepare("DELETE FROM {ks}.chat_members WHERE chat_id = ? AND user_id = ?")
                .await?,
            select_member: p
                .prepare(
                    "SELECT user_id, role, joined_at, joined_seq, delivered_seq, read_seq \
                     FROM {ks}.chat_members WHERE chat_id = ? AND user_id = ?",
                )
                .await?,
            select_members: p
                .prepare(
                    "SELECT user_id, role, joined_at, joined_seq, delivered_seq, read_seq \
                     FROM {ks}.chat_members WHERE chat_id = ?",
                )
                .await?,
            update_watermarks: p
                .prepare(
                    "UPDATE {ks}.chat_members SET delivered_seq = ?, read_seq = ? \
                     WHERE chat_id = ? AND user_id = ?",
                )
                .await?,
            insert_user_chat: p
                .prepare("INSERT INTO {ks}.user_chats (user_id, chat_id) VALUES (?, ?)")
                .await?,
            delete_user_chat: p
                .prepare("DELETE FROM {ks}.user_chats WHERE user_id = ? AND chat_id = ?")
                .await?,
            select_user_chats: p
                .prepare("SELECT chat_id FROM {ks}.user_chats WHERE user_id = ?")
                .await?,
            claim_direct: p
                .prepare(
                    "INSERT INTO {ks}.direct_chats (user_lo, user_hi, chat_id, created_by, \
                     created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
                )
                .await?,
            select_direct: p
                .prepare(
                    "SELECT chat_id, created_by, created_at FROM {ks}.direct_chats \
                     WHERE user_lo = ? AND user_hi = ?",
                )
                .await?,
            claim_message: p
                .prepare(&format!("{MESSAGE_INSERT} IF NOT EXISTS"))
                .await?,
            insert_message: p.prepare(MESSAGE_INSERT).await?,
            select_head_in_bucket: p
                .prepare("SELECT seq FROM {ks}.messages WHERE chat_id = ? AND bucket = ? LIMIT 1")
                .await?,
            select_before: p
                .prepare(&format!(
                    "{message_select} WHERE chat_id = ? AND bucket = ? AND seq < ? LIMIT ?"
                ))
                .await?,
            select_after: p
                .prepare(&format!(
                    "{message_select} WHERE chat_id = ? AND bucket = ? AND seq > ? \
                     ORDER BY seq ASC LIMIT ?"
                ))
                .await?,
            set_applied: p
                .prepare("UPDATE {ks}.chat_progress SET applied_seq = ? WHERE chat_id = ?")
                .await?,
            select_applied: p
                .prepare("SELECT applied_seq FROM {ks}.chat_progress WHERE chat_id = ?")
                .await?,
            insert_dedup: p
                .prepare(
                    "INSERT INTO {ks}.dedup (chat_id, sender, client_msg_id, seq) \
                     VALUES (?, ?, ?, ?) USING TTL ?",
                )
                .await?,
            select_dedup: p
                .prepare(
                    "SELECT seq FROM {ks}.dedup \
                     WHERE chat_id = ? AND sender = ? AND client_msg_id = ?",
                )
                .await?,
            insert_last_seen: p
                .prepare("INSERT INTO {ks}.last_seen (user_id, at) VALUES (?, ?)")
                .await?,
            select_last_seen: p
                .prepare("SELECT at FROM {ks}.last_seen WHERE user_id = ?")
                .await?,
            insert_revoked: p
                .prepare(
                    "INSERT INTO {ks}.revoked_tokens (token_id, expires_at) VALUES (?, ?) \
                     USING TTL ?",
                )
                .await?,
            select_revoked: p
                .prepare("SELECT expires_at FROM {ks}.revoked_tokens WHERE token_id = ?")
                .await?,
            select_media: p
                .prepare("SELECT record FROM {ks}.media WHERE id = ?")
                .await?,
            insert_media: p
                .prepare(
                    "INSERT INTO {ks}.media (id, version, record) VALUES (?, ?, ?) IF NOT EXISTS",
                )
                .await?,
            update_media: p
                .prepare(
                    "UPDATE {ks}.media SET version = ?, record = ? WHERE id = ? IF version = ?",
                )
                .await?,
            first_media: p
                .prepare("SELECT id, record FROM {ks}.media LIMIT ?")
                .await?,
            next_media: p
                .prepare("SELECT id, record FROM {ks}.media WHERE token(id) > token(?) LIMIT ?")
                .await?,
            insert_ban: p
                .prepare("INSERT INTO {ks}.chat_bans (chat_id, user_id) VALUES (?, ?)")
                .await?,
            delete_ban: p
                .prepare("DELETE FROM {ks}.chat_bans WHERE chat_id = ? AND user_id = ?")
                .await?,
            select_ban: p
                .prepare("SELECT user_id FROM {ks}.chat_bans WHERE chat_id = ? AND user_id = ?")
                .await?,
            insert_invite: p
                .prepare("INSERT INTO {ks}.chat_invites (chat_id, code) VALUES (?, ?)")
                .await?,
            select_invite: p
                .prepare("SELECT code FROM {ks}.chat_invites WHERE chat_id = ?")
                .await?,
            insert_device: p
                .prepare(
                    "INSERT INTO {ks}.devices (user_id, device_id, platform, push_token) \
                     VALUES (?, ?, ?, ?)",
                )
                .await?,
            select_devices: p
                .prepare(
                    "SELECT device_id, platform, push_token FROM {ks}.devices WHERE user_id = ?",
                )
                .await?,
            delete_device: p
                .prepare("DELETE FROM {ks}.devices WHERE user_id = ? AND device_id = ?")
                .await?,
        })
    }
}
