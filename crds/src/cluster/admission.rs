//! What the API server refuses beyond the shape of the types: the shared
//! patterns, limits and CEL rules, and the schema rewrites that put them in.
//!
//! Owns only schema text. Rules that concern one field stay beside that field
//! in [`super::components`]; the ones here are used by several fields, or
//! touch types we do not own (k8s-openapi's `Quantity` and
//! `ResourceRequirements`), so they are applied with `#[schemars(transform)]`.
//!
//! Every rule must run on the oldest API server the chart supports (1.30):
//! CEL's `isURL`/`url` (1.27) and `isQuantity`/`quantity` (1.29), and no
//! `format.*` library (1.31+).

use kube::core::{Message, Reason, Rule};
use schemars::Schema;
use serde_json::{Value, json};

/// Longest `ChatCluster` name. The longest child name is the managed
/// ScyllaDB StatefulSet `<name>-scylla` (7 characters of suffix), whose pods
/// carry `controller-revision-hash: <statefulset>-<hash of up to 10 digits>`,
/// a label value of at most 63 characters: 63 - 10 - 1 - 7 = 45.
pub const MAX_NAME_LENGTH: usize = 45;

/// Kubernetes' quantity syntax (`500m`, `2`, `1.5Gi`, `1e3`), the pattern
/// Kubernetes' own generators put on `resource.Quantity`.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// One entry of [`NATS_URLS_RULE`]: `[scheme://][user:password@]host[:port]`.
macro_rules! nats_url {
    () => {
        r"((nats|tls|ws|wss)://)?([^\s,/@]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?"
    };
}

/// A comma-separated list of NATS servers as the runtime's client takes them
/// (spaces around the commas are trimmed).
pub const NATS_URLS_RULE: &str = concat!(
    r"self.matches(r'^\s*",
    nats_url!(),
    r"(\s*,\s*",
    nats_url!(),
    r")*\s*$')"
);

/// A DNS-1123 subdomain: the syntax of a Secret's name.
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Formats the API server knows; any other one is warned about on every
/// apply (`unrecognized format "uint32"`), so it is dropped from the schema.
const KNOWN_FORMATS: [&str; 3] = ["int32", "int64", "date-time"];

/// The resources whose limit may not be below their request.
const COMPARED_RESOURCES: &str = "['cpu', 'memory', 'ephemeral-storage']";

/// Drops every `format` the API server does not recognise (schemars writes
/// `uint32`/`uint64` for unsigned integers, which already carry `minimum: 0`).
/// Applied to the spec and the status, recursively.
pub fn known_formats(schema: &mut Schema) {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let unknown = map
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| !KNOWN_FORMATS.contains(&f));
                if unknown {
                    map.remove("format");
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    edit(schema, walk);
}

/// A volume size (`Option<Quantity>`): int-or-string with the quantity
/// pattern, so `lots` is refused when applied, and above zero.
pub fn storage(schema: &mut Schema) {
    edit(schema, |value| {
        let node = non_null(value);
        add_quantity_pattern(node);
        add_rule(
            node,
            json!({
                "rule": "!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",
                "message": "storage must be a size above zero, e.g. 10Gi",
            }),
        );
    });
}

/// An `Option<ResourceRequirements>`: every request and limit is a
/// quantity, and a limit is not below its request.
pub fn resources(schema: &mut Schema) {
    edit(schema, resources_value);
}

fn resources_value(value: &mut Value) {
    let node = non_null(value);
    for part in ["limits", "requests"] {
        if let Some(values) = node.pointer_mut(&format!("/properties/{part}/additionalProperties"))
        {
            add_quantity_pattern(values);
        }
    }
    let q = |side: &str| format!("quantity(string(self.{side}[r]))");
    let valid = |side: &str| format!("isQuantity(string(self.{side}[r]))");
    let rule = format!(
        "!has(self.limits) || !has(self.requests) || {COMPARED_RESOURCES}.all(r, \
         !(r in self.limits) || !(r in self.requests) || !{} || !{} || {}.compareTo({}) >= 0)",
        valid("limits"),
        valid("requests"),
        q("limits"),
        q("requests"),
    );
    add_rule(
        node,
        json!({
            "rule": rule,
            "message": "a limit must not be below its request (cpu, memory, ephemeral-storage): the pods would be refused",
        }),
    );
}

/// A field naming a Secret (`String` or `Option<String>`): a DNS-1123
/// subdomain of at most 253 characters.
pub fn secret_name(schema: &mut Schema) {
    edit(schema, |value| {
        let node = non_null(value);
        node["maxLength"] = json!(253);
        add_rule(
            node,
            json!({
                "rule": format!("self.matches(r'{DNS_SUBDOMAIN}')"),
                "message": "must be a Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            }),
        );
    });
}

/// `metadata.name` is short enough for every child's name (a rule on the
/// root, the only place that can read `metadata.name`).
pub fn name_length_rule() -> Rule {
    Rule::new(format!("self.metadata.name.size() <= {MAX_NAME_LENGTH}"))
        .message(Message::Message(format!(
            "metadata.name must be at most {MAX_NAME_LENGTH} characters: the StatefulSet <name>-scylla and its pods' controller-revision-hash label must fit in 63"
        )))
        .reason(Reason::FieldValueInvalid)
}

/// `metadata.name` is a DNS-1035 label, which the children's Service names
/// (`<name>-gateway`) must be: no dot, no leading digit.
pub fn name_syntax_rule() -> Rule {
    Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must start with a lowercase letter and hold only lowercase letters, digits and '-' (no '.'): it prefixes the cluster's Service names")
        .reason(Reason::FieldValueInvalid)
}

/// Options are `anyOf: [T, null]` when `T` has no `type`; the rules go on `T`.
fn non_null(value: &mut Value) -> &mut Value {
    let has_branches = value.get("anyOf").is_some_and(Value::is_array);
    if !has_branches {
        return value;
    }
    let branches = value["anyOf"].as_array_mut().unwrap();
    let i = branches
        .iter()
        .position(|b| b.get("type") != Some(&json!("null")))
        .unwrap_or(0);
    &mut branches[i]
}

fn add_quantity_pattern(node: &mut Value) {
    node["x-kubernetes-int-or-string"] = json!(true);
    node["pattern"] = json!(QUANTITY_PATTERN);
    // Bounds the cost the API server estimates for CEL rules reading it.
    node["maxLength"] = json!(64);
}

fn add_rule(node: &mut Value, rule: Value) {
    let rules = node
        .as_object_mut()
        .expect("a schema object")
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    rules.as_array_mut().unwrap().push(rule);
}

/// Runs `f` on the schema as a JSON value.
fn edit(schema: &mut Schema, f: impl FnOnce(&mut Value)) {
    let mut value = std::mem::take(schema).to_value();
    f(&mut value);
    *schema = Schema::try_from(value).expect("a schema stays an object or a bool");
}
