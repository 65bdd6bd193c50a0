//! The media shell against a local bucket and the embedded store.

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
    let mut media = Media::new(store, vec![bucket], &[1; 32], Arc::new(Metrics::new())).unwrap();
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

#[tokio::test]
async fn attaching_checks_the_sender_and_writes_nothing() {
    use crate::model::{Chat, ChatKind, Member, Role};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
    let bucket = buckets::open(&crate::standalone::local_bucket(dir.path(), 1 << 20)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let media = Media::new(store.clone(), vec![bucket], &[1; 32], metrics).unwrap();
    let clip = crate::media::fixtures::record(&"ab".repeat(32));
    store.swap_media(&clip, None).await.unwrap();
    let (owner, peer) = (clip.uploaders[0], uuid::Uuid::new_v4());
    let chat = Chat {
        id: uuid::Uuid::new_v4(),
        kind: ChatKind::Direct,
        title: String::new(),
        created_by: owner,
        created_at: 1,
    };
    let members = [
        Member::new(owner, Role::Member, 0),
        Member::new(peer, Role::Member, 0),
    ];
    store.create_direct(&chat, members).await.unwrap();

    let content = media
        .attach(owner, chat.id, &clip.id, MediaKind::Video, "look".into())
        .await
        .unwrap();
    assert_eq!(content.attachment().unwrap().media_id, clip.id);
    // The peer neither uploaded it nor received it yet: not theirs to send.
    let refused = media
        .attach(peer, chat.id, &clip.id, MediaKind::File, String::new())
        .await
        .unwrap_err();
    assert_eq!(refused.code, crate::protocol::ErrorCode::NotFound);
    // The share is the shard's to record, with the message's seq.
    let stored = store.media(&clip.id).await.unwrap().unwrap();
    assert_eq!(stored, clip);
}
