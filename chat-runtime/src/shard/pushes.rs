//! Where a shard queues push jobs, off the chat's critical section: the
//! message is stored and fanned out already, so a slow or refusing queue
//! never fails or delays a send. Which jobs to queue is decided by the core
//! (`chat::Fanout::push_jobs`); this only tells who is online and enqueues.
//! Refusals are counted one by one and logged at most once a second: at
//! overload (recipients cut off, a full queue) a line per job would add
//! the log to the load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    warnings: Arc<Warnings>,
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
            warnings: Arc::new(Warnings::new(Duration::from_secs(1))),
        }
    }

    /// Whether `user` has a live session anywhere, as far as this node knows.
    pub fn online(&self, user: UserId) -> bool {
        self.sessions.online(user)
    }

    /// Queues `jobs` in the background. A refusal is counted, and so is a
    /// backlog past [`PUSH_BACKLOG`] batches in flight (the queue is not
    /// keeping up: the batch is dropped); both are logged at most once a
    /// second, with how many went unlogged.
    pub fn queue(&self, jobs: Vec<PushJob>) {
        if jobs.is_empty() {
            return;
        }
        let (metrics, warnings) = (self.metrics.clone(), self.warnings.clone());
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics.push_enqueue_failures.inc_by(jobs.len() as u64);
            if let Some(unlogged) = warnings.admit(Instant::now()) {
                tracing::warn!(
                    jobs = jobs.len(),
                    unlogged,
                    "push queue backlog full: jobs not queued"
                );
            }
            return;
        };
        let queue = self.queue.clone();
        tokio::spawn(async move {
            let queued = futures::future::join_all(jobs.iter().map(|j| queue.enqueue(j))).await;
            let mut refused = None;
            for (job, result) in jobs.iter().zip(queued) {
                match result {
                    Ok(()) => {
                        metrics.push_enqueued.inc();
                    }
                    Err(e) => {
                        metrics.push_enqueue_failures.inc();
                        if refused.is_none() {
                            refused = Some((job.key(), e));
                        }
                    }
                }
            }
            if let Some((job, error)) = refused
                && let Some(unlogged) = warnings.admit(Instant::now())
            {
                tracing::warn!(%error, %job, unlogged, "push job not queued");
            }
            drop(permit);
        });
    }
}

/// A log line at most once per `every`, counting the ones it held back.
struct Warnings {
    every: Duration,
    /// When the last line was let through.
    last: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl Warnings {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether a warning at `now` is logged: then `Some` of how many were
    /// held back since the last one.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().expect("warnings lock");
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_let_through_once_per_period_with_the_count_held_back() {
        let w = Warnings::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(w.admit(t0), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(w.admit(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(w.admit(t0 + Duration::from_secs(1)), Some(3));
        assert_eq!(w.admit(t0 + Duration::from_millis(1500)), None);
        assert_eq!(w.admit(t0 + Duration::from_secs(3)), Some(1));
    }
}
