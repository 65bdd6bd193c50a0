//! An operator that cannot reach the runtime's control API (what a
//! default-deny NetworkPolicy does) against the real control plane: the ring
//! change it cannot make is reported and retried, and everything else in the
//! spec still takes effect — more shard pods, a gateway change, and a scale
//! back that aborts the pending change.

use anyhow::Result;
use async_trait::async_trait;
use confab_api::cluster::{ChatCluster, RingPhase};
use confab_api::ring::Ring;
use confab_operator::core::autoscale::PodReport;
use confab_operator::shell::control::{ControlApi, ControlError, Target};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Operator, available, cleanup_namespace, client, cluster, delete_with_an_operator, install_crd,
    namespace, ring_reaches, until,
};

/// Fails every call as a refused connection does.
struct Unreachable;

fn refused(t: &Target, rpc: &str) -> ControlError {
    ControlError::Address(format!("{} ({rpc}: connection refused)", t.address))
}

#[async_trait]
impl ControlApi for Unreachable {
    async fn status(&self, t: &Target) -> Result<PodReport, ControlError> {
        Err(refused(t, "Status"))
    }
    async fn prepare_ring(&self, t: &Target, _: &Ring, _: u64) -> Result<u64, ControlError> {
        Err(refused(t, "PrepareRing"))
    }
    async fn commit_ring(&self, t: &Target, _: u64) -> Result<u64, ControlError> {
        Err(refused(t, "CommitRing"))
    }
    async fn abort_ring(&self, t: &Target, _: u64) -> Result<(), ControlError> {
        Err(refused(t, "AbortRing"))
    }
    async fn drain(&self, t: &Target, _: Duration) -> Result<u64, ControlError> {
        Err(refused(t, "Drain"))
    }
}

#[tokio::test]
async fn unreachable_control_api_never_wedges_the_operator() -> Result<()> {
    let client = client().await?;
    install_crd(&client).await?;
    let ns = namespace(&client, "op-stuck").await?;
    let operator = Operator::start(&client, &ns, Arc::new(Unreachable));
    let result = scenario(&client, &ns).await;
    operator.stop().await;
    delete_with_an_operator(&client, &ns).await;
    cleanup_namespace(&client, &ns).await;
    result
}

async fn scenario(client: &Client, ns: &str) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0", "shards": { "count": 2 } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    // The first ring needs no control call.
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1], 2).await?;

    // Scale up: the third pod comes, the ring cannot follow, status says why.
    set(&api, json!({ "shards": { "count": 3 } })).await?;
    let message = until("Progressing=False (RingStepFailed)", || async {
        let status = api.get("chat").await?.status.unwrap_or_default();
        let pending = status.ring.as_ref().and_then(|r| r.pending.clone());
        Ok(match status.condition("Progressing") {
            Some(c)
                if c.status == "False"
                    && c.reason == "RingStepFailed"
                    && pending.as_ref().is_some_and(|p| {
                        p.epoch == 2 && p.phase == RingPhase::Preparing && p.members == [0, 1, 2]
                    }) =>
            {
                Ok(c.message.clone())
            }
            c => Err(format!("{c:?}, pending {pending:?}")),
        })
    })
    .await?;
    assert!(message.contains("connection refused"), "{message}");
    replicas(&sts, "chat-shard", 3).await?;
    warned(client, ns, "RingStepFailed").await?;

    // Another change still applies, and status says it was seen.
    set(&api, json!({ "gateway": { "replicas": 2 } })).await?;
    until("gateway Deployment at 2 replicas", || async {
        let d = deployments.get("chat-gateway").await?;
        let replicas = d.spec.replicas;
        Ok(if replicas == Some(2) {
            Ok(())
        } else {
            Err(format!("{replicas:?}"))
        })
    })
    .await?;
    observed_current(&api).await?;

    // Scale back: the pending change is aborted although no shard answers.
    set(&api, json!({ "shards": { "count": 2 } })).await?;
    ring_reaches(&api, &sts, 1, &[0, 1], 2).await?;
    warned(client, ns, "AbortUndelivered").await?;
    observed_current(&api).await?;
    available(&api).await?;
    let status = api.get("chat").await?.status.unwrap_or_default();
    let stable = status.condition("RingStable").cloned();
    assert_eq!(stable.map(|c| c.status), Some("True".into()));
    assert_eq!(status.ring.map(|r| r.last_issued_epoch), Some(2));
    Ok(())
}

async fn set(api: &Api<ChatCluster>, spec: serde_json::Value) -> Result<()> {
    let patch = Patch::Merge(json!({ "spec": spec }));
    api.patch("chat", &PatchParams::default(), &patch).await?;
    Ok(())
}

async fn replicas(sts: &Api<StatefulSet>, name: &str, want: i32) -> Result<()> {
    until(&format!("{name} at {want} replicas"), || async {
        let got = sts.get(name).await?.spec.replicas;
        Ok(if got == Some(want) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        })
    })
    .await
}

/// Waits until status reports the object's current generation.
async fn observed_current(api: &Api<ChatCluster>) -> Result<()> {
    until("observedGeneration = generation", || async {
        let cc = api.get("chat").await?;
        let seen = cc.status.as_ref().and_then(|s| s.observed_generation);
        Ok(if seen == cc.metadata.generation {
            Ok(())
        } else {
            Err(format!("{seen:?} of {:?}", cc.metadata.generation))
        })
    })
    .await
}

/// Waits for a Warning event `reason` on the ChatCluster.
pub(crate) async fn warned(client: &Client, ns: &str, reason: &str) -> Result<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    until(&format!("a Warning {reason} event"), || async {
        let list = events.list(&ListParams::default()).await?;
        let found = list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ChatCluster")
        });
        Ok(found
            .and_then(|e| e.note)
            .ok_or_else(|| "none yet".to_string()))
    })
    .await
}
