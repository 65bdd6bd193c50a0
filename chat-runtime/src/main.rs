//! `chat-runtime` command line.

use std::path::PathBuf;

use anyhow::Context;
use chat_runtime::gateway::tls::TlsFiles;
use chat_runtime::node::Limits;
use chat_runtime::shard::wire::{self, Version};
use chat_runtime::{roles, standalone};
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
        #[arg(long, env = "CONFAB_TOKEN_TTL", default_value_t = chat_runtime::auth::DEFAULT_TOKEN_TTL_SECS)]
        token_ttl: i64,
        /// Most open WebSocket sessions.
        #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
        max_connections: usize,
        /// Most open WebSocket sessions per user (all devices and tabs).
        #[arg(long, env = "CONFAB_MAX_SESSIONS_PER_USER", default_value_t = Limits::default().max_sessions_per_user)]
        max_sessions_per_user: usize,
        #[command(flatten)]
        clients: Clients,
        /// Sustained frames per second per user.
        #[arg(long, env = "CONFAB_RATE", default_value_t = Limits::default().rate_per_sec)]
        rate: u32,
        /// Burst of frames per user above the sustained rate.
        #[arg(long, env = "CONFAB_BURST", default_value_t = Limits::default().burst)]
        burst: u32,
        /// Largest media upload to the local media folder, in bytes.
        #[arg(long, env = "CONFAB_MEDIA_MAX_BYTES", default_value_t = standalone::DEFAULT_MAX_MEDIA_BYTES)]
        media_max_bytes: u64,
        /// JSON file with a list of media buckets (the cluster config's
        /// `media` entries), replacing the local media folder.
        #[arg(long, env = "CONFAB_MEDIA_BUCKETS")]
        media_buckets: Option<PathBuf>,
        /// Seconds between media retention sweeps.
        #[arg(long, env = "CONFAB_MEDIA_SWEEP_SECS", default_value_t = 300)]
        media_sweep_secs: u64,
        /// JSON file with push settings (the cluster config's `push` entry:
        /// FCM service account, APNs key, webhooks).
        #[arg(long, env = "CONFAB_PUSH_CONFIG")]
        push_config: Option<PathBuf>,
        /// Lets devices register webhook (UnifiedPush) endpoints for push.
        #[arg(long, env = "CONFAB_PUSH_WEBHOOKS")]
        push_webhooks: bool,
        /// Development only: webhook endpoints may also be plain http and
        /// private addresses (loopback, LAN), refused otherwise.
        #[arg(long, env = "CONFAB_PUSH_ALLOW_HTTP")]
        push_allow_http: bool,
        #[command(flatten)]
        tls: Tls,
    },
    /// Cluster edge: WebSocket, REST and media; commands go to shards over NATS.
    Gateway {
        #[command(flatten)]
        pod: Pod,
        /// Most open WebSocket sessions; newcomers above it are refused (4001).
        #[arg(long, env = confab_api::config::MAX_CONNECTIONS_ENV, default_value_t = Limits::default().max_connections)]
        max_connections: usize,
        #[command(flatten)]
        clients: Clients,
        /// Seconds between media retention sweeps.
        #[arg(long, env = "CONFAB_MEDIA_SWEEP_SECS", default_value_t = 300)]
        media_sweep_secs: u64,
        #[command(flatten)]
        tls: Tls,
    },
    /// Cluster sequencer of the chats the ring gives this shard.
    Shard {
        #[command(flatten)]
        pod: Pod,
        /// This shard's ordinal; default: the suffix of the pod name
        /// (`<cluster>-shard-<ordinal>`).
        #[arg(long, env = "CONFAB_SHARD")]
        ordinal: Option<u32>,
        /// Lease lifetime in milliseconds: a shard that stops renewing
        /// holds its chats at most this long.
        #[arg(long, env = "CONFAB_LEASE_MS", default_value_t = 10_000)]
        lease_ms: u64,
    },
    /// Cluster push worker: delivers queued push jobs to FCM, APNs and webhooks.
    Notifier {
        #[command(flatten)]
        pod: Pod,
    },
}

/// Limits per client address, and who may say which address a client has.
#[derive(clap::Args)]
struct Clients {
    /// Most open WebSocket sessions per client address.
    #[arg(long, env = "CONFAB_MAX_SESSIONS_PER_ADDRESS", default_value_t = Limits::default().max_sessions_per_address)]
    max_sessions_per_address: usize,
    /// Accounts one client address may register per minute.
    #[arg(long, env = "CONFAB_SIGNUPS_PER_MINUTE", default_value_t = Limits::default().signups_per_minute)]
    signups_per_minute: u32,
    /// Comma-separated networks of proxies (ingress, load balancer) whose
    /// X-Forwarded-For header names the client, e.g. 10.0.0.0/8.
    #[arg(long, env = confab_api::config::TRUSTED_PROXIES_ENV, value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl Clients {
    fn limits(self, limits: Limits) -> Limits {
        Limits {
            max_sessions_per_address: self.max_sessions_per_address,
            signups_per_minute: self.signups_per_minute,
            trusted_proxies: self.trusted_proxies,
            ..limits
        }
    }
}

/// What every cluster pod is told (the operator sets these variables).
#[derive(clap::Args)]
struct Pod {
    /// The cluster config file.
    #[arg(long, env = confab_api::config::CONFIG_ENV, default_value = confab_api::config::CONFIG_PATH)]
    config: PathBuf,
    /// HTTP address (the gateway's WebSocket/REST; every role's /healthz, /readyz, /metrics).
    #[arg(long, env = "CONFAB_LISTEN", default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// The control API's address.
    #[arg(long, env = "CONFAB_CONTROL_LISTEN", default_value = "0.0.0.0:9090")]
    control_listen: std::net::SocketAddr,
    /// File holding the control API's bearer token; without it the control
    /// API takes calls from anyone who can reach it.
    #[arg(long, env = confab_api::config::CONTROL_TOKEN_FILE_ENV)]
    control_token_file: Option<PathBuf>,
    /// Highest gateway↔shard wire version to speak (1: JSON, 2:
    /// MessagePack); peers agree on the highest both speak, so this only
    /// pins a process lower (e.g. to stand in for an older build).
    #[arg(long, env = "CONFAB_WIRE_MAX", default_value = "2", value_parser = wire_version)]
    wire_max: Version,
}

fn wire_version(s: &str) -> Result<Version, String> {
    s.parse::<u8>().ok().and_then(Version::new).ok_or_else(|| {
        format!(
            "{s:?} is not a wire version this build speaks (1..={})",
            wire::LATEST.number()
        )
    })
}

/// The listener's own TLS (otherwise plain HTTP: terminate TLS in front).
#[derive(clap::Args)]
struct Tls {
    /// PEM certificate chain to serve HTTPS / wss:// with; re-read when it
    /// changes, no restart needed.
    #[arg(long, env = confab_api::config::TLS_CERT_ENV, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = confab_api::config::TLS_KEY_ENV, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Tls {
    fn files(self) -> Option<TlsFiles> {
        let Self { tls_cert, tls_key } = self;
        Some(TlsFiles {
            cert: tls_cert?,
            key: tls_key?,
        })
    }
}

/// The ordinal at the end of a pod name such as `chat-shard-2`.
fn ordinal_of(pod: &str) -> Option<u32> {
    pod.rsplit('-').next()?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_runtime::install_crypto();
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
            max_sessions_per_user,
            clients,
            rate,
            burst,
            media_max_bytes,
            media_buckets,
            media_sweep_secs,
            push_config,
            push_webhooks,
            push_allow_http,
            tls,
        } => {
            let mut push: confab_api::config::PushConfig = match push_config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a push config", path.display()))?
                }
                None => Default::default(),
            };
            push.webhooks |= push_webhooks;
            push.allow_http_webhooks |= push_allow_http;
            let media = match media_buckets {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a list of buckets", path.display()))?
                }
                None => vec![standalone::local_bucket(&data_dir, media_max_bytes)],
            };
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let config = standalone::Config {
                data_dir,
                token_ttl_secs: token_ttl,
                limits: clients.limits(Limits {
                    max_connections,
                    max_sessions_per_user,
                    rate_per_sec: rate,
                    burst,
                    ..Limits::default()
                }),
                media,
                sweep_every: std::time::Duration::from_secs(media_sweep_secs.max(1)),
                push,
                tls: tls.files(),
            };
            standalone::serve(config, listener, shutdown_signal()).await
        }
        Role::Gateway {
            pod,
            max_connections,
            clients,
            media_sweep_secs,
            tls,
        } => {
            let args = roles::gateway::GatewayArgs {
                config: pod.config,
                listen: pod.listen,
                control_listen: pod.control_listen,
                control_token_file: pod.control_token_file,
                wire: pod.wire_max,
                limits: clients.limits(Limits {
                    max_connections,
                    ..Limits::default()
                }),
                sweep_every: std::time::Duration::from_secs(media_sweep_secs.max(1)),
                tls: tls.files(),
            };
            roles::gateway::run(args, shutdown_signal()).await
        }
        Role::Shard {
            pod,
            ordinal,
            lease_ms,
        } => {
            let pod_name = std::env::var(confab_api::config::POD_NAME_ENV).unwrap_or_default();
            let ordinal = ordinal.or_else(|| ordinal_of(&pod_name)).context(
                "no shard ordinal: pass --ordinal or set CONFAB_POD_NAME to <cluster>-shard-<n>",
            )?;
            let args = roles::shard::ShardArgs {
                config: pod.config,
                ordinal,
                listen: pod.listen,
                control_listen: pod.control_listen,
                control_token_file: pod.control_token_file,
                wire: pod.wire_max,
                lease_ttl: std::time::Duration::from_millis(lease_ms.max(1000)),
            };
            roles::shard::run(args, shutdown_signal()).await
        }
        Role::Notifier { pod } => {
            let args = roles::notifier::NotifierArgs {
                config: pod.config,
                listen: pod.listen,
            };
            roles::notifier::run(args, shutdown_signal()).await
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
