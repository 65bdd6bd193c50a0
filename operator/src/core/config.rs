//! The runtime ConfigMap: the `ChatCluster` spec resolved into the
//! [`ClusterConfig`] every chat-runtime pod reads, plus which Secrets each
//! role mounts where (the paths the config names).
//!
//! The committed ring goes in as it is. Everything else in the config is
//! hashed into the runtime pod templates ([`config_hash`]), so a change the
//! pods read only at start (NATS, store, buckets, push, cache replicas) rolls
//! them; the ring is left out of the hash, so a ring change never restarts a
//! pod (pods learn it through the control API).

use std::collections::BTreeMap;

use confab_api::cluster::{ChatCluster, Provider};
use confab_api::config::{
    ApnsConfig, AuthConfig, BucketConfig, CONFIG_KEY, CONFIG_VERSION, CONTROL_TOKEN_VOLUME,
    ClusterConfig, NatsConfig, PushConfig, SIGNING_KEY_KEY, StoreConfig, TOKEN_KEY,
};
use confab_api::ring::{Ring, ShardId};
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::names::{Names, Role};
use super::pod::secret_dir;

/// Folder of filesystem media buckets (an emptyDir on gateways).
pub const MEDIA_DIR: &str = "/var/lib/confab/media";
/// Pod-template annotation holding [`config_hash`].
pub const CONFIG_HASH_ANNOTATION: &str = "confab.dev/config-hash";
/// NATS client port.
pub const NATS_PORT: u16 = 4222;
/// CQL port.
pub const CQL_PORT: u16 = 9042;

/// Volume of the external NATS's TLS Secret (every role).
pub const NATS_TLS_VOLUME: &str = "nats-tls";
/// Volume of the external store's TLS Secret (every role).
pub const SCYLLA_TLS_VOLUME: &str = "scylla-tls";
/// Volume of the gateways' own TLS Secret.
pub const GATEWAY_TLS_VOLUME: &str = "gateway-tls";

/// The signing-key Secret's name.
pub fn signing_key_secret(cc: &ChatCluster, names: &Names) -> String {
    cc.spec
        .auth
        .signing_key_secret
        .clone()
        .unwrap_or_else(|| names.child("signing-key"))
}

/// `(volume, Secret)` pairs a role mounts, each at [`secret_dir`]`(volume)`.
pub fn secret_volumes(cc: &ChatCluster, names: &Names, role: Role) -> Vec<(String, String)> {
    let spec = &cc.spec;
    let mut out = Vec::new();
    if let Some(secret) = spec
        .nats
        .external
        .as_ref()
        .and_then(|n| n.credentials_secret.clone())
    {
        out.push(("nats".into(), secret));
    }
    if spec.nats.managed.is_some() {
        out.push(("nats".into(), names.nats_auth_secret()));
    }
    if let Some(tls) = spec.nats.external.as_ref().and_then(|n| n.tls.as_ref()) {
        out.push((NATS_TLS_VOLUME.into(), tls.secret_name.clone()));
    }
    if let Some(secret) = spec
        .scylla
        .external
        .as_ref()
        .and_then(|s| s.credentials_secret.clone())
    {
        out.push(("scylla".into(), secret));
    }
    if let Some(tls) = spec.scylla.external.as_ref().and_then(|s| s.tls.as_ref()) {
        out.push((SCYLLA_TLS_VOLUME.into(), tls.secret_name.clone()));
    }
    if matches!(role, Role::Shard | Role::Gateway) {
        out.push((CONTROL_TOKEN_VOLUME.into(), names.control_token_secret()));
    }
    match role {
        Role::Gateway => {
            out.push(("auth".into(), signing_key_secret(cc, names)));
            if let Some(tls) = &spec.gateway.tls {
                out.push((GATEWAY_TLS_VOLUME.into(), tls.secret_name.clone()));
            }
            for (i, b) in spec.media.buckets.iter().enumerate() {
                if let Some(secret) = &b.credentials_secret {
                    out.push((format!("bucket-{i}"), secret.clone()));
                }
            }
        }
        Role::Notifier => {
            if let Some(r) = &spec.push.fcm {
                out.push(("fcm".into(), r.name.clone()));
            }
            if let Some(a) = &spec.push.apns {
                out.push(("apns".into(), a.key.name.clone()));
            }
        }
        _ => {}
    }
    out
}

fn nats_config(cc: &ChatCluster, names: &Names) -> NatsConfig {
    let cache_replicas = cc.spec.cache.replicas.max(1) as u32;
    match &cc.spec.nats.external {
        Some(ext) => NatsConfig {
            url: ext.url.clone(),
            credentials_file: ext
                .credentials_secret
                .as_ref()
                .map(|_| format!("{}/creds", secret_dir("nats"))),
            token_file: None,
            tls_dir: ext.tls.as_ref().map(|_| secret_dir(NATS_TLS_VOLUME)),
            cache_replicas,
        },
        None => NatsConfig {
            url: format!(
                "nats://{}.{}.svc:{NATS_PORT}",
                names.workload(Role::Nats),
                names.namespace
            ),
            credentials_file: None,
            token_file: Some(format!("{}/{TOKEN_KEY}", secret_dir("nats"))),
            tls_dir: None,
            cache_replicas,
        },
    }
}

fn store_config(cc: &ChatCluster, names: &Names) -> StoreConfig {
    match &cc.spec.scylla.external {
        Some(ext) => StoreConfig::Scylla {
            contact_points: ext.contact_points.clone(),
            keyspace: ext.keyspace.clone(),
            replication_factor: ext.replication_factor.max(1) as u32,
            credentials_dir: ext
                .credentials_secret
                .as_ref()
                .map(|_| secret_dir("scylla")),
            tls_dir: ext.tls.as_ref().map(|_| secret_dir(SCYLLA_TLS_VOLUME)),
            tls_server_name: ext.tls.as_ref().and_then(|t| t.server_name.clone()),
        },
        None => StoreConfig::Scylla {
            contact_points: vec![format!(
                "{}.{}.svc:{CQL_PORT}",
                names.workload(Role::Scylla),
                names.namespace
            )],
            keyspace: "confab".into(),
            replication_factor: 1,
            credentials_dir: None,
            tls_dir: None,
            tls_server_name: None,
        },
    }
}

/// This incarnation's name on the bus: the ChatCluster's name (dots made
/// dashes) and the first eight letters and digits of its UID, e.g.
/// `chat-9843df8d`. NATS subjects and KV buckets carry it, so two ChatClusters
/// sharing one NATS — one name in two namespaces, or a cluster deleted and
/// created again — never share leases, ownership records or sessions.
pub fn bus_name(cc: &ChatCluster, names: &Names) -> String {
    let uid: String = cc
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let name = names.cluster.replace('.', "-");
    if uid.is_empty() {
        name
    } else {
        format!("{name}-{uid}")
    }
}

/// The runtime's cluster config for `cc` with the committed `ring`.
pub fn cluster_config(cc: &ChatCluster, names: &Names, ring: Ring) -> ClusterConfig {
    let push = &cc.spec.push;
    ClusterConfig {
        version: CONFIG_VERSION,
        cluster: bus_name(cc, names),
        namespace: names.namespace.clone(),
        ring,
        shard_address: names.shard_address_template(),
        nats: nats_config(cc, names),
        store: store_config(cc, names),
        media: buckets(cc),
        push: PushConfig {
            fcm_credentials_file: push
                .fcm
                .as_ref()
                .map(|r| format!("{}/{}", secret_dir("fcm"), r.key)),
            fcm_endpoint: None,
            apns: push.apns.as_ref().map(|a| ApnsConfig {
                key_file: format!("{}/{}", secret_dir("apns"), a.key.key),
                key_id: a.key_id.clone(),
                team_id: a.team_id.clone(),
                topic: a.topic.clone(),
                sandbox: a.sandbox,
                endpoint: None,
            }),
            webhooks: push.webhooks,
            allow_http_webhooks: false,
        },
        auth: AuthConfig {
            signing_key_file: format!("{}/{SIGNING_KEY_KEY}", secret_dir("auth")),
        },
    }
}

fn buckets(cc: &ChatCluster) -> Vec<BucketConfig> {
    let provider = |p: Provider| match p {
        Provider::S3 => "s3",
        Provider::Gcs => "gcs",
        Provider::Azure => "azure",
        Provider::Filesystem => "filesystem",
    };
    cc.spec
        .media
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| BucketConfig {
            name: b.name.clone(),
            provider: provider(b.provider).into(),
            endpoint: b.endpoint.clone(),
            region: b.region.clone(),
            credentials_dir: match b.provider {
                Provider::Filesystem => Some(format!("{MEDIA_DIR}/{}", b.name)),
                _ => b
                    .credentials_secret
                    .as_ref()
                    .map(|_| secret_dir(&format!("bucket-{i}"))),
            },
            max_object_bytes: b.max_object_bytes.max(0) as u64,
            retention_days: b.retention_days.map(|d| d.max(0) as u32),
            delete_after_download: b.delete_after_download,
            kinds: b.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        })
        .collect()
}

/// A short hash of [`cluster_config`] without its ring: what a runtime pod
/// reads only when it starts.
pub fn config_hash(cc: &ChatCluster, names: &Names) -> String {
    // Any ring will do: it is taken out before hashing.
    let ring = Ring::new(0, &[ShardId(0)], 1).expect("a one-shard ring is valid");
    let mut config =
        serde_json::to_value(cluster_config(cc, names, ring)).expect("config serializes");
    if let Some(fields) = config.as_object_mut() {
        fields.remove("ring");
    }
    let digest = Sha256::digest(config.to_string());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `<cluster>-config` ConfigMap holding [`cluster_config`] as JSON.
pub fn build_config_map(cc: &ChatCluster, names: &Names, ring: Ring) -> ConfigMap {
    let config = cluster_config(cc, names, ring);
    let json = serde_json::to_string_pretty(&config).expect("config serializes");
    ConfigMap {
        metadata: names.meta(names.config_map(), names.labels()),
        data: Some(BTreeMap::from([(CONFIG_KEY.into(), json)])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;
    use confab_api::cluster::{
        BucketSpec, ExternalNats, ExternalScylla, SecretKeyRef, TlsSecretRef,
    };
    use confab_api::ring::ShardId;

    fn ring() -> Ring {
        Ring::new(4, &[ShardId(0), ShardId(1)], 64).unwrap()
    }

    #[test]
    fn each_incarnation_has_its_own_name_on_the_bus() {
        let mut cc = cluster();
        cc.metadata.uid = Some("9843df8d-503f-42b7-9275-45e72bb462ff".into());
        let names = Names::new(&cc);
        assert_eq!(bus_name(&cc, &names), "chat-9843df8d");
        assert_eq!(cluster_config(&cc, &names, ring()).cluster, "chat-9843df8d");
        cc.metadata.uid = Some("0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e".into());
        assert_eq!(bus_name(&cc, &names), "chat-0191e3a0");
        cc.metadata.name = Some("chat.eu".into());
        assert_eq!(bus_name(&cc, &Names::new(&cc)), "chat-eu-0191e3a0");
    }

    #[test]
    fn managed_defaults_point_at_the_managed_services() {
        let cc = cluster();
        let names = Names::new(&cc);
        let cm = build_config_map(&cc, &names, ring());
        assert_eq!(cm.metadata.name.as_deref(), Some("chat-config"));
        let config = ClusterConfig::from_json(&cm.data.unwrap()[CONFIG_KEY]).unwrap();
        assert_eq!(config.ring, ring());
        assert_eq!(config.nats.url, "nats://chat-nats.prod.svc:4222");
        assert_eq!(
            config.nats.token_file.as_deref(),
            Some("/var/run/confab/nats/token"),
            "the managed NATS demands its token"
        );
        for role in [Role::Shard, Role::Gateway, Role::Notifier] {
            let mounted = secret_volumes(&cc, &names, role);
            assert!(mounted.contains(&("nats".into(), "chat-nats-auth".into())));
        }
        assert_eq!(
            config.store,
            StoreConfig::Scylla {
                contact_points: vec!["chat-scylla.prod.svc:9042".into()],
                keyspace: "confab".into(),
                replication_factor: 1,
                credentials_dir: None,
                tls_dir: None,
                tls_server_name: None,
            }
        );
        assert_eq!(
            config.auth.signing_key_file,
            "/var/run/confab/auth/signing-key"
        );
        assert_eq!(
            config.shard_control_address(1),
            "chat-shard-1.chat-shard.prod.svc:9090"
        );
    }

    #[test]
    fn external_nats_buckets_and_push_become_files_the_roles_mount() {
        let mut cc = cluster();
        cc.spec.nats.managed = None;
        cc.spec.nats.external = Some(ExternalNats {
            url: "tls://bus:4222".into(),
            credentials_secret: Some("bus-creds".into()),
            tls: Some(TlsSecretRef {
                secret_name: "bus-client-tls".into(),
            }),
        });
        cc.spec.gateway.tls = Some(TlsSecretRef {
            secret_name: "chat-example-com".into(),
        });
        cc.spec.media.buckets = vec![
            serde_json::from_value::<BucketSpec>(serde_json::json!(
                {"name": "media", "provider": "s3", "credentialsSecret": "s3-keys",
                 "kinds": ["image", "video"]}))
            .unwrap(),
            serde_json::from_value::<BucketSpec>(serde_json::json!(
                {"name": "local", "provider": "filesystem"}))
            .unwrap(),
        ];
        cc.spec.push.fcm = Some(SecretKeyRef {
            name: "fcm".into(),
            key: "sa.json".into(),
        });
        let names = Names::new(&cc);
        let config = cluster_config(&cc, &names, ring());
        assert_eq!(
            config.nats.credentials_file.as_deref(),
            Some("/var/run/confab/nats/creds")
        );
        assert_eq!(
            config.nats.tls_dir.as_deref(),
            Some("/var/run/confab/nats-tls")
        );
        assert_eq!(
            config.media[0].credentials_dir.as_deref(),
            Some("/var/run/confab/bucket-0")
        );
        assert_eq!(
            config.media[1].credentials_dir.as_deref(),
            Some("/var/lib/confab/media/local")
        );
        assert_eq!(config.media[0].kinds, ["image", "video"]);
        assert!(config.media[1].kinds.is_empty(), "every kind");
        assert_eq!(
            config.push.fcm_credentials_file.as_deref(),
            Some("/var/run/confab/fcm/sa.json")
        );

        let gateway = secret_volumes(&cc, &names, Role::Gateway);
        assert!(gateway.contains(&("bucket-0".into(), "s3-keys".into())));
        assert!(gateway.contains(&("auth".into(), "chat-signing-key".into())));
        assert!(gateway.contains(&("nats".into(), "bus-creds".into())));
        assert!(gateway.contains(&("gateway-tls".into(), "chat-example-com".into())));
        let notifier = secret_volumes(&cc, &names, Role::Notifier);
        assert!(notifier.contains(&("fcm".into(), "fcm".into())));
        assert!(!notifier.iter().any(|(v, _)| v == "auth"));
        // Every role reaches NATS over TLS; only gateways serve TLS.
        for role in [Role::Gateway, Role::Shard, Role::Notifier] {
            let volumes = secret_volumes(&cc, &names, role);
            assert!(volumes.contains(&("nats-tls".into(), "bus-client-tls".into())));
            let serves = volumes.iter().any(|(v, _)| v == "gateway-tls");
            assert_eq!(serves, role == Role::Gateway, "{role:?}");
        }
    }

    #[test]
    fn an_external_store_over_tls_is_reached_by_every_role_with_its_secret() {
        let mut cc = cluster();
        cc.spec.scylla.managed = None;
        cc.spec.scylla.external = Some(
            serde_json::from_value::<ExternalScylla>(serde_json::json!({
                "contactPoints": ["cql.db:9042"], "credentialsSecret": "cql-login",
                "tls": {"secretName": "cql-client-tls", "serverName": "cql.db.svc"}}))
            .unwrap(),
        );
        let names = Names::new(&cc);
        let StoreConfig::Scylla {
            credentials_dir,
            tls_dir,
            tls_server_name,
            ..
        } = cluster_config(&cc, &names, ring()).store;
        assert_eq!(credentials_dir.as_deref(), Some("/var/run/confab/scylla"));
        assert_eq!(tls_dir.as_deref(), Some("/var/run/confab/scylla-tls"));
        assert_eq!(tls_server_name.as_deref(), Some("cql.db.svc"));
        for role in [Role::Gateway, Role::Shard, Role::Notifier] {
            let volumes = secret_volumes(&cc, &names, role);
            assert!(volumes.contains(&("scylla-tls".into(), "cql-client-tls".into())));
        }
        let mut plain = cc.clone();
        plain.spec.scylla.external.as_mut().unwrap().tls = None;
        assert_ne!(
            config_hash(&plain, &names),
            config_hash(&cc, &names),
            "turning TLS on rolls the pods"
        );
    }

    #[test]
    fn config_hash_follows_what_pods_read_at_start_and_ignores_scaling() {
        let cc = cluster();
        let hash = |cc: &ChatCluster| config_hash(cc, &Names::new(cc));
        let base = hash(&cc);
        assert_eq!(base.len(), 16);
        assert_eq!(hash(&cc.clone()), base, "deterministic");

        let mut scaled = cc.clone();
        scaled.spec.shards.count = 7;
        scaled.spec.gateway.replicas = 4;
        scaled.spec.notifier.replicas = 3;
        assert_eq!(hash(&scaled), base, "scaling reads nothing new");

        let mut cache = cc.clone();
        cache.spec.cache.replicas = 3;
        let mut webhooks = cc.clone();
        webhooks.spec.push.webhooks = !cc.spec.push.webhooks;
        let mut bucket = cc.clone();
        bucket.spec.media.buckets.push(
            serde_json::from_value(serde_json::json!({"name": "extra", "provider": "filesystem"}))
                .unwrap(),
        );
        for (changed, what) in [(cache, "cache"), (webhooks, "push"), (bucket, "media")] {
            assert_ne!(hash(&changed), base, "{what} is read at start");
        }
    }
}
