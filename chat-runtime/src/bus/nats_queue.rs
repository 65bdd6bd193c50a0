//! The push work queue on JetStream, for clusters.
//!
//! Two streams per cluster: `confab-<cluster>-push` (work-queue retention:
//! a job is removed once a notifier acknowledges it; replicated like the
//! session cache) and `confab-<cluster>-push-dead` (dead letters, kept for
//! [`DEAD_LETTER_AGE`]). Notifiers share one durable pull consumer, so each
//! job goes to one of them; a job not acknowledged within [`ACK_WAIT`] (its
//! notifier died) goes to another; a retry is a negative acknowledgement
//! with a delay. Publishing sets `Nats-Msg-Id` to the job's key, so a job
//! queued twice within the stream's duplicate window is stored once.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;

use super::queue::{DEAD_LETTERS_SHOWN, DeadLetter, Delivery, PushQueue, Settle};
use super::{BusError, unavailable};
use crate::push::PushJob;

/// How long a notifier may hold a job before another gets it.
pub const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long dead letters are kept.
pub const DEAD_LETTER_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Window in which a job queued again (same key) is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Name of the notifiers' shared consumer.
pub const CONSUMER: &str = "notifier";

/// The queue of one cluster.
pub struct NatsQueue {
    js: jetstream::Context,
    jobs_subject: String,
    dead_subject: String,
    dead: stream::Stream,
    consumer: consumer::PullConsumer,
    /// Pulled messages; reopened after an error (e.g. NATS restarted).
    messages: Mutex<Option<consumer::pull::Stream>>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue")
            .field("jobs_subject", &self.jobs_subject)
            .finish_non_exhaustive()
    }
}

/// The stream `config` names, created or updated to `config`.
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, BusError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(unavailable)?;
    js.get_stream(name).await.map_err(unavailable)
}

impl NatsQueue {
    /// Opens the streams and consumer of `cluster`, with `replicas` copies
    /// of each stream: creates them, or brings existing streams to this
    /// configuration (a raised `cache.replicas` resizes them).
    pub async fn open(
        js: jetstream::Context,
        cluster: &str,
        replicas: usize,
    ) -> Result<Self, BusError> {
        let jobs_subject = format!("confab.{cluster}.push.jobs");
        let dead_subject = format!("confab.{cluster}.push.dead");
        let jobs = ensure_stream(
            &js,
            stream::Config {
                name: format!("confab-{cluster}-push"),
                subjects: vec![jobs_subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                num_replicas: replicas.max(1),
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            },
        )
        .await?;
        let dead = ensure_stream(
            &js,
            stream::Config {
                name: format!("confab-{cluster}-push-dead"),
                subjects: vec![dead_subject.clone()],
                num_replicas: replicas.max(1),
                max_age: DEAD_LETTER_AGE,
                ..Default::default()
            },
        )
        .await?;
        let consumer = jobs
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(Self {
            js,
            jobs_subject,
            dead_subject,
            dead,
            consumer,
            messages: Mutex::new(None),
        })
    }

    async fn publish(&self, subject: &str, key: &str, body: Vec<u8>) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", key);
        self.js
            .publish_with_headers(subject.to_owned(), headers, body.into())
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

struct NatsSettle(jetstream::Message);

#[async_trait]
impl Settle for NatsSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.0.double_ack().await.map_err(unavailable)
    }

    async fn retry(self: Box<Self>, after: Duration) -> Result<(), BusError> {
        self.0
            .ack_with(AckKind::Nak(Some(after)))
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl PushQueue for NatsQueue {
    async fn enqueue(&self, job: &PushJob) -> Result<(), BusError> {
        let body = serde_json::to_vec(job).map_err(unavailable)?;
        self.publish(&self.jobs_subject, &job.key(), body).await
    }

    async fn next(&self) -> Result<Delivery, BusError> {
        let mut guard = self.messages.lock().await;
        loop {
            if guard.is_none() {
                *guard = Some(self.consumer.messages().await.map_err(unavailable)?);
            }
            let pulled = guard.as_mut().expect("just opened").next().await;
            let msg = match pulled {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    *guard = None;
                    return Err(unavailable(e));
                }
                None => {
                    *guard = None;
                    return Err(unavailable("push consumer ended"));
                }
            };
            let attempt = msg.info().map_or(1, |i| i.delivered.max(1) as u32);
            match serde_json::from_slice::<PushJob>(&msg.payload) {
                Ok(job) => return Ok(Delivery::new(job, attempt, Box::new(NatsSettle(msg)))),
                Err(e) => {
                    // Not ours to deliver, and it never will be: keep it
                    // where an operator can see it, then drop it here.
                    tracing::warn!(error = %e, "unreadable push job dead-lettered");
                    let key = format!("unreadable.{}", msg.info().map_or(0, |i| i.stream_sequence));
                    self.publish(&self.dead_subject, &key, msg.payload.to_vec())
                        .await?;
                    let _ = msg.ack_with(AckKind::Term).await;
                }
            }
        }
    }

    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), BusError> {
        tracing::warn!(job = %job.key(), reason, "push dead-lettered");
        let letter = DeadLetter {
            job: job.clone(),
            reason: reason.to_owned(),
        };
        let body = serde_json::to_vec(&letter).map_err(unavailable)?;
        self.publish(&self.dead_subject, &format!("dead.{}", job.key()), body)
            .await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let mut dead = self.dead.clone();
        let state = dead.info().await.map_err(unavailable)?.state.clone();
        if state.messages == 0 {
            return Ok(Vec::new());
        }
        let from = state.first_sequence.max(
            state
                .last_sequence
                .saturating_sub(DEAD_LETTERS_SHOWN as u64 - 1),
        );
        let mut out = Vec::new();
        for seq in from..=state.last_sequence {
            // Gaps (expired or deleted) are skipped; so are unreadable jobs.
            if let Ok(m) = dead.get_raw_message(seq).await
                && let Ok(letter) = serde_json::from_slice(&m.payload)
            {
                out.push(letter);
            }
        }
        Ok(out)
    }
}
