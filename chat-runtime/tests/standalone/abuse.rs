//! Abuse limits seen from outside: each test floods one door and checks the
//! typed refusal, that nothing extra was stored, and that the server still
//! answers everyone else.

use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::{Value, json};

use crate::harness::{Client, Server};

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

async fn register_from(server: &Server, phone: &str, forwarded_for: Option<&str>) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url("/v1/register"))
        .json(&json!({"phone": phone, "display_name": "Someone", "password": "s3cret-pass"}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sign_ups_are_limited_per_client_address() {
    let limits = Limits {
        signups_per_minute: 3,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    for i in 0..3 {
        let (status, body) = register_from(&server, &format!("+1555000018{i}"), None).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = register_from(&server, "+15550000189", None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 1_000));
    // Claiming another address helps nobody who is not a trusted proxy.
    let (status, _) = register_from(&server, "+15550000189", Some("198.51.100.1")).await;
    assert_eq!(status, 429);
    // Nothing was stored for the refused number.
    let (status, _) = server
        .post(
            "/v1/login",
            None,
            json!({"phone": "+15550000189", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(status, 401);
    server.stop().await;

    // Behind a trusted proxy, each forwarded client has its own budget.
    let limits = Limits {
        signups_per_minute: 1,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let (status, _) = register_from(&server, "+15550000191", Some("198.51.100.1")).await;
    assert_eq!(status, 201);
    let (status, _) = register_from(&server, "+15550000192", Some("198.51.100.1")).await;
    assert_eq!(status, 429, "the same forwarded client");
    let (status, _) = register_from(&server, "+15550000192", Some("198.51.100.2")).await;
    assert_eq!(status, 201, "another client behind the proxy");
    server.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_client_address_too() {
    let server = Server::start().await;
    let alice = server.user("+15550000200", "Alice").await;
    // Few guesses per phone, many phones: the address runs out.
    let free = chat_runtime::signin::ADDRESS_FREE_FAILURES;
    for i in 0..free {
        let phone = format!("+1555100{i:04}");
        let (status, body) = server
            .post(
                "/v1/login",
                None,
                json!({"phone": phone, "password": "guess-123"}),
            )
            .await;
        assert_eq!(status, 401, "{i}: {body}");
    }
    let (status, body) = server
        .post(
            "/v1/login",
            None,
            json!({"phone": alice.phone, "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("address"));
    server.stop().await;
}

#[tokio::test]
async fn sessions_are_capped_per_client_address() {
    let limits = Limits {
        max_sessions_per_address: 2,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000211", "Alice").await;
    let bob = server.user("+15550000212", "Bob").await;
    let first = server.connect(&alice).await;
    let _second = server.connect(&bob).await;
    // A third socket from the same address, signed in or not, is refused.
    let mut third = Client::open(server.addr).await;
    assert_eq!(third.closed().await, 4003);
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
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed session gives its slot back");
    server.stop().await;
}

#[tokio::test]
async fn the_audit_trail_counts_failed_sign_ins_lockouts_removals_and_revocations() {
    let server = Server::start().await;
    let alice = server.user("+15550000221", "Alice").await;
    let bob = server.user("+15550000222", "Bob").await;
    for _ in 0..chat_runtime::signin::FREE_FAILURES {
        let wrong = json!({"phone": bob.phone, "password": "not-his-pass"});
        let (status, _) = server.post("/v1/login", None, wrong).await;
        assert_eq!(status, 401);
    }
    let (status, group) = server
        .post(
            "/v1/groups",
            Some(&alice.token),
            json!({"title": "team", "members": [bob.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let chat = group["chat_id"].as_str().unwrap();
    let path = format!("/v1/groups/{chat}/members/{}", bob.id);
    let status = server
        .http
        .delete(server.url(&path))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (status, _) = server
        .post("/v1/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, 204);

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |event: &str| {
        let line = format!("confab_audit_events_total{{event=\"{event}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map(|n| n.parse::<u64>().unwrap())
    };
    let failures = u64::from(chat_runtime::signin::FREE_FAILURES);
    assert_eq!(count("sign_in_failed"), Some(failures), "{metrics}");
    assert_eq!(count("sign_in_locked"), Some(1));
    assert_eq!(count("member_removed"), Some(1));
    assert_eq!(count("token_revoked"), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_queue_more_than_its_share_of_password_checks() {
    let limits = Limits {
        hashing_per_address: 2,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let attempts = (0..12).map(|i| {
        let body = json!({"phone": format!("+1555200{i:04}"), "password": "guess-123"});
        server.post("/v1/login", None, body)
    });
    let answers = futures::future::join_all(attempts).await;
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    for (_, body) in &refused {
        assert_eq!(body["code"], "rate_limited");
        assert!(
            body["message"].as_str().unwrap().contains("at a time"),
            "{body}"
        );
        assert_eq!(body["retry_after_ms"], 1000);
    }
    assert!(answers.iter().filter(|(s, _)| *s == 401).count() >= 2);
    // Once the checks are done, the address is served again.
    let body = json!({"phone": "+15552009999", "password": "guess-123"});
    let (status, _) = server.post("/v1/login", None, body).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_trickle_in_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = Limits {
        body_timeout_ms: 500,
        ..Limits::default()
    };
    let server = Server::start_with(limits).await;
    let alice = server.user("+15550000231", "Alice").await;
    let read_all = async |stream: &mut tokio::net::TcpStream| {
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("the server answers and closes")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    // A REST body promised but never sent: 408 timeout, and the socket closes.
    let mut rest = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 60\r\n\r\n{\"phone\":";
    rest.write_all(head.as_bytes()).await.unwrap();
    let answer = read_all(&mut rest).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    // A media upload that stalls after its first bytes is refused too.
    let mut upload = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n",
        alice.token
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&[0x89, b'P', b'N', b'G']).await.unwrap();
    let answer = read_all(&mut upload).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no bytes for"), "{answer}");
    // Everyone else is served meanwhile.
    let (status, _) = server.get("/v1/chats", &alice.token).await;
    assert_eq!(status, 200);
    server.stop().await;
}
