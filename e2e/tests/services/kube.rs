//! Smoke tests for the Kubernetes control plane started by `e2e/scripts/kube.sh`
//! (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok,
//! which marks pods on its fake Node Running and Ready).
//!
//! They read the admin kubeconfig from `CONFAB_KUBECONFIG` and fail when it is
//! unset or the API server does not answer.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use confab_e2e::{install_crypto, service_env};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

/// How long pods may take to be scheduled and marked Running/Ready by kwok.
const POD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the namespace controller may take to delete a namespace.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);

/// A client for the test cluster, from the kubeconfig `kube.sh start` wrote.
async fn client() -> Result<Client> {
    install_crypto();
    let path = service_env("CONFAB_KUBECONFIG");
    let kubeconfig =
        Kubeconfig::read_from(&path).with_context(|| format!("reading kubeconfig {path}"))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("kubeconfig to client config")?;
    Ok(Client::try_from(config)?)
}

/// A suffix that keeps names of concurrent or repeated runs apart.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Polls `check` every 500 ms until it returns `Some`, or fails after `timeout`
/// with the last state `check` reported.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let state = match check().await? {
            Ok(v) => return Ok(v),
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} not reached after {timeout:?}; last state: {state}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn apiserver_answers_with_pinned_version_and_fake_node_is_ready() -> Result<()> {
    let client = client().await?;
    let version = client.apiserver_version().await.context("GET /version")?;
    assert_eq!(version.major, "1");
    assert_eq!(
        version.minor, "37",
        "kube-apiserver version {}",
        version.git_version
    );

    let node_name = service_env("CONFAB_KWOK_NODE");
    let node = Api::<Node>::all(client).get(&node_name).await?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(
        ready,
        "fake node {node_name} is not Ready: kwok does not manage it"
    );
    Ok(())
}

#[tokio::test]
async fn crd_establishes_and_statefulset_pods_become_running_and_ready() -> Result<()> {
    let client = client().await?;
    let id = unique();
    let ns = format!("smoke-kube-{id}");
    // A CRD of its own (CRDs are cluster-wide), shaped like ChatCluster.
    let group = format!("s{}.e2e.confab.dev", id.replace('-', ""));
    let crd_name = format!("smokeclusters.{group}");

    let result = crd_and_statefulset(&client, &ns, &group, &crd_name).await;

    // Clean up whatever happened; the namespace deletion also exercises the
    // namespace controller and kwok's pod deletion.
    let namespaces = Api::<Namespace>::all(client.clone());
    let cleanup = async {
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        let _ = crds.delete(&crd_name, &DeleteParams::default()).await;
        if let Ok(either) = namespaces.delete(&ns, &DeleteParams::default()).await
            && let Some(uid) = either.left().and_then(|n| n.metadata.uid)
        {
            tokio::time::timeout(
                DELETE_TIMEOUT,
                await_condition(namespaces.clone(), &ns, conditions::is_deleted(&uid)),
            )
            .await
            .context("namespace not deleted in time")??;
        }
        anyhow::Ok(())
    };
    let cleanup = cleanup.await;
    result?;
    cleanup
}

async fn crd_and_statefulset(client: &Client, ns: &str, group: &str, crd_name: &str) -> Result<()> {
    let namespaces = Api::<Namespace>::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": { "name": ns, "labels": { "confab.dev/test": "smoke-kube" } }
    }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;

    // CRD: create, wait until Established, then store one custom object.
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "names": { "kind": "SmokeCluster", "plural": "smokeclusters", "singular": "smokecluster" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
                    }
                }}
            }]
        }
    }))?;
    crds.create(&PostParams::default(), &crd).await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, crd_name, conditions::is_crd_established()),
    )
    .await
    .context("CRD not Established within 30 s")??;

    let gvk = GroupVersionKind::gvk(group, "v1alpha1", "SmokeCluster");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "smokeclusters");
    let objects = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
    let object = DynamicObject::new("one", &resource).data(json!({ "spec": { "shards": 2 } }));
    // Discovery may lag Established by a moment.
    poll("custom object created", Duration::from_secs(30), || async {
        Ok(
            match objects.create(&PostParams::default(), &object).await {
                Ok(o) => Ok(o),
                Err(e) => Err(e.to_string()),
            },
        )
    })
    .await?;
    let stored = objects.get("one").await?;
    assert_eq!(stored.data["spec"]["shards"], 2);

    // StatefulSet with two replicas: the controller manager creates the pods,
    // the scheduler places them on the fake node, kwok marks them Running/Ready.
    let labels = BTreeMap::from([("app".to_string(), "smoke".to_string())]);
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "smoke" },
        "spec": {
            "replicas": 2,
            "serviceName": "smoke",
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "nodeSelector": { "type": "kwok" },
                    "tolerations": [{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }],
                    "containers": [{ "name": "smoke", "image": "confab.invalid/never-pulled:0" }]
                }
            }
        }
    }))?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    statefulsets.create(&PostParams::default(), &sts).await?;

    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let ready = poll("2 pods Running and Ready", POD_TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=smoke"))
            .await?;
        let states: Vec<String> = list.items.iter().map(pod_state).collect();
        let ready = list
            .items
            .iter()
            .filter(|p| pod_state(p).ends_with("Running/ready"))
            .count();
        Ok(if ready == 2 {
            Ok(list.items)
        } else {
            Err(format!("{states:?}"))
        })
    })
    .await?;
    for pod in &ready {
        let spec = pod.spec.as_ref().context("pod without spec")?;
        assert_eq!(
            spec.node_name.as_deref(),
            Some(service_env("CONFAB_KWOK_NODE").as_str())
        );
    }

    poll(
        "StatefulSet status readyReplicas=2",
        Duration::from_secs(60),
        || async {
            let sts = statefulsets.get("smoke").await?;
            let ready = sts
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            Ok(if ready == 2 {
                Ok(())
            } else {
                Err(format!("readyReplicas={ready}"))
            })
        },
    )
    .await?;
    Ok(())
}

/// `name: phase/ready` of a pod, for progress checks and failure messages.
fn pod_state(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "-".into());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    format!(
        "{name}: {phase}/{}",
        if ready { "ready" } else { "not-ready" }
    )
}
