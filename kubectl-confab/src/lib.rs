//! `kubectl confab`: a ChatCluster's state and the operator's one-off
//! requests from the command line.
//!
//! Everything goes through the Kubernetes API, as `kubectl` itself does: the
//! plugin reads the ChatCluster (whose status the operator keeps, including
//! what each runtime pod last reported through the control API), its pods
//! and events, and asks for drains and failovers by annotating the
//! ChatCluster — the operator carries them out and answers with an event.
//! It needs no network path to the pods.
//!
//! - [`status`]: the ring, shards, gateways, load and autoscaler, rendered;
//! - [`ring`]: which shard a chat is placed on;
//! - [`request`]: drain a gateway or shard, fail a shard over;
//! - [`bundle`]: a support bundle (`.tar.gz`) without any Secret.

pub mod bundle;
pub mod request;
pub mod ring;
pub mod status;

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ChatCluster {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error("writing the bundle: {0}")]
    Io(#[from] std::io::Error),
}

/// A ChatCluster and its runtime pods, as read now.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub cluster: ChatCluster,
    /// Every pod labelled with the cluster's name, sorted by name.
    pub pods: Vec<Pod>,
    /// Events about the ChatCluster and its children, oldest first.
    pub events: Vec<Event>,
}

/// When `event` last happened.
pub fn event_time(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    let series = event.series.as_ref().map(|s| s.last_observed_time.0);
    series
        .or(event.event_time.as_ref().map(|t| t.0))
        .or(event.deprecated_last_timestamp.as_ref().map(|t| t.0))
}

/// The label every pod of a ChatCluster carries.
pub const CLUSTER_LABEL: &str = "confab.dev/cluster";
/// The label naming a pod's role (`shard`, `gateway`, ...).
pub const ROLE_LABEL: &str = "app.kubernetes.io/component";

/// Reads ChatCluster `name` in `namespace` and its pods.
pub async fn snapshot(client: &Client, namespace: &str, name: &str) -> Result<Snapshot, Error> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), namespace);
    let cluster = api.get_opt(name).await?.ok_or_else(|| Error::NotFound {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{CLUSTER_LABEL}={name}");
    let mut pods = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let children = format!("{name}-");
    let mut events: Vec<Event> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            let regarding = e.regarding.as_ref().and_then(|r| r.name.as_deref());
            regarding.is_some_and(|r| r == name || r.starts_with(&children))
        })
        .collect();
    events.sort_by_key(event_time);
    Ok(Snapshot {
        cluster,
        pods,
        events,
    })
}
