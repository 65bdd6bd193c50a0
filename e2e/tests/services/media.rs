//! The media scenarios against an S3-compatible server (`CONFAB_S3_ENDPOINT`,
//! s3s-fs with signature checks): the same scenarios the local-folder suite
//! runs, through `object_store`'s S3 client with multipart uploads.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use confab_api::config::BucketConfig;
use confab_e2e::media::{self, Backend};
use confab_e2e::service_env;

/// Buckets the s3 script created; each scenario takes its own.
static NEXT: AtomicUsize = AtomicUsize::new(1);

struct S3 {
    endpoint: String,
    /// The server's folder: multipart parts live there until completed or aborted.
    data: std::path::PathBuf,
    credentials: tempfile::TempDir,
    buckets: usize,
}

impl S3 {
    fn new() -> Result<Self> {
        let credentials = tempfile::tempdir()?;
        std::fs::write(
            credentials.path().join("accessKeyId"),
            service_env("CONFAB_S3_ACCESS_KEY"),
        )?;
        std::fs::write(
            credentials.path().join("secretAccessKey"),
            service_env("CONFAB_S3_SECRET_KEY"),
        )?;
        Ok(Self {
            endpoint: service_env("CONFAB_S3_ENDPOINT"),
            data: service_env("CONFAB_S3_DATA").into(),
            credentials,
            buckets: service_env("CONFAB_S3_BUCKETS").parse()?,
        })
    }
}

impl Backend for S3 {
    /// s3s-fs keeps a multipart upload's parts as `.upload_id-*` files (and
    /// its state as `.upload-*.json`) until it is completed or aborted. Only
    /// the oversize and large-upload scenarios use multipart uploads.
    fn leftovers(&self, _bucket: &BucketConfig) -> Result<Vec<String>> {
        media::files_under(&self.data, &|name| name.starts_with(".upload"))
    }

    fn bucket(&self, max: u64, days: Option<u32>, after_download: bool) -> BucketConfig {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(
            n <= self.buckets,
            "the s3 script created only {} buckets",
            self.buckets
        );
        BucketConfig {
            name: format!("confab-media-{n:02}"),
            provider: "s3".into(),
            endpoint: Some(self.endpoint.clone()),
            region: None,
            credentials_dir: Some(self.credentials.path().to_string_lossy().into_owned()),
            max_object_bytes: max,
            retention_days: days,
            delete_after_download: after_download,
            kinds: Vec::new(),
        }
    }
}

#[tokio::test]
async fn s3_photo_round_trip() -> Result<()> {
    media::photo_round_trip(&S3::new()?).await
}

#[tokio::test]
async fn s3_duplicate_upload_is_stored_once() -> Result<()> {
    media::duplicate_stored_once(&S3::new()?).await
}

#[tokio::test]
async fn s3_large_upload_streams_in_parts() -> Result<()> {
    media::large_upload_in_parts(&S3::new()?).await
}

#[tokio::test]
async fn s3_oversize_upload_is_cut_off_mid_stream_and_leaves_nothing() -> Result<()> {
    media::oversize_rejected_mid_stream(&S3::new()?).await
}

#[tokio::test]
async fn s3_uploads_go_to_the_bucket_of_their_kind() -> Result<()> {
    media::uploads_go_to_the_bucket_of_their_kind(&S3::new()?).await
}

#[tokio::test]
async fn s3_a_type_that_lies_in_its_header_is_refused() -> Result<()> {
    media::lying_header_rejected(&S3::new()?).await
}

#[tokio::test]
async fn s3_non_members_are_denied() -> Result<()> {
    media::non_member_denied(&S3::new()?).await
}

#[tokio::test]
async fn s3_signed_links_expire() -> Result<()> {
    media::signed_link_expires(&S3::new()?).await
}

#[tokio::test]
async fn s3_delete_after_download_waits_for_the_last_recipient() -> Result<()> {
    media::deleted_after_last_download(&S3::new()?).await
}

#[tokio::test]
async fn s3_expiry_waits_for_delivery() -> Result<()> {
    media::expiry_waits_for_delivery(&S3::new()?).await
}

#[tokio::test]
async fn s3_a_restart_keeps_everything() -> Result<()> {
    media::restart_keeps_everything(&S3::new()?).await
}
