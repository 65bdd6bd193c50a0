//! `cql-cost`: what the CQL store's lightweight transactions cost, measured
//! against a running CQL server (`CONFAB_CQL_NODE`, e.g. after
//! `e2e/scripts/cassandra.sh start`). Prints figures; asserts nothing.
//!
//! 1. `INSERT … IF NOT EXISTS` (the message insert's fencing) against the
//!    same insert without the condition, at several concurrencies.
//! 2. Whole appends (conditional batch + logged batch), one sequential
//!    writer per chat, one message per call and eight (a device's queued
//!    sends, stored together).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chat_runtime::model::{Chat, ChatKind, Content, Member, Message, Role, now_ms};
use chat_runtime::store::Store;
use chat_runtime::store::scylla::{self as cql_store, Replication, ScyllaConfig, ScyllaStore};
use futures::{StreamExt, stream};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use uuid::Uuid;

/// Inserts `n` rows (one per chat), `concurrency` at a time; returns rows/s.
async fn rate(
    session: &Arc<Session>,
    statement: &PreparedStatement,
    n: u64,
    concurrency: usize,
) -> f64 {
    let start = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(concurrency, |_| {
            let (session, statement) = (session.clone(), statement.clone());
            async move {
                let chat = Uuid::new_v4();
                let values = (chat, 0i64, 1i64, chat, "body");
                session
                    .execute_unpaged(&statement, values)
                    .await
                    .expect("insert");
            }
        })
        .await;
    n as f64 / start.elapsed().as_secs_f64()
}

fn message(chat: Uuid, seq: u64, sender: Uuid, content: Content) -> Message {
    Message {
        chat_id: chat,
        seq,
        sender,
        client_msg_id: if seq > 1 {
            format!("c{seq}")
        } else {
            String::new()
        },
        content,
        sent_at: now_ms(),
    }
}

/// Appends `per_chat` messages to each of `chats` new groups, chats in
/// parallel, `per_call` messages per `Store::append_all`.
async fn appends(
    store: &Arc<ScyllaStore>,
    chats: usize,
    per_chat: u64,
    per_call: u64,
) -> Result<f64> {
    let start = Instant::now();
    let results = stream::iter(0..chats)
        .map(|_| {
            let store = store.clone();
            async move {
                let admin = Uuid::new_v4();
                let chat = Chat {
                    id: Uuid::new_v4(),
                    kind: ChatKind::Group,
                    title: "cost".into(),
                    created_by: admin,
                    created_at: now_ms(),
                };
                let created = Content::created(admin, chat.title.clone(), vec![admin]);
                let first = message(chat.id, 1, admin, created);
                store
                    .create_chat(&chat, &[Member::new(admin, Role::Admin, 1)], &first)
                    .await?;
                let seqs: Vec<u64> = (2..=per_chat + 1).collect();
                for call in seqs.chunks(per_call as usize) {
                    let msgs: Vec<_> = call
                        .iter()
                        .map(|&seq| {
                            let body = Content::Text {
                                body: format!("m{seq}"),
                            };
                            message(chat.id, seq, admin, body)
                        })
                        .collect();
                    store.append_all(&msgs, None).await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(chats)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((chats as u64 * per_chat) as f64 / start.elapsed().as_secs_f64())
}

async fn measure(session: Arc<Session>, store: Arc<ScyllaStore>, ks: &str) -> Result<()> {
    const N: u64 = 3000;
    let insert = format!(
        "INSERT INTO {ks}.messages (chat_id, bucket, seq, sender, kind, body) \
         VALUES (?, ?, ?, ?, 'text', ?)"
    );
    let mut plain = session.prepare(insert.clone()).await?;
    plain.set_consistency(Consistency::LocalQuorum);
    let mut lwt = session.prepare(format!("{insert} IF NOT EXISTS")).await?;
    lwt.set_consistency(Consistency::LocalQuorum);
    lwt.set_serial_consistency(Some(SerialConsistency::LocalSerial));
    rate(&session, &plain, 500, 16).await; // warm-up
    rate(&session, &lwt, 500, 16).await;
    for concurrency in [1, 16, 64] {
        let n = if concurrency == 1 { N / 5 } else { N };
        let p = rate(&session, &plain, n, concurrency).await;
        let l = rate(&session, &lwt, n, concurrency).await;
        println!(
            "concurrency {concurrency:2}: plain {p:7.0}/s, LWT {l:7.0}/s ({:.1}x slower)",
            p / l
        );
    }
    for (chats, per_chat) in [(1usize, 320u64), (16, 160)] {
        for per_call in [1, 8] {
            let r = appends(&store, chats, per_chat, per_call).await?;
            println!(
                "Store::append_all, {chats:2} chats × {per_chat} in sequence, \
                 {per_call} per call: {r:.0} msgs/s"
            );
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let node = confab_e2e::service_env("CONFAB_CQL_NODE");
    let builder = cql_store::recommended(SessionBuilder::new().known_node(&node))
        .connection_timeout(Duration::from_secs(5));
    let session = Arc::new(
        builder
            .build()
            .await
            .with_context(|| format!("cannot connect to CQL node {node}"))?,
    );
    let ks = format!("confab_cost_{}", std::process::id());
    let config = ScyllaConfig::new(ks.clone(), Replication::Simple { factor: 1 });
    let store = Arc::new(ScyllaStore::open(session.clone(), config).await?);
    let outcome = measure(session.clone(), store, &ks).await;
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), &[])
        .await?;
    outcome
}
