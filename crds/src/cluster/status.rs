//! What the operator reports about a `ChatCluster`: conditions, counts, the
//! ring (committed and in flight) and the endpoints clients use.
//!
//! The ring section doubles as the scaling plan's durable memory: the
//! operator records a ring change here *before* it asks the runtime to act,
//! so a restarted operator resumes exactly where the last one stopped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types, in the order they are reported.
pub const CONDITION_TYPES: [&str; 4] = ["Available", "Progressing", "Degraded", "RingStable"];

/// Observed state of a `ChatCluster`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::admission::known_formats)]
pub struct ChatClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Coarse lifecycle phase, for humans; conditions carry the detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Available`, `Progressing`, `Degraded` and `RingStable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Shard counts (also the scale subresource's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsStatus>,
    /// The committed ring and any ring change in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingStatus>,
    /// Gateway pods Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways_ready: Option<i32>,
    /// Where clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// The load the runtime pods last reported through the control API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadStatus>,
    /// What the autoscaler recommends and did last, per role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleStatus>,
}

impl ChatClusterStatus {
    /// The condition of `type_`, if reported.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Lifecycle phase.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Objects are being created; nothing serves yet.
    Provisioning,
    /// Every shard in the ring and every gateway is Ready.
    Running,
    /// The ring is changing (shards being added or removed).
    Scaling,
    /// Serving, but something is not Ready or has been failed over.
    Degraded,
    /// `spec.paused` is set.
    Paused,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Shard counts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardsStatus {
    /// `spec.shards.count`.
    pub desired: i32,
    /// Shard pods that exist (the StatefulSet's replicas).
    pub replicas: i32,
    /// Shards that are Ready and own chats in the committed ring.
    pub ready: i32,
    /// Label selector of the shard pods (for the scale subresource).
    pub selector: String,
}

/// The ring as the operator committed it, and any change in flight.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingStatus {
    /// Epoch of the committed ring; 0 before the first one.
    pub epoch: u64,
    /// Shard ordinals in the committed ring, ascending.
    #[serde(default)]
    pub members: Vec<u32>,
    /// Virtual nodes per shard of the committed ring.
    pub vnodes_per_shard: u32,
    /// A ring change recorded but not yet committed everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRing>,
    /// Highest epoch ever handed out (aborted changes use one up too), so an
    /// epoch never names two different rings.
    pub last_issued_epoch: u64,
    /// Fraction of chats the last committed change moved, e.g. `0.25`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_fraction: Option<String>,
    /// Shards taken out of the ring after staying NotReady for the failover
    /// delay; each returns once Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_over: Vec<u32>,
}

/// A ring change between "recorded" and "committed everywhere".
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRing {
    /// The epoch the new ring will have.
    pub epoch: u64,
    /// Shard ordinals of the new ring, ascending.
    pub members: Vec<u32>,
    /// How far the two-phase change has gone.
    pub phase: RingPhase,
}

/// Progress of a two-phase ring change.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RingPhase {
    /// Recorded; `PrepareRing` not yet acknowledged by every member. May be
    /// aborted.
    Preparing,
    /// Every member acknowledged `PrepareRing`: old owners stopped and flushed
    /// the chats that move. May still be aborted.
    Prepared,
    /// `CommitRing` sent to at least one member: the change must finish.
    Committing,
}

/// Where clients connect.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// WebSocket URL (protocol v1), e.g. `ws://chat-gateway.prod.svc:80/v1/ws`.
    pub websocket: String,
    /// REST base URL.
    pub rest: String,
    /// WebSocket URL from outside the cluster, once the load balancer has an
    /// address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_websocket: Option<String>,
}

/// The load the pods reported, between the last two reads of their status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    /// When the pods were read.
    pub observed_at: Time,
    /// Messages sequenced per second, all shards together.
    pub sends_per_second: i64,
    /// p99 of send→ack at the gateways over the interval, in milliseconds;
    /// absent when no send was acknowledged in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_send_millis: Option<i64>,
    /// Open client connections, all gateways together.
    pub connections: i64,
    /// Gateway pods that answered.
    pub gateways: i32,
    /// Each shard that answered.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["ordinal"]))]
    pub shards: Vec<ShardLoad>,
    /// Pods that did not answer, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
}

impl Default for LoadStatus {
    fn default() -> Self {
        Self {
            observed_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            sends_per_second: 0,
            p99_send_millis: None,
            connections: 0,
            gateways: 0,
            shards: Vec::new(),
            unreachable: Vec::new(),
        }
    }
}

/// One shard as it reported itself.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardLoad {
    /// The shard's ordinal.
    pub ordinal: u32,
    /// The ring epoch the shard has committed.
    pub ring_epoch: u64,
    /// Chats it has sequenced since it started or last changed ring.
    pub owned_chats: u64,
    /// Whether it holds its lease.
    pub lease_held: bool,
    /// Messages it sequenced per second.
    pub sends_per_second: i64,
}

/// The autoscaler's view, per role it scales.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscaleStatus {
    /// `spec.shards.autoscale` at work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ScaleStatus>,
    /// `spec.gateway.autoscale` at work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ScaleStatus>,
}

/// What the autoscaler recommends for one role, and its last step.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStatus {
    /// The count the last load reading calls for (within min and max).
    pub recommended: i32,
    /// Why the count is held where it is, when the recommendation differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<String>,
    /// When the autoscaler last changed the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Why it did, e.g. `2 → 3: 5100 sends/s is above 2 × 2000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_reason: Option<String>,
}
