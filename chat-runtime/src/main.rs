//! `chat-runtime` command line.

use std::path::PathBuf;

use anyhow::Context;
use chat_runtime::node::Limits;
use chat_runtime::standalone;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Confab chat server")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Everything in one process: embedded store, in-process bus, one shard.
    Standalone {
        /// Address for WebSocket (/v1/ws), REST (/v1), /healthz, /readyz, /metrics.
        #[arg(long, env = "CONFAB_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Directory for the store and the token signing key.
        #[arg(long, env = "CONFAB_DATA_DIR", default_value = "confab-data")]
        data_dir: PathBuf,
        /// Lifetime of login tokens, in seconds.
        #[arg(long, env = "CONFAB_TOKEN_TTL", default_value_t = 7 * 24 * 3600)]
        token_ttl: i64,
        /// Most open WebSocket sessions.
        #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
        max_connections: usize,
        /// Sustained frames per second per user.
        #[arg(long, env = "CONFAB_RATE", default_value_t = Limits::default().rate_per_sec)]
        rate: u32,
        /// Burst of frames per user above the sustained rate.
        #[arg(long, env = "CONFAB_BURST", default_value_t = Limits::default().burst)]
        burst: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .json()
        .init();
    let Args { role } = Args::parse();
    match role {
        Role::Standalone {
            listen,
            data_dir,
            token_ttl,
            max_connections,
            rate,
            burst,
        } => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let config = standalone::Config {
                data_dir,
                token_ttl_secs: token_ttl,
                limits: Limits {
                    max_connections,
                    rate_per_sec: rate,
                    burst,
                    ..Limits::default()
                },
            };
            standalone::serve(config, listener, shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: sessions are told to reconnect");
}
