//! The operator's Prometheus metrics, served at `/metrics`.
//!
//! Labels are bounded: failure labels are error variant names, step labels
//! are step kinds, cluster labels are `namespace/name` of ChatClusters (a
//! handful per installation).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
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
        registry.register("reconciliations", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register("failures", "Failed reconciles by error; failed ring steps (Control) and refused children (ApplyRefused)", failures.clone());
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
        Self {
            registry,
            reconciles,
            duration,
            failures,
            steps,
            ring_epoch,
            shards_ready,
        }
    }

    /// A reconcile finished after `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// A reconcile failed with `error` (a variant name), or reported a
    /// fault (`Control`: a ring step; `ApplyRefused`: a child).
    pub fn failed(&self, error: &'static str) {
        self.failures.get_or_create(&ErrorLabel { error }).inc();
    }

    /// A plan step of kind `step` was executed.
    pub fn step(&self, step: &'static str) {
        self.steps.get_or_create(&StepLabel { step }).inc();
    }

    /// The ring state of `cluster` (`namespace/name`).
    pub fn ring(&self, cluster: &str, epoch: u64, ready: i64) {
        let label = ClusterLabel {
            cluster: cluster.to_string(),
        };
        self.ring_epoch.get_or_create(&label).set(epoch as i64);
        self.shards_ready.get_or_create(&label).set(ready);
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
    use super::*;

    #[test]
    fn exposes_labelled_series() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(20));
        m.failed("Kube");
        m.step("Commit");
        m.ring("prod/chat", 3, 5);
        let text = m.encode();
        assert!(
            text.contains("confab_operator_reconciliations_total 1"),
            "{text}"
        );
        assert!(text.contains(r#"confab_operator_failures_total{error="Kube"} 1"#));
        assert!(text.contains(r#"confab_operator_plan_steps_total{step="Commit"} 1"#));
        assert!(text.contains(r#"confab_operator_ring_epoch{cluster="prod/chat"} 3"#));
    }
}
