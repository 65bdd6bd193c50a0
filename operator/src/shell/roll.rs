//! Carries out the shard roll's next move (`core::roll`): drain the shard
//! through its control API, then delete its pod, which the StatefulSet
//! (`OnDelete`) recreates from the new template. A drain that fails leaves
//! the pod alone: a Warning says why, and the next reconcile tries again.

use std::net::SocketAddr;

use confab_api::cluster::ChatCluster;
use confab_api::config::CONTROL_PORT;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

use super::control::Target;
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
    let ip = observed
        .shard_pods
        .iter()
        .find(|p| p.ordinal == shard)
        .and_then(|p| p.ip);
    let address = ip.map_or_else(
        || names.shard_control_address(shard),
        |ip| SocketAddr::new(ip, CONTROL_PORT).to_string(),
    );
    let target = Target {
        namespace: names.namespace.clone(),
        cluster: names.cluster.clone(),
        shard,
        address,
        token: observed.control_token.value().to_string(),
    };
    if let Err(e) = ctx.control.drain(&target, ctx.drain_deadline).await {
        let note = format!("drain of shard {shard} before its restart failed: {e}; trying again");
        ctx.warn(cc, "RollStepFailed", note).await;
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    match pods.delete(&pod, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let note = format!(
        "drained shard {shard} and deleted {pod} to restart it on the new pod template ({done} of {total} done)"
    );
    ctx.step(cc, "RollingShard", &format!("RollShard{shard}"), note)
        .await;
    Ok(())
}
