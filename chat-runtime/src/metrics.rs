//! Prometheus metrics for every role, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::protocol::ErrorCode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
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
    pub send_latency: Histogram,
    errors: Family<CodeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let connections = Gauge::default();
        let messages = Counter::default();
        let deliveries = Counter::default();
        let slow_consumers = Counter::default();
        let send_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let errors = Family::<CodeLabel, Counter>::default();
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
            send_latency.clone(),
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
        }
    }

    /// Counts one error returned to a client.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
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
