//! `chat-runtime gateway`: the WebSocket/HTTP edge of a cluster. Holds no
//! durable state: sessions subscribe to their user's NATS subject, commands
//! go to the owning shard over NATS, reads go to the store, media to the
//! configured buckets. A crash loses nothing: devices reconnect to another
//! gateway and resume from their watermarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{connect, control};
use crate::auth::{DEFAULT_TOKEN_TTL_SECS, TokenKeys};
use crate::bus::nats::NatsBus;
use crate::gateway;
use crate::gateway::tls::{self, TlsFiles};
use crate::media::Media;
use crate::metrics::Metrics;
use crate::node::{Limits, Node, Seams};
use crate::push::DevicePolicy;
use crate::shard::remote::NatsShardClient;
use crate::shard::wire::Version;

/// On SIGTERM, sessions leave spread over this long (well inside the pod's
/// 30 s grace period) before the server stops.
const SHUTDOWN_SPREAD: Duration = Duration::from_secs(10);

/// What a gateway process is told.
#[derive(Clone, Debug)]
pub struct GatewayArgs {
    pub config: std::path::PathBuf,
    pub listen: SocketAddr,
    pub control_listen: SocketAddr,
    /// The control token's file (see [`control::Gate`]).
    pub control_token_file: Option<std::path::PathBuf>,
    /// Highest gateway↔shard wire version to speak.
    pub wire: Version,
    pub limits: Limits,
    pub sweep_every: Duration,
    /// Serve TLS with this certificate and key (reloaded when they change);
    /// none: plain HTTP, TLS terminated in front (an ingress).
    pub tls: Option<TlsFiles>,
}

/// Runs the gateway until `shutdown` resolves; then drains: sessions are
/// told to reconnect (close 1012) spread over [`SHUTDOWN_SPREAD`], so a
/// rolling update moves devices to the other gateways gradually.
pub async fn run(
    args: GatewayArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let config = connect::load(&args.config)?;
    let tls = args.tls.clone().map(tls::acceptor).transpose()?;
    let (nats, mut connections) =
        connect::nats(&config.nats, &format!("{}-gateway", config.cluster)).await?;
    let store = connect::store(&config.store).await?;
    let key = connect::signing_key(&config.auth.signing_key_file)?;
    let metrics = Arc::new(Metrics::new());
    let bus = Arc::new(NatsBus::with_prefix(
        nats.clone(),
        connect::user_prefix(&config),
    ));
    let shards = Arc::new(
        NatsShardClient::new(
            nats.clone(),
            connect::shard_prefix(&config),
            config.ring.clone(),
        )
        .with_wire_max(args.wire),
    );
    anyhow::ensure!(
        !config.media.is_empty(),
        "the cluster config names no media bucket"
    );
    let media = Arc::new(Media::from_config(
        store.clone(),
        &config.media,
        &key,
        metrics.clone(),
    )?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = media
        .clone()
        .spawn_sweeper(args.sweep_every, stop_rx.clone());
    let sessions = connect::sessions(&nats, &config, "gateway").await?;
    let seams = Seams {
        store,
        bus,
        sessions,
        shards: shards.clone(),
        media,
    };
    let node = Arc::new(
        Node::new(
            seams,
            TokenKeys::new(&key, DEFAULT_TOKEN_TTL_SECS),
            metrics,
            args.limits,
            stop_rx,
        )
        .with_devices(DevicePolicy::from_config(&config.push)),
    );
    // Events published while NATS was away are lost to the sessions here:
    // after a reconnect every session catches up from the store.
    tokio::spawn({
        let node = node.clone();
        async move {
            while connections.changed().await.is_ok() {
                if *connections.borrow_and_update() > 1 {
                    tracing::warn!("NATS reconnected: sessions catch up from the store");
                    node.resync_all();
                }
            }
        }
    });
    control::spawn(
        args.control_listen,
        control::Gate::new(args.control_token_file.clone()),
        control::GatewayControl {
            node: node.clone(),
            shards,
        },
    )
    .await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %args.listen, control = %args.control_listen, tls = tls.is_some(), "gateway serving");
    let draining = node.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("draining before shutdown");
        let deadline = SHUTDOWN_SPREAD + Duration::from_secs(1);
        draining.drain_within(SHUTDOWN_SPREAD, deadline).await;
    };
    gateway::server::serve_until(listener, tls, node, stop_tx, shutdown).await;
    // A sweep in flight still holds the store: let it finish, so the store
    // is closed when this returns (a restart in the same process reopens it).
    let _ = sweeper.await;
    Ok(())
}
