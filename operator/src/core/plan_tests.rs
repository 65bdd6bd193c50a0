//! Sequences of plan steps: scale up, scale down, failover and rejoin, a
//! change of mind at every phase, and an operator restart mid-scale.

use super::*;
use crate::core::fixtures::now;

/// A cluster as the plan sees it, advanced one reconcile at a time with every
/// RPC succeeding unless `rpc_fails` is set.
struct Sim {
    count: u32,
    ring: RingStatus,
    replicas: Option<i32>,
    /// Ordinals whose pods are broken (NotReady since `broken_since`).
    broken: BTreeSet<u32>,
    broken_since: Timestamp,
    rpc_fails: bool,
    now: Timestamp,
}

impl Sim {
    fn new(count: u32) -> Self {
        Sim {
            count,
            ring: RingStatus::default(),
            replicas: None,
            broken: BTreeSet::new(),
            broken_since: now(),
            rpc_fails: false,
            now: now(),
        }
    }

    /// Pods of the current StatefulSet: Ready unless broken.
    fn pods(&self) -> Vec<ShardPod> {
        (0..self.replicas.unwrap_or(0) as u32)
            .map(|ordinal| {
                let broken = self.broken.contains(&ordinal);
                ShardPod {
                    ordinal,
                    ready: !broken,
                    since: Some(if broken { self.broken_since } else { now() }),
                    ip: None,
                    revision: None,
                }
            })
            .collect()
    }

    fn plan(&self) -> Plan {
        let pods = self.pods();
        plan(&PlanInput {
            count: self.count,
            vnodes_per_shard: 64,
            paused: false,
            failover_delay: SignedDuration::from_secs(30),
            ring: &self.ring,
            pods: &pods,
            replicas: self.replicas,
            now: self.now,
        })
    }

    /// One reconcile: plan, record, act, complete, apply replicas.
    fn tick(&mut self) -> Step {
        let plan = self.plan();
        self.ring = plan.step.record(&self.ring, 64);
        if !self.rpc_fails {
            self.ring = plan.step.complete(&self.ring);
        }
        self.replicas = Some(plan.replicas);
        self.now += SignedDuration::from_secs(1);
        plan.step
    }

    /// Ticks until Stable (at most 20), returning the steps taken.
    fn settle(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..20 {
            match self.tick() {
                Step::Stable => return steps,
                s => steps.push(s),
            }
        }
        panic!("no Stable after 20 steps: {steps:?}");
    }
}

fn kinds(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::kind).collect()
}

fn running(count: u32) -> Sim {
    let mut sim = Sim::new(count);
    sim.settle();
    sim
}

#[test]
fn bootstrap_commits_the_first_ring_without_rpcs() {
    let mut sim = Sim::new(3);
    let steps = sim.settle();
    assert_eq!(
        steps,
        vec![Step::Bootstrap {
            members: vec![0, 1, 2]
        }]
    );
    assert_eq!(
        (sim.ring.epoch, sim.ring.members.clone()),
        (1, vec![0, 1, 2])
    );
    assert_eq!(sim.replicas, Some(3));
    assert!(
        Step::Bootstrap { members: vec![0] }
            .targets(&sim.ring, &sim.pods())
            .is_empty()
    );
}

#[test]
fn scale_up_starts_pods_waits_then_prepares_and_commits() {
    let mut sim = running(3);
    sim.count = 5;
    // The first reconcile raises replicas; the new pods are not there yet.
    assert_eq!(sim.tick(), Step::WaitForPods { shards: vec![3, 4] });
    assert_eq!(sim.replicas, Some(5));
    let prepare = sim.tick();
    assert_eq!(
        prepare,
        Step::Prepare {
            epoch: 2,
            from_epoch: 1,
            members: vec![0, 1, 2, 3, 4],
            change: Change::ScaleUp
        }
    );
    assert_eq!(
        prepare.targets(
            &RingStatus {
                members: vec![0, 1, 2],
                ..Default::default()
            },
            &sim.pods()
        ),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        sim.tick(),
        Step::Commit {
            epoch: 2,
            members: vec![0, 1, 2, 3, 4]
        }
    );
    assert_eq!(sim.settle(), vec![]);
    assert_eq!(sim.ring.epoch, 2);
    assert_eq!(
        sim.ring
            .moved_fraction
            .as_deref()
            .map(|f| f.parse::<f64>().unwrap() > 0.3),
        Some(true)
    );
}

#[test]
fn scale_down_moves_ownership_first_then_drains_and_removes_pods() {
    let mut sim = running(5);
    sim.count = 2;
    let steps = sim.settle();
    assert_eq!(kinds(&steps), ["Prepare", "Commit", "RemovePods"]);
    // Pods stay while the ring still holds them.
    assert_eq!(
        steps[2],
        Step::RemovePods {
            shards: vec![2, 3, 4],
            replicas: 2
        }
    );
    assert_eq!(sim.replicas, Some(2));
    assert_eq!((sim.ring.epoch, sim.ring.members.clone()), (2, vec![0, 1]));
}

#[test]
fn replicas_never_drop_below_ring_members_during_scale_down() {
    let mut sim = running(5);
    sim.count = 2;
    sim.rpc_fails = true;
    for _ in 0..3 {
        sim.tick();
        assert_eq!(sim.replicas, Some(5));
    }
}

#[test]
fn three_to_five_to_two_commits_epochs_in_order() {
    let mut sim = running(3);
    sim.count = 5;
    sim.settle();
    sim.count = 2;
    sim.settle();
    assert_eq!(
        (sim.ring.epoch, sim.ring.members.clone(), sim.replicas),
        (3, vec![0, 1], Some(2))
    );
}

#[test]
fn change_of_mind_while_preparing_aborts_and_uses_a_fresh_epoch() {
    let mut sim = running(3);
    sim.count = 5;
    sim.tick(); // WaitForPods
    sim.rpc_fails = true;
    assert!(matches!(sim.tick(), Step::Prepare { epoch: 2, .. }));
    assert_eq!(
        sim.ring.pending.as_ref().unwrap().phase,
        RingPhase::Preparing
    );
    sim.rpc_fails = false;
    sim.count = 4;
    assert_eq!(
        sim.tick(),
        Step::Abort {
            epoch: 2,
            members: vec![0, 1, 2, 3, 4]
        }
    );
    let steps = sim.settle();
    assert_eq!(kinds(&steps), ["Prepare", "Commit", "RemovePods"]);
    assert!(
        matches!(steps[0], Step::Prepare { epoch: 3, .. }),
        "epoch 2 is never reused"
    );
    assert_eq!(
        (sim.ring.epoch, sim.ring.members.clone(), sim.replicas),
        (3, vec![0, 1, 2, 3], Some(4))
    );
}

#[test]
fn change_of_mind_back_to_the_committed_ring_just_aborts() {
    let mut sim = running(3);
    sim.count = 5;
    sim.tick();
    sim.tick(); // Prepare, acknowledged: Prepared
    assert_eq!(
        sim.ring.pending.as_ref().unwrap().phase,
        RingPhase::Prepared
    );
    sim.count = 3;
    let steps = sim.settle();
    assert_eq!(kinds(&steps), ["Abort", "RemovePods"]);
    assert_eq!((sim.ring.epoch, sim.replicas), (1, Some(3)));
}

#[test]
fn a_commit_in_flight_finishes_before_a_newer_spec_is_followed() {
    let mut sim = running(3);
    sim.count = 5;
    sim.tick();
    sim.tick(); // Prepared
    sim.rpc_fails = true;
    assert!(matches!(sim.tick(), Step::Commit { epoch: 2, .. })); // Committing, unacknowledged
    sim.rpc_fails = false;
    sim.count = 2;
    let steps = sim.settle();
    assert_eq!(
        steps[0],
        Step::Commit {
            epoch: 2,
            members: vec![0, 1, 2, 3, 4]
        }
    );
    assert_eq!(kinds(&steps[1..]), ["Prepare", "Commit", "RemovePods"]);
    assert_eq!((sim.ring.epoch, sim.ring.members.clone()), (3, vec![0, 1]));
}

#[test]
fn restart_mid_scale_resumes_from_status() {
    // Operator A records Prepare and dies before the acknowledgement.
    let mut a = running(3);
    a.count = 5;
    a.tick();
    a.rpc_fails = true;
    let Step::Prepare { epoch, .. } = a.tick() else {
        panic!()
    };
    // Operator B starts from the same status and observed state.
    let mut b = Sim {
        rpc_fails: false,
        ..a
    };
    assert!(
        matches!(b.tick(), Step::Prepare { epoch: e, .. } if e == epoch),
        "same epoch, resent"
    );
    assert_eq!(
        b.tick(),
        Step::Commit {
            epoch,
            members: vec![0, 1, 2, 3, 4]
        }
    );
    assert_eq!(b.settle(), vec![]);
}

#[test]
fn not_ready_shard_fails_over_after_the_delay_and_rejoins_when_ready() {
    let mut sim = running(3);
    sim.broken.insert(1);
    sim.broken_since = sim.now;
    // Within the delay: nothing moves.
    assert_eq!(sim.tick(), Step::Stable);
    sim.now += SignedDuration::from_secs(30);
    let prepare = sim.tick();
    assert_eq!(
        prepare,
        Step::Prepare {
            epoch: 2,
            from_epoch: 1,
            members: vec![0, 2],
            change: Change::FailOver
        }
    );
    // The failed shard is not asked: its lease fences it.
    assert_eq!(
        prepare.targets(
            &RingStatus {
                members: vec![0, 1, 2],
                ..Default::default()
            },
            &sim.pods()
        ),
        vec![0, 2]
    );
    assert_eq!(kinds(&sim.settle()), ["Commit"]);
    assert_eq!(
        (sim.ring.members.clone(), sim.replicas),
        (vec![0, 2], Some(3)),
        "its pod stays"
    );
    assert_eq!(sim.plan().failed, vec![1]);

    sim.broken.clear();
    let steps = sim.settle();
    assert!(matches!(
        steps[0],
        Step::Prepare {
            change: Change::Rejoin,
            epoch: 3,
            ..
        }
    ));
    assert_eq!(sim.ring.members, vec![0, 1, 2]);
}

#[test]
fn a_committed_change_is_named_as_its_prepare_named_it() {
    let mut sim = running(3);
    sim.broken.insert(1);
    sim.broken_since = sim.now - SignedDuration::from_secs(60);
    let Step::Prepare {
        members, change, ..
    } = sim.tick()
    else {
        panic!("expected a Prepare");
    };
    assert_eq!(change, Change::FailOver);
    assert_eq!(change_of(&[0, 1, 2], &members, sim.count), change);
    for (from, to, count, change) in [
        (&[0, 2][..], &[0, 1, 2][..], 3, Change::Rejoin),
        (&[0, 1], &[0, 1, 2], 3, Change::ScaleUp),
        (&[0, 1, 2], &[0, 1], 2, Change::ScaleDown),
        // Shard 1 back, shard 2 no longer wanted.
        (&[0, 2], &[0, 1], 2, Change::Rebalance),
    ] {
        assert_eq!(change_of(from, to, count), change, "{from:?} -> {to:?}");
    }
    assert_eq!(Change::FailOver.kind(), "FailOver");
}

#[test]
fn all_shards_failed_keeps_the_ring() {
    let mut sim = running(2);
    sim.broken = BTreeSet::from([0, 1]);
    sim.broken_since = sim.now - SignedDuration::from_secs(60);
    assert_eq!(sim.tick(), Step::Stable);
    assert_eq!(sim.ring.members, vec![0, 1]);
}

#[test]
fn a_slow_new_pod_blocks_the_change_until_ready_or_failed() {
    let mut sim = running(2);
    sim.count = 3;
    sim.broken.insert(2);
    sim.broken_since = sim.now;
    assert_eq!(sim.tick(), Step::WaitForPods { shards: vec![2] });
    assert_eq!(sim.tick(), Step::WaitForPods { shards: vec![2] });
    // Past the delay it is treated as failed: the ring stays, the pod stays.
    sim.now += SignedDuration::from_secs(31);
    assert_eq!(sim.tick(), Step::Stable);
    assert_eq!(sim.replicas, Some(3));
}

#[test]
fn paused_changes_nothing() {
    let sim = running(3);
    let pods = sim.pods();
    let plan = plan(&PlanInput {
        count: 5,
        vnodes_per_shard: 64,
        paused: true,
        failover_delay: SignedDuration::from_secs(30),
        ring: &sim.ring,
        pods: &pods,
        replicas: Some(3),
        now: now(),
    });
    assert_eq!((plan.step, plan.replicas), (Step::Paused, 3));
}

#[test]
fn moved_fraction_is_about_one_over_n() {
    let f: f64 = moved_fraction(&[0, 1, 2, 3], &[0, 1, 2, 3, 4], 64)
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.15..0.25).contains(&f), "{f}");
    assert_eq!(moved_fraction(&[], &[0], 64), None);
}
