//! confab-operator entry point: parse flags, connect, serve until SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use confab_operator::args::Args;
use confab_operator::shell::{self, control::GrpcControl};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .init();
    let (listen, settings, timeout) = Args::parse().into_parts();
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client config")?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let control = Arc::new(GrpcControl { timeout });
    shell::run(
        client,
        listener,
        settings,
        control,
        confab_operator::shutdown_signal(),
    )
    .await?;
    Ok(())
}
