//! Retention: the sweeper that deletes media no message needs any more, and
//! uploads a crash left in flight.

use super::*;

impl Media {
    /// One pass of retention over every record; also removes uploads left
    /// in flight by a crash.
    pub async fn sweep(&self, now: i64) -> Result<Swept, MediaError> {
        let mut swept = Swept::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.media_page(after.as_deref(), SWEEP_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for r in page {
                swept.checked += 1;
                if self.sweep_one(r, now).await? {
                    swept.deleted += 1;
                }
            }
        }
        for bucket in &self.buckets {
            swept.stale_uploads += self.sweep_uploads(bucket, now).await?;
        }
        Ok(swept)
    }
    /// Deletes `r` if its bucket's retention says so (or finishes a delete
    /// a crash interrupted). Returns whether it deleted.
    pub(super) async fn sweep_one(&self, r: MediaRecord, now: i64) -> Result<bool, MediaError> {
        let Ok(bucket) = self.bucket(&r.bucket) else {
            return Ok(false);
        };
        let r = match r.state {
            MediaState::Deleted => return Ok(false),
            MediaState::Deleting => r,
            MediaState::Live => {
                let mut members = BTreeMap::new();
                for s in &r.shares {
                    members.insert(s.chat_id, self.store.members(s.chat_id).await?);
                }
                if !record::due(&r, bucket.retention, &members, now) {
                    return Ok(false);
                }
                let deleting = record::with_state(&r, MediaState::Deleting);
                if !self.store.swap_media(&deleting, Some(r.version)).await? {
                    return Ok(false); // changed meanwhile; the next sweep decides
                }
                deleting
            }
        };
        for path in [buckets::object(&r.id), buckets::thumbnail(&r.id)] {
            match bucket.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let deleted = record::with_state(&r, MediaState::Deleted);
        self.store.swap_media(&deleted, Some(r.version)).await?;
        tracing::info!(media = %r.id, bucket = %bucket.name, "media: deleted by retention");
        Ok(true)
    }
    async fn sweep_uploads(&self, bucket: &Bucket, now: i64) -> Result<usize, MediaError> {
        let prefix = object_store::path::Path::from(buckets::UPLOADS);
        let cutoff = now - STALE_UPLOAD.as_millis() as i64;
        let mut listing = bucket.store.list(Some(&prefix));
        let mut removed = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp_millis() < cutoff {
                bucket.store.delete(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
    /// Runs [`Media::sweep`] every `every` until `stop` turns true.
    pub fn spawn_sweeper(
        self: Arc<Self>,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match self.sweep(now_ms()).await {
                    Ok(s) if s.deleted + s.stale_uploads > 0 => {
                        tracing::info!(?s, "media: retention sweep")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "media: retention sweep failed"),
                }
            }
        })
    }
}
