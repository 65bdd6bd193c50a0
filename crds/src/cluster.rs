//! The `ChatCluster` custom resource: what a platform team declares.
//!
//! Owns the schema (types, defaults, validation); holds no reconcile logic.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Confab chat cluster: gateways, sequencing shards, cache and media buckets.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "confab.dev",
    version = "v1alpha1",
    kind = "ChatCluster",
    namespaced,
    shortname = "cc",
    status = "ChatClusterStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterSpec {
    /// Container image of chat-runtime.
    pub image: String,
    /// Sequencing shards.
    #[serde(default)]
    pub shards: ShardsSpec,
}

/// How many sequencing shards run, and how finely the ring splits them.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardsSpec {
    /// Number of shard pods.
    #[serde(default = "default_shard_count")]
    pub count: u32,
    /// Virtual nodes per shard on the consistent-hash ring.
    #[serde(default = "default_vnodes")]
    pub vnodes_per_shard: u32,
}

impl Default for ShardsSpec {
    fn default() -> Self {
        Self {
            count: default_shard_count(),
            vnodes_per_shard: default_vnodes(),
        }
    }
}

fn default_shard_count() -> u32 {
    1
}

fn default_vnodes() -> u32 {
    64
}

/// Observed state of a `ChatCluster`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Coarse lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}
