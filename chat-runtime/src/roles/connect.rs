//! From the cluster config file to connected clients: NATS (with the push
//! queue and the session cache on JetStream), the CQL store, the token
//! signing key.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use confab_api::config::{ClusterConfig, NatsConfig, StoreConfig};
use scylla::client::session_builder::SessionBuilder;

use super::tls_client::{self, TlsDir};
use crate::bus::nats_queue::NatsQueue;
use crate::bus::nats_sessions::{self, NatsSessions};
use crate::store::scylla::{self as cql, Replication, ScyllaConfig, ScyllaStore};

/// Reads and checks the config file at `path`.
pub fn load(path: &Path) -> Result<ClusterConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster config {}", path.display()))?;
    ClusterConfig::from_json(&text).with_context(|| format!("in {}", path.display()))
}

/// Subject prefixes of one cluster, so several can share a NATS.
pub fn user_prefix(config: &ClusterConfig) -> String {
    format!("confab.{}.user", config.cluster)
}

pub fn shard_prefix(config: &ClusterConfig) -> String {
    format!("confab.{}.shard", config.cluster)
}

/// The cluster's live-session directory, as this process (`role`, plus a
/// random id so restarts and replicas never share keys).
pub async fn sessions(
    nats: &async_nats::Client,
    config: &ClusterConfig,
    role: &str,
) -> Result<Arc<NatsSessions>> {
    let js = async_nats::jetstream::new(nats.clone());
    let replicas = config.nats.cache_replicas as usize;
    let kv = nats_sessions::bucket(&js, &config.cluster, replicas)
        .await
        .context("opening the session cache")?;
    let node = format!("{role}-{}", uuid::Uuid::new_v4().simple());
    Ok(NatsSessions::start(kv, node))
}

/// The cluster's push work queue (replicated like the session cache).
pub async fn push_queue(
    nats: &async_nats::Client,
    config: &ClusterConfig,
) -> Result<Arc<NatsQueue>> {
    let js = async_nats::jetstream::new(nats.clone());
    let replicas = config.nats.cache_replicas as usize;
    let queue = NatsQueue::open(js, &config.cluster, replicas)
        .await
        .context("opening the push queue")?;
    Ok(Arc::new(queue))
}

/// The servers of a NATS URL list (`nats://a:4222,nats://b:4222`, as NATS
/// clients write it; the client takes one URL per entry).
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connects to NATS (reconnecting forever on its own). The receiver counts
/// connections: it moves past 1 each time the client reconnected, after
/// which anything published meanwhile may have been missed.
pub async fn nats(
    config: &NatsConfig,
    name: &str,
) -> Result<(async_nats::Client, tokio::sync::watch::Receiver<u64>)> {
    let (connected, connections) = tokio::sync::watch::channel(0u64);
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            match &event {
                async_nats::Event::Connected => connected.send_modify(|n| *n += 1),
                async_nats::Event::Disconnected => tracing::warn!("NATS connection lost"),
                _ => {}
            }
            async {}
        });
    if let Some(file) = &config.credentials_file {
        options = options
            .credentials_file(file)
            .await
            .with_context(|| format!("NATS credentials {file}"))?;
    }
    if let Some(file) = &config.token_file {
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the NATS token {file}"))?;
        options = options.token(token.trim().to_string());
    }
    if let Some(dir) = &config.tls_dir {
        let tls = TlsDir::read(Path::new(dir));
        options = options.require_tls(true);
        if let Some(ca) = tls.ca {
            options = options.add_root_certificates(ca);
        }
        if let Some((cert, key)) = tls.client {
            options = options.add_client_certificate(cert, key);
        }
    }
    let client = options
        .connect(servers(&config.url))
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.url))?;
    Ok((client, connections))
}

/// Connects to the CQL store and applies pending migrations.
pub async fn store(config: &StoreConfig) -> Result<Arc<ScyllaStore>> {
    let StoreConfig::Scylla {
        contact_points,
        keyspace,
        replication_factor,
        credentials_dir,
        tls_dir,
        tls_server_name,
    } = config;
    let mut builder = cql::recommended(SessionBuilder::new().known_nodes(contact_points));
    if let Some(dir) = credentials_dir {
        let read = |k: &str| -> Result<String> {
            let p = Path::new(dir).join(k);
            Ok(std::fs::read_to_string(&p)
                .with_context(|| format!("{}", p.display()))?
                .trim()
                .to_owned())
        };
        builder = builder.user(read("username")?, read("password")?);
    }
    if let Some(dir) = tls_dir {
        let tls = tls_client::cql(Path::new(dir), tls_server_name.as_deref())
            .with_context(|| format!("store TLS from {dir}"))?;
        builder = builder.tls_context(Some(Arc::new(tls)));
    }
    let session = builder
        .build()
        .await
        .with_context(|| format!("cannot connect to the store at {contact_points:?}"))?;
    let settings = ScyllaConfig::new(
        keyspace.clone(),
        Replication::Simple {
            factor: *replication_factor,
        },
    );
    Ok(Arc::new(
        ScyllaStore::open(Arc::new(session), settings).await?,
    ))
}

/// The token signing key from its file (hex or raw, at least 32 bytes).
pub fn signing_key(path: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("signing key {path}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let key = hex::decode(text.trim()).unwrap_or(bytes);
    anyhow::ensure!(
        key.len() >= 32,
        "the signing key in {path} is shorter than 32 bytes"
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_is_split_into_servers() {
        assert_eq!(servers("nats://a:4222"), vec!["nats://a:4222"]);
        assert_eq!(
            servers("nats://a:4222, nats://b:4222,,nats://c:4222 "),
            vec!["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }
}
