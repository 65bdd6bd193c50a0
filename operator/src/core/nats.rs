//! The managed NATS: a StatefulSet of `nats-server` with JetStream, and its
//! headless Service (clients resolve every server; servers find their routes).
//!
//! Used only when `spec.nats.managed` is set. Storage is a PVC per server when
//! `storage` is given (deleted with the cluster), an emptyDir otherwise.
//! Clients must present the token of the generated `<cluster>-nats-auth`
//! Secret, which runtime pods mount; routes between servers are left to the
//! NetworkPolicy (only NATS pods reach them).
//!
//! Probes on the monitoring port, as the NATS Helm chart sets them: a startup
//! probe on the full `/healthz` (JetStream recovered and current) that allows
//! [`STARTUP_SECONDS`], since a server restarting on a volume replays its
//! streams first; then liveness on `/healthz?js-enabled-only=true` (90 s of
//! failures) and readiness on the same, every 5 s. Servers spread softly over
//! nodes and zones; the disruption budget is [`super::disruption`]'s.

use confab_api::cluster::{ChatCluster, ManagedNats};
use confab_api::config::TOKEN_KEY;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, Probe, SecretKeySelector, Service, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::NATS_PORT;
use super::names::{Names, Role};
use super::pod::{
    container_security, empty_dir, field_env, mount, pod_spec, spread_over_nodes, stateful_set,
};
use super::resources::resources;
use super::shard::service_port;

/// nats-server image of the managed NATS.
pub const NATS_IMAGE: &str = "nats:2.11-alpine";
const CLUSTER_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
/// How long a server may take to recover JetStream before liveness runs.
pub const STARTUP_SECONDS: i32 = 900;
/// The container variable holding the client token.
const TOKEN_ENV: &str = "NATS_AUTH_TOKEN";

/// A variable from key `key` of Secret `secret`.
fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

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
        // Clients present the generated token (expanded by the kubelet).
        &format!("--auth=$({TOKEN_ENV})"),
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

fn monitor_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("monitor".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

fn nats_container(cc: &ChatCluster, names: &Names, managed: &ManagedNats) -> Container {
    Container {
        name: "nats".into(),
        image: Some(NATS_IMAGE.into()),
        args: Some(nats_args(names, managed)),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            secret_env(TOKEN_ENV, &names.nats_auth_secret(), TOKEN_KEY),
        ]),
        ports: Some(vec![
            port("client", NATS_PORT),
            port("cluster", CLUSTER_PORT),
            port("monitor", MONITOR_PORT),
        ]),
        startup_probe: Some(monitor_probe("/healthz", 10, STARTUP_SECONDS / 10)),
        readiness_probe: Some(monitor_probe("/healthz?js-enabled-only=true", 5, 3)),
        liveness_probe: Some(monitor_probe("/healthz?js-enabled-only=true", 30, 3)),
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
    let mut pod = pod_spec(cc, names, vec![container], volumes);
    pod.topology_spread_constraints = Some(spread_over_nodes(names, Role::Nats));
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
    use crate::core::fixtures::{cluster, restricted_violations};

    #[test]
    fn clients_must_present_the_generated_token() {
        let cc = cluster();
        let names = Names::new(&cc);
        let sts = build_nats_statefulset(&cc, &names).unwrap();
        let c = &sts.spec.template.spec.unwrap().containers[0];
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--auth=$(NATS_AUTH_TOKEN)".to_string())
        );
        let env = c.env.as_ref().unwrap();
        let token = env.iter().find(|e| e.name == "NATS_AUTH_TOKEN").unwrap();
        let from = token.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("chat-nats-auth", "token")
        );
    }
    use confab_api::cluster::ExternalNats;

    #[test]
    fn servers_are_restricted_probed_limited_and_spread() {
        let mut cc = cluster();
        cc.spec.nats.managed = Some(ManagedNats {
            replicas: 3,
            storage: None,
        });
        let names = Names::new(&cc);
        let pod = build_nats_statefulset(&cc, &names)
            .unwrap()
            .spec
            .template
            .spec
            .unwrap();
        assert_eq!(restricted_violations(&pod), Vec::<String>::new());
        let c = &pod.containers[0];
        let startup = c.startup_probe.clone().expect("a startup probe");
        let path = |p: &Probe| p.http_get.clone().unwrap().path.unwrap();
        assert_eq!(path(&startup), "/healthz");
        let allowed = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
        assert_eq!(allowed, STARTUP_SECONDS);
        let live = c.liveness_probe.clone().expect("a liveness probe");
        assert_eq!(path(&live), "/healthz?js-enabled-only=true");
        let limits = c.resources.clone().unwrap().limits.unwrap();
        assert!(limits.contains_key("memory") && !limits.contains_key("cpu"));
        let spread = pod.topology_spread_constraints.unwrap();
        assert!(
            spread
                .iter()
                .all(|s| s.when_unsatisfiable == "ScheduleAnyway")
        );
        assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    }

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
            tls: None,
        });
        let names = Names::new(&cc);
        assert!(build_nats_statefulset(&cc, &names).is_none());
        assert!(build_nats_service(&cc, &names).is_none());
    }
}
