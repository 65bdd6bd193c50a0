//! The operator's control API (`crds/proto/control.proto`) on every runtime
//! pod. On a shard it drives the ownership core: each ring step is applied,
//! persisted (a NATS key-value record) and only then acknowledged; chats a
//! step moves are flushed out of the sequencer's cache. A gateway reports
//! its status and drains (its sessions leave, spread out); it learns rings
//! from the shards' answers. Every call passes the [`Gate`]: the operator's
//! bearer token, from a mounted Secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use confab_api::control::control_server::{Control, ControlServer};
use confab_api::control::{
    AbortRingReply, AbortRingRequest, CommitRingReply, CommitRingRequest, DrainReply, DrainRequest,
    LatencyBucket, PrepareRingReply, PrepareRingRequest, Ring as WireRing, StatusReply,
    StatusRequest,
};
use confab_api::ring::{Ring, ShardId};
use tonic::{Request, Response, Status};

use super::monotonic_now;
use crate::cluster::{Ownership, OwnershipError};
use crate::metrics::{Latency, Metrics};
use crate::node::Node;
use crate::shard::Shard;
use crate::shard::remote::NatsShardClient;

/// A ring from its wire form, checked.
pub fn ring_from_wire(w: Option<WireRing>) -> Result<Ring, Status> {
    let w = w.ok_or_else(|| Status::invalid_argument("ring is required"))?;
    if w.version != Ring::VERSION {
        return Err(Status::invalid_argument(format!(
            "ring version {} is unknown to this build (it knows {})",
            w.version,
            Ring::VERSION
        )));
    }
    let shards: Vec<ShardId> = w.shards.into_iter().map(ShardId).collect();
    Ring::new(w.epoch, &shards, w.vnodes_per_shard)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// `Drain`'s deadline when the request leaves it at 0.
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

fn deadline(req: &DrainRequest) -> Duration {
    match req.deadline_ms {
        0 => DEFAULT_DRAIN,
        ms => Duration::from_millis(u64::from(ms)),
    }
}

/// A latency histogram in its wire form.
fn latency_buckets(latency: &Latency) -> Vec<LatencyBucket> {
    latency
        .buckets()
        .into_iter()
        .map(|(le_seconds, count)| LatencyBucket { le_seconds, count })
        .collect()
}

fn refused(e: OwnershipError) -> Status {
    Status::failed_precondition(e.to_string())
}

/// A shard's control service.
pub struct ShardControl {
    pub ownership: Arc<Mutex<Ownership>>,
    pub shard: Arc<Shard>,
    /// The process's metrics: `Status` reports the messages sequenced.
    pub metrics: Arc<Metrics>,
    /// Where the ownership record is persisted, and under which key.
    pub records: kv::Store,
    pub key: String,
}

impl ShardControl {
    async fn persist(&self) -> Result<(), Status> {
        super::records::persist(&self.records, &self.key, &self.ownership)
            .await
            .map_err(Status::unavailable)
    }
}

#[tonic::async_trait]
impl Control for ShardControl {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let s = self
            .ownership
            .lock()
            .expect("ownership lock")
            .status(monotonic_now());
        Ok(Response::new(StatusReply {
            role: "shard".into(),
            ring_epoch: s.ring_epoch,
            connections: 0,
            prepared_epoch: s.prepared_epoch,
            shard: s.shard.0,
            owned_chats: self.shard.cached().len() as u64,
            lease_held: s.lease_held,
            messages: self.metrics.messages.get(),
            send_latency: Vec::new(),
        }))
    }

    async fn prepare_ring(
        &self,
        req: Request<PrepareRingRequest>,
    ) -> Result<Response<PrepareRingReply>, Status> {
        let req = req.into_inner();
        let ring = ring_from_wire(req.ring)?;
        let handoff = self
            .ownership
            .lock()
            .expect("ownership lock")
            .prepare(ring, req.from_epoch)
            .map_err(refused)?;
        self.persist().await?;
        // Stopped already (the core refuses them); wait for commands in
        // flight on them to finish, so the store has all they wrote.
        let released = handoff.released(self.shard.cached());
        for chat in &released {
            self.shard.release(*chat).await;
        }
        tracing::info!(
            epoch = handoff.to().epoch(),
            released = released.len(),
            "ring prepared"
        );
        Ok(Response::new(PrepareRingReply {
            released_chats: released.len() as u64,
        }))
    }

    async fn commit_ring(
        &self,
        req: Request<CommitRingRequest>,
    ) -> Result<Response<CommitRingReply>, Status> {
        let epoch = req.into_inner().epoch;
        let handoff = self
            .ownership
            .lock()
            .expect("ownership lock")
            .commit(epoch)
            .map_err(refused)?;
        self.persist().await?;
        // State cached from an earlier ownership is stale: reload on use.
        let acquired = handoff.acquired(self.shard.cached());
        for chat in &acquired {
            self.shard.release(*chat).await;
        }
        tracing::info!(epoch, "ring committed");
        Ok(Response::new(CommitRingReply {
            acquired_chats: acquired.len() as u64,
        }))
    }

    async fn abort_ring(
        &self,
        req: Request<AbortRingRequest>,
    ) -> Result<Response<AbortRingReply>, Status> {
        let epoch = req.into_inner().epoch;
        let aborted = self.ownership.lock().expect("ownership lock").abort(epoch);
        if aborted {
            self.persist().await?;
            tracing::info!(epoch, "ring change aborted");
        }
        Ok(Response::new(AbortRingReply {}))
    }

    async fn drain(&self, req: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        let deadline = deadline(&req.into_inner());
        let remaining = super::shard::drain(&self.ownership, &self.shard, deadline).await as u64;
        Ok(Response::new(DrainReply { remaining }))
    }
}

/// A gateway's control service: status; rings reach gateways from shards.
pub struct GatewayControl {
    pub node: Arc<Node>,
    pub shards: Arc<NatsShardClient>,
}

#[tonic::async_trait]
impl Control for GatewayControl {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        Ok(Response::new(StatusReply {
            role: "gateway".into(),
            ring_epoch: self.shards.ring().epoch(),
            connections: self.node.connections() as u64,
            send_latency: latency_buckets(&self.node.metrics.send_latency),
            ..StatusReply::default()
        }))
    }

    async fn prepare_ring(
        &self,
        _: Request<PrepareRingRequest>,
    ) -> Result<Response<PrepareRingReply>, Status> {
        Err(Status::unimplemented(
            "gateways learn rings from the shards' answers",
        ))
    }

    async fn commit_ring(
        &self,
        _: Request<CommitRingRequest>,
    ) -> Result<Response<CommitRingReply>, Status> {
        Err(Status::unimplemented(
            "gateways learn rings from the shards' answers",
        ))
    }

    async fn abort_ring(
        &self,
        _: Request<AbortRingRequest>,
    ) -> Result<Response<AbortRingReply>, Status> {
        Err(Status::unimplemented(
            "gateways learn rings from the shards' answers",
        ))
    }

    /// Sessions leave at random moments within the first half of the
    /// deadline (devices reconnect elsewhere, spread out); the reply comes
    /// once none is left or the deadline passed.
    async fn drain(&self, req: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        let deadline = deadline(&req.into_inner());
        let remaining = self.node.drain_within(deadline / 2, deadline).await as u64;
        tracing::info!(remaining, "drained");
        Ok(Response::new(DrainReply { remaining }))
    }
}

/// Who may call the control API: holders of the token in `file` (read on
/// every call, so a rotated Secret applies without a restart), or anyone
/// when no file is configured (local processes; the operator always sets it).
#[derive(Clone, Debug)]
pub struct Gate {
    file: Option<PathBuf>,
}

impl Gate {
    pub fn new(file: Option<PathBuf>) -> Self {
        if file.is_none() {
            tracing::warn!(
                "control API unauthenticated: set {} to require a token",
                confab_api::config::CONTROL_TOKEN_FILE_ENV
            );
        }
        Gate { file }
    }

    /// Admits `request` if it carries `authorization: Bearer <token>`.
    fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(file) = &self.file else {
            return Ok(request);
        };
        let token = std::fs::read_to_string(file).map_err(|e| {
            tracing::error!(error = %e, file = %file.display(), "cannot read the control token");
            Status::unavailable("the control token cannot be read")
        })?;
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if same_secret(p, token.trim()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong control token")),
            None => Err(Status::unauthenticated(
                "the control API needs authorization: Bearer <token>",
            )),
        }
    }
}

/// Compares digests, so the time taken says nothing about the token.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    !b.is_empty() && Sha256::digest(a) == Sha256::digest(b)
}

/// Binds `addr` (failing the start when it cannot) and serves `service`
/// there, behind `gate`, until the process ends.
pub async fn spawn<S: Control>(addr: SocketAddr, gate: Gate, service: S) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the control API"))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = ControlServer::with_interceptor(service, move |r| gate.check(r));
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, %addr, "control API stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_api::control::control_client::ControlClient;

    /// Answers nothing: what matters is whether a call gets past the gate.
    struct Nothing;

    #[tonic::async_trait]
    impl Control for Nothing {
        async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
            Ok(Response::new(StatusReply::default()))
        }
        async fn prepare_ring(
            &self,
            _: Request<PrepareRingRequest>,
        ) -> Result<Response<PrepareRingReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn commit_ring(
            &self,
            _: Request<CommitRingRequest>,
        ) -> Result<Response<CommitRingReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn abort_ring(
            &self,
            _: Request<AbortRingRequest>,
        ) -> Result<Response<AbortRingReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn drain(&self, _: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
            Ok(Response::new(DrainReply { remaining: 0 }))
        }
    }

    async fn drain(addr: SocketAddr, token: Option<&str>) -> Result<(), tonic::Code> {
        let mut client = ControlClient::connect(format!("http://{addr}"))
            .await
            .expect("the control API listens");
        let mut request = Request::new(DrainRequest::default());
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().expect("ascii");
            request.metadata_mut().insert("authorization", value);
        }
        client
            .drain(request)
            .await
            .map(|_| ())
            .map_err(|s| s.code())
    }

    #[tokio::test]
    async fn only_the_token_in_the_mounted_file_passes_and_a_rotation_applies_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", portpicker::pick_unused_port().unwrap())
            .parse()
            .unwrap();
        spawn(addr, Gate::new(Some(file.clone())), Nothing)
            .await
            .unwrap();

        assert_eq!(drain(addr, None).await, Err(tonic::Code::Unauthenticated));
        assert_eq!(
            drain(addr, Some("guess")).await,
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            drain(addr, Some("")).await,
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(drain(addr, Some("s3cret")).await, Ok(()));

        std::fs::write(&file, "rotated").unwrap();
        assert_eq!(
            drain(addr, Some("s3cret")).await,
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(drain(addr, Some("rotated")).await, Ok(()));
    }

    #[tokio::test]
    async fn an_empty_token_file_admits_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "").unwrap();
        let gate = Gate::new(Some(file));
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(
            gate.check(request).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
