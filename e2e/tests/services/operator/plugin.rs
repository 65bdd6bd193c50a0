//! `kubectl confab` against the real control plane, with the operator
//! in-process and recorded load: `status` renders what the operator
//! reported, `ring` places a chat, `drain` and `failover` go through the
//! annotation the operator carries out (drain RPC to the right pod, pod
//! deleted, the failed-over shard left out of its own removal and back once
//! its new pod is Ready), a request for a pod that does not exist is refused
//! with a reason, and `support-bundle` writes a bundle with no Secret in it.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confab_api::cluster::ChatCluster;
use confab_api::cluster::requests::{PodRef, Request};
use confab_operator::shell::control::Recording;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kubectl_confab::{Error, bundle, request, ring, snapshot, status};
use serde_json::json;

use super::{available, cluster, ring_reaches, until, with_operator};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn kubectl_confab_status_ring_drain_failover_and_bundle() -> Result<()> {
    with_operator("op-plugin", plugin).await
}

async fn plugin(client: &Client, ns: &str, recording: &Recording) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0", "shards": { "count": 3 },
                "gateway": { "replicas": 2 } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1, 2], 3).await?;
    recording.set_sends_per_shard(400.0);
    recording.set_connections_per_gateway(250);
    until("the load of 3 shards and 2 gateways in status", || async {
        let load = api.get("chat").await?.status.unwrap_or_default().load;
        Ok(match load {
            Some(l) if l.shards.len() == 3 && l.gateways == 2 && l.sends_per_second > 0 => Ok(()),
            l => Err(format!("{l:?}")),
        })
    })
    .await?;

    let shown = status::render(&snapshot(client, ns, "chat").await?);
    println!("$ kubectl confab status chat -n {ns}\n{shown}");
    for line in [
        format!("ChatCluster {ns}/chat  phase Running  image confab.invalid/chat-runtime:0"),
        "  epoch 1: shards [0, 1, 2], 64 vnodes per shard".to_string(),
        "  no change in flight".to_string(),
        "Gateways: 500 connections on 2 answering".to_string(),
    ] {
        assert!(shown.lines().any(|l| l == line), "no {line:?} in\n{shown}");
    }
    assert!(
        shown
            .lines()
            .any(|l| l.contains("  Normal  RingBootstrapped")
                && l.ends_with("committed ring epoch 1 with shards [0, 1, 2]")),
        "the operator's events are shown:\n{shown}"
    );
    let shard_rows = shown
        .lines()
        .filter(|l| l.contains("chat-shard-") && l.contains("  yes  "))
        .count();
    assert_eq!(shard_rows, 3, "{shown}");

    let chat = "0190d7a4-6b1e-7c3a-9f00-000000000001";
    let placed = ring::placement(&api.get("chat").await?.status.unwrap().ring.unwrap(), chat)?;
    assert!(
        placed.starts_with(&format!("chat {chat}: shard ")),
        "{placed}"
    );

    // Drain a gateway: the Drain goes to that pod, which is then replaced.
    let gateway = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=gateway"))
        .await?
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
        .context("no gateway pod with an IP")?;
    let (name, ip) = (gateway.name_any(), gateway.status.unwrap().pod_ip.unwrap());
    let note = request::send(
        client,
        ns,
        "chat",
        &Request::Drain(PodRef::Gateway(name.clone())),
        WAIT,
    )
    .await?;
    println!("$ kubectl confab drain chat gateway {name}\n{note}");
    assert_eq!(
        note,
        format!("drained gateway/{name} (0 sessions left) and deleted its pod")
    );
    let drained = recording
        .calls()
        .into_iter()
        .filter(|c| c.rpc == "Drain")
        .collect::<Vec<_>>();
    assert_eq!(drained.len(), 1, "{drained:?}");
    assert_eq!(drained[0].address, format!("{ip}:9090"));
    until("the drained gateway pod is gone", || async {
        Ok(match pods.get_opt(&name).await? {
            None => Ok(()),
            Some(p) => Err(format!("{:?}", p.metadata.deletion_timestamp)),
        })
    })
    .await?;

    // Force shard 1 out: epoch 2 without it, never asked; back at epoch 3.
    let before = pods.get("chat-shard-1").await?.uid();
    let note = request::send(client, ns, "chat", &Request::FailOver(1), WAIT).await?;
    println!("$ kubectl confab failover chat shard 1\n{note}");
    assert_eq!(
        note,
        "shard 1 is out of the ring (epoch 2, shards [0, 2]); deleted chat-shard-1, which rejoins once Ready"
    );
    let epoch2: Vec<u32> = recording
        .calls()
        .iter()
        .filter(|c| c.epoch == 2)
        .map(|c| c.shard)
        .collect();
    assert!(
        !epoch2.is_empty() && !epoch2.contains(&1),
        "shard 1 was asked: {epoch2:?}"
    );
    ring_reaches(&api, &sts, 3, &[0, 1, 2], 3).await?;
    assert_ne!(pods.get("chat-shard-1").await?.uid(), before, "a new pod");

    match request::send(client, ns, "chat", &Request::Drain(PodRef::Shard(9)), WAIT).await {
        Err(Error::Refused(why)) => assert_eq!(why, "cannot drain shard/9: no such pod with an IP"),
        other => bail!("a drain of a missing shard: {other:?}"),
    }
    let left = api
        .get("chat")
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        !left.keys().any(|k| k.starts_with("confab.dev/")),
        "{left:?}"
    );

    support_bundle(client, ns).await
}

/// The bundle holds the report, the objects, events and a log entry per
/// pod, and not one byte of the cluster's Secrets.
async fn support_bundle(client: &Client, ns: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("bundle.tar.gz");
    let files = bundle::write(client, ns, "chat", &out).await?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&out)?));
    let mut entries = Vec::new();
    let mut all = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        entries.push(entry.path()?.to_string_lossy().into_owned());
        entry.read_to_end(&mut all)?;
    }
    println!(
        "$ kubectl confab support-bundle chat   # {} files",
        files.len()
    );
    let root = format!("confab-{ns}-chat");
    for want in [
        "status.txt",
        "chatcluster.json",
        "pods.json",
        "events.json",
        "statefulsets.json",
    ] {
        assert!(
            entries.contains(&format!("{root}/{want}")),
            "no {want} in {entries:?}"
        );
    }
    let shard_log = format!("{root}/logs/chat-shard-0/");
    assert!(
        entries.iter().any(|e| e.starts_with(&shard_log)),
        "{entries:?}"
    );
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("RingCommitted"), "events are in the bundle");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in ["chat-control-token", "chat-signing-key"] {
        let secret = secrets.get(name).await?;
        for value in secret.data.unwrap_or_default().values() {
            let hex: String = value.0.iter().map(|b| format!("{b:02x}")).collect();
            let raw = String::from_utf8_lossy(&value.0).into_owned();
            assert!(
                !text.contains(&raw) && !text.contains(&hex),
                "{name} leaked into the bundle"
            );
        }
    }
    Ok(())
}
