//! Test fixtures: a `ChatCluster` as the API would return it, observed
//! states to feed the pure core, and the Pod Security `restricted` check
//! every pod template must pass.

use confab_api::cluster::{ChatCluster, ChatClusterSpec, ChatClusterStatus, RingStatus};
use k8s_openapi::api::core::v1::PodSpec;
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
            revision: None,
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
        gateway_pods: Vec::new(),
        shard_replicas: Some(shards as i32),
        shard_revision: None,
        gateways_ready: 1,
        notifiers_ready: 1,
        nats_ready: 1,
        scylla_ready: 1,
        gateway_ingress: None,
    }
}

/// What keeps `pod` out of a namespace that enforces the Pod Security
/// `restricted` profile (the checks of the Kubernetes Pod Security
/// Standards, baseline included, that a builder could get wrong); empty when
/// it would be admitted.
pub fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    let pod_sec = pod.security_context.clone().unwrap_or_default();
    for (what, on) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if on == Some(true) {
            out.push(what.to_string());
        }
    }
    let allowed = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for v in pod.volumes.iter().flatten() {
        let json = serde_json::to_value(v).unwrap();
        let kinds = json.as_object().unwrap().keys().filter(|k| *k != "name");
        for kind in kinds.filter(|k| !allowed.contains(&k.as_str())) {
            out.push(format!("volume {} is {kind}", v.name));
        }
    }
    if pod_sec.run_as_user == Some(0) {
        out.push("pod runAsUser 0".into());
    }
    let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
    for c in containers {
        let sec = c.security_context.clone().unwrap_or_default();
        let name = &c.name;
        if sec.privileged == Some(true) {
            out.push(format!("{name}: privileged"));
        }
        if sec.allow_privilege_escalation != Some(false) {
            out.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if sec.run_as_non_root.or(pod_sec.run_as_non_root) != Some(true) {
            out.push(format!("{name}: runAsNonRoot is not true"));
        }
        if sec.run_as_user == Some(0) {
            out.push(format!("{name}: runAsUser 0"));
        }
        let seccomp = sec.seccomp_profile.or(pod_sec.seccomp_profile.clone());
        if !matches!(
            seccomp.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault" | "Localhost")
        ) {
            out.push(format!(
                "{name}: seccompProfile is not RuntimeDefault or Localhost"
            ));
        }
        let caps = sec.capabilities.unwrap_or_default();
        if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
            out.push(format!("{name}: capabilities do not drop ALL"));
        }
        for add in caps.add.unwrap_or_default() {
            if add != "NET_BIND_SERVICE" {
                out.push(format!("{name}: adds capability {add}"));
            }
        }
        for p in c.ports.iter().flatten() {
            if p.host_port.is_some_and(|h| h != 0) {
                out.push(format!("{name}: hostPort {:?}", p.host_port));
            }
        }
    }
    out
}
