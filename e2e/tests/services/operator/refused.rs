//! Specs the API server admits but a child of theirs does not (admission
//! cannot check a label key inside a map, for one), against the real control
//! plane: the refusal is a Warning event and a condition naming the object
//! and the field, the rest of the spec still applies, and fixing the spec
//! clears it.

use anyhow::Result;
use confab_api::cluster::{ChatCluster, Phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::stuck::warned;
use super::{available, cluster, until, with_operator};

#[tokio::test]
async fn refused_children_surface_in_events_and_status_until_the_spec_is_fixed() -> Result<()> {
    with_operator("op-refused", async |client, ns, _| {
        scenario(client, ns).await
    })
    .await
}

async fn scenario(client: &Client, ns: &str) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let cc = cluster("chat", json!({ "image": "confab.invalid/chat-runtime:0" }))?;
    api.create(&PostParams::default(), &cc).await?;
    available(&api).await?;

    // The gateway Service refuses the annotation key; the gateway
    // Deployment still takes the new replica count.
    set(
        &api,
        json!({ "gateway": { "replicas": 2,
                "service": { "annotations": { "not a valid key!": "x" } } } }),
    )
    .await?;
    let message = degraded(&api, "ApplyRefused").await?;
    assert!(
        message.contains("Service chat-gateway") && message.contains("metadata.annotations"),
        "{message}"
    );
    let note = warned(client, ns, "ApplyRefused").await?;
    assert!(note.starts_with("Service chat-gateway: "), "{note}");
    assert!(note.contains("not a valid key!"), "{note}");
    let replicas = deployments.get("chat-gateway").await?.spec.replicas;
    assert_eq!(replicas, Some(2), "the rest of the spec applies");
    let status = api.get("chat").await?.status.unwrap_or_default();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let progressing = status.condition("Progressing").cloned();
    assert_eq!(
        progressing.map(|c| (c.status, c.reason)),
        Some(("False".into(), "ApplyRefused".into()))
    );

    // A node selector no pod template may carry: every workload refuses it.
    set(
        &api,
        json!({ "gateway": { "service": { "annotations": null } },
                "scheduling": { "nodeSelector": { "bad key/with/slashes": "x" } } }),
    )
    .await?;
    let message = until("the StatefulSets' refusal in Degraded", || async {
        let status = api.get("chat").await?.status.unwrap_or_default();
        let c = status.condition("Degraded").cloned();
        Ok(match c {
            Some(c)
                if c.reason == "ApplyRefused" && c.message.contains("StatefulSet chat-shard") =>
            {
                Ok(c.message)
            }
            c => Err(format!("{:?}", c.map(|c| (c.reason, c.message)))),
        })
    })
    .await?;
    assert!(message.contains("nodeSelector"), "{message}");
    assert!(
        !message.contains("Service chat-gateway"),
        "the fixed Service is no longer listed: {message}"
    );

    // Fixed: the condition clears.
    set(&api, json!({ "scheduling": { "nodeSelector": null } })).await?;
    until("Degraded=False", || async {
        let status = api.get("chat").await?.status.unwrap_or_default();
        Ok(match status.condition("Degraded") {
            Some(c) if c.status == "False" => Ok(()),
            c => Err(format!("{:?}", c.map(|c| (&c.reason, &c.message)))),
        })
    })
    .await?;
    available(&api).await
}

async fn set(api: &Api<ChatCluster>, spec: serde_json::Value) -> Result<()> {
    let patch = Patch::Merge(json!({ "spec": spec }));
    api.patch("chat", &PatchParams::default(), &patch).await?;
    Ok(())
}

/// Waits for `Degraded=True` with `reason`; answers its message.
async fn degraded(api: &Api<ChatCluster>, reason: &str) -> Result<String> {
    until(&format!("Degraded=True ({reason})"), || async {
        let status = api.get("chat").await?.status.unwrap_or_default();
        Ok(match status.condition("Degraded") {
            Some(c) if c.status == "True" && c.reason == reason => Ok(c.message.clone()),
            c => Err(format!("{:?}", c.map(|c| (&c.reason, &c.message)))),
        })
    })
    .await
}
