//! Test fixtures: a `ChatCluster` as the API would return it, and observed
//! states to feed the pure core.

use confab_api::cluster::{ChatCluster, ChatClusterSpec, ChatClusterStatus, RingStatus};
use k8s_openapi::jiff::Timestamp;

use super::secret::Token;
use super::{Observed, ShardPod, SigningKey};

/// `prod/chat`, image `chat-runtime:1`, defaults elsewhere, generation 1.
pub fn cluster() -> ChatCluster {
    let spec: ChatClusterSpec =
        serde_json::from_value(serde_json::json!({ "image": "chat-runtime:1" })).unwrap();
    let mut cc = ChatCluster::new("chat", spec);
    cc.metadata.namespace = Some("prod".into());
    cc.metadata.uid = Some("uid-1".into());
    cc.metadata.generation = Some(1);
    cc
}

/// [`cluster`] with `count` shards.
pub fn with_shards(count: i32) -> ChatCluster {
    let mut cc = cluster();
    cc.spec.shards.count = count;
    cc
}

/// A committed ring of `members` at `epoch`.
pub fn ring(epoch: u64, members: &[u32]) -> RingStatus {
    RingStatus {
        epoch,
        members: members.to_vec(),
        vnodes_per_shard: 64,
        last_issued_epoch: epoch,
        ..RingStatus::default()
    }
}

/// `cc` with `ring` in its status.
pub fn with_ring(mut cc: ChatCluster, ring: RingStatus) -> ChatCluster {
    cc.status
        .get_or_insert_with(ChatClusterStatus::default)
        .ring = Some(ring);
    cc
}

/// A fixed "now".
pub fn now() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

/// Shard pods `0..n`, all Ready since long ago.
pub fn ready_pods(n: u32) -> Vec<ShardPod> {
    (0..n)
        .map(|ordinal| ShardPod {
            ordinal,
            ready: true,
            since: Some("2026-11-28T11:00:00Z".parse().unwrap()),
            ip: Some(std::net::IpAddr::from([10, 0, 0, ordinal as u8 + 1])),
        })
        .collect()
}

/// Everything Ready: `shards` shard pods and StatefulSet replicas, one
/// gateway, the signing key present.
pub fn observed(shards: u32) -> Observed {
    Observed {
        now: now(),
        signing_key: SigningKey::Present,
        control_token: Token::Stored("token".into()),
        nats_token: Some(Token::Stored("nats-token".into())),
        shard_pods: ready_pods(shards),
        shard_replicas: Some(shards as i32),
        gateways_ready: 1,
        notifiers_ready: 1,
        nats_ready: 1,
        scylla_ready: 1,
        gateway_ingress: None,
    }
}
