//! Where a shard queues push jobs, off the chat's critical section: the
//! message is stored and fanned out already, so a slow or refusing queue
//! never fails or delays a send. Which jobs to queue is decided by the core
//! (`chat::Fanout::push_jobs`); this only tells who is online and enqueues.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::bus::queue::PushQueue;
use crate::bus::sessions::Sessions;
use crate::metrics::Metrics;
use crate::model::UserId;
use crate::push::PushJob;

/// Batches of push jobs a shard queues at once before it drops new ones.
pub const PUSH_BACKLOG: usize = 4096;

/// A push queue and the live-session directory.
pub struct Pushes {
    queue: Arc<dyn PushQueue>,
    sessions: Arc<dyn Sessions>,
    metrics: Arc<Metrics>,
    /// Batches of jobs being queued.
    in_flight: Arc<Semaphore>,
}

impl Pushes {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        sessions: Arc<dyn Sessions>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            sessions,
            metrics,
            in_flight: Arc::new(Semaphore::new(PUSH_BACKLOG)),
        }
    }

    /// Whether `user` has a live session anywhere, as far as this node knows.
    pub fn online(&self, user: UserId) -> bool {
        self.sessions.online(user)
    }

    /// Queues `jobs` in the background. A refusal is logged and counted; so
    /// is a backlog past [`PUSH_BACKLOG`] batches in flight (the queue is
    /// not keeping up: the batch is dropped).
    pub fn queue(&self, jobs: Vec<PushJob>) {
        if jobs.is_empty() {
            return;
        }
        let metrics = self.metrics.clone();
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics.push_enqueue_failures.inc_by(jobs.len() as u64);
            tracing::warn!(
                jobs = jobs.len(),
                "push queue backlog full: jobs not queued"
            );
            return;
        };
        let queue = self.queue.clone();
        tokio::spawn(async move {
            let queued = futures::future::join_all(jobs.iter().map(|j| queue.enqueue(j))).await;
            for (job, result) in jobs.iter().zip(queued) {
                match result {
                    Ok(()) => {
                        metrics.push_enqueued.inc();
                    }
                    Err(e) => {
                        metrics.push_enqueue_failures.inc();
                        tracing::warn!(error = %e, job = %job.key(), "push job not queued");
                    }
                }
            }
            drop(permit);
        });
    }
}
