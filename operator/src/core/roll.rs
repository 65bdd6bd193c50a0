//! Rolling the shards onto a new pod template (a new image, a config
//! change), one at a time, by the operator itself: the StatefulSet's update
//! strategy is `OnDelete`, so Kubernetes replaces a shard pod only when the
//! operator deletes it — after draining it (it flushes its chats and
//! releases its lease, so the next incarnation takes over at once).
//!
//! Rules, pure:
//! - a ring change comes first: nothing is restarted while the plan has a
//!   step to take;
//! - nothing is restarted while any shard pod is missing or NotReady — so a
//!   restarted shard that does not come back pauses the roll where it is,
//!   and status says which shard it waits for;
//! - the out-of-date shard with the highest ordinal goes next.

use std::collections::BTreeSet;

use super::plan::{ShardPod, Step};

/// The roll's next move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roll {
    /// Every shard pod runs the current template (or none is known yet).
    Done,
    /// Out-of-date shards remain, but it is not the moment: `why`.
    Paused {
        done: usize,
        total: usize,
        why: String,
    },
    /// Drain shard `shard`, then delete its pod.
    Restart {
        shard: u32,
        done: usize,
        total: usize,
    },
}

impl Roll {
    /// The roll's state for `Progressing`, `None` when done.
    pub fn message(&self) -> Option<String> {
        let head = |done, total| {
            format!("rolling the shards onto the new pod template: {done} of {total} done")
        };
        match self {
            Roll::Done => None,
            Roll::Paused { done, total, why } => {
                Some(format!("{}; paused: {why}", head(done, total)))
            }
            Roll::Restart { shard, done, total } => {
                Some(format!("{}; restarting shard {shard}", head(done, total)))
            }
        }
    }
}

/// The next move, given the plan's step, the shard pods, the StatefulSet's
/// update revision and its replicas.
pub fn next(step: &Step, pods: &[ShardPod], revision: Option<&str>, replicas: Option<i32>) -> Roll {
    let Some(revision) = revision else {
        return Roll::Done;
    };
    let stale: BTreeSet<u32> = pods
        .iter()
        .filter(|p| p.revision.as_deref().is_some_and(|r| r != revision))
        .map(|p| p.ordinal)
        .collect();
    let Some(&last) = stale.last() else {
        return Roll::Done;
    };
    let total = replicas.map_or(pods.len(), |r| r.max(0) as usize);
    let done = total.saturating_sub(stale.len());
    let paused = |why: String| Roll::Paused { done, total, why };
    if !matches!(step, Step::Stable) {
        return paused(format!("the ring changes first ({})", step.kind()));
    }
    if pods.len() < total {
        return paused(format!("{} of {total} shard pods exist", pods.len()));
    }
    let not_ready: Vec<u32> = pods
        .iter()
        .filter(|p| !p.ready)
        .map(|p| p.ordinal)
        .collect();
    if !not_ready.is_empty() {
        return paused(format!("waiting for shards {not_ready:?} to be Ready"));
    }
    Roll::Restart {
        shard: last,
        done,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: u32, ready: bool, revision: &str) -> ShardPod {
        ShardPod {
            ordinal,
            ready,
            since: None,
            ip: None,
            revision: Some(revision.into()),
        }
    }

    #[test]
    fn restarts_the_highest_stale_shard_only_when_all_are_ready() {
        let new = Some("v2");
        let pods = [pod(0, true, "v1"), pod(1, true, "v1"), pod(2, true, "v2")];
        assert_eq!(
            next(&Step::Stable, &pods, new, Some(3)),
            Roll::Restart {
                shard: 1,
                done: 1,
                total: 3
            }
        );
        // The shard just restarted is not Ready yet: paused, saying where.
        let pods = [pod(0, true, "v1"), pod(1, false, "v2"), pod(2, true, "v2")];
        let roll = next(&Step::Stable, &pods, new, Some(3));
        assert_eq!(
            roll.message().unwrap(),
            "rolling the shards onto the new pod template: 2 of 3 done; paused: waiting for shards [1] to be Ready"
        );
        // Its pod not recreated yet.
        let pods = [pod(0, true, "v1"), pod(2, true, "v2")];
        assert!(matches!(
            next(&Step::Stable, &pods, new, Some(3)),
            Roll::Paused { .. }
        ));
        let done = [pod(0, true, "v2"), pod(1, true, "v2")];
        assert_eq!(next(&Step::Stable, &done, new, Some(2)), Roll::Done);
        assert_eq!(next(&Step::Stable, &pods, None, Some(3)), Roll::Done);
    }

    #[test]
    fn a_ring_change_goes_first() {
        let pods = [pod(0, true, "v1")];
        let step = Step::WaitForPods { shards: vec![1] };
        let roll = next(&step, &pods, Some("v2"), Some(1));
        assert_eq!(
            roll,
            Roll::Paused {
                done: 0,
                total: 1,
                why: "the ring changes first (WaitForPods)".into()
            }
        );
    }
}
