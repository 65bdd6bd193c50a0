//! The operator's Prometheus metrics, served at `/metrics`.
//!
//! Labels are bounded: failure labels are error variant names, step labels
//! are step kinds, change labels are [`crate::core::plan::Change`] variant names,
//! cluster labels are `namespace/name` of ChatClusters (a handful per
//! installation).
//!
//! Per ChatCluster: failed reconciles and ring steps, the ring (epoch, Ready
//! members, shards failed over, since when a change is in flight), how
//! long each committed ring change took, and the autoscaler's
//! recommendation and steps per role. The chart's dashboard and alerts
//! read these names; a test below keeps them in step.

use std::time::Duration;

use confab_api::cluster::ChatClusterStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    cluster: String,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    cluster: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabel {
    cluster: String,
    change: &'static str,
}

/// Buckets of ring change durations: 1 s to about 34 min, doubling.
fn ring_change_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    duration: Histogram,
    failures: Family<ErrorLabel, Counter>,
    steps: Family<StepLabel, Counter>,
    ring_epoch: Family<ClusterLabel, Gauge>,
    shards_ready: Family<ClusterLabel, Gauge>,
    /// Shards out of the ring because they stayed NotReady (`status.ring.failedOver`).
    failed_over: Family<ClusterLabel, Gauge>,
    /// Unix time `RingStable` turned False; 0 while the ring is stable.
    changing_since: Family<ClusterLabel, Gauge>,
    /// Committed ring changes: how long each took, by kind.
    ring_changes: Family<ChangeLabel, Histogram>,
    /// The count the autoscaler's last reading calls for, per role.
    recommended: Family<RoleLabel, Gauge>,
    /// Counts the autoscaler set, per role.
    autoscaled: Family<RoleLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("confab_operator");
        let reconciles = Counter::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let failures = Family::<ErrorLabel, Counter>::default();
        let steps = Family::<StepLabel, Counter>::default();
        let ring_epoch = Family::<ClusterLabel, Gauge>::default();
        let shards_ready = Family::<ClusterLabel, Gauge>::default();
        let failed_over = Family::<ClusterLabel, Gauge>::default();
        let changing_since = Family::<ClusterLabel, Gauge>::default();
        let ring_changes: Family<ChangeLabel, Histogram> =
            Family::new_with_constructor(ring_change_histogram);
        let recommended = Family::<RoleLabel, Gauge>::default();
        let autoscaled = Family::<RoleLabel, Counter>::default();
        registry.register(
            "autoscale_recommended",
            "The count the autoscaler's last load reading calls for, per ChatCluster and role (shards, gateway)",
            recommended.clone(),
        );
        registry.register(
            "autoscale_steps",
            "Counts the autoscaler set, per ChatCluster and role",
            autoscaled.clone(),
        );
        registry.register("reconciliations", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register(
            "failures",
            "Failed reconciles per ChatCluster by error; failed ring steps (Control) and refused children (ApplyRefused)",
            failures.clone(),
        );
        registry.register(
            "plan_steps",
            "Scaling plan steps executed, by kind",
            steps.clone(),
        );
        registry.register(
            "ring_epoch",
            "Committed ring epoch per ChatCluster",
            ring_epoch.clone(),
        );
        registry.register(
            "shards_ready",
            "Ready shards in the ring per ChatCluster",
            shards_ready.clone(),
        );
        registry.register(
            "shards_failed_over",
            "Shards taken out of the ring after staying NotReady, per ChatCluster",
            failed_over.clone(),
        );
        registry.register(
            "ring_change_started_timestamp_seconds",
            "Unix time the ring change in flight began (RingStable turned False); 0 when stable",
            changing_since.clone(),
        );
        registry.register(
            "ring_change_duration_seconds",
            "From RingStable turning False to the commit, per ChatCluster and kind of change",
            ring_changes.clone(),
        );
        Self {
            registry,
            reconciles,
            duration,
            failures,
            steps,
            ring_epoch,
            shards_ready,
            failed_over,
            changing_since,
            ring_changes,
            recommended,
            autoscaled,
        }
    }

    /// A reconcile finished after `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// A reconcile of `cluster` (`namespace/name`) failed with `error` (a
    /// variant name), or reported a fault (`Control`: a ring step;
    /// `ApplyRefused`: a child).
    pub fn failed(&self, cluster: &str, error: &'static str) {
        let label = ErrorLabel {
            cluster: cluster.to_string(),
            error,
        };
        self.failures.get_or_create(&label).inc();
    }

    /// A plan step of kind `step` was executed.
    pub fn step(&self, step: &'static str) {
        self.steps.get_or_create(&StepLabel { step }).inc();
    }

    /// The ring state of `cluster` (`namespace/name`) as `status` reports it.
    pub fn ring(&self, cluster: &str, status: &ChatClusterStatus) {
        let label = ClusterLabel {
            cluster: cluster.to_string(),
        };
        let ring = status.ring.clone().unwrap_or_default();
        let ready = status.shards.as_ref().map_or(0, |s| s.ready);
        let since = status
            .condition("RingStable")
            .filter(|c| c.status == "False")
            .map_or(0, |c| c.last_transition_time.0.as_second());
        self.ring_epoch.get_or_create(&label).set(ring.epoch as i64);
        self.shards_ready
            .get_or_create(&label)
            .set(i64::from(ready));
        let failed_over = ring.failed_over.len() as i64;
        self.failed_over.get_or_create(&label).set(failed_over);
        self.changing_since.get_or_create(&label).set(since);
    }

    /// What the autoscaler of `cluster` recommends, as `status` reports it.
    pub fn autoscale(&self, cluster: &str, status: &ChatClusterStatus) {
        let Some(a) = &status.autoscale else {
            return;
        };
        for (role, s) in [("shards", &a.shards), ("gateway", &a.gateway)] {
            if let Some(s) = s {
                let label = RoleLabel {
                    cluster: cluster.to_string(),
                    role,
                };
                self.recommended
                    .get_or_create(&label)
                    .set(i64::from(s.recommended));
            }
        }
    }

    /// The autoscaler of `cluster` set the count of `role`.
    pub fn autoscaled(&self, cluster: &str, role: &'static str) {
        let label = RoleLabel {
            cluster: cluster.to_string(),
            role,
        };
        self.autoscaled.get_or_create(&label).inc();
    }

    /// A ring change of kind `change` was committed in `cluster`, `took`
    /// after it began.
    pub fn ring_changed(&self, cluster: &str, change: &'static str, took: Duration) {
        let label = ChangeLabel {
            cluster: cluster.to_string(),
            change,
        };
        self.ring_changes
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use confab_api::cluster::{AutoscaleStatus, RingStatus, ScaleStatus, ShardsStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;

    /// A status of epoch 3 with 5 Ready shards, shard 4 failed over, and
    /// `RingStable` as `stable` since Unix time 1 800 000 000.
    fn status(stable: &str) -> ChatClusterStatus {
        ChatClusterStatus {
            conditions: vec![Condition {
                type_: "RingStable".into(),
                status: stable.into(),
                reason: "RingChangeNeeded".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap(),
                ),
            }],
            shards: Some(ShardsStatus {
                ready: 5,
                ..ShardsStatus::default()
            }),
            ring: Some(RingStatus {
                epoch: 3,
                failed_over: vec![4],
                ..RingStatus::default()
            }),
            ..ChatClusterStatus::default()
        }
    }

    #[test]
    fn exposes_labelled_series() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(20));
        m.failed("prod/chat", "Kube");
        m.step("Commit");
        m.ring("prod/chat", &status("True"));
        let text = m.encode();
        assert!(
            text.contains("confab_operator_reconciliations_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"confab_operator_failures_total{cluster="prod/chat",error="Kube"} 1"#)
        );
        assert!(text.contains(r#"confab_operator_plan_steps_total{step="Commit"} 1"#));
        assert!(text.contains(r#"confab_operator_ring_epoch{cluster="prod/chat"} 3"#));
        assert!(text.contains(r#"confab_operator_shards_ready{cluster="prod/chat"} 5"#));
        assert!(text.contains(r#"confab_operator_shards_failed_over{cluster="prod/chat"} 1"#));
        assert!(text.contains(
            r#"confab_operator_ring_change_started_timestamp_seconds{cluster="prod/chat"} 0"#
        ));
    }

    #[test]
    fn a_ring_change_in_flight_shows_since_when_and_a_commit_how_long_it_took() {
        let m = Metrics::new();
        m.ring("prod/chat", &status("False"));
        m.ring_changed("prod/chat", "FailOver", Duration::from_secs(90));
        let text = m.encode();
        assert!(
            text.contains(
                r#"confab_operator_ring_change_started_timestamp_seconds{cluster="prod/chat"} 1800000000"#
            ),
            "{text}"
        );
        let series = r#"confab_operator_ring_change_duration_seconds_count{cluster="prod/chat",change="FailOver"} 1"#;
        assert!(text.contains(series), "{text}");
        let bucket = r#"confab_operator_ring_change_duration_seconds_bucket{le="128.0",cluster="prod/chat",change="FailOver"} 1"#;
        assert!(text.contains(bucket), "{text}");
    }

    /// A status whose autoscaler recommends 3 shards and 2 gateways.
    fn autoscaled() -> ChatClusterStatus {
        let role = |n| ScaleStatus {
            recommended: n,
            ..ScaleStatus::default()
        };
        ChatClusterStatus {
            autoscale: Some(AutoscaleStatus {
                shards: Some(role(3)),
                gateway: Some(role(2)),
            }),
            ..ChatClusterStatus::default()
        }
    }

    #[test]
    fn the_autoscaler_shows_its_recommendation_and_counts_its_steps() {
        let m = Metrics::new();
        m.autoscale("prod/chat", &autoscaled());
        m.autoscaled("prod/chat", "gateway");
        let text = m.encode();
        for series in [
            r#"confab_operator_autoscale_recommended{cluster="prod/chat",role="shards"} 3"#,
            r#"confab_operator_autoscale_recommended{cluster="prod/chat",role="gateway"} 2"#,
            r#"confab_operator_autoscale_steps_total{cluster="prod/chat",role="gateway"} 1"#,
        ] {
            assert!(text.contains(series), "no {series} in {text}");
        }
    }

    /// Every `confab_operator_*` series the chart's dashboard and alert rules
    /// query is one this registry exposes.
    #[test]
    fn the_charts_dashboard_and_alerts_name_only_exposed_series() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(20));
        m.failed("prod/chat", "Kube");
        m.step("Commit");
        m.ring("prod/chat", &status("False"));
        m.ring_changed("prod/chat", "ScaleUp", Duration::from_secs(3));
        m.autoscale("prod/chat", &autoscaled());
        m.autoscaled("prod/chat", "shards");
        let exposed = series_names(&m.encode());
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/confab-operator");
        for file in ["dashboards/confab.json", "templates/prometheusrule.yaml"] {
            let text = std::fs::read_to_string(format!("{chart}/{file}")).unwrap();
            let named = metric_names(&text, "confab_operator_");
            assert!(!named.is_empty(), "{file} names no operator series");
            for name in named {
                assert!(exposed.contains(&name), "{file}: no series {name}");
            }
        }
    }

    /// The series names (before labels) of a text exposition.
    fn series_names(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect()
    }

    /// The words in `text` that begin with `prefix`, as metric names go
    /// (not a bare prefix, as in a comment's `confab_operator_*`).
    fn metric_names(text: &str, prefix: &str) -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with(prefix) && !w.ends_with('_'))
            .map(str::to_string)
            .collect()
    }
}
