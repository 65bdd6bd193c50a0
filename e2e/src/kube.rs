//! The Kubernetes API of `e2e/scripts/kube.sh`'s control plane, for the
//! operator and real-node scenarios: an admin client and unique names.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::{install_crypto, service_env};

/// A client with the admin kubeconfig (`CONFAB_KUBECONFIG`).
pub async fn client() -> Result<Client> {
    install_crypto();
    let path = service_env("CONFAB_KUBECONFIG");
    let kubeconfig =
        Kubeconfig::read_from(&path).with_context(|| format!("reading kubeconfig {path}"))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// `prefix` made unique to this process and moment (namespaces, releases).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}
