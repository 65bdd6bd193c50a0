//! Carries out one scaling-plan step: records its intent in status, calls
//! the runtime's control API on the step's targets, and answers the ring
//! status to report once every target acknowledged.
//!
//! The write-ahead patch comes first, so an operator that dies mid-step is
//! replaced by one that repeats the same step (all control RPCs are
//! idempotent). A Prepare or Commit that fails leaves the recorded intent in
//! place to be repeated; the caller reports it and goes on with the rest of
//! the spec. Aborts and drains are best effort (`docs/cluster.md` §5): a pod
//! that does not answer is reported and the step completes anyway — a later
//! prepare replaces a lost abort, and a drained pod's chats already moved.

use std::net::{IpAddr, SocketAddr};

use confab_api::cluster::{ChatCluster, RingStatus};
use confab_api::config::CONTROL_PORT;
use confab_api::ring::{Ring, ShardId};
use futures::future::{join_all, try_join_all};

use super::control::{ControlError, Target};
use super::reconcile::Context;
use crate::core::names::Names;
use crate::core::status::Faults;
use crate::core::{self, Desired, Observed, ShardPod, Step};
use crate::error::Error;

/// The control endpoint of each of `shards` (see [`shard_target`]).
pub fn targets(names: &Names, shards: &[u32], pods: &[ShardPod], token: &str) -> Vec<Target> {
    shards
        .iter()
        .map(|&shard| shard_target(names, shard, pods, token))
        .collect()
}

/// The control endpoint of `shard`: its pod's IP as observed (as
/// CloudNativePG reaches its instances — no wait for DNS after a pod comes
/// back, no cluster DNS needed), else its name under the headless Service.
pub fn shard_target(names: &Names, shard: u32, pods: &[ShardPod], token: &str) -> Target {
    let ip = pods.iter().find(|p| p.ordinal == shard).and_then(|p| p.ip);
    Target {
        namespace: names.namespace.clone(),
        cluster: names.cluster.clone(),
        shard,
        address: ip.map_or_else(
            || names.shard_control_address(shard),
            |ip| SocketAddr::new(ip, CONTROL_PORT).to_string(),
        ),
        token: token.to_string(),
    }
}

/// The control endpoint of the gateway pod at `ip`.
pub fn gateway_target(names: &Names, ip: IpAddr, token: &str) -> Target {
    Target {
        namespace: names.namespace.clone(),
        cluster: names.cluster.clone(),
        shard: 0,
        address: SocketAddr::new(ip, CONTROL_PORT).to_string(),
        token: token.to_string(),
    }
}

/// What executing a step did.
#[derive(Debug)]
pub struct Executed {
    /// The ring status to report: the step's outcome, or its recorded intent
    /// when its RPCs failed.
    pub ring: RingStatus,
    /// The object as updated by the write-ahead patch, if one was needed.
    pub updated: Option<ChatCluster>,
    /// The control RPC failure that stopped the step, if one did.
    pub failed: Option<ControlError>,
}

/// Executes `desired.plan.step`. Only API errors (the write-ahead patch) are
/// `Err`; a failed RPC is reported in [`Executed::failed`].
pub async fn execute(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    desired: &Desired,
    observed: &Observed,
) -> Result<Executed, Error> {
    let step = &desired.plan.step;
    let mut updated = None;
    if desired.ring != core::current_ring(cc) {
        let faults = Faults::default();
        let status =
            core::status::build(cc, names, observed, &desired.plan, &desired.ring, &faults);
        updated = super::reconcile::patch_status(ctx, cc, &status).await?;
    }
    let failed = call(ctx, cc, names, desired, observed).await.err();
    let ring = match failed {
        Some(_) => desired.ring.clone(),
        None => step.complete(&desired.ring),
    };
    Ok(Executed {
        ring,
        updated,
        failed,
    })
}

/// The step's control RPCs.
async fn call(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    desired: &Desired,
    observed: &Observed,
) -> Result<(), ControlError> {
    let step = &desired.plan.step;
    let shards = step.targets(&desired.ring, &observed.shard_pods);
    let token = observed.control_token.value();
    let targets = targets(names, &shards, &observed.shard_pods, token);
    let control = ctx.control.as_ref();
    match step {
        Step::Prepare {
            epoch,
            from_epoch,
            members,
            ..
        } => {
            let shards: Vec<ShardId> = members.iter().map(|s| ShardId(*s)).collect();
            let ring = Ring::new(*epoch, &shards, desired.ring.vnodes_per_shard)
                .expect("the plan only proposes rings of existing shards with the spec's vnodes");
            try_join_all(
                targets
                    .iter()
                    .map(|t| control.prepare_ring(t, &ring, *from_epoch)),
            )
            .await?;
        }
        Step::Commit { epoch, .. } => {
            try_join_all(targets.iter().map(|t| control.commit_ring(t, *epoch))).await?;
        }
        Step::Abort { epoch, .. } => {
            let aborts = join_all(targets.iter().map(|t| control.abort_ring(t, *epoch))).await;
            let lost: Vec<String> = targets
                .iter()
                .zip(aborts)
                .filter_map(|(t, r)| r.err().map(|e| format!("shard {}: {e}", t.shard)))
                .collect();
            if !lost.is_empty() {
                let note = format!(
                    "the abort of epoch {epoch} did not reach {}; the next prepare replaces it",
                    lost.join("; ")
                );
                ctx.warn(cc, "AbortUndelivered", note).await;
            }
        }
        Step::RemovePods { .. } => {
            let drains = targets.iter().map(|t| control.drain(t, ctx.drain_deadline));
            for (t, result) in targets.iter().zip(join_all(drains).await) {
                if let Err(e) = result {
                    let note = format!("shard {} removed without drain: {e}", t.shard);
                    ctx.warn(cc, "DrainSkipped", note).await;
                }
            }
        }
        Step::Bootstrap { .. } | Step::WaitForPods { .. } | Step::Stable | Step::Paused => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{cluster, ready_pods};

    #[test]
    fn targets_dial_the_observed_pod_ip_and_fall_back_to_the_pod_name() {
        let cc = cluster();
        let names = Names::new(&cc);
        let mut pods = ready_pods(2);
        pods[1].ip = Some("fd00::7".parse().unwrap());
        let got: Vec<String> = targets(&names, &[0, 1, 2], &pods, "t")
            .into_iter()
            .map(|t| t.address)
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.1:9090".to_string(),
                "[fd00::7]:9090".into(),
                names.shard_control_address(2),
            ]
        );
    }
}
