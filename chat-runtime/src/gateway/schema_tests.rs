//! The checked-in schema is current; every JSON example of docs/protocol.md
//! validates against the definition its fence names; and for everything a
//! client sends, the schema accepts exactly what serde accepts.

use std::path::PathBuf;

use super::*;
use crate::gateway::bodies::json as rest_json;

const DOC: &str = include_str!("../../../docs/protocol.md");

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/protocol.json")
}

#[test]
fn the_checked_in_schema_is_current() {
    let fresh = protocol_text();
    if std::env::var_os("CONFAB_UPDATE_SCHEMA").is_some() {
        std::fs::write(checked_in(), &fresh).unwrap();
    }
    let file = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        file == fresh,
        "docs/schema/protocol.json is stale; regenerate it with\n  \
         CONFAB_UPDATE_SCHEMA=1 cargo test -p chat-runtime --lib gateway::schema"
    );
}

/// The definition a fence's tag names: ```json client / server / push, or
/// ```json rest NAME for a REST body.
fn definition(tag: &str) -> String {
    match tag {
        "client" => "ClientFrame".into(),
        "server" => "ServerFrame".into(),
        "push" => "PushNotification".into(),
        rest => match rest.strip_prefix("rest ") {
            Some(name) => name.trim().into(),
            None => panic!("```json {tag}: tag a JSON example client, server, push or rest NAME"),
        },
    }
}

/// Every ```json example of the doc: (definition, example).
fn examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in DOC.lines() {
        match &mut open {
            None => {
                if let Some(tag) = line.trim().strip_prefix("```json") {
                    open = Some((definition(tag.trim()), String::new()));
                }
            }
            Some((_, text)) if line.trim() != "```" => {
                text.push_str(line);
                text.push('\n');
            }
            Some(_) => {
                let (def, text) = open.take().expect("an open fence");
                let value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{def} example is not JSON ({e}):\n{text}"));
                out.push((def, value));
            }
        }
    }
    out
}

fn validator(def: &str) -> jsonschema::Validator {
    let mut root = protocol();
    assert!(root["$defs"].get(def).is_some(), "no definition `{def}`");
    root["$ref"] = json!(format!("#/$defs/{def}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the schema of {def} does not compile: {e}"))
}

#[test]
fn every_doc_example_validates() {
    let all = examples();
    let count = |def: &str| all.iter().filter(|(d, _)| d == def).count();
    assert!(
        count("ClientFrame") >= 18,
        "every client frame has an example"
    );
    assert!(
        count("ServerFrame") >= 18,
        "every server frame has an example"
    );
    for (def, example) in &all {
        let v = validator(def);
        let errors: Vec<String> = v.iter_errors(example).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{def} example {example}: {errors:?}");
    }
}

/// Whether serde reads `v` as the input `def` names; `None` for outputs.
fn serde_reads(def: &str, v: &Value) -> Option<bool> {
    let bytes = v.to_string().into_bytes();
    Some(match def {
        "ClientFrame" => serde_json::from_slice::<ClientFrame>(&bytes).is_ok(),
        "RegisterBody" => rest_json::<Register>(&bytes).is_ok(),
        "LoginBody" => rest_json::<Login>(&bytes).is_ok(),
        "SendBody" => rest_json::<SendBody>(&bytes).is_ok(),
        "ReceiptsBody" => rest_json::<Watermark>(&bytes).is_ok(),
        "DirectBody" => rest_json::<Direct>(&bytes).is_ok(),
        "GroupBody" => rest_json::<Group>(&bytes).is_ok(),
        "JoinBody" => rest_json::<Join>(&bytes).is_ok(),
        "AddMemberBody" => rest_json::<AddMember>(&bytes).is_ok(),
        "DeviceBody" => rest_json::<DeviceBody>(&bytes).is_ok(),
        _ => return None,
    })
}

/// `v` with each field in turn left out, set to null or to a string, and
/// with a field no type has.
fn variants(v: &Value) -> Vec<Value> {
    let Value::Object(fields) = v else {
        return vec![v.clone()];
    };
    let mut out = vec![v.clone()];
    for name in fields.keys() {
        for replacement in [None, Some(Value::Null), Some(json!("x"))] {
            let mut changed = fields.clone();
            match replacement {
                None => changed.remove(name),
                Some(r) => changed.insert(name.clone(), r),
            };
            out.push(Value::Object(changed));
        }
    }
    let mut extra = fields.clone();
    extra.insert("unheard_of".into(), json!(1));
    out.push(Value::Object(extra));
    out
}

/// Inputs with no example in the doc: REST bodies as the tables show them.
fn more_inputs() -> Vec<(String, Value)> {
    let user = "0191e3a0-0000-7000-8000-000000000002";
    [
        ("DirectBody", json!({"phone": "+15550000002"})),
        ("GroupBody", json!({"title": "Climbing", "members": [user]})),
        ("JoinBody", json!({"invite": "Vq3xN0pL8dW2sYk5HbT7aQ"})),
        ("AddMemberBody", json!({"user_id": user})),
        ("ReceiptsBody", json!({"delivered": 42, "read": 40})),
        ("DeviceBody", json!({"platform": "fcm", "token": "t"})),
        (
            "SendBody",
            json!({"client_msg_id": "c-1", "kind": "file", "media_id": "ab", "body": ""}),
        ),
    ]
    .into_iter()
    .map(|(d, v)| (d.to_owned(), v))
    .collect()
}

#[test]
fn the_schema_accepts_exactly_what_serde_reads() {
    let mut checked = 0;
    for (def, example) in examples().into_iter().chain(more_inputs()) {
        if serde_reads(&def, &example).is_none() {
            continue;
        }
        let v = validator(&def);
        for input in variants(&example) {
            let serde = serde_reads(&def, &input).expect("an input");
            assert_eq!(
                v.is_valid(&input),
                serde,
                "{def}: schema and serde disagree on {input}"
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} inputs checked");
}
