//! Harness for tests against real services.
//!
//! `e2e/scripts/test-all.sh` installs and starts each service and exports its
//! address in an environment variable; tests read it with [`service_env`],
//! which fails loudly when the service is missing instead of skipping.
//! [`api`] is a REST client of one gateway; [`checks`] the checks that end
//! every cluster scenario, [`load`] the steady send load they run under;
//! [`kube`] the control plane's admin client.
//! [`media`] holds the media scenarios every bucket backend must pass;
//! [`push`] the push-notification scenarios, standalone and in a cluster,
//! with FCM and APNs stand-ins in [`push_services`];
//! [`cluster`] runs shard and gateway processes on loopback, and [`device`]
//! is a resuming WebSocket client for scenarios against them;
//! [`nats_cluster`] runs a clustered nats-server for replicated buckets.
//! [`oci`] builds the Dockerfiles' images from local binaries for containerd
//! without a registry (the `confab-image` binary, `e2e/scripts/images.sh`).

pub mod api;
pub mod checks;
pub mod cluster;
pub mod device;
pub mod kube;
pub mod load;
pub mod media;
pub mod nats_cluster;
pub mod oci;
pub mod push;
pub mod push_services;

/// Polls `check` every 50 ms until it holds; fails after `within`, naming
/// `what`. For outcomes that are eventual by design (a sweep, a push, a
/// cache following a change).
pub async fn eventually(
    what: &str,
    within: std::time::Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{what} did not happen within {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Reads the environment variable a service script exported.
///
/// # Panics
/// When it is unset: the test needs a service that is not running. Start the
/// suite through `e2e/scripts/test-all.sh` (or source `$CONFAB_RUN/<svc>.env`).
pub fn service_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs a real service. \
             Run e2e/scripts/test-all.sh, or start the service with \
             e2e/scripts/<service>.sh start and source its .env file"
        ),
    }
}

/// Installs the process-wide rustls crypto provider (ring). Call first in every
/// test that opens a TLS client (kube); calling it twice is harmless.
pub fn install_crypto() {
    chat_runtime::install_crypto();
}
