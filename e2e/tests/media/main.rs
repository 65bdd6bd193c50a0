//! Media scenarios against local-folder buckets (the standalone default).
//! The same scenarios run against an S3-compatible server in the services
//! suite.

use anyhow::Result;
use confab_e2e::media::{self, LocalFolders};

#[tokio::test]
async fn photo_round_trip() -> Result<()> {
    media::photo_round_trip(&LocalFolders::new()?).await
}

#[tokio::test]
async fn pages_are_served_inert() -> Result<()> {
    media::active_content_served_inert(&LocalFolders::new()?).await
}

#[tokio::test]
async fn duplicate_upload_is_stored_once() -> Result<()> {
    media::duplicate_stored_once(&LocalFolders::new()?).await
}

#[tokio::test]
async fn large_upload_streams_in_parts() -> Result<()> {
    media::large_upload_in_parts(&LocalFolders::new()?).await
}

#[tokio::test]
async fn oversize_upload_is_cut_off_mid_stream_and_leaves_nothing() -> Result<()> {
    media::oversize_rejected_mid_stream(&LocalFolders::new()?).await
}

#[tokio::test]
async fn uploads_go_to_the_bucket_of_their_kind() -> Result<()> {
    media::uploads_go_to_the_bucket_of_their_kind(&LocalFolders::new()?).await
}

#[tokio::test]
async fn a_type_that_lies_in_its_header_is_refused() -> Result<()> {
    media::lying_header_rejected(&LocalFolders::new()?).await
}

#[tokio::test]
async fn non_members_are_denied() -> Result<()> {
    media::non_member_denied(&LocalFolders::new()?).await
}

#[tokio::test]
async fn signed_links_expire() -> Result<()> {
    media::signed_link_expires(&LocalFolders::new()?).await
}

#[tokio::test]
async fn delete_after_download_waits_for_the_last_recipient() -> Result<()> {
    media::deleted_after_last_download(&LocalFolders::new()?).await
}

#[tokio::test]
async fn expiry_waits_for_delivery() -> Result<()> {
    media::expiry_waits_for_delivery(&LocalFolders::new()?).await
}

#[tokio::test]
async fn a_restart_keeps_everything() -> Result<()> {
    media::restart_keeps_everything(&LocalFolders::new()?).await
}
