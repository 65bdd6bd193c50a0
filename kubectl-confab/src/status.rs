//! `kubectl confab status`: one ChatCluster at a glance — conditions, the
//! ring, every shard (pod, readiness, ring membership, the epoch and lease
//! it reported, its chats and sends/s), the gateways, the autoscaler and
//! the operator's last events — from the ChatCluster's status, its pods and
//! events. Pure rendering.

use std::fmt::Write;

use confab_api::cluster::{ChatClusterStatus, ScaleStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::{ROLE_LABEL, Snapshot, event_time};

/// Columns padded to their widest cell, two spaces apart, indented.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

fn role(pod: &Pod) -> &str {
    pod.labels().get(ROLE_LABEL).map_or("", String::as_str)
}

fn ready(pod: &Pod) -> &'static str {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    match (pod.metadata.deletion_timestamp.is_some(), ready) {
        (true, _) => "Terminating",
        (false, true) => "True",
        (false, false) => "False",
    }
}

/// The shard ordinal of a shard pod (`<cluster>-shard-<n>`).
fn ordinal(pod: &Pod) -> Option<u32> {
    pod.name_any().rsplit_once('-')?.1.parse().ok()
}

/// The whole report.
pub fn render(snapshot: &Snapshot) -> String {
    let cc = &snapshot.cluster;
    let status = cc.status.clone().unwrap_or_default();
    let mut out = String::new();
    let phase = status.phase.map_or("-".to_string(), |p| p.to_string());
    let _ = writeln!(
        out,
        "ChatCluster {}/{}  phase {phase}  image {}",
        cc.namespace().unwrap_or_default(),
        cc.name_any(),
        cc.spec.image
    );
    let _ = writeln!(
        out,
        "generation {}, observed {}{}",
        cc.metadata.generation.unwrap_or(0),
        status.observed_generation.unwrap_or(0),
        if cc.spec.paused { "; PAUSED" } else { "" }
    );
    conditions(&mut out, &status);
    ring(&mut out, &status);
    shards(&mut out, snapshot, &status);
    gateways(&mut out, snapshot, &status);
    autoscale(&mut out, &status);
    events(&mut out, snapshot);
    if let Some(e) = &status.endpoints {
        let _ = writeln!(
            out,
            "\nEndpoints\n  websocket  {}\n  rest       {}",
            e.websocket, e.rest
        );
        if let Some(x) = &e.external_websocket {
            let _ = writeln!(out, "  external   {x}");
        }
    }
    out
}

fn conditions(out: &mut String, status: &ChatClusterStatus) {
    let _ = writeln!(out, "\nConditions");
    let rows: Vec<Vec<String>> = status
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&rows));
}

fn ring(out: &mut String, status: &ChatClusterStatus) {
    let _ = writeln!(out, "\nRing");
    let Some(r) = &status.ring else {
        let _ = writeln!(out, "  none yet");
        return;
    };
    let moved = r.moved_fraction.as_ref().map_or(String::new(), |m| {
        format!("; the last change moved {m} of the chats")
    });
    let _ = writeln!(
        out,
        "  epoch {}: shards {:?}, {} vnodes per shard{moved}",
        r.epoch, r.members, r.vnodes_per_shard
    );
    match &r.pending {
        Some(p) => {
            let _ = writeln!(
                out,
                "  change in flight: epoch {} with shards {:?} ({:?})",
                p.epoch, p.members, p.phase
            );
        }
        None => {
            let _ = writeln!(out, "  no change in flight");
        }
    }
    if !r.failed_over.is_empty() {
        let _ = writeln!(out, "  failed over: shards {:?}", r.failed_over);
    }
}

fn shards(out: &mut String, snapshot: &Snapshot, status: &ChatClusterStatus) {
    let load = status.load.as_ref();
    let at = load.map_or(String::new(), |l| {
        format!(" (load read at {})", l.observed_at.0)
    });
    let _ = writeln!(out, "\nShards{at}");
    let members = status
        .ring
        .as_ref()
        .map(|r| r.members.clone())
        .unwrap_or_default();
    let mut rows = vec![
        [
            "SHARD", "POD", "READY", "IN RING", "EPOCH", "LEASE", "CHATS", "SENDS/S",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for pod in snapshot.pods.iter().filter(|p| role(p) == "shard") {
        let Some(n) = ordinal(pod) else { continue };
        let reported = load.and_then(|l| l.shards.iter().find(|s| s.ordinal == n));
        let dash = || "-".to_string();
        rows.push(vec![
            n.to_string(),
            pod.name_any(),
            ready(pod).into(),
            if members.contains(&n) { "yes" } else { "no" }.into(),
            reported.map_or_else(dash, |s| s.ring_epoch.to_string()),
            reported.map_or_else(dash, |s| if s.lease_held { "held" } else { "none" }.into()),
            reported.map_or_else(dash, |s| s.owned_chats.to_string()),
            reported.map_or_else(dash, |s| s.sends_per_second.to_string()),
        ]);
    }
    out.push_str(&table(&rows));
    if let Some(l) = load {
        let p99 = l
            .p99_send_millis
            .map_or("-".to_string(), |p| format!("{p} ms"));
        let _ = writeln!(
            out,
            "  total: {} sends/s, p99 send→ack {p99}",
            l.sends_per_second
        );
        for u in &l.unreachable {
            let _ = writeln!(out, "  did not answer: {u}");
        }
    }
}

fn gateways(out: &mut String, snapshot: &Snapshot, status: &ChatClusterStatus) {
    let connections = status.load.as_ref().map_or(String::new(), |l| {
        format!(
            ": {} connections on {} answering",
            l.connections, l.gateways
        )
    });
    let _ = writeln!(out, "\nGateways{connections}");
    let mut rows = vec![["POD", "READY", "IP"].map(String::from).to_vec()];
    for pod in snapshot.pods.iter().filter(|p| role(p) == "gateway") {
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        rows.push(vec![
            pod.name_any(),
            ready(pod).into(),
            ip.unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&table(&rows));
}

/// Events shown: the operator's last decisions about the ChatCluster.
const RECENT_EVENTS: usize = 8;

fn events(out: &mut String, snapshot: &Snapshot) {
    let name = snapshot.cluster.name_any();
    let about: Vec<_> = snapshot
        .events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&name))
        .collect();
    if about.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nRecent events");
    let skip = about.len().saturating_sub(RECENT_EVENTS);
    let rows: Vec<Vec<String>> = about[skip..]
        .iter()
        .map(|e| {
            vec![
                event_time(e).map_or("-".into(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(&rows));
}

fn autoscale(out: &mut String, status: &ChatClusterStatus) {
    let Some(a) = &status.autoscale else { return };
    let _ = writeln!(out, "\nAutoscale");
    let line = |out: &mut String, role: &str, s: &ScaleStatus| {
        let _ = write!(out, "  {role}: recommended {}", s.recommended);
        if let Some(h) = &s.holding {
            let _ = write!(out, "; holding: {h}");
        }
        if let (Some(t), Some(r)) = (&s.last_scale_time, &s.last_scale_reason) {
            let _ = write!(out, "; last step at {}: {r}", t.0);
        }
        out.push('\n');
    };
    if let Some(s) = &a.shards {
        line(out, "shards", s);
    }
    if let Some(s) = &a.gateway {
        line(out, "gateways", s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_api::cluster::ChatCluster;
    use serde_json::json;

    fn pod(name: &str, role: &str, ready: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { ROLE_LABEL: role } },
            "status": { "podIP": "10.0.0.7", "conditions": [{ "type": "Ready", "status": ready }] }
        }))
        .unwrap()
    }

    #[test]
    fn renders_ring_shards_load_and_autoscaler() {
        let mut cluster: ChatCluster = serde_json::from_value(json!({
            "apiVersion": "confab.dev/v1alpha1", "kind": "ChatCluster",
            "metadata": { "name": "chat", "namespace": "prod", "generation": 4 },
            "spec": { "image": "chat-runtime:1" },
            "status": {
                "observedGeneration": 4, "phase": "Running",
                "ring": { "epoch": 3, "members": [0, 1], "vnodesPerShard": 64,
                          "lastIssuedEpoch": 3, "movedFraction": "0.337" },
                "load": { "observedAt": "2026-12-08T01:00:00Z", "sendsPerSecond": 3000,
                          "p99SendMillis": 12, "connections": 1500, "gateways": 1,
                          "shards": [
                            { "ordinal": 0, "ringEpoch": 3, "ownedChats": 120, "leaseHeld": true, "sendsPerSecond": 1500 },
                            { "ordinal": 1, "ringEpoch": 3, "ownedChats": 80, "leaseHeld": true, "sendsPerSecond": 1500 }
                          ] },
                "autoscale": { "shards": { "recommended": 3,
                    "holding": "the load must call for 3 for 60 s before scaling up" } }
            }
        }))
        .unwrap();
        cluster.status.as_mut().unwrap().conditions.clear();
        let snapshot = Snapshot {
            cluster,
            pods: vec![
                pod("chat-gateway-5d-x", "gateway", "True"),
                pod("chat-shard-0", "shard", "True"),
                pod("chat-shard-1", "shard", "True"),
                pod("chat-shard-2", "shard", "False"),
            ],
            events: vec![
                serde_json::from_value(json!({
                    "metadata": { "name": "chat.1" },
                    "eventTime": "2026-12-08T01:00:01.000000Z",
                    "regarding": { "kind": "ChatCluster", "name": "chat" },
                    "type": "Normal", "reason": "AutoscaledShards",
                    "note": "2 → 3: 3130 sends/s at a target of 1000 per shard",
                    "reportingController": "confab-operator", "reportingInstance": "x",
                    "action": "AutoscaledShards3"
                }))
                .unwrap(),
            ],
        };
        let out = render(&snapshot);
        for line in [
            "ChatCluster prod/chat  phase Running  image chat-runtime:1",
            "  epoch 3: shards [0, 1], 64 vnodes per shard; the last change moved 0.337 of the chats",
            "  SHARD  POD           READY  IN RING  EPOCH  LEASE  CHATS  SENDS/S",
            "  0      chat-shard-0  True   yes      3      held   120    1500",
            "  2      chat-shard-2  False  no       -      -      -      -",
            "  total: 3000 sends/s, p99 send→ack 12 ms",
            "Gateways: 1500 connections on 1 answering",
            "  chat-gateway-5d-x  True   10.0.0.7",
            "  shards: recommended 3; holding: the load must call for 3 for 60 s before scaling up",
            "  2026-12-08T01:00:01Z  Normal  AutoscaledShards  2 → 3: 3130 sends/s at a target of 1000 per shard",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
    }
}
