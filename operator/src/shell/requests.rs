//! Carries out the one-off requests of `confab.dev/drain` and
//! `confab.dev/failover` (see `confab_api::cluster::requests`): each ends in
//! an event and the annotation's removal.
//!
//! A forced failover is done by the scaling plan (the shell fences the
//! shard before planning, [`failovers`]); this module finishes it once the
//! committed ring no longer holds the shard: it deletes the pod, which
//! rejoins when Ready. A drain calls the pod's `Drain`, then deletes it.

use confab_api::cluster::requests::{PodRef, Request, requests};
use confab_api::cluster::{ChatCluster, RingStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::apply::delete_one;
use super::driver::{gateway_target, shard_target};
use super::reconcile::Context;
use crate::core::Observed;
use crate::core::names::{Names, Role};
use crate::error::Error;

/// Shards a readable `confab.dev/failover` asks to fail over.
pub fn failovers(cc: &ChatCluster) -> Vec<u32> {
    requests(cc.annotations())
        .into_iter()
        .filter_map(|(_, r)| match r {
            Ok(Request::FailOver(n)) => Some(n),
            _ => None,
        })
        .collect()
}

/// Serves every request on `cc`, given the ring this reconcile reported.
/// Runs after the status patch (it changes the object).
pub async fn serve(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    observed: &Observed,
    ring: &RingStatus,
) -> Result<(), Error> {
    for (key, request) in requests(cc.annotations()) {
        let outcome = match request {
            Err(why) => Some(Err(why)),
            Ok(Request::FailOver(n)) => fail_over(ctx, names, ring, n).await?,
            Ok(Request::Drain(pod)) => Some(drain(ctx, names, observed, &pod).await?),
        };
        let Some(outcome) = outcome else {
            continue; // the ring change is under way
        };
        match outcome {
            // An event per request: a later drain of another pod is not
            // folded into this one's series.
            Ok((reason, note)) => {
                let action = format!("{reason} {}", cc.annotations()[key]);
                ctx.step(cc, reason, &action, note).await;
            }
            Err(why) => ctx.warn(cc, "RequestRefused", why).await,
        }
        let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
        let patch = json!({ "metadata": { "annotations": { key: null } } });
        api.patch(
            &cc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

type Outcome = Result<(&'static str, String), String>;

/// A forced failover of shard `n`: done once the committed ring left it.
async fn fail_over(
    ctx: &Context,
    names: &Names,
    ring: &RingStatus,
    n: u32,
) -> Result<Option<Outcome>, Error> {
    if ring.members == [n] {
        let why = format!("cannot fail over shard {n}: it is the only shard in the ring");
        return Ok(Some(Err(why)));
    }
    if ring.members.contains(&n) || ring.pending.is_some() {
        return Ok(None);
    }
    let pod = format!("{}-{n}", names.workload(Role::Shard));
    delete_one::<Pod>(&ctx.client, &names.namespace, &pod).await?;
    let note = format!(
        "shard {n} is out of the ring (epoch {}, shards {:?}); deleted {pod}, which rejoins once Ready",
        ring.epoch, ring.members
    );
    Ok(Some(Ok(("FailedOverOnRequest", note))))
}

/// Drains `pod` through its control API, then deletes it.
async fn drain(
    ctx: &Context,
    names: &Names,
    observed: &Observed,
    pod: &PodRef,
) -> Result<Outcome, Error> {
    let token = observed.control_token.value();
    let found = match pod {
        PodRef::Shard(n) => observed
            .shard_pods
            .iter()
            .find(|p| p.ordinal == *n && p.ip.is_some())
            .map(|_| {
                let name = format!("{}-{n}", names.workload(Role::Shard));
                (name, shard_target(names, *n, &observed.shard_pods, token))
            }),
        PodRef::Gateway(name) => observed
            .gateway_pods
            .iter()
            .find(|p| &p.name == name)
            .and_then(|p| Some((p.name.clone(), gateway_target(names, p.ip?, token)))),
    };
    let Some((name, target)) = found else {
        return Ok(Err(format!("cannot drain {pod}: no such pod with an IP")));
    };
    let remaining = match ctx.control.drain(&target, ctx.drain_deadline).await {
        Ok(remaining) => remaining,
        Err(e) => {
            return Ok(Err(format!(
                "drain of {pod} failed: {e}; the pod is left as it is"
            )));
        }
    };
    delete_one::<Pod>(&ctx.client, &names.namespace, &name).await?;
    let held = match pod {
        PodRef::Gateway(_) => "sessions",
        PodRef::Shard(_) => "chats",
    };
    let note = format!("drained {pod} ({remaining} {held} left) and deleted its pod");
    Ok(Ok(("Drained", note)))
}
