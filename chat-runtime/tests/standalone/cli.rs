//! The command line: the development flag for push webhooks reaches the
//! server, and `--help` says what it does.

use std::process::Command;

use serde_json::json;

use crate::harness::spawn;

#[test]
fn standalone_help_describes_push_allow_http() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-runtime"))
        .args(["standalone", "--help"])
        .output()
        .expect("run chat-runtime");
    assert!(out.status.success());
    // Words, not lines: clap wraps the text to the terminal.
    let help = String::from_utf8(out.stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("--push-allow-http"), "{help}");
    assert!(help.contains("plain http and private addresses"), "{help}");
}

#[tokio::test]
async fn push_allow_http_lets_devices_register_plain_http_private_webhooks() {
    let device = json!({"platform": "webhook", "token": "http://127.0.0.1:9/push"});
    let cases: [(&[&str], u16); 2] = [
        (&["--push-webhooks"], 400),
        (&["--push-webhooks", "--push-allow-http"], 200),
    ];
    for (flags, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, server) = spawn(dir.path(), flags).await;
        let alice = server.user("+15550000161", "Alice").await;
        let status = server
            .http
            .put(server.url("/v1/devices/laptop"))
            .bearer_auth(&alice.token)
            .json(&device)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, expected, "{flags:?}");
    }
}
