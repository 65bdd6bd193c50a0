//! The runtime's cluster seams against real services: `NatsBus` against
//! nats-server (`CONFAB_NATS_URL`) and `ScyllaStore` against a CQL node
//! (`CONFAB_CQL_NODE`; Cassandra 5.0 stands in for ScyllaDB), each through
//! the same conformance suite as its in-process twin, plus the CQL store's
//! own edge cases: paging across buckets and completing interrupted writes;
//! and the runtime's buckets on a clustered nats-server, resized when
//! `cache.replicas` is raised.
//!
//! Each store test works in its own keyspace and drops it at the end.
//! The LWTs' cost is measured by the `cql-cost` binary of this crate.
//! The NATS `ShardClient` passes the same contract suite as the in-process
//! one, against a shard on the CQL store: the cluster's whole command path.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use chat_runtime::bus::nats_queue::NatsQueue;
use chat_runtime::bus::nats_sessions::{self, NatsSessions};
use chat_runtime::bus::queue::PushQueue;
use chat_runtime::bus::sessions::Sessions;
use chat_runtime::bus::{self, nats::NatsBus};
use chat_runtime::metrics::Metrics;
use chat_runtime::model::{Chat, ChatKind, Content, Member, Message, Role, Seq, now_ms};
use chat_runtime::roles::lease::{self, LeaseTimes};
use chat_runtime::roles::{connect, records};
use chat_runtime::shard::remote::{self, Answer, Gate, NatsShardClient};
use chat_runtime::shard::wire::{self, Version};
use chat_runtime::shard::{self, Command, Shard};
use chat_runtime::store::scylla::{
    self as cql_store, BUCKET, Replication, ScyllaConfig, ScyllaStore, latest_version,
};
use chat_runtime::store::{self as store_api, Store, StoreError};
use confab_api::config::NatsConfig;
use confab_api::ring::{Ring, ShardId};
use confab_e2e::nats_cluster::NatsCluster;
use confab_e2e::{eventually, service_env};
use futures::{StreamExt, stream};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use tokio::time::timeout;
use uuid::Uuid;

/// A name unique to this process and moment (a valid keyspace name).
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

async fn cql_session() -> Result<Arc<Session>> {
    let node = service_env("CONFAB_CQL_NODE");
    let builder = cql_store::recommended(SessionBuilder::new().known_node(&node))
        .connection_timeout(Duration::from_secs(5));
    let session = timeout(Duration::from_secs(30), builder.build())
        .await
        .with_context(|| format!("connecting to CQL node {node} timed out"))?
        .with_context(|| format!("cannot connect to CQL node {node}"))?;
    Ok(Arc::new(session))
}

/// Opens a store in a fresh keyspace, runs `body` on it, then drops the
/// keyspace — also when `body` panics (the panic is passed on).
async fn with_store<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(Arc<ScyllaStore>, Arc<Session>, String) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let session = cql_session().await?;
    let ks = unique("confab_seams");
    let config = ScyllaConfig::new(ks.clone(), Replication::Simple { factor: 1 });
    let store = ScyllaStore::open(session.clone(), config).await?;
    let outcome = tokio::spawn(body(Arc::new(store), session.clone(), ks.clone())).await;
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), &[])
        .await
        .context("dropping the test keyspace")?;
    match outcome {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[tokio::test]
async fn nats_bus_passes_the_bus_conformance_suite() -> Result<()> {
    let url = service_env("CONFAB_NATS_URL");
    let client = timeout(Duration::from_secs(10), async_nats::connect(url.as_str()))
        .await
        .with_context(|| format!("connecting to NATS at {url} timed out"))?
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let bus = NatsBus::with_prefix(client, unique("confab_seams.user"));
    timeout(Duration::from_secs(60), bus::conformance::run(&bus))
        .await
        .context("the bus suite took over 60 s")?;
    Ok(())
}

async fn nats() -> Result<async_nats::Client> {
    let url = service_env("CONFAB_NATS_URL");
    timeout(Duration::from_secs(10), async_nats::connect(url.as_str()))
        .await
        .with_context(|| format!("connecting to NATS at {url} timed out"))?
        .with_context(|| format!("cannot connect to NATS at {url}"))
}

/// Admits every command: one shard owns every chat.
struct Open;

impl Gate for Open {
    fn admit(&self, _: &Command) -> Result<(), Answer> {
        Ok(())
    }
}

#[tokio::test]
async fn nats_shard_client_passes_the_shard_client_conformance_suite() -> Result<()> {
    conformance_over_nats(wire::LATEST, wire::LATEST).await
}

/// Every command and answer in JSON, the wire every build speaks.
#[tokio::test]
async fn nats_shard_client_passes_it_in_wire_version_1() -> Result<()> {
    conformance_over_nats(Version::JSON, Version::JSON).await
}

/// A gateway and a shard of different builds (one knows only version 1)
/// agree on version 1, whichever side is the older.
#[tokio::test]
async fn nats_shard_client_passes_it_across_wire_versions() -> Result<()> {
    conformance_over_nats(wire::LATEST, Version::JSON).await?;
    conformance_over_nats(Version::JSON, wire::LATEST).await
}

/// The shard client conformance suite through NATS, the gateway speaking
/// at most `gateway` and the shard at most `shard`; then the shard's
/// commands by wire version show which version they agreed on.
async fn conformance_over_nats(gateway: Version, shard_max: Version) -> Result<()> {
    let nats = nats().await?;
    with_store(|store, _, _| async move {
        let bus = Arc::new(bus::local::LocalBus::new());
        let metrics = Arc::new(Metrics::new());
        let shard = Arc::new(Shard::new(store.clone(), bus, metrics.clone()));
        let (prefix, me) = (unique("confab_seams.shard"), ShardId(0));
        let inbox = tokio::spawn({
            let (nats, prefix) = (nats.clone(), prefix.clone());
            async move { remote::serve(nats, &prefix, me, shard_max, shard, Arc::new(Open)).await }
        });
        let client =
            NatsShardClient::new(nats, prefix, Ring::new(1, &[me], 8)?).with_wire_max(gateway);
        let suite = shard::conformance::run(&client, store.as_ref());
        let outcome = timeout(Duration::from_secs(120), suite).await;
        inbox.abort();
        outcome.context("the shard client suite took over 120 s")?;
        let agreed = gateway.min(shard_max).number();
        let text = metrics.render();
        let count = |v: u8| {
            let series = format!("confab_shard_commands_total{{version=\"{v}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap_or(0))
        };
        // The first command to a shard goes in version 1 (the gateway does
        // not know the shard yet); every later one in the agreed version.
        ensure!(count(1) >= 1, "{text}");
        if agreed > 1 {
            ensure!(
                count(agreed) > count(1),
                "version {agreed} not used:\n{text}"
            );
        } else {
            ensure!(
                count(2) == 0,
                "version 2 used with a version-1 peer:\n{text}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn jetstream_push_queue_passes_the_queue_conformance_suite() -> Result<()> {
    let js = async_nats::jetstream::new(nats().await?);
    let cluster = unique("seams").replace('_', "-");
    let queue = NatsQueue::open(js.clone(), &cluster, 1).await?;
    timeout(
        Duration::from_secs(60),
        bus::conformance::push_queue(&queue),
    )
    .await
    .context("the queue suite took over 60 s")?;
    // Beyond the suite: a job queued twice (a retried send) is stored once.
    let job = chat_runtime::push::PushJob {
        user: Uuid::new_v4(),
        chat: Uuid::new_v4(),
        seq: 9,
        sender: Uuid::new_v4(),
        preview: "twice".into(),
        sent_at: 1,
        device: None,
    };
    queue.enqueue(&job).await?;
    queue.enqueue(&job).await?;
    let first = timeout(Duration::from_secs(10), queue.next()).await??;
    assert_eq!(first.job, job);
    first.ack().await?;
    let again = timeout(Duration::from_millis(700), queue.next()).await;
    assert!(again.is_err(), "a duplicate job must not be queued");
    // A second notifier on the same streams shares the consumer.
    NatsQueue::open(js.clone(), &cluster, 1).await?;
    for stream in ["push", "push-dead"] {
        js.delete_stream(format!("confab-{cluster}-{stream}"))
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn session_cache_shows_a_user_online_on_every_node() -> Result<()> {
    let js = async_nats::jetstream::new(nats().await?);
    let cluster = unique("seams").replace('_', "-");
    let kv = nats_sessions::bucket(&js, &cluster, 1).await?;
    let (here, there) = (
        NatsSessions::start(kv.clone(), "gw-a".into()),
        NatsSessions::start(kv.clone(), "gw-b".into()),
    );
    timeout(
        Duration::from_secs(30),
        bus::conformance::sessions(here.as_ref()),
    )
    .await
    .context("the sessions suite took over 30 s")?;
    let user = Uuid::new_v4();
    here.opened(user).await;
    let seen = |want: bool| {
        let there = there.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while there.online(user) != want {
                anyhow::ensure!(Instant::now() < deadline, "still online = {}", !want);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };
    seen(true).await.context("a session on another node")?;
    here.closed(user).await;
    seen(false)
        .await
        .context("the other node's session closed")?;
    // A node that joins later learns who is online from the bucket's history.
    here.opened(user).await;
    let late = NatsSessions::start(kv.clone(), "gw-c".into());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !late.online(user) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "a late node never saw the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A node that dies without closing its sessions (kill -9: nothing is
    // deleted) drops out once its heartbeat is silent for NODE_TTL, and the
    // live nodes purge its keys from the bucket.
    let doomed = NatsSessions::start(kv.clone(), "gw-d".into());
    let stranded = Uuid::new_v4();
    doomed.opened(stranded).await;
    eventually(
        "the doomed node's session is seen",
        Duration::from_secs(10),
        async || Ok(there.online(stranded)),
    )
    .await?;
    drop(doomed);
    let within = nats_sessions::NODE_TTL + Duration::from_secs(10);
    eventually("the dead node's session is forgotten", within, async || {
        Ok(!there.online(stranded))
    })
    .await?;
    let key = format!("{}.gw-d", stranded.simple());
    eventually(
        "the dead node's key is purged",
        Duration::from_secs(10),
        async || Ok(kv.get(&key).await?.is_none()),
    )
    .await?;
    js.delete_key_value(format!("confab-{cluster}-sessions"))
        .await?;
    Ok(())
}

/// `(replicas, peers)` of the stream behind each of a cluster's buckets.
async fn copies(js: &async_nats::jetstream::Context, cluster: &str) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for stream in [
        format!("KV_confab-{cluster}-leases"),
        format!("KV_confab-{cluster}-ownership"),
        format!("KV_confab-{cluster}-sessions"),
        format!("confab-{cluster}-push"),
        format!("confab-{cluster}-push-dead"),
    ] {
        let info = js.get_stream(&stream).await?.info().await?.clone();
        let peers = info.cluster.map_or(0, |c| c.replicas.len());
        out.push((info.config.num_replicas, peers));
    }
    Ok(out)
}

async fn open_buckets(
    js: &async_nats::jetstream::Context,
    cluster: &str,
    replicas: usize,
) -> Result<async_nats::jetstream::kv::Store> {
    let times = LeaseTimes::new(Duration::from_secs(10));
    lease::bucket(js, cluster, times, replicas).await?;
    let records = records::bucket(js, cluster, replicas).await?;
    nats_sessions::bucket(js, cluster, replicas).await?;
    NatsQueue::open(js.clone(), cluster, replicas).await?;
    Ok(records)
}

/// Raising `cache.replicas` reaches buckets that already exist: the pods
/// that restart with the new config resize them, keeping their entries.
#[tokio::test]
async fn raised_cache_replicas_resize_existing_buckets_on_a_nats_cluster() -> Result<()> {
    let nats = NatsCluster::start(3).await?;
    // As the pods connect: the config's URL list, through the runtime's code.
    let config = NatsConfig {
        url: nats.urls().join(","),
        credentials_file: None,
        token_file: None,
        tls_dir: None,
        cache_replicas: 3,
    };
    let (client, _) = connect::nats(&config, "resize-test").await?;
    let js = async_nats::jetstream::new(client);
    let cluster = "resize";
    let records = open_buckets(&js, cluster, 1).await?;
    assert_eq!(copies(&js, cluster).await?, vec![(1, 0); 5]);
    records.put("shard-0", "kept".into()).await?;

    let records = open_buckets(&js, cluster, 3).await?;
    // Config first; the two new peers follow as they catch up.
    eventually(
        "every bucket has three copies",
        Duration::from_secs(30),
        async || Ok(copies(&js, cluster).await? == vec![(3, 2); 5]),
    )
    .await?;
    let kept = records.get("shard-0").await?;
    assert_eq!(
        kept.as_deref(),
        Some(&b"kept"[..]),
        "entries survive the resize"
    );
    // Opening again with the same config changes nothing.
    open_buckets(&js, cluster, 3).await?;
    assert_eq!(copies(&js, cluster).await?, vec![(3, 2); 5]);
    Ok(())
}

/// The managed NATS demands a token: the runtime's connection presents the
/// one in the config's `token_file`, and without it gets nowhere.
#[tokio::test]
async fn runtime_connects_to_a_token_protected_nats_only_with_its_token() -> Result<()> {
    let port = portpicker::pick_unused_port().context("no free port")?;
    let mut server = std::process::Command::new(service_env("CONFAB_NATS_BIN"))
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--auth",
            "s3cret",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting nats-server")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n")?;
    let config = |token_file: Option<String>| NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        credentials_file: None,
        token_file,
        tls_dir: None,
        cache_replicas: 1,
    };
    let flushed = async |config: NatsConfig| -> Result<bool> {
        let (client, _) = connect::nats(&config, "token-test").await?;
        Ok(matches!(
            timeout(Duration::from_secs(3), client.flush()).await,
            Ok(Ok(()))
        ))
    };
    let with = flushed(config(Some(file.display().to_string()))).await;
    let without = flushed(config(None)).await;
    server.kill()?;
    server.wait()?;
    assert!(with?, "the token opens the connection");
    assert!(!without?, "no token, no connection");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_store_passes_the_store_conformance_suite() -> Result<()> {
    with_store(|store, session, ks| async move {
        // Migrations are idempotent: opening the keyspace again is a no-op.
        let config = ScyllaConfig::new(ks, Replication::Simple { factor: 1 });
        let again = ScyllaStore::open(session, config).await?;
        store_api::conformance::run(store.as_ref()).await;
        store_api::conformance::concurrent_appends(Arc::new(again)).await;
        Ok(())
    })
    .await
}

fn group(creator: Uuid) -> Chat {
    Chat {
        id: Uuid::new_v4(),
        kind: ChatKind::Group,
        title: "seams".into(),
        created_by: creator,
        created_at: now_ms(),
    }
}

fn text(chat: &Chat, seq: Seq, sender: Uuid) -> Message {
    Message {
        chat_id: chat.id,
        seq,
        sender,
        client_msg_id: format!("c{seq}"),
        content: Content::Text {
            body: format!("m{seq}"),
        },
        sent_at: now_ms(),
    }
}

/// Appends `seqs` to a chat, `concurrency` at a time.
async fn fill(
    store: &Arc<ScyllaStore>,
    chat: &Chat,
    seqs: std::ops::RangeInclusive<Seq>,
    concurrency: usize,
) {
    stream::iter(seqs)
        .for_each_concurrent(concurrency, |seq| {
            let (store, msg) = (store.clone(), text(chat, seq, chat.created_by));
            async move { store.append(&msg, None).await.expect("append") }
        })
        .await;
}

async fn new_group(store: &ScyllaStore) -> Result<Chat> {
    let admin = Uuid::new_v4();
    let chat = group(admin);
    let first = Message {
        client_msg_id: String::new(),
        content: Content::created(admin, chat.title.clone(), vec![admin]),
        ..text(&chat, 1, admin)
    };
    store
        .create_chat(&chat, &[Member::new(admin, Role::Admin, 1)], &first)
        .await?;
    Ok(chat)
}

fn seqs(page: &[Message]) -> Vec<Seq> {
    page.iter().map(|m| m.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_across_buckets() -> Result<()> {
    with_store(|store, _, _| async move {
        let chat = new_group(&store).await?;
        let (b, last) = (BUCKET, BUCKET + 60); // two partitions: 1..b-1 and b..
        fill(&store, &chat, 2..=b - 3, 32).await;
        // One append across the boundary: each partition's part is claimed
        // in one conditional batch, and a clash in the second leaves the
        // first stored whole.
        let across = |seqs: std::ops::RangeInclusive<Seq>| -> Vec<Message> {
            seqs.map(|seq| text(&chat, seq, chat.created_by)).collect()
        };
        store.append_all(&across(b - 2..=b + 1), None).await?;
        assert_eq!(store.head(chat.id).await?, b + 1);
        assert_eq!(
            store
                .dedup(chat.id, chat.created_by, &format!("c{}", b + 1))
                .await?,
            Some(b + 1)
        );
        let clash = store.append_all(&across(b + 1..=b + 2), None).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        assert_eq!(store.head(chat.id).await?, b + 1);
        fill(&store, &chat, b + 2..=last, 32).await;
        assert_eq!(store.head(chat.id).await?, last);
        let page = store.messages_before(chat.id, None, 100).await?;
        assert_eq!(seqs(&page), (last - 99..=last).rev().collect::<Vec<_>>());
        let page = store.messages_before(chat.id, Some(b + 10), 30).await?;
        assert_eq!(seqs(&page), (b - 20..b + 10).rev().collect::<Vec<_>>());
        let page = store.messages_before(chat.id, Some(Seq::MAX), 3).await?;
        assert_eq!(seqs(&page), vec![last, last - 1, last - 2]);
        let page = store.messages_after(chat.id, b - 10, 20).await?;
        assert_eq!(seqs(&page), (b - 9..=b + 10).collect::<Vec<_>>());
        let all = store
            .messages_after(chat.id, 0, 10 * BUCKET as usize)
            .await?;
        assert_eq!(seqs(&all), (1..=last).collect::<Vec<_>>());
        assert!(store.messages_after(chat.id, last, 10).await?.is_empty());
        assert!(
            store
                .messages_after(chat.id, Seq::MAX, 10)
                .await?
                .is_empty()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_append_is_completed_by_head() -> Result<()> {
    with_store(|store, session, ks| async move {
        let chat = new_group(&store).await?;
        // The message row of seq 2 written as by a process that died before
        // its dedup entry and membership change (the LWT went through).
        let joiner = Member::new(Uuid::new_v4(), Role::Member, 2);
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.messages (chat_id, bucket, seq, sender, client_msg_id, \
                     kind, body, sent_at, change_put) VALUES (?, 0, 2, ?, 'retry-me', 'text', \
                     'hi', 0, ?)"
                ),
                (chat.id, joiner.user_id, serde_json::to_string(&joiner)?),
            )
            .await?;
        assert_eq!(
            store.dedup(chat.id, joiner.user_id, "retry-me").await?,
            None
        );
        assert_eq!(store.head(chat.id).await?, 2);
        assert_eq!(
            store.dedup(chat.id, joiner.user_id, "retry-me").await?,
            Some(2)
        );
        assert!(store.members(chat.id).await?.contains(&joiner));
        assert_eq!(store.user_chats(joiner.user_id).await?, vec![chat.id]);
        Ok(())
    })
    .await
}

/// A migration that ran but was not recorded (its migrator died in between)
/// runs again harmlessly, the column it adds included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_applied_but_not_recorded_runs_again() -> Result<()> {
    with_store(|_, session, ks| async move {
        session
            .query_unpaged(
                format!("DELETE FROM {ks}.schema_migrations WHERE version = ?"),
                (latest_version(),),
            )
            .await?;
        let config = ScyllaConfig::new(ks, Replication::Simple { factor: 1 });
        let store = ScyllaStore::open(session, config).await?;
        store_api::conformance::run(&store).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_chat_claimed_by_a_dead_creator_is_completed() -> Result<()> {
    with_store(|store, session, ks| async move {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (lo, hi) = (a.min(b), a.max(b));
        let orphan = Uuid::new_v4();
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.direct_chats (user_lo, user_hi, chat_id, created_by, \
                     created_at) VALUES (?, ?, ?, ?, 7) IF NOT EXISTS"
                ),
                (lo, hi, orphan, a),
            )
            .await?;
        assert_eq!(store.direct_chat(a, b).await?, None, "incomplete chat");
        let chat = Chat {
            id: Uuid::new_v4(),
            kind: ChatKind::Direct,
            title: String::new(),
            created_by: b,
            created_at: now_ms(),
        };
        let members = [
            Member::new(a, Role::Member, 1),
            Member::new(b, Role::Member, 1),
        ];
        assert_eq!(store.create_direct(&chat, members).await?, (orphan, false));
        let completed = store.chat(orphan).await?.context("chat written")?;
        assert_eq!((completed.created_by, completed.created_at), (a, 7));
        assert_eq!(store.direct_chat(b, a).await?, Some(orphan));
        assert_eq!(store.members(orphan).await?.len(), 2);
        Ok(())
    })
    .await
}
