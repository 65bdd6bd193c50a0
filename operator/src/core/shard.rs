//! The shard StatefulSet and its headless Service.
//!
//! Shards are a StatefulSet so each has a stable ordinal (its ring id) and a
//! stable DNS name for the control API. The replica count comes from the
//! scaling plan, never straight from the spec: pods leave only after the
//! ring has moved their chats away; they move onto a new template only when
//! the operator's roll deletes them (`OnDelete`). Shard pods spread softly over nodes and
//! zones, so a node's loss fails over as few shards as the nodes allow.

use confab_api::cluster::ChatCluster;
use confab_api::config::{CONTROL_PORT, HTTP_PORT};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::secret_volumes;
use super::names::{Names, Role};
use super::pod::{
    pod_spec, runtime_container, runtime_template_meta, runtime_volumes, spread_over_nodes,
    stateful_set,
};

/// A Service port named like its container port.
pub fn service_port(name: &str, port: i32, target: &str) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(target.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The shard StatefulSet with `replicas` pods.
pub fn build_shard_statefulset(cc: &ChatCluster, names: &Names, replicas: i32) -> StatefulSet {
    let (volumes, mounts) = runtime_volumes(names, &secret_volumes(cc, names, Role::Shard));
    let container = runtime_container(cc, Role::Shard, mounts);
    // Started and stopped together: the ring, not pod order, decides who
    // owns what.
    let mut pod = pod_spec(cc, names, vec![container], volumes);
    pod.topology_spread_constraints = Some(spread_over_nodes(names, Role::Shard));
    let mut set = stateful_set(names, Role::Shard, replicas, pod, None);
    // The operator rolls shards itself, one at a time, draining each first
    // (`roll`): Kubernetes replaces a pod only when the operator deletes it.
    set.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    set.spec.template.metadata = Some(runtime_template_meta(
        cc,
        names,
        names.role_labels(Role::Shard),
    ));
    set
}

/// The headless Service giving each shard pod a DNS name. Not-ready pods are
/// published too: the operator must reach a shard that is leaving the ring.
pub fn build_shard_service(names: &Names) -> Service {
    let name = names.workload(Role::Shard);
    Service {
        metadata: names.meta(name, names.role_labels(Role::Shard)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector(Role::Shard)),
            ports: Some(vec![
                service_port("http", i32::from(HTTP_PORT), "http"),
                service_port("control", i32::from(CONTROL_PORT), "control"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;

    #[test]
    fn statefulset_runs_shards_in_parallel_behind_the_headless_service() {
        let cc = cluster();
        let names = Names::new(&cc);
        let sts = build_shard_statefulset(&cc, &names, 3);
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("chat-shard"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let strategy = spec.update_strategy.unwrap();
        assert_eq!(
            strategy.type_.as_deref(),
            Some("OnDelete"),
            "the operator rolls them"
        );
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in spec.selector.match_labels.unwrap() {
            assert_eq!(template_labels.get(&k), Some(&v));
        }
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].args, Some(vec!["shard".to_string()]));
        assert!(sts.metadata.owner_references.is_some());
        // Soft: a single-node cluster still runs every shard.
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
        assert!(
            spread
                .iter()
                .all(|s| s.when_unsatisfiable == "ScheduleAnyway")
        );
    }

    #[test]
    fn service_is_headless_and_publishes_not_ready() {
        let names = Names::new(&cluster());
        let svc = build_shard_service(&names).spec.unwrap();
        assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
        assert_eq!(svc.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = svc.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![8080, 9090]);
    }
}
