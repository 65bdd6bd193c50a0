//! Carries out the shard roll's next move (`core::roll`): drain the shard
//! through its control API, then delete its pod, which the StatefulSet
//! (`OnDelete`) recreates from the new template. A drain that fails leaves
//! the pod alone: a Warning says why, and the next reconcile tries again.

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::core::v1::Pod;

use super::apply::delete_one;
use super::driver::shard_target;
use super::reconcile::Context;
use crate::core::Observed;
use crate::core::names::{Names, Role};
use crate::core::roll::Roll;
use crate::error::Error;

/// Takes `roll`'s move, if it has one.
pub async fn step(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    observed: &Observed,
    roll: &Roll,
) -> Result<(), Error> {
    let Roll::Restart { shard, done, total } = *roll else {
        return Ok(());
    };
    let pod = format!("{}-{shard}", names.workload(Role::Shard));
    let token = observed.control_token.value();
    let target = shard_target(names, shard, &observed.shard_pods, token);
    if let Err(e) = ctx.control.drain(&target, ctx.drain_deadline).await {
        let note = format!("drain of shard {shard} before its restart failed: {e}; trying again");
        ctx.warn(cc, "RollStepFailed", note).await;
        return Ok(());
    }
    delete_one::<Pod>(&ctx.client, &names.namespace, &pod).await?;
    let note = format!(
        "drained shard {shard} and deleted {pod} to restart it on the new pod template ({done} of {total} done)"
    );
    ctx.step(cc, "RollingShard", &format!("RollShard{shard}"), note)
        .await;
    Ok(())
}
