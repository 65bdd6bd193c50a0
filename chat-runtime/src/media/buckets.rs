//! The `Blobs` seam: one [`object_store`] per configured bucket — a local
//! folder in standalone, S3 / GCS / Azure in clusters — with its size limit
//! and retention policy. Object layout inside a bucket:
//! `media/<sha256>` (the bytes), `thumbs/<sha256>.jpg` (image previews) and
//! `uploads/<uuid>` (uploads in flight, renamed or deleted when they end).

use std::path::Path;
use std::sync::Arc;

use confab_api::config::BucketConfig;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

use super::MediaError;
use super::record::Retention;
use crate::model::MediaKind;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// One configured bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub store: Arc<dyn ObjectStore>,
    /// Largest object accepted, in bytes.
    pub max_bytes: u64,
    pub retention: Retention,
    /// Kinds of uploads it takes; empty: every kind.
    pub kinds: Vec<MediaKind>,
}

impl Bucket {
    /// Whether new uploads of `kind` may go here.
    pub fn takes(&self, kind: MediaKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// The bucket a new upload of `kind` goes to: the first that takes it.
pub fn for_kind(buckets: &[Bucket], kind: MediaKind) -> Option<&Bucket> {
    buckets.iter().find(|b| b.takes(kind))
}

fn kinds(c: &BucketConfig) -> Result<Vec<MediaKind>, MediaError> {
    c.kinds
        .iter()
        .map(|k| {
            serde_json::from_value(serde_json::Value::String(k.clone())).map_err(|_| {
                MediaError::Config(format!(
                    "bucket {}: unknown upload kind {k:?} (image, video, audio, file)",
                    c.name
                ))
            })
        })
        .collect()
}

/// Where the bytes of media `id` live.
pub fn object(id: &str) -> ObjectPath {
    ObjectPath::from(format!("media/{id}"))
}

/// Where the thumbnail of media `id` lives.
pub fn thumbnail(id: &str) -> ObjectPath {
    ObjectPath::from(format!("thumbs/{id}.jpg"))
}

/// Prefix of uploads in flight.
pub const UPLOADS: &str = "uploads";

/// A fresh path for an upload in flight.
pub fn upload() -> ObjectPath {
    ObjectPath::from(format!("{UPLOADS}/{}", uuid::Uuid::new_v4()))
}

fn read_secret(dir: &str, key: &str) -> Result<String, MediaError> {
    let path = Path::new(dir).join(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| MediaError::Config(format!("{}: {e}", path.display())))
}

/// Opens the bucket `c` describes. Credentials come from files in
/// `credentials_dir` (S3: `accessKeyId`, `secretAccessKey`; GCS:
/// `serviceAccount.json`; Azure: `accountName`, `accountKey`), or from the
/// environment (workload identity) when it is unset.
pub fn open(c: &BucketConfig) -> Result<Bucket, MediaError> {
    let config = |e: object_store::Error| MediaError::Config(format!("bucket {}: {e}", c.name));
    let store: Arc<dyn ObjectStore> = match c.provider.as_str() {
        "filesystem" => {
            let dir = c.credentials_dir.as_deref().ok_or_else(|| {
                MediaError::Config(format!("filesystem bucket {} needs a folder", c.name))
            })?;
            std::fs::create_dir_all(dir).map_err(|e| MediaError::Config(format!("{dir}: {e}")))?;
            Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(config)?)
        }
        "s3" => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&c.name)
                .with_region(c.region.as_deref().unwrap_or("us-east-1"));
            if let Some(endpoint) = &c.endpoint {
                b = b
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(dir) = &c.credentials_dir {
                b = b
                    .with_access_key_id(read_secret(dir, "accessKeyId")?)
                    .with_secret_access_key(read_secret(dir, "secretAccessKey")?);
            }
            Arc::new(b.build().map_err(config)?)
        }
        "gcs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(&c.name);
            if let Some(dir) = &c.credentials_dir {
                let key = Path::new(dir).join("serviceAccount.json");
                b = b.with_service_account_path(key.to_string_lossy());
            }
            Arc::new(b.build().map_err(config)?)
        }
        "azure" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_container_name(&c.name);
            if let Some(dir) = &c.credentials_dir {
                b = b
                    .with_account(read_secret(dir, "accountName")?)
                    .with_access_key(read_secret(dir, "accountKey")?);
            }
            Arc::new(b.build().map_err(config)?)
        }
        other => {
            return Err(MediaError::Config(format!(
                "bucket {}: unknown provider {other:?} (s3, gcs, azure or filesystem)",
                c.name
            )));
        }
    };
    Ok(Bucket {
        name: c.name.clone(),
        store,
        max_bytes: c.max_object_bytes,
        retention: Retention {
            expire_after_ms: c.retention_days.map(|d| i64::from(d) * DAY_MS),
            after_download: c.delete_after_download,
        },
        kinds: kinds(c)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn bucket(name: &str, kinds: &[MediaKind]) -> Bucket {
        Bucket {
            name: name.into(),
            store: Arc::new(InMemory::new()),
            max_bytes: 1 << 20,
            retention: Retention::default(),
            kinds: kinds.to_vec(),
        }
    }

    #[test]
    fn an_upload_goes_to_the_first_bucket_that_takes_its_kind() {
        let buckets = [
            bucket("photos", &[MediaKind::Image]),
            bucket("rest", &[]),
            bucket("never", &[MediaKind::File]),
        ];
        let name = |k| for_kind(&buckets, k).map(|b| b.name.as_str());
        assert_eq!(name(MediaKind::Image), Some("photos"));
        assert_eq!(name(MediaKind::File), Some("rest"));
        assert_eq!(name(MediaKind::Video), Some("rest"));
        let photos_only = [bucket("photos", &[MediaKind::Image])];
        assert!(for_kind(&photos_only, MediaKind::Audio).is_none());
    }

    #[test]
    fn kinds_are_read_from_the_config_and_unknown_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::standalone::local_bucket(dir.path(), 1 << 20);
        c.kinds = vec!["video".into(), "audio".into()];
        assert_eq!(
            open(&c).unwrap().kinds,
            vec![MediaKind::Video, MediaKind::Audio]
        );
        c.kinds.push("gif".into());
        let err = open(&c).unwrap_err().to_string();
        assert!(err.contains("\"gif\""), "{err}");
    }
}
