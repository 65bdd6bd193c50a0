//! Reads what exists for one `ChatCluster` into the core's [`Observed`].
//!
//! Only reads; the one impurity it adds is drawing a fresh signing key or
//! control token when its Secret is missing (the core decides whether to
//! create it).

use std::net::IpAddr;

use confab_api::cluster::ChatCluster;
use confab_api::config::TOKEN_KEY;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use kube::Client;
use kube::api::{Api, ListParams};
use rand::RngCore;

use crate::core::config::signing_key_secret;
use crate::core::names::{CLUSTER_LABEL, Names, ROLE_LABEL, Role};
use crate::core::secret::{SIGNING_KEY_BYTES, TOKEN_BYTES, Token};
use crate::core::{GatewayPod, Observed, ShardPod, SigningKey};

/// Observes `cc`'s children in `names.namespace`.
pub async fn observe(
    client: &Client,
    cc: &ChatCluster,
    names: &Names,
) -> Result<Observed, kube::Error> {
    let ns = &names.namespace;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);

    let runtime_pods = pods
        .list(&ListParams::default().labels(&runtime_selector(names)))
        .await?;
    let shard_pods = runtime_pods
        .items
        .iter()
        .filter_map(|p| shard_pod(names, p))
        .collect();
    let gateway_pods = runtime_pods
        .items
        .iter()
        .filter_map(|p| gateway_pod(names, p))
        .collect();
    let shard_sts = sts.get_opt(&names.workload(Role::Shard)).await?;
    let signing_key = match secrets
        .get_metadata_opt(&signing_key_secret(cc, names))
        .await?
    {
        Some(_) => SigningKey::Present,
        None => {
            let mut fresh = vec![0u8; SIGNING_KEY_BYTES];
            rand::rng().fill_bytes(&mut fresh);
            SigningKey::Absent { fresh }
        }
    };
    let control_token = token(&secrets, &names.control_token_secret()).await?;
    let nats_token = match cc.spec.nats.managed {
        Some(_) => Some(token(&secrets, &names.nats_auth_secret()).await?),
        None => None,
    };
    let gateway_svc = services.get_opt(&names.workload(Role::Gateway)).await?;
    Ok(Observed {
        now: to_the_second(Timestamp::now()),
        signing_key,
        control_token,
        nats_token,
        shard_pods,
        gateway_pods,
        shard_replicas: shard_sts.as_ref().and_then(|s| s.spec.replicas),
        shard_revision: shard_sts
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.update_revision.clone()),
        gateways_ready: deploy_ready(&deploys, &names.workload(Role::Gateway)).await?,
        notifiers_ready: deploy_ready(&deploys, &names.workload(Role::Notifier)).await?,
        nats_ready: sts_ready(&sts, &names.workload(Role::Nats)).await?,
        scylla_ready: sts_ready(&sts, &names.workload(Role::Scylla)).await?,
        gateway_ingress: gateway_svc.as_ref().and_then(ingress),
    })
}

/// The token in Secret `name` (read by name, never listed), or a fresh one
/// to create it with.
pub async fn token(secrets: &Api<Secret>, name: &str) -> Result<Token, kube::Error> {
    let stored = secrets
        .get_opt(name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(TOKEN_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|t| !t.is_empty());
    Ok(match stored {
        Some(token) => Token::Stored(token),
        None => {
            let mut fresh = [0u8; TOKEN_BYTES];
            rand::rng().fill_bytes(&mut fresh);
            Token::Fresh(hex::encode(fresh))
        }
    })
}

/// `t` truncated to whole seconds: the API stores times (`metav1.Time`) at
/// that precision, so a status computed from it reads back equal to what was
/// written, and the next comparison does not see a change that is not there.
fn to_the_second(t: Timestamp) -> Timestamp {
    let round = TimestampRound::new()
        .smallest(Unit::Second)
        .mode(RoundMode::Trunc);
    t.round(round).unwrap_or(t)
}

async fn deploy_ready(api: &Api<Deployment>, name: &str) -> Result<i32, kube::Error> {
    let d = api.get_opt(name).await?;
    Ok(d.and_then(|d| d.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0))
}

async fn sts_ready(api: &Api<StatefulSet>, name: &str) -> Result<i32, kube::Error> {
    let s = api.get_opt(name).await?;
    Ok(s.and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0))
}

/// The cluster's shard and gateway pods, in one list call.
fn runtime_selector(names: &Names) -> String {
    format!(
        "{CLUSTER_LABEL}={},{ROLE_LABEL} in ({},{})",
        names.cluster,
        Role::Shard.as_str(),
        Role::Gateway.as_str()
    )
}

/// Whether `pod`'s Ready condition is True and it is not terminating.
fn ready(pod: &Pod) -> bool {
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    pod.metadata.deletion_timestamp.is_none() && condition.is_some_and(|c| c.status == "True")
}

fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
}

/// A gateway pod of the cluster, by its role label.
pub fn gateway_pod(names: &Names, pod: &Pod) -> Option<GatewayPod> {
    let labels = pod.metadata.labels.as_ref()?;
    let gateway = names
        .selector(Role::Gateway)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    gateway.then(|| GatewayPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ready: ready(pod),
        ip: pod_ip(pod),
    })
}

/// A shard pod's ordinal, readiness and the time its readiness last changed.
pub fn shard_pod(names: &Names, pod: &Pod) -> Option<ShardPod> {
    let name = pod.metadata.name.as_deref()?;
    let prefix = format!("{}-", names.workload(Role::Shard));
    let ordinal = name.strip_prefix(&prefix)?.parse().ok()?;
    let ready_condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let since = ready_condition
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| pod.metadata.creation_timestamp.clone())
        .map(|t| t.0);
    let revision = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash").cloned());
    Some(ShardPod {
        ordinal,
        ready: ready(pod),
        since,
        ip: pod_ip(pod),
        revision,
    })
}

fn ingress(svc: &Service) -> Option<String> {
    let first = svc
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .clone();
    first.hostname.or(first.ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> Names {
        let mut cc = ChatCluster::new(
            "chat",
            serde_json::from_value(json!({"image": "x"})).unwrap(),
        );
        cc.metadata.namespace = Some("prod".into());
        cc.metadata.uid = Some("u".into());
        Names::new(&cc)
    }

    #[test]
    fn now_is_truncated_to_the_precision_the_api_stores() {
        let t: Timestamp = "2026-11-28T12:00:00.999999Z".parse().unwrap();
        assert_eq!(to_the_second(t), "2026-11-28T12:00:00Z".parse().unwrap());
    }

    #[test]
    fn reads_ordinal_readiness_and_transition_time() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "chat-shard-3", "creationTimestamp": "2026-01-01T00:00:00Z" },
            "status": { "conditions": [
                { "type": "Ready", "status": "False", "lastTransitionTime": "2026-01-02T00:00:00Z" }
            ]}
        }))
        .unwrap();
        let p = shard_pod(&names(), &pod).unwrap();
        assert_eq!((p.ordinal, p.ready), (3, false));
        assert_eq!(p.since, Some("2026-01-02T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn unscheduled_pod_counts_from_creation_and_strangers_are_ignored() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "chat-shard-0", "creationTimestamp": "2026-01-01T00:00:00Z" }
        }))
        .unwrap();
        let p = shard_pod(&names(), &pod).unwrap();
        assert_eq!(
            (p.ready, p.since),
            (false, Some("2026-01-01T00:00:00Z".parse().unwrap()))
        );
        let other: Pod =
            serde_json::from_value(json!({ "metadata": { "name": "chat-shardx-0" } })).unwrap();
        assert!(shard_pod(&names(), &other).is_none());
    }
}
