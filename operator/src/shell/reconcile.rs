//! The reconcile loop's body: the finalizer's Apply and Cleanup branches,
//! the error policy, and the events that explain every decision.
//!
//! Apply = observe (a forced failover fences its shard) → `core::desired` →
//! execute the plan step → apply objects (server-side apply) → the shard
//! roll's next restart → read the load when due → patch status only when it
//! changed → the autoscaler's count and the annotation requests (both change
//! the object, so after the status). A ring step that fails or a child the
//! API server refuses never stops the rest: each is a Warning event and a
//! condition, and the step is retried with backoff. Every cluster comes back
//! at least once per load interval. Cleanup drains the shards and deletes
//! the data volume claims (which owner references do not garbage-collect);
//! everything else goes with the owner references.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_api::cluster::{ChatCluster, ChatClusterStatus, FINALIZER};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, Resource, ResourceExt};

use super::apply::{apply_all, delete_absent};
use super::autoscale;
use super::control::ControlApi;
use super::driver::{execute, targets};
use super::metrics::Metrics;
use super::observe::{observe, shard_pod, token};
use super::requests;
use super::roll;
use crate::core::names::{CLUSTER_LABEL, FIELD_MANAGER, Names, Role};
use crate::core::plan::change_of;
use crate::core::roll::Roll;
use crate::core::status::{Faults, change_reason, make_patch, ring_changing_for};
use crate::core::{self, ShardPod, SigningKey, Step};
use crate::error::Error;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The runtime control API (gRPC in production).
    pub control: Arc<dyn ControlApi>,
    /// Bound on each Drain call.
    pub drain_deadline: Duration,
    /// How often each cluster's pods are asked for their load.
    pub load_interval: Duration,
    /// What the autoscaler remembers of each cluster.
    pub memories: autoscale::Memories,
}

impl Context {
    async fn publish(
        &self,
        cc: &ChatCluster,
        type_: EventType,
        (reason, action): (&str, &str),
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &cc.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    /// A Normal event on `cc`. Repeats of `reason` fold into one event
    /// series (the recorder keys series by reason and action).
    pub async fn info(&self, cc: &ChatCluster, reason: &str, note: String) {
        self.publish(cc, EventType::Normal, (reason, reason), note)
            .await;
    }

    /// A Normal event for one step of a sequence (an epoch, a count): its own
    /// event, never folded into an earlier step's series.
    pub async fn step(&self, cc: &ChatCluster, reason: &str, action: &str, note: String) {
        self.publish(cc, EventType::Normal, (reason, action), note)
            .await;
    }

    /// A Warning event on `cc`.
    pub async fn warn(&self, cc: &ChatCluster, reason: &str, note: String) {
        self.publish(cc, EventType::Warning, (reason, reason), note)
            .await;
    }
}

/// Server-side applies `status` if it differs from what `cc` reports, with
/// `cc`'s resourceVersion as precondition; answers the updated object.
pub async fn patch_status(
    ctx: &Context,
    cc: &ChatCluster,
    status: &ChatClusterStatus,
) -> Result<Option<ChatCluster>, Error> {
    let Some(patch) = make_patch(cc, status) else {
        return Ok(None);
    };
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &namespace(cc)?);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(Some(
        api.patch_status(&cc.name_any(), &params, &patch).await?,
    ))
}

fn namespace(cc: &ChatCluster) -> Result<String, Error> {
    cc.namespace()
        .ok_or_else(|| Error::NoNamespace(cc.name_any()))
}

/// `namespace/name`: how the operator's metrics label a ChatCluster.
fn cluster_key(cc: &ChatCluster) -> String {
    format!("{}/{}", cc.namespace().unwrap_or_default(), cc.name_any())
}

/// Reconciles one `ChatCluster`.
pub async fn reconcile(cc: Arc<ChatCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &namespace(&cc)?);
    let result = finalizer(&api, FINALIZER, cc, |event| async {
        match event {
            Finalizer::Apply(cc) => apply(&cc, &ctx).await,
            Finalizer::Cleanup(cc) => cleanup(&cc, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(start.elapsed());
    result
}

/// Requeues failures: at once after a conflict, a little later for other API
/// errors. (Ring steps that fail are not errors: `apply` retries them.)
pub fn error_policy(cc: Arc<ChatCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(&cluster_key(&cc), error.metric_label());
    tracing::warn!(cluster = %cc.name_any(), %error, "reconcile failed");
    match error.metric_label() {
        _ if error.is_conflict() => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(Duration::from_secs(10)),
    }
}

async fn apply(cached: &ChatCluster, ctx: &Context) -> Result<Action, Error> {
    // The cache may trail our own last status patch; the ring in status is
    // the plan's memory, so decide from a fresh read.
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &namespace(cached)?);
    let fresh = api.get(&cached.name_any()).await?;
    let cc = &fresh;
    let names = Names::new(cc);
    let mut observed = observe(&ctx.client, cc, &names).await?;
    observed.fence(&requests::failovers(cc));
    let desired = core::desired(cc, &observed);
    let step = &desired.plan.step;
    // A failed step stops only the ring: the rest of the spec still applies.
    let executed = execute(ctx, cc, &names, &desired, &observed).await?;
    let mut faults = Faults::default();
    match &executed.failed {
        Some(e) => {
            let failure = format!("{} failed: {e}", step.kind());
            ctx.warn(cc, "RingStepFailed", failure.clone()).await;
            ctx.metrics.failed(&cluster_key(cc), "Control");
            faults.step = Some(failure);
        }
        None => {
            announce(ctx, cc, step, &executed.ring).await;
            ctx.metrics.step(step.kind());
            time_commit(ctx, cc, &desired, observed.now);
        }
    }
    let roll = observed.roll(&desired.plan);
    if !cc.spec.paused {
        faults.refused = apply_children(ctx, cc, &names, &desired, &observed).await?;
        if executed.failed.is_none() {
            roll::step(ctx, cc, &names, &observed, &roll).await?;
        }
    }
    let ring = &executed.ring;
    let mut status = core::status::build(cc, &names, &observed, &desired.plan, ring, &faults);
    let key = cluster_key(cc);
    let autoscaled = autoscale::run(ctx, cc, &names, &observed, &desired.plan, &key).await;
    status.load = autoscaled.load;
    status.autoscale = autoscaled.status;
    ctx.metrics.ring(&key, &status);
    ctx.metrics.autoscale(&key, &status);
    let settled = matches!(step, Step::Stable | Step::Paused)
        && faults.is_empty()
        && status
            .condition("Degraded")
            .is_some_and(|c| c.status == "False")
        && status
            .condition("Available")
            .is_some_and(|c| c.status == "True");
    let current = executed.updated.as_ref().unwrap_or(cc);
    patch_status(ctx, current, &status).await?;
    autoscale::apply(ctx, cc, &autoscaled.steps).await?;
    requests::serve(
        ctx,
        cc,
        &names,
        &observed,
        &status.ring.clone().unwrap_or_default(),
    )
    .await?;
    let after = match (&faults.step, faults.refused.is_empty()) {
        (Some(_), _) => retry(current, observed.now),
        // Only a spec change fixes a refusal, and it triggers a reconcile.
        (None, false) => Duration::from_secs(60),
        (None, true) if roll != Roll::Done => Duration::from_secs(2),
        (None, true) => requeue(step, settled),
    };
    // The load (status.load, the autoscaler) is read once per interval.
    Ok(Action::requeue(after.min(ctx.load_interval)))
}

/// Applies the desired children and deletes the ones no longer wanted;
/// answers the children the API server refused, each also a Warning event.
async fn apply_children(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    desired: &core::Desired,
    observed: &core::Observed,
) -> Result<Vec<String>, Error> {
    if matches!(observed.signing_key, SigningKey::Absent { .. }) {
        let note = "generated a token signing key Secret".to_string();
        ctx.info(cc, "SigningKeyGenerated", note).await;
    }
    let refusals = apply_all(&ctx.client, &names.namespace, &desired.objects).await?;
    for refusal in &refusals {
        ctx.warn(cc, "ApplyRefused", refusal.to_string()).await;
        ctx.metrics.failed(&cluster_key(cc), "ApplyRefused");
    }
    for deleted in delete_absent(&ctx.client, &names.namespace, &desired.absent).await? {
        let note = format!("{deleted} is no longer part of the spec");
        ctx.info(cc, "Deleted", note).await;
    }
    Ok(refusals.iter().map(ToString::to_string).collect())
}

/// Times a ring change whose Commit every target acknowledged: from
/// `RingStable` turning False (as `cc`, read before this reconcile, says) to
/// `now`, by the kind of change.
fn time_commit(ctx: &Context, cc: &ChatCluster, desired: &core::Desired, now: Timestamp) {
    let Step::Commit { members, .. } = &desired.plan.step else {
        return;
    };
    let count = cc.spec.shards.count.max(1) as u32;
    let change = change_of(&desired.ring.members, members, count);
    let took = ring_changing_for(&cc.status.clone().unwrap_or_default(), now);
    ctx.metrics
        .ring_changed(&cluster_key(cc), change.kind(), took.unsigned_abs());
}

/// When to repeat a failed ring step: as long again as the ring change has
/// been in flight (so retries back off doubling), from 1 s up to a minute.
fn retry(cc: &ChatCluster, now: Timestamp) -> Duration {
    let status = cc.status.clone().unwrap_or_default();
    let waited = ring_changing_for(&status, now).unsigned_abs();
    waited.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

fn requeue(step: &Step, settled: bool) -> Duration {
    match step {
        _ if settled => Duration::from_secs(300),
        Step::Bootstrap { .. }
        | Step::Prepare { .. }
        | Step::Commit { .. }
        | Step::Abort { .. }
        | Step::RemovePods { .. } => Duration::from_secs(1),
        _ => Duration::from_secs(5),
    }
}

/// One event per decision (the recorder folds repeats into a series).
async fn announce(
    ctx: &Context,
    cc: &ChatCluster,
    step: &Step,
    ring: &confab_api::cluster::RingStatus,
) {
    let action = match step {
        Step::Prepare { epoch, .. } => format!("PrepareRing{epoch}"),
        Step::Commit { epoch, .. } => format!("CommitRing{epoch}"),
        Step::Abort { epoch, .. } => format!("AbortRing{epoch}"),
        _ => String::new(),
    };
    let (reason, note) = match step {
        Step::Stable => return,
        Step::Paused => ("Paused", "spec.paused is set: not reconciling".to_string()),
        Step::Bootstrap { members } => (
            "RingBootstrapped",
            format!(
                "committed ring epoch {} with shards {members:?}",
                ring.epoch
            ),
        ),
        Step::WaitForPods { shards } => (
            "WaitingForPods",
            format!("waiting for shards {shards:?} to be Ready"),
        ),
        Step::Prepare {
            epoch,
            members,
            change,
            ..
        } => (
            change_reason(*change),
            format!("prepared ring epoch {epoch} with shards {members:?}"),
        ),
        Step::Commit { epoch, members } => {
            let moved = ring.moved_fraction.as_deref().unwrap_or("?");
            (
                "RingCommitted",
                format!(
                    "committed ring epoch {epoch} with shards {members:?}; moved fraction {moved}"
                ),
            )
        }
        Step::Abort { epoch, .. } => (
            "RingAborted",
            format!("aborted ring epoch {epoch}: superseded by a newer spec"),
        ),
        Step::RemovePods { shards, replicas } => (
            "RemovingPods",
            format!("drained shards {shards:?}; scaling the StatefulSet to {replicas}"),
        ),
    };
    match action.as_str() {
        "" => ctx.info(cc, reason, note).await,
        action => ctx.step(cc, reason, action, note).await,
    }
}

async fn cleanup(cc: &ChatCluster, ctx: &Context) -> Result<Action, Error> {
    let names = Names::new(cc);
    let ns = &names.namespace;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&names.selector_string(Role::Shard)))
        .await?;
    let ready: Vec<ShardPod> = list
        .items
        .iter()
        .filter_map(|p| shard_pod(&names, p))
        .filter(|p| p.ready)
        .collect();
    let ordinals: Vec<u32> = ready.iter().map(|p| p.ordinal).collect();
    let secrets = Api::namespaced(ctx.client.clone(), ns);
    let token = token(&secrets, &names.control_token_secret()).await?;
    let shards = targets(&names, &ordinals, &ready, token.value());
    let drains = shards
        .iter()
        .map(|t| ctx.control.drain(t, ctx.drain_deadline));
    let mut drained = 0;
    for (t, result) in shards.iter().zip(futures::future::join_all(drains).await) {
        match result {
            Ok(_) => drained += 1,
            Err(e) => {
                ctx.warn(cc, "DrainSkipped", format!("shard {}: {e}", t.shard))
                    .await
            }
        }
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let selector = ListParams::default().labels(&format!("{CLUSTER_LABEL}={}", names.cluster));
    let claims = pvcs
        .delete_collection(&DeleteParams::background(), &selector)
        .await?;
    let removed = claims.left().map_or(0, |l| l.items.len());
    let note = format!(
        "drained {drained} shards, deleted {removed} volume claims; other children are garbage-collected"
    );
    ctx.info(cc, "CleanedUp", note).await;
    ctx.memories.forget(&cluster_key(cc));
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
