//! The CQL schema as versioned migrations, applied at startup.
//!
//! Owns every DDL statement of the keyspace. Each migration is a list of
//! idempotent statements (`IF NOT EXISTS`); `schema_migrations` records the
//! versions applied. Pods that start together take turns through a lease row
//! (`schema_lock`, an LWT with a TTL), because concurrent `CREATE TABLE`s on
//! different coordinators can leave a Cassandra cluster with two table ids.
//! A migration is never edited once released: change the schema by appending.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::Statement;
use uuid::Uuid;

use super::{Replication, ScyllaConfig, backend};
use crate::model::now_ms;
use crate::store::StoreError;

/// `{ks}` stands for the keyspace.
const MIGRATIONS: &[(i32, &str, &[&str])] = &[
    (1, "initial schema", V1),
    (2, "media", V2),
    (3, "group access", V3),
];

/// DESIGN §2 "Data model". Timestamps are milliseconds since the Unix epoch
/// (`bigint`), as in `crate::model`.
const V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.users (
        id uuid PRIMARY KEY, phone text, display_name text,
        password_hash text, created_at bigint)",
    // Phone uniqueness: claimed with an LWT (see `ScyllaStore::create_user`).
    "CREATE TABLE IF NOT EXISTS {ks}.users_by_phone (phone text PRIMARY KEY, user_id uuid)",
    "CREATE TABLE IF NOT EXISTS {ks}.chats (
        id uuid PRIMARY KEY, kind text, title text, created_by uuid, created_at bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.chat_members (
        chat_id uuid, user_id uuid, role text, joined_at bigint,
        delivered_seq bigint, read_seq bigint,
        PRIMARY KEY ((chat_id), user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.user_chats (
        user_id uuid, chat_id uuid, PRIMARY KEY ((user_id), chat_id))",
    // One 1:1 chat per pair (user_lo < user_hi): claimed with an LWT. The
    // creator and time let a later caller finish a chat whose creator died
    // between the claim and writing the chat.
    "CREATE TABLE IF NOT EXISTS {ks}.direct_chats (
        user_lo uuid, user_hi uuid, chat_id uuid, created_by uuid, created_at bigint,
        PRIMARY KEY ((user_lo, user_hi)))",
    // Bucketed by seq (see `messages::BUCKET`). `change_put` (a member as
    // JSON) and `change_remove` repeat the membership change written with the
    // message, so a half-done append can be rolled forward.
    "CREATE TABLE IF NOT EXISTS {ks}.messages (
        chat_id uuid, bucket bigint, seq bigint,
        sender uuid, client_msg_id text, kind text, body text,
        event text, event_user uuid, sent_at bigint,
        change_put text, change_remove uuid,
        PRIMARY KEY ((chat_id, bucket), seq))
        WITH CLUSTERING ORDER BY (seq DESC)",
    // Newest seq whose dedup entry and membership change are written; at most
    // the head, and where the search for the head starts.
    "CREATE TABLE IF NOT EXISTS {ks}.chat_progress (chat_id uuid PRIMARY KEY, applied_seq bigint)",
    // Rows carry a TTL (`ScyllaConfig::dedup_ttl`).
    "CREATE TABLE IF NOT EXISTS {ks}.dedup (
        chat_id uuid, sender uuid, client_msg_id text, seq bigint,
        PRIMARY KEY ((chat_id, sender), client_msg_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.devices (
        user_id uuid, device_id text, platform text, push_token text,
        PRIMARY KEY ((user_id), device_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.last_seen (user_id uuid PRIMARY KEY, at bigint)",
    // Rows expire with the token they revoke.
    "CREATE TABLE IF NOT EXISTS {ks}.revoked_tokens (token_id text PRIMARY KEY, expires_at bigint)",
];

/// Media records (`crate::model::MediaRecord` as JSON), changed only by
/// compare-and-set on `version` (an LWT; see `ScyllaStore::swap_media`).
const V2: &[&str] =
    &["CREATE TABLE IF NOT EXISTS {ks}.media (id text PRIMARY KEY, version bigint, record text)"];

/// Who may join a group, and what a member may read: bans (users an admin
/// removed), the group's invite code, and the seq each member joined at.
const V3: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.chat_bans (
        chat_id uuid, user_id uuid, PRIMARY KEY ((chat_id), user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.chat_invites (chat_id uuid PRIMARY KEY, code text)",
    "ALTER TABLE {ks}.chat_members ADD IF NOT EXISTS joined_seq bigint",
];

/// How long a migrator holds the lease before another may take over.
const LOCK_TTL_SECS: i32 = 120;
/// How long to wait for another pod's migrations before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(180);

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

fn cql(template: &str, ks: &str) -> String {
    template.replace("{ks}", ks)
}

async fn ddl(session: &Session, statement: String) -> Result<(), StoreError> {
    session
        .query_unpaged(statement.clone(), &[])
        .await
        .map_err(|e| backend(format!("schema statement failed ({e}): {statement}")))?;
    Ok(())
}

/// Creates the keyspace if needed and applies every migration it lacks.
pub async fn migrate(session: &Session, config: &ScyllaConfig) -> Result<(), StoreError> {
    let ks = config.keyspace.as_str();
    ddl(
        session,
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            replication_map(&config.replication)
        ),
    )
    .await?;
    ddl(
        session,
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
                version int PRIMARY KEY, name text, applied_at bigint)"
        ),
    )
    .await?;
    ddl(
        session,
        format!("CREATE TABLE IF NOT EXISTS {ks}.schema_lock (name text PRIMARY KEY, owner uuid)"),
    )
    .await?;
    if pending(session, ks).await?.is_empty() {
        return Ok(());
    }
    let owner = Uuid::new_v4();
    lock(session, ks, owner).await?;
    let result = apply_pending(session, ks).await;
    let unlock = session
        .query_unpaged(
            format!("DELETE FROM {ks}.schema_lock WHERE name = 'migrations' IF owner = ?"),
            (owner,),
        )
        .await;
    result?;
    unlock.map_err(|e| backend(format!("releasing the schema lock: {e}")))?;
    Ok(())
}

async fn apply_pending(session: &Session, ks: &str) -> Result<(), StoreError> {
    // Re-read under the lease: another pod may have applied some meanwhile.
    for (version, name, statements) in pending(session, ks).await? {
        for s in statements {
            statement(session, ks, &cql(s, ks)).await?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
                ),
                (version, name, now_ms()),
            )
            .await
            .map_err(|e| backend(format!("recording migration {version}: {e}")))?;
        tracing::info!(keyspace = ks, version, name, "store: applied migration");
    }
    Ok(())
}

/// Runs one migration statement. `ALTER TABLE t ADD IF NOT EXISTS c type`
/// is Cassandra 4.1+ syntax that not every CQL server takes, so it runs as a
/// plain `ADD` when `system_schema` lacks the column, and not at all otherwise.
async fn statement(session: &Session, ks: &str, cql: &str) -> Result<(), StoreError> {
    let added = cql
        .strip_prefix("ALTER TABLE ")
        .and_then(|rest| rest.split_once(" ADD IF NOT EXISTS "));
    let Some((table, column)) = added else {
        return ddl(session, cql.to_owned()).await;
    };
    let name = table.rsplit('.').next().unwrap_or(table);
    let column_name = column.split_whitespace().next().unwrap_or_default();
    let found = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            (ks, name, column_name),
        )
        .await
        .map_err(|e| backend(format!("reading system_schema.columns: {e}")))?
        .into_rows_result()
        .map_err(backend)?
        .rows_num();
    if found > 0 {
        return Ok(());
    }
    ddl(session, format!("ALTER TABLE {table} ADD {column}")).await
}

async fn pending(
    session: &Session,
    ks: &str,
) -> Result<Vec<(i32, &'static str, &'static [&'static str])>, StoreError> {
    let mut read = Statement::new(format!("SELECT version FROM {ks}.schema_migrations"));
    read.set_consistency(scylla::statement::Consistency::Quorum);
    let rows = session
        .query_unpaged(read, &[])
        .await
        .map_err(|e| backend(format!("reading schema_migrations: {e}")))?
        .into_rows_result()
        .map_err(backend)?;
    let applied: Vec<i32> = rows
        .rows::<(i32,)>()
        .map_err(backend)?
        .map(|r| r.map(|(v,)| v))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    if let Some(newer) = applied.iter().find(|v| **v > latest_version()) {
        return Err(backend(format!(
            "keyspace {ks} has schema version {newer}, newer than this build's {}; \
             upgrade chat-runtime",
            latest_version()
        )));
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.0))
        .copied()
        .collect())
}

async fn lock(session: &Session, ks: &str, owner: Uuid) -> Result<(), StoreError> {
    let claim = format!(
        "INSERT INTO {ks}.schema_lock (name, owner) VALUES ('migrations', ?) \
         IF NOT EXISTS USING TTL {LOCK_TTL_SECS}"
    );
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        let result = session
            .query_unpaged(claim.clone(), (owner,))
            .await
            .map_err(|e| backend(format!("taking the schema lock: {e}")))?;
        if super::rows::applied(result)?.0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(backend(format!(
                "another process has held {ks}.schema_lock for over {LOCK_WAIT:?}; \
                 if none is migrating, delete that row"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The CQL map literal of a replication setting.
pub fn replication_map(r: &Replication) -> String {
    match r {
        Replication::Simple { factor } => {
            format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
        }
        Replication::NetworkTopology(dcs) => {
            let mut s = String::from("{'class': 'NetworkTopologyStrategy'");
            for (dc, factor) in dcs {
                s.push_str(&format!(", '{dc}': {factor}"));
            }
            s.push('}');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend_and_statements_are_idempotent() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.first(), Some(&1));
        for (v, _, statements) in MIGRATIONS {
            for s in *statements {
                assert!(s.contains("IF NOT EXISTS"), "migration {v}: {s}");
                assert!(s.contains("{ks}."), "migration {v} names no keyspace: {s}");
            }
        }
    }

    #[test]
    fn replication_literals() {
        assert_eq!(
            replication_map(&Replication::Simple { factor: 3 }),
            "{'class': 'SimpleStrategy', 'replication_factor': 3}"
        );
        let dcs = [("dc1".to_owned(), 3), ("dc2".to_owned(), 2)].into();
        assert_eq!(
            replication_map(&Replication::NetworkTopology(dcs)),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
    }
}
