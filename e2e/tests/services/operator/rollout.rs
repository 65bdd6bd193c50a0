//! A new image rolls the shards one at a time, by the operator: each is
//! drained, then its pod deleted and recreated from the new template; the
//! roll pauses while a shard is not Ready and says so, and no chat moves
//! (the ring stays at its epoch).

use anyhow::Result;
use confab_api::cluster::ChatCluster;
use confab_operator::shell::control::Recording;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::failover::set_ready;
use super::{available, cluster, ring_reaches, until, with_operator};

const NEW: &str = "confab.invalid/chat-runtime:1";

#[tokio::test]
async fn a_new_image_rolls_shards_one_at_a_time_drained_and_pauses_on_a_not_ready_one() -> Result<()>
{
    with_operator("op-rollout", rollout).await
}

async fn rollout(client: &Client, ns: &str, recording: &Recording) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0",
                "shards": { "count": 3, "failoverDelaySeconds": 600 } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1, 2], 3).await?;

    // Shard 0 is not Ready: the roll must wait for it and say so.
    set_ready(&pods, "chat-shard-0", false).await?;
    let image = json!({ "spec": { "image": NEW } });
    api.patch("chat", &PatchParams::default(), &Patch::Merge(&image))
        .await?;
    let paused = progressing(&api, |reason, message| {
        reason == "RollingOut" && message.contains("paused: waiting for shards [0] to be Ready")
    })
    .await?;
    assert!(paused.contains("0 of 3 done"), "{paused}");
    let drains = || {
        recording
            .calls()
            .into_iter()
            .filter(|c| c.rpc == "Drain")
            .map(|c| c.shard)
            .collect::<Vec<u32>>()
    };
    assert!(drains().is_empty(), "nothing restarted while paused");

    set_ready(&pods, "chat-shard-0", true).await?;
    until("every shard pod runs the new image", || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=shard"))
            .await?;
        let images: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap_or_default()
            })
            .collect();
        Ok(if images.len() == 3 && images.iter().all(|i| i == NEW) {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        })
    })
    .await?;
    progressing(&api, |reason, _| reason == "Stable").await?;
    assert_eq!(
        drains(),
        [2, 1, 0],
        "one at a time, highest first, each drained"
    );
    // Restarts move no chat: the ring is still the first one.
    ring_reaches(&api, &sts, 1, &[0, 1, 2], 3).await?;
    Ok(())
}

/// Waits for the Progressing condition to satisfy `want`; its message.
async fn progressing(api: &Api<ChatCluster>, want: impl Fn(&str, &str) -> bool) -> Result<String> {
    until("Progressing", || async {
        let status = api.get("chat").await?.status.unwrap_or_default();
        Ok(match status.condition("Progressing") {
            Some(c) if want(&c.reason, &c.message) => Ok(c.message.clone()),
            c => Err(format!("{:?}", c.map(|c| (&c.reason, &c.message)))),
        })
    })
    .await
}
