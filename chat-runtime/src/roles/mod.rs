//! Cluster roles (DESIGN §2): `gateway`, `shard` and `notifier` processes configured by
//! the cluster config file the operator writes (`confab_api::config`).
//!
//! - [`connect`]: the config file, NATS and the CQL store, the signing key.
//! - [`tls_client`]: TLS to NATS and to the CQL nodes from a mounted Secret.
//! - [`lease`]: a shard's lease in a NATS key-value bucket (compare-and-set
//!   by revision, expiring on its own when the holder dies).
//! - [`shard`]: sequencing the chats the ring gives this shard, behind the
//!   ownership core ([`crate::cluster::ownership`]).
//! - [`records`]: the shards' persisted ownership records, and catching up
//!   with a ring committed while a shard was away.
//! - [`control`]: the operator's gRPC control API (`crds/proto/control.proto`).
//! - [`gateway`]: the WebSocket/HTTP edge, routing commands to shards.
//! - [`notifier`]: push jobs from the JetStream queue to the push services.
//!
//! These are thin shells: the decisions live in `cluster`, `shard`, `node`
//! and `session`.

pub mod connect;
pub mod control;
pub mod gateway;
pub mod lease;
pub mod notifier;
pub mod records;
pub mod shard;
pub mod tls_client;

use std::time::Instant;

use crate::cluster::Millis;

/// Milliseconds on this process's monotonic clock (for leases).
pub fn monotonic_now() -> Millis {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    Millis(start.elapsed().as_millis() as u64)
}
