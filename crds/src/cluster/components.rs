//! One spec type per part of a `ChatCluster`, with its defaults and the CEL
//! rules that concern only that part.
//!
//! Counts are `i32` like Kubernetes' own replica fields; ring quantities are
//! `u32` like the ring's. Every default lives in a `default_*` function so the
//! schema, serde and `Default` agree. Bounds are OpenAPI `minimum`/`maximum`
//! (so `kubectl explain` shows them); CEL only adds what OpenAPI cannot say.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::admission;
use super::autoscale::{GatewayAutoscale, ShardAutoscale};

/// How many sequencing shards run, and how finely the ring splits them.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.count >= 1", "message": "shards.count must be at least 1: every chat needs a shard to sequence it", "fieldPath": ".count" },
    { "rule": "self.count <= 256", "message": "shards.count must be at most 256", "fieldPath": ".count" }
]))]
pub struct ShardsSpec {
    /// Number of shard pods (1-256). Scaling moves about 1/N of the chats per
    /// step, through a two-phase ring change.
    #[serde(default = "default_shard_count")]
    #[schemars(range(min = 1, max = 256))]
    pub count: i32,
    /// Virtual nodes per shard on the consistent-hash ring (1-4096). Fixed at
    /// creation: changing it would move most chats at once.
    #[serde(default = "default_vnodes")]
    #[schemars(range(min = 1, max = 4096))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self == oldSelf", "message": "shards.vnodesPerShard is immutable: changing it would move most chats at once; create a new ChatCluster instead" }
    ]))]
    pub vnodes_per_shard: u32,
    /// Seconds a shard may stay NotReady before it is taken out of the ring
    /// (its lease fences it; its chats move to its ring neighbours). It is put
    /// back once Ready again.
    #[serde(default = "default_failover_delay")]
    #[schemars(range(min = 1))]
    pub failover_delay_seconds: i32,
    /// Lets the operator set `count` from the load (see `docs/crd.md`,
    /// Autoscaling). Unset: `count` is what the spec, or an HPA through the
    /// scale subresource, says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<ShardAutoscale>,
}

impl Default for ShardsSpec {
    fn default() -> Self {
        Self {
            count: default_shard_count(),
            vnodes_per_shard: default_vnodes(),
            failover_delay_seconds: default_failover_delay(),
            autoscale: None,
        }
    }
}

fn default_shard_count() -> i32 {
    1
}
fn default_vnodes() -> u32 {
    64
}
fn default_failover_delay() -> i32 {
    30
}
fn default_one() -> i32 {
    1
}
fn default_max_connections() -> i32 {
    crate::config::DEFAULT_MAX_CONNECTIONS
}

/// The gateways: the WebSocket/REST edge clients connect to.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "!has(self.autoscale) || self.autoscale.targetConnections < self.maxConnections", "message": "gateway.autoscale.targetConnections must be below gateway.maxConnections: a gateway refuses connections above its maximum before the autoscaler would add one", "fieldPath": ".autoscale.targetConnections" }
]))]
pub struct GatewaySpec {
    /// Gateway pods. With more than one, a PodDisruptionBudget keeps all but
    /// one available during voluntary disruptions.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Most open WebSocket sessions per gateway pod (100-1,000,000); a
    /// gateway refuses newcomers above it (close 4001, try again later).
    /// About 14 KiB of memory each: size `resources.gateway` to match.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 100, max = 1_000_000))]
    pub max_connections: i32,
    /// The Service that is the cluster's WebSocket endpoint.
    #[serde(default)]
    pub service: GatewayServiceSpec,
    /// Seconds a gateway may stay NotReady before it is replaced; its clients
    /// reconnect to another gateway and resume. (Reserved: the operator does
    /// not act on it yet; the liveness probe restarts a stuck gateway.)
    #[serde(default = "default_failover_delay")]
    #[schemars(range(min = 1))]
    pub failover_delay_seconds: i32,
    /// How gateway pods spread across failure domains.
    #[serde(default)]
    pub topology_spread: TopologySpreadSpec,
    /// TLS served by the gateways themselves (HTTPS and `wss://` on the
    /// Service port): a `kubernetes.io/tls` Secret with `tls.crt` and
    /// `tls.key`, as a cert-manager Certificate writes it; a renewal is
    /// picked up without restarting the pods. Unset: plain HTTP, with TLS
    /// terminated in front (an Ingress or a load balancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSecretRef>,
    /// Networks (CIDR, e.g. `10.0.0.0/8`) of the proxies in front of the
    /// gateways: an ingress controller, a load balancer that sets
    /// `X-Forwarded-For`. For a connection from one of them the client is
    /// the address it forwarded for; the per-client limits (sign-ups,
    /// failed sign-ins, sessions per address) count by that address.
    /// Empty: each connection's peer is the client, so behind a proxy that
    /// hides client addresses every client shares the proxy's limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(regex(
            pattern = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)/[0-9]{1,3}$"
        ))
    )]
    pub trusted_proxies: Vec<String>,
    /// Lets the operator set `replicas` from the open connections. Unset:
    /// `replicas` is what the spec says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<GatewayAutoscale>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_connections: default_max_connections(),
            service: GatewayServiceSpec::default(),
            failover_delay_seconds: default_failover_delay(),
            topology_spread: TopologySpreadSpec::default(),
            tls: None,
            trusted_proxies: Vec::new(),
            autoscale: None,
        }
    }
}

/// A Secret holding TLS material under the keys cert-manager writes:
/// `tls.crt`, `tls.key` and `ca.crt`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// The Secret's name, in the ChatCluster's namespace.
    #[schemars(transform = admission::secret_name)]
    pub secret_name: String,
}

/// Kind of the gateway Service.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// The gateway Service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServiceSpec {
    /// Service type; `LoadBalancer` publishes an external WebSocket URL in status.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port clients connect to (WebSocket at `/v1/ws`, REST at `/v1`).
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Annotations for the Service, e.g. a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for GatewayServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::ClusterIP,
            port: default_service_port(),
            annotations: BTreeMap::new(),
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// What to do when a spread constraint cannot be met.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

/// A topology spread constraint the operator fills in for gateway pods.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadSpec {
    /// Node label naming the failure domain.
    #[serde(default = "default_topology_key")]
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,
    /// Most pods by which two domains may differ.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1))]
    pub max_skew: i32,
    /// Whether an unmet constraint blocks scheduling.
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,
}

impl Default for TopologySpreadSpec {
    fn default() -> Self {
        Self {
            topology_key: default_topology_key(),
            max_skew: 1,
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
        }
    }
}

fn default_topology_key() -> String {
    "topology.kubernetes.io/zone".into()
}

/// Push notification workers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifierSpec {
    /// Notifier pods; they share the push work queue.
    #[serde(default = "default_one")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
}

impl Default for NotifierSpec {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// The presence/session cache.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Copies of the JetStream key-value bucket; at most the number of NATS
    /// servers when NATS is managed.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i32,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// The NATS bus: exactly one of `external` or `managed`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.external) != has(self.managed)", "message": "nats: set exactly one of external (an existing NATS) or managed (the operator runs one)" },
    { "rule": "has(self.external) == has(oldSelf.external)", "message": "nats: switching between external and managed is not supported in place: the runtime's leases, ring ownership and push queue live in NATS; create a new ChatCluster instead" }
]))]
pub struct NatsSpec {
    /// An existing NATS with JetStream enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalNats>,
    /// A NATS StatefulSet (JetStream on) run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedNats>,
}

impl Default for NatsSpec {
    fn default() -> Self {
        Self {
            external: None,
            managed: Some(ManagedNats::default()),
        }
    }
}

/// An existing NATS.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalNats {
    /// Server URL(s), comma-separated, e.g. `nats://nats.infra:4222`; each
    /// `[nats|tls|ws|wss://][user:password@]host[:port]`.
    #[schemars(length(min = 1, max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": admission::NATS_URLS_RULE, "message": "nats.external.url must be one or more comma-separated NATS server URLs such as nats://nats.infra:4222: an optional scheme (nats, tls, ws, wss), a host and an optional port" }
    ]))]
    pub url: String,
    /// Secret holding NATS credentials (a `.creds` file under key `creds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::secret_name)]
    pub credentials_secret: Option<String>,
    /// TLS to the NATS servers; set, every connection must be TLS. The
    /// Secret's `ca.crt` is the CA to trust (absent: the system's roots);
    /// its `tls.crt` and `tls.key`, when present, are the client certificate
    /// for a NATS that verifies clients (a cert-manager Certificate gives
    /// all three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSecretRef>,
}

/// A NATS the operator runs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || string(self.storage) == string(oldSelf.storage))", "message": "nats.managed.storage is immutable: it sizes the StatefulSet's volume claims, which cannot change; expand the PersistentVolumeClaims themselves, or create a new ChatCluster", "fieldPath": ".storage" }
]))]
pub struct ManagedNats {
    /// NATS servers (JetStream cluster size); 1, 3 or 5 in practice.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i32,
    /// JetStream storage per server, e.g. `10Gi`. Unset: an emptyDir (data is
    /// lost when the pod goes; fine for development). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::storage)]
    pub storage: Option<Quantity>,
}

impl Default for ManagedNats {
    fn default() -> Self {
        Self {
            replicas: 1,
            storage: None,
        }
    }
}

/// The ScyllaDB store: exactly one of `external` or `managed`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.external) != has(self.managed)", "message": "scylla: set exactly one of external (an existing ScyllaDB/Cassandra) or managed (a single dev node)" },
    { "rule": "has(self.external) == has(oldSelf.external)", "message": "scylla: switching between external and managed is not supported in place: every message lives in the store; create a new ChatCluster instead" }
]))]
pub struct ScyllaSpec {
    /// An existing ScyllaDB (or Cassandra) cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalScylla>,
    /// A single ScyllaDB node for development; not for production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedScylla>,
}

impl Default for ScyllaSpec {
    fn default() -> Self {
        Self {
            external: None,
            managed: Some(ManagedScylla::default()),
        }
    }
}

/// An existing ScyllaDB.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalScylla {
    /// `host:port` of some nodes; the driver discovers the rest.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 253)))]
    pub contact_points: Vec<String>,
    /// Keyspace holding Confab's tables; created if absent. Immutable.
    #[serde(default = "default_keyspace")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self == oldSelf", "message": "scylla.external.keyspace is immutable: every message is stored in it; create a new ChatCluster to use another keyspace" }
    ]))]
    pub keyspace: String,
    /// Replication factor used when the keyspace is created.
    #[serde(default = "default_rf")]
    #[schemars(range(min = 1, max = 9))]
    pub replication_factor: i32,
    /// Secret with keys `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::secret_name)]
    pub credentials_secret: Option<String>,
    /// TLS to the nodes; set, every CQL connection must be TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<CqlTls>,
}

/// TLS to ScyllaDB or Cassandra nodes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CqlTls {
    /// Secret whose `ca.crt` is the CA to trust (absent: the system's
    /// roots); its `tls.crt` and `tls.key`, when present, are the client
    /// certificate for nodes that verify clients (a cert-manager
    /// Certificate gives all three).
    #[schemars(transform = admission::secret_name)]
    pub secret_name: String,
    /// The DNS name every node's certificate must carry. The driver talks
    /// to the addresses the nodes announce, so without it each node's
    /// certificate must name that node's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    pub server_name: Option<String>,
}

fn default_keyspace() -> String {
    "confab".into()
}
fn default_rf() -> i32 {
    3
}

/// The operator's dev ScyllaDB node.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || string(self.storage) == string(oldSelf.storage))", "message": "scylla.managed.storage is immutable: it sizes the StatefulSet's volume claim, which cannot change; expand the PersistentVolumeClaim itself, or create a new ChatCluster", "fieldPath": ".storage" }
]))]
pub struct ManagedScylla {
    /// ScyllaDB image.
    #[serde(default = "default_scylla_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Data volume size, e.g. `10Gi`. Unset: an emptyDir. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::storage)]
    pub storage: Option<Quantity>,
}

impl Default for ManagedScylla {
    fn default() -> Self {
        Self {
            image: default_scylla_image(),
            storage: None,
        }
    }
}

fn default_scylla_image() -> String {
    "scylladb/scylla:6.2".into()
}

/// Where media objects are stored.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaSpec {
    /// Buckets by name; the runtime picks one per media kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
        "x-kubernetes-validations" = [
            { "rule": "self.all(b, self.exists_one(c, c.name == b.name))", "message": "media.buckets names must be unique" }
        ]
    ))]
    pub buckets: Vec<BucketSpec>,
}

/// Object-storage service of a bucket.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    S3,
    Gcs,
    Azure,
    /// A folder in the pod (an emptyDir): development only.
    Filesystem,
}

/// One media bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.provider != 'filesystem' || (!has(self.endpoint) && !has(self.credentialsSecret))", "message": "a filesystem bucket takes neither endpoint nor credentialsSecret" }
]))]
pub struct BucketSpec {
    /// Bucket name at the provider; also its key in this list.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    )]
    pub name: String,
    /// Object-storage service.
    pub provider: Provider,
    /// Endpoint URL for S3-compatible services (MinIO, Ceph, R2), e.g.
    /// `https://minio.storage:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''", "message": "media.buckets[].endpoint must be an http(s) URL with a host, e.g. https://minio.storage:9000" }
    ]))]
    pub endpoint: Option<String>,
    /// Region, where the provider has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret with the provider's credentials (S3: `accessKeyId`,
    /// `secretAccessKey`; GCS: `serviceAccount.json`; Azure: `accountName`,
    /// `accountKey`). Unset: the pod's workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::secret_name)]
    pub credentials_secret: Option<String>,
    /// Largest object accepted, in bytes.
    #[serde(default = "default_max_object_bytes")]
    #[schemars(range(min = 1))]
    pub max_object_bytes: i64,
    /// Days after an object's last upload or share when it is deleted;
    /// unset keeps objects forever. Never deletes media a recipient has not
    /// yet received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention_days: Option<i32>,
    /// Delete an object once every recipient has downloaded it (the server
    /// then holds media only in transit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_after_download: bool,
    /// Kinds of uploads this bucket takes; empty takes every kind. An upload
    /// goes to the first bucket of the list that takes its kind (e.g. photos
    /// to a CDN-fronted bucket, everything else to another).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub kinds: Vec<UploadKind>,
}

/// A kind of upload, as the server decides it from the bytes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    Image,
    Video,
    Audio,
    File,
}

impl UploadKind {
    /// The name the runtime config uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }
}

fn default_max_object_bytes() -> i64 {
    16 * 1024 * 1024
}

/// A key in a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name, in the ChatCluster's namespace.
    #[schemars(transform = admission::secret_name)]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Push service credentials. A platform left unset sends no pushes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSpec {
    /// Firebase Cloud Messaging service-account JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<SecretKeyRef>,
    /// Apple Push Notification service, token-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsSpec>,
    /// Lets devices register an HTTPS endpoint of their own (UnifiedPush
    /// distributors, self-hosted relays) that notifiers POST to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhooks: bool,
}

/// APNs token-based authentication: the `.p8` key and what Apple issued
/// with it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApnsSpec {
    /// Secret and key holding the `.p8` key.
    pub key: SecretKeyRef,
    /// The key's id.
    #[schemars(length(min = 1, max = 32))]
    pub key_id: String,
    /// The Apple developer team id.
    #[schemars(length(min = 1, max = 32))]
    pub team_id: String,
    /// The app's bundle id, e.g. `com.example.chat`.
    #[schemars(length(min = 1, max = 255))]
    pub topic: String,
    /// Apple's development environment instead of production.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
}

/// Token signing.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret holding the token signing key under `signing-key` (at least 32
    /// bytes). Unset: `<cluster>-signing-key`. Generated when absent; an
    /// existing Secret is never modified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::secret_name)]
    pub signing_key_secret: Option<String>,
}

/// Compute resources per role. Unset roles get modest requests and a memory
/// limit (no CPU limit). In a role that is set, missing requests are filled
/// from its limits or the defaults, and absent `limits` get the default
/// memory limit (raised to the memory request if that is larger); `limits: {}`
/// means no limits.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// Gateway pods. Default: requests 250m CPU and 256Mi memory, limit 1Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::resources)]
    pub gateway: Option<ResourceRequirements>,
    /// Shard pods. Default: requests 250m CPU and 256Mi memory, limit 1Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::resources)]
    pub shard: Option<ResourceRequirements>,
    /// Notifier pods. Default: requests 50m CPU and 64Mi memory, limit 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::resources)]
    pub notifier: Option<ResourceRequirements>,
    /// Managed NATS servers. Default: requests 100m CPU and 128Mi memory, limit 1Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::resources)]
    pub nats: Option<ResourceRequirements>,
    /// The managed ScyllaDB node (which runs with `--memory=750M`). Default:
    /// requests 500m CPU and 1Gi memory, limit 1536Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::resources)]
    pub scylla: Option<ResourceRequirements>,
}

/// Node selection applied to every pod the operator creates.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// Node labels a pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.all(t, !has(t.operator) || t.operator in ['Exists', 'Equal'])", "message": "scheduling.tolerations[].operator must be Exists or Equal" },
        { "rule": "self.all(t, !has(t.effect) || t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'])", "message": "scheduling.tolerations[].effect must be NoSchedule, PreferNoSchedule or NoExecute (or empty for all)" },
        { "rule": "self.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || t.value == '')", "message": "scheduling.tolerations[]: operator Exists takes no value" },
        { "rule": "self.all(t, (has(t.key) && t.key != '') || (has(t.operator) && t.operator == 'Exists'))", "message": "scheduling.tolerations[]: an empty key needs operator Exists (it then tolerates every taint)" }
    ]))]
    pub tolerations: Vec<Toleration>,
}

/// NetworkPolicies the operator ships: only the operator reaches the control
/// API (9090, which also demands its token), only the cluster's runtime pods
/// reach the managed NATS and ScyllaDB; the gateway's HTTP port stays open.
/// They take effect where the network plugin enforces NetworkPolicies.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the policies; false deletes them (e.g. where a mesh or a
    /// cluster-wide policy already governs traffic).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        NetworkPolicySpec { enabled: true }
    }
}

fn default_true() -> bool {
    true
}
