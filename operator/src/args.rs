//! Command-line flags, each with an environment fallback. Parsed once in
//! `main` and turned into [`Settings`]; the destructuring in
//! [`Args::into_parts`] makes an unused flag a compile error.

use std::time::Duration;

use clap::Parser;

use crate::shell::Settings;
use crate::shell::leader::LeaseConfig;

/// confab-operator: reconciles ChatCluster resources into chat-runtime pods.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "CONFAB_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "CONFAB_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Reconcile only while holding a Lease, so several replicas can run.
    #[arg(long, env = "CONFAB_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "CONFAB_LEASE_NAME", default_value = "confab-operator")]
    pub lease_name: String,
    /// Seconds the Lease lasts without renewal.
    #[arg(long, env = "CONFAB_LEASE_DURATION_SECS", default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// This replica's name: Lease identity and events' reporting instance.
    #[arg(long, env = "POD_NAME", default_value = "confab-operator")]
    pub pod_name: String,
    /// Bound, in seconds, on connecting to and calling a runtime's control API.
    #[arg(long, env = "CONFAB_CONTROL_TIMEOUT_SECS", default_value_t = 10)]
    pub control_timeout_secs: u64,
    /// Bound, in seconds, on each Drain before a pod is removed.
    #[arg(long, env = "CONFAB_DRAIN_DEADLINE_SECS", default_value_t = 20)]
    pub drain_deadline_secs: u64,
    /// Seconds between two reads of a cluster's load (the pods' `Status`),
    /// which the autoscaler and `status.load` use.
    #[arg(long, env = "CONFAB_LOAD_INTERVAL_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub load_interval_secs: u64,
}

impl Args {
    /// `(listen address, settings, control timeout)`.
    pub fn into_parts(self) -> (String, Settings, Duration) {
        let Args {
            listen,
            watch_namespace,
            leader_election,
            lease_namespace,
            lease_name,
            lease_duration_secs,
            pod_name,
            control_timeout_secs,
            drain_deadline_secs,
            load_interval_secs,
        } = self;
        let lease = leader_election.then(|| LeaseConfig {
            namespace: lease_namespace,
            name: lease_name,
            identity: pod_name.clone(),
            duration_secs: lease_duration_secs,
        });
        let settings = Settings {
            namespace: watch_namespace,
            lease,
            instance: pod_name,
            drain_deadline: Duration::from_secs(drain_deadline_secs),
            load_interval: Duration::from_secs(load_interval_secs),
        };
        (listen, settings, Duration::from_secs(control_timeout_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_leader_election_flag() {
        let (listen, settings, timeout) = Args::parse_from(["confab-operator"]).into_parts();
        assert_eq!(listen, "0.0.0.0:8080");
        assert!(settings.lease.is_none() && settings.namespace.is_none());
        assert_eq!(timeout, Duration::from_secs(10));
        let args = [
            "confab-operator",
            "--leader-election",
            "--lease-namespace",
            "ops",
            "--pod-name",
            "op-1",
        ];
        let (_, settings, _) = Args::parse_from(args).into_parts();
        let lease = settings.lease.unwrap();
        assert_eq!(
            (lease.namespace.as_str(), lease.identity.as_str()),
            ("ops", "op-1")
        );
    }
}
