//! Status: conditions for each situation, transition times, phase, patch.

use super::*;
use crate::core::desired;
use crate::core::fixtures::{cluster, observed, ring, with_ring, with_shards};
use confab_api::cluster::PendingRing;
use confab_api::cluster::RingPhase;
use k8s_openapi::jiff::SignedDuration;

fn cond<'a>(s: &'a ChatClusterStatus, t: &str) -> (&'a str, &'a str) {
    let c = s.condition(t).unwrap_or_else(|| panic!("no {t}"));
    (c.status.as_str(), c.reason.as_str())
}

#[test]
fn healthy_cluster_is_available_and_stable() {
    let cc = with_ring(with_shards(3), ring(1, &[0, 1, 2]));
    let s = desired(&cc, &observed(3)).status;
    assert_eq!(cond(&s, "Available"), ("True", "AllServing"));
    assert_eq!(cond(&s, "Progressing"), ("False", "Stable"));
    assert_eq!(cond(&s, "Degraded"), ("False", "AllReady"));
    assert_eq!(cond(&s, "RingStable"), ("True", "Committed"));
    assert_eq!(s.phase, Some(Phase::Running));
    let shards = s.shards.unwrap();
    assert_eq!((shards.desired, shards.ready, shards.replicas), (3, 3, 3));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        s.endpoints.unwrap().websocket,
        "ws://chat-gateway.prod.svc:80/v1/ws"
    );
}

#[test]
fn conditions_come_in_a_fixed_order() {
    let cc = with_ring(cluster(), ring(1, &[0]));
    let s = desired(&cc, &observed(1)).status;
    let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, confab_api::cluster::CONDITION_TYPES);
}

#[test]
fn failed_over_shard_degrades_but_keeps_the_rest_available() {
    let cc = with_ring(with_shards(3), ring(2, &[0, 2]));
    let mut obs = observed(3);
    obs.shard_pods[1].ready = false;
    obs.shard_pods[1].since = Some(obs.now - SignedDuration::from_secs(120));
    let s = desired(&cc, &obs).status;
    assert_eq!(cond(&s, "Available"), ("True", "AllServing"));
    assert_eq!(cond(&s, "Degraded"), ("True", "ShardsFailedOver"));
    assert!(s.condition("Degraded").unwrap().message.contains("[1]"));
    assert_eq!(s.ring.unwrap().failed_over, vec![1]);
    assert_eq!(s.phase, Some(Phase::Degraded));
}

#[test]
fn not_ready_ring_member_makes_the_cluster_unavailable() {
    let mut cc = with_ring(with_shards(2), ring(1, &[0, 1]));
    cc.status.as_mut().unwrap().phase = Some(Phase::Running);
    let mut obs = observed(2);
    obs.shard_pods[0].ready = false;
    obs.shard_pods[0].since = Some(obs.now);
    let s = desired(&cc, &obs).status;
    assert_eq!(cond(&s, "Available"), ("False", "ShardsNotReady"));
    assert_eq!(cond(&s, "Degraded"), ("True", "ShardsNotReady"));
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(s.shards.unwrap().ready, 1);
}

#[test]
fn new_cluster_is_provisioning_until_available() {
    let cc = cluster();
    let mut obs = observed(0);
    obs.gateways_ready = 0;
    let s = desired(&cc, &obs).status;
    assert_eq!(s.phase, Some(Phase::Provisioning));
    assert_eq!(cond(&s, "Available").0, "False");
    assert_eq!(cond(&s, "Progressing"), ("True", "Bootstrapping"));
}

#[test]
fn scaling_shows_in_phase_ring_stable_and_progressing() {
    let mut cc = with_ring(with_shards(3), ring(1, &[0, 1, 2]));
    cc.status.as_mut().unwrap().phase = Some(Phase::Running);
    cc.spec.shards.count = 4;
    let s = desired(&cc, &observed(3)).status;
    assert_eq!(cond(&s, "Progressing"), ("True", "WaitingForPods"));
    assert_eq!(cond(&s, "RingStable"), ("False", "RingChangeNeeded"));
    assert_eq!(s.phase, Some(Phase::Scaling));

    let mut r = ring(1, &[0, 1, 2]);
    r.pending = Some(PendingRing {
        epoch: 2,
        members: vec![0, 1, 2, 3],
        phase: RingPhase::Prepared,
    });
    let cc = with_ring(cc, r);
    let d = desired(&cc, &observed(4));
    assert_eq!(cond(&d.status, "Progressing"), ("True", "CommittingRing"));
    // Reported as it will be once the commit is acknowledged.
    assert_eq!(d.status.ring.unwrap().epoch, 2);
    assert_eq!(d.ring.pending.unwrap().phase, RingPhase::Committing);
}

#[test]
fn paused_is_reported() {
    let mut cc = with_ring(cluster(), ring(1, &[0]));
    cc.spec.paused = true;
    let s = desired(&cc, &observed(1)).status;
    assert_eq!(s.phase, Some(Phase::Paused));
    assert_eq!(cond(&s, "Progressing"), ("False", "Paused"));
}

#[test]
fn transition_time_moves_only_when_status_flips() {
    let cc = with_ring(cluster(), ring(1, &[0]));
    let first = desired(&cc, &observed(1)).status;
    let mut cc = cc;
    cc.status = Some(first.clone());
    let mut later = observed(1);
    later.now += SignedDuration::from_secs(600);
    let same = desired(&cc, &later).status;
    assert_eq!(same.condition("Available"), first.condition("Available"));
    later.gateways_ready = 0;
    let flipped = desired(&cc, &later).status;
    let c = flipped.condition("Available").unwrap();
    assert_eq!(
        (c.status.as_str(), c.last_transition_time.0),
        ("False", later.now)
    );
}

#[test]
fn make_patch_applies_status_only_when_changed() {
    let mut cc = with_ring(cluster(), ring(1, &[0]));
    cc.metadata.resource_version = Some("42".into());
    let new = desired(&cc, &observed(1)).status;
    let Some(Patch::Apply(body)) = make_patch(&cc, &new) else {
        panic!("expected a patch")
    };
    assert_eq!(body["apiVersion"], "confab.dev/v1alpha1");
    assert_eq!(body["kind"], "ChatCluster");
    assert_eq!(body["status"]["phase"], "Running");
    assert_eq!(
        body["metadata"]["resourceVersion"], "42",
        "stale writes are refused"
    );
    cc.status = Some(new.clone());
    assert!(make_patch(&cc, &new).is_none());
}

#[test]
fn external_endpoint_once_the_load_balancer_has_an_address() {
    let cc = with_ring(cluster(), ring(1, &[0]));
    let mut obs = observed(1);
    obs.gateway_ingress = Some("203.0.113.7".into());
    let s = desired(&cc, &obs).status;
    assert_eq!(
        s.endpoints.unwrap().external_websocket.as_deref(),
        Some("ws://203.0.113.7:80/v1/ws")
    );
}

#[test]
fn endpoints_say_wss_and_https_when_the_gateways_serve_tls() {
    let mut cc = with_ring(cluster(), ring(1, &[0]));
    cc.spec.gateway.tls = Some(confab_api::cluster::TlsSecretRef {
        secret_name: "chat-example-com".into(),
    });
    let mut obs = observed(1);
    obs.gateway_ingress = Some("203.0.113.7".into());
    let endpoints = desired(&cc, &obs).status.endpoints.unwrap();
    assert_eq!(endpoints.websocket, "wss://chat-gateway.prod.svc:80/v1/ws");
    assert_eq!(endpoints.rest, "https://chat-gateway.prod.svc:80/v1");
    assert_eq!(
        endpoints.external_websocket.as_deref(),
        Some("wss://203.0.113.7:80/v1/ws")
    );
}
