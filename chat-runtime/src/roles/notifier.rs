//! `chat-runtime notifier`: takes push jobs off the cluster's JetStream
//! queue and delivers them through the configured push services. Stateless:
//! run as many as the load needs; each job goes to one of them, and a job
//! held by a notifier that dies goes to another.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::connect;
use crate::metrics::Metrics;
use crate::push::notifier::Notifier;
use crate::push::providers;

/// What a notifier process is told.
#[derive(Clone, Debug)]
pub struct NotifierArgs {
    pub config: std::path::PathBuf,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub listen: SocketAddr,
}

/// Runs the notifier until `shutdown` resolves, then finishes the jobs in hand.
pub async fn run(
    args: NotifierArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let config = connect::load(&args.config)?;
    let providers = providers::from_config(&config.push)?;
    if providers.platforms().is_empty() {
        tracing::warn!("no push credentials configured: every push job will be dead-lettered");
    }
    let (nats, _) = connect::nats(&config.nats, &format!("{}-notifier", config.cluster)).await?;
    let store = connect::store(&config.store).await?;
    let queue = connect::push_queue(&nats, &config).await?;
    let metrics = Arc::new(Metrics::new());
    let notifier = Arc::new(Notifier::new(queue, store, providers, metrics.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(notifier.run(stop_rx));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "notifier serving");
    let probes = confab_probes::router(|| Ok(()), move || metrics.render());
    if let Err(e) = confab_probes::serve(listener, probes, shutdown).await {
        tracing::warn!(error = %e, "the operational endpoints stopped");
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    Ok(())
}
