//! Production pod hygiene of what the operator builds, as the real API
//! server takes it: every pod (the managed ScyllaDB and NATS included) is
//! admitted in a namespace that enforces the Pod Security `restricted`
//! profile, the disruption budgets exist and select their pods, and every
//! container has a startup probe and a memory limit.

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, Event, Namespace, Pod, PodTemplateSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::until;

/// Makes `ns` enforce the `restricted` profile, and proves the API server
/// enforces it by having a bare pod refused (a dry run).
pub(crate) async fn enforce_restricted(client: &Client, ns: &str) -> Result<()> {
    let labels = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest" } } });
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&labels))
        .await?;
    let bare: Pod = serde_json::from_value(json!({
        "metadata": { "name": "bare" },
        "spec": { "containers": [{ "name": "c", "image": "confab.invalid/x:0" }] } }))?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match Api::<Pod>::namespaced(client.clone(), ns)
        .create(&dry_run, &bare)
        .await
    {
        Err(kube::Error::Api(e)) if e.message.contains("violates PodSecurity") => Ok(()),
        other => bail!("PodSecurity is not enforced in {ns}: {other:?}"),
    }
}

/// Waits until StatefulSet `name` has created `replicas` pods; a refusal by
/// Pod Security shows as its FailedCreate events, which the failure quotes.
pub(crate) async fn pods_admitted(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<()> {
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let events = Api::<Event>::namespaced(client.clone(), ns);
    until(&format!("{name}'s {replicas} pods admitted"), || async {
        let set = sets.get_opt(name).await?;
        let created = set.and_then(|s| s.status).map_or(0, |s| s.replicas);
        if created >= replicas {
            return Ok(Ok(()));
        }
        let selector = format!("involvedObject.name={name},reason=FailedCreate");
        let refused: Vec<String> = events
            .list(&ListParams::default().fields(&selector))
            .await?
            .items
            .into_iter()
            .filter_map(|e| e.message)
            .collect();
        Ok(Err(format!(
            "{created} pods created; FailedCreate: {refused:?}"
        )))
    })
    .await
}

/// The pods of every workload were admitted under `restricted`, and run as
/// non-root (the managed ScyllaDB included).
pub(crate) async fn every_pod_admitted(client: &Client, ns: &str) -> Result<()> {
    for (name, replicas) in [("chat-scylla", 1), ("chat-nats", 3), ("chat-shard", 3)] {
        pods_admitted(client, ns, name, replicas).await?;
    }
    let scylla = Api::<Pod>::namespaced(client.clone(), ns)
        .get("chat-scylla-0")
        .await?;
    let sec = scylla.spec.unwrap().security_context.unwrap_or_default();
    assert_eq!(sec.run_as_non_root, Some(true), "{sec:?}");
    assert!(sec.run_as_user.is_some_and(|u| u != 0), "{sec:?}");
    Ok(())
}

/// The budgets of a cluster with 3 shards, 2 gateways and 3 NATS servers:
/// maxUnavailable 1 each, none for the single ScyllaDB node; the shard
/// budget selects the shard pods (the disruption controller counts them).
pub(crate) async fn budgets_exist(client: &Client, ns: &str) -> Result<()> {
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    for name in ["chat-shard", "chat-gateway", "chat-nats"] {
        let spec = pdbs.get(name).await?.spec.unwrap_or_default();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)), "{name}");
    }
    assert!(pdbs.get_opt("chat-scylla").await?.is_none());
    until(
        "the shard budget counts 3 pods, 1 disruption allowed",
        || async {
            let status = pdbs.get("chat-shard").await?.status.unwrap_or_default();
            Ok(match (status.expected_pods, status.disruptions_allowed) {
                (Some(3), Some(1)) => Ok(()),
                got => Err(format!("expected pods, disruptions allowed: {got:?}")),
            })
        },
    )
    .await
}

/// Every container of every workload has a startup probe, a liveness probe
/// and a memory limit.
pub(crate) async fn containers_probed_and_limited(client: &Client, ns: &str) -> Result<()> {
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let mut templates: Vec<(&str, PodTemplateSpec)> = Vec::new();
    for name in ["chat-shard", "chat-nats", "chat-scylla"] {
        templates.push((name, sets.get(name).await?.spec.template));
    }
    for name in ["chat-gateway", "chat-notifier"] {
        templates.push((name, deployments.get(name).await?.spec.template));
    }
    for (name, template) in templates {
        let containers: Vec<Container> = template.spec.unwrap_or_default().containers;
        assert!(!containers.is_empty(), "{name}");
        for c in containers {
            assert!(
                c.startup_probe.is_some(),
                "{name}/{}: no startup probe",
                c.name
            );
            assert!(
                c.liveness_probe.is_some(),
                "{name}/{}: no liveness probe",
                c.name
            );
            let limits = c.resources.unwrap_or_default().limits.unwrap_or_default();
            assert!(
                limits.contains_key("memory"),
                "{name}/{}: no memory limit",
                c.name
            );
        }
    }
    Ok(())
}
