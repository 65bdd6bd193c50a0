//! The autoscaler against the real control plane, with recorded load: the
//! recording control API answers every pod's `Status` with the rate and
//! connections the test sets (kwok's pods run no runtime). Load drives the
//! shards 2 → 3 through a two-phase ring change and the gateways 1 → 2;
//! idle drives both back. Each step is an event that says why, and status
//! reports the load and the autoscaler's reasoning.

use anyhow::{Context, Result};
use confab_api::cluster::ChatCluster;
use confab_operator::shell::control::Recording;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{available, cluster, ring_reaches, until, with_operator};

#[tokio::test]
async fn load_scales_shards_2_3_2_and_gateways_1_2_1_through_the_ring() -> Result<()> {
    with_operator("op-autoscale", autoscale).await
}

async fn autoscale(client: &Client, ns: &str, recording: &Recording) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0",
        "shards": { "count": 2, "autoscale": {
            "min": 2, "max": 3, "targetSendsPerSecond": 1000,
            "scaleUpStabilizationSeconds": 2, "scaleDownStabilizationSeconds": 4 } },
        "gateway": { "replicas": 1, "autoscale": {
            "min": 1, "max": 2, "targetConnections": 1000,
            "scaleUpStabilizationSeconds": 2, "scaleDownStabilizationSeconds": 4 } } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1], 2).await?;
    let load = until("status reports the load of both shards", || async {
        let load = api.get("chat").await?.status.unwrap_or_default().load;
        Ok(match load {
            Some(l) if l.shards.len() == 2 && l.gateways == 1 => Ok(l),
            l => Err(format!("{l:?}")),
        })
    })
    .await?;
    assert_eq!(load.sends_per_second, 0, "idle so far: {load:?}");
    let status = api.get("chat").await?.status.unwrap();
    let shards = status
        .autoscale
        .unwrap()
        .shards
        .context("no shard autoscale status")?;
    assert_eq!((shards.recommended, shards.last_scale_time), (2, None));

    // 1500 sends/s on each of 2 shards (3000 against 1000 per shard, capped
    // at 3); 1500 connections on one gateway (target 1000, max 2).
    recording.set_sends_per_shard(1500.0);
    recording.set_connections_per_gateway(1500);
    ring_reaches(&api, &sts, 2, &[0, 1, 2], 3).await?;
    gateways_reach(client, ns, 2).await?;
    let status = api.get("chat").await?.status.unwrap();
    let reason = status.autoscale.as_ref().and_then(|a| a.shards.clone());
    let reason = reason.and_then(|s| s.last_scale_reason).unwrap_or_default();
    assert!(
        reason.starts_with("2 → 3: ") && reason.contains("sends/s at a target of 1000 per shard"),
        "{reason}"
    );
    assert_eq!(api.get("chat").await?.spec.gateway.replicas, 2);

    // Idle: back to the minimum, the shard drained out of the ring first.
    recording.set_sends_per_shard(0.0);
    recording.set_connections_per_gateway(0);
    ring_reaches(&api, &sts, 3, &[0, 1], 2).await?;
    gateways_reach(client, ns, 1).await?;
    let drained: Vec<u32> = recording
        .calls()
        .iter()
        .filter(|c| c.rpc == "Drain")
        .map(|c| c.shard)
        .collect();
    assert!(
        drained.contains(&2),
        "shard 2 drained before removal: {drained:?}"
    );

    let events = events(client, ns).await?;
    println!("autoscale events, in order:");
    for (reason, note) in &events {
        println!("  {reason}: {note}");
    }
    let order: Vec<&str> = events
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| {
            [
                "AutoscaledShards",
                "ScalingUp",
                "ScalingDown",
                "RingCommitted",
                "RemovingPods",
            ]
            .contains(r)
        })
        .collect();
    let up = order
        .iter()
        .position(|r| *r == "AutoscaledShards")
        .context("no step")?;
    assert_eq!(
        order[up..],
        [
            "AutoscaledShards",
            "ScalingUp",
            "RingCommitted",
            "AutoscaledShards",
            "ScalingDown",
            "RingCommitted",
            "RemovingPods"
        ],
        "{events:#?}"
    );
    let gateway_steps: Vec<&String> = events
        .iter()
        .filter(|(r, _)| r == "AutoscaledGateways")
        .map(|(_, n)| n)
        .collect();
    assert!(
        gateway_steps.len() == 2
            && gateway_steps[0].starts_with("1 → 2: ")
            && gateway_steps[1].starts_with("2 → 1: 0 connections"),
        "{gateway_steps:?}"
    );
    Ok(())
}

/// Waits for the gateway Deployment to ask for `replicas`.
async fn gateways_reach(client: &Client, ns: &str, replicas: i32) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(&format!("{replicas} gateways"), || async {
        let d = deployments.get("chat-gateway").await?;
        let got = d.spec.replicas.unwrap_or(-1);
        Ok(if got == replicas {
            Ok(())
        } else {
            Err(format!("{got}"))
        })
    })
    .await
}

/// `(reason, note)` of the operator's events, oldest first.
async fn events(client: &Client, ns: &str) -> Result<Vec<(String, String)>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut list = api.list(&ListParams::default()).await?.items;
    list.retain(|e| e.reporting_controller.as_deref() == Some("confab-operator"));
    list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    Ok(list
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}
