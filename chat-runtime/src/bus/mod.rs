//! The `Bus` seam: how events reach the devices of a user, wherever they are
//! connected.
//!
//! Delivery is at-most-once (like core NATS): the store is the truth, and a
//! session that misses an event notices the gap in seqs and reads it back from
//! the store. A subscriber that cannot keep up is cut off (its stream ends)
//! rather than slowing the publisher; the session then closes with a
//! "reconnect" code and the device resumes from its watermarks.
//!
//! Beside the event fan-out the bus carries two more things, each its own
//! trait with an in-process and a NATS implementation: the push work queue
//! ([`queue`], on JetStream) and the live-session directory ([`sessions`],
//! in a JetStream key-value bucket).

pub mod local;
pub mod nats;
pub mod nats_queue;
pub mod nats_sessions;
pub mod queue;
pub mod sessions;

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Cause;
use crate::model::{ChatId, Seq, UserId};

/// One event on its way to a user's devices.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The chat the event belongs to, if any (presence events have none).
    pub chat: Option<ChatId>,
    /// The message seq for message events, 0 for everything else; sessions use
    /// it to skip duplicates and to detect gaps.
    pub seq: Seq,
    /// The encoded server frame, sent to the device as it is.
    pub frame: Bytes,
    /// The session a message was sent from: it has its `sent` and does not
    /// get the message back (the sender's other devices do).
    pub origin: Option<Origin>,
}

/// A live session's tag, unique among the sessions of the cluster (random).
pub type Origin = u64;

/// Failures of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// The bus is unavailable, because of `e` (an error or a message).
pub(crate) fn unavailable(e: impl Into<Cause>) -> BusError {
    BusError::Unavailable(e.into())
}

/// A live subscription to one user's events. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub events: crate::mailbox::Receiver<Envelope>,
}

/// Publish/subscribe by user.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends `event` to every current subscriber of `user`.
    async fn publish(&self, user: UserId, event: Envelope) -> Result<(), BusError>;
    /// Sends `event` to the subscribers of each of `users` (one fan-out call).
    async fn publish_many(&self, users: &[UserId], event: Envelope) -> Result<(), BusError> {
        for u in users {
            self.publish(*u, event.clone()).await?;
        }
        Ok(())
    }
    /// Subscribes to `user`'s events with a queue of `capacity` events; when
    /// the queue is full the subscription is cut off (its stream ends).
    async fn subscribe(&self, user: UserId, capacity: usize) -> Result<Subscription, BusError>;
}
