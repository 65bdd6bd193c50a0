//! Shards' ownership records in the NATS key-value bucket
//! `confab-<cluster>-ownership` (one key per shard, `shard-<n>`): each shard
//! persists its own before it acknowledges a ring step, and follows the
//! others' to catch up with a ring committed while it was down or cut off
//! ([`Ownership::catch_up`]).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::backoff;
use crate::cluster::{Ownership, OwnershipRecord};
use crate::shard::Shard;

/// The ownership bucket of a cluster, with `replicas` copies (created or
/// brought to that, as the lease bucket).
pub async fn bucket(js: &jetstream::Context, cluster: &str, replicas: usize) -> Result<kv::Store> {
    let name = format!("confab-{cluster}-ownership");
    js.create_or_update_key_value(kv::Config {
        bucket: name.clone(),
        history: 1,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating the ownership bucket {name}"))
}

/// Writes this shard's record under `key`.
pub async fn persist(
    records: &kv::Store,
    key: &str,
    ownership: &Mutex<Ownership>,
) -> Result<(), String> {
    let record = ownership.lock().expect("ownership lock").record();
    let bytes = serde_json::to_vec(&record).expect("records serialize");
    records
        .put(key, bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| format!("persisting the ownership record: {e}"))
}

/// What follows the other shards' records.
pub struct Follower {
    pub records: kv::Store,
    /// This shard's own key, which is not followed.
    pub key: String,
    pub ownership: Arc<Mutex<Ownership>>,
    pub shard: Arc<Shard>,
}

impl Follower {
    /// Catches up with every record now, then keeps following them in the
    /// background (rewatching, and rescanning, after NATS comes back).
    pub async fn start(self) -> Result<()> {
        let watch = self
            .records
            .watch_all()
            .await
            .context("watching the ownership records")?;
        self.scan().await.context("reading the ownership records")?;
        tokio::spawn(async move {
            let mut watch = Some(watch);
            let mut waits = backoff::reconnect();
            loop {
                if let Some(mut entries) = watch.take() {
                    while let Some(Ok(entry)) = entries.next().await {
                        if entry.key != self.key && entry.operation == kv::Operation::Put {
                            self.saw(&entry.value).await;
                        }
                    }
                }
                tokio::time::sleep(waits.next().unwrap_or_default()).await;
                match self.records.watch_all().await {
                    Ok(w) => {
                        watch = Some(w);
                        waits = backoff::reconnect();
                        if let Err(e) = self.scan().await {
                            tracing::warn!(error = %e, "cannot read the ownership records");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot watch the ownership records"),
                }
            }
        });
        Ok(())
    }

    async fn scan(&self) -> Result<()> {
        let keys: Vec<String> = self
            .records
            .keys()
            .await?
            .filter_map(|k| async { k.ok() })
            .collect()
            .await;
        for key in keys.iter().filter(|k| **k != self.key) {
            if let Some(bytes) = self.records.get(key).await? {
                self.saw(&bytes).await;
            }
        }
        Ok(())
    }

    /// Applies another shard's record.
    async fn saw(&self, bytes: &[u8]) {
        let Ok(record) = serde_json::from_slice::<OwnershipRecord>(bytes) else {
            tracing::warn!("an unreadable ownership record is ignored");
            return;
        };
        let handoff = self
            .ownership
            .lock()
            .expect("ownership lock")
            .catch_up(record.committed);
        let Some(handoff) = handoff else { return };
        tracing::warn!(
            from = handoff.from().epoch(),
            to = handoff.to().epoch(),
            "caught up with a ring committed without this shard's answer"
        );
        if let Err(e) = persist(&self.records, &self.key, &self.ownership).await {
            tracing::warn!(error = %e, "caught-up ring not persisted yet");
        }
        let cached = self.shard.cached();
        let moved = handoff
            .released(cached.iter().copied())
            .into_iter()
            .chain(handoff.acquired(cached));
        for chat in moved {
            self.shard.release(chat).await;
        }
    }
}
