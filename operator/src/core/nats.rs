//! The managed NATS: a StatefulSet of `nats-server` with JetStream, and its
//! headless Service (clients resolve every server; servers find their routes).
//!
//! Used only when `spec.nats.managed` is set. Storage is a PVC per server when
//! `storage` is given (deleted with the cluster), an emptyDir otherwise.

use confab_api::cluster::{ChatCluster, ManagedNats};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    Probe, Service, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::NATS_PORT;
use super::names::{Names, Role};
use super::pod::{
    container_security, empty_dir, field_env, mount, pod_spec, resources, stateful_set,
};
use super::shard::service_port;

/// nats-server image of the managed NATS.
pub const NATS_IMAGE: &str = "nats:2.11-alpine";
const CLUSTER_PORT: u16 = 6222;
const MONITOR_PORT: u16 = 8222;

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        ..ContainerPort::default()
    }
}

/// `nats-server` arguments: JetStream on, and routes to every peer when
/// there is more than one server.
pub fn nats_args(names: &Names, managed: &ManagedNats) -> Vec<String> {
    let svc = names.workload(Role::Nats);
    let mut args: Vec<String> = [
        "--name=$(POD_NAME)",
        "--jetstream",
        "--store_dir=/data",
        &format!("--port={NATS_PORT}"),
        &format!("--http_port={MONITOR_PORT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if managed.replicas > 1 {
        let routes: Vec<String> = (0..managed.replicas)
            .map(|i| {
                format!(
                    "nats://{svc}-{i}.{svc}.{}.svc:{CLUSTER_PORT}",
                    names.namespace
                )
            })
            .collect();
        args.push(format!("--cluster_name={svc}"));
        args.push(format!("--cluster=nats://0.0.0.0:{CLUSTER_PORT}"));
        args.push(format!("--routes={}", routes.join(",")));
    }
    args
}

fn nats_container(cc: &ChatCluster, names: &Names, managed: &ManagedNats) -> Container {
    Container {
        name: "nats".into(),
        image: Some(NATS_IMAGE.into()),
        args: Some(nats_args(names, managed)),
        env: Some(vec![field_env("POD_NAME", "metadata.name")]),
        ports: Some(vec![
            port("client", NATS_PORT),
            port("cluster", CLUSTER_PORT),
            port("monitor", MONITOR_PORT),
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz?js-enabled-only=true".into()),
                port: IntOrString::String("monitor".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        resources: Some(resources(cc, Role::Nats)),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![mount("data", "/data", false)]),
        ..Container::default()
    }
}

/// The managed NATS StatefulSet, or `None` when NATS is external.
pub fn build_nats_statefulset(cc: &ChatCluster, names: &Names) -> Option<StatefulSet> {
    let managed = cc.spec.nats.managed.as_ref()?;
    let (volumes, claims) = match &managed.storage {
        None => (vec![empty_dir("data")], None),
        Some(size) => (vec![], Some(vec![data_claim(names, size)])),
    };
    let container = nats_container(cc, names, managed);
    let pod = pod_spec(cc, names, vec![container], volumes);
    Some(stateful_set(
        names,
        Role::Nats,
        managed.replicas,
        pod,
        claims,
    ))
}

/// A `data` volume claim of `size`, labelled so the finalizer finds it.
pub fn data_claim(names: &Names, size: &Quantity) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), size.clone())].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The managed NATS's headless Service, or `None` when NATS is external.
pub fn build_nats_service(cc: &ChatCluster, names: &Names) -> Option<Service> {
    cc.spec.nats.managed.as_ref()?;
    Some(Service {
        metadata: names.meta(names.workload(Role::Nats), names.role_labels(Role::Nats)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector(Role::Nats)),
            ports: Some(vec![
                service_port("client", i32::from(NATS_PORT), "client"),
                service_port("cluster", i32::from(CLUSTER_PORT), "cluster"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;
    use confab_api::cluster::ExternalNats;

    #[test]
    fn single_server_has_no_routes_and_an_empty_dir() {
        let cc = cluster();
        let names = Names::new(&cc);
        let sts = build_nats_statefulset(&cc, &names).unwrap();
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(1));
        assert!(spec.volume_claim_templates.is_none());
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(&"--jetstream".to_string()));
        assert!(!args.iter().any(|a| a.starts_with("--routes")));
    }

    #[test]
    fn three_servers_route_to_each_other_on_volumes() {
        let mut cc = cluster();
        cc.spec.nats.managed = Some(ManagedNats {
            replicas: 3,
            storage: Some(Quantity("5Gi".into())),
        });
        let names = Names::new(&cc);
        let spec = build_nats_statefulset(&cc, &names).unwrap().spec;
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        let routes = args.iter().find(|a| a.starts_with("--routes=")).unwrap();
        assert_eq!(routes.matches("nats://").count(), 3);
        assert!(routes.contains("chat-nats-2.chat-nats.prod.svc:6222"));
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(
            claims[0].metadata.labels.as_ref().unwrap()["confab.dev/cluster"],
            "chat"
        );
    }

    #[test]
    fn nothing_when_external() {
        let mut cc = cluster();
        cc.spec.nats.managed = None;
        cc.spec.nats.external = Some(ExternalNats {
            url: "nats://x:4222".into(),
            credentials_secret: None,
        });
        let names = Names::new(&cc);
        assert!(build_nats_statefulset(&cc, &names).is_none());
        assert!(build_nats_service(&cc, &names).is_none());
    }
}
