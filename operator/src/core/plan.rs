//! The scaling plan: from the spec's shard count, the shard pods observed and
//! the ring recorded in status, the single next step — a pure state machine.
//!
//! Its memory is `status.ring` (committed ring, the change in flight and its
//! phase, the last epoch handed out). The shell records a step's intent there
//! ([`Step::record`]) *before* calling the runtime, and its outcome
//! ([`Step::complete`]) after every target acknowledged. So a restarted
//! operator re-derives the same step from status and repeats it; every
//! control RPC is idempotent.
//!
//! Rules:
//! - The first ring is written directly (no chats exist yet to move).
//! - The target ring is shards `0..count` minus those NotReady for longer
//!   than the failover delay (never empty).
//! - A ring change waits until every shard it involves is Ready, then goes
//!   Prepare → Commit. A newer target supersedes a change that is only
//!   Preparing/Prepared (Abort, then a fresh epoch); one that is Committing
//!   is finished first.
//! - Pods are added before the ring grows and removed (after a drain) only
//!   once the committed ring no longer holds them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use confab_api::cluster::{PendingRing, RingPhase, RingStatus};
use confab_api::ring::{Ring, ShardId};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// One shard pod as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPod {
    /// StatefulSet ordinal: the shard's ring id.
    pub ordinal: u32,
    /// Its Ready condition is True.
    pub ready: bool,
    /// When Ready last changed (or the pod was created); `None`: unknown.
    pub since: Option<Timestamp>,
    /// Its pod IP, once it has one: the operator dials the control API there.
    pub ip: Option<IpAddr>,
    /// The StatefulSet revision its pod was made from
    /// (`controller-revision-hash`), if labelled.
    pub revision: Option<String>,
}

/// What the plan needs to know.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// `spec.shards.count`.
    pub count: u32,
    /// `spec.shards.vnodesPerShard`.
    pub vnodes_per_shard: u32,
    /// `spec.paused`.
    pub paused: bool,
    /// `spec.shards.failoverDelaySeconds`.
    pub failover_delay: SignedDuration,
    /// `status.ring` (default before the first reconcile).
    pub ring: &'a RingStatus,
    /// Shard pods that exist.
    pub pods: &'a [ShardPod],
    /// The shard StatefulSet's current replicas, if it exists.
    pub replicas: Option<i32>,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// Why a ring change happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    ScaleUp,
    ScaleDown,
    /// A shard stayed NotReady past the failover delay.
    FailOver,
    /// A failed-over shard is Ready again.
    Rejoin,
    /// Shards both join and leave.
    Rebalance,
}

impl Change {
    /// The change's name, for metrics.
    pub fn kind(self) -> &'static str {
        match self {
            Change::ScaleUp => "ScaleUp",
            Change::ScaleDown => "ScaleDown",
            Change::FailOver => "FailOver",
            Change::Rejoin => "Rejoin",
            Change::Rebalance => "Rebalance",
        }
    }
}

/// The single next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `spec.paused`: nothing is done.
    Paused,
    /// No ring yet: commit the first one directly.
    Bootstrap { members: Vec<u32> },
    /// Shards involved in the next change are not Ready yet.
    WaitForPods { shards: Vec<u32> },
    /// Phase one of a ring change (sent again while still `Preparing`).
    Prepare {
        epoch: u64,
        from_epoch: u64,
        members: Vec<u32>,
        change: Change,
    },
    /// Phase two.
    Commit { epoch: u64, members: Vec<u32> },
    /// Drop a prepared change the spec no longer wants.
    Abort { epoch: u64, members: Vec<u32> },
    /// Drain shards the ring no longer holds, then lower the StatefulSet.
    RemovePods { shards: Vec<u32>, replicas: i32 },
    /// Nothing to do.
    Stable,
}

impl Step {
    /// The step's name, for events, metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Paused => "Paused",
            Step::Bootstrap { .. } => "Bootstrap",
            Step::WaitForPods { .. } => "WaitForPods",
            Step::Prepare { .. } => "Prepare",
            Step::Commit { .. } => "Commit",
            Step::Abort { .. } => "Abort",
            Step::RemovePods { .. } => "RemovePods",
            Step::Stable => "Stable",
        }
    }
}

/// The plan: the step, and what the objects must say meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub step: Step,
    /// The ring the spec and pod health call for.
    pub target: Vec<u32>,
    /// Shards NotReady for longer than the failover delay.
    pub failed: Vec<u32>,
    /// Shard StatefulSet replicas to apply.
    pub replicas: i32,
}

fn ready(pods: &[ShardPod], ordinal: u32) -> bool {
    pods.iter().any(|p| p.ordinal == ordinal && p.ready)
}

fn failed(input: &PlanInput<'_>) -> BTreeSet<u32> {
    input
        .pods
        .iter()
        .filter(|p| !p.ready)
        .filter(|p| {
            p.since
                .is_some_and(|t| t + input.failover_delay <= input.now)
        })
        .map(|p| p.ordinal)
        .collect()
}

/// Replicas the rings need: every desired shard and every ring member.
fn needed_replicas(count: u32, ring: &RingStatus) -> i32 {
    let pending = ring.pending.iter().flat_map(|p| p.members.iter());
    let top = ring
        .members
        .iter()
        .chain(pending)
        .max()
        .map_or(0, |m| m + 1);
    count.max(top) as i32
}

fn classify(committed: &[u32], target: &[u32], failed: &BTreeSet<u32>) -> Change {
    let removed: Vec<u32> = committed
        .iter()
        .filter(|m| !target.contains(m))
        .copied()
        .collect();
    let added: Vec<u32> = target
        .iter()
        .filter(|m| !committed.contains(m))
        .copied()
        .collect();
    let top = committed.iter().max().copied().unwrap_or(0);
    if removed.iter().any(|r| failed.contains(r)) {
        Change::FailOver
    } else if !added.is_empty() && !removed.is_empty() {
        Change::Rebalance
    } else if !added.is_empty() && added.iter().all(|a| *a < top) {
        Change::Rejoin
    } else if !added.is_empty() {
        Change::ScaleUp
    } else {
        Change::ScaleDown
    }
}

/// The kind of a change from ring `from` to ring `to` under a spec of
/// `count` shards — what [`plan`] classified it as when it proposed it, told
/// again when it is committed (status does not keep it). A shard the spec
/// still wants leaves the ring only by failing over; one it no longer wants
/// leaves by scaling down, even if it had failed too.
pub fn change_of(from: &[u32], to: &[u32], count: u32) -> Change {
    let wanted = (0..count.max(1)).collect();
    classify(from, to, &wanted)
}

/// The next step.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let failed = failed(input);
    let desired: Vec<u32> = (0..input.count.max(1)).collect();
    let mut target: Vec<u32> = desired
        .iter()
        .filter(|s| !failed.contains(s))
        .copied()
        .collect();
    if target.is_empty() {
        // A ring needs a shard: keep what there is rather than empty it.
        target = if input.ring.members.is_empty() {
            desired
        } else {
            input.ring.members.clone()
        };
    }
    let needed = needed_replicas(input.count, input.ring);
    let observed = input.replicas.unwrap_or(needed);
    let step = next_step(input, &target, &failed, needed, observed);
    let replicas = match &step {
        Step::RemovePods { replicas, .. } => *replicas,
        Step::Paused => observed,
        _ => needed.max(observed),
    };
    Plan {
        step,
        target,
        failed: failed.into_iter().collect(),
        replicas,
    }
}

/// Shards of the committed ring and `members` (less failed ones) that are
/// not Ready.
fn waiting(input: &PlanInput<'_>, members: &[u32], failed: &BTreeSet<u32>) -> Vec<u32> {
    let involved: BTreeSet<u32> = input.ring.members.iter().chain(members).copied().collect();
    involved
        .into_iter()
        .filter(|s| !failed.contains(s) && !ready(input.pods, *s))
        .collect()
}

/// The step for a change already recorded as `pending`.
fn continue_pending(
    input: &PlanInput<'_>,
    pending: &PendingRing,
    target: &[u32],
    failed: &BTreeSet<u32>,
) -> Step {
    let (epoch, members) = (pending.epoch, pending.members.clone());
    match pending.phase {
        RingPhase::Committing => Step::Commit { epoch, members },
        _ if members != target => Step::Abort { epoch, members },
        RingPhase::Prepared => Step::Commit { epoch, members },
        RingPhase::Preparing => match waiting(input, &members, failed) {
            w if !w.is_empty() => Step::WaitForPods { shards: w },
            _ => Step::Prepare {
                epoch,
                from_epoch: input.ring.epoch,
                change: classify(&input.ring.members, &members, failed),
                members,
            },
        },
    }
}

fn next_step(
    input: &PlanInput<'_>,
    target: &[u32],
    failed: &BTreeSet<u32>,
    needed: i32,
    observed: i32,
) -> Step {
    let ring = input.ring;
    if input.paused {
        return Step::Paused;
    }
    if ring.epoch == 0 && ring.pending.is_none() {
        return Step::Bootstrap {
            members: target.to_vec(),
        };
    }
    if let Some(pending) = &ring.pending {
        return continue_pending(input, pending, target, failed);
    }
    if ring.members != target {
        let w = waiting(input, target, failed);
        if !w.is_empty() {
            return Step::WaitForPods { shards: w };
        }
        return Step::Prepare {
            epoch: ring.last_issued_epoch + 1,
            from_epoch: ring.epoch,
            members: target.to_vec(),
            change: classify(&ring.members, target, failed),
        };
    }
    if observed > needed {
        let shards = (needed as u32..observed as u32).collect();
        return Step::RemovePods {
            shards,
            replicas: needed,
        };
    }
    Step::Stable
}

impl Step {
    /// The ring status to record before acting (write-ahead). Bootstrap
    /// commits directly; steps without RPCs return `ring` unchanged.
    pub fn record(&self, ring: &RingStatus, vnodes_per_shard: u32) -> RingStatus {
        let mut r = ring.clone();
        match self {
            Step::Bootstrap { members } => {
                r.epoch = r.last_issued_epoch + 1;
                r.last_issued_epoch = r.epoch;
                r.members = members.clone();
                r.vnodes_per_shard = vnodes_per_shard;
            }
            Step::Prepare { epoch, members, .. } => {
                r.last_issued_epoch = r.last_issued_epoch.max(*epoch);
                r.pending = Some(PendingRing {
                    epoch: *epoch,
                    members: members.clone(),
                    phase: RingPhase::Preparing,
                });
            }
            Step::Commit { .. } => {
                if let Some(p) = r.pending.as_mut() {
                    p.phase = RingPhase::Committing;
                }
            }
            _ => {}
        }
        r
    }

    /// The ring status once every target acknowledged the step.
    pub fn complete(&self, ring: &RingStatus) -> RingStatus {
        let mut r = ring.clone();
        match self {
            Step::Prepare { .. } => {
                if let Some(p) = r.pending.as_mut() {
                    p.phase = RingPhase::Prepared;
                }
            }
            Step::Commit { epoch, members } => {
                r.moved_fraction = moved_fraction(&r.members, members, r.vnodes_per_shard);
                r.epoch = *epoch;
                r.members = members.clone();
                r.pending = None;
            }
            Step::Abort { .. } => r.pending = None,
            _ => {}
        }
        r
    }

    /// Shards the step's control RPCs go to: the Ready members of the old
    /// and new rings (failed shards are fenced by their leases instead).
    pub fn targets(&self, ring: &RingStatus, pods: &[ShardPod]) -> Vec<u32> {
        let members: &[u32] = match self {
            Step::Prepare { members, .. }
            | Step::Commit { members, .. }
            | Step::Abort { members, .. } => members,
            Step::RemovePods { shards, .. } => {
                return shards.iter().copied().filter(|s| ready(pods, *s)).collect();
            }
            _ => return Vec::new(),
        };
        let all: BTreeSet<u32> = ring.members.iter().chain(members).copied().collect();
        all.into_iter().filter(|s| ready(pods, *s)).collect()
    }
}

/// The fraction of chats a change moves, as status shows it (`"0.400"`).
pub fn moved_fraction(from: &[u32], to: &[u32], vnodes: u32) -> Option<String> {
    let ring = |m: &[u32]| {
        Ring::new(
            0,
            &m.iter().map(|s| ShardId(*s)).collect::<Vec<_>>(),
            vnodes,
        )
        .ok()
    };
    let (a, b) = (ring(from)?, ring(to)?);
    Some(format!("{:.3}", Ring::moved(&a, &b)))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
