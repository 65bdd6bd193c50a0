//! [`Media`]: the I/O shell of media sharing. Streams uploads into a bucket
//! (never holding a whole file in memory), records them, authorizes sends
//! and downloads, opens downloads, and runs the retention sweeper;
//! [`record_share`] records a stored message's share. Decisions live in the
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
use super::signed::{LinkParams, Links};
use super::sniff::{SNIFF_BYTES, Sniffed, sniff};
use super::thumb;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::model::{
    ChatId, Content, MediaFacts, MediaKind, MediaRecord, MediaState, Seq, UserId, now_ms,
};
use crate::store::Store;

mod sweep;
mod upload;

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
    /// Media `id` if `user` may read it: they uploaded it or it was shared
    /// in one of their chats.
    pub async fn authorize(&self, user: UserId, id: &str) -> Result<MediaRecord, MediaError> {
        let r = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
        let mut chats = Vec::new();
        if !r.uploaders.contains(&user) {
            let mine = self.store.user_chats(user).await?;
            for s in r.shares.iter().filter(|s| mine.contains(&s.chat_id)) {
                if let Some(m) = self.store.member(s.chat_id, user).await? {
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
    /// may share in `chat`. Writes nothing: the chat's shard records the
    /// share once the message is stored ([`record_share`]).
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
        if self.store.member(chat, user).await?.is_none() {
            return Err(ApiError::not_member());
        }
        Ok(Content::media(kind, record::attachment(&r, kind, caption)))
    }
    /// A signed link to media `r` for `user`, valid for `ttl_secs` (from
    /// [`super::signed::lifetime`]); returns its query string and expiry.
    pub fn link(&self, user: UserId, r: &MediaRecord, ttl_secs: i64) -> (String, i64) {
        let exp = now_ms() / 1000 + ttl_secs;
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
        let r = update(&*self.store, id, |r| record::with_download(r, user)).await?;
        self.sweep_one(r, now_ms()).await?;
        Ok(())
    }
}

/// Applies `change` to media `id` by compare-and-set, retrying on races.
async fn update(
    store: &dyn Store,
    id: &str,
    change: impl Fn(&MediaRecord) -> Option<MediaRecord>,
) -> Result<MediaRecord, MediaError> {
    for _ in 0..CAS_ATTEMPTS {
        let current = store.media(id).await?.ok_or(MediaError::NotFound)?;
        let Some(next) = change(&current) else {
            return Ok(current);
        };
        if store.swap_media(&next, Some(current.version)).await? {
            return Ok(next);
        }
    }
    Err(MediaError::Busy)
}

/// Records that stored message `seq` of `chat`, sent by `by`, carries media
/// `id`: from then on the chat's members may download it and retention
/// keeps it until they have it. The chat's shard calls this once the message
/// is durable and before it is published, so the bus brings no recipient
/// the message before its media; a message recorded already writes nothing.
pub async fn record_share(
    store: &dyn Store,
    id: &str,
    chat: ChatId,
    seq: Seq,
    by: UserId,
) -> Result<(), MediaError> {
    update(store, id, |r| {
        record::with_share(r, chat, seq, by, now_ms())
    })
    .await?;
    Ok(())
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
mod tests;
