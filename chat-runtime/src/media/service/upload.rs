//! Uploads: streamed into the bucket part by part (never whole in memory),
//! typed by their bytes, deduplicated by content, previewed within the
//! decode limits, and recorded.

use super::*;

impl Media {
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
                    // Kept for every kind: any may be sent as a file.
                    name,
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
}
