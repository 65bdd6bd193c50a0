//! The runtime's gRPC control API, behind a small trait so the scaling plan's
//! driver can be tested (and run in e2e) without chat-runtime pods.
//!
//! [`GrpcControl`] is the real client (tonic, one short-lived channel per
//! call, bounded by a timeout, presenting the cluster's control token).
//! [`Recording`] is the test implementation: it answers every call and
//! records the ring steps and drains, in order; its `Status` answers the
//! load a test sets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use confab_api::control::control_client::ControlClient;
use confab_api::control::{
    AbortRingRequest, CommitRingRequest, DrainRequest, PrepareRingRequest, Ring as WireRing,
    StatusReply, StatusRequest,
};
use confab_api::ring::Ring;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::core::autoscale::PodReport;

/// A runtime pod's control endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Namespace of the ChatCluster.
    pub namespace: String,
    /// Its name.
    pub cluster: String,
    /// The shard ordinal (0 for a gateway).
    pub shard: u32,
    /// `host:port` of its control API.
    pub address: String,
    /// The bearer token the runtime requires (empty: send none).
    pub token: String,
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "runtime control API not available at {address}: {source} \
         (chat-runtime may not serve it yet, or the pod is not up)"
    )]
    Unavailable {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("runtime at {address} does not implement {rpc} yet; upgrade chat-runtime")]
    NotImplemented { address: String, rpc: &'static str },
    #[error("{rpc} to {address} failed: {code:?}: {message}")]
    Rejected {
        address: String,
        rpc: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("invalid control address {0}")]
    Address(String),
}

/// The operator's view of the control API. Every call is idempotent.
#[async_trait]
pub trait ControlApi: Send + Sync {
    /// The pod's role, ring epoch and load.
    async fn status(&self, target: &Target) -> Result<PodReport, ControlError>;
    /// Phase one of a ring change; answers released chats.
    async fn prepare_ring(
        &self,
        target: &Target,
        ring: &Ring,
        from_epoch: u64,
    ) -> Result<u64, ControlError>;
    /// Phase two; answers acquired chats.
    async fn commit_ring(&self, target: &Target, epoch: u64) -> Result<u64, ControlError>;
    /// Drops a prepared ring.
    async fn abort_ring(&self, target: &Target, epoch: u64) -> Result<(), ControlError>;
    /// Stops taking work before removal; answers what is still held.
    async fn drain(&self, target: &Target, deadline: Duration) -> Result<u64, ControlError>;
}

/// The tonic client.
#[derive(Clone, Debug)]
pub struct GrpcControl {
    /// Bound on connecting and on each call.
    pub timeout: Duration,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl GrpcControl {
    async fn client(
        &self,
        target: &Target,
    ) -> Result<ControlClient<InterceptedService<Channel, Bearer>>, ControlError> {
        let bearer = match target.token.as_str() {
            "" => None,
            token => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ControlError::Address(format!("{}: token", target.address)))?,
            ),
        };
        let endpoint = Endpoint::from_shared(format!("http://{}", target.address))
            .map_err(|_| ControlError::Address(target.address.clone()))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ControlError::Unavailable {
                address: target.address.clone(),
                source,
            })?;
        Ok(ControlClient::with_interceptor(channel, Bearer(bearer)))
    }
}

fn status_error(target: &Target, rpc: &'static str, status: tonic::Status) -> ControlError {
    match status.code() {
        tonic::Code::Unimplemented => ControlError::NotImplemented {
            address: target.address.clone(),
            rpc,
        },
        code => ControlError::Rejected {
            address: target.address.clone(),
            rpc,
            code,
            message: status.message().to_string(),
        },
    }
}

/// The wire form of a ring.
pub fn wire_ring(ring: &Ring) -> WireRing {
    WireRing {
        version: Ring::VERSION,
        epoch: ring.epoch(),
        shards: ring.shards().iter().map(|s| s.0).collect(),
        vnodes_per_shard: ring.vnodes_per_shard(),
    }
}

/// A `Status` reply as the autoscaler reads it.
pub fn report(reply: StatusReply) -> PodReport {
    PodReport {
        messages: reply.messages,
        connections: reply.connections,
        latency: reply
            .send_latency
            .iter()
            .map(|b| (b.le_seconds, b.count))
            .collect(),
        ring_epoch: reply.ring_epoch,
        owned_chats: reply.owned_chats,
        lease_held: reply.lease_held,
    }
}

#[async_trait]
impl ControlApi for GrpcControl {
    async fn status(&self, target: &Target) -> Result<PodReport, ControlError> {
        let reply = self.client(target).await?.status(StatusRequest {}).await;
        Ok(report(
            reply
                .map_err(|s| status_error(target, "Status", s))?
                .into_inner(),
        ))
    }

    async fn prepare_ring(
        &self,
        target: &Target,
        ring: &Ring,
        from_epoch: u64,
    ) -> Result<u64, ControlError> {
        let request = PrepareRingRequest {
            ring: Some(wire_ring(ring)),
            from_epoch,
        };
        let reply = self.client(target).await?.prepare_ring(request).await;
        Ok(reply
            .map_err(|s| status_error(target, "PrepareRing", s))?
            .into_inner()
            .released_chats)
    }

    async fn commit_ring(&self, target: &Target, epoch: u64) -> Result<u64, ControlError> {
        let reply = self
            .client(target)
            .await?
            .commit_ring(CommitRingRequest { epoch })
            .await;
        Ok(reply
            .map_err(|s| status_error(target, "CommitRing", s))?
            .into_inner()
            .acquired_chats)
    }

    async fn abort_ring(&self, target: &Target, epoch: u64) -> Result<(), ControlError> {
        let reply = self
            .client(target)
            .await?
            .abort_ring(AbortRingRequest { epoch })
            .await;
        reply.map_err(|s| status_error(target, "AbortRing", s))?;
        Ok(())
    }

    async fn drain(&self, target: &Target, deadline: Duration) -> Result<u64, ControlError> {
        let deadline_ms = u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX);
        let reply = self
            .client(target)
            .await?
            .drain(DrainRequest { deadline_ms })
            .await;
        Ok(reply
            .map_err(|s| status_error(target, "Drain", s))?
            .into_inner()
            .remaining)
    }
}

/// One recorded control call: `(rpc, cluster, shard, epoch, address)`;
/// `epoch` is 0 for `Drain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub rpc: &'static str,
    pub cluster: String,
    pub shard: u32,
    pub epoch: u64,
    /// Where the call went (a gateway's calls have shard 0).
    pub address: String,
}

/// A control API that answers every call and records the ring steps and
/// drains. For tests, and for e2e scenarios on pods that run no runtime.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    calls: Arc<Mutex<Vec<Call>>>,
    load: Arc<Mutex<Load>>,
}

/// The load a [`Recording`] reports: every shard sequences `sends` per
/// second; every gateway holds `connections`.
#[derive(Clone, Debug, Default)]
struct Load {
    sends: f64,
    since: Option<Instant>,
    /// Messages counted at `since`.
    counted: f64,
    connections: u64,
}

impl Load {
    fn messages(&self, now: Instant) -> f64 {
        let elapsed = self.since.map_or(0.0, |s| (now - s).as_secs_f64());
        self.counted + self.sends * elapsed
    }
}

impl Recording {
    /// From now on every shard reports `sends` messages per second.
    pub fn set_sends_per_shard(&self, sends: f64) {
        let mut load = self.load.lock().expect("recording lock");
        let now = Instant::now();
        load.counted = load.messages(now);
        load.since = Some(now);
        load.sends = sends;
    }

    /// From now on every gateway reports `connections` open.
    pub fn set_connections_per_gateway(&self, connections: u64) {
        self.load.lock().expect("recording lock").connections = connections;
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("recording lock").clone()
    }

    fn record(&self, rpc: &'static str, target: &Target, epoch: u64) {
        let call = Call {
            rpc,
            cluster: target.cluster.clone(),
            shard: target.shard,
            epoch,
            address: target.address.clone(),
        };
        self.calls.lock().expect("recording lock").push(call);
    }
}

#[async_trait]
impl ControlApi for Recording {
    async fn status(&self, _: &Target) -> Result<PodReport, ControlError> {
        let load = self.load.lock().expect("recording lock");
        Ok(PodReport {
            messages: load.messages(Instant::now()) as u64,
            connections: load.connections,
            ..PodReport::default()
        })
    }

    async fn prepare_ring(
        &self,
        target: &Target,
        ring: &Ring,
        _from: u64,
    ) -> Result<u64, ControlError> {
        self.record("PrepareRing", target, ring.epoch());
        Ok(0)
    }

    async fn commit_ring(&self, target: &Target, epoch: u64) -> Result<u64, ControlError> {
        self.record("CommitRing", target, epoch);
        Ok(0)
    }

    async fn abort_ring(&self, target: &Target, epoch: u64) -> Result<(), ControlError> {
        self.record("AbortRing", target, epoch);
        Ok(())
    }

    async fn drain(&self, target: &Target, _deadline: Duration) -> Result<u64, ControlError> {
        self.record("Drain", target, 0);
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_api::ring::ShardId;

    fn target() -> Target {
        Target {
            namespace: "prod".into(),
            cluster: "chat".into(),
            shard: 0,
            // Port 1 on loopback: nothing listens, the connection is refused.
            address: "127.0.0.1:1".into(),
            token: "t".into(),
        }
    }

    #[tokio::test]
    async fn unreachable_runtime_is_a_clear_not_available_error() {
        let control = GrpcControl {
            timeout: Duration::from_secs(2),
        };
        let err = control.commit_ring(&target(), 2).await.unwrap_err();
        assert!(matches!(err, ControlError::Unavailable { .. }), "{err:?}");
        assert!(
            err.to_string().contains("not available at 127.0.0.1:1"),
            "{err}"
        );
    }

    #[test]
    fn wire_ring_carries_the_inputs() {
        let ring = Ring::new(7, &[ShardId(2), ShardId(0)], 16).unwrap();
        let wire = wire_ring(&ring);
        assert_eq!(
            (wire.epoch, wire.shards.clone(), wire.vnodes_per_shard),
            (7, vec![0, 2], 16)
        );
    }
}
