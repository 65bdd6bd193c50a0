//! The whole product path on a real node (`e2e/scripts/node.sh`: kubelet,
//! containerd, runc, CNI bridge, kube-proxy), as a platform team runs it:
//! `helm install` of the chart (the operator as a pod under the chart's
//! ServiceAccount and RBAC, leader election on), a `ChatCluster` whose shard,
//! gateway and notifier pods run the chat-runtime image built on this machine
//! (`e2e/scripts/images.sh`) under the securityContext the operator writes,
//! against the host's NATS, Cassandra and S3 server; clients from outside
//! the cluster through the gateway's NodePort.
//!
//! One scenario, in phases that share the cluster ([`phases`]): chats with
//! receipts and media, scale 2→3 under load, a gateway pod deleted under
//! load, a shard container killed under load (failover, then rejoin), a
//! config change rolling every runtime pod under load, and deletion through
//! the finalizer. Timings are printed (`--nocapture`) for the closing notes.
//!
//! Needs the services of `e2e/scripts/test-all.sh` (kube, node, nats,
//! cassandra, s3, helm) and the images imported; fails loudly without them.

mod phases;
mod setup;

use std::time::Instant;

use anyhow::Result;

use setup::Product;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_and_chat_cluster_run_on_a_real_node() -> Result<()> {
    let product = Product::install().await?;
    let result = phases::run(&product).await;
    if let Err(e) = &result {
        eprintln!("scenario failed: {e:#}");
        product.diagnose().await;
    }
    product.uninstall().await;
    result
}

/// Prints how long a phase took, for the closing notes.
pub(crate) fn took(what: &str, since: Instant) {
    eprintln!("[real node] {what}: {:.1} s", since.elapsed().as_secs_f64());
}
