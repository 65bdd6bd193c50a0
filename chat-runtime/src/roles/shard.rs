//! `chat-runtime shard`: sequences the chats the ring gives it. Commands
//! arrive over NATS ([`crate::shard::remote`]); each is admitted only while
//! the ownership core says this shard may sequence its chat (committed ring,
//! no change moving it, a live lease). The control API moves rings.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream;
use confab_api::ring::ShardId;
use uuid::Uuid;

use super::lease::{self, LeaseTimes};
use super::{connect, control, monotonic_now, records};
use crate::bus::nats::NatsBus;
use crate::cluster::{NotOwner, Ownership, OwnershipRecord};
use crate::metrics::Metrics;
use crate::shard::remote::{self, Answer, Gate};
use crate::shard::wire::Version;
use crate::shard::{Command, Shard};

/// What a shard process is told.
#[derive(Clone, Debug)]
pub struct ShardArgs {
    pub config: std::path::PathBuf,
    pub ordinal: u32,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub listen: SocketAddr,
    /// The control API.
    pub control_listen: SocketAddr,
    /// The control token's file (see [`control::Gate`]).
    pub control_token_file: Option<std::path::PathBuf>,
    /// Highest gateway↔shard wire version to speak.
    pub wire: Version,
    pub lease_ttl: Duration,
}

/// Asks the ownership core again right before each write (after the
/// command's admission, a ring change may have stopped the chat or the
/// lease lapsed).
fn claim(ownership: Arc<Mutex<Ownership>>) -> crate::shard::Claim {
    Arc::new(move |chat| {
        let own = ownership.lock().expect("ownership lock");
        own.may_sequence(chat, monotonic_now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Admits commands by the ownership core.
struct OwnershipGate(Arc<Mutex<Ownership>>);

impl Gate for OwnershipGate {
    fn admit(&self, command: &Command) -> Result<(), Answer> {
        let own = self.0.lock().expect("ownership lock");
        let now = monotonic_now();
        let Some(chat) = command.chat() else {
            // Creating a chat: this shard mints an id it owns; it needs to
            // be in the ring, not draining, and leased.
            let s = own.status(now);
            return if s.lease_held && !s.draining && own.committed().contains(own.shard()) {
                Ok(())
            } else {
                Err(Answer::Retry {
                    reason: "this shard cannot create chats now".into(),
                })
            };
        };
        match own.may_sequence(chat, now) {
            // The store keeps no per-chat fence yet (docs/cluster.md §10):
            // the conditional insert is what keeps a chat's log whole.
            Ok(_fence) => Ok(()),
            Err(NotOwner::WrongShard { .. }) => Err(Answer::Moved {
                ring: own.committed().clone(),
            }),
            Err(other) => Err(Answer::Retry {
                reason: other.to_string(),
            }),
        }
    }
}

/// Ids of new chats: ones the committed ring gives to this shard.
fn minter(ownership: Arc<Mutex<Ownership>>) -> crate::shard::Minter {
    Arc::new(move || {
        let own = ownership.lock().expect("ownership lock");
        let me = own.shard();
        // Each try lands on `me` with probability 1/N.
        (0..10_000)
            .map(|_| Uuid::now_v7())
            .find(|id| own.committed().owner(*id) == me)
            .unwrap_or_else(Uuid::now_v7)
    })
}

/// Longest a shard leaving on SIGTERM waits for in-flight writes.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Stops sequencing every chat and flushes them: each cached chat is
/// released once its in-flight write is answered; what is still cached when
/// `deadline` passes is counted, not waited for.
pub async fn drain(ownership: &Mutex<Ownership>, shard: &Shard, deadline: Duration) -> usize {
    ownership.lock().expect("ownership lock").drain();
    let release = async {
        for chat in shard.cached() {
            shard.release(chat).await;
        }
    };
    let _ = tokio::time::timeout(deadline, release).await;
    let remaining = shard.cached().len();
    tracing::info!(remaining, "drained");
    remaining
}

/// Runs the shard until `shutdown` resolves; then drains and releases its
/// lease, so its next incarnation (a rolling update) takes over at once.
pub async fn run(
    args: ShardArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let config = connect::load(&args.config)?;
    let me = ShardId(args.ordinal);
    let name = format!("{}-shard-{}", config.cluster, me.0);
    let (nats, _) = connect::nats(&config.nats, &name).await?;
    let js = jetstream::new(nats.clone());
    let store = connect::store(&config.store).await?;
    let bus = Arc::new(NatsBus::with_prefix(
        nats.clone(),
        connect::user_prefix(&config),
    ));

    let replicas = config.nats.cache_replicas as usize;
    let records = records::bucket(&js, &config.cluster, replicas).await?;
    let key = format!("shard-{}", me.0);
    let ownership = match records
        .get(&key)
        .await
        .context("reading the ownership record")?
    {
        Some(bytes) => {
            let record: OwnershipRecord =
                serde_json::from_slice(&bytes).context("a corrupt ownership record")?;
            tracing::info!(
                epoch = record.committed.epoch(),
                "resuming from the ownership record"
            );
            Ownership::recover(record)
        }
        None => Ownership::new(me, config.ring.clone()),
    };
    let ownership = Arc::new(Mutex::new(ownership));
    let metrics = Arc::new(Metrics::new());
    let sessions = connect::sessions(&nats, &config, "shard").await?;
    let queue = connect::push_queue(&nats, &config).await?;
    let shard = Arc::new(
        Shard::with_minter(store, bus, metrics.clone(), minter(ownership.clone()))
            .with_push(queue, sessions)
            .with_claim(claim(ownership.clone())),
    );
    // A ring committed while this shard was down comes first: no lease is
    // taken under a ring the cluster has left behind.
    records::Follower {
        records: records.clone(),
        key: key.clone(),
        ownership: ownership.clone(),
        shard: shard.clone(),
    }
    .start()
    .await?;
    let times = LeaseTimes::new(args.lease_ttl);
    let leases = lease::bucket(&js, &config.cluster, times, replicas).await?;
    let lease = lease::keep(leases, key.clone(), name.clone(), times, ownership.clone());
    control::spawn(
        args.control_listen,
        control::Gate::new(args.control_token_file.clone()),
        control::ShardControl {
            ownership: ownership.clone(),
            shard: shard.clone(),
            metrics: metrics.clone(),
            records,
            key,
        },
    )
    .await?;
    let prefix = connect::shard_prefix(&config);
    let gate = Arc::new(OwnershipGate(ownership.clone()));
    let inbox = tokio::spawn({
        let (nats, shard) = (nats.clone(), shard.clone());
        let wire = args.wire;
        async move { remote::serve(nats, &prefix, me, wire, shard, gate).await }
    });
    tracing::info!(shard = me.0, listen = %args.listen, control = %args.control_listen, "shard serving");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Err(e) =
        confab_probes::serve(listener, probes(ownership.clone(), metrics), shutdown).await
    {
        tracing::warn!(error = %e, "the operational endpoints stopped");
    }
    drain(&ownership, &shard, SHUTDOWN_DRAIN).await;
    lease.release().await;
    inbox.abort();
    Ok(())
}

/// `/healthz` (alive), `/readyz` (holds its lease), `/metrics`.
fn probes(ownership: Arc<Mutex<Ownership>>, metrics: Arc<Metrics>) -> axum::Router {
    let ready = move || {
        let s = ownership
            .lock()
            .expect("ownership lock")
            .status(monotonic_now());
        if s.lease_held && !s.draining {
            Ok(())
        } else {
            Err("no lease")
        }
    };
    confab_probes::router(ready, move || metrics.render())
}
