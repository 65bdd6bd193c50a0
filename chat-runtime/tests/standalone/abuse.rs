//! Abuse limits seen from outside: each test floods one door and checks the
//! typed refusal, that nothing extra was stored, and that the server still
//! answers everyone else.

use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn rest_mutations_share_the_websocket_budget() {
    let limits = Limits {
        rate_per_sec: 1,
        burst: 10,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let mallory = server.user("+15550000171", "Mallory").await;
    let victim = server.user("+15550000172", "Victim").await;
    // Mallory tries to put the victim into 30 groups over REST.
    let (mut created, mut refused) = (0, Vec::new());
    let started = std::time::Instant::now();
    for i in 0..30 {
        let (status, body) = server
            .post(
                "/v1/groups",
                Some(&mallory.token),
                json!({"title": format!("spam {i}"), "members": [victim.id]}),
            )
            .await;
        match status {
            201 => created += 1,
            429 => refused.push(body),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!(
        created <= 10 + refilled,
        "the burst, then one a second: {created}"
    );
    assert!(!refused.is_empty());
    for body in &refused {
        assert_eq!(body["code"], "rate_limited", "{body}");
        assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    }
    // Only what went through exists.
    let (status, chats) = server.get("/v1/chats", &victim.token).await;
    assert_eq!(status, 200, "{chats}");
    assert_eq!(chats.as_array().unwrap().len(), created);
    // The same budget holds on the WebSocket: switching doors buys nothing.
    let mut socket = server.connect(&mallory).await;
    for i in 0..3 {
        socket
            .send(json!({"type": "create_group", "req_id": format!("g{i}"), "title": "more", "members": []}))
            .await;
    }
    let (mut answered, mut limited) = (0, 0);
    while answered < 3 {
        match socket.next().await {
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, ErrorCode::RateLimited);
                (answered, limited) = (answered + 1, limited + 1);
            }
            ServerFrame::Chat { .. } => answered += 1,
            _ => {}
        }
    }
    assert!(limited > 0, "the REST flood spent the budget");
    // Everyone else is served.
    let (status, _) = server.get("/v1/chats", &victim.token).await;
    assert_eq!(status, 200);
    server.stop().await;
}
