//! The managed dev ScyllaDB: one node in developer mode, and its Service.
//!
//! For development clusters only (`spec.scylla.managed`); production points
//! at an existing ScyllaDB.
//!
//! The pod passes the Pod Security `restricted` profile like every other:
//! the image's entrypoint (a Python wrapper that writes `/etc/scylla.d` and
//! starts supervisord) needs root, but ScyllaDB itself does not — its
//! packages support non-root installs, and as a non-root user it only
//! requires that the data and commitlog directories it creates under its
//! work directory be its own, which they are on a fresh emptyDir or volume.
//! So the container runs `/usr/bin/scylla` directly, as [`RUN_AS`], with the
//! arguments the entrypoint would have computed (listen, RPC and seed
//! address: the pod IP), no capabilities and the runtime-default seccomp
//! profile (the same syscalls `docker run scylladb/scylla` is allowed). Its
//! root filesystem stays writable: unlike the runtime's, ScyllaDB's writes
//! outside its work directory were never catalogued, and `restricted` does
//! not ask for a read-only one.
//!
//! Probes: a TCP check of the CQL port; the startup probe allows
//! [`STARTUP_SECONDS`] (commitlog replay after a restart on a volume can take
//! minutes) before liveness (a minute of refused connections) takes over.
//! No PodDisruptionBudget: see [`super::disruption`].
//!
//! [`RUN_AS`]: super::pod::RUN_AS

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Probe, Service, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::CQL_PORT;
use super::names::{Names, Role};
use super::nats::data_claim;
use super::pod::{container_security, empty_dir, env, field_env, mount, pod_spec, stateful_set};
use super::resources::resources;
use super::shard::service_port;

/// The ScyllaDB binary in the image (bypassing the root-only entrypoint).
pub const SCYLLA_BIN: &str = "/usr/bin/scylla";
/// ScyllaDB's work directory: the data volume.
const WORK_DIR: &str = "/var/lib/scylla";
/// How long the node may take to open its CQL port.
pub const STARTUP_SECONDS: i32 = 600;

/// The node's arguments: developer mode on one core and 750 MB, addresses
/// from the pod IP, logs to stdout.
pub fn scylla_args() -> Vec<String> {
    [
        "--developer-mode=1",
        "--smp=1",
        "--memory=750M",
        "--overprovisioned",
        "--listen-address=$(POD_IP)",
        "--rpc-address=$(POD_IP)",
        "--seed-provider-parameters=seeds=$(POD_IP)",
        &format!("--workdir={WORK_DIR}"),
        "--log-to-syslog=0",
        "--log-to-stdout=1",
        "--network-stack=posix",
    ]
    .map(String::from)
    .to_vec()
}

fn cql_probe(period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("cql".into()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

fn scylla_container(cc: &ChatCluster, image: &str) -> Container {
    let mut security = container_security();
    security.read_only_root_filesystem = Some(false);
    Container {
        name: "scylla".into(),
        image: Some(image.into()),
        command: Some(vec![SCYLLA_BIN.into()]),
        args: Some(scylla_args()),
        env: Some(vec![
            field_env("POD_IP", "status.podIP"),
            env("SCYLLA_HOME", WORK_DIR),
            env("SCYLLA_CONF", "/etc/scylla"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("cql".into()),
            container_port: i32::from(CQL_PORT),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(cql_probe(10, STARTUP_SECONDS / 10)),
        readiness_probe: Some(cql_probe(10, 3)),
        liveness_probe: Some(cql_probe(10, 6)),
        resources: Some(resources(cc, Role::Scylla)),
        security_context: Some(security),
        volume_mounts: Some(vec![mount("data", WORK_DIR, false)]),
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
    let pod = pod_spec(
        cc,
        names,
        vec![scylla_container(cc, &managed.image)],
        volumes,
    );
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
    use crate::core::fixtures::{cluster, restricted_violations};
    use crate::core::pod::RUN_AS;
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
    fn dev_node_passes_the_restricted_profile_as_a_non_root_user() {
        let cc = cluster();
        let sts = build_scylla_statefulset(&cc, &Names::new(&cc)).unwrap();
        let pod = sts.spec.template.spec.unwrap();
        assert_eq!(restricted_violations(&pod), Vec::<String>::new());
        let pod_sec = pod.security_context.clone().unwrap();
        assert_eq!(
            (pod_sec.run_as_user, pod_sec.fs_group),
            (Some(RUN_AS), Some(RUN_AS))
        );
        // The root-only entrypoint is bypassed; the node finds itself by its IP.
        let c = &pod.containers[0];
        assert_eq!(c.command, Some(vec![SCYLLA_BIN.to_string()]));
        let args = c.args.clone().unwrap();
        assert!(args.contains(&"--seed-provider-parameters=seeds=$(POD_IP)".to_string()));
        assert!(args.contains(&"--workdir=/var/lib/scylla".to_string()));
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["POD_IP", "SCYLLA_HOME", "SCYLLA_CONF"]);
        let mounts = c.volume_mounts.clone().unwrap();
        assert_eq!(mounts[0].mount_path, "/var/lib/scylla");
    }

    #[test]
    fn slow_first_start_is_not_killed_by_liveness() {
        let cc = cluster();
        let sts = build_scylla_statefulset(&cc, &Names::new(&cc)).unwrap();
        let c = sts.spec.template.spec.unwrap().containers[0].clone();
        let startup = c.startup_probe.expect("a startup probe");
        assert!(startup.tcp_socket.is_some());
        let allowed = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
        assert_eq!(allowed, STARTUP_SECONDS);
        let live = c.liveness_probe.expect("a liveness probe");
        assert!(live.period_seconds.unwrap() * live.failure_threshold.unwrap() < allowed);
        assert!(c.resources.unwrap().limits.unwrap().contains_key("memory"));
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
            tls: None,
        });
        assert!(build_scylla_statefulset(&cc, &Names::new(&cc)).is_none());
    }
}
