//! The runtime's NATS connection over TLS, configured the way the operator
//! mounts a cert-manager Secret (`tls_dir` with `ca.crt`, `tls.crt`,
//! `tls.key`), against a second nats-server of the installed binary
//! (`CONFAB_NATS_BIN`) that serves TLS and verifies client certificates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use chat_runtime::roles::connect;
use confab_api::config::{NatsConfig, TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use confab_e2e::service_env;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokio::time::timeout;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as a
/// server's files and a client Secret's folder.
fn pki(dir: &Path) -> Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let issue = |names: Vec<String>, usage, cert: &str, key: &str| -> Result<()> {
        let mut params = CertificateParams::new(names)?;
        params.extended_key_usages = vec![usage];
        let pair = KeyPair::generate()?;
        std::fs::write(dir.join(cert), params.signed_by(&pair, &ca)?.pem())?;
        std::fs::write(dir.join(key), pair.serialize_pem())?;
        Ok(())
    };
    issue(
        vec!["127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server.crt",
        "server.key",
    )?;
    std::fs::create_dir(dir.join("secret"))?;
    issue(
        vec!["confab-runtime".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &format!("secret/{TLS_CERT_KEY}"),
        &format!("secret/{TLS_KEY_KEY}"),
    )?;
    std::fs::write(dir.join("ca.crt"), ca.pem())?;
    std::fs::write(dir.join("secret").join(TLS_CA_KEY), ca.pem())?;
    Ok(())
}

/// nats-server serving only TLS and asking every client for a certificate
/// signed by the CA.
fn tls_server(dir: &Path, port: u16) -> Result<Child> {
    let file = |name: &str| dir.join(name).display().to_string();
    Command::new(service_env("CONFAB_NATS_BIN"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["--tls", "--tlscert", &file("server.crt")])
        .args(["--tlskey", &file("server.key")])
        .args(["--tlsverify", "--tlscacert", &file("ca.crt")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server with TLS")
}

#[tokio::test]
async fn runtime_reaches_a_tls_nats_with_the_mounted_ca_and_client_certificate() -> Result<()> {
    confab_e2e::install_crypto();
    let dir = tempfile::tempdir()?;
    pki(dir.path())?;
    let port = portpicker::pick_unused_port().context("no free port")?;
    let mut server = tls_server(dir.path(), port)?;
    let config = |tls_dir: Option<&Path>| NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        credentials_file: None,
        token_file: None,
        tls_dir: tls_dir.map(|d| d.display().to_string()),
        cache_replicas: 1,
    };
    // A connection counts once a round trip to the server completes.
    let flushed = async |config: NatsConfig| -> Result<bool> {
        let (client, _) = connect::nats(&config, "tls-test").await?;
        Ok(matches!(
            timeout(Duration::from_secs(3), client.flush()).await,
            Ok(Ok(()))
        ))
    };
    let secret = dir.path().join("secret");
    let with = flushed(config(Some(&secret))).await;
    // The same Secret without its client pair: the CA alone is not enough here.
    let ca_only = dir.path().join("ca-only");
    std::fs::create_dir(&ca_only)?;
    std::fs::copy(secret.join(TLS_CA_KEY), ca_only.join(TLS_CA_KEY))?;
    let without_pair = flushed(config(Some(&ca_only))).await;
    let plain = flushed(config(None)).await;
    server.kill()?;
    server.wait()?;
    assert!(
        with?,
        "the mounted CA and client certificate open the connection"
    );
    assert!(!without_pair?, "no client certificate, no connection");
    assert!(!plain?, "no TLS, no connection");
    Ok(())
}
