//! The push work queue (DESIGN §2, Bus seam): shards put [`PushJob`]s in,
//! notifiers take them out. Each job goes to one taker; a taker that does
//! not settle it (crash) loses it to another after a while; a job handed
//! back with a delay comes again after it. Jobs that never succeed end in a
//! dead-letter queue, with the reason.
//!
//! [`LocalQueue`] is standalone's in-memory queue; clusters use JetStream
//! ([`super::nats_queue`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{BusError, unavailable};
use crate::push::PushJob;

/// Jobs an in-memory queue holds before it refuses more.
pub const LOCAL_CAPACITY: usize = 65_536;
/// Dead letters an in-memory queue remembers (the oldest are forgotten).
pub const LOCAL_DEAD_LETTERS: usize = 1024;

/// The queue of push jobs.
#[async_trait]
pub trait PushQueue: Send + Sync + 'static {
    /// Queues `job`. Fails (rather than waits) when the queue cannot take it.
    async fn enqueue(&self, job: &PushJob) -> Result<(), BusError>;
    /// Waits for the next job.
    async fn next(&self) -> Result<Delivery, BusError>;
    /// Records a job that will never be delivered, and why.
    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), BusError>;
    /// The most recent dead letters (at most [`DEAD_LETTERS_SHOWN`]), oldest
    /// first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError>;
}

/// Most dead letters [`PushQueue::dead_letters`] returns.
pub const DEAD_LETTERS_SHOWN: usize = 1000;

/// A job that was given up on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub job: PushJob,
    pub reason: String,
}

/// How a taken job is settled with its queue.
#[async_trait]
pub trait Settle: Send {
    /// Done with it, whatever the outcome.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// Give it back, to come again after `after`.
    async fn retry(self: Box<Self>, after: Duration) -> Result<(), BusError>;
}

/// A taken job.
pub struct Delivery {
    pub job: PushJob,
    /// 1 the first time the job is taken, then 2, ...
    pub attempt: u32,
    settle: Box<dyn Settle>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("job", &self.job)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(job: PushJob, attempt: u32, settle: Box<dyn Settle>) -> Self {
        Self {
            job,
            attempt,
            settle,
        }
    }

    pub async fn ack(self) -> Result<(), BusError> {
        self.settle.ack().await
    }

    pub async fn retry(self, after: Duration) -> Result<(), BusError> {
        self.settle.retry(after).await
    }
}

type Item = (PushJob, u32);

/// In-memory queue for standalone: bounded, lost when the process ends
/// (standalone's devices are usually connected; clusters use JetStream).
#[derive(Debug)]
pub struct LocalQueue {
    tx: mpsc::Sender<Item>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Item>>,
    dead: Mutex<VecDeque<DeadLetter>>,
}

impl Default for LocalQueue {
    fn default() -> Self {
        Self::new(LOCAL_CAPACITY)
    }
}

impl LocalQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Self {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            dead: Mutex::new(VecDeque::new()),
        }
    }
}

struct LocalSettle {
    item: Item,
    tx: mpsc::Sender<Item>,
}

#[async_trait]
impl Settle for LocalSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }

    async fn retry(self: Box<Self>, after: Duration) -> Result<(), BusError> {
        let Self {
            item: (job, attempt),
            tx,
        } = *self;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            // Waits for room: a retry is never dropped for a full queue.
            let _ = tx.send((job, attempt + 1)).await;
        });
        Ok(())
    }
}

#[async_trait]
impl PushQueue for LocalQueue {
    async fn enqueue(&self, job: &PushJob) -> Result<(), BusError> {
        self.tx
            .try_send((job.clone(), 1))
            .map_err(|e| unavailable(format!("push queue: {e}")))
    }

    async fn next(&self) -> Result<Delivery, BusError> {
        let (job, attempt) = self
            .rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| unavailable("push queue closed"))?;
        let settle = LocalSettle {
            item: (job.clone(), attempt),
            tx: self.tx.clone(),
        };
        Ok(Delivery::new(job, attempt, Box::new(settle)))
    }

    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), BusError> {
        tracing::warn!(job = %job.key(), reason, "push dead-lettered");
        let mut dead = self.dead.lock().expect("dead letters");
        if dead.len() == LOCAL_DEAD_LETTERS {
            dead.pop_front();
        }
        dead.push_back(DeadLetter {
            job: job.clone(),
            reason: reason.to_owned(),
        });
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let dead = self.dead.lock().expect("dead letters");
        let skip = dead.len().saturating_sub(DEAD_LETTERS_SHOWN);
        Ok(dead.iter().skip(skip).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::push_queue(&super::LocalQueue::default()).await;
    }
}
