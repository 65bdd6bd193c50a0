//! Autoscaling of shards and gateways (`spec.shards.autoscale`,
//! `spec.gateway.autoscale`): bounds, targets and stabilization windows.
//!
//! The operator reads the runtime's own load through the control API's
//! `Status` (no Prometheus needed) and moves `spec.shards.count` or
//! `spec.gateway.replicas` one step at a time; shard steps go through the
//! two-phase ring change like any other. Without `autoscale`, the count is
//! whatever the spec (or an HPA/KEDA through the scale subresource) says.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scales the shard count by sends per second and send latency.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.min <= self.max", "message": "shards.autoscale.min must not exceed shards.autoscale.max", "fieldPath": ".min" }
]))]
pub struct ShardAutoscale {
    /// Fewest shards (1-256).
    #[schemars(range(min = 1, max = 256))]
    pub min: i32,
    /// Most shards (1-256).
    #[schemars(range(min = 1, max = 256))]
    pub max: i32,
    /// Messages sequenced per second per shard to aim for: the cluster wants
    /// `ceil(sends/s ÷ target)` shards.
    #[serde(default = "default_sends_target")]
    #[schemars(range(min = 1))]
    pub target_sends_per_second: i32,
    /// p99 of send→ack at the gateways, in milliseconds; above it the
    /// cluster wants one shard more than it has. Unset: latency is not a
    /// reason to scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_p99_millis: Option<i32>,
    /// Seconds the load must have called for more shards before one is
    /// added (every recommendation in the window above the count).
    #[serde(default = "default_up_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_up_stabilization_seconds: i32,
    /// Seconds the load must have called for fewer shards before one is
    /// removed (every recommendation in the window below the count).
    #[serde(default = "default_down_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
}

/// Scales the gateway pods by open connections.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.min <= self.max", "message": "gateway.autoscale.min must not exceed gateway.autoscale.max", "fieldPath": ".min" }
]))]
pub struct GatewayAutoscale {
    /// Fewest gateway pods (1-1000).
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,
    /// Most gateway pods (1-1000).
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    /// Open connections per gateway pod to aim for: the cluster wants
    /// `ceil(connections ÷ target)` gateways. Below `gateway.maxConnections`
    /// (well below: room for a drained gateway's clients).
    #[serde(default = "default_connections_target")]
    #[schemars(range(min = 1))]
    pub target_connections: i32,
    /// Seconds the load must have called for more gateways before one is
    /// added.
    #[serde(default = "default_up_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_up_stabilization_seconds: i32,
    /// Seconds the load must have called for fewer gateways before one is
    /// removed (its clients reconnect to the others and resume).
    #[serde(default = "default_down_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
}

fn default_sends_target() -> i32 {
    2000
}
fn default_connections_target() -> i32 {
    12_000
}
fn default_up_window() -> i32 {
    60
}
fn default_down_window() -> i32 {
    300
}
