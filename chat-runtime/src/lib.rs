//! chat-runtime: Confab's chat server.
//!
//! # Layout
//! Like the operator: pure cores with their tests beside them, seams (traits
//! with one conformance suite each) and their adapters, one HTTP edge, and
//! the processes that wire them together.
//!
//! **Core** — the decisions; talks to the seams' traits only:
//! - [`model`]: users, chats, members, messages — plain data;
//!   [`protocol`]: WebSocket protocol v1, typed frames and codes (the
//!   `confab-protocol` crate, shared with the Rust client);
//!   [`text`]: display names and titles, cleaned.
//! - [`ops`]: one module per operation family (send, receipts, membership,
//!   history, devices) — the one path from a WebSocket frame or a REST body
//!   to the shard or store, shared by both edges.
//! - [`shard`]: sequencing — per-chat seqs, dedup, membership, receipts and
//!   push audiences as a pure state machine per chat (`shard::chat`), and
//!   the sequencer that loads chats, stores, publishes and queues pushes.
//! - [`session`]: one device's session (hello, resume, live) as a pure
//!   state machine (`session::state`) and the shell that performs its
//!   actions.
//! - [`cluster`]: a shard's ring view, lease and fence (ownership of chats
//!   during handoff; the store does not check fences yet,
//!   `docs/cluster.md` §10).
//! - [`presence`]: online / last seen, visible to contacts only;
//!   [`auth`]: password hashes and signed tokens; [`signin`]: backoff of
//!   failed sign-ins; [`client`]: client addresses and per-key caps;
//!   [`audit`]: the audit trail; [`backoff`]: jittered retry waits;
//!   [`mailbox`]: queues that hold no buffer while empty.
//! - [`node`]: what serving a request needs — the seams and the policies;
//!   [`error`]: the API's error; [`metrics`]: what every process exports.
//!
//! **Seams and adapters** — each seam's module holds its trait, its
//! conformance suite (feature `testkit`) and its adapters:
//! - [`store`]: `Store`; `store::embedded` (fjall) for standalone,
//!   `store::scylla` (CQL: ScyllaDB / Cassandra) for clusters.
//! - [`bus`]: `Bus` (per-user fan-out), `Sessions` (who is online where),
//!   `PushQueue`; in-process for standalone, NATS for clusters.
//! - `ShardClient` (in [`shard`]): in-process for standalone, NATS
//!   request/reply to the ring's owner (`shard::remote`) for clusters.
//! - [`media`]: photos, videos, voice notes and files in object-storage
//!   buckets (the `Blobs` seam): uploads, previews, downloads, retention.
//! - [`push`]: push providers (FCM, APNs, webhook), their retry policy and
//!   the notifier that drains the push queue.
//!
//! **Edge** — [`gateway`]: one axum router for REST, media, the WebSocket
//! upgrade, the embedded web client and the probes, served by hyper
//! (optionally over TLS).
//!
//! **Processes** — [`standalone`]: everything in one process on one machine;
//! [`roles`]: a cluster's `gateway`, `shard` and `notifier` processes and
//! their control API.
//!
//! The core imports neither the HTTP framework nor any network client: only
//! the adapters above do.
//! `docs/message-path.md` follows one message through these modules.

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod bus;
pub mod client;
pub mod cluster;
pub mod error;
pub mod gateway;
pub mod mailbox;
pub mod media;
pub mod metrics;
pub mod model;
pub mod node;
pub mod ops;
pub mod presence;
pub use confab_protocol as protocol;
pub mod push;
pub mod roles;
pub mod session;
pub mod shard;
pub mod signin;
pub mod standalone;
pub mod store;
pub mod text;

/// Installs the process-wide TLS crypto provider (ring): every HTTPS client
/// here (object storage, NATS, kube) is built without a provider of its own,
/// so call this first in every `main` and test harness. Calling it twice is
/// harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
