//! [`Media`]: the I/O shell of media sharing. Streams uploads into a bucket
//! (never holding a whole file in memory), records them, authorizes and
//! opens downloads, and runs the retention sweeper. Decisions live in the
//! pure modules beside it.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, watch};

use super::MediaError;
use confab_api::config::BucketConfig;

use super::buckets::{self, Bucket};
use super::record::{self, Claim, Upload};
use super::signed::{self, LinkParams, Links};
use super::sniff::{SNIFF_BYTES, Sniffed, sniff};
use super::thumb;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::model::{
    ChatId, Content, MediaFacts, MediaKind, MediaRecord, MediaState, Seq, UserId, now_ms,
};
use crate::store::Store;

/// Upload part size: S3's minimum multipart part, and the most an upload
/// buffers before sending a part.
const PART: usize = 5 << 20;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 2;
/// Photos above this are refused (they are decoded whole for the preview).
const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// Images decoded at once (each may take up to ~190 MB while decoding).
const DECODES: usize = 2;
/// How long an upload waits for a decoder before it is refused as busy.
const DECODE_WAIT: Duration = Duration::from_secs(5);
/// Compare-and-set attempts before answering "busy, retry".
const CAS_ATTEMPTS: usize = 50;
/// Pause while the sweeper finishes deleting an object being re-uploaded.
const DELETING_PAUSE: Duration = Duration::from_millis(50);
/// Uploads left in flight longer than this (a crashed gateway) are removed.
const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);
/// Records read per page by the sweeper.
const SWEEP_PAGE: usize = 256;

/// A finished upload.
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub record: MediaRecord,
    /// The bytes were already stored (by this or another user).
    pub duplicate: bool,
}

/// An opened download.
pub struct Download {
    pub record: MediaRecord,
    /// Size of the whole object.
    pub size: u64,
    /// The bytes being sent (all of them unless a range was asked for).
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, object_store::Error>>,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub checked: usize,
    pub deleted: usize,
    pub stale_uploads: usize,
}

/// Media sharing over the configured buckets. Shared by every request.
pub struct Media {
    store: Arc<dyn Store>,
    /// A new upload goes to the first bucket that takes its kind; every
    /// bucket keeps serving what it holds.
    buckets: Vec<Bucket>,
    links: Links,
    metrics: Arc<Metrics>,
    /// Bounds the previews decoded at once (memory, not CPU, is the limit).
    decoders: Arc<Semaphore>,
    /// How long an upload waits for a decoder.
    decode_wait: Duration,
}

impl Media {
    pub fn new(
        store: Arc<dyn Store>,
        buckets: Vec<Bucket>,
        signing_key: &[u8],
        metrics: Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        if buckets.is_empty() {
            return Err(MediaError::Config(
                "at least one media bucket is needed".into(),
            ));
        }
        // Records name their bucket: two of one name would mix them up.
        let mut names = std::collections::BTreeSet::new();
        if let Some(twice) = buckets.iter().find(|b| !names.insert(&b.name)) {
            return Err(MediaError::Config(format!(
                "media bucket {} is configured twice",
                twice.name
            )));
        }
        Ok(Self {
            store,
            buckets,
            links: Links::new(signing_key),
            metrics,
            decoders: Arc::new(Semaphore::new(DECODES)),
            decode_wait: DECODE_WAIT,
        })
    }

    /// Media over the buckets `configs` describes.
    pub fn from_config(
        store: Arc<dyn Store>,
        configs: &[BucketConfig],
        signing_key: &[u8],
        metrics: Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        let buckets = configs
            .iter()
            .map(buckets::open)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(store, buckets, signing_key, metrics)
    }

    fn bucket(&self, name: &str) -> Result<&Bucket, MediaError> {
        self.buckets
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| MediaError::Config(format!("media bucket {name} is not configured")))
    }

    /// Largest upload any bucket accepts (the limit of the bucket an upload
    /// goes to is enforced once its bytes tell its kind).
    pub fn max_upload(&self) -> u64 {
        self.buckets.iter().map(|b| b.max_bytes).max().unwrap_or(0)
    }

    /// Streams `body` into the upload bucket as media uploaded by `user`.
    /// `declared` is the request's `Content-Type`, checked against the bytes.
    /// On any error nothing is left behind in the bucket.
    pub async fn upload<S, E>(
        &self,
        user: UserId,
        declared: &str,
        name: Option<String>,
        mut body: S,
    ) -> Result<Uploaded, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        let started = Instant::now();
        let result = async {
            let mut head = BytesMut::new();
            while head.len() < SNIFF_BYTES {
                match body.next().await {
                    Some(chunk) => head.extend_from_slice(&chunk.map_err(body_error)?),
                    None => break,
                }
            }
            if head.is_empty() {
                return Err(MediaError::Empty);
            }
            let sniffed = sniff(&head, declared)?;
            self.store_upload(user, sniffed, name, head.freeze(), body)
                .await
        }
        .await;
        match &result {
            Ok(_) => self
                .metrics
                .upload_seconds
                .observe(started.elapsed().as_secs_f64()),
            Err(e) => self.metrics.media_reject(reject_reason(e)),
        }
        result
    }

    async fn store_upload<S, E>(
        &self,
        user: UserId,
        sniffed: Sniffed,
        name: Option<String>,
        head: Bytes,
        body: S,
    ) -> Result<Uploaded, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        let bucket =
            buckets::for_kind(&self.buckets, sniffed.kind).ok_or_else(|| MediaError::NoBucket {
                kind: format!("{:?}", sniffed.kind).to_lowercase(),
            })?;
        let limit = match sniffed.kind {
            MediaKind::Image => bucket.max_bytes.min(MAX_IMAGE_BYTES),
            _ => bucket.max_bytes,
        };
        let tmp = buckets::upload();
        let mut writer = BufWriter::with_capacity(bucket.store.clone(), tmp.clone(), PART)
            .with_max_concurrency(PART_CONCURRENCY);
        let streamed = self.copy(&mut writer, head, body, limit).await;
        let (id, size) = match streamed {
            Ok(v) => v,
            Err(e) => {
                let _ = writer.abort().await;
                let _ = bucket.store.delete(&tmp).await;
                return Err(e);
            }
        };
        if let Err(e) = writer.shutdown().await {
            let _ = bucket.store.delete(&tmp).await;
            return Err(MediaError::Blobs(object_store::Error::Generic {
                store: "upload",
                source: Box::new(e),
            }));
        }
        let outcome = async {
            // Bytes already stored keep their preview: no second decode.
            let current = self.store.media(&id).await?;
            let known = current
                .as_ref()
                .is_some_and(|r| r.state == MediaState::Live);
            let preview = match sniffed.kind {
                MediaKind::Image if !known => Some(self.preview(bucket, &tmp).await?),
                _ => None,
            };
            let upload = Upload {
                id,
                bucket: bucket.name.clone(),
                kind: sniffed.kind,
                facts: MediaFacts {
                    content_type: sniffed.content_type,
                    size,
                    width: preview.as_ref().map(|p| p.width),
                    height: preview.as_ref().map(|p| p.height),
                    blurhash: preview.as_ref().map(|p| p.blurhash.clone()),
                    thumbnail: preview.is_some(),
                    name: name.filter(|_| sniffed.kind == MediaKind::File),
                },
            };
            let thumb = preview.map(|p| p.jpeg);
            self.claim(bucket, &tmp, upload, thumb, user, current).await
        }
        .await;
        // Gone already when it became the object; otherwise not needed.
        let _ = bucket.store.delete(&tmp).await;
        outcome
    }

    /// Copies the upload into `writer`, hashing and counting as it goes;
    /// stops at the first byte over `limit`.
    async fn copy<S, E>(
        &self,
        writer: &mut BufWriter,
        head: Bytes,
        mut body: S,
        limit: u64,
    ) -> Result<(String, u64), MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut next = Some(head);
        while let Some(chunk) = next {
            size += chunk.len() as u64;
            if size > limit {
                return Err(MediaError::TooLarge { limit });
            }
            hasher.update(&chunk);
            self.metrics.media_bytes_in.inc_by(chunk.len() as u64);
            writer.put(chunk).await?;
            next = body.next().await.transpose().map_err(body_error)?;
        }
        Ok((hex::encode(hasher.finalize()), size))
    }

    async fn preview(
        &self,
        bucket: &Bucket,
        tmp: &object_store::path::Path,
    ) -> Result<thumb::Preview, MediaError> {
        let permit = tokio::time::timeout(self.decode_wait, self.decoders.clone().acquire_owned())
            .await
            .map_err(|_| MediaError::DecodersBusy)?
            .expect("the decoder semaphore is never closed");
        let bytes = bucket.store.get(tmp).await?.bytes().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            thumb::preview(&bytes)
        })
        .await
        .map_err(|e| MediaError::Undecodable(e.to_string()))?
    }

    /// Records the upload (compare-and-set, starting from `current`, the
    /// record as last read) and puts its object in place.
    async fn claim(
        &self,
        bucket: &Bucket,
        tmp: &object_store::path::Path,
        upload: Upload,
        thumb: Option<Vec<u8>>,
        user: UserId,
        mut current: Option<MediaRecord>,
    ) -> Result<Uploaded, MediaError> {
        let id = upload.id.clone();
        let mut placed = false;
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                current = self.store.media(&id).await?;
            }
            match record::claim(current.as_ref(), upload.clone(), user, now_ms()) {
                Claim::Wait => tokio::time::sleep(DELETING_PAUSE).await,
                Claim::Unchanged(record) => {
                    return Ok(Uploaded {
                        record,
                        duplicate: true,
                    });
                }
                Claim::Write {
                    record,
                    expected,
                    duplicate,
                } => {
                    if !duplicate {
                        if placed {
                            // Placed on an earlier attempt: still there?
                            bucket
                                .store
                                .head(&buckets::object(&id))
                                .await
                                .map_err(|_| MediaError::Busy)?;
                        } else {
                            bucket.store.rename(tmp, &buckets::object(&id)).await?;
                            if let Some(jpeg) = &thumb {
                                let payload = PutPayload::from(jpeg.clone());
                                bucket.store.put(&buckets::thumbnail(&id), payload).await?;
                            }
                            placed = true;
                        }
                    }
                    if self.store.swap_media(&record, expected).await? {
                        return Ok(Uploaded { record, duplicate });
                    }
                }
            }
        }
        Err(MediaError::Busy)
    }

    /// Applies `change` to media `id` by compare-and-set, retrying on races.
    async fn update(
        &self,
        id: &str,
        change: impl Fn(&MediaRecord) -> Option<MediaRecord>,
    ) -> Result<MediaRecord, MediaError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
            let Some(next) = change(&current) else {
                return Ok(current);
            };
            if self.store.swap_media(&next, Some(current.version)).await? {
                return Ok(next);
            }
        }
        Err(MediaError::Busy)
    }

    /// Media `id` if `user` may read it: they uploaded it or it was shared
    /// in one of their chats.
    pub async fn authorize(&self, user: UserId, id: &str) -> Result<MediaRecord, MediaError> {
        let r = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
        let mut chats = Vec::new();
        if !r.uploaders.contains(&user) {
            let mine = self.store.user_chats(user).await?;
            for s in r.shares.iter().filter(|s| mine.contains(&s.chat_id)) {
                let members = self.store.members(s.chat_id).await?;
                if let Some(m) = members.iter().find(|m| m.user_id == user) {
                    chats.push((s.chat_id, m.joined_seq));
                }
            }
        }
        if !record::may_read(&r, user, &chats) {
            return Err(MediaError::NotShared);
        }
        if r.state != MediaState::Live {
            return Err(MediaError::Gone);
        }
        Ok(r)
    }

    /// The content of a message of `kind` carrying media `id`, which `user`
    /// shares in `chat` (records the share first, so that recipients may
    /// download it as soon as the message reaches them).
    pub async fn attach(
        &self,
        user: UserId,
        chat: ChatId,
        id: &str,
        kind: MediaKind,
        caption: String,
    ) -> Result<Content, ApiError> {
        let r = self.authorize(user, id).await?;
        // Any media may be sent as a file ("send as document").
        if kind != r.kind && kind != MediaKind::File {
            return Err(MediaError::KindMismatch {
                sent: format!("{kind:?}").to_lowercase(),
                actual: format!("{:?}", r.kind).to_lowercase(),
            }
            .into());
        }
        let members = self.store.members(chat).await?;
        if !members.iter().any(|m| m.user_id == user) {
            return Err(ApiError::not_member());
        }
        let r = self
            .update(id, |r| record::with_share(r, chat, 0, user, now_ms()))
            .await?;
        Ok(Content::media(kind, record::attachment(&r, caption)))
    }

    /// Records that message `seq` of `chat` carries media `id`.
    pub async fn shared(&self, id: &str, chat: ChatId, seq: Seq, by: UserId) {
        let result = self
            .update(id, |r| record::with_share(r, chat, seq, by, now_ms()))
            .await;
        if let Err(e) = result {
            // The share stays "pending": retention keeps the object.
            tracing::warn!(media = id, %chat, seq, error = %e, "media: recording a share failed");
        }
    }

    /// A signed link to media `r` for `user`, valid for `ttl_secs` (capped);
    /// returns its query string and expiry.
    pub fn link(&self, user: UserId, r: &MediaRecord, ttl_secs: Option<i64>) -> (String, i64) {
        let ttl = ttl_secs
            .unwrap_or(signed::DEFAULT_TTL_SECS)
            .clamp(1, signed::MAX_TTL_SECS);
        let exp = now_ms() / 1000 + ttl;
        (self.links.query(&r.id, user, exp), exp)
    }

    /// Media `id` through a signed link; the user it was issued to.
    pub async fn authorize_link(
        &self,
        id: &str,
        p: &LinkParams,
    ) -> Result<(UserId, MediaRecord), MediaError> {
        let user = self.links.verify(id, p, now_ms() / 1000)?;
        let r = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
        if r.state != MediaState::Live {
            return Err(MediaError::Gone);
        }
        Ok((user, r))
    }

    /// Opens the bytes of `r` (or its thumbnail), all or `range`.
    pub async fn open(
        &self,
        r: MediaRecord,
        thumbnail: bool,
        range: Option<Range<u64>>,
    ) -> Result<Download, MediaError> {
        let bucket = self.bucket(&r.bucket)?;
        let path = if thumbnail {
            if !r.facts.thumbnail {
                return Err(MediaError::NotFound);
            }
            buckets::thumbnail(&r.id)
        } else {
            buckets::object(&r.id)
        };
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = match bucket.store.get_opts(&path, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Err(MediaError::Gone),
            Err(e) => return Err(e.into()),
        };
        Ok(Download {
            size: got.meta.size,
            range: got.range.clone(),
            record: r,
            body: got.into_stream(),
        })
    }

    /// Counts bytes sent to a client.
    pub fn sent_bytes(&self, n: usize) {
        self.metrics.media_bytes_out.inc_by(n as u64);
    }

    /// Records that `user` received all of media `id`; under a
    /// delete-after-download policy the last recipient's download deletes it.
    pub async fn downloaded(&self, id: &str, user: UserId) -> Result<(), MediaError> {
        let r = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
        if !self.bucket(&r.bucket)?.retention.after_download {
            return Ok(());
        }
        let r = self.update(id, |r| record::with_download(r, user)).await?;
        self.sweep_one(r, now_ms()).await?;
        Ok(())
    }

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
    async fn sweep_one(&self, r: MediaRecord, now: i64) -> Result<bool, MediaError> {
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

fn body_error(e: impl Display) -> MediaError {
    MediaError::Body(e.to_string())
}

/// The `reason` label of a rejected upload.
fn reject_reason(e: &MediaError) -> &'static str {
    match e {
        MediaError::TooLarge { .. } => "too_large",
        MediaError::UnsupportedType { .. } => "unsupported_type",
        MediaError::Undecodable(_) => "undecodable",
        MediaError::TooManyPixels { .. } => "too_many_pixels",
        MediaError::DecodersBusy => "decoders_busy",
        MediaError::Body(_) => "interrupted",
        MediaError::Empty => "empty",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn the_sweeper_removes_uploads_a_crash_left_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
        let config = crate::standalone::local_bucket(dir.path(), 1 << 20);
        let bucket = buckets::open(&config).unwrap();
        let orphan = buckets::upload();
        bucket
            .store
            .put(&orphan, PutPayload::from_static(b"half an upload"))
            .await
            .unwrap();
        let media = Media::new(
            store,
            vec![bucket.clone()],
            &[1; 32],
            Arc::new(Metrics::new()),
        )
        .unwrap();

        let now = now_ms();
        let swept = media.sweep(now).await.unwrap();
        assert_eq!(
            swept.stale_uploads, 0,
            "a fresh upload may still be in flight"
        );
        assert!(bucket.store.head(&orphan).await.is_ok());
        let later = now + STALE_UPLOAD.as_millis() as i64 + 1000;
        let swept = media.sweep(later).await.unwrap();
        assert_eq!(swept.stale_uploads, 1);
        assert!(matches!(
            bucket.store.head(&orphan).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    fn body(bytes: Vec<u8>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        futures::stream::iter([Ok(Bytes::from(bytes))])
    }

    #[tokio::test]
    async fn decodes_are_bounded_and_bytes_already_stored_are_not_decoded_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
        let config = crate::standalone::local_bucket(dir.path(), 1 << 20);
        let bucket = buckets::open(&config).unwrap();
        let mut media =
            Media::new(store, vec![bucket], &[1; 32], Arc::new(Metrics::new())).unwrap();
        media.decode_wait = Duration::from_millis(50);
        let png = crate::media::fixtures::png(64, 48);
        let (alice, bob): (UserId, UserId) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let first = media
            .upload(alice, "image/png", None, body(png.clone()))
            .await
            .unwrap();
        assert_eq!(first.record.facts.width, Some(64));

        // Every decoder taken: new image bytes are refused, typed and retryable.
        let held = media
            .decoders
            .clone()
            .acquire_many_owned(DECODES as u32)
            .await
            .unwrap();
        let other = crate::media::fixtures::png(32, 32);
        let busy = media.upload(alice, "image/png", None, body(other)).await;
        assert!(matches!(busy, Err(MediaError::DecodersBusy)), "{busy:?}");
        let refused = crate::error::ApiError::from(busy.unwrap_err());
        assert_eq!(refused.code, crate::protocol::ErrorCode::Unavailable);
        assert_eq!(refused.retry_after_ms, Some(crate::media::DECODE_RETRY_MS));

        // The same bytes again need no decoder: the stored preview is kept.
        let again = media
            .upload(bob, "image/png", None, body(png))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.record.facts.width, Some(64));
        drop(held);
    }
}
