//! The runtime's cluster configuration: the JSON document the operator writes
//! into the `<cluster>-config` ConfigMap and every chat-runtime pod reads at
//! start-up from [`CONFIG_PATH`].
//!
//! Owns the file's shape and the pod-side conventions that go with it (paths
//! of mounted Secrets, ports, environment variables). It holds no defaults of
//! its own: the operator resolves the `ChatCluster` spec into this, so the
//! runtime never has to know about the CRD.
//!
//! The ring is a [`Ring`]: it serializes to its inputs (`version`, `epoch`,
//! `shards`, `vnodesPerShard`) and is rebuilt — and checked — when read.
//! Ring changes after start-up arrive through the control API
//! (`PrepareRing`/`CommitRing`); the ConfigMap keeps the committed ring for
//! pods that start later, and is never hashed into pod templates (a ring
//! change must not restart pods).

use serde::{Deserialize, Serialize};

use crate::ring::Ring;

/// Where pods find the config file (the ConfigMap is mounted at its folder).
pub const CONFIG_PATH: &str = "/etc/confab/cluster.json";
/// Key of the config file in the ConfigMap.
pub const CONFIG_KEY: &str = "cluster.json";
/// Folder under which Secrets are mounted, one sub-folder per Secret use.
pub const SECRETS_DIR: &str = "/var/run/confab";
/// Key of the signing key in its Secret.
pub const SIGNING_KEY_KEY: &str = "signing-key";
/// Key of a generated token in its Secret (the control API's, the managed
/// NATS's).
pub const TOKEN_KEY: &str = "token";
/// Keys of a TLS Secret (`kubernetes.io/tls`, as cert-manager writes it):
/// the certificate chain, its private key, and the issuing CA.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const TLS_CA_KEY: &str = "ca.crt";
/// Environment variables naming the gateway's own certificate and key files
/// (`chat-runtime gateway --tls-cert/--tls-key`).
pub const TLS_CERT_ENV: &str = "CONFAB_TLS_CERT";
pub const TLS_KEY_ENV: &str = "CONFAB_TLS_KEY";
/// Environment variable with the gateway's trusted proxies, comma-separated
/// networks (`chat-runtime gateway --trusted-proxies`).
pub const TRUSTED_PROXIES_ENV: &str = "CONFAB_TRUSTED_PROXIES";
/// Environment variable: most open WebSocket sessions of one gateway.
pub const MAX_CONNECTIONS_ENV: &str = "CONFAB_MAX_CONNECTIONS";
/// Most open WebSocket sessions of one gateway unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: i32 = 19_000;
/// Volume (under [`SECRETS_DIR`]) where the control token Secret is mounted.
pub const CONTROL_TOKEN_VOLUME: &str = "control";
/// Environment variable naming the file that holds the control token; when
/// set, the control API refuses calls without `authorization: Bearer <token>`.
pub const CONTROL_TOKEN_FILE_ENV: &str = "CONFAB_CONTROL_TOKEN_FILE";
/// HTTP port of every role: WebSocket, REST, `/healthz`, `/readyz`, `/metrics`.
pub const HTTP_PORT: u16 = 8080;
/// gRPC port of the control API (`crds/proto/control.proto`).
pub const CONTROL_PORT: u16 = 9090;
/// Environment variable holding the pod's name; shards derive their ordinal
/// (`<cluster>-shard-<n>`) from it.
pub const POD_NAME_ENV: &str = "CONFAB_POD_NAME";
/// Environment variable holding the config file path.
pub const CONFIG_ENV: &str = "CONFAB_CONFIG";
/// Version of this document's shape.
pub const CONFIG_VERSION: u32 = 1;

/// Everything a runtime pod needs to join its cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// [`CONFIG_VERSION`]; a runtime refuses a version it does not know.
    pub version: u32,
    /// The `ChatCluster`'s name on the bus (the operator adds part of its
    /// UID, so another incarnation or namespace never shares its state);
    /// prefixes NATS subjects and KV buckets.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// The committed ring.
    pub ring: Ring,
    /// DNS template of a shard's control API: `{ordinal}` is replaced by the
    /// shard's ordinal, e.g. `chat-shard-{ordinal}.chat-shard.prod.svc:9090`.
    pub shard_address: String,
    /// The bus.
    pub nats: NatsConfig,
    /// The store.
    pub store: StoreConfig,
    /// Media buckets, by name.
    pub media: Vec<BucketConfig>,
    /// Push credentials, as files.
    pub push: PushConfig,
    /// Token signing.
    pub auth: AuthConfig,
}

/// The NATS bus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// `.creds` file, when the NATS needs credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// File holding the token the NATS requires (the managed NATS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Folder of a TLS Secret: with it the connection must be TLS. Its
    /// [`TLS_CA_KEY`] is the CA to trust (else the system's roots), and its
    /// [`TLS_CERT_KEY`] + [`TLS_KEY_KEY`], when present, the client
    /// certificate for a NATS that verifies clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_dir: Option<String>,
    /// Replicas of the presence/session key-value bucket.
    pub cache_replicas: u32,
}

/// The store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StoreConfig {
    /// ScyllaDB or Cassandra over CQL.
    Scylla {
        /// `host:port` seeds.
        contact_points: Vec<String>,
        /// Keyspace; created if absent.
        keyspace: String,
        /// Replication factor for keyspace creation.
        replication_factor: u32,
        /// Folder with `username` and `password` files, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_dir: Option<String>,
        /// Folder of a TLS Secret: with it every CQL connection is TLS. Its
        /// [`TLS_CA_KEY`] is the CA to trust (else the system's roots), and
        /// its [`TLS_CERT_KEY`] + [`TLS_KEY_KEY`], when present, the client
        /// certificate for nodes that verify clients.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_dir: Option<String>,
        /// The name every node's certificate is checked against. The driver
        /// connects to the addresses the nodes announce, so without it each
        /// certificate must name its node's IP address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_server_name: Option<String>,
    },
}

/// A media bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BucketConfig {
    /// Bucket name.
    pub name: String,
    /// `s3`, `gcs`, `azure` or `filesystem`.
    pub provider: String,
    /// Endpoint URL (S3-compatible services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Folder with the credential files, if any (for `filesystem`: the data
    /// folder itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
    /// Largest object accepted.
    pub max_object_bytes: u64,
    /// Days objects are kept after their last upload or share; none: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Delete an object once every recipient has downloaded it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_after_download: bool,
    /// Kinds of uploads this bucket takes (`image`, `video`, `audio`,
    /// `file`); empty: every kind. An upload goes to the first bucket of
    /// the list that takes its kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// Push credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushConfig {
    /// FCM service-account JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm_credentials_file: Option<String>,
    /// FCM API base URL instead of Google's (an emulator, a test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm_endpoint: Option<String>,
    /// APNs token-based authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsConfig>,
    /// Devices may register webhook endpoints (`https` URLs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhooks: bool,
    /// Webhook endpoints may also be plain `http` (development only: the
    /// notification travels unencrypted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_webhooks: bool,
}

/// APNs credentials and target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApnsConfig {
    /// The `.p8` key file.
    pub key_file: String,
    /// The key's id (10 characters, from Apple's developer account).
    pub key_id: String,
    /// The team id the key belongs to.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Apple's development environment instead of production.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
    /// Base URL instead of Apple's (a test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Token signing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// File holding the signing key (≥ 32 bytes).
    pub signing_key_file: String,
}

impl ClusterConfig {
    /// Parses a config file's contents, refusing versions this build does not
    /// know.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text).map_err(ConfigError::Parse)?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::Version(config.version));
        }
        Ok(config)
    }

    /// The control API address of shard `ordinal`.
    pub fn shard_control_address(&self, ordinal: u32) -> String {
        self.shard_address
            .replace("{ordinal}", &ordinal.to_string())
    }
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cluster config is not valid JSON of the expected shape (or its ring is invalid): {0}")]
    Parse(#[source] serde_json::Error),
    #[error(
        "cluster config version {0} is unknown to this build (it knows {CONFIG_VERSION}); \
         upgrade chat-runtime"
    )]
    Version(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::ShardId;

    fn sample() -> ClusterConfig {
        ClusterConfig {
            version: CONFIG_VERSION,
            cluster: "chat".into(),
            namespace: "prod".into(),
            ring: Ring::new(3, &[ShardId(0), ShardId(1), ShardId(2)], 64).unwrap(),
            shard_address: "chat-shard-{ordinal}.chat-shard.prod.svc:9090".into(),
            nats: NatsConfig {
                url: "nats://chat-nats.prod.svc:4222".into(),
                credentials_file: None,
                token_file: None,
                tls_dir: None,
                cache_replicas: 1,
            },
            store: StoreConfig::Scylla {
                contact_points: vec!["chat-scylla.prod.svc:9042".into()],
                keyspace: "confab".into(),
                replication_factor: 1,
                credentials_dir: None,
                tls_dir: Some("/var/run/confab/scylla-tls".into()),
                tls_server_name: Some("scylla.prod.svc".into()),
            },
            media: vec![],
            push: PushConfig::default(),
            auth: AuthConfig {
                signing_key_file: "/var/run/confab/auth/signing-key".into(),
            },
        }
    }

    #[test]
    fn round_trips_and_addresses_shards() {
        let config = sample();
        let text = serde_json::to_string(&config).unwrap();
        assert!(
            text.contains(r#""ring":{"version":1,"epoch":3,"shards":[0,1,2],"vnodesPerShard":64}"#)
        );
        assert!(text.contains(r#""kind":"scylla""#));
        assert_eq!(ClusterConfig::from_json(&text).unwrap(), config);
        assert_eq!(
            config.shard_control_address(2),
            "chat-shard-2.chat-shard.prod.svc:9090"
        );
    }

    #[test]
    fn refuses_unknown_version_with_advice() {
        let mut config = sample();
        config.version = 99;
        let text = serde_json::to_string(&config).unwrap();
        let err = ClusterConfig::from_json(&text).unwrap_err();
        assert!(err.to_string().contains("upgrade chat-runtime"), "{err}");
    }
}
