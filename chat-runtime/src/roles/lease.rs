//! A shard's lease: a key in a NATS key-value bucket whose entries expire
//! after the lease time. Taking it is `create` (fails while another holds
//! it); keeping it is `update` at the revision last seen (fails if anyone
//! else wrote it). The holder counts its lease from the moment it *sent*
//! the request, less a margin, so it always believes it lost the lease
//! before NATS lets another take it. A shard leaving cleanly releases it
//! (deletes the key at its revision) so its next incarnation need not wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::monotonic_now;
use crate::cluster::{Millis, Ownership};

/// How the lease is kept.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTimes {
    /// Entries expire this long after their last write.
    pub ttl: Duration,
    /// Subtracted from the holder's view of its expiry (clock drift, delays).
    pub margin: Duration,
}

impl LeaseTimes {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            margin: (ttl / 5).min(Duration::from_secs(2)),
        }
    }
}

/// The lease bucket of a cluster, with `replicas` copies (the cluster's
/// `cache.replicas`: leases must outlive the loss of a NATS server). An
/// existing bucket is brought to this configuration (a raised
/// `cache.replicas` resizes it when the pods restart with it).
pub async fn bucket(
    js: &jetstream::Context,
    cluster: &str,
    times: LeaseTimes,
    replicas: usize,
) -> Result<kv::Store> {
    let name = format!("confab-{cluster}-leases");
    js.create_or_update_key_value(kv::Config {
        bucket: name.clone(),
        history: 1,
        max_age: times.ttl,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating the lease bucket {name}"))
}

/// A kept lease; [`Lease::release`] gives it back.
pub struct Lease {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Lease {
    /// Stops renewing and deletes the key if it is still this holder's, so
    /// the shard's next incarnation takes it at once instead of waiting out
    /// the TTL. Only for a shard that has stopped sequencing (drained).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Resolves once `stop` is set (never, if the [`Lease`] was dropped: the
/// lease is then kept until the process ends).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Takes and keeps the lease `key` for `ownership` until the process ends
/// or the lease is released.
pub fn keep(
    store: kv::Store,
    key: String,
    holder: String,
    times: LeaseTimes,
    ownership: Arc<Mutex<Ownership>>,
) -> Lease {
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let value = Bytes::from(holder);
        let renew_every = times.ttl / 3;
        loop {
            // Take it (waits out a dead holder's entry).
            let sent = monotonic_now();
            let revision = tokio::select! {
                taken = store.create(&key, value.clone()) => taken,
                () = stopped(&mut stop_rx) => return,
            };
            let revision = match revision {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::debug!(error = %e, %key, "lease held elsewhere or NATS away; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(renew_every.min(Duration::from_secs(1))) => continue,
                        () = stopped(&mut stop_rx) => return,
                    }
                }
            };
            let mut revision = revision;
            ownership
                .lock()
                .expect("ownership lock")
                .lease_acquired(expiry(sent, times), revision);
            tracing::info!(%key, revision, "lease taken");
            // Keep it.
            loop {
                tokio::select! {
                    () = tokio::time::sleep(renew_every) => {}
                    () = stopped(&mut stop_rx) => {
                        ownership.lock().expect("ownership lock").lease_lost();
                        match store.delete_expect_revision(&key, Some(revision)).await {
                            Ok(()) => tracing::info!(%key, "lease released"),
                            Err(e) => tracing::warn!(error = %e, %key, "lease not released; it expires"),
                        }
                        return;
                    }
                }
                let sent = monotonic_now();
                match store.update(&key, value.clone(), revision).await {
                    Ok(rev) => {
                        revision = rev;
                        ownership
                            .lock()
                            .expect("ownership lock")
                            .lease_renewed(expiry(sent, times), rev);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %key, "lease renewal failed; sequencing stops");
                        ownership.lock().expect("ownership lock").lease_lost();
                        break;
                    }
                }
            }
        }
    });
    Lease { stop, task }
}

fn expiry(sent: Millis, times: LeaseTimes) -> Millis {
    let ms = times.ttl.saturating_sub(times.margin).as_millis() as u64;
    Millis(sent.0 + ms)
}
