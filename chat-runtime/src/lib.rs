//! chat-runtime: Confab's chat server.
//!
//! # Layout
//! - [`model`]: users, chats, members, messages — plain data.
//! - [`protocol`]: WebSocket protocol v1, typed frames and codes; no I/O.
//! - [`store`]: the `Store` seam; embedded (redb) for standalone, CQL
//!   (ScyllaDB / Cassandra) for clusters; one conformance suite.
//! - [`bus`]: the `Bus` seam (per-user event fan-out); in-process for
//!   standalone, NATS for clusters; one conformance suite.
//! - [`cluster`]: cluster mode's pure cores — a shard's ring view, lease
//!   and the fence that orders its writes (ownership of chats during
//!   handoff; the store does not check fences yet, `docs/cluster.md` §10).
//! - [`shard`]: sequencing — per-chat seqs, dedup, membership, receipts as a
//!   pure state machine per chat, and the shell that loads chats, stores,
//!   publishes and queues pushes; the `ShardClient` seam.
//! - [`auth`]: password hashes and signed tokens; [`signin`]: backoff of
//!   failed sign-ins; [`client`]: client addresses and per-key caps;
//!   [`audit`]: the audit trail.
//! - [`presence`]: online / last seen, visible to contacts only.
//! - [`media`]: photos, videos, voice notes and files in object-storage
//!   buckets (the `Blobs` seam): uploads, previews, downloads, retention.
//! - [`push`]: push notifications for members with no live session — jobs,
//!   retry policy, providers (FCM, APNs, webhook) and the notifier.
//! - [`backoff`]: jittered waits between retries.
//! - [`node`]: what a gateway needs to serve a request: seams + policies.
//! - [`ops`]: one module per operation family (send, receipts, membership,
//!   history, devices) — the one path from a WebSocket frame or a REST body
//!   to the shard or store, shared by both edges.
//! - [`session`]: one device's WebSocket session (hello, resume, live),
//!   socket-free: a pure state machine (`session::state`) and the shell that
//!   performs its actions.
//! - [`gateway`]: the HTTP edge — one axum router for REST, media, the
//!   WebSocket upgrade, the embedded web client and the probes, served by
//!   hyper (optionally over TLS).
//! - [`standalone`]: everything in one process.
//! - [`cluster`]: the pure cores of cluster mode (shard ownership);
//!   [`roles`]: the `gateway` and `shard` processes around them.
//!
//! The core (`session`, `shard` but for its NATS client `shard::remote`,
//! `presence`, `node`, `ops`) imports neither the HTTP framework nor any network client; it talks
//! to the `Store`, `Bus` and `ShardClient` traits. `docs/message-path.md`
//! follows one message through these modules.

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod bus;
pub mod client;
pub mod cluster;
pub mod error;
pub mod gateway;
pub mod media;
pub mod metrics;
pub mod model;
pub mod node;
pub mod ops;
pub mod presence;
pub mod protocol;
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
