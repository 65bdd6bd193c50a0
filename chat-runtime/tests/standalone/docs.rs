//! Every example frame in docs/protocol.md (and the webhook push payload)
//! decodes as the type it documents.

use chat_runtime::protocol::{ClientFrame, ServerFrame, decode};

/// JSON examples: fenced blocks tagged `json client` or `json server`.
fn examples(kind: &str) -> Vec<String> {
    let doc = include_str!("../../../docs/protocol.md");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim() == format!("```json {kind}") => current = Some(String::new()),
            Some(buf) if line.trim() == "```" => {
                out.push(std::mem::take(buf));
                current = None;
            }
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn client_examples_decode_and_round_trip() {
    let all = examples("client");
    assert!(all.len() >= 14, "every client frame has an example");
    for text in all {
        let frame: ClientFrame = decode(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
        let again = serde_json::to_string(&frame).unwrap();
        assert_eq!(decode(again.as_bytes()).unwrap(), frame);
    }
}

#[test]
fn server_examples_decode_and_round_trip() {
    let all = examples("server");
    assert!(all.len() >= 15, "every server frame has an example");
    for text in all {
        let frame: ServerFrame =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&frame).unwrap(), value, "{text}");
    }
}

#[test]
fn the_webhook_example_is_a_notification() {
    let all = examples("push");
    assert_eq!(all.len(), 1, "one webhook payload example");
    let n: chat_runtime::push::Notification =
        serde_json::from_str(&all[0]).unwrap_or_else(|e| panic!("{e}: {}", all[0]));
    let value: serde_json::Value = serde_json::from_str(&all[0]).unwrap();
    assert_eq!(serde_json::to_value(&n).unwrap(), value);
}
