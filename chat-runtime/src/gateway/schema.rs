//! The client protocol's JSON Schema: every WebSocket frame and REST body,
//! generated from the very types serde reads and writes, so it says what the
//! server does. `docs/schema/protocol.json` is its checked-in copy, from
//! which clients generate their types (`sdk/typescript`); the tests beside
//! this module fail when that copy is stale, and validate every JSON example
//! in `docs/protocol.md` against the definition its fence names.
//!
//! Owns only the list of types and how they are described; the types stay
//! where they are used.

use schemars::SchemaGenerator;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

use super::bodies::{
    AddMember, DeviceBody, Direct, Group, Join, Login, Register, SendBody, Watermark,
};
use crate::model::Device;
use crate::presence::Seen;
use crate::protocol::rest::{
    Devices, ErrorBody, HistoryPage, Invite, LinkView, SentView, Session, UploadView, UserView,
};
use crate::protocol::{ChatView, ClientFrame, ServerFrame};
use crate::push::Notification;

/// What clients send. The server decodes it, so it is described as serde
/// reads it: a field with a default may be left out.
fn inputs(g: &mut SchemaGenerator) {
    g.subschema_for::<ClientFrame>();
    g.subschema_for::<Register>();
    g.subschema_for::<Login>();
    g.subschema_for::<SendBody>();
    g.subschema_for::<Watermark>();
    g.subschema_for::<Direct>();
    g.subschema_for::<Group>();
    g.subschema_for::<Join>();
    g.subschema_for::<AddMember>();
    g.subschema_for::<DeviceBody>();
}

/// What the server sends, described as serde writes it: a field it always
/// writes is required, even one it would read as optional.
fn outputs(g: &mut SchemaGenerator) {
    g.subschema_for::<ServerFrame>();
    g.subschema_for::<ChatView>();
    g.subschema_for::<ErrorBody>();
    g.subschema_for::<Session>();
    g.subschema_for::<UserView>();
    g.subschema_for::<HistoryPage>();
    g.subschema_for::<SentView>();
    g.subschema_for::<Seen>();
    g.subschema_for::<Invite>();
    g.subschema_for::<Device>();
    g.subschema_for::<Devices>();
    g.subschema_for::<UploadView>();
    g.subschema_for::<LinkView>();
    g.subschema_for::<Notification>();
}

/// The whole schema: one definition (`$defs`) per frame family and body.
pub fn protocol() -> Value {
    let mut defs = definitions(Contract::Deserialize, inputs);
    for (name, schema) in definitions(Contract::Serialize, outputs) {
        // A type on both sides must read as it writes, or one name would
        // stand for two shapes.
        if let Some(other) = defs.insert(name.clone(), schema.clone()) {
            assert_eq!(other, schema, "`{name}` is read and written differently");
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Confab client protocol v1",
        "description": "Every WebSocket frame (ClientFrame, ServerFrame) and REST body of docs/protocol.md. Generated from the server's types by chat-runtime's schema tests; do not edit.",
        "$defs": defs,
    })
}

/// The definitions of the types `add` names, described under `contract`.
fn definitions(contract: Contract, add: fn(&mut SchemaGenerator)) -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.contract = contract;
    let mut g = settings.into_generator();
    add(&mut g);
    g.take_definitions(true)
}

/// The schema as checked in: pretty JSON with a final newline.
pub fn protocol_text() -> String {
    let mut text = serde_json::to_string_pretty(&protocol()).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
