//! Cluster mode's pure cores: what a shard may do, decided from inputs alone.
//!
//! - [`ownership`]: one shard's view of the ring (committed and prepared),
//!   its lease, and the answer to "may I sequence this chat now?" with the
//!   [`Fence`] that orders its writes (the store does not check fences yet:
//!   `docs/cluster.md` §10). The control server (`PrepareRing`,
//!   `CommitRing`, `AbortRing`, `Drain`, `Status`) and the shard process are
//!   thin shells over it.
//!
//! Nothing here performs I/O, reads a clock or imports tokio, NATS or the
//! CQL driver: time comes in as [`Millis`], leases as the revisions a
//! key-value store handed out. The protocol is described in `docs/cluster.md`
//! and model-checked in `tests/handoff_model`.

pub mod ownership;

pub use ownership::{
    Fence, Handoff, Lease, Millis, NotOwner, Ownership, OwnershipError, OwnershipRecord, Status,
};
