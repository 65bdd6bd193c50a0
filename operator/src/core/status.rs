//! Status, computed purely: counts, ring, endpoints, the four conditions and
//! the phase — and [`make_patch`], which returns `None` when nothing changed
//! so an idle cluster costs the API server no writes.
//!
//! A condition's `lastTransitionTime` moves only when its `status` flips;
//! reason and message may change under the same timestamp.
//!
//! What failed in this reconcile ([`Faults`]: a ring step's RPCs, children
//! the API server refused) outranks every other reason: `Progressing` turns
//! False naming it, `Degraded` turns True at once for a refused child and
//! after [`STUCK_AFTER`] for a ring change whose step keeps failing.

use std::collections::BTreeSet;

use confab_api::cluster::{
    ChatCluster, ChatClusterStatus, Endpoints, Phase, RingStatus, ShardsStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Patch;
use kube::{Resource, ResourceExt};

use super::Observed;
use super::names::{Names, Role};
use super::plan::{Change, Plan, Step};

/// A condition before timestamps: `(type, true?, reason, message)`.
type Verdict = (&'static str, bool, &'static str, String);

/// How long a ring change may stay in flight with its step failing before
/// the cluster reports `Degraded` / `RingChangeStuck`.
pub const STUCK_AFTER: SignedDuration = SignedDuration::from_secs(120);

/// What went wrong in this reconcile; the default is nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The step's control RPCs failed: `"Prepare: <error>"`.
    pub step: Option<String>,
    /// Children the API server refused: `"StatefulSet chat-shard: <its message>"`.
    pub refused: Vec<String>,
}

impl Faults {
    /// Nothing failed.
    pub fn is_empty(&self) -> bool {
        self.step.is_none() && self.refused.is_empty()
    }
}

/// The status for `cc` given what was observed, the plan and the ring as
/// recorded after this reconcile's step.
pub fn build(
    cc: &ChatCluster,
    names: &Names,
    observed: &Observed,
    plan: &Plan,
    ring: &RingStatus,
    faults: &Faults,
) -> ChatClusterStatus {
    let old = cc.status.clone().unwrap_or_default();
    let ready: BTreeSet<u32> = observed
        .shard_pods
        .iter()
        .filter(|p| p.ready)
        .map(|p| p.ordinal)
        .collect();
    let mut ring = ring.clone();
    ring.failed_over = plan
        .failed
        .iter()
        .filter(|s| !ring.members.contains(s))
        .copied()
        .collect();
    let stuck = faults.step.is_some() && ring_changing_for(&old, observed.now) >= STUCK_AFTER;
    let verdicts = verdicts(cc, observed, plan, &ring, &ready, faults, stuck);
    let conditions = verdicts
        .iter()
        .map(|v| condition(v, old.condition(v.0), observed, cc.meta().generation))
        .collect();
    ChatClusterStatus {
        observed_generation: cc.meta().generation,
        phase: Some(phase(
            cc,
            &verdicts,
            &old,
            !faults.refused.is_empty() || stuck,
        )),
        conditions,
        shards: Some(ShardsStatus {
            desired: cc.spec.shards.count,
            replicas: observed.shard_replicas.unwrap_or(0),
            ready: ring.members.iter().filter(|m| ready.contains(m)).count() as i32,
            selector: names.selector_string(Role::Shard),
        }),
        ring: Some(ring),
        gateways_ready: Some(observed.gateways_ready),
        endpoints: Some(endpoints(cc, names, observed)),
        // The shell reads the load and runs the autoscaler after this.
        load: old.load.clone(),
        autoscale: old.autoscale.clone(),
    }
}

fn endpoints(cc: &ChatCluster, names: &Names, observed: &Observed) -> Endpoints {
    let port = cc.spec.gateway.service.port;
    let host = format!("{}.{}.svc", names.workload(Role::Gateway), names.namespace);
    let (ws, http) = match cc.spec.gateway.tls {
        Some(_) => ("wss", "https"),
        None => ("ws", "http"),
    };
    Endpoints {
        websocket: cc.in_cluster_ws_url(&names.namespace),
        rest: format!("{http}://{host}:{port}/v1"),
        external_websocket: observed
            .gateway_ingress
            .as_ref()
            .map(|h| format!("{ws}://{h}:{port}/v1/ws")),
    }
}

fn backing_not_ready(cc: &ChatCluster, observed: &Observed) -> Vec<&'static str> {
    let mut out = Vec::new();
    if cc.spec.nats.managed.is_some() && observed.nats_ready < 1 {
        out.push("nats");
    }
    if cc.spec.scylla.managed.is_some() && observed.scylla_ready < 1 {
        out.push("scylla");
    }
    out
}

/// How long the ring has been changing at `now`, by `status`: since
/// `RingStable` last turned False (zero while it is True or unknown).
pub fn ring_changing_for(status: &ChatClusterStatus, now: Timestamp) -> SignedDuration {
    match status.condition("RingStable") {
        Some(c) if c.status == "False" => now.duration_since(c.last_transition_time.0),
        _ => SignedDuration::ZERO,
    }
}

/// What the conditions are computed from.
struct Facts<'a> {
    observed: &'a Observed,
    ring: &'a RingStatus,
    /// Ring members that are not Ready.
    not_ready: Vec<u32>,
    /// Managed backing services that are not Ready.
    backing: Vec<&'static str>,
    faults: &'a Faults,
    /// The ring change's step has failed for longer than [`STUCK_AFTER`].
    stuck: bool,
}

fn verdicts(
    cc: &ChatCluster,
    observed: &Observed,
    plan: &Plan,
    ring: &RingStatus,
    ready: &BTreeSet<u32>,
    faults: &Faults,
    stuck: bool,
) -> [Verdict; 4] {
    let not_ready = ring
        .members
        .iter()
        .filter(|m| !ready.contains(m))
        .copied()
        .collect();
    let facts = Facts {
        observed,
        ring,
        not_ready,
        backing: backing_not_ready(cc, observed),
        faults,
        stuck,
    };
    let roll = observed.roll(plan).message();
    let (progressing, reason, message) = match (&faults.step, faults.refused.is_empty(), roll) {
        (Some(e), _, _) => (false, "RingStepFailed", format!("{e}; retrying")),
        (None, false, _) => (false, "ApplyRefused", refusals(faults)),
        (None, true, Some(roll)) if matches!(plan.step, Step::Stable) => (true, "RollingOut", roll),
        (None, true, _) => progress(&plan.step),
    };
    [
        available(&facts),
        ("Progressing", progressing, reason, message),
        degraded(cc, &facts),
        ring_stable(ring, &plan.target),
    ]
}

fn available(f: &Facts<'_>) -> Verdict {
    let (ok, reason, message) = if f.ring.members.is_empty() {
        (false, "NoRing", "no ring committed yet".to_string())
    } else if f.observed.gateways_ready < 1 {
        (
            false,
            "NoGatewayReady",
            "no gateway pod is Ready".to_string(),
        )
    } else if !f.not_ready.is_empty() {
        let message = format!(
            "ring members {:?} are not Ready: their chats wait",
            f.not_ready
        );
        (false, "ShardsNotReady", message)
    } else if !f.backing.is_empty() {
        (
            false,
            "BackingServicesNotReady",
            format!("managed {:?} not Ready", f.backing),
        )
    } else {
        let (shards, gateways) = (f.ring.members.len(), f.observed.gateways_ready);
        (
            true,
            "AllServing",
            format!("{shards} shards and {gateways} gateways serving"),
        )
    };
    ("Available", ok, reason, message)
}

fn degraded(cc: &ChatCluster, f: &Facts<'_>) -> Verdict {
    let wanted = cc.spec.gateway.replicas;
    let (bad, reason, message) = if f.stuck {
        let step = f.faults.step.as_deref().unwrap_or_default();
        let message = format!(
            "ring change in flight for over {}s and its step keeps failing: {step}",
            STUCK_AFTER.as_secs()
        );
        (true, "RingChangeStuck", message)
    } else if !f.faults.refused.is_empty() {
        (true, "ApplyRefused", refusals(f.faults))
    } else if !f.ring.failed_over.is_empty() {
        let delay = cc.spec.shards.failover_delay_seconds;
        let message = format!(
            "shards {:?} NotReady for over {delay}s: taken out of the ring",
            f.ring.failed_over
        );
        (true, "ShardsFailedOver", message)
    } else if !f.not_ready.is_empty() {
        (
            true,
            "ShardsNotReady",
            format!("ring members {:?} are not Ready", f.not_ready),
        )
    } else if f.observed.gateways_ready < wanted {
        let message = format!("{} of {wanted} gateways Ready", f.observed.gateways_ready);
        (true, "GatewaysNotReady", message)
    } else if !f.backing.is_empty() {
        (
            true,
            "BackingServicesNotReady",
            format!("managed {:?} not Ready", f.backing),
        )
    } else {
        (false, "AllReady", "every pod is Ready".to_string())
    };
    ("Degraded", bad, reason, message)
}

fn ring_stable(ring: &RingStatus, target: &[u32]) -> Verdict {
    let (ok, reason, message) = match &ring.pending {
        Some(p) => {
            let message = format!("epoch {} ({:?}) in flight", p.epoch, p.phase);
            (false, "RingChangeInProgress", message)
        }
        None if ring.members != target => {
            let message = format!("ring {:?} → {target:?}", ring.members);
            (false, "RingChangeNeeded", message)
        }
        None => {
            let message = format!("epoch {} with shards {:?}", ring.epoch, ring.members);
            (true, "Committed", message)
        }
    };
    ("RingStable", ok, reason, message)
}

/// `(progressing?, reason, message)` of a step.
pub fn progress(step: &Step) -> (bool, &'static str, String) {
    match step {
        Step::Stable => (false, "Stable", "nothing to do".into()),
        Step::Paused => (false, "Paused", "spec.paused is set".into()),
        Step::Bootstrap { members } => (
            true,
            "Bootstrapping",
            format!("first ring with shards {members:?}"),
        ),
        Step::WaitForPods { shards } => (
            true,
            "WaitingForPods",
            format!("waiting for shards {shards:?} to be Ready"),
        ),
        Step::Prepare {
            epoch,
            members,
            change,
            ..
        } => (
            true,
            change_reason(*change),
            format!("preparing ring epoch {epoch} with shards {members:?}"),
        ),
        Step::Commit { epoch, members } => (
            true,
            "CommittingRing",
            format!("committing ring epoch {epoch} with shards {members:?}"),
        ),
        Step::Abort { epoch, .. } => (
            true,
            "AbortingRing",
            format!("aborting ring epoch {epoch}: the spec changed"),
        ),
        Step::RemovePods { shards, .. } => (
            true,
            "RemovingPods",
            format!("draining and removing shards {shards:?}"),
        ),
    }
}

/// Event/condition reason of a ring change.
pub fn change_reason(change: Change) -> &'static str {
    match change {
        Change::ScaleUp => "ScalingUp",
        Change::ScaleDown => "ScalingDown",
        Change::FailOver => "FailingOver",
        Change::Rejoin => "Rejoining",
        Change::Rebalance => "Rebalancing",
    }
}

fn condition(
    v: &Verdict,
    old: Option<&Condition>,
    observed: &Observed,
    generation: Option<i64>,
) -> Condition {
    let status = if v.1 { "True" } else { "False" };
    let last_transition_time = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(observed.now),
    };
    Condition {
        type_: v.0.into(),
        status: status.into(),
        reason: v.2.into(),
        message: v.3.clone(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// The refused children, one per `; `-separated part.
fn refusals(faults: &Faults) -> String {
    format!("the API server refused {}", faults.refused.join("; "))
}

/// The phase; `failing`: a child was refused or the ring change is stuck.
fn phase(
    cc: &ChatCluster,
    verdicts: &[Verdict; 4],
    old: &ChatClusterStatus,
    failing: bool,
) -> Phase {
    let [available, _, degraded, ring_stable] = verdicts;
    let was_provisioning = matches!(old.phase, None | Some(Phase::Provisioning));
    if cc.spec.paused {
        Phase::Paused
    } else if failing {
        Phase::Degraded
    } else if !available.1 && was_provisioning {
        Phase::Provisioning
    } else if !ring_stable.1 {
        Phase::Scaling
    } else if degraded.1 || !available.1 {
        Phase::Degraded
    } else {
        Phase::Running
    }
}

/// A server-side-apply patch of the status subresource, or `None` when
/// `new` is what the object already reports. It carries the object's
/// `resourceVersion` as a precondition: a status computed from a stale read
/// is refused (409) instead of rolling the recorded ring back.
pub fn make_patch(cc: &ChatCluster, new: &ChatClusterStatus) -> Option<Patch<serde_json::Value>> {
    if cc.status.as_ref() == Some(new) {
        return None;
    }
    Some(Patch::Apply(serde_json::json!({
        "apiVersion": ChatCluster::api_version(&()),
        "kind": ChatCluster::kind(&()),
        "metadata": { "name": cc.name_any(), "resourceVersion": cc.resource_version() },
        "status": new,
    })))
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
