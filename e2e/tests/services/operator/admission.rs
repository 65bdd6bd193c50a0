//! What the real API server refuses when a `ChatCluster` is applied, and with
//! which message: one bad spec per rule of `confab_api::cluster::admission`
//! and the per-field rules, each transition rule through a patch on a stored
//! object, a full valid spec still accepted, and a CRD the API server does
//! not warn about.
//!
//! Specs are sent as raw JSON (`DynamicObject`) so that values the Rust types
//! could not even hold (an integer quantity, an empty string where a default
//! exists) reach the API server as a user would write them.

use std::panic::AssertUnwindSafe;

use anyhow::{Result, bail};
use confab_api::cluster::ChatCluster;
use futures::FutureExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::{Value, json};

use super::{cleanup_namespace, client, install_crd, namespace};

/// `ChatCluster`s of `ns`, untyped.
fn untyped(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<ChatCluster>(&()))
}

fn object(name: &str, spec: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "confab.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": { "name": name },
        "spec": spec,
    }))?)
}

/// The API server's message refusing `result`, or an error if it was accepted.
fn refusal<T>(what: &str, result: kube::Result<T>) -> Result<String> {
    match result {
        Ok(_) => bail!("{what} was accepted"),
        Err(kube::Error::Api(e)) if e.code == 422 => Ok(e.message),
        Err(e) => bail!("{what}: unexpected error {e}"),
    }
}

/// Runs `body` in a fresh namespace with the CRD installed; removes the
/// namespace whatever happens.
async fn in_namespace<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let client = client().await?;
    install_crd(&client).await?;
    let ns = namespace(&client, prefix).await?;
    let result = AssertUnwindSafe(body(client.clone(), ns.clone()))
        .catch_unwind()
        .await;
    cleanup_namespace(&client, &ns).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `(object name, spec, what the message must contain)`: every spec is
/// refused, each by the rule it breaks.
fn bad_specs() -> Vec<(String, Value, Vec<&'static str>)> {
    let secret_msg = "must be a Secret name";
    let nats_ext = |extra: Value| {
        let mut ext = json!({ "url": "nats://nats.infra:4222" });
        ext.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "image": "x", "nats": { "external": ext } })
    };
    let tolerations = |t: Value| json!({ "image": "x", "scheduling": { "tolerations": [t] } });
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        // autoscaling
        (
            "bounds",
            json!({ "image": "x", "shards": { "autoscale": { "min": 4, "max": 2 } } }),
            vec!["shards.autoscale.min must not exceed shards.autoscale.max"],
        ),
        (
            "target",
            json!({ "image": "x", "gateway": { "maxConnections": 5000,
                    "autoscale": { "min": 1, "max": 3, "targetConnections": 5000 } } }),
            vec!["gateway.autoscale.targetConnections must be below gateway.maxConnections"],
        ),
        (
            "default-target",
            json!({ "image": "x", "gateway": { "maxConnections": 10000,
                    "autoscale": { "min": 1, "max": 3 } } }),
            vec!["gateway.autoscale.targetConnections must be below gateway.maxConnections"],
        ),
        // metadata.name
        (
            "a234567890123456789012345678901234567890123456",
            json!({ "image": "x" }),
            vec!["metadata.name must be at most 45 characters"],
        ),
        (
            "chat.v2",
            json!({ "image": "x" }),
            vec!["metadata.name must start with a lowercase letter"],
        ),
        (
            "1chat",
            json!({ "image": "x" }),
            vec!["metadata.name must start with a lowercase letter"],
        ),
        // URLs
        (
            "endpoint",
            json!({ "image": "x", "media": { "buckets": [
            { "name": "media", "provider": "s3", "endpoint": "not a url at all" } ] } }),
            vec![
                "spec.media.buckets[0].endpoint",
                "must be an http(s) URL with a host",
            ],
        ),
        (
            "nats-garbage",
            nats_ext(json!({ "url": "not a url at all" })),
            vec![
                "spec.nats.external.url",
                "nats.external.url must be one or more comma-separated NATS server URLs",
            ],
        ),
        (
            "nats-http",
            nats_ext(json!({ "url": "nats://a:4222,http://b:4222" })),
            vec!["nats.external.url must be one or more"],
        ),
        // Secret names
        (
            "nats-secret",
            nats_ext(json!({ "credentialsSecret": "Bad_Name" })),
            vec!["spec.nats.external.credentialsSecret", secret_msg],
        ),
        (
            "scylla-secret",
            json!({ "image": "x", "scylla": { "external": {
            "contactPoints": ["db:9042"], "credentialsSecret": "db.creds." } } }),
            vec!["spec.scylla.external.credentialsSecret", secret_msg],
        ),
        (
            "scylla-tls",
            json!({ "image": "x", "scylla": { "external": {
            "contactPoints": ["db:9042"],
            "tls": { "secretName": "db-tls", "serverName": "DB.example com" } } } }),
            vec!["spec.scylla.external.tls.serverName"],
        ),
        (
            "bucket-secret",
            json!({ "image": "x", "media": { "buckets": [
            { "name": "media", "provider": "s3", "credentialsSecret": "s3 creds" } ] } }),
            vec!["spec.media.buckets[0].credentialsSecret", secret_msg],
        ),
        (
            "fcm-secret",
            json!({ "image": "x", "push": { "fcm": { "name": "FCM", "key": "sa.json" } } }),
            vec!["spec.push.fcm.name", secret_msg],
        ),
        (
            "apns-secret",
            json!({ "image": "x", "push": { "apns": { "key": { "name": "-apns", "key": "key.p8" },
            "keyId": "K", "teamId": "T", "topic": "com.example.chat" } } }),
            vec!["spec.push.apns.key.name", secret_msg],
        ),
        (
            "signing-secret",
            json!({ "image": "x", "auth": { "signingKeySecret": "x".repeat(254) } }),
            vec!["spec.auth.signingKeySecret"],
        ),
        (
            "secret-key",
            json!({ "image": "x", "push": { "fcm": { "name": "fcm", "key": "bad key" } } }),
            vec!["spec.push.fcm.key", "should match"],
        ),
        // Quantities
        (
            "cpu",
            json!({ "image": "x", "resources": { "shard": { "requests": { "cpu": "banana" } } } }),
            vec!["spec.resources.shard.requests.cpu", "should match"],
        ),
        (
            "memory",
            json!({ "image": "x", "resources": { "gateway": { "limits": { "memory": "lots" } } } }),
            vec!["spec.resources.gateway.limits.memory", "should match"],
        ),
        (
            "storage",
            json!({ "image": "x", "nats": { "managed": { "storage": "lots" } } }),
            vec!["spec.nats.managed.storage", "should match"],
        ),
        (
            "storage-zero",
            json!({ "image": "x", "scylla": { "managed": { "storage": "0" } } }),
            vec![
                "spec.scylla.managed.storage",
                "storage must be a size above zero",
            ],
        ),
        (
            "limit-below",
            json!({ "image": "x", "resources": { "notifier": {
            "requests": { "cpu": 2, "memory": "1Gi" }, "limits": { "cpu": "1500m", "memory": "2Gi" } } } }),
            vec![
                "spec.resources.notifier",
                "a limit must not be below its request",
            ],
        ),
        // Bounds
        (
            "no-shards",
            json!({ "image": "x", "shards": { "count": 0 } }),
            vec![
                "greater than or equal to 1",
                "shards.count must be at least 1",
            ],
        ),
        (
            "many-shards",
            json!({ "image": "x", "shards": { "count": 257 } }),
            vec![
                "less than or equal to 256",
                "shards.count must be at most 256",
            ],
        ),
        (
            "many-vnodes",
            json!({ "image": "x", "shards": { "vnodesPerShard": 5000 } }),
            vec!["spec.shards.vnodesPerShard", "less than or equal to 4096"],
        ),
        // Strings the children would refuse
        (
            "topology",
            json!({ "image": "x", "gateway": { "topologySpread": { "topologyKey": "" } } }),
            vec![
                "spec.gateway.topologySpread.topologyKey",
                "at least 1 chars long",
            ],
        ),
        (
            "scylla-image",
            json!({ "image": "x", "scylla": { "managed": { "image": "" } } }),
            vec!["spec.scylla.managed.image", "at least 1 chars long"],
        ),
        (
            "tol-operator",
            tolerations(json!({ "key": "k", "operator": "Maybe" })),
            vec![
                "spec.scheduling.tolerations",
                "operator must be Exists or Equal",
            ],
        ),
        (
            "tol-effect",
            tolerations(json!({ "key": "k", "effect": "Sometimes" })),
            vec!["effect must be NoSchedule, PreferNoSchedule or NoExecute"],
        ),
        (
            "tol-value",
            tolerations(json!({ "key": "k", "operator": "Exists", "value": "v" })),
            vec!["operator Exists takes no value"],
        ),
        (
            "tol-key",
            tolerations(json!({ "operator": "Equal", "value": "v" })),
            vec!["an empty key needs operator Exists"],
        ),
    ];
    cases
        .into_iter()
        .map(|(name, spec, want)| (name.to_string(), spec, want))
        .collect()
}

#[tokio::test]
async fn admission_refuses_each_bad_spec_with_its_message() -> Result<()> {
    in_namespace("op-admission", |client, ns| async move {
        let api = untyped(&client, &ns);
        let mut wrong = Vec::new();
        for (name, spec, want) in bad_specs() {
            let result = api
                .create(&PostParams::default(), &object(&name, spec)?)
                .await;
            match refusal(&name, result) {
                Ok(msg) if want.iter().all(|w| msg.contains(w)) => {}
                Ok(msg) => wrong.push(format!("{name}: wanted {want:?} in {msg}")),
                Err(e) => wrong.push(e.to_string()),
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
        Ok(())
    })
    .await
}

/// Every section set, every limit at its edge: still accepted, and read
/// back by the operator's types (an integer quantity included).
fn full_spec() -> Value {
    let resources = json!({ "requests": { "cpu": "250m", "memory": 268435456 },
                            "limits": { "cpu": 1, "memory": "256Mi" } });
    json!({
        "image": "ghcr.io/acme/chat-runtime:0.1.0",
        "shards": { "count": 256, "vnodesPerShard": 4096, "failoverDelaySeconds": 10 },
        "gateway": { "replicas": 2, "service": { "type": "NodePort", "port": 8080 },
                     "topologySpread": { "topologyKey": "kubernetes.io/hostname", "maxSkew": 2,
                                         "whenUnsatisfiable": "DoNotSchedule" } },
        "notifier": { "replicas": 0 },
        "cache": { "replicas": 3 },
        "nats": { "external": { "url": "nats://user:pw@a.infra:4222, tls://b.infra:4222,c.infra,[::1]:4222",
                                "credentialsSecret": "nats.creds" } },
        "scylla": { "managed": { "image": "scylladb/scylla:6.2", "storage": 10737418240u64 } },
        "media": { "buckets": [
            { "name": "photos", "provider": "s3", "endpoint": "https://minio.storage:9000",
              "region": "eu-1", "credentialsSecret": "s3-creds", "kinds": ["image"] },
            { "name": "local", "provider": "filesystem" } ] },
        "push": { "fcm": { "name": "fcm", "key": "serviceAccount.json" },
                  "apns": { "key": { "name": "apns", "key": "key.p8" }, "keyId": "ABC123",
                            "teamId": "TEAM", "topic": "com.example.chat", "sandbox": true },
                  "webhooks": true },
        "auth": { "signingKeySecret": "chat-signing-key" },
        "resources": { "gateway": resources.clone(), "shard": resources.clone(),
                       "notifier": resources.clone(), "nats": resources.clone(), "scylla": resources },
        "scheduling": { "nodeSelector": { "pool": "chat" }, "tolerations": [
            { "key": "dedicated", "operator": "Equal", "value": "chat", "effect": "NoSchedule" },
            { "operator": "Exists" } ] },
        "paused": false,
    })
}

#[tokio::test]
async fn a_full_valid_spec_at_the_limits_is_accepted() -> Result<()> {
    in_namespace("op-admission-ok", |client, ns| async move {
        // The longest name admission allows.
        let name = format!("chat-{}", "0123456789".repeat(4));
        assert_eq!(name.len(), 45);
        untyped(&client, &ns)
            .create(&PostParams::default(), &object(&name, full_spec())?)
            .await?;
        let stored = Api::<ChatCluster>::namespaced(client, &ns)
            .get(&name)
            .await?;
        let storage = stored.spec.scylla.managed.and_then(|m| m.storage);
        assert_eq!(storage.map(|q| q.0).as_deref(), Some("10737418240"));
        assert_eq!(stored.spec.shards.count, 256);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn immutable_fields_refuse_a_change_on_a_stored_cluster() -> Result<()> {
    in_namespace("op-immutable", |client, ns| async move {
        let api = untyped(&client, &ns);
        let create = |name: &str, spec: Value| {
            let api = api.clone();
            let obj = object(name, spec);
            async move { api.create(&PostParams::default(), &obj?).await.map_err(anyhow::Error::from) }
        };
        create("external-store", json!({ "image": "x",
            "nats": { "managed": { "replicas": 1, "storage": "10Gi" } },
            "scylla": { "external": { "contactPoints": ["db:9042"], "keyspace": "chat" } } })).await?;
        create("managed-store", json!({ "image": "x",
            "nats": { "external": { "url": "nats://nats.infra:4222" } },
            "scylla": { "managed": { "storage": "10Gi" } } })).await?;
        let changes = [
            ("external-store", json!({ "scylla": { "external": { "keyspace": "other" } } }),
                "scylla.external.keyspace is immutable"),
            ("external-store", json!({ "scylla": { "external": null, "managed": {} } }),
                "scylla: switching between external and managed is not supported in place"),
            ("external-store", json!({ "nats": { "managed": null, "external": { "url": "nats://a:4222" } } }),
                "nats: switching between external and managed is not supported in place"),
            ("external-store", json!({ "nats": { "managed": { "storage": "20Gi" } } }),
                "nats.managed.storage is immutable"),
            ("external-store", json!({ "nats": { "managed": { "storage": null } } }),
                "nats.managed.storage is immutable"),
            ("external-store", json!({ "shards": { "vnodesPerShard": 128 } }),
                "shards.vnodesPerShard is immutable"),
            ("managed-store", json!({ "scylla": { "managed": { "storage": "20Gi" } } }),
                "scylla.managed.storage is immutable"),
            ("managed-store", json!({ "nats": { "external": null, "managed": { "replicas": 1 } } }),
                "nats: switching between external and managed is not supported in place"),
        ];
        let mut wrong = Vec::new();
        for (name, spec, want) in changes {
            let patch = json!({ "spec": spec });
            let result = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            match refusal(&format!("{name} {patch}"), result) {
                Ok(msg) if msg.contains(want) => {}
                Ok(msg) => wrong.push(format!("{name} {patch}: wanted {want:?} in {msg}")),
                Err(e) => wrong.push(e.to_string()),
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
        // What may change still does.
        let scale = json!({ "spec": { "shards": { "count": 3 }, "nats": { "managed": { "replicas": 3 } },
                                      "scylla": { "external": { "replicationFactor": 1 } } } });
        api.patch("external-store", &PatchParams::default(), &Patch::Merge(&scale)).await?;
        Ok(())
    })
    .await
}

/// The CRD as generated draws no warning (`unrecognized format "uint32"`
/// was printed on every apply). Sent as a dry-run create under another group,
/// so the API server checks it as new whatever is installed.
#[tokio::test]
async fn the_crd_draws_no_warning_from_the_api_server() -> Result<()> {
    let client = client().await?;
    let mut crd = serde_json::to_value(ChatCluster::crd())?;
    crd["metadata"]["name"] = json!("chatclusters.admission-probe.confab.dev");
    crd["spec"]["group"] = json!("admission-probe.confab.dev");
    let request = http::Request::post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All&fieldManager=confab-e2e",
    )
    .header("Content-Type", "application/json")
    .body(serde_json::to_vec(&crd)?.into())?;
    let response = client.send(request).await?;
    let warnings: Vec<_> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|w| String::from_utf8_lossy(w.as_bytes()).into_owned())
        .collect();
    assert_eq!(response.status(), http::StatusCode::CREATED, "{warnings:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    Ok(())
}
