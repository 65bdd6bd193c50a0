//! Bad input gets a typed error or a close code, never a panic or a lost message.

use std::time::Duration;

use chat_runtime::auth::TokenKeys;
use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, MAX_BODY_BYTES, MAX_FRAME_BYTES, ServerFrame};
use chat_runtime::standalone::signing_key;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, Server, WAIT};

async fn error_code(c: &mut Client) -> ErrorCode {
    c.until(|f| match f {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn malformed_unknown_invalid_and_oversize_frames() {
    let server = Server::start().await;
    let alice = server.user("+15550000101", "Alice").await;
    let bob = server.user("+15550000102", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    let cases = [
        (Message::text("{not json"), ErrorCode::BadFrame),
        (
            Message::text(r#"{"type":"warp_drive"}"#),
            ErrorCode::UnknownType,
        ),
        (
            Message::text(r#"{"type":"send","chat_id":"nope"}"#),
            ErrorCode::Invalid,
        ),
        (Message::binary(vec![1u8, 2, 3]), ErrorCode::BadFrame),
        (
            Message::text(" ".repeat(MAX_FRAME_BYTES + 1)),
            ErrorCode::TooLarge,
        ),
    ];
    for (msg, code) in cases {
        a.send_raw(msg).await;
        assert_eq!(error_code(&mut a).await, code);
    }
    // Unknown chat.
    let unknown = uuid::Uuid::new_v4();
    a.send(json!({"type":"send","chat_id":unknown,"client_msg_id":"u","body":"x"}))
        .await;
    assert_eq!(error_code(&mut a).await, ErrorCode::NotFound);
    // The connection still works and nothing was lost.
    assert_eq!(a.say(chat, "after", "still fine").await, 1);
    // Far beyond the limit, the WebSocket layer closes with 1009 (message too big).
    a.send_raw(Message::text("x".repeat(8 * MAX_FRAME_BYTES)))
        .await;
    assert_eq!(a.closed().await, 1009);
    server.stop().await;
}

/// A text body over 16 KiB in a frame under 64 KiB is a field out of range:
/// `invalid` on both APIs, naming the send; `too_large` is for whole frames
/// and bodies. One at the limit is stored.
#[tokio::test]
async fn an_over_long_text_body_is_invalid_on_both_apis() {
    let server = Server::start().await;
    let alice = server.user("+15550000141", "Alice").await;
    let bob = server.user("+15550000142", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let long = "x".repeat(MAX_BODY_BYTES + 1);
    let mut a = server.connect(&alice).await;
    a.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "long", "body": long}))
        .await;
    let refusal = a
        .until(|f| match f {
            ServerFrame::Error {
                client_msg_id,
                code,
                ..
            } => Some((client_msg_id.clone(), *code)),
            _ => None,
        })
        .await;
    assert_eq!(refusal, (Some("long".into()), ErrorCode::Invalid));
    let path = format!("/v1/chats/{chat}/messages");
    let (status, body) = server
        .post(
            &path,
            Some(&alice.token),
            json!({"client_msg_id": "long", "body": long}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid")));
    let full = "x".repeat(MAX_BODY_BYTES);
    assert_eq!(a.say(chat, "full", &full).await, 1);
    let (status, _) = server
        .post(
            &path,
            Some(&alice.token),
            json!({"client_msg_id": "full-rest", "body": full}),
        )
        .await;
    assert_eq!(status, 201);
    server.stop().await;
}

/// WebSocket ping control frames are answered with pongs but are not the
/// heartbeat: a device that sends nothing else is closed with 4002.
#[tokio::test]
async fn websocket_pings_are_answered_but_are_not_the_heartbeat() {
    let limits = Limits {
        heartbeat_ms: 200,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000151", "Alice").await;
    let mut a = server.connect(&alice).await;
    let mut pongs = 0;
    let mut ping = tokio::time::interval(Duration::from_millis(50));
    let pinging = async {
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    let _ = a.ws.send(Message::Ping(vec![7].into())).await;
                }
                msg = a.ws.next() => match msg {
                    Some(Ok(Message::Pong(_))) => pongs += 1,
                    Some(Ok(Message::Close(Some(c)))) => return u16::from(c.code),
                    Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 1006,
                    Some(Ok(_)) => {}
                },
            }
        }
    };
    let code = tokio::time::timeout(WAIT, pinging).await.expect("a close");
    assert_eq!(code, 4002, "closed for silence");
    assert!(pongs > 0, "pings are answered");
    server.stop().await;
}

#[tokio::test]
async fn bad_expired_and_revoked_tokens() {
    let server = Server::start().await;
    let alice = server.user("+15550000111", "Alice").await;
    // Garbage token: error frame then terminal close 4100.
    let mut c = Client::open(server.addr).await;
    c.send(json!({"type":"hello","token":"garbage"})).await;
    assert_eq!(error_code(&mut c).await, ErrorCode::Unauthenticated);
    assert_eq!(c.closed().await, 4100);
    // Expired token, signed with the server's own key.
    let key = signing_key(server.data_dir()).unwrap();
    let (expired, _) = TokenKeys::new(&key, -60).issue(alice.id);
    let mut c = Client::open(server.addr).await;
    c.send(json!({"type":"hello","token":expired})).await;
    assert_eq!(error_code(&mut c).await, ErrorCode::TokenExpired);
    assert_eq!(c.closed().await, 4100);
    let (status, body) = server.get("/v1/chats", &expired).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_expired"))
    );
    // A first frame other than hello, or a hello without its token.
    for first in [json!({"type":"ping"}), json!({"type":"hello"})] {
        let mut c = Client::open(server.addr).await;
        c.send(first).await;
        assert_eq!(error_code(&mut c).await, ErrorCode::Unauthenticated);
        assert_eq!(c.closed().await, 4100);
    }
    // Logout revokes the token for REST and WebSocket.
    let (status, _) = server
        .post("/v1/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/chats", &alice.token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
    let mut c = Client::open(server.addr).await;
    c.send(json!({"type":"hello","token":alice.token})).await;
    assert_eq!(error_code(&mut c).await, ErrorCode::TokenRevoked);
    assert_eq!(c.closed().await, 4103);
    // Wrong password and duplicate registration.
    let (status, body) = server
        .post(
            "/v1/login",
            None,
            json!({"phone": alice.phone, "password": "wrong-pass"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    let (status, body) = server
        .post(
            "/v1/register",
            None,
            json!({"phone": alice.phone, "display_name": "Again", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    server.stop().await;
}

#[tokio::test]
async fn rest_rejects_bad_bodies_with_typed_errors() {
    let server = Server::start().await;
    let alice = server.user("+15550000121", "Alice").await;
    let (status, body) = server
        .post(
            "/v1/register",
            None,
            json!({"phone": "12", "display_name": "x", "password": "longenough"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid")));
    let (status, body) = server
        .post(
            "/v1/groups",
            Some(&alice.token),
            json!({"title": "t", "bogus": 1}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid")));
    let resp = server
        .http
        .post(server.url("/v1/groups"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let big = "x".repeat(200 * 1024);
    let (status, body) = server
        .post("/v1/groups", Some(&alice.token), json!({"title": big}))
        .await;
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")));
    let (status, body) = server.get("/v1/chats", "not-a-token").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    // Receipts follow the WebSocket's rule: seqs start at 1.
    let bob = server.user("+15550000122", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    for receipt in [json!({"delivered": 0}), json!({})] {
        let (status, body) = server
            .post(
                &format!("/v1/chats/{chat}/receipts"),
                Some(&alice.token),
                receipt,
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid")));
    }
    server.stop().await;
}

#[tokio::test]
async fn floods_are_rate_limited_and_lose_nothing() {
    let limits = Limits {
        rate_per_sec: 20,
        burst: 10,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000131", "Alice").await;
    let bob = server.user("+15550000132", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    for i in 0..40 {
        a.send(
            json!({"type":"send","chat_id":chat,"client_msg_id":format!("f{i}"),"body":"flood"}),
        )
        .await;
    }
    let (mut acked, mut limited) = (Vec::new(), Vec::new());
    while acked.len() + limited.len() < 40 {
        match a.next().await {
            ServerFrame::Sent { client_msg_id, .. } => acked.push(client_msg_id),
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                client_msg_id: Some(id),
                retry_after_ms,
                ..
            } => {
                assert!(retry_after_ms.unwrap() > 0);
                limited.push(id);
            }
            _ => {}
        }
    }
    assert!(!limited.is_empty(), "a flood must be limited");
    // The client retries what was refused; every message ends up stored once.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for id in &limited {
        a.say(chat, id, "flood").await;
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    let (_, page) = server
        .get(&format!("/v1/chats/{chat}/messages?limit=100"), &bob.token)
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 40);
    server.stop().await;
}

#[tokio::test]
async fn connection_cap_hello_timeout_and_garbage_floods_close_with_codes() {
    let limits = Limits {
        max_connections: 2,
        hello_timeout_ms: 300,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000141", "Alice").await;
    let mut one = server.connect(&alice).await;
    let _two = server.connect(&alice).await;
    let mut three = Client::open(server.addr).await;
    assert_eq!(three.closed().await, 4001, "over the cap: try again later");
    // Too many undecodable frames in a row: protocol violation.
    for _ in 0..40 {
        one.send_raw(Message::text("garbage")).await;
    }
    assert_eq!(one.closed().await, 4102);
    // A connection that never says hello.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut silent = Client::open(server.addr).await;
    assert_eq!(silent.closed().await, 4101);
    server.stop().await;
}

/// Reads until the server closes the socket; answers how long that took
/// (`None` if it was still open after `wait`).
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_and_the_server_keeps_answering() {
    use tokio::io::AsyncWriteExt;
    let limits = Limits {
        header_timeout_ms: 500,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let wait = Duration::from_secs(5);
    // Slowloris: a request line, then a header byte now and then.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let dribble = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X-A: b\r\n").await.is_err() {
                break;
            }
        }
    };
    dribble.await;
    assert!(
        closed_within(&mut slow, wait).await.is_some(),
        "a request whose headers never end is cut off"
    );
    // A connection that never sends anything.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_within(&mut idle, wait).await.is_some(),
        "idle socket closed"
    );
    // Keep-alive after a request: idle again, closed again.
    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut kept, wait).await.is_some(),
        "idle keep-alive closed"
    );
    // Meanwhile the server answers everyone else.
    let (status, _) = server.get("/healthz", "").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_socket_that_never_spoke_does_not_keep_the_store_open_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), Limits::default()).await;
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await;
    // The store is single-writer: a new server opens it only once every
    // connection of the old one let go.
    let again = Server::start_in(dir.path(), Limits::default()).await;
    let (status, _) = again.get("/healthz", "").await;
    assert_eq!(status, 200);
    again.stop().await;
}

#[tokio::test]
async fn one_user_cannot_take_every_connection() {
    let limits = Limits {
        max_connections: 4,
        max_sessions_per_user: 2,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000151", "Alice").await;
    let bob = server.user("+15550000152", "Bob").await;
    let first = server.connect(&alice).await;
    let _second = server.connect(&alice).await;
    let mut third = Client::open(server.addr).await;
    third
        .send(json!({"type": "hello", "token": alice.token, "watermarks": {}}))
        .await;
    assert_eq!(third.closed().await, 4003, "over the per-user cap");
    // Someone else still gets in.
    let _bob = server.connect(&bob).await;
    // A session that ends gives its slot back.
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let mut c = Client::open(server.addr).await;
        c.send(json!({"type": "hello", "token": alice.token, "watermarks": {}}))
            .await;
        if matches!(c.next_or_closed().await, Ok(ServerFrame::Welcome { .. })) {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed slot is taken again");
    server.stop().await;
}

#[tokio::test]
async fn guessing_passwords_gets_slower_and_unknown_phones_look_the_same() {
    let server = Server::start().await;
    let alice = server.user("+15550000161", "Alice").await;
    let attempt = async |phone: &str, password: &str| {
        server
            .post(
                "/v1/login",
                None,
                json!({"phone": phone, "password": password}),
            )
            .await
    };
    for i in 0..chat_runtime::signin::FREE_FAILURES {
        let (status, body) = attempt(&alice.phone, "wrong-pass").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("bad_credentials")),
            "try {i}"
        );
    }
    // Now every attempt waits, the right password included.
    let (status, body) = attempt(&alice.phone, "wrong-pass").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(
        body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{body}"
    );
    // An unknown phone answers exactly like a wrong password.
    let (status, body) = attempt("+15550000999", "whatever-1").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    // After the wait, the right password gets in and clears the record.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = attempt(&alice.phone, "s3cret-pass").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = attempt(&alice.phone, "wrong-pass").await;
    assert_eq!(status, 401, "the record starts over");
    server.stop().await;
}

#[tokio::test]
async fn a_history_page_limit_outside_1_to_200_is_refused_on_both_doors() {
    let server = Server::start().await;
    let alice = server.user("+15550001001", "Alice").await;
    let bob = server.user("+15550001002", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    for limit in [0, 201] {
        let path = format!("/v1/chats/{chat}/messages?limit={limit}");
        let (status, body) = server.get(&path, &alice.token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid")),
            "{body}"
        );
    }
    let (status, _) = server
        .get(
            &format!("/v1/chats/{chat}/messages?limit=200"),
            &alice.token,
        )
        .await;
    assert_eq!(status, 200);

    let mut ws = server.connect(&alice).await;
    let refused = ws
        .request(json!({"type": "history", "chat_id": chat, "limit": 0}))
        .await;
    assert!(
        matches!(
            refused,
            ServerFrame::Error {
                code: ErrorCode::Invalid,
                req_id: Some(_),
                ..
            }
        ),
        "the refusal names the request: {refused:?}"
    );
    server.stop().await;
}
