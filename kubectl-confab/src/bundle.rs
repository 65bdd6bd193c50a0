//! `kubectl confab support-bundle`: what a maintainer needs to see a
//! cluster's state, in one `.tar.gz` — the ChatCluster, its pods,
//! workloads, Services, ConfigMaps and events as JSON, the status report,
//! and the last log lines of every pod of the cluster and of the operator.
//! Secrets are never read: the bundle names them only where the spec does.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CLUSTER_LABEL, Error, snapshot, status};

/// Log lines kept per container.
const LOG_LINES: i64 = 2000;

/// The label of the operator's pods (the chart's).
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=confab-operator";

/// Writes the bundle of ChatCluster `name` to `out`; answers the entries.
pub async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    out: &Path,
) -> Result<Vec<String>, Error> {
    let snap = snapshot(client, namespace, name).await?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    files.push(("status.txt".into(), status::render(&snap).into_bytes()));
    files.push(json("chatcluster.json", &snap.cluster));
    files.push(json("pods.json", &snap.pods));
    let selector = format!("{CLUSTER_LABEL}={name}");
    files.push(json(
        "statefulsets.json",
        &list::<StatefulSet>(client, namespace, &selector).await?,
    ));
    files.push(json(
        "deployments.json",
        &list::<Deployment>(client, namespace, &selector).await?,
    ));
    files.push(json(
        "services.json",
        &list::<Service>(client, namespace, &selector).await?,
    ));
    files.push(json(
        "configmaps.json",
        &list::<ConfigMap>(client, namespace, &selector).await?,
    ));
    files.push(json("events.json", &snap.events));
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for pod in &snap.pods {
        files.extend(logs(&pods, pod, "logs").await);
    }
    let operators: Api<Pod> = Api::all(client.clone());
    let operator_pods = match operators
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            files.push((
                "operator/error.txt".into(),
                format!("listing the operator's pods: {e}\n").into_bytes(),
            ));
            Vec::new()
        }
    };
    for pod in &operator_pods {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        files.extend(logs(&api, pod, "operator").await);
    }
    let file = std::fs::File::create(out)?;
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let root = format!("confab-{namespace}-{name}");
    for (path, bytes) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, format!("{root}/{path}"), bytes.as_slice())?;
    }
    archive.into_inner()?.finish()?.flush()?;
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn json<T: Serialize>(path: &str, value: &T) -> (String, Vec<u8>) {
    let text = serde_json::to_vec_pretty(value).unwrap_or_else(|e| e.to_string().into_bytes());
    (path.into(), text)
}

async fn list<K>(client: &Client, namespace: &str, selector: &str) -> Result<Vec<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// The last lines of each container of `pod` under `dir/`; a log that
/// cannot be read (no kubelet, a pod not started) becomes a note of why.
async fn logs(api: &Api<Pod>, pod: &Pod, dir: &str) -> Vec<(String, Vec<u8>)> {
    let name = pod.name_any();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for c in containers {
        let params = LogParams {
            container: Some(c.name.clone()),
            tail_lines: Some(LOG_LINES),
            ..LogParams::default()
        };
        let entry = match api.logs(&name, &params).await {
            Ok(text) => (format!("{dir}/{name}/{}.log", c.name), text.into_bytes()),
            Err(e) => (
                format!("{dir}/{name}/{}.error.txt", c.name),
                format!("the log could not be read: {e}\n").into_bytes(),
            ),
        };
        out.push(entry);
    }
    out
}
