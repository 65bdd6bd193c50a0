//! The `ChatCluster` custom resource (confab.dev/v1alpha1): what a platform
//! team declares, and what the operator reports back.
//!
//! Owns the schema — types, defaults, CEL validation rules, printer columns,
//! the scale subresource — and nothing else: no reconcile logic, no client.
//!
//! # Layout
//! - this file: the root type and [`ChatClusterSpec`], with the rules that
//!   span several fields;
//! - [`components`]: one spec type per part of the cluster (shards, gateway,
//!   NATS, ScyllaDB, media, push, auth, resources, scheduling);
//! - [`autoscale`]: the autoscaling bounds and targets of shards and
//!   gateways;
//! - [`status`]: what the operator observed and decided;
//! - [`requests`]: one-off requests by annotation (drain, forced failover);
//! - [`admission`]: the shared patterns, CEL rules and schema rewrites that
//!   make the API server refuse what the children would refuse later.
//!
//! Every CEL rule carries a message written for the person who ran
//! `kubectl apply`: what is wrong and what to do instead.

pub mod admission;
mod autoscale;
mod components;
pub mod requests;
mod status;

pub use autoscale::*;
pub use components::*;
pub use status::*;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Finalizer the operator puts on every `ChatCluster` it manages.
pub const FINALIZER: &str = "confab.dev/cleanup";

/// A Confab chat cluster: WebSocket gateways, per-chat sequencing shards on a
/// consistent-hash ring, a notifier, NATS, ScyllaDB and media buckets.
// Several printer columns share `type_ = "integer"`, which clippy mistakes
// for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "confab.dev",
    version = "v1alpha1",
    kind = "ChatCluster",
    namespaced,
    shortname = "cc",
    category = "confab",
    status = "ChatClusterStatus",
    derive = "PartialEq",
    doc = "A Confab chat cluster: gateways, sequencing shards, notifier, NATS, ScyllaDB and media buckets.",
    scale(
        spec_replicas_path = ".spec.shards.count",
        status_replicas_path = ".status.shards.ready",
        label_selector_path = ".status.shards.selector"
    ),
    printcolumn(
        name = "Shards",
        type_ = "integer",
        json_path = ".spec.shards.count",
        description = "Desired sequencing shards"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.shards.ready",
        description = "Shards Ready and in the ring"
    ),
    printcolumn(
        name = "Gateways",
        type_ = "integer",
        json_path = ".status.gatewaysReady",
        description = "Gateway pods Ready"
    ),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.ring.epoch",
        description = "Committed ring epoch"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = admission::name_length_rule(),
    validation = admission::name_syntax_rule()
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = admission::known_formats)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.nats.managed) || self.cache.replicas <= self.nats.managed.replicas",
        "message": "cache.replicas must not exceed nats.managed.replicas: a JetStream key-value bucket cannot keep more copies than there are NATS servers",
        "fieldPath": ".cache.replicas",
        "reason": "FieldValueInvalid"
    }
]))]
pub struct ChatClusterSpec {
    /// Container image of chat-runtime, e.g. `ghcr.io/acme/chat-runtime:1.4.0`.
    /// Every role (gateway, shard, notifier) runs this image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Sequencing shards and the consistent-hash ring that maps chats onto them.
    #[serde(default)]
    pub shards: ShardsSpec,
    /// WebSocket/REST edge: pods, the Service that is the cluster's endpoint,
    /// disruption budget and spreading.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Push notification workers.
    #[serde(default)]
    pub notifier: NotifierSpec,
    /// The presence/session cache (a NATS JetStream key-value bucket).
    #[serde(default)]
    pub cache: CacheSpec,
    /// The message bus: an existing NATS, or one the operator runs.
    #[serde(default)]
    pub nats: NatsSpec,
    /// The store: an existing ScyllaDB, or a single dev node the operator runs.
    #[serde(default)]
    pub scylla: ScyllaSpec,
    /// Object-storage buckets for media (photos, voice notes, documents).
    #[serde(default)]
    pub media: MediaSpec,
    /// Credentials of the push services (FCM, APNs), as Secret references.
    #[serde(default)]
    pub push: PushSpec,
    /// Token signing.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Compute resources per role; each defaults to modest requests.
    #[serde(default)]
    pub resources: ResourcesSpec,
    /// Node selection for every pod the operator creates.
    #[serde(default)]
    pub scheduling: SchedulingSpec,
    /// NetworkPolicies for the cluster's pods (on by default).
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// Stops reconciling: no object is changed and no scaling step is taken
    /// until this is false again. Status keeps being reported.
    #[serde(default)]
    pub paused: bool,
}

impl ChatCluster {
    /// The WebSocket URL clients connect to inside the cluster (the gateway
    /// Service's DNS name; `wss` when the gateways serve TLS themselves);
    /// status reports the external one when there is one.
    pub fn in_cluster_ws_url(&self, namespace: &str) -> String {
        let name = kube::ResourceExt::name_any(self);
        let scheme = if self.spec.gateway.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!(
            "{scheme}://{name}-gateway.{namespace}.svc:{}/v1/ws",
            self.spec.gateway.service.port
        )
    }
}

#[cfg(test)]
mod tests;
