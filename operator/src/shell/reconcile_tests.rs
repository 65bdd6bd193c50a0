//! API-server scenarios for each branch of [`reconcile`]: the exact calls it
//! makes, in order, against the scripted server of [`fake_api`] — with the
//! runtime's control RPCs interleaved where they happen.

use std::sync::Arc;
use std::time::Duration;

use confab_api::cluster::{ChatCluster, FINALIZER, RingPhase};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::runtime::controller::Action;
use serde_json::json;

use super::{error_policy, reconcile};
use crate::core;
use crate::core::fixtures::{self, ring, with_ring};
use crate::shell::fake_api::{FakeApi, Journal, JournalControl};
use crate::shell::metrics::Metrics;
use crate::shell::{Settings, context};

const CC: &str = "/apis/confab.dev/v1alpha1/namespaces/prod/chatclusters/chat";
const EVENT: &str = "POST /apis/events.k8s.io/v1/namespaces/prod/events";
const APPS: &str = "/apis/apps/v1/namespaces/prod";
const CORE: &str = "/api/v1/namespaces/prod";
const NET: &str = "/apis/networking.k8s.io/v1/namespaces/prod";
const POLICY: &str = "/apis/policy/v1/namespaces/prod";

fn ctx(api: FakeApi, journal: &Journal) -> Arc<super::Context> {
    ctx_with(api, journal, JournalControl::new(journal))
}

fn ctx_with(api: FakeApi, journal: &Journal, control: JournalControl) -> Arc<super::Context> {
    let settings = Settings {
        namespace: None,
        lease: None,
        instance: "test".into(),
        drain_deadline: Duration::from_secs(1),
        // Longer than every requeue these tests check (the load interval
        // caps them all in production).
        load_interval: Duration::from_secs(600),
    };
    let control = Arc::new(control);
    context(
        api.serve(journal),
        control,
        &settings,
        Arc::new(Metrics::new()),
    )
}

/// `cc` as the API returns it once the finalizer is on.
fn finalized(mut cc: ChatCluster) -> ChatCluster {
    cc.metadata.finalizers = Some(vec![FINALIZER.into()]);
    cc.metadata.resource_version = Some("1".into());
    cc
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

fn shard_pod(ordinal: u32, ready: bool) -> Pod {
    let status = if ready { "True" } else { "False" };
    from_json(json!({
        "metadata": { "name": format!("chat-shard-{ordinal}"), "namespace": "prod" },
        "status": { "conditions": [
            { "type": "Ready", "status": status, "lastTransitionTime": "2026-11-28T11:00:00Z" }
        ]}
    }))
}

fn statefulset(name: &str, replicas: i32) -> StatefulSet {
    from_json(json!({
        "metadata": { "name": name, "namespace": "prod" },
        "spec": { "replicas": replicas, "selector": {}, "serviceName": name,
                  "template": { "spec": { "containers": [] } } },
        "status": { "replicas": replicas, "readyReplicas": replicas }
    }))
}

fn deployment(name: &str) -> Deployment {
    from_json(json!({
        "metadata": { "name": name, "namespace": "prod" },
        "status": { "readyReplicas": 1 }
    }))
}

/// A running cluster's children: `shards` Ready shard pods, every workload
/// Ready, the signing key and the gateway Service present.
fn running(api: FakeApi, shards: u32) -> FakeApi {
    let mut api = (0..shards).fold(api, |api, s| api.with(&shard_pod(s, true)));
    api = api
        .with(&statefulset("chat-shard", shards as i32))
        .with(&statefulset("chat-nats", 1))
        .with(&statefulset("chat-scylla", 1))
        .with(&deployment("chat-gateway"))
        .with(&deployment("chat-notifier"));
    let secret: Secret = from_json(json!({
        "metadata": { "name": "chat-signing-key", "namespace": "prod" } }));
    let token: Secret = from_json(json!({
        "metadata": { "name": "chat-control-token", "namespace": "prod" },
        "data": { "token": "dG9rZW4=" } }));
    let nats: Secret = from_json(json!({
        "metadata": { "name": "chat-nats-auth", "namespace": "prod" },
        "data": { "token": "bmF0cw==" } }));
    let service: Service = from_json(json!({
        "metadata": { "name": "chat-gateway", "namespace": "prod" } }));
    api.with(&secret).with(&token).with(&nats).with(&service)
}

/// `cc` (finalized) with the status a reconcile of `shards` Ready shards
/// reports for it, as a cluster that has been running a while.
fn settled(cc: ChatCluster, shards: u32) -> ChatCluster {
    let mut cc = finalized(with_ring(cc, ring(1, &(0..shards).collect::<Vec<_>>())));
    cc.status = Some(core::desired(&cc, &fixtures::observed(shards)).status);
    cc
}

/// What `observe` reads, in order.
fn observe_calls() -> Vec<String> {
    vec![
        format!("GET {CORE}/pods"),
        format!("GET {APPS}/statefulsets/chat-shard"),
        format!("GET {CORE}/secrets/chat-signing-key"),
        format!("GET {CORE}/secrets/chat-control-token"),
        format!("GET {CORE}/secrets/chat-nats-auth"),
        format!("GET {CORE}/services/chat-gateway"),
        format!("GET {APPS}/deployments/chat-gateway"),
        format!("GET {APPS}/deployments/chat-notifier"),
        format!("GET {APPS}/statefulsets/chat-nats"),
        format!("GET {APPS}/statefulsets/chat-scylla"),
    ]
}

/// Server-side applies of every child (the Secrets only when new), then
/// the deletion of the PodDisruptionBudgets a cluster of one NATS server and
/// one gateway must not have.
fn apply_calls(new_key: bool) -> Vec<String> {
    let mut paths = vec![format!("{CORE}/serviceaccounts/chat-runtime")];
    if new_key {
        paths.push(format!("{CORE}/secrets/chat-signing-key"));
        paths.push(format!("{CORE}/secrets/chat-control-token"));
        paths.push(format!("{CORE}/secrets/chat-nats-auth"));
    }
    paths.extend([
        format!("{CORE}/services/chat-nats"),
        format!("{APPS}/statefulsets/chat-nats"),
        format!("{CORE}/services/chat-scylla"),
        format!("{APPS}/statefulsets/chat-scylla"),
        format!("{CORE}/configmaps/chat-config"),
        format!("{CORE}/services/chat-shard"),
        format!("{APPS}/statefulsets/chat-shard"),
        format!("{POLICY}/poddisruptionbudgets/chat-shard"),
        format!("{APPS}/deployments/chat-gateway"),
        format!("{CORE}/services/chat-gateway"),
        format!("{APPS}/deployments/chat-notifier"),
        format!("{NET}/networkpolicies/chat-runtime"),
        format!("{NET}/networkpolicies/chat-nats"),
        format!("{NET}/networkpolicies/chat-scylla"),
    ]);
    let mut calls: Vec<String> = paths.into_iter().map(|p| format!("PATCH {p}")).collect();
    for pdb in ["chat-nats", "chat-gateway"] {
        calls.push(format!("DELETE {POLICY}/poddisruptionbudgets/{pdb}"));
    }
    calls
}

fn calls(parts: &[&[String]]) -> Vec<String> {
    parts.concat()
}

fn one(call: String) -> Vec<String> {
    vec![call]
}

#[tokio::test]
async fn create_adds_the_finalizer_and_does_nothing_else() {
    let mut cc = fixtures::cluster();
    cc.metadata.resource_version = Some("1".into());
    let journal = Journal::default();
    let ctx = ctx(FakeApi::default().with(&cc), &journal);

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(journal.calls(), [format!("PATCH {CC}")]);
    let patch = journal.entries()[0].body.clone().unwrap();
    assert_eq!(
        patch,
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] }
        ])
    );
}

#[tokio::test]
async fn first_apply_bootstraps_the_ring_creates_every_child_and_writes_status_once() {
    let cc = finalized(fixtures::cluster());
    let journal = Journal::default();
    let ctx = ctx(FakeApi::default().with(&cc), &journal);

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            // Write-ahead: the first ring is recorded before anything uses it.
            &one(format!("PATCH {CC}/status")),
            &one(format!("{EVENT} RingBootstrapped")),
            &one(format!("{EVENT} SigningKeyGenerated")),
            &apply_calls(true),
            // No second status write: nothing changed since the first.
        ])
    );
    let status = journal.find(&format!("PATCH {CC}/status"));
    assert!(
        status.query.contains("fieldManager=confab-operator"),
        "{status:?}"
    );
    assert!(status.query.contains("force=true"), "{status:?}");
    let body = status.body.unwrap();
    assert_eq!(body["metadata"]["resourceVersion"], "1", "precondition");
    assert_eq!(body["status"]["ring"]["epoch"], 1);
    assert_eq!(body["status"]["ring"]["members"], json!([0]));
    let secret = journal.find(&format!("PATCH {CORE}/secrets/chat-signing-key"));
    let owner = &secret.body.unwrap()["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"]),
        (&json!("ChatCluster"), &json!("chat"))
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn settled_cluster_reapplies_its_children_and_writes_no_status_and_no_event() {
    let cc = settled(fixtures::cluster(), 1);
    let journal = Journal::default();
    let ctx = ctx(running(FakeApi::default().with(&cc), 1), &journal);

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &apply_calls(false)
        ])
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn spec_update_applies_the_new_replicas_and_writes_status_once() {
    let mut cc = settled(fixtures::cluster(), 1);
    cc.spec.shards.count = 2;
    cc.metadata.generation = Some(2);
    let journal = Journal::default();
    let ctx = ctx(running(FakeApi::default().with(&cc), 1), &journal);

    reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &one(format!("{EVENT} WaitingForPods")),
            &apply_calls(false),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let sts = journal.find(&format!("PATCH {APPS}/statefulsets/chat-shard"));
    assert_eq!(sts.body.unwrap()["spec"]["replicas"], 2);
    let status = journal.find(&format!("PATCH {CC}/status")).body.unwrap();
    assert_eq!(status["status"]["observedGeneration"], 2);
    let progressing = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(
        (&progressing["status"], &progressing["reason"]),
        (&json!("True"), &json!("WaitingForPods"))
    );
}

#[tokio::test]
async fn ring_change_is_recorded_before_any_rpc_and_its_outcome_after() {
    let mut cc = settled(fixtures::cluster(), 1);
    cc.spec.shards.count = 2;
    let journal = Journal::default();
    let ctx = ctx(running(FakeApi::default().with(&cc), 2), &journal);

    reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &one(format!("PATCH {CC}/status")),
            &["RPC PrepareRing 0 @2".into(), "RPC PrepareRing 1 @2".into()],
            &one(format!("{EVENT} ScalingUp")),
            &apply_calls(false),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let writes: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.call == format!("PATCH {CC}/status"))
        .map(|e| serde_json::from_value(e.body.unwrap()["status"]["ring"]["pending"].clone()))
        .collect::<Result<_, _>>()
        .unwrap();
    let phases: Vec<(u64, RingPhase)> = writes
        .iter()
        .map(|p: &confab_api::cluster::PendingRing| (p.epoch, p.phase))
        .collect();
    assert_eq!(
        phases,
        [(2, RingPhase::Preparing), (2, RingPhase::Prepared)]
    );
    // Each call presents the token read from the cluster's Secret.
    let rpc = journal.find("RPC PrepareRing 1 @2").body.unwrap();
    assert_eq!(rpc["token"], "token");
}

#[tokio::test]
async fn refused_write_ahead_sends_no_rpc_and_is_retried_at_once() {
    let mut cc = settled(fixtures::cluster(), 1);
    cc.spec.shards.count = 2;
    let journal = Journal::default();
    let api = running(FakeApi::default().with(&cc), 2).refusing_status_writes();
    let ctx = ctx(api, &journal);

    let error = reconcile(Arc::new(cc.clone()), ctx.clone())
        .await
        .unwrap_err();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    assert!(error.is_conflict(), "{error}");
    assert_eq!(
        error_policy(Arc::new(cc), &error, ctx),
        Action::requeue(Duration::from_secs(1))
    );
}

/// The `(status, reason, message)` of condition `type_` in a status patch.
fn condition(patch: &serde_json::Value, type_: &str) -> (String, String, String) {
    let c = patch["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} in {patch}"));
    let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (field("status"), field("reason"), field("message"))
}

/// The body of the last status write.
fn last_status(journal: &Journal) -> serde_json::Value {
    let call = format!("PATCH {CC}/status");
    let writes: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.call == call)
        .collect();
    writes.last().expect("a status write").body.clone().unwrap()
}

/// `cc` settled on one shard, scaled to two, with the change to epoch 2
/// recorded as Preparing and the ring changing since `since`.
fn preparing(count: i32, since: k8s_openapi::jiff::Timestamp) -> ChatCluster {
    let mut cc = settled(fixtures::cluster(), 1);
    cc.spec.shards.count = count;
    let status = cc.status.as_mut().unwrap();
    let ring = status.ring.as_mut().unwrap();
    ring.last_issued_epoch = 2;
    ring.pending = Some(confab_api::cluster::PendingRing {
        epoch: 2,
        members: vec![0, 1],
        phase: RingPhase::Preparing,
    });
    let stable = status
        .conditions
        .iter_mut()
        .find(|c| c.type_ == "RingStable")
        .unwrap();
    stable.status = "False".into();
    stable.reason = "RingChangeInProgress".into();
    stable.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(since);
    cc
}

#[tokio::test]
async fn unreachable_control_api_fails_the_step_yet_every_child_is_applied_and_status_says_why() {
    let mut cc = settled(fixtures::cluster(), 1);
    cc.spec.shards.count = 2;
    cc.metadata.generation = Some(2);
    let journal = Journal::default();
    let api = running(FakeApi::default().with(&cc), 2);
    let ctx = ctx_with(api, &journal, JournalControl::unreachable(&journal));

    let action = reconcile(Arc::new(cc), ctx.clone()).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &one(format!("PATCH {CC}/status")),
            // The first refusal ends the step.
            &one("RPC PrepareRing 0 @2".into()),
            &one(format!("{EVENT} RingStepFailed")),
            // The rest of the spec still applies.
            &apply_calls(false),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let event = journal
        .find(&format!("{EVENT} RingStepFailed"))
        .body
        .unwrap();
    let note = event["note"].as_str().unwrap();
    assert!(
        note.starts_with("Prepare failed: PrepareRing to "),
        "{note}"
    );
    assert!(note.contains("connection refused"), "{note}");
    let status = last_status(&journal);
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(status["status"]["ring"]["pending"]["phase"], "Preparing");
    let (is, reason, message) = condition(&status, "Progressing");
    assert_eq!((is.as_str(), reason.as_str()), ("False", "RingStepFailed"));
    assert!(message.contains("connection refused"), "{message}");
    // Just started failing: not stuck yet, retried soon.
    assert_eq!(condition(&status, "Degraded").1, "AllReady");
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let failures = r#"confab_operator_failures_total{cluster="prod/chat",error="Control"} 1"#;
    assert!(ctx.metrics.encode().contains(failures));
}

#[tokio::test]
async fn a_committed_change_is_timed_from_when_the_ring_began_changing() {
    let since =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(5);
    let mut cc = preparing(2, since);
    let ring = cc.status.as_mut().unwrap().ring.as_mut().unwrap();
    ring.pending.as_mut().unwrap().phase = RingPhase::Prepared;
    let journal = Journal::default();
    let ctx = ctx(running(FakeApi::default().with(&cc), 2), &journal);

    reconcile(Arc::new(cc), ctx.clone()).await.unwrap();

    assert!(journal.calls().contains(&format!("{EVENT} RingCommitted")));
    let text = ctx.metrics.encode();
    let series = "confab_operator_ring_change_duration_seconds";
    let labels = r#"cluster="prod/chat",change="ScaleUp""#;
    // Five minutes: above the 256 s bucket, within the 512 s one.
    for line in [
        format!("{series}_count{{{labels}}} 1"),
        format!(r#"{series}_bucket{{le="256.0",{labels}}} 0"#),
        format!(r#"{series}_bucket{{le="512.0",{labels}}} 1"#),
        // Committed: the ring is stable again.
        r#"confab_operator_ring_change_started_timestamp_seconds{cluster="prod/chat"} 0"#.into(),
    ] {
        assert!(text.contains(&line), "no {line} in {text}");
    }
}

#[tokio::test]
async fn ring_step_failing_past_the_bound_is_stuck_and_retries_back_off() {
    let since =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(5);
    let cc = preparing(2, since);
    let journal = Journal::default();
    let api = running(FakeApi::default().with(&cc), 2);
    let ctx = ctx_with(api, &journal, JournalControl::unreachable(&journal));

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            // Intent already recorded: no write-ahead, the same step again.
            // The first refusal ends the step.
            &one("RPC PrepareRing 0 @2".into()),
            &one(format!("{EVENT} RingStepFailed")),
            &apply_calls(false),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let status = last_status(&journal);
    let (is, reason, message) = condition(&status, "Degraded");
    assert_eq!((is.as_str(), reason.as_str()), ("True", "RingChangeStuck"));
    assert!(message.contains("over 120s"), "{message}");
    assert_eq!(status["status"]["phase"], "Degraded");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn scale_back_aborts_a_pending_change_even_when_no_shard_answers() {
    let cc = preparing(1, k8s_openapi::jiff::Timestamp::now());
    let journal = Journal::default();
    let api = running(FakeApi::default().with(&cc), 2);
    let ctx = ctx_with(api, &journal, JournalControl::unreachable(&journal));

    reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            &["RPC AbortRing 0 @2".into(), "RPC AbortRing 1 @2".into()],
            &one(format!("{EVENT} AbortUndelivered")),
            &one(format!("{EVENT} RingAborted")),
            &apply_calls(false),
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let status = last_status(&journal);
    assert_eq!(status["status"]["ring"]["pending"], serde_json::Value::Null);
    assert_eq!(
        status["status"]["ring"]["lastIssuedEpoch"], 2,
        "epoch 2 is never reused"
    );
    assert_eq!(condition(&status, "RingStable").0, "True");
}

#[tokio::test]
async fn refused_child_is_a_warning_and_a_condition_and_the_others_still_apply() {
    let cc = settled(fixtures::cluster(), 1);
    let message = "StatefulSet.apps \"chat-shard\" is invalid: spec.template.spec.containers[0]\
                   .resources.requests[cpu]: Invalid value: \"banana\": must be a quantity";
    let journal = Journal::default();
    let api = running(FakeApi::default().with(&cc), 1).refusing(
        &format!("{APPS}/statefulsets/chat-shard"),
        422,
        message,
    );
    let ctx = ctx(api, &journal);

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    let (deletes, applies): (Vec<String>, Vec<String>) = apply_calls(false)
        .into_iter()
        .partition(|c| c.starts_with("DELETE"));
    assert_eq!(
        journal.calls(),
        calls(&[
            &one(format!("GET {CC}")),
            &observe_calls(),
            // Every child is still applied, the refused one included.
            &applies,
            &one(format!("{EVENT} ApplyRefused")),
            &deletes,
            &one(format!("PATCH {CC}/status")),
        ])
    );
    let event = journal.find(&format!("{EVENT} ApplyRefused")).body.unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["note"].as_str().unwrap(),
        format!("StatefulSet chat-shard: {message}")
    );
    let status = last_status(&journal);
    let (is, reason, text) = condition(&status, "Degraded");
    assert_eq!((is.as_str(), reason.as_str()), ("True", "ApplyRefused"));
    assert!(
        text.contains("requests[cpu]") && text.contains("banana"),
        "{text}"
    );
    assert_eq!(condition(&status, "Progressing").1, "ApplyRefused");
    assert_eq!(status["status"]["phase"], "Degraded");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn deletion_drains_ready_shards_deletes_claims_then_releases_the_finalizer() {
    let mut cc = settled(fixtures::with_shards(2), 2);
    cc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        fixtures::now(),
    ));
    let claim: PersistentVolumeClaim = from_json(json!({
        "metadata": { "name": "data-chat-shard-0", "namespace": "prod",
                      "labels": { "confab.dev/cluster": "chat" } } }));
    let api = FakeApi::default()
        .with(&cc)
        .with(&shard_pod(0, true))
        .with(&shard_pod(1, false))
        .with(&claim);
    let journal = Journal::default();
    let ctx = ctx(api, &journal);

    let action = reconcile(Arc::new(cc), ctx).await.unwrap();

    assert_eq!(
        journal.calls(),
        [
            format!("GET {CORE}/pods"),
            format!("GET {CORE}/secrets/chat-control-token"),
            // Only Ready shards are asked to drain.
            "RPC Drain 0 @0".into(),
            format!("DELETE {CORE}/persistentvolumeclaims"),
            format!("{EVENT} CleanedUp"),
            format!("PATCH {CC}"),
        ]
    );
    let claims = journal.find(&format!("DELETE {CORE}/persistentvolumeclaims"));
    assert!(
        claims
            .query
            .contains("labelSelector=confab.dev%2Fcluster%3Dchat"),
        "{claims:?}"
    );
    let event = journal.find(&format!("{EVENT} CleanedUp")).body.unwrap();
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("drained 1 shards, deleted 1 volume claims"),
        "{note}"
    );
    assert_eq!(
        journal.find(&format!("PATCH {CC}")).body.unwrap(),
        json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER },
            { "op": "remove", "path": "/metadata/finalizers/0" }
        ])
    );
    assert_eq!(action, Action::await_change());
}
