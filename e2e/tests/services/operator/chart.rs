//! The chart's RBAC is enough: the operator, running as the ServiceAccount
//! the chart creates (through impersonation), takes the chart's example
//! ChatCluster to Available, records events, and deletes it through the
//! finalizer. A verb missing from the ClusterRole fails this test.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use anyhow::{Context, Result};
use confab_api::cluster::ChatCluster;
use confab_e2e::service_env;
use confab_operator::shell::control::Recording;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

use super::{
    Operator, available, cleanup_namespace, client, delete_with_an_operator, install_crd,
    namespace, ring_reaches, unique, until,
};
use crate::helm::{apply, chart, delete_cluster_scoped, documents, render};

/// A client that acts as `system:serviceaccount:<ns>:<name>`.
async fn impersonating(ns: &str, name: &str) -> Result<Client> {
    let path = service_env("CONFAB_KUBECONFIG");
    let kubeconfig = Kubeconfig::read_from(&path)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{name}"));
    Ok(Client::try_from(config)?)
}

/// The chart's example ChatCluster.
fn example() -> Result<ChatCluster> {
    let path = chart().join("examples/chatcluster.yaml");
    let yaml = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let doc = documents(&yaml)?.pop().context("an empty example")?;
    Ok(serde_json::from_value(serde_json::to_value(doc)?)?)
}

#[tokio::test]
async fn chart_rbac_lets_the_operator_run_and_delete_the_example_cluster() -> Result<()> {
    let admin = client().await?;
    install_crd(&admin).await?;
    let system = namespace(&admin, "chart-rbac").await?;
    let workload = namespace(&admin, "chart-example").await?;
    let objects = render(&unique("confab"), &system).await?;
    let result = AssertUnwindSafe(async {
        apply(&admin, &system, &objects).await?;
        let account = objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "ServiceAccount"))
            .map(|o| o.name_any())
            .context("no ServiceAccount rendered")?;
        let operator_client = impersonating(&system, &account).await?;
        run_example(&admin, &operator_client, &workload).await
    })
    .catch_unwind()
    .await;
    // On failure the example may still hold its finalizer.
    delete_with_an_operator(&admin, &workload).await;
    delete_cluster_scoped(&admin, &objects).await;
    for ns in [&workload, &system] {
        cleanup_namespace(&admin, ns).await;
    }
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn run_example(admin: &Client, operator_client: &Client, ns: &str) -> Result<()> {
    let operator = Operator::start(operator_client, ns, Arc::new(Recording::default()));
    let api: Api<ChatCluster> = Api::namespaced(admin.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    let cc = example()?;
    let params = PatchParams::apply("kubectl");
    let shards = cc.spec.shards.count;
    api.patch(&cc.name_any(), &params, &Patch::Apply(&cc))
        .await?;
    let done = async {
        available(&api).await?;
        let members: Vec<u32> = (0..shards as u32).collect();
        ring_reaches(&api, &sts, 1, &members, shards).await?;
        // Events are best effort in the operator (a refused one is only
        // logged), so their RBAC is checked here.
        let events: Api<Event> = Api::namespaced(admin.clone(), ns);
        let list = events.list(&ListParams::default()).await?;
        assert!(
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("RingBootstrapped")),
            "no RingBootstrapped event: the chart's RBAC may not allow events"
        );
        api.delete(&cc.name_any(), &DeleteParams::default()).await?;
        until(
            "example ChatCluster deleted through the finalizer",
            || async {
                Ok(match api.get_opt(&cc.name_any()).await? {
                    None => Ok(()),
                    Some(c) => Err(format!("finalizers {:?}", c.finalizers())),
                })
            },
        )
        .await
    }
    .await;
    operator.stop().await;
    done
}
