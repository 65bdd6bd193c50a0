//! The gateway Deployment and its Service (the cluster's WebSocket endpoint).
//!
//! Gateways hold no durable state: a replaced one costs its clients a
//! reconnect and resume. Rolling updates therefore surge rather than take
//! capacity away; the disruption budget is [`super::disruption`]'s.

use confab_api::cluster::{ChatCluster, Provider, ServiceType, WhenUnsatisfiable};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServiceSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{MEDIA_DIR, secret_volumes};
use super::names::{Names, Role};
use super::pod::{
    empty_dir, mount, pod_spec, runtime_container, runtime_template_meta, runtime_volumes,
};
use super::shard::service_port;

/// The gateway Deployment.
pub fn build_gateway_deployment(cc: &ChatCluster, names: &Names) -> Deployment {
    let labels = names.role_labels(Role::Gateway);
    let (mut volumes, mut mounts) =
        runtime_volumes(names, &secret_volumes(cc, names, Role::Gateway));
    let has_local_media = cc
        .spec
        .media
        .buckets
        .iter()
        .any(|b| b.provider == Provider::Filesystem);
    if has_local_media {
        volumes.push(empty_dir("media"));
        mounts.push(mount("media", MEDIA_DIR, false));
    }
    let container = runtime_container(cc, Role::Gateway, mounts);
    let mut pod = pod_spec(cc, names, vec![container], volumes);
    pod.topology_spread_constraints = Some(vec![spread(cc, names)]);
    Deployment {
        metadata: names.meta(names.workload(Role::Gateway), labels.clone()),
        spec: DeploymentSpec {
            replicas: Some(cc.spec.gateway.replicas),
            selector: names.label_selector(Role::Gateway),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(runtime_template_meta(cc, names, labels)),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn spread(cc: &ChatCluster, names: &Names) -> TopologySpreadConstraint {
    let t = &cc.spec.gateway.topology_spread;
    TopologySpreadConstraint {
        max_skew: t.max_skew,
        topology_key: t.topology_key.clone(),
        when_unsatisfiable: match t.when_unsatisfiable {
            WhenUnsatisfiable::ScheduleAnyway => "ScheduleAnyway",
            WhenUnsatisfiable::DoNotSchedule => "DoNotSchedule",
        }
        .into(),
        label_selector: Some(names.label_selector(Role::Gateway)),
        ..TopologySpreadConstraint::default()
    }
}

/// The gateway Service: clients' WebSocket (`/v1/ws`) and REST (`/v1`) endpoint.
pub fn build_gateway_service(cc: &ChatCluster, names: &Names) -> Service {
    let svc = &cc.spec.gateway.service;
    let mut meta = names.meta(
        names.workload(Role::Gateway),
        names.role_labels(Role::Gateway),
    );
    if !svc.annotations.is_empty() {
        meta.annotations = Some(svc.annotations.clone());
    }
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(
                match svc.type_ {
                    ServiceType::ClusterIP => "ClusterIP",
                    ServiceType::NodePort => "NodePort",
                    ServiceType::LoadBalancer => "LoadBalancer",
                }
                .into(),
            ),
            selector: Some(names.selector(Role::Gateway)),
            ports: Some(vec![service_port("http", svc.port, "http")]),
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
    fn deployment_surges_spreads_and_mounts_the_signing_key() {
        let mut cc = cluster();
        cc.spec.gateway.replicas = 3;
        let names = Names::new(&cc);
        let spec = build_gateway_deployment(&cc, &names).spec;
        assert_eq!(spec.replicas, Some(3));
        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        let pod = spec.template.spec.unwrap();
        let spread = &pod.topology_spread_constraints.unwrap()[0];
        assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
        assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/var/run/confab/auth")
        );
    }

    #[test]
    fn service_carries_type_port_and_annotations() {
        let mut cc = cluster();
        cc.spec.gateway.service.type_ = ServiceType::LoadBalancer;
        cc.spec.gateway.service.port = 443;
        cc.spec
            .gateway
            .service
            .annotations
            .insert("lb/scheme".into(), "internet".into());
        let svc = build_gateway_service(&cc, &Names::new(&cc));
        assert_eq!(svc.metadata.annotations.unwrap()["lb/scheme"], "internet");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ports.unwrap()[0].port, 443);
    }
}
