//! The thin shell: reads, applies, patches, talks to the runtime — and
//! decides nothing itself.
//!
//! [`run`] wires it together: the HTTP endpoints, optional leader election,
//! and the kube-runtime `Controller` that owns every child kind and calls
//! [`reconcile::reconcile`]. Its tests drive `reconcile` against the
//! scripted API server in `fake_api` and assert every call it makes.

pub mod apply;
pub mod autoscale;
pub mod control;
pub mod driver;
#[cfg(test)]
pub mod fake_api;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod requests;
pub mod roll;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_api::cluster::ChatCluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio::net::TcpListener;

use control::ControlApi;
use leader::LeaseConfig;
use metrics::Metrics;
use reconcile::{Context, error_policy, reconcile};

/// Settings of a run, parsed once in `main`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace; all when `None`.
    pub namespace: Option<String>,
    /// Compete for this lease before reconciling; `None`: lead at once.
    pub lease: Option<LeaseConfig>,
    /// Name in events' `reportingInstance` (the pod name).
    pub instance: String,
    /// Bound on each Drain call.
    pub drain_deadline: Duration,
    /// How often each cluster's pods are asked for their load.
    pub load_interval: Duration,
}

/// Why [`run`] stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("leader election failed: {0}")]
    Election(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader lease; exiting so that only one replica reconciles")]
    LostLease,
}

/// A context for reconciles with `control` as the runtime's control API.
pub fn context(
    client: Client,
    control: Arc<dyn ControlApi>,
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> Arc<Context> {
    let reporter = Reporter {
        controller: "confab-operator".into(),
        instance: Some(settings.instance.clone()),
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        control,
        drain_deadline: settings.drain_deadline,
        load_interval: settings.load_interval,
        memories: Default::default(),
    })
}

/// An API of `K` in `namespace`, or across all namespaces.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` completes.
pub async fn run_controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = &ctx.client;
    let clusters: Api<ChatCluster> = scoped(client, namespace);
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=confab-operator");
    Controller::new(clusters, watcher::Config::default())
        .owns(scoped::<StatefulSet>(client, namespace), owned.clone())
        .owns(scoped::<Deployment>(client, namespace), owned.clone())
        .owns(scoped::<Service>(client, namespace), owned.clone())
        .owns(scoped::<ConfigMap>(client, namespace), owned.clone())
        .owns(scoped::<ServiceAccount>(client, namespace), owned.clone())
        .owns(scoped::<PodDisruptionBudget>(client, namespace), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}

/// Serves HTTP on `listener`, waits for the lease when configured, and runs
/// the controller until `shutdown` completes or the lease is lost.
pub async fn run(
    client: Client,
    listener: TcpListener,
    settings: Settings,
    control: Arc<dyn ControlApi>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        ready.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));
    let ctx = context(client.clone(), control, &settings, metrics);
    let result = match &settings.lease {
        None => {
            ready.store(true, Ordering::Relaxed);
            run_controller(ctx, settings.namespace.as_deref(), shutdown).await;
            Ok(())
        }
        Some(lease) => lead_then_run(client, lease, ctx, &settings, ready, shutdown).await,
    };
    let _ = stop_http.send(());
    let _ = http.await;
    result
}

async fn lead_then_run(
    client: Client,
    lease: &LeaseConfig,
    ctx: Arc<Context>,
    settings: &Settings,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let mut election = leader::elect(client, lease).await?;
    ready.store(true, Ordering::Relaxed);
    let mut shutdown = Box::pin(shutdown);
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting to lead");
    tokio::select! {
        _ = election.leading.wait_for(|l| *l) => {}
        _ = &mut shutdown => return Ok(()),
    }
    tracing::info!("leading: starting the controller");
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut leading = election.leading.clone();
    tokio::spawn(async move {
        let _ = leading.wait_for(|l| !*l).await;
        let _ = lost_tx.send(());
    });
    let lost = Arc::new(AtomicBool::new(false));
    let lost_flag = lost.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = lost_rx => lost_flag.store(true, Ordering::Relaxed),
        }
    };
    run_controller(ctx, settings.namespace.as_deref(), stop).await;
    drop(election.leading);
    let _ = election.task.await;
    if lost.load(Ordering::Relaxed) {
        Err(RunError::LostLease)
    } else {
        Ok(())
    }
}
