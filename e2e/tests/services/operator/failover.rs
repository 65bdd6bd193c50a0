//! Failover against the real control plane: a shard pod that stays NotReady
//! for `failoverDelaySeconds` is taken out of the ring and put back once
//! Ready; a NotReady gateway shows in the conditions.
//!
//! kwok marks pods Ready only while they are `Pending` (its `pod-ready`
//! stage), so a Ready condition patched to False through the pod's status
//! subresource stays False until the test patches it back: the test plays
//! the kubelet whose probe failed and then passed.

use anyhow::{Context, Result};
use confab_api::cluster::ChatCluster;
use confab_operator::shell::control::Recording;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::table::get_chatclusters;
use super::{available, cluster, ring_reaches, until, with_operator};

/// Seconds a shard may stay NotReady in these tests.
const DELAY: i64 = 3;

/// Sets `pod`'s Ready condition as a kubelet would; answers the transition
/// time the API stored.
pub(crate) async fn set_ready(pods: &Api<Pod>, pod: &str, ready: bool) -> Result<Timestamp> {
    let status = if ready { "True" } else { "False" };
    let patch = json!({ "status": { "conditions": [{
        "type": "Ready", "status": status, "reason": "E2eProbe",
        "lastTransitionTime": Timestamp::now().to_string() }] } });
    let stored = pods
        .patch_status(pod, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .with_context(|| format!("patching {pod}'s Ready condition"))?;
    let condition = stored
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"))
        .context("no Ready condition after the patch")?;
    assert_eq!(condition.status, status, "the API kept {pod}'s readiness");
    Ok(condition
        .last_transition_time
        .context("no transition time")?
        .0)
}

/// Waits for the Degraded condition to say `reason`; answers its message.
async fn degraded(api: &Api<ChatCluster>, status: &str, reason: &str) -> Result<String> {
    until(&format!("Degraded={status} ({reason})"), || async {
        let cc = api.get("chat").await?;
        let found = cc.status.unwrap_or_default().condition("Degraded").cloned();
        Ok(match found {
            Some(c) if c.status == status && c.reason == reason => Ok(c.message),
            c => Err(format!("{:?}", c.map(|c| (c.status, c.reason, c.message)))),
        })
    })
    .await
}

/// When the first event with `reason` was recorded.
async fn first_event(client: &Client, ns: &str, reason: &str) -> Result<Timestamp> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = events.list(&ListParams::default()).await?;
    list.items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.event_time.as_ref().map(|t| t.0))
        .min()
        .with_context(|| format!("no {reason} event"))
}

#[tokio::test]
async fn not_ready_shard_leaves_the_ring_after_the_delay_and_rejoins_when_ready() -> Result<()> {
    with_operator("op-failover", failover).await
}

async fn failover(client: &Client, ns: &str, recording: &Recording) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0",
        "shards": { "count": 3, "failoverDelaySeconds": DELAY } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1, 2], 3).await?;

    // Shard 1's probe fails: after the delay it leaves the ring (epoch 2),
    // its pod stays (replicas 3) and Degraded says why.
    let not_ready_since = set_ready(&pods, "chat-shard-1", false).await?;
    ring_reaches(&api, &sts, 2, &[0, 2], 3).await?;
    let message = degraded(&api, "True", "ShardsFailedOver").await?;
    assert!(
        message.contains("shards [1] NotReady for over 3s: taken out of the ring"),
        "{message}"
    );
    let status = api.get("chat").await?.status.unwrap();
    assert_eq!(status.ring.as_ref().unwrap().failed_over, [1]);
    assert_eq!(status.shards.as_ref().unwrap().ready, 2);
    let decided = first_event(client, ns, "FailingOver").await?;
    assert!(
        decided >= not_ready_since + SignedDuration::from_secs(DELAY),
        "failed over at {decided}, NotReady since {not_ready_since}: before the delay"
    );
    let (rows, text) = get_chatclusters(client, ns).await?;
    println!("$ kubectl get chatclusters -n {ns}   # shard 1 failed over\n{text}");
    assert_eq!(rows[1][..6], ["chat", "3", "2", "1", "2", "Degraded"]);
    // The fenced shard is not asked to take part in its own removal.
    let epoch2 = shards_called(recording, 2);
    assert_eq!(
        epoch2,
        [("CommitRing", vec![0, 2]), ("PrepareRing", vec![0, 2])]
    );

    // Ready again: it rejoins (epoch 3) and the cluster is whole.
    set_ready(&pods, "chat-shard-1", true).await?;
    ring_reaches(&api, &sts, 3, &[0, 1, 2], 3).await?;
    degraded(&api, "False", "AllReady").await?;
    first_event(client, ns, "Rejoining").await?;
    let epoch3 = shards_called(recording, 3);
    assert_eq!(
        epoch3,
        [
            ("CommitRing", vec![0, 1, 2]),
            ("PrepareRing", vec![0, 1, 2])
        ]
    );
    let status = api.get("chat").await?.status.unwrap();
    assert!(status.ring.unwrap().failed_over.is_empty());

    gateway_not_ready_is_reported(&api, &pods).await?;

    // What `kubectl get chatclusters` shows now, from the CRD's printer columns.
    let (rows, text) = get_chatclusters(client, ns).await?;
    println!("$ kubectl get chatclusters -n {ns}\n{text}");
    assert_eq!(
        rows[0][..6],
        ["NAME", "SHARDS", "READY", "GATEWAYS", "EPOCH", "PHASE"]
    );
    assert_eq!(rows[1][..6], ["chat", "3", "3", "1", "3", "Running"]);
    Ok(())
}

/// `(rpc, shards)` of the control calls for `epoch`, by rpc name.
fn shards_called(recording: &Recording, epoch: u64) -> Vec<(&'static str, Vec<u32>)> {
    let mut by_rpc = std::collections::BTreeMap::<&'static str, Vec<u32>>::new();
    for call in recording.calls().into_iter().filter(|c| c.epoch == epoch) {
        let shards = by_rpc.entry(call.rpc).or_default();
        if !shards.contains(&call.shard) {
            shards.push(call.shard);
        }
    }
    by_rpc
        .into_iter()
        .map(|(rpc, mut shards)| {
            shards.sort();
            (rpc, shards)
        })
        .collect()
}

/// A NotReady gateway makes the cluster Degraded (and not Available, with
/// one gateway) until it is Ready again; the ring is left alone.
async fn gateway_not_ready_is_reported(api: &Api<ChatCluster>, pods: &Api<Pod>) -> Result<()> {
    let gateways = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=gateway"))
        .await?;
    let gateway = gateways.items.first().context("no gateway pod")?;
    let name = gateway.metadata.name.clone().context("a pod has a name")?;
    set_ready(pods, &name, false).await?;
    let message = degraded(api, "True", "GatewaysNotReady").await?;
    assert_eq!(message, "0 of 1 gateways Ready");
    let status = api.get("chat").await?.status.unwrap();
    let available = status.condition("Available").unwrap();
    assert_eq!(available.status, "False", "{available:?}");
    assert_eq!(
        status.ring.unwrap().epoch,
        3,
        "a gateway never moves the ring"
    );

    set_ready(pods, &name, true).await?;
    degraded(api, "False", "AllReady").await?;
    Ok(())
}
