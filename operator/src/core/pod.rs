//! Pod-spec pieces every workload shares: the hardened security contexts,
//! probes, scheduling and spreading, the runtime container and the volumes it
//! mounts, and the config-hash annotation of runtime pod templates.
//! Requests and limits come from [`super::resources`].
//!
//! Hardening (every pod the operator builds passes the Pod Security
//! `restricted` profile): non-root user, no privilege escalation, all
//! capabilities dropped, the runtime-default seccomp profile, no
//! service-account token (the runtime never calls the Kubernetes API).
//! Runtime and NATS containers also have a read-only root filesystem;
//! writable scratch space is an emptyDir at `/tmp`.
//!
//! Probes of the runtime roles: a startup probe on `/healthz` gives a pod up
//! to [`STARTUP_SECONDS`] to come up (it connects to NATS and the store
//! before it serves HTTP, and a managed ScyllaDB takes a minute or two on
//! first start); only then do readiness (`/readyz`) and liveness (`/healthz`)
//! run, so a slow start is never mistaken for a hang. Gateways that serve
//! TLS themselves are probed over HTTPS (the kubelet does not verify the
//! certificate) and told where their mounted certificate and key are.

use std::collections::BTreeMap;

use confab_api::cluster::ChatCluster;
use confab_api::config::{
    CONFIG_ENV, CONFIG_PATH, CONTROL_PORT, CONTROL_TOKEN_FILE_ENV, CONTROL_TOKEN_VOLUME,
    DEFAULT_MAX_CONNECTIONS, HTTP_PORT, MAX_CONNECTIONS_ENV, POD_NAME_ENV, TLS_CERT_ENV,
    TLS_CERT_KEY, TLS_KEY_ENV, TLS_KEY_KEY, TOKEN_KEY, TRUSTED_PROXIES_ENV,
};
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{CONFIG_HASH_ANNOTATION, GATEWAY_TLS_VOLUME, config_hash};
use super::names::{Names, Role};
use super::resources::resources;

/// UID/GID every pod runs as (the distroless "nonroot" user).
pub const RUN_AS: i64 = 65532;

/// How long a runtime pod may take to start before its liveness probe runs.
pub const STARTUP_SECONDS: i32 = 300;
/// Period of the runtime pods' startup probe: short, because readiness is
/// only probed once it has succeeded (a pod is Ready at most this much later
/// than it could be — a shard rejoining, a gateway replaced in a roll).
const STARTUP_PERIOD: i32 = 2;

/// The restricted container security context.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The restricted pod security context.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// An HTTP GET probe on the `http` port; `scheme` is `HTTP` or `HTTPS`.
pub fn http_probe(scheme: &str, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some(scheme.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// Soft spreading of a role's pods over nodes and zones (maxSkew 1 each,
/// `ScheduleAnyway`): the scheduler prefers to put shards (or NATS servers)
/// on different nodes, so one node's loss takes as few as it can, but still
/// places every pod when there is a single node or no zone labels.
pub fn spread_over_nodes(names: &Names, role: Role) -> Vec<TopologySpreadConstraint> {
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(names.label_selector(role)),
            ..TopologySpreadConstraint::default()
        })
        .to_vec()
}

/// An environment variable from the downward API (`field_path` of the pod).
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// An environment variable with a fixed value.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// The chat-runtime container of `role`: `chat-runtime <role>`, reading the
/// cluster config; HTTP on 8080 with `/readyz` and `/healthz` probes, the
/// control API on 9090 (shards and gateways: behind the mounted token).
pub fn runtime_container(cc: &ChatCluster, role: Role, mounts: Vec<VolumeMount>) -> Container {
    let mut vars = vec![
        field_env(POD_NAME_ENV, "metadata.name"),
        env(CONFIG_ENV, CONFIG_PATH),
        env("CONFAB_LISTEN", &format!("0.0.0.0:{HTTP_PORT}")),
        env("CONFAB_CONTROL_LISTEN", &format!("0.0.0.0:{CONTROL_PORT}")),
    ];
    if matches!(role, Role::Shard | Role::Gateway) {
        let file = format!("{}/{TOKEN_KEY}", secret_dir(CONTROL_TOKEN_VOLUME));
        vars.push(env(CONTROL_TOKEN_FILE_ENV, &file));
    }
    let serves_tls = role == Role::Gateway && cc.spec.gateway.tls.is_some();
    if serves_tls {
        let dir = secret_dir(GATEWAY_TLS_VOLUME);
        vars.push(env(TLS_CERT_ENV, &format!("{dir}/{TLS_CERT_KEY}")));
        vars.push(env(TLS_KEY_ENV, &format!("{dir}/{TLS_KEY_KEY}")));
    }
    let proxies = &cc.spec.gateway.trusted_proxies;
    if role == Role::Gateway && !proxies.is_empty() {
        vars.push(env(TRUSTED_PROXIES_ENV, &proxies.join(",")));
    }
    // Only when not the default: a cluster that never set it keeps its pod
    // template (an operator upgrade rolls no gateway for it).
    let max = cc.spec.gateway.max_connections;
    if role == Role::Gateway && max != DEFAULT_MAX_CONNECTIONS {
        vars.push(env(MAX_CONNECTIONS_ENV, &max.to_string()));
    }
    let scheme = if serves_tls { "HTTPS" } else { "HTTP" };
    Container {
        name: role.as_str().into(),
        image: Some(cc.spec.image.clone()),
        args: Some(vec![role.as_str().into()]),
        env: Some(vars),
        ports: Some(vec![port("http", HTTP_PORT), port("control", CONTROL_PORT)]),
        startup_probe: Some(http_probe(
            scheme,
            "/healthz",
            STARTUP_PERIOD,
            STARTUP_SECONDS / STARTUP_PERIOD,
        )),
        readiness_probe: Some(http_probe(scheme, "/readyz", 5, 2)),
        liveness_probe: Some(http_probe(scheme, "/healthz", 10, 3)),
        resources: Some(resources(cc, role)),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// A volume with the ConfigMap, the emptyDir at `/tmp`, and each Secret in
/// `secrets` (`(volume, secret)`), with read-only mounts.
pub fn runtime_volumes(
    names: &Names,
    secrets: &[(String, String)],
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let config_dir = CONFIG_PATH
        .rsplit_once('/')
        .map_or("/etc/confab", |(d, _)| d);
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    let mut mounts = vec![
        mount("config", config_dir, true),
        mount("tmp", "/tmp", false),
    ];
    for (volume, secret) in secrets {
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount(volume, &secret_dir(volume), true));
    }
    (volumes, mounts)
}

/// Where the Secret volume `volume` is mounted.
pub fn secret_dir(volume: &str) -> String {
    format!("{}/{volume}", confab_api::config::SECRETS_DIR)
}

/// An emptyDir volume.
pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A volume mount.
pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// Metadata of a runtime pod template: `labels`, and the config hash that
/// rolls the pods when what they read at start changes.
pub fn runtime_template_meta(
    cc: &ChatCluster,
    names: &Names,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            CONFIG_HASH_ANNOTATION.to_string(),
            config_hash(cc, names),
        )])),
        ..ObjectMeta::default()
    }
}

/// A pod spec with the hardened defaults, the cluster's scheduling and
/// `containers`/`volumes`.
pub fn pod_spec(
    cc: &ChatCluster,
    names: &Names,
    containers: Vec<Container>,
    volumes: Vec<Volume>,
) -> PodSpec {
    let scheduling = &cc.spec.scheduling;
    PodSpec {
        containers,
        volumes: Some(volumes),
        service_account_name: Some(names.service_account()),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security()),
        node_selector: (!scheduling.node_selector.is_empty())
            .then(|| scheduling.node_selector.clone()),
        tolerations: (!scheduling.tolerations.is_empty()).then(|| scheduling.tolerations.clone()),
        termination_grace_period_seconds: Some(30),
        ..PodSpec::default()
    }
}

/// A StatefulSet of `role` pods (shards, managed NATS, dev ScyllaDB): pods
/// start and stop in parallel (membership, not pod order, decides roles), the
/// headless Service of the same name gives them DNS names, and volume claims,
/// when there are any, are deleted with the ChatCluster.
pub fn stateful_set(
    names: &Names,
    role: Role,
    replicas: i32,
    pod: PodSpec,
    claims: Option<Vec<PersistentVolumeClaim>>,
) -> StatefulSet {
    let name = names.workload(role);
    let labels = names.role_labels(role);
    let retention = claims
        .as_ref()
        .map(|_| StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Retain".into()),
        });
    StatefulSet {
        metadata: names.meta(name.clone(), labels.clone()),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name),
            pod_management_policy: Some("Parallel".into()),
            selector: names.label_selector(role),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: claims,
            persistent_volume_claim_retention_policy: retention,
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;

    #[test]
    fn shards_and_gateways_read_the_control_token_from_its_mounted_secret() {
        let file = |role| {
            let c = runtime_container(&cluster(), role, vec![]);
            c.env
                .unwrap()
                .into_iter()
                .find(|e| e.name == CONTROL_TOKEN_FILE_ENV)
                .and_then(|e| e.value)
        };
        let path = Some("/var/run/confab/control/token".to_string());
        assert_eq!(file(Role::Shard), path);
        assert_eq!(file(Role::Gateway), path);
        assert_eq!(
            file(Role::Notifier),
            None,
            "the notifier serves no control API"
        );
    }

    #[test]
    fn runtime_container_is_hardened_and_probed() {
        let c = runtime_container(&cluster(), Role::Shard, vec![]);
        assert_eq!(c.args, Some(vec!["shard".to_string()]));
        let sec = c.security_context.unwrap();
        assert_eq!(sec.read_only_root_filesystem, Some(true));
        assert_eq!(sec.run_as_non_root, Some(true));
        assert_eq!(sec.allow_privilege_escalation, Some(false));
        let ready = c.readiness_probe.unwrap().http_get.unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        let live = c.liveness_probe.unwrap().http_get.unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        let resources = c.resources.unwrap();
        let requests = resources.requests.unwrap();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
        assert!(resources.limits.unwrap().contains_key("memory"));
    }

    #[test]
    fn a_gateway_with_a_tls_secret_serves_it_and_is_probed_over_https() {
        let mut cc = cluster();
        let plain = runtime_container(&cc, Role::Gateway, vec![]);
        cc.spec.gateway.tls = Some(confab_api::cluster::TlsSecretRef {
            secret_name: "chat-example-com".into(),
        });
        let scheme = |c: &Container| {
            [&c.startup_probe, &c.readiness_probe, &c.liveness_probe]
                .map(|p| p.clone().unwrap().http_get.unwrap().scheme.unwrap())
        };
        let var = |c: &Container, name: &str| {
            c.env
                .clone()
                .unwrap()
                .into_iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value)
        };
        assert_eq!(scheme(&plain), ["HTTP"; 3]);
        assert_eq!(var(&plain, TLS_CERT_ENV), None);

        let tls = runtime_container(&cc, Role::Gateway, vec![]);
        assert_eq!(scheme(&tls), ["HTTPS"; 3]);
        assert_eq!(
            var(&tls, TLS_CERT_ENV).as_deref(),
            Some("/var/run/confab/gateway-tls/tls.crt")
        );
        assert_eq!(
            var(&tls, TLS_KEY_ENV).as_deref(),
            Some("/var/run/confab/gateway-tls/tls.key")
        );
        // Shards and notifiers serve no clients: plain HTTP probes, no pair.
        for role in [Role::Shard, Role::Notifier] {
            let c = runtime_container(&cc, role, vec![]);
            assert_eq!(scheme(&c), ["HTTP"; 3], "{role:?}");
            assert_eq!(var(&c, TLS_CERT_ENV), None, "{role:?}");
        }
    }

    #[test]
    fn gateways_are_told_which_proxies_name_the_client() {
        let mut cc = cluster();
        let var = |c: &Container| {
            c.env
                .clone()
                .unwrap()
                .into_iter()
                .find(|e| e.name == TRUSTED_PROXIES_ENV)
                .and_then(|e| e.value)
        };
        assert_eq!(var(&runtime_container(&cc, Role::Gateway, vec![])), None);
        cc.spec.gateway.trusted_proxies = vec!["10.0.0.0/8".into(), "fd00::/8".into()];
        let gateway = runtime_container(&cc, Role::Gateway, vec![]);
        assert_eq!(var(&gateway).as_deref(), Some("10.0.0.0/8,fd00::/8"));
        let shard = runtime_container(&cc, Role::Shard, vec![]);
        assert_eq!(var(&shard), None, "shards serve no clients");
    }

    #[test]
    fn startup_probe_holds_liveness_off_for_five_minutes() {
        for role in [Role::Shard, Role::Gateway, Role::Notifier] {
            let c = runtime_container(&cluster(), role, vec![]);
            let startup = c.startup_probe.expect("a startup probe");
            let get = startup.http_get.clone().unwrap();
            assert_eq!(get.path.as_deref(), Some("/healthz"));
            let (period, failures) = (startup.period_seconds.unwrap(), startup.failure_threshold);
            assert_eq!(period * failures.unwrap(), STARTUP_SECONDS);
            // Once started, a hang is still caught within 30 s.
            let live = c.liveness_probe.unwrap();
            assert_eq!(
                live.period_seconds.unwrap() * live.failure_threshold.unwrap(),
                30
            );
        }
    }

    #[test]
    fn spreading_is_soft_over_nodes_and_zones() {
        let names = Names::new(&cluster());
        let spread = spread_over_nodes(&names, Role::Shard);
        let keys: Vec<&str> = spread.iter().map(|s| s.topology_key.as_str()).collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        );
        for s in &spread {
            assert_eq!(
                (s.max_skew, s.when_unsatisfiable.as_str()),
                (1, "ScheduleAnyway")
            );
            let selector = s.label_selector.clone().unwrap().match_labels.unwrap();
            assert_eq!(selector, names.selector(Role::Shard));
        }
    }

    #[test]
    fn pod_spec_takes_scheduling_and_drops_the_token() {
        let mut cc = cluster();
        cc.spec.scheduling.node_selector = BTreeMap::from([("type".into(), "kwok".into())]);
        let names = Names::new(&cc);
        let spec = pod_spec(&cc, &names, vec![], vec![]);
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.service_account_name.as_deref(), Some("chat-runtime"));
        assert_eq!(spec.node_selector.unwrap()["type"], "kwok");
        assert_eq!(spec.security_context.unwrap().run_as_user, Some(RUN_AS));
    }

    #[test]
    fn a_gateway_takes_its_connection_maximum_only_when_not_the_default() {
        let mut cc = cluster();
        let max = |cc: &ChatCluster| {
            let c = runtime_container(cc, Role::Gateway, vec![]);
            let vars = c.env.unwrap_or_default();
            vars.into_iter()
                .find(|v| v.name == MAX_CONNECTIONS_ENV)
                .and_then(|v| v.value)
        };
        assert_eq!(max(&cc), None, "the default changes no template");
        cc.spec.gateway.max_connections = 60_000;
        assert_eq!(max(&cc).as_deref(), Some("60000"));
        let shard = runtime_container(&cc, Role::Shard, vec![]);
        assert!(
            !shard
                .env
                .unwrap()
                .iter()
                .any(|v| v.name == MAX_CONNECTIONS_ENV)
        );
    }
}
