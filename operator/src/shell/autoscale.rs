//! Reads the load of a cluster's pods through the control API's `Status`,
//! runs the autoscaler's pure core on it, and carries out its verdicts:
//! a merge patch of `spec.shards.count` or `spec.gateway.replicas`, and an
//! event saying why.
//!
//! Readings are taken at most once per load interval per cluster (the
//! status they produce triggers a reconcile of its own; reading on every
//! reconcile would loop). What the windows need is kept in memory: an
//! operator that restarts waits one window before its first step.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use confab_api::cluster::{AutoscaleStatus, ChatCluster, LoadStatus, ScaleStatus};
use futures::future::join_all;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::control::Target;
use super::driver::{gateway_target, shard_target};
use super::reconcile::Context;
use crate::core::autoscale::{
    self, Memory, Policy, Reading, Recommendation, Verdict, Wanted, gateways_wanted, remember,
    shards_wanted,
};
use crate::core::names::Names;
use crate::core::roll::Roll;
use crate::core::{Observed, Plan, Step};
use crate::error::Error;

/// The field manager of the counts the autoscaler sets.
pub const AUTOSCALER: &str = "confab-autoscaler";

/// Bound on each pod's `Status` answer.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Every cluster's memory, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Memories(Mutex<HashMap<String, Memory>>);

impl Memories {
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut all = self.0.lock().expect("autoscaler memory lock");
        f(all.entry(key.to_string()).or_default())
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, key: &str) {
        self.0.lock().expect("autoscaler memory lock").remove(key);
    }
}

/// A count to set, and the event that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleStep {
    /// JSON path under `spec`, e.g. `["shards", "count"]`.
    pub field: [&'static str; 2],
    pub to: i32,
    pub reason: &'static str,
    pub note: String,
}

/// What a reconcile reports and does for the load.
#[derive(Clone, Debug, Default)]
pub struct Autoscaled {
    pub load: Option<LoadStatus>,
    pub status: Option<AutoscaleStatus>,
    pub steps: Vec<ScaleStep>,
}

/// Reads the load when due and decides; answers what to report and do.
pub async fn run(
    ctx: &Context,
    cc: &ChatCluster,
    names: &Names,
    observed: &Observed,
    plan: &Plan,
    key: &str,
) -> Autoscaled {
    let now = observed.now;
    let interval = SignedDuration::try_from(ctx.load_interval).unwrap_or(SignedDuration::MAX);
    let old = cc.status.clone().unwrap_or_default();
    let kept = ctx.memories.with(key, |m| {
        (!m.due(now, interval)).then(|| (m.load.clone(), m.status.clone()))
    });
    if let Some((load, status)) = kept {
        return Autoscaled {
            load: load.or(old.load),
            status: status.or(old.autoscale),
            steps: Vec::new(),
        };
    }
    let reading = read(ctx, names, observed).await;
    let blocked = blocked(cc, observed, plan);
    ctx.memories.with(key, |memory| {
        let Some(load) = memory.read(reading).cloned() else {
            return Autoscaled {
                load: old.load.clone(),
                status: old.autoscale.clone(),
                steps: Vec::new(),
            };
        };
        let (status, steps) = decide(cc, &load, memory, &blocked, now);
        let status = (status.shards.is_some() || status.gateway.is_some()).then_some(status);
        memory.status = status.clone();
        Autoscaled {
            load: Some(load),
            status,
            steps,
        }
    })
}

/// What keeps each role from scaling now: `(shards, gateways)`.
fn blocked(cc: &ChatCluster, observed: &Observed, plan: &Plan) -> (Option<String>, Option<String>) {
    let status = cc.status.clone().unwrap_or_default();
    let degraded = status
        .condition("Degraded")
        .is_some_and(|c| c.status == "True");
    let common = if cc.spec.paused {
        Some("the cluster is paused".to_string())
    } else if degraded {
        Some("the cluster is Degraded".to_string())
    } else {
        None
    };
    let rolling = observed.roll(plan) != Roll::Done;
    let shards = common.clone().or_else(|| match &plan.step {
        Step::Stable if rolling => Some("the shards are rolling onto a new pod template".into()),
        Step::Stable => None,
        step => Some(format!("the ring is changing ({})", step.kind())),
    });
    let gateways = common.or_else(|| {
        let wanted = cc.spec.gateway.replicas;
        (observed.gateways_ready < wanted)
            .then(|| format!("{} of {wanted} gateways are Ready", observed.gateways_ready))
    });
    (shards, gateways)
}

/// Runs both roles' autoscalers on `load`.
fn decide(
    cc: &ChatCluster,
    load: &LoadStatus,
    memory: &mut Memory,
    (shards_blocked, gateways_blocked): &(Option<String>, Option<String>),
    now: Timestamp,
) -> (AutoscaleStatus, Vec<ScaleStep>) {
    let old = cc
        .status
        .clone()
        .unwrap_or_default()
        .autoscale
        .unwrap_or_default();
    let unreachable = (!load.unreachable.is_empty())
        .then(|| format!("pods did not answer ({})", load.unreachable.join("; ")));
    let mut status = AutoscaleStatus::default();
    let mut steps = Vec::new();
    match &cc.spec.shards.autoscale {
        Some(spec) => {
            let current = cc.spec.shards.count;
            let role = Role {
                policy: Policy::shards(spec),
                current,
                wanted: shards_wanted(spec, current, load),
                blocked: shards_blocked.as_deref().or(unreachable.as_deref()),
                field: ["shards", "count"],
                reason: "AutoscaledShards",
            };
            let (s, step) = role.run(old.shards.as_ref(), &mut memory.shards, now);
            status.shards = Some(s);
            steps.extend(step);
        }
        None => memory.shards.clear(),
    }
    match &cc.spec.gateway.autoscale {
        Some(spec) => {
            let current = cc.spec.gateway.replicas;
            let role = Role {
                policy: Policy::gateways(spec),
                current,
                wanted: gateways_wanted(spec, current, load),
                blocked: gateways_blocked.as_deref().or(unreachable.as_deref()),
                field: ["gateway", "replicas"],
                reason: "AutoscaledGateways",
            };
            let (s, step) = role.run(old.gateway.as_ref(), &mut memory.gateways, now);
            status.gateway = Some(s);
            steps.extend(step);
        }
        None => memory.gateways.clear(),
    }
    (status, steps)
}

/// One role's autoscaler at one reading.
struct Role<'a> {
    policy: Policy,
    current: i32,
    wanted: Wanted,
    blocked: Option<&'a str>,
    field: [&'static str; 2],
    reason: &'static str,
}

impl Role<'_> {
    /// Remembers the recommendation and decides; a step starts the windows
    /// over. Answers the role's status and the step to take, if any.
    fn run(
        self,
        old: Option<&ScaleStatus>,
        history: &mut VecDeque<Recommendation>,
        now: Timestamp,
    ) -> (ScaleStatus, Option<ScaleStep>) {
        let rec = Recommendation {
            at: now,
            count: self.wanted.count,
        };
        remember(history, rec, &self.policy);
        let verdict = autoscale::decide(
            &self.policy,
            self.current,
            history.make_contiguous(),
            now,
            self.blocked,
        );
        let status = autoscale::scale_status(old, &self.wanted, &verdict, self.current, now);
        let step = match verdict {
            Verdict::Scale { to, .. } => {
                history.clear();
                Some(ScaleStep {
                    field: self.field,
                    to,
                    reason: self.reason,
                    note: status.last_scale_reason.clone().unwrap_or_default(),
                })
            }
            Verdict::Hold { .. } => None,
        };
        (status, step)
    }
}

/// Sets the counts the autoscaler decided on, each with its event. Runs
/// after the status patch (it changes the object's resourceVersion).
pub async fn apply(ctx: &Context, cc: &ChatCluster, steps: &[ScaleStep]) -> Result<(), Error> {
    let Some(ns) = cc.namespace() else {
        return Ok(());
    };
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &ns);
    for step in steps {
        let [part, field] = step.field;
        let patch = json!({ "spec": { part: { field: step.to } } });
        let params = PatchParams {
            field_manager: Some(AUTOSCALER.into()),
            ..PatchParams::default()
        };
        api.patch(&cc.name_any(), &params, &Patch::Merge(&patch))
            .await?;
        let action = format!("{}{}", step.reason, step.to);
        ctx.step(cc, step.reason, &action, step.note.clone()).await;
        let key = format!("{ns}/{}", cc.name_any());
        ctx.metrics.autoscaled(&key, part);
    }
    Ok(())
}

/// Asks every Ready shard and gateway pod for its status, concurrently.
async fn read(ctx: &Context, names: &Names, observed: &Observed) -> Reading {
    let token = observed.control_token.value();
    let pods = &observed.shard_pods;
    let shards: Vec<(u32, Target)> = pods
        .iter()
        .filter(|p| p.ready)
        .map(|p| (p.ordinal, shard_target(names, p.ordinal, pods, token)))
        .collect();
    let gateways: Vec<(String, Target)> = observed
        .gateway_pods
        .iter()
        .filter(|p| p.ready)
        .filter_map(|p| Some((p.name.clone(), gateway_target(names, p.ip?, token))))
        .collect();
    let ask = |t: Target| async move {
        match tokio::time::timeout(READ_TIMEOUT, ctx.control.status(&t)).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from {} in {READ_TIMEOUT:?}", t.address)),
        }
    };
    let shard_answers = join_all(shards.iter().map(|(_, t)| ask(t.clone()))).await;
    let gateway_answers = join_all(gateways.iter().map(|(_, t)| ask(t.clone()))).await;
    let mut reading = Reading {
        at: observed.now,
        ..Reading::default()
    };
    for ((ordinal, _), answer) in shards.into_iter().zip(shard_answers) {
        match answer {
            Ok(report) => {
                reading.shards.insert(ordinal, report);
            }
            Err(e) => reading.unreachable.push(format!("shard {ordinal}: {e}")),
        }
    }
    for ((pod, _), answer) in gateways.into_iter().zip(gateway_answers) {
        match answer {
            Ok(report) => {
                reading.gateways.insert(pod, report);
            }
            Err(e) => reading.unreachable.push(format!("{pod}: {e}")),
        }
    }
    reading
}
