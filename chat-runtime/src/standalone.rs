//! `chat-runtime standalone`: every role in one process — embedded store,
//! in-process bus, one shard owning every chat, media in a local folder (or
//! any configured buckets), a notifier on an in-memory push queue.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use confab_api::config::{BucketConfig, PushConfig};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::TokenKeys;
use crate::bus::local::LocalBus;
use crate::bus::queue::LocalQueue;
use crate::bus::sessions::LocalSessions;
use crate::gateway;
use crate::gateway::tls::{self, TlsFiles};
use crate::media::Media;
use crate::metrics::Metrics;
use crate::node::{Limits, Node, Seams};
use crate::push::notifier::Notifier;
use crate::push::{DevicePolicy, providers};
use crate::shard::{LocalShardClient, Shard};
use crate::store::embedded::EmbeddedStore;

/// Everything standalone needs besides its listener.
#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the store and the signing key.
    pub data_dir: PathBuf,
    /// Token lifetime in seconds.
    pub token_ttl_secs: i64,
    pub limits: Limits,
    /// Media buckets; the first takes uploads. Empty: one local folder,
    /// `data_dir/media`, with [`DEFAULT_MAX_MEDIA_BYTES`] and no retention.
    pub media: Vec<BucketConfig>,
    /// How often the retention sweeper runs.
    pub sweep_every: Duration,
    /// Push credentials and webhook policy; the default sends no pushes.
    pub push: PushConfig,
    /// Serve TLS with this certificate and key (reloaded when they change);
    /// none: plain HTTP, for loopback or behind a TLS-terminating proxy.
    pub tls: Option<TlsFiles>,
}

impl Config {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            token_ttl_secs: crate::auth::DEFAULT_TOKEN_TTL_SECS,
            limits: Limits::default(),
            media: Vec::new(),
            sweep_every: Duration::from_secs(300),
            push: PushConfig::default(),
            tls: None,
        }
    }
}

/// Largest upload of the default media folder.
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 100 << 20;

/// The default media bucket: a folder in the data directory.
pub fn local_bucket(data_dir: &Path, max_object_bytes: u64) -> BucketConfig {
    BucketConfig {
        name: "local".into(),
        provider: "filesystem".into(),
        endpoint: None,
        region: None,
        credentials_dir: Some(data_dir.join("media").to_string_lossy().into_owned()),
        max_object_bytes,
        retention_days: None,
        delete_after_download: false,
        kinds: Vec::new(),
    }
}

/// Makes `dir` (the store, the signing key, the local media) private to this
/// user: created 0700, and an existing one narrowed to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data folder was open to other users: now 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Reads the token signing key from `dir/signing.key`, creating it (0600) on
/// first run. A key other users can read is refused: with it anyone could
/// mint a token for any account.
pub fn signing_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join("signing.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is readable by other users (mode {mode:o}): anyone who reads it can \
                         sign in as any account; run `chmod 600 {}` and start again",
                        path.display(),
                        path.display()
                    ),
                ));
            }
            decode_key(text.trim()).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a hex key of at least 32 bytes", path.display()),
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            private_dir(dir)?;
            let key: [u8; 32] = rand::random();
            let tmp = dir.join("signing.key.tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e),
    }
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok().filter(|k| k.len() >= 32)
}

/// Serves on `listener` until `shutdown` resolves; then tells every session
/// to reconnect (close 1012) and drains.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = config.tls.clone().map(tls::acceptor).transpose()?;
    private_dir(&config.data_dir)?;
    let key = signing_key(&config.data_dir)?;
    let store = Arc::new(EmbeddedStore::open(&config.data_dir)?);
    let bus = Arc::new(LocalBus::new());
    let metrics = Arc::new(Metrics::new());
    let sessions = Arc::new(LocalSessions::default());
    let queue = Arc::new(LocalQueue::default());
    let shard = Arc::new(
        Shard::new(store.clone(), bus.clone(), metrics.clone())
            .with_push(queue.clone(), sessions.clone()),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let bucket_configs = if config.media.is_empty() {
        vec![local_bucket(&config.data_dir, DEFAULT_MAX_MEDIA_BYTES)]
    } else {
        config.media.clone()
    };
    let media = Arc::new(Media::from_config(
        store.clone(),
        &bucket_configs,
        &key,
        metrics.clone(),
    )?);
    let sweeper = media
        .clone()
        .spawn_sweeper(config.sweep_every, stop_rx.clone());
    let notifier = Arc::new(Notifier::new(
        queue,
        store.clone(),
        providers::from_config(&config.push)?,
        metrics.clone(),
    ));
    let notifier = tokio::spawn(notifier.run(stop_rx.clone()));
    let seams = Seams {
        store,
        bus,
        sessions,
        shards: Arc::new(LocalShardClient(shard)),
        media,
    };
    let node = Arc::new(
        Node::new(
            seams,
            TokenKeys::new(&key, config.token_ttl_secs),
            metrics,
            config.limits,
            stop_rx.clone(),
        )
        .with_devices(DevicePolicy::from_config(&config.push)),
    );
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "standalone serving");
    gateway::server::serve_until(listener, tls, node, stop_tx, shutdown).await;
    // A sweep in flight still holds the store: let it finish, so the store
    // is closed when this returns (a restart in the same process reopens it).
    let _ = sweeper.await;
    let _ = notifier.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_data_folder_is_private_and_the_key_is_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        private_dir(&dir).unwrap();
        let key = signing_key(&dir).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("signing.key")), 0o600);
        assert_eq!(signing_key(&dir).unwrap(), key, "read back, not rotated");

        // A folder left open to others is narrowed.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_key_other_users_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        signing_key(dir.path()).unwrap();
        let path = dir.path().join("signing.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = signing_key(dir.path()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
