//! confab-operator against the real control plane started by
//! `e2e/scripts/kube.sh` (kube-apiserver, controller-manager, scheduler and
//! kwok, which marks pods Running/Ready on a fake node).
//!
//! The controller runs in-process with the recording control API: kwok's pods
//! run no processes, so ring steps are asserted through the calls it records
//! (the runtime's real control server is driven by the operator's gRPC client
//! in the cluster scenarios, `cluster.rs`). Each test works in a namespace of
//! its own.
//! [`failover`] holds the failover scenarios, [`autoscale`] load driving
//! shards and gateways up and back down, [`plugin`] `kubectl confab`
//! against it, [`rollout`] a new image rolling the shards, [`stuck`] an
//! operator that
//! cannot reach the control API, [`refused`] children the API server refuses,
//! [`admission`] every spec the API server refuses, [`chart`] the operator
//! running under the Helm chart's RBAC, [`table`] what `kubectl get
//! chatclusters` prints, [`hygiene`] the Pod Security, probe, budget and
//! limit checks of the lifecycle scenario.

mod admission;
mod autoscale;
mod chart;
mod failover;
mod hygiene;
mod plugin;
mod refused;
mod rollout;
mod stuck;
mod table;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use confab_api::cluster::{ChatCluster, FINALIZER};
use confab_api::ring::Ring;
pub(crate) use confab_e2e::kube::{client, unique};
use confab_operator::core::autoscale::PodReport;
use confab_operator::shell::control::{Call, ControlApi, ControlError, Recording, Target};
use confab_operator::shell::metrics::Metrics;
use confab_operator::shell::{Settings, context, run_controller};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::oneshot;

/// How long a cluster may take to reach a state (pods via kwok included).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Installs the generated CRD (server-side apply) and waits until Established.
pub(crate) async fn install_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ChatCluster::crd();
    let name = crd.metadata.name.clone().unwrap();
    let params = PatchParams::apply("confab-e2e").force();
    crds.patch(&name, &params, &Patch::Apply(&crd))
        .await
        .context("structural schema refused")?;
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .context("CRD not Established")??;
    Ok(())
}

pub(crate) async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let name = unique(prefix);
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(name)
}

pub(crate) fn cluster(name: &str, spec: serde_json::Value) -> Result<ChatCluster> {
    Ok(ChatCluster::new(name, serde_json::from_value(spec)?))
}

/// Polls `check` every 500 ms until it answers `Ok(Some(_))`.
pub(crate) async fn until<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let last = match check().await? {
            Ok(v) => return Ok(v),
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} not reached in {TIMEOUT:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A controller running in-process on `ns`; stops when dropped.
pub(crate) struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub(crate) fn start(client: &Client, ns: &str, control: Arc<dyn ControlApi>) -> Self {
        let settings = Settings {
            namespace: Some(ns.to_string()),
            lease: None,
            instance: "e2e".into(),
            drain_deadline: Duration::from_secs(1),
            load_interval: Duration::from_secs(1),
        };
        let ctx = context(client.clone(), control, &settings, Arc::new(Metrics::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let ns = ns.to_string();
        let task = tokio::spawn(async move {
            run_controller(ctx, Some(&ns), async {
                let _ = stopped.await;
            })
            .await
        });
        Operator {
            stop: Some(stop),
            task,
        }
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub(crate) async fn cleanup_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

/// `(status, reason, message)` of a CRD create refused by the apiserver.
async fn refused(api: &Api<ChatCluster>, cc: &ChatCluster) -> String {
    match api.create(&PostParams::default(), cc).await {
        Ok(_) => panic!("{:?} was accepted", cc.spec),
        Err(kube::Error::Api(e)) => e.message,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn crd_installs_and_cel_rules_reject_bad_specs_with_their_messages() -> Result<()> {
    let client = client().await?;
    install_crd(&client).await?;
    let ns = namespace(&client, "op-cel").await?;
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), &ns);
    let result = AssertUnwindSafe(async {
        let zero = cluster("zero", json!({ "image": "x", "shards": { "count": 0 } }))?;
        let msg = refused(&api, &zero).await;
        assert!(msg.contains("shards.count must be at least 1"), "{msg}");

        let dup = cluster(
            "dup",
            json!({ "image": "x", "media": { "buckets": [
            { "name": "media", "provider": "s3" }, { "name": "media", "provider": "gcs" } ] } }),
        )?;
        let msg = refused(&api, &dup).await;
        assert!(
            msg.contains("media.buckets") && msg.to_lowercase().contains("duplicate"),
            "{msg}"
        );

        let cache = cluster(
            "cache",
            json!({ "image": "x", "cache": { "replicas": 3 },
            "nats": { "managed": { "replicas": 1 } } }),
        )?;
        let msg = refused(&api, &cache).await;
        assert!(
            msg.contains("cache.replicas must not exceed nats.managed.replicas"),
            "{msg}"
        );

        let both = cluster(
            "both",
            json!({ "image": "x",
            "nats": { "managed": { "replicas": 1 }, "external": { "url": "nats://x:4222" } } }),
        )?;
        let msg = refused(&api, &both).await;
        assert!(msg.contains("nats: set exactly one of external"), "{msg}");

        // A good one, with defaults filled in by the apiserver...
        let good = cluster("good", json!({ "image": "x" }))?;
        let stored = api.create(&PostParams::default(), &good).await?;
        assert_eq!(stored.spec.shards.vnodes_per_shard, 64);
        // ...whose vnodes may not change afterwards.
        let patch = json!({ "spec": { "shards": { "vnodesPerShard": 128 } } });
        let err = api
            .patch("good", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("vnodesPerShard is immutable"),
            "{err}"
        );
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;
    cleanup_namespace(&client, &ns).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Waits for the ring in status to reach `epoch` with `members`, and the shard
/// StatefulSet for `replicas`.
pub(crate) async fn ring_reaches(
    api: &Api<ChatCluster>,
    sts: &Api<StatefulSet>,
    epoch: u64,
    members: &[u32],
    replicas: i32,
) -> Result<()> {
    until(
        &format!("ring epoch {epoch} {members:?}, {replicas} replicas"),
        || async {
            let cc = api.get("chat").await?;
            let ring = cc
                .status
                .as_ref()
                .and_then(|s| s.ring.clone())
                .unwrap_or_default();
            let got = sts
                .get_opt("chat-shard")
                .await?
                .and_then(|s| s.spec.replicas)
                .unwrap_or(-1);
            Ok(
                if ring.epoch == epoch
                    && ring.members == members
                    && ring.pending.is_none()
                    && got == replicas
                {
                    Ok(())
                } else {
                    Err(format!(
                        "epoch {} members {:?} pending {:?} replicas {got}",
                        ring.epoch, ring.members, ring.pending
                    ))
                },
            )
        },
    )
    .await
}

pub(crate) async fn available(api: &Api<ChatCluster>) -> Result<()> {
    until("Available=True", || async {
        let cc = api.get("chat").await?;
        let status = cc.status.unwrap_or_default();
        Ok(match status.condition("Available") {
            Some(c) if c.status == "True" => Ok(()),
            c => Err(format!(
                "{:?} phase {:?}",
                c.map(|c| (&c.reason, &c.message)),
                status.phase
            )),
        })
    })
    .await
}

fn owned_by_chat<K: Resource>(obj: &K) -> bool {
    obj.meta().owner_references.as_ref().is_some_and(|o| {
        o.iter()
            .any(|r| r.kind == "ChatCluster" && r.name == "chat" && r.controller == Some(true))
    })
}

/// Also: in a namespace enforcing Pod Security `restricted`, with budgets,
/// startup probes and memory limits on every child.
#[tokio::test]
async fn chatcluster_creates_children_scales_3_5_2_and_cleans_up_through_the_finalizer()
-> Result<()> {
    with_operator("op-life", lifecycle).await
}

/// Runs `scenario` in a fresh namespace with an in-process operator that
/// records its control calls; afterwards deletes the ChatCluster through its
/// finalizer and the namespace — also when the scenario panicked.
pub(crate) async fn with_operator(
    prefix: &str,
    scenario: impl AsyncFnOnce(&Client, &str, &Recording) -> Result<()>,
) -> Result<()> {
    let client = client().await?;
    install_crd(&client).await?;
    let ns = namespace(&client, prefix).await?;
    let recording = Recording::default();
    let operator = Operator::start(&client, &ns, Arc::new(recording.clone()));
    let result = AssertUnwindSafe(scenario(&client, &ns, &recording))
        .catch_unwind()
        .await;
    operator.stop().await;
    // On failure the ChatCluster may still hold its finalizer.
    delete_with_an_operator(&client, &ns).await;
    cleanup_namespace(&client, &ns).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn lifecycle(client: &Client, ns: &str, recording: &Recording) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    // Every pod the operator builds must pass the `restricted` profile.
    hygiene::enforce_restricted(client, ns).await?;
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0", "shards": { "count": 3 },
        "gateway": { "replicas": 2 }, "nats": { "managed": { "replicas": 3 } } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;
    hygiene::every_pod_admitted(client, ns).await?;
    available(&api).await?;
    ring_reaches(&api, &sts, 1, &[0, 1, 2], 3).await?;

    children_are_owned(client, ns).await?;
    hygiene::budgets_exist(client, ns).await?;
    hygiene::containers_probed_and_limited(client, ns).await?;
    assert!(
        recording.calls().is_empty(),
        "bootstrap needs no control calls"
    );
    let hashes = config_hashes(client, ns).await?;
    scale_3_5_2(&api, &sts, recording).await?;
    assert_eq!(
        config_hashes(client, ns).await?,
        hashes,
        "a ring change restarts no pod"
    );
    config_change_rolls_the_runtime_pods(&api, client, ns, &hashes).await?;
    deletion_runs_the_finalizer(&api, recording).await
}

/// The config-hash annotation of the shard, gateway and notifier pod templates.
async fn config_hashes(client: &Client, ns: &str) -> Result<Vec<Option<String>>> {
    let hash = |t: Option<ObjectMeta>| {
        t.and_then(|m| m.annotations)
            .and_then(|a| a.get("confab.dev/config-hash").cloned())
    };
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get("chat-shard")
        .await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let mut out = vec![hash(sts.spec.template.metadata)];
    for name in ["chat-gateway", "chat-notifier"] {
        let d = deployments.get(name).await?;
        out.push(hash(d.spec.template.metadata));
    }
    Ok(out)
}

/// A spec change the pods read at start (here: webhook pushes) changes every
/// runtime pod template, so Kubernetes rolls them.
async fn config_change_rolls_the_runtime_pods(
    api: &Api<ChatCluster>,
    client: &Client,
    ns: &str,
    before: &[Option<String>],
) -> Result<()> {
    assert!(
        before.iter().all(Option::is_some),
        "templates carry a hash: {before:?}"
    );
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "push": { "webhooks": true } } })),
    )
    .await?;
    until(
        "every runtime pod template has the new config hash",
        || async move {
            let now = config_hashes(client, ns).await?;
            let rolled = now.iter().zip(before).all(|(n, b)| n.is_some() && n != b);
            Ok(if rolled {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            })
        },
    )
    .await
}

/// Every child exists, is owned by the ChatCluster, and status is complete.
async fn children_are_owned(client: &Client, ns: &str) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    // Every child exists and is owned by the ChatCluster.
    assert!(owned_by_chat(
        &Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get("chat-config")
            .await?
    ));
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    for name in ["chat-signing-key", "chat-control-token"] {
        assert!(owned_by_chat(&secrets.get(name).await?), "{name}");
    }
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
    for name in ["chat-runtime", "chat-nats", "chat-scylla"] {
        assert!(owned_by_chat(&policies.get(name).await?), "{name}");
    }
    assert!(owned_by_chat(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get("chat-runtime")
            .await?
    ));
    for name in ["chat-shard", "chat-nats", "chat-scylla"] {
        assert!(owned_by_chat(&sts.get(name).await?), "{name}");
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for name in ["chat-gateway", "chat-notifier"] {
        assert!(owned_by_chat(&deployments.get(name).await?), "{name}");
    }
    let services = Api::<Service>::namespaced(client.clone(), ns);
    for name in ["chat-gateway", "chat-shard", "chat-nats", "chat-scylla"] {
        assert!(owned_by_chat(&services.get(name).await?), "{name}");
    }
    let stored = api.get("chat").await?;
    assert!(stored.finalizers().contains(&FINALIZER.to_string()));
    let status = stored.status.unwrap();
    for t in confab_api::cluster::CONDITION_TYPES {
        assert!(status.condition(t).is_some(), "condition {t} missing");
    }
    assert_eq!(
        status.endpoints.unwrap().websocket,
        format!("ws://chat-gateway.{ns}.svc:80/v1/ws")
    );
    Ok(())
}

/// 3 → 5 → 2: epochs 2 and 3, committed in order through the control API.
async fn scale_3_5_2(
    api: &Api<ChatCluster>,
    sts: &Api<StatefulSet>,
    recording: &Recording,
) -> Result<()> {
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "shards": { "count": 5 } } })),
    )
    .await?;
    ring_reaches(api, sts, 2, &[0, 1, 2, 3, 4], 5).await?;
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "shards": { "count": 2 } } })),
    )
    .await?;
    ring_reaches(api, sts, 3, &[0, 1], 2).await?;
    let calls = recording.calls();
    let sequence: Vec<(&str, u64)> = calls.iter().map(|c| (c.rpc, c.epoch)).collect();
    let mut phases: Vec<(&str, u64)> = sequence.clone();
    phases.dedup();
    assert_eq!(
        phases,
        [
            ("PrepareRing", 2),
            ("CommitRing", 2),
            ("PrepareRing", 3),
            ("CommitRing", 3),
            ("Drain", 0)
        ],
        "{calls:?}"
    );
    let shards = |rpc: &str, epoch: u64| -> Vec<u32> {
        let mut s: Vec<u32> = calls
            .iter()
            .filter(|c| c.rpc == rpc && c.epoch == epoch)
            .map(|c| c.shard)
            .collect();
        // Resends are legal (every control RPC is idempotent).
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(shards("PrepareRing", 2), [0, 1, 2, 3, 4]);
    assert_eq!(shards("CommitRing", 3), [0, 1, 2, 3, 4]);
    assert_eq!(shards("Drain", 0), [2, 3, 4]);
    let ring = api.get("chat").await?.status.unwrap().ring.unwrap();
    assert!(ring.moved_fraction.is_some());

    Ok(())
}

/// Deleting runs the finalizer (drain, volume claims) before the object goes.
async fn deletion_runs_the_finalizer(api: &Api<ChatCluster>, recording: &Recording) -> Result<()> {
    let before = recording.calls().len();
    let uid = api.get("chat").await?.metadata.uid.unwrap();
    api.delete("chat", &DeleteParams::default()).await?;
    let deleted = await_condition(api.clone(), "chat", conditions::is_deleted(&uid));
    tokio::time::timeout(TIMEOUT, deleted)
        .await
        .context("ChatCluster not deleted")??;
    let drains: Vec<Call> = recording.calls()[before..].to_vec();
    assert!(
        drains.iter().all(|c| c.rpc == "Drain") && !drains.is_empty(),
        "{drains:?}"
    );
    Ok(())
}

/// Answers like [`Recording`] but refuses every CommitRing: the change stays
/// prepared in status, as if the operator died before committing.
struct NoCommit(Recording);

#[async_trait]
impl ControlApi for NoCommit {
    async fn status(&self, t: &Target) -> Result<PodReport, ControlError> {
        self.0.status(t).await
    }
    async fn prepare_ring(&self, t: &Target, ring: &Ring, from: u64) -> Result<u64, ControlError> {
        self.0.prepare_ring(t, ring, from).await
    }
    async fn commit_ring(&self, t: &Target, _epoch: u64) -> Result<u64, ControlError> {
        Err(ControlError::Address(format!(
            "{} (test: commit refused)",
            t.address
        )))
    }
    async fn abort_ring(&self, t: &Target, epoch: u64) -> Result<(), ControlError> {
        self.0.abort_ring(t, epoch).await
    }
    async fn drain(&self, t: &Target, d: Duration) -> Result<u64, ControlError> {
        self.0.drain(t, d).await
    }
}

#[tokio::test]
async fn restarted_operator_finishes_a_scale_left_half_done() -> Result<()> {
    let client = client().await?;
    install_crd(&client).await?;
    let ns = namespace(&client, "op-restart").await?;
    let result = AssertUnwindSafe(resume_half_done_scale(&client, &ns))
        .catch_unwind()
        .await;
    delete_with_an_operator(&client, &ns).await;
    cleanup_namespace(&client, &ns).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn resume_half_done_scale(client: &Client, ns: &str) -> Result<()> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let cc = cluster(
        "chat",
        json!({ "image": "confab.invalid/chat-runtime:0", "shards": { "count": 2 } }),
    )?;
    api.create(&PostParams::default(), &cc).await?;

    // The first operator prepares 2 → 3 but never gets a commit through.
    let first = Operator::start(client, ns, Arc::new(NoCommit(Recording::default())));
    ring_reaches(&api, &sts, 1, &[0, 1], 2).await?;
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "shards": { "count": 3 } } })),
    )
    .await?;
    until("ring change recorded and prepared", || async {
        let ring = api
            .get("chat")
            .await?
            .status
            .and_then(|s| s.ring)
            .unwrap_or_default();
        Ok(match &ring.pending {
            Some(p) if p.epoch == 2 => Ok(()),
            p => Err(format!("{p:?}")),
        })
    })
    .await?;
    first.stop().await;

    // A new operator resumes from status: same epoch, committed.
    let recording = Recording::default();
    let second = Operator::start(client, ns, Arc::new(recording.clone()));
    let done = ring_reaches(&api, &sts, 2, &[0, 1, 2], 3).await;
    second.stop().await;
    done?;
    assert!(
        recording
            .calls()
            .iter()
            .any(|c| c.rpc == "CommitRing" && c.epoch == 2),
        "{:?}",
        recording.calls()
    );
    assert!(
        recording
            .calls()
            .iter()
            .all(|c| c.epoch == 2 || c.rpc == "Drain"),
        "no new epoch was issued"
    );
    Ok(())
}

/// Deletes `chat` with an operator running, so its finalizer is removed.
pub(crate) async fn delete_with_an_operator(client: &Client, ns: &str) {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), ns);
    let cleaner = Operator::start(client, ns, Arc::new(Recording::default()));
    let _ = api.delete("chat", &DeleteParams::default()).await;
    let _ = until("ChatCluster gone", || async {
        Ok(match api.get_opt("chat").await? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        })
    })
    .await;
    cleaner.stop().await;
}
