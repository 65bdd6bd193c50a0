//! Tests of the generated CRD: the rules, defaults, list-map keys, printer
//! columns and subresources a platform team relies on are really in it.

use super::*;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = serde_json::to_value(ChatCluster::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn spec_schema() -> Value {
    schema()["properties"]["spec"].clone()
}

/// The `x-kubernetes-validations` messages at `node`.
fn messages(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect()
}

fn rules(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn names_scope_and_short_name() {
    let crd = ChatCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("chatclusters.confab.dev")
    );
    assert_eq!(crd.spec.group, "confab.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["cc".to_string()]));
    assert_eq!(crd.spec.versions[0].name, "v1alpha1");
}

#[test]
fn printer_columns_tell_the_story() {
    let crd = ChatCluster::crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let got: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    let want = [
        ("Shards", ".spec.shards.count"),
        ("Ready", ".status.shards.ready"),
        ("Gateways", ".status.gatewaysReady"),
        ("Epoch", ".status.ring.epoch"),
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn status_and_scale_subresources() {
    let crd = serde_json::to_value(ChatCluster::crd()).unwrap();
    let sub = &crd["spec"]["versions"][0]["subresources"];
    assert_eq!(sub["status"], json!({}));
    assert_eq!(sub["scale"]["specReplicasPath"], ".spec.shards.count");
    assert_eq!(sub["scale"]["statusReplicasPath"], ".status.shards.ready");
    assert_eq!(sub["scale"]["labelSelectorPath"], ".status.shards.selector");
}

#[test]
fn shard_rules_and_defaults() {
    let shards = &spec_schema()["properties"]["shards"];
    assert_eq!(shards["default"]["count"], 1);
    assert_eq!(shards["default"]["vnodesPerShard"], 64);
    assert!(rules(shards).contains(&"self.count >= 1".to_string()));
    assert!(messages(shards).iter().any(|m| m.contains("at least 1")));
    let vnodes = &shards["properties"]["vnodesPerShard"];
    assert!(rules(vnodes).contains(&"self == oldSelf".to_string()));
    assert!(messages(vnodes).iter().any(|m| m.contains("immutable")));
}

#[test]
fn cache_rule_spans_nats_and_cache() {
    let spec = spec_schema();
    let rule = rules(&spec);
    assert_eq!(
        rule,
        vec!["!has(self.nats.managed) || self.cache.replicas <= self.nats.managed.replicas"]
    );
    assert!(messages(&spec)[0].contains("cache.replicas must not exceed"));
}

#[test]
fn nats_and_scylla_are_external_xor_managed_and_default_to_managed() {
    let spec = spec_schema();
    for part in ["nats", "scylla"] {
        let node = &spec["properties"][part];
        assert_eq!(rules(node), vec!["has(self.external) != has(self.managed)"]);
        assert!(messages(node)[0].contains("exactly one of external"));
        assert!(node["default"]["managed"].is_object(), "{part} default");
    }
    assert_eq!(
        spec["properties"]["nats"]["default"]["managed"]["replicas"],
        1
    );
}

#[test]
fn buckets_are_a_list_map_keyed_by_name_with_unique_names() {
    let buckets = &spec_schema()["properties"]["media"]["properties"]["buckets"];
    assert_eq!(buckets["x-kubernetes-list-type"], "map");
    assert_eq!(buckets["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(buckets["maxItems"], 16);
    assert_eq!(
        messages(buckets),
        vec!["media.buckets names must be unique"]
    );
    let item = &buckets["items"];
    assert_eq!(item["required"], json!(["name", "provider"]));
    assert_eq!(
        item["properties"]["provider"]["enum"],
        json!(["s3", "gcs", "azure", "filesystem"])
    );
    assert_eq!(item["properties"]["maxObjectBytes"]["default"], 16 << 20);
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    let required = conditions["items"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("type")));
}

#[test]
fn every_cel_rule_has_a_message() {
    fn walk(node: &Value, found: &mut usize) {
        if let Some(rules) = node["x-kubernetes-validations"].as_array() {
            for r in rules {
                assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
                *found += 1;
            }
        }
        match node {
            Value::Object(map) => map.values().for_each(|v| walk(v, found)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = 0;
    walk(&schema(), &mut found);
    assert!(found >= 8, "only {found} rules");
}

#[test]
fn minimal_spec_deserializes_with_defaults() {
    let cc: ChatCluster = serde_json::from_value(json!({
        "apiVersion": "confab.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": { "name": "chat", "namespace": "prod" },
        "spec": { "image": "chat-runtime:1" }
    }))
    .unwrap();
    assert_eq!(cc.spec.shards, ShardsSpec::default());
    assert_eq!(cc.spec.gateway.replicas, 1);
    assert!(cc.spec.nats.managed.is_some() && cc.spec.nats.external.is_none());
    assert!(!cc.spec.paused);
    assert_eq!(
        cc.in_cluster_ws_url("prod"),
        "ws://chat-gateway.prod.svc:80/v1/ws"
    );
}
