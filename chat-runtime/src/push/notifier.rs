//! The notifier: takes push jobs off the queue and delivers them.
//!
//! A job for a user is split into one job per registered device (the unit
//! that is retried, so a device that succeeded is never notified twice
//! because another failed). A device job is skipped when the user has read
//! the message meanwhile; otherwise its provider is called and
//! [`policy::decide`] says whether to acknowledge, forget the device, retry
//! later or dead-letter it. Nothing is dropped without a trace: every job
//! ends delivered, skipped for a reason, or in the dead-letter queue.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use super::policy::{self, Action, Outcome};
use super::providers::Providers;
use super::{Notification, PushError, PushJob};
use crate::backoff;
use crate::bus::queue::{Delivery, PushQueue};
use crate::metrics::Metrics;
use crate::model::{ChatKind, Device};
use crate::store::{Store, StoreError};

/// Jobs one notifier works on at once.
pub const CONCURRENCY: usize = 64;

/// The worker.
pub struct Notifier {
    queue: Arc<dyn PushQueue>,
    store: Arc<dyn Store>,
    providers: Providers,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// Why a device job was settled without a delivery attempt.
#[derive(Debug)]
enum Skip {
    Read,
    DeviceGone,
}

impl Notifier {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        store: Arc<dyn Store>,
        providers: Providers,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            store,
            providers,
            metrics,
        }
    }

    /// Works until `stop` turns true, then finishes the jobs in hand.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut waits = backoff::reconnect();
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("never closed"),
                _ = stop.wait_for(|s| *s) => break,
            };
            let delivery = tokio::select! {
                d = self.queue.next() => d,
                _ = stop.wait_for(|s| *s) => break,
            };
            match delivery {
                Ok(d) => {
                    waits = backoff::reconnect();
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.handle(d).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "push queue unavailable; retrying");
                    tokio::time::sleep(waits.next().unwrap_or_default()).await;
                }
            }
        }
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
    }

    /// Settles one taken job.
    pub async fn handle(&self, d: Delivery) {
        let result = match d.job.device.clone() {
            None => self.split(d).await,
            Some(device) => self.deliver(d, &device).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "push job not settled; the queue will offer it again");
        }
    }

    /// One job per device of the user.
    async fn split(&self, d: Delivery) -> Result<(), PushError> {
        let devices = match self.store.devices(d.job.user).await {
            Ok(devices) => devices,
            Err(e) => return self.retry_later(d, &e.to_string()).await,
        };
        for device in &devices {
            if let Err(e) = self
                .queue
                .enqueue(&d.job.for_device(&device.device_id))
                .await
            {
                // Jobs already queued are dropped as duplicates next time.
                return self.retry_later(d, &e.to_string()).await;
            }
        }
        self.settle(d, Action::Done).await
    }

    async fn deliver(&self, d: Delivery, device_id: &str) -> Result<(), PushError> {
        let device = match self.prepare(&d.job, device_id).await {
            Ok(Ok(device)) => device,
            Ok(Err(skip)) => {
                tracing::debug!(job = %d.job.key(), ?skip, "push skipped");
                return self.settle(d, Action::Done).await;
            }
            Err(e) => return self.retry_later(d, &e.to_string()).await,
        };
        let notification = match self.notification(&d.job).await {
            Ok(n) => n,
            Err(e) => return self.retry_later(d, &e.to_string()).await,
        };
        let platform = device.platform.as_str();
        let outcome = match self.providers.get(device.platform) {
            Some(p) => p.send(&device.token, &notification).await,
            None => Outcome::Rejected(format!("no {platform} credentials are configured")),
        };
        self.metrics.push_attempt(platform, outcome_label(&outcome));
        let action = policy::decide(d.attempt, outcome);
        if action == Action::ForgetDevice {
            self.store
                .remove_device(d.job.user, &device.device_id)
                .await?;
        }
        self.settle(d, action).await
    }

    /// The device to notify, unless the job no longer needs doing.
    async fn prepare(
        &self,
        job: &PushJob,
        device_id: &str,
    ) -> Result<Result<Device, Skip>, StoreError> {
        let member = self.store.member(job.chat, job.user).await?;
        let read = member.map_or(0, |m| m.read_seq);
        if read >= job.seq {
            return Ok(Err(Skip::Read));
        }
        let devices = self.store.devices(job.user).await?;
        Ok(devices
            .into_iter()
            .find(|d| d.device_id == device_id)
            .ok_or(Skip::DeviceGone))
    }

    async fn notification(&self, job: &PushJob) -> Result<Notification, StoreError> {
        let sender = self
            .store
            .user(job.sender)
            .await?
            .map_or_else(|| "Someone".to_owned(), |u| u.display_name);
        let chat = self.store.chat(job.chat).await?;
        let group = chat
            .as_ref()
            .filter(|c| c.kind == ChatKind::Group)
            .map(|c| c.title.as_str());
        Ok(Notification::new(job, &sender, group))
    }

    async fn retry_later(&self, d: Delivery, reason: &str) -> Result<(), PushError> {
        let action = policy::decide(
            d.attempt,
            Outcome::Retry {
                reason: reason.to_owned(),
                after: None,
            },
        );
        self.settle(d, action).await
    }

    async fn settle(&self, d: Delivery, action: Action) -> Result<(), PushError> {
        match action {
            Action::Done | Action::ForgetDevice => d.ack().await?,
            Action::RetryAfter(after) => d.retry(after).await?,
            Action::DeadLetter(reason) => {
                // Not recorded: left unsettled, to be offered again.
                self.queue.dead_letter(&d.job, &reason).await?;
                self.metrics.push_dead_letters.inc();
                d.ack().await?;
            }
        }
        Ok(())
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::TokenGone => "token_gone",
        Outcome::Rejected(_) => "rejected",
    }
}
