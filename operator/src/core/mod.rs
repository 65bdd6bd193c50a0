//! The pure core: from a `ChatCluster` and what was observed, the objects
//! that should exist, the next scaling step and the status to report.
//!
//! Nothing here talks to the API server or the runtime, reads a clock or
//! draws randomness: the shell passes all of that in through [`Observed`].
//! One builder per object kind, each with its tests beside it:
//! [`config`] (runtime ConfigMap), [`secret`] (signing key), [`shard`]
//! (StatefulSet + headless Service), [`gateway`] (Deployment, Service),
//! [`notifier`] (Deployment, ServiceAccount), [`nats`] and [`scylla`] (managed
//! backing services), [`disruption`] (the PodDisruptionBudgets); [`pod`]
//! holds what their pods share, [`resources`] their requests and limits,
//! [`names`] what they are called, [`plan`] the scaling state machine and
//! [`status`] the conditions.

pub mod autoscale;
pub mod config;
pub mod disruption;
pub mod gateway;
pub mod names;
pub mod nats;
pub mod netpol;
pub mod notifier;
pub mod plan;
pub mod pod;
pub mod resources;
pub mod roll;
pub mod scylla;
pub mod secret;
pub mod shard;
pub mod status;

#[cfg(test)]
pub mod fixtures;

use confab_api::cluster::{ChatCluster, ChatClusterStatus, RingStatus};
use confab_api::ring::{Ring, ShardId};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use names::{Names, Role};
pub use plan::{Plan, ShardPod, Step};
use secret::Token;
use status::Faults;

/// Whether the signing-key Secret exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningKey {
    Present,
    /// Absent; `fresh` is a newly drawn key to create it with.
    Absent {
        fresh: Vec<u8>,
    },
}

/// What the shell observed for one `ChatCluster`.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The time of this reconcile.
    pub now: Timestamp,
    /// The signing-key Secret.
    pub signing_key: SigningKey,
    /// The control API's token.
    pub control_token: Token,
    /// The managed NATS's client token (`None` with an external NATS).
    pub nats_token: Option<Token>,
    /// Shard pods that exist.
    pub shard_pods: Vec<ShardPod>,
    /// Gateway pods that exist.
    pub gateway_pods: Vec<GatewayPod>,
    /// The shard StatefulSet's replicas, if it exists.
    pub shard_replicas: Option<i32>,
    /// The shard StatefulSet's update revision (its current pod template).
    pub shard_revision: Option<String>,
    /// Ready pods per workload.
    pub gateways_ready: i32,
    pub notifiers_ready: i32,
    pub nats_ready: i32,
    pub scylla_ready: i32,
    /// The gateway Service's load-balancer hostname or IP, once it has one.
    pub gateway_ingress: Option<String>,
}

impl Observed {
    /// The shard roll's next move under `plan`.
    pub fn roll(&self, plan: &Plan) -> roll::Roll {
        roll::next(
            &plan.step,
            &self.shard_pods,
            self.shard_revision.as_deref(),
            self.shard_replicas,
        )
    }

    /// Counts `shards` as NotReady since long before any failover delay:
    /// what a forced failover asks for. The plan then takes them out of the
    /// ring without sending them any step, as for a shard that failed.
    pub fn fence(&mut self, shards: &[u32]) {
        for pod in &mut self.shard_pods {
            if shards.contains(&pod.ordinal) {
                pod.ready = false;
                pod.since = Some(Timestamp::UNIX_EPOCH);
            }
        }
    }
}

/// One gateway pod as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPod {
    pub name: String,
    /// Its Ready condition is True (and it is not terminating).
    pub ready: bool,
    /// Its pod IP, once it has one.
    pub ip: Option<std::net::IpAddr>,
}

/// A child object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    PodDisruptionBudget(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
}

impl Object {
    /// The object's kind and `metadata`.
    fn parts(&self) -> (&'static str, &ObjectMeta) {
        match self {
            Object::ServiceAccount(o) => ("ServiceAccount", &o.metadata),
            Object::ConfigMap(o) => ("ConfigMap", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
            Object::Service(o) => ("Service", &o.metadata),
            Object::StatefulSet(o) => ("StatefulSet", &o.metadata),
            Object::Deployment(o) => ("Deployment", &o.metadata),
            Object::PodDisruptionBudget(o) => ("PodDisruptionBudget", &o.metadata),
            Object::NetworkPolicy(o) => ("NetworkPolicy", &o.metadata),
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        self.parts().0
    }

    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.parts().1.name.as_deref().unwrap_or_default()
    }
}

/// Kinds of children that may have to be deleted when the spec no longer
/// calls for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Service,
    StatefulSet,
    PodDisruptionBudget,
    NetworkPolicy,
}

/// Everything one reconcile decides.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Children to apply, in dependency order.
    pub objects: Vec<Object>,
    /// Children that must not exist (deleted if present).
    pub absent: Vec<(Kind, String)>,
    /// The scaling plan.
    pub plan: Plan,
    /// `status.ring` with the step's intent recorded.
    pub ring: RingStatus,
    /// The status to report if the step succeeds as recorded.
    pub status: ChatClusterStatus,
}

/// The plan for `cc` given `observed`.
pub fn plan_for(cc: &ChatCluster, observed: &Observed) -> Plan {
    let ring = current_ring(cc);
    plan::plan(&plan::PlanInput {
        count: cc.spec.shards.count.max(1) as u32,
        vnodes_per_shard: cc.spec.shards.vnodes_per_shard,
        paused: cc.spec.paused,
        failover_delay: SignedDuration::from_secs(i64::from(cc.spec.shards.failover_delay_seconds)),
        ring: &ring,
        pods: &observed.shard_pods,
        replicas: observed.shard_replicas,
        now: observed.now,
    })
}

/// `status.ring`, or the empty ring before the first reconcile.
pub fn current_ring(cc: &ChatCluster) -> RingStatus {
    cc.status
        .as_ref()
        .and_then(|s| s.ring.clone())
        .unwrap_or_default()
}

/// What should exist for `cc`, what to do next, and what to report.
pub fn desired(cc: &ChatCluster, observed: &Observed) -> Desired {
    let names = Names::new(cc);
    let plan = plan_for(cc, observed);
    let ring = plan
        .step
        .record(&current_ring(cc), cc.spec.shards.vnodes_per_shard);
    let (objects, absent) = objects(cc, &names, observed, &plan, &ring);
    let complete = plan.step.complete(&ring);
    let status = status::build(cc, &names, observed, &plan, &complete, &Faults::default());
    Desired {
        objects,
        absent,
        plan,
        ring,
        status,
    }
}

/// The committed ring of `ring` as a [`Ring`], if there is one yet.
pub fn committed_ring(ring: &RingStatus) -> Option<Ring> {
    let shards: Vec<ShardId> = ring.members.iter().map(|s| ShardId(*s)).collect();
    (ring.epoch > 0)
        .then(|| Ring::new(ring.epoch, &shards, ring.vnodes_per_shard).ok())
        .flatten()
}

/// The PodDisruptionBudget of `role`, or its absence.
fn budget(
    cc: &ChatCluster,
    names: &Names,
    role: Role,
    objects: &mut Vec<Object>,
    absent: &mut Vec<(Kind, String)>,
) {
    match disruption::build_pdb(cc, names, role) {
        Some(pdb) => objects.push(Object::PodDisruptionBudget(pdb)),
        None => absent.push((Kind::PodDisruptionBudget, names.workload(role))),
    }
}

/// The managed NATS and ScyllaDB, or their absence when external. ScyllaDB
/// never has a budget (see [`disruption`]), so none is ever deleted.
fn backing_services(
    cc: &ChatCluster,
    names: &Names,
    objects: &mut Vec<Object>,
    absent: &mut Vec<(Kind, String)>,
) {
    let nats = (
        nats::build_nats_service(cc, names),
        nats::build_nats_statefulset(cc, names),
    );
    let scylla = (
        scylla::build_scylla_service(cc, names),
        scylla::build_scylla_statefulset(cc, names),
    );
    for (role, built) in [(Role::Nats, nats), (Role::Scylla, scylla)] {
        match built {
            (Some(svc), Some(sts)) => {
                objects.extend([Object::Service(svc), Object::StatefulSet(sts)])
            }
            _ => absent.extend([
                (Kind::StatefulSet, names.workload(role)),
                (Kind::Service, names.workload(role)),
            ]),
        }
    }
    budget(cc, names, Role::Nats, objects, absent);
}

fn objects(
    cc: &ChatCluster,
    names: &Names,
    observed: &Observed,
    plan: &Plan,
    ring: &RingStatus,
) -> (Vec<Object>, Vec<(Kind, String)>) {
    let mut objects = vec![Object::ServiceAccount(notifier::build_service_account(
        names,
    ))];
    let mut absent = Vec::new();
    if let SigningKey::Absent { fresh } = &observed.signing_key {
        objects.push(Object::Secret(secret::build_signing_key_secret(
            cc, names, fresh,
        )));
    }
    if let Token::Fresh(token) = &observed.control_token {
        let name = names.control_token_secret();
        let what = "control API token (delete to rotate)";
        objects.push(Object::Secret(secret::build_token_secret(
            names, name, what, token,
        )));
    }
    if let Some(Token::Fresh(token)) = &observed.nats_token {
        let name = names.nats_auth_secret();
        let what = "managed NATS client token";
        objects.push(Object::Secret(secret::build_token_secret(
            names, name, what, token,
        )));
    }
    backing_services(cc, names, &mut objects, &mut absent);
    // Shards need the ring in their ConfigMap before they start.
    if let Some(committed) = committed_ring(ring) {
        objects.push(Object::ConfigMap(config::build_config_map(
            cc, names, committed,
        )));
        objects.push(Object::Service(shard::build_shard_service(names)));
        objects.push(Object::StatefulSet(shard::build_shard_statefulset(
            cc,
            names,
            plan.replicas,
        )));
        budget(cc, names, Role::Shard, &mut objects, &mut absent);
    }
    objects.push(Object::Deployment(gateway::build_gateway_deployment(
        cc, names,
    )));
    objects.push(Object::Service(gateway::build_gateway_service(cc, names)));
    budget(cc, names, Role::Gateway, &mut objects, &mut absent);
    objects.push(Object::Deployment(notifier::build_notifier_deployment(
        cc, names,
    )));
    let (policies, unwanted) = netpol::build_network_policies(cc, names);
    objects.extend(policies.into_iter().map(Object::NetworkPolicy));
    absent.extend(unwanted.into_iter().map(|n| (Kind::NetworkPolicy, n)));
    (objects, absent)
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cluster, observed, ring, with_ring};
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn a_fenced_shard_fails_over_without_being_asked_and_the_others_are() {
        let mut cc = with_ring(cluster(), ring(1, &[0, 1, 2]));
        cc.spec.shards.count = 3;
        let mut obs = observed(3);
        obs.fence(&[1]);
        let plan = plan_for(&cc, &obs);
        assert_eq!(plan.failed, [1]);
        let Step::Prepare {
            members, change, ..
        } = &plan.step
        else {
            panic!("{:?}", plan.step);
        };
        assert_eq!(
            (members.as_slice(), *change),
            (&[0, 2][..], plan::Change::FailOver)
        );
        let ring = current_ring(&cc);
        assert_eq!(plan.step.targets(&ring, &obs.shard_pods), [0, 2]);
    }

    fn names_of(objects: &[Object]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", o.kind(), o.name()))
            .collect()
    }

    #[test]
    fn first_reconcile_bootstraps_the_ring_and_creates_everything() {
        let mut obs = observed(0);
        obs.shard_replicas = None;
        obs.signing_key = SigningKey::Absent { fresh: vec![9; 64] };
        let d = desired(&cluster(), &obs);
        assert_eq!(d.plan.step, Step::Bootstrap { members: vec![0] });
        assert_eq!((d.ring.epoch, d.ring.members.clone()), (1, vec![0]));
        assert_eq!(
            names_of(&d.objects),
            [
                "ServiceAccount/chat-runtime",
                "Secret/chat-signing-key",
                "Service/chat-nats",
                "StatefulSet/chat-nats",
                "Service/chat-scylla",
                "StatefulSet/chat-scylla",
                "ConfigMap/chat-config",
                "Service/chat-shard",
                "StatefulSet/chat-shard",
                "PodDisruptionBudget/chat-shard",
                "Deployment/chat-gateway",
                "Service/chat-gateway",
                "Deployment/chat-notifier",
                "NetworkPolicy/chat-runtime",
                "NetworkPolicy/chat-nats",
                "NetworkPolicy/chat-scylla",
            ]
        );
        // One NATS server and one gateway: no budget that would block drains.
        assert_eq!(
            d.absent,
            [
                (Kind::PodDisruptionBudget, "chat-nats".to_string()),
                (Kind::PodDisruptionBudget, "chat-gateway".to_string())
            ]
        );
        for o in &d.objects {
            let Object::Secret(s) = o else { continue };
            assert!(s.metadata.owner_references.is_some());
        }
    }

    #[test]
    fn existing_key_is_not_rebuilt_and_external_services_are_absent() {
        let mut cc = with_ring(cluster(), ring(1, &[0]));
        cc.spec.nats.managed = None;
        cc.spec.nats.external = Some(confab_api::cluster::ExternalNats {
            url: "nats://x".into(),
            credentials_secret: None,
            tls: None,
        });
        let d = desired(&cc, &observed(1));
        assert_eq!(d.plan.step, Step::Stable);
        let names = names_of(&d.objects);
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("Secret/") || n.contains("nats"))
        );
        assert!(d.absent.contains(&(Kind::StatefulSet, "chat-nats".into())));
        assert!(
            d.absent
                .contains(&(Kind::PodDisruptionBudget, "chat-nats".into()))
        );
    }

    #[test]
    fn budgets_follow_the_spec_and_are_deleted_when_it_drops_them() {
        let mut cc = with_ring(cluster(), ring(1, &[0]));
        cc.spec.gateway.replicas = 2;
        cc.spec.nats.managed = Some(confab_api::cluster::ManagedNats {
            replicas: 3,
            storage: None,
        });
        let budgets = |cc: &ChatCluster| {
            let d = desired(cc, &observed(1));
            let mut present: Vec<String> = names_of(&d.objects)
                .into_iter()
                .filter(|n| n.starts_with("PodDisruptionBudget/"))
                .collect();
            present.sort();
            let absent: Vec<(Kind, String)> = d
                .absent
                .into_iter()
                .filter(|(k, _)| *k == Kind::PodDisruptionBudget)
                .collect();
            (present, absent)
        };
        let (present, absent) = budgets(&cc);
        assert_eq!(
            present,
            [
                "PodDisruptionBudget/chat-gateway",
                "PodDisruptionBudget/chat-nats",
                "PodDisruptionBudget/chat-shard"
            ]
        );
        assert!(absent.is_empty(), "{absent:?}");
        cc.spec.gateway.replicas = 1;
        cc.spec.nats.managed = Some(Default::default());
        let (present, absent) = budgets(&cc);
        assert_eq!(present, ["PodDisruptionBudget/chat-shard"]);
        let gone: Vec<&str> = absent.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(gone, ["chat-nats", "chat-gateway"]);
    }

    /// Every pod template of `objects`, by workload name.
    fn pod_templates(objects: &[Object]) -> Vec<(String, k8s_openapi::api::core::v1::PodSpec)> {
        objects
            .iter()
            .filter_map(|o| match o {
                Object::StatefulSet(x) => Some((&x.metadata, &x.spec.template.spec)),
                Object::Deployment(x) => Some((&x.metadata, &x.spec.template.spec)),
                _ => None,
            })
            .filter_map(|(meta, pod)| Some((meta.name.clone()?, pod.clone()?)))
            .collect()
    }

    #[test]
    fn every_pod_passes_restricted_with_startup_probes_and_memory_limits() {
        let cc = with_ring(cluster(), ring(1, &[0]));
        let templates = pod_templates(&desired(&cc, &observed(1)).objects);
        let workloads: Vec<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            workloads,
            [
                "chat-nats",
                "chat-scylla",
                "chat-shard",
                "chat-gateway",
                "chat-notifier"
            ]
        );
        for (workload, pod) in &templates {
            let refused = super::fixtures::restricted_violations(pod);
            assert!(refused.is_empty(), "{workload}: {refused:?}");
            for c in &pod.containers {
                assert!(c.startup_probe.is_some(), "{workload}/{}", c.name);
                assert!(c.liveness_probe.is_some(), "{workload}/{}", c.name);
                let r = c.resources.clone().unwrap_or_default();
                let limits = r.limits.unwrap_or_default();
                let requests = r.requests.unwrap_or_default();
                assert!(limits.contains_key("memory"), "{workload}/{}", c.name);
                assert!(requests.contains_key("memory"), "{workload}/{}", c.name);
                assert!(requests.contains_key("cpu"), "{workload}/{}", c.name);
            }
        }
    }

    /// `(workload, config-hash annotation)` of every pod template that has one.
    fn hashed_templates(objects: &[Object]) -> Vec<(String, String)> {
        let template = |meta: &Option<ObjectMeta>| {
            meta.as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(config::CONFIG_HASH_ANNOTATION).cloned())
        };
        objects
            .iter()
            .filter_map(|o| match o {
                Object::StatefulSet(x) => Some((&x.metadata, template(&x.spec.template.metadata))),
                Object::Deployment(x) => Some((&x.metadata, template(&x.spec.template.metadata))),
                _ => None,
            })
            .filter_map(|(meta, hash)| Some((meta.name.clone()?, hash?)))
            .collect()
    }

    #[test]
    fn runtime_pods_roll_on_config_changes_but_not_on_ring_changes() {
        let cc = with_ring(cluster(), ring(1, &[0]));
        let hash = config::config_hash(&cc, &Names::new(&cc));
        let before = hashed_templates(&desired(&cc, &observed(1)).objects);
        assert_eq!(
            before,
            ["chat-shard", "chat-gateway", "chat-notifier"].map(|w| (w.to_string(), hash.clone()))
        );
        // A ring change rewrites the ConfigMap, not the templates.
        let moved = with_ring(cluster(), ring(2, &[0, 1]));
        assert_eq!(
            hashed_templates(&desired(&moved, &observed(2)).objects),
            before
        );
        let mut cache = cc.clone();
        cache.spec.cache.replicas = 3;
        let after = hashed_templates(&desired(&cache, &observed(1)).objects);
        assert!(
            after
                .iter()
                .zip(&before)
                .all(|(a, b)| a.0 == b.0 && a.1 != b.1)
        );
    }

    #[test]
    fn stable_cluster_reports_running_and_needs_no_patch() {
        let cc = with_ring(cluster(), ring(1, &[0]));
        let obs = observed(1);
        let first = desired(&cc, &obs);
        assert_eq!(
            first.status.phase,
            Some(confab_api::cluster::Phase::Running)
        );
        let mut cc = cc;
        cc.status = Some(first.status.clone());
        let second = desired(&cc, &obs);
        assert_eq!(second.status, first.status);
        assert!(status::make_patch(&cc, &second.status).is_none());
    }
}
