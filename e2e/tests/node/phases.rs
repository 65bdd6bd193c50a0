//! The phases of the real-node scenario, in the order they run on one
//! cluster. Each phase under load ends with every acknowledged message
//! stored exactly once at its seq, gapless, and on every receiver's device.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chat_runtime::protocol::ServerFrame;
use confab_api::cluster::ChatCluster;
use confab_api::ring::{Ring, ShardId};
use confab_e2e::api::Api;
use confab_e2e::device::Device;
use confab_e2e::eventually;
use confab_e2e::load::{Load, Pairs};
use confab_e2e::media::unique_png;
use confab_e2e::service_env;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::process::Command;

use crate::setup::{NAME, Product, TIMEOUT};
use crate::took;

/// Silence after which a device waiting for a frame gives up.
const WAIT: Duration = Duration::from_secs(60);
/// Pairs of devices under load in each phase.
const PAIRS: usize = 4;
/// A bound on the rounds of one phase's load (10 ms apart, plus send time).
const MAX_ROUNDS: usize = 20_000;

pub async fn run(p: &Product) -> Result<()> {
    chats_receipts_and_media(p).await.context("chats")?;
    scale_up_under_load(p).await.context("scale 2→3")?;
    gateway_pod_deleted_under_load(p)
        .await
        .context("gateway pod deleted")?;
    shard_killed_under_load(p)
        .await
        .context("shard container killed")?;
    config_change_rolls_pods(p).await.context("config change")?;
    deletion_removes_everything(p).await.context("deletion")
}

/// The ChatCluster's status as read now.
async fn cluster(p: &Product) -> Result<ChatCluster> {
    Ok(p.clusters().get(NAME).await?)
}

fn condition_true(cc: &ChatCluster, type_: &str) -> bool {
    cc.status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .is_some_and(|c| c.status == "True")
}

/// `kubectl wait --for=condition=Available` at the current generation.
pub async fn available(p: &Product) -> Result<()> {
    eventually("the ChatCluster is Available", TIMEOUT, async || {
        let cc = cluster(p).await?;
        let observed = cc.status.as_ref().and_then(|s| s.observed_generation);
        Ok(observed == cc.metadata.generation && condition_true(&cc, "Available"))
    })
    .await
}

/// The committed ring has `n` members, all Ready, nothing pending or failed over.
async fn ring_settled(p: &Product, n: usize) -> Result<()> {
    eventually(
        &format!("a stable ring of {n} shards"),
        TIMEOUT,
        async || {
            let cc = cluster(p).await?;
            let Some(status) = cc.status.as_ref() else {
                return Ok(false);
            };
            let ring_ok = status.ring.as_ref().is_some_and(|r| {
                r.members.len() == n && r.pending.is_none() && r.failed_over.is_empty()
            });
            let ready = status.shards.as_ref().is_some_and(|s| s.ready == n as i32);
            Ok(ring_ok && ready && condition_true(&cc, "RingStable"))
        },
    )
    .await
}

/// Reads frames until `want` matches one.
async fn frame_until(d: &mut Device, want: impl Fn(&ServerFrame) -> bool) -> Result<()> {
    loop {
        match d.next_frame(WAIT).await? {
            Some(f) if want(&f) => return Ok(()),
            Some(_) => {}
            None => anyhow::bail!("no matching frame within {WAIT:?}"),
        }
    }
}

/// Two users and a third in a group: 1:1 with delivered and read receipts,
/// a group message to every member, a photo uploaded to the S3 bucket and
/// downloaded by its recipient.
async fn chats_receipts_and_media(p: &Product) -> Result<()> {
    let api = Api::new(&p.url);
    let (alice, bob, carol) = (
        api.user("alice").await?,
        api.user("bob").await?,
        api.user("carol").await?,
    );
    let direct = api.direct(&alice, &bob).await?;
    let group = api.group(&alice, "Team", &[&bob, &carol]).await?;
    let mut a = Device::new(&alice.token);
    let mut b = Device::new(&bob.token);
    let mut c = Device::new(&carol.token);
    for d in [&mut a, &mut b, &mut c] {
        d.connect(&p.url).await?;
    }

    a.send(direct, "direct-1", "hi Bob").await?;
    a.until(WAIT, |d| d.outbox.is_empty()).await?;
    b.until(WAIT, |d| d.seqs(direct) == [1]).await?;
    b.receipt("delivered", direct, 1).await?;
    b.receipt("read", direct, 1).await?;
    frame_until(&mut a, |f| {
        matches!(f, ServerFrame::Receipt { chat_id, read_all_seq, .. }
            if *chat_id == direct && *read_all_seq >= 1)
    })
    .await
    .context("Alice sees Bob's read receipt")?;

    a.send(group, "group-1", "hi team").await?;
    a.until(WAIT, |d| d.outbox.is_empty()).await?;
    b.until(WAIT, |d| d.seqs(group) == [1]).await?;
    c.until(WAIT, |d| d.seqs(group) == [1]).await?;

    let png = unique_png();
    let id = api.uploaded(&alice, "image/png", png.clone()).await?;
    let (s, sent) = api.send_media(&alice, direct, "image", &id).await?;
    ensure!(s == 201, "media send: {s} {sent}");
    b.until(WAIT, |d| d.seqs(direct).len() == 2).await?;
    let got = api
        .get(&format!("/v1/media/{id}"), Some(&bob.token), &[])
        .await?;
    ensure!(got.status() == 200, "download: {}", got.status());
    ensure!(got.bytes().await? == png, "the photo came back different");
    eprintln!("[real node] chats: 1:1 with receipts, group of 3, photo through S3: ok");
    Ok(())
}

/// `Pairs` through the NodePort and a load on them.
async fn start_load(p: &Product) -> Result<(Pairs, Load)> {
    let mut pairs = Pairs::new(std::slice::from_ref(&p.url), PAIRS).await?;
    let load = Load::start(
        std::mem::take(&mut pairs.senders),
        pairs.chats.clone(),
        MAX_ROUNDS,
    );
    // Let the load run a moment before the change.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((pairs, load))
}

/// What the senders of a load saw, for the closing notes.
#[derive(Default)]
struct Timings {
    /// Longest send→ack wait of any sender.
    slowest_ack: Duration,
    /// For each lost connection, the time until `synced` again.
    resumed_after: Vec<Duration>,
    /// When the server closed a sender's connection with 1012 (drain).
    drained: Vec<Instant>,
    /// Sends answered "retry" (`unavailable` while a chat moved).
    retried: usize,
}

/// Stops the load, waits for everything to arrive, checks every chat;
/// answers what the senders saw.
async fn settle(p: &Product, pairs: Pairs, load: Load) -> Result<Timings> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (senders, rounds) = load.stop().await?;
    let mut t = Timings::default();
    for d in &senders {
        t.slowest_ack = t.slowest_ack.max(d.slowest_ack);
        t.retried += d.retried;
        t.resumed_after.extend(&d.resumed_after);
        t.drained.extend(
            d.closes
                .iter()
                .filter(|(_, c)| *c == 1012)
                .map(|(at, _)| *at),
        );
    }
    pairs
        .settle(&Api::new(&p.url), senders, rounds, WAIT)
        .await?;
    eprintln!(
        "[real node]   {rounds} rounds x {PAIRS} chats checked: stored once, gapless \
         ({} sends retried; slowest ack {:?})",
        t.retried, t.slowest_ack
    );
    Ok(t)
}

/// `kubectl scale cc/chat --replicas=3` under load: the third shard joins
/// through the control API over the pod network.
async fn scale_up_under_load(p: &Product) -> Result<()> {
    let (pairs, load) = start_load(p).await?;
    let t = Instant::now();
    p.clusters()
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    ring_settled(p, 3).await?;
    took("scale 2→3 (scale subresource → ring of 3 stable)", t);
    let cc = cluster(p).await?;
    let ring = cc.status.and_then(|s| s.ring).context("no ring")?;
    eprintln!(
        "[real node]   ring epoch {}, moved {:?}",
        ring.epoch, ring.moved_fraction
    );
    settle(p, pairs, load).await?;
    Ok(())
}

/// Pods of the ChatCluster with `role`.
async fn pods(p: &Product, role: &str) -> Result<Vec<Pod>> {
    let selector = format!("app.kubernetes.io/component={role},confab.dev/cluster={NAME}");
    Ok(p.pods()
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// A gateway pod deleted (graceful, as a node drain or rollout does) under
/// load: its devices are closed, reconnect through the Service to the other
/// gateway and resume.
async fn gateway_pod_deleted_under_load(p: &Product) -> Result<()> {
    let (pairs, load) = start_load(p).await?;
    let gateways = pods(p, "gateway").await?;
    let victim = gateways.first().context("no gateway pod")?.name_any();
    p.pods().delete(&victim, &DeleteParams::default()).await?;
    eprintln!("[real node]   deleted gateway pod {victim}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let t = settle(p, pairs, load).await?;
    eprintln!(
        "[real node] gateway failover: {} sender reconnects, longest to resumed {:?}",
        t.resumed_after.len(),
        t.resumed_after.iter().max()
    );
    available(p).await
}

/// `kill -9` of the container of the shard that owns the first loaded chat
/// (no graceful stop) under load: the shard stays NotReady until its old
/// lease expires, longer than `failoverDelaySeconds`, so the operator fails
/// it over to its neighbours; once Ready again it rejoins the ring.
async fn shard_killed_under_load(p: &Product) -> Result<()> {
    let (pairs, load) = start_load(p).await?;
    let ring = cluster(p)
        .await?
        .status
        .and_then(|s| s.ring)
        .context("no ring")?;
    let members: Vec<ShardId> = ring.members.iter().copied().map(ShardId).collect();
    let victim = Ring::new(ring.epoch, &members, ring.vnodes_per_shard)?
        .owner(pairs.chats[0])
        .0;
    let shard = p.pods().get(&format!("{NAME}-shard-{victim}")).await?;
    let container = shard
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.container_id)
        .context("the shard has no container id")?;
    let id = container
        .strip_prefix("containerd://")
        .context("not a containerd container")?;
    let t = Instant::now();
    let out = Command::new("ctr")
        .args(["--address", &service_env("CONFAB_CONTAINERD_ADDRESS")])
        .args(["-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "ctr kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        &format!("shard {victim} is failed over"),
        TIMEOUT,
        async || {
            let cc = cluster(p).await?;
            let ring = cc.status.and_then(|s| s.ring);
            Ok(ring.is_some_and(|r| r.failed_over.contains(&victim)))
        },
    )
    .await?;
    took(&format!("shard {victim} killed → failed over"), t);
    ring_settled(p, 3).await?;
    took(&format!("shard {victim} killed → rejoined, ring stable"), t);
    let timings = settle(p, pairs, load).await?;
    eprintln!(
        "[real node] shard failover: longest send→ack wait {:?}",
        timings.slowest_ack
    );
    Ok(())
}

/// A change the pods read at start (`push.webhooks`) rolls every runtime
/// pod; gateways drain (1012 closes spread out) and nothing acked is lost.
async fn config_change_rolls_pods(p: &Product) -> Result<()> {
    let before: Vec<String> = all_runtime_pods(p).await?;
    let (pairs, load) = start_load(p).await?;
    let t = Instant::now();
    let mut cc = p.spec.clone();
    cc.spec.shards.count = 3;
    cc.spec.push.webhooks = true;
    p.apply(&cc).await?;
    eventually("every runtime pod is replaced", TIMEOUT, async || {
        let now = all_runtime_pods(p).await?;
        Ok(now.len() == before.len() && now.iter().all(|n| !before.contains(n)))
    })
    .await?;
    available(p).await?;
    ring_settled(p, 3).await?;
    took("config change → every runtime pod replaced, Available", t);
    let rolled = rolled_shards(p).await?;
    eprintln!("[real node]   shards the operator drained and restarted, in order: {rolled:?}");
    ensure!(
        rolled == [2, 1, 0],
        "the operator rolls the shards one at a time, highest first: {rolled:?}"
    );
    let timings = settle(p, pairs, load).await?;
    let drained = &timings.drained;
    ensure!(
        !drained.is_empty(),
        "no sender was drained (1012) by the rollout"
    );
    if let (Some(first), Some(last)) = (drained.iter().min(), drained.iter().max()) {
        eprintln!(
            "[real node]   {} sender closes 1012, spread over {:.1} s; longest to resumed {:?}",
            drained.len(),
            (*last - *first).as_secs_f64(),
            timings.resumed_after.iter().max()
        );
    }
    Ok(())
}

/// The shards the operator's roll restarted (its `RollingShard` events),
/// in the order it did.
async fn rolled_shards(p: &Product) -> Result<Vec<u32>> {
    let events: kube::Api<Event> = kube::Api::namespaced(p.client.clone(), &p.ns);
    let mut list: Vec<Event> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RollingShard"))
        .collect();
    list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    list.iter()
        .map(|e| {
            let note = e.note.as_deref().unwrap_or_default();
            note.strip_prefix("drained shard ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("an unexpected RollingShard note: {note}"))
        })
        .collect()
}

/// UIDs of the shard, gateway and notifier pods that are not terminating
/// (a StatefulSet's new pod has its predecessor's name).
async fn all_runtime_pods(p: &Product) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for role in ["shard", "gateway", "notifier"] {
        for pod in pods(p, role).await? {
            if pod.metadata.deletion_timestamp.is_none() {
                names.extend(pod.metadata.uid);
            }
        }
    }
    Ok(names)
}

/// Deleting the ChatCluster: the finalizer runs and no pod is left.
async fn deletion_removes_everything(p: &Product) -> Result<()> {
    let t = Instant::now();
    p.clusters().delete(NAME, &DeleteParams::default()).await?;
    eventually(
        "the ChatCluster and every pod are gone",
        TIMEOUT,
        async || {
            let left = p.pods().list(&ListParams::default()).await?.items.len();
            Ok(p.clusters().get_opt(NAME).await?.is_none() && left == 0)
        },
    )
    .await?;
    took("ChatCluster deleted → finalizer done, no pod left", t);
    Ok(())
}
