//! The runtime's CQL connection over TLS, configured the way the operator
//! mounts a cert-manager Secret (`tls_dir` with `ca.crt`), against the test
//! Cassandra, whose port also takes TLS: its certificate comes from a test
//! CA (`CONFAB_CQL_TLS_CA`) and names localhost, 127.0.0.1 and the node
//! address the node announces.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use chat_runtime::roles::connect;
use chat_runtime::store::Store;
use chat_runtime::store::conformance::user;
use confab_api::config::{StoreConfig, TLS_CA_KEY};
use confab_e2e::service_env;
use scylla::client::session_builder::SessionBuilder;
use tokio::time::timeout;

fn config(keyspace: &str, tls_dir: &Path, server_name: Option<&str>) -> StoreConfig {
    StoreConfig::Scylla {
        contact_points: vec![service_env("CONFAB_CQL_NODE")],
        keyspace: keyspace.into(),
        replication_factor: 1,
        credentials_dir: None,
        tls_dir: Some(tls_dir.display().to_string()),
        tls_server_name: server_name.map(str::to_owned),
    }
}

/// A Secret's folder trusting the CA in `ca_pem`.
fn secret(ca_pem: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(TLS_CA_KEY), ca_pem)?;
    Ok(dir)
}

async fn connect_within(config: &StoreConfig) -> Result<()> {
    let store = timeout(Duration::from_secs(60), connect::store(config))
        .await
        .context("connecting timed out")??;
    let me = user(&format!("+1{:010}", rand_digits()));
    store.create_user(&me).await?;
    ensure!(store.user(me.id).await? == Some(me), "read back over TLS");
    Ok(())
}

fn rand_digits() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        % 10_000_000_000
}

#[tokio::test]
async fn runtime_stores_over_tls_checking_the_node_by_address_or_by_name() -> Result<()> {
    confab_e2e::install_crypto();
    let ca = std::fs::read_to_string(service_env("CONFAB_CQL_TLS_CA"))
        .context("the test CA (CONFAB_CQL_TLS_CA)")?;
    let trusted = secret(&ca)?;
    let keyspace = format!("confab_tls_{}_{}", std::process::id(), rand_digits());

    // Every node's certificate names its address; or the one name given.
    let by_address = connect_within(&config(&keyspace, trusted.path(), None)).await;
    let by_name = connect_within(&config(&keyspace, trusted.path(), Some("localhost"))).await;

    // The client really checks: another name, another CA, no connection.
    let elsewhere = config(&keyspace, trusted.path(), Some("cql.elsewhere"));
    let wrong_name = timeout(Duration::from_secs(60), connect::store(&elsewhere)).await?;
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let untrusted = secret(&stranger.cert.pem())?;
    let strange = config(&keyspace, untrusted.path(), None);
    let wrong_ca = timeout(Duration::from_secs(60), connect::store(&strange)).await?;

    let plain = SessionBuilder::new()
        .known_node(service_env("CONFAB_CQL_NODE"))
        .build()
        .await?;
    plain
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await?;

    by_address.context("TLS, certificate checked against the node's address")?;
    by_name.context("TLS, certificate checked against the name given")?;
    let wrong_name = wrong_name
        .err()
        .context("a certificate without the name given")?;
    let wrong_ca = wrong_ca
        .err()
        .context("a certificate from an untrusted CA")?;
    for refused in [wrong_name, wrong_ca] {
        let why = format!("{refused:#}");
        ensure!(why.contains("cannot connect to the store"), "{why}");
    }
    Ok(())
}
