//! Prometheus metrics for every role, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::ErrorCode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WireLabel {
    version: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabel {
    platform: &'static str,
    outcome: &'static str,
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket sessions.
    pub connections: Gauge,
    /// Messages stored (user and system).
    pub messages: Counter,
    /// Frames written to devices.
    pub deliveries: Counter,
    /// Sessions closed because they fell behind.
    pub slow_consumers: Counter,
    /// Time from a `send` frame's arrival to its `sent` ack, in seconds.
    pub send_latency: Latency,
    errors: Family<CodeLabel, Counter>,
    /// Media bytes received in uploads.
    pub media_bytes_in: Counter,
    /// Media bytes sent in downloads.
    pub media_bytes_out: Counter,
    /// Time to receive, check and store an upload, in seconds.
    pub upload_seconds: Histogram,
    media_rejects: Family<ReasonLabel, Counter>,
    /// Media shares a stored message could not record (logged; the message
    /// is sent, but its recipients may not download the media).
    pub media_share_failures: Counter,
    /// Push jobs queued (one per offline recipient of a message).
    pub push_enqueued: Counter,
    /// Push jobs the queue refused (logged; the message itself is stored).
    pub push_enqueue_failures: Counter,
    /// Push jobs given up on (in the dead-letter queue).
    pub push_dead_letters: Counter,
    push_attempts: Family<PushLabel, Counter>,
    audit_events: Family<EventLabel, Counter>,
    wire_commands: Family<WireLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A latency histogram that also answers its bucket counts (for the control
/// API's `Status`; the Prometheus histogram does not expose them).
pub struct Latency {
    histogram: Histogram,
    bounds: Vec<f64>,
    /// Observations per bucket; the last has no upper bound.
    counts: Vec<AtomicU64>,
}

impl Latency {
    fn new(bounds: impl Iterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds.collect();
        Self {
            histogram: Histogram::new(bounds.iter().copied()),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
        }
    }

    /// Records one observation, in seconds.
    pub fn observe(&self, seconds: f64) {
        self.histogram.observe(seconds);
        let bucket = self.bounds.partition_point(|&le| le < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// `(upper bound in seconds, observations in that bucket alone)`; the
    /// last bound is infinite.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds
            .zip(&self.counts)
            .map(|(le, n)| (le, n.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let connections = Gauge::default();
        let messages = Counter::default();
        let deliveries = Counter::default();
        let slow_consumers = Counter::default();
        let send_latency = Latency::new(exponential_buckets(0.0001, 2.0, 16));
        let errors = Family::<CodeLabel, Counter>::default();
        let media_bytes_in = Counter::default();
        let media_bytes_out = Counter::default();
        let upload_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let media_rejects = Family::<ReasonLabel, Counter>::default();
        let media_share_failures = Counter::default();
        let push_enqueued = Counter::default();
        let push_enqueue_failures = Counter::default();
        let push_dead_letters = Counter::default();
        let push_attempts = Family::<PushLabel, Counter>::default();
        let audit_events = Family::<EventLabel, Counter>::default();
        let wire_commands = Family::<WireLabel, Counter>::default();
        registry.register(
            "shard_commands",
            "Commands a shard received from gateways, by wire version",
            wire_commands.clone(),
        );
        registry.register(
            "audit_events",
            "Security-relevant events (the audit log), by kind",
            audit_events.clone(),
        );
        registry.register(
            "push_enqueued",
            "Push jobs queued for offline recipients",
            push_enqueued.clone(),
        );
        registry.register(
            "push_enqueue_failures",
            "Push jobs the queue refused",
            push_enqueue_failures.clone(),
        );
        registry.register(
            "push_dead_letters",
            "Push jobs given up on",
            push_dead_letters.clone(),
        );
        registry.register(
            "push_attempts",
            "Deliveries to push services, by platform and outcome",
            push_attempts.clone(),
        );
        registry.register(
            "media_bytes_in",
            "Media bytes received in uploads",
            media_bytes_in.clone(),
        );
        registry.register(
            "media_bytes_out",
            "Media bytes sent in downloads",
            media_bytes_out.clone(),
        );
        registry.register(
            "media_upload_seconds",
            "Time to receive, check and store an upload",
            upload_seconds.clone(),
        );
        registry.register(
            "media_upload_rejects",
            "Uploads refused, by reason",
            media_rejects.clone(),
        );
        registry.register(
            "media_share_failures",
            "Media shares a stored message could not record",
            media_share_failures.clone(),
        );
        registry.register(
            "connections",
            "Open WebSocket sessions",
            connections.clone(),
        );
        registry.register("messages", "Messages stored", messages.clone());
        registry.register(
            "deliveries",
            "Frames written to devices",
            deliveries.clone(),
        );
        registry.register(
            "slow_consumer_closes",
            "Sessions closed because they fell behind",
            slow_consumers.clone(),
        );
        registry.register(
            "send_latency_seconds",
            "From a send frame's arrival to its durable ack",
            send_latency.histogram.clone(),
        );
        registry.register(
            "errors",
            "Errors returned to clients, by code",
            errors.clone(),
        );
        Self {
            registry,
            connections,
            messages,
            deliveries,
            slow_consumers,
            send_latency,
            errors,
            media_bytes_in,
            media_bytes_out,
            upload_seconds,
            media_rejects,
            media_share_failures,
            push_enqueued,
            push_enqueue_failures,
            push_dead_letters,
            push_attempts,
            audit_events,
            wire_commands,
        }
    }

    /// Counts one command a shard received in wire `version`.
    pub fn wire_command(&self, version: u8) {
        self.wire_commands
            .get_or_create(&WireLabel { version })
            .inc();
    }

    /// Counts one audited event (see [`crate::audit`]).
    pub fn audit(&self, event: &'static str) {
        self.audit_events.get_or_create(&EventLabel { event }).inc();
    }

    /// Counts one delivery attempt to a push service.
    pub fn push_attempt(&self, platform: &'static str, outcome: &'static str) {
        self.push_attempts
            .get_or_create(&PushLabel { platform, outcome })
            .inc();
    }

    /// Counts one error returned to a client.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// Counts one refused upload.
    pub fn media_reject(&self, reason: &'static str) {
        self.media_rejects
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
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
    fn latency_buckets_count_each_observation_once_at_its_upper_bound() {
        let l = Latency::new([0.1, 0.2].into_iter());
        for v in [0.05, 0.1, 0.15, 0.3, 7.0] {
            l.observe(v);
        }
        assert_eq!(
            l.buckets(),
            vec![(0.1, 2), (0.2, 1), (f64::INFINITY, 2)],
            "an observation equal to a bound falls in that bound's bucket, as Prometheus counts it"
        );
    }

    /// Every runtime series (`confab_*` but the operator's) that the chart's
    /// dashboard and alert rules query is one this registry exposes.
    #[test]
    fn the_charts_dashboard_and_alerts_name_only_exposed_series() {
        let m = Metrics::new();
        // Labelled families show only once they have a series.
        m.error(ErrorCode::Unavailable);
        m.media_reject("too_large");
        m.push_attempt("fcm", "delivered");
        m.audit("login");
        let text = m.render();
        let exposed: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/confab-operator");
        for file in ["dashboards/confab.json", "templates/prometheusrule.yaml"] {
            let text = std::fs::read_to_string(format!("{chart}/{file}")).unwrap();
            let named: Vec<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.starts_with("confab_") && !w.ends_with('_'))
                .filter(|w| !w.starts_with("confab_operator_"))
                .collect();
            assert!(!named.is_empty(), "{file} names no runtime series");
            for name in named {
                assert!(exposed.contains(&name), "{file}: no series {name}");
            }
        }
    }
}
