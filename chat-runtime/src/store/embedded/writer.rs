//! The embedded store's single writer thread: it takes every write queued
//! while the previous commit ran and commits them in one transaction (a
//! group commit: one journal append and one `fdatasync`), answering each
//! caller once that commit is durable, and expires old dedup entries
//! between commits.

use std::sync::Arc;

use fjall::{PersistMode, SingleWriterTxDatabase, SingleWriterWriteTx as Tx};
use tokio::sync::{mpsc, oneshot};

use super::tables::{Keyspaces, expire_dedup};
use crate::store::{StoreError, backend};

/// Most jobs folded into one commit; bounds the latency of a commit.
const MAX_BATCH: usize = 1024;
/// Writes queued before callers wait (backpressure instead of unbounded memory).
const QUEUE: usize = 8192;

/// How often the writer expires dedup entries.
const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Most dedup entries expired in one transaction.
const EXPIRE_BATCH: usize = 10_000;

/// Called after the batch's commit with its outcome.
type Completer = Box<dyn FnOnce(Option<&Shared>) + Send>;
/// Why a group commit failed, for every write in it.
type Shared = Arc<dyn std::error::Error + Send + Sync>;

fn shared(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Shared {
    Arc::from(e.into())
}

/// A write whose group commit failed (for this write or another in it).
#[derive(Debug, thiserror::Error)]
#[error("the group commit failed: {0}")]
struct CommitFailed(#[source] Shared);
/// A write applied inside the shared transaction. `poisoned` is true when the
/// job failed after it may have written, which aborts the whole batch.
type Job = Box<dyn FnOnce(&mut Tx, &Keyspaces) -> (Completer, bool) + Send>;

/// The writer thread is gone (the store is closing).
#[derive(Debug, thiserror::Error)]
#[error("the store's writer thread stopped")]
struct WriterStopped;

/// The writer thread's queue; dropping it stops the thread and waits for it.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // Finishes the commit in flight (if any), then the thread exits.
            let _ = thread.join();
        }
    }
}

impl Writer {
    /// Starts the thread that writes to `db`, expiring dedup entries older
    /// than `dedup_ttl`.
    pub(super) fn start(
        db: SingleWriterTxDatabase,
        keyspaces: Keyspaces,
        dedup_ttl: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&db, &keyspaces, queue, dedup_ttl))
            .map_err(backend)?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next group commit and resolves once it is durable.
    pub(super) async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx, &Keyspaces) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn, keyspaces| {
            let result = f(txn, keyspaces);
            let poisoned = matches!(result, Err(StoreError::Backend(_)));
            let complete: Completer = Box::new(move |commit_error| {
                let out = match commit_error {
                    None => result,
                    Some(e) => Err(backend(CommitFailed(e.clone()))),
                };
                let _ = tx.send(out);
            });
            (complete, poisoned)
        });
        self.jobs
            .as_ref()
            .expect("set until dropped")
            .send(job)
            .await
            .map_err(|_| backend(WriterStopped))?;
        rx.await.map_err(|_| backend(WriterStopped))?
    }
}

/// A write transaction whose commit is durable (journal written and
/// `fdatasync`ed) when `commit` returns.
fn durable(db: &SingleWriterTxDatabase) -> Tx<'_> {
    db.write_tx().durability(Some(PersistMode::SyncData))
}

/// Expires dedup entries older than `ttl` in a transaction of its own.
fn expire_now(db: &SingleWriterTxDatabase, keyspaces: &Keyspaces, ttl: std::time::Duration) {
    let before = crate::model::now_ms() - ttl.as_millis() as i64;
    let mut txn = durable(db);
    let result = expire_dedup(&mut txn, keyspaces, before, EXPIRE_BATCH)
        .and_then(|n| txn.commit().map(|()| n).map_err(backend));
    match result {
        Ok(0) => {}
        Ok(n) => tracing::debug!(expired = n, "store: dedup entries expired"),
        Err(e) => tracing::warn!(error = %e, "store: expiring dedup entries failed"),
    }
}

fn writer_loop(
    db: &SingleWriterTxDatabase,
    keyspaces: &Keyspaces,
    mut jobs: mpsc::Receiver<Job>,
    dedup_ttl: std::time::Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut next_expiry = std::time::Instant::now();
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let mut txn = durable(db);
        let mut completers = Vec::with_capacity(batch.len());
        let mut poisoned = false;
        for job in batch.drain(..) {
            let (c, p) = job(&mut txn, keyspaces);
            poisoned |= p;
            completers.push(c);
        }
        let committed = if poisoned {
            txn.rollback();
            Err(shared("batch aborted after a storage error"))
        } else {
            txn.commit().map_err(shared)
        };
        let err = committed.err();
        for c in completers {
            c(err.as_ref());
        }
        // Callers are answered; now the housekeeping, when it is due.
        if std::time::Instant::now() >= next_expiry {
            expire_now(db, keyspaces, dedup_ttl);
            next_expiry = std::time::Instant::now() + EXPIRE_EVERY;
        }
    }
}
