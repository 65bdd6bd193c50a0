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
        assert_eq!(rules(node)[0], "has(self.external) != has(self.managed)");
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

/// Every `(path, node)` of the schema, paths like `spec.shards.count`.
fn nodes(node: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    out.push((path.to_string(), node.clone()));
    let children = ["properties", "additionalProperties", "items"];
    for key in children {
        match &node[key] {
            Value::Object(map) if key == "properties" => {
                for (name, child) in map {
                    nodes(child, format!("{path}.{name}").trim_start_matches('.'), out);
                }
            }
            child @ Value::Object(_) => nodes(child, &format!("{path}[]"), out),
            _ => {}
        }
    }
}

fn all_nodes() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    nodes(&schema(), "", &mut out);
    out
}

fn node(path: &str) -> Value {
    all_nodes()
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no {path} in the schema"))
        .1
}

#[test]
fn no_format_the_api_server_would_warn_about() {
    for (path, node) in all_nodes() {
        if let Some(format) = node.get("format") {
            assert!(
                ["int32", "int64", "date-time"].contains(&format.as_str().unwrap()),
                "{path}: format {format}"
            );
        }
    }
    let vnodes = node("spec.shards.vnodesPerShard");
    assert_eq!(vnodes.get("format"), None);
    assert_eq!(vnodes["minimum"], 1.0);
    let epoch = node("status.ring.epoch");
    assert_eq!(
        (epoch.get("format"), &epoch["minimum"]),
        (None, &json!(0.0))
    );
}

#[test]
fn bounds_are_openapi_so_kubectl_explain_shows_them() {
    let count = node("spec.shards.count");
    assert_eq!(
        (&count["minimum"], &count["maximum"]),
        (&json!(1.0), &json!(256.0))
    );
    assert_eq!(node("spec.shards.vnodesPerShard")["maximum"], 4096.0);
    assert_eq!(
        node("spec.gateway.topologySpread.topologyKey")["minLength"],
        1
    );
    assert_eq!(node("spec.scylla.managed.image")["minLength"], 1);
    assert_eq!(node("spec.scylla.external.contactPoints[]")["minLength"], 1);
}

#[test]
fn quantities_are_int_or_string_with_the_quantity_pattern() {
    let mut paths = vec![
        "spec.nats.managed.storage".to_string(),
        "spec.scylla.managed.storage".to_string(),
    ];
    for role in ["gateway", "shard", "notifier", "nats", "scylla"] {
        for part in ["limits", "requests"] {
            paths.push(format!("spec.resources.{role}.{part}[]"));
        }
    }
    for path in paths {
        let q = node(&path);
        assert_eq!(q["x-kubernetes-int-or-string"], true, "{path}");
        assert_eq!(q["pattern"], admission::QUANTITY_PATTERN, "{path}");
    }
    for role in ["gateway", "shard", "notifier", "nats", "scylla"] {
        let r = node(&format!("spec.resources.{role}"));
        assert!(messages(&r)[0].contains("limit must not be below its request"));
    }
    assert!(messages(&node("spec.nats.managed.storage"))[0].contains("above zero"));
}

#[test]
fn secret_names_are_dns_subdomains() {
    let paths = [
        "spec.nats.external.credentialsSecret",
        "spec.nats.external.tls.secretName",
        "spec.gateway.tls.secretName",
        "spec.scylla.external.credentialsSecret",
        "spec.scylla.external.tls.secretName",
        "spec.media.buckets[].credentialsSecret",
        "spec.push.fcm.name",
        "spec.push.apns.key.name",
        "spec.auth.signingKeySecret",
    ];
    for path in paths {
        let n = node(path);
        assert_eq!(n["maxLength"], 253, "{path}");
        assert!(rules(&n)[0].starts_with("self.matches("), "{path}");
        assert!(messages(&n)[0].contains("must be a Secret name"), "{path}");
    }
}

#[test]
fn urls_are_checked() {
    let endpoint = node("spec.media.buckets[].endpoint");
    assert!(rules(&endpoint)[0].contains("isURL(self)"));
    let url = node("spec.nats.external.url");
    assert_eq!(rules(&url), vec![admission::NATS_URLS_RULE]);
}

#[test]
fn the_name_fits_every_child() {
    let root = schema();
    let rule = rules(&root);
    assert_eq!(rule[0], "self.metadata.name.size() <= 45");
    assert!(rule[1].contains("^[a-z]([-a-z0-9]*[a-z0-9])?$"));
    // `<name>-scylla-<revision hash>` is the longest label value a child carries.
    let name = "a".repeat(admission::MAX_NAME_LENGTH);
    assert_eq!(format!("{name}-scylla-{}", u32::MAX).len(), 63);
}

#[test]
fn immutable_fields_have_transition_rules() {
    let immutable = [
        (
            "spec.shards.vnodesPerShard",
            "shards.vnodesPerShard is immutable",
        ),
        (
            "spec.scylla.external.keyspace",
            "scylla.external.keyspace is immutable",
        ),
        ("spec.nats", "nats: switching between external and managed"),
        (
            "spec.scylla",
            "scylla: switching between external and managed",
        ),
        ("spec.nats.managed", "nats.managed.storage is immutable"),
        ("spec.scylla.managed", "scylla.managed.storage is immutable"),
    ];
    for (path, message) in immutable {
        let n = node(path);
        let found = rules(&n)
            .iter()
            .zip(messages(&n))
            .any(|(r, m)| r.contains("oldSelf") && m.starts_with(message));
        assert!(found, "{path}: no transition rule saying {message:?}");
    }
}

#[test]
fn tolerations_are_checked_where_pods_would_refuse_them() {
    let t = node("spec.scheduling.tolerations");
    assert_eq!(t["maxItems"], 64);
    assert_eq!(messages(&t).len(), 4);
}
