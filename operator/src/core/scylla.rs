//! The managed dev ScyllaDB: one node in developer mode, and its Service.
//!
//! For development clusters only (`spec.scylla.managed`); production points
//! at an existing ScyllaDB. The Scylla image runs its own supervisor as root
//! and writes its config at start, so this pod is the one exception to the
//! non-root, read-only-root-filesystem rule; it still drops privilege
//! escalation and every capability Scylla does not need.

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, Probe, SecurityContext, Service, ServiceSpec,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::CQL_PORT;
use super::names::{Names, Role};
use super::nats::data_claim;
use super::pod::{empty_dir, mount, pod_spec, resources, stateful_set};
use super::shard::service_port;

fn scylla_container(cc: &ChatCluster, image: &str) -> Container {
    Container {
        name: "scylla".into(),
        image: Some(image.into()),
        args: Some(
            [
                "--developer-mode=1",
                "--smp=1",
                "--memory=750M",
                "--overprovisioned=1",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("cql".into()),
            container_port: i32::from(CQL_PORT),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("cql".into()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        resources: Some(resources(cc, Role::Scylla)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["NET_RAW".into(), "SYS_ADMIN".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![mount("data", "/var/lib/scylla", false)]),
        ..Container::default()
    }
}

/// The dev ScyllaDB StatefulSet, or `None` when the store is external.
pub fn build_scylla_statefulset(cc: &ChatCluster, names: &Names) -> Option<StatefulSet> {
    let managed = cc.spec.scylla.managed.as_ref()?;
    let (volumes, claims) = match &managed.storage {
        None => (vec![empty_dir("data")], None),
        Some(size) => (vec![], Some(vec![data_claim(names, size)])),
    };
    let mut pod = pod_spec(
        cc,
        names,
        vec![scylla_container(cc, &managed.image)],
        volumes,
    );
    // The documented exception (see the module docs).
    pod.security_context = None;
    Some(stateful_set(names, Role::Scylla, 1, pod, claims))
}

/// The dev ScyllaDB's Service, or `None` when the store is external.
pub fn build_scylla_service(cc: &ChatCluster, names: &Names) -> Option<Service> {
    cc.spec.scylla.managed.as_ref()?;
    Some(Service {
        metadata: names.meta(
            names.workload(Role::Scylla),
            names.role_labels(Role::Scylla),
        ),
        spec: Some(ServiceSpec {
            selector: Some(names.selector(Role::Scylla)),
            ports: Some(vec![service_port("cql", i32::from(CQL_PORT), "cql")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;
    use confab_api::cluster::ExternalScylla;

    #[test]
    fn dev_node_in_developer_mode_on_cql() {
        let cc = cluster();
        let names = Names::new(&cc);
        let spec = build_scylla_statefulset(&cc, &names).unwrap().spec;
        assert_eq!(spec.replicas, Some(1));
        let c = &spec.template.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("scylladb/scylla:6.2"));
        assert!(
            c.args
                .clone()
                .unwrap()
                .contains(&"--developer-mode=1".to_string())
        );
        let svc = build_scylla_service(&cc, &names).unwrap().spec.unwrap();
        assert_eq!(svc.ports.unwrap()[0].port, 9042);
    }

    #[test]
    fn nothing_when_external() {
        let mut cc = cluster();
        cc.spec.scylla.managed = None;
        cc.spec.scylla.external = Some(ExternalScylla {
            contact_points: vec!["db:9042".into()],
            keyspace: "confab".into(),
            replication_factor: 3,
            credentials_secret: None,
        });
        assert!(build_scylla_statefulset(&cc, &Names::new(&cc)).is_none());
    }
}
