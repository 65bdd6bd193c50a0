//! Leader election behind `--leader-election`, on a coordination.k8s.io
//! Lease through `kube-lease-manager` (maintained, built for kube 5).
//!
//! A replica that is not leading stands by; one that loses the lease stops
//! reconciling at once and the process exits, so two replicas never drive a
//! ring change together (Kubernetes restarts it as a follower).

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease parameters.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Seconds a lease lasts without renewal.
    pub duration_secs: u64,
}

/// A running election: `leading` flips to true when this replica holds the
/// lease and back to false if it loses it.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    pub task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Starts competing for the lease.
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_secs)
        .with_grace(config.duration_secs.div_ceil(6).max(1))
        .with_field_manager(crate::core::names::FIELD_MANAGER)
        .build()
        .await?;
    let (leading, task) = manager.watch().await;
    Ok(Election { leading, task })
}
