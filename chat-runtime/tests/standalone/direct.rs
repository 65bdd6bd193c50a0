//! 1:1 chats: ticks, idempotent sends, history paging, access control.

use std::time::Duration;

use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::json;

use crate::harness::{Server, TestUser};

#[tokio::test]
async fn one_to_one_with_sent_delivered_read_ticks() {
    let server = Server::start().await;
    let alice = server.user("+15550000001", "Alice").await;
    let bob = server.user("+15550000002", "Bob").await;
    // The first open creates the pair's chat (201); every later one, from
    // either side, finds it (200): exactly one 1:1 chat per pair.
    let (status, id) = open_direct(&server, &alice, &bob).await;
    assert_eq!(status, 201);
    assert_eq!(open_direct(&server, &alice, &bob).await, (200, id.clone()));
    assert_eq!(open_direct(&server, &bob, &alice).await, (200, id.clone()));
    let chat: uuid::Uuid = id.parse().unwrap();

    let mut a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    // sent: the ack carries the chat's seq.
    let seq = a.say(chat, "m-1", "hi bob").await;
    assert_eq!(seq, 1);
    // Bob's device gets the message live.
    let got = b
        .until(|f| match f {
            ServerFrame::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!((got.chat_id, got.seq, got.sender), (chat, 1, alice.id));

    // delivered: Alice sees Bob's receipt.
    b.send(json!({"type": "delivered", "chat_id": chat, "seq": 1}))
        .await;
    let (d, r) = a
        .until(|f| match f {
            ServerFrame::Receipt {
                user_id,
                delivered_seq,
                read_seq,
                ..
            } if *user_id == bob.id => Some((*delivered_seq, *read_seq)),
            _ => None,
        })
        .await;
    assert_eq!((d, r), (1, 0));

    // read: the watermark moves and "read by all" follows.
    b.send(json!({"type": "read", "chat_id": chat, "seq": 1}))
        .await;
    let (r, read_all) = a
        .until(|f| match f {
            ServerFrame::Receipt {
                user_id,
                read_seq,
                read_all_seq,
                ..
            } if *user_id == bob.id && *read_seq == 1 => Some((*read_seq, *read_all_seq)),
            _ => None,
        })
        .await;
    assert_eq!((r, read_all), (1, 1));

    // getAll reflects watermarks and unread counts.
    let (status, chats) = server.get("/v1/chats", &bob.token).await;
    assert_eq!(status, 200);
    assert_eq!(chats[0]["unread"], 0);
    assert_eq!(chats[0]["last_message"]["body"], "hi bob");
    server.stop().await;
}

/// `POST /v1/direct` from `from` to `to`: its status and the chat's id.
async fn open_direct(server: &Server, from: &TestUser, to: &TestUser) -> (u16, String) {
    let body = json!({"phone": to.phone});
    let (status, view) = server.post("/v1/direct", Some(&from.token), body).await;
    (status, view["chat_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn duplicate_client_msg_id_returns_the_original_seq() {
    let server = Server::start().await;
    let alice = server.user("+15550000011", "Alice").await;
    let bob = server.user("+15550000012", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    assert_eq!(a.say(chat, "same", "first").await, 1);
    assert_eq!(a.say(chat, "other", "second").await, 2);
    a.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "same", "body": "retry"}))
        .await;
    let (seq, duplicate) = a
        .until(|f| match f {
            ServerFrame::Sent {
                client_msg_id,
                seq,
                duplicate,
                ..
            } if client_msg_id == "same" => Some((*seq, *duplicate)),
            _ => None,
        })
        .await;
    assert_eq!((seq, duplicate), (1, true));
    // The same through REST.
    let (status, body) = server
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&alice.token),
            json!({"client_msg_id": "other", "body": "again"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        (body["seq"].as_u64(), body["duplicate"].as_bool()),
        (Some(2), Some(true))
    );
    let (_, page) = server
        .get(&format!("/v1/chats/{chat}/messages"), &bob.token)
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2, "stored once");
    server.stop().await;
}

#[tokio::test]
async fn history_pages_newest_first_with_a_cursor() {
    let server = Server::start().await;
    let alice = server.user("+15550000021", "Alice").await;
    let bob = server.user("+15550000022", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    for i in 1..=25 {
        a.say(chat, &format!("h{i}"), &format!("n{i}")).await;
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let mut req = json!({"type": "history", "chat_id": chat, "limit": 10});
        if let Some(b) = before {
            req["before"] = json!(b);
        }
        let ServerFrame::History {
            messages,
            next_before,
            ..
        } = a.request(req).await
        else {
            panic!("history reply expected")
        };
        seen.extend(messages.iter().map(|m| m.seq));
        match next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn non_member_is_denied_everywhere() {
    let server = Server::start().await;
    let alice = server.user("+15550000031", "Alice").await;
    let bob = server.user("+15550000032", "Bob").await;
    let eve = server.user("+15550000033", "Eve").await;
    let chat = server.direct(&alice, &bob).await;
    let mut e = server.connect(&eve).await;
    e.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "x", "body": "let me in"}))
        .await;
    let code = e
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::NotMember);
    let reply = e.request(json!({"type": "history", "chat_id": chat})).await;
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::NotMember,
                ..
            }
        ),
        "{reply:?}"
    );
    let (status, body) = server
        .get(&format!("/v1/chats/{chat}/messages"), &eve.token)
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_member")));
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = server
        .get(&format!("/v1/chats/{unknown}/messages"), &eve.token)
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // Nothing was stored by the attempts.
    let (_, page) = server
        .get(&format!("/v1/chats/{chat}/messages"), &alice.token)
        .await;
    assert!(page["messages"].as_array().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_sending_device_gets_sent_and_the_senders_other_devices_get_the_message() {
    let server = Server::start().await;
    let alice = server.user("+15550000011", "Alice").await;
    let bob = server.user("+15550000012", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut phone = server.connect(&alice).await;
    let mut laptop = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;

    assert_eq!(phone.say(chat, "m-1", "from my phone").await, 1);
    for device in [&mut laptop, &mut b] {
        assert_eq!(device.messages_until(chat, 1).await, vec![1]);
    }
    // Bob answers: the phone gets seq 2 next, never its own seq 1 (and no
    // gap is filled with it).
    assert_eq!(b.say(chat, "m-2", "hi").await, 2);
    assert_eq!(phone.messages_until(chat, 2).await, vec![2]);
    // A send over REST came from no session: every device hears it.
    let (status, sent) = server
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&alice.token),
            json!({"client_msg_id": "m-3", "body": "from the api"}),
        )
        .await;
    assert_eq!(status, 201);
    // The `sent` frame's fields, without the frame's `type`.
    let mut fields: Vec<_> = sent.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    let expected = ["chat_id", "client_msg_id", "duplicate", "sent_at", "seq"];
    assert_eq!(fields, expected);
    assert_eq!(phone.messages_until(chat, 3).await, vec![3]);
    assert_eq!(laptop.messages_until(chat, 3).await, vec![2, 3]);
    server.stop().await;
}

/// Receipts are clamped, never refused: beyond the last message counts as
/// it, below the current mark changes nothing — over REST as on the
/// WebSocket (both go through the chat's shard).
#[tokio::test]
async fn receipts_beyond_the_last_message_or_below_the_mark_are_clamped() {
    let server = Server::start().await;
    let alice = server.user("+15550000021", "Alice").await;
    let bob = server.user("+15550000022", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    assert_eq!(a.say(chat, "m-1", "one").await, 1);
    assert_eq!(a.say(chat, "m-2", "two").await, 2);
    let path = format!("/v1/chats/{chat}/receipts");
    let marks =
        |view: &serde_json::Value| (view["delivered_seq"].clone(), view["read_seq"].clone());
    let (status, view) = server
        .post(&path, Some(&bob.token), json!({"delivered": 99, "read": 1}))
        .await;
    assert_eq!((status, marks(&view)), (200, (json!(2), json!(1))));
    let (status, view) = server
        .post(&path, Some(&bob.token), json!({"read": 1}))
        .await;
    assert_eq!((status, marks(&view)), (200, (json!(2), json!(1))));
    // The WebSocket's `read` beyond the end: Alice hears it as seq 2 (after
    // the receipts above, which read up to 1).
    let mut b = server.connect(&bob).await;
    b.send(json!({"type": "read", "chat_id": chat, "seq": 1000}))
        .await;
    let read = a
        .until(|f| match f {
            ServerFrame::Receipt {
                user_id, read_seq, ..
            } if *user_id == bob.id && *read_seq > 1 => Some(*read_seq),
            _ => None,
        })
        .await;
    assert_eq!(read, 2);
    server.stop().await;
}

/// A device's commands are applied by a worker that runs only while they
/// wait. Sends spaced out (the worker stops between them) and a burst of
/// more sends than the command queue holds (the session waits for room)
/// are each answered once, in the order they were sent, and delivered.
#[tokio::test]
async fn spaced_out_sends_and_a_burst_beyond_the_command_queue_are_all_answered_in_order() {
    let server = Server::start_with(Limits {
        rate_per_sec: 100_000,
        burst: 100_000,
        signups_per_minute: 100_000,
        hashing_per_address: 1_000,
        ..Limits::default()
    })
    .await;
    let alice = server.user("+15550000021", "Alice").await;
    let bob = server.user("+15550000022", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;

    for i in 1..=3 {
        assert_eq!(a.say(chat, &format!("spaced-{i}"), "hi").await, i);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 600 sends written at once: more than the session's command queue (256).
    const BURST: u64 = 600;
    for i in 1..=BURST {
        let frame = json!({"type": "send", "chat_id": chat, "client_msg_id": format!("burst-{i}"), "body": "x"});
        a.send(frame).await;
    }
    let mut answered = Vec::new();
    while answered.len() < BURST as usize {
        match a.next().await {
            ServerFrame::Sent {
                client_msg_id, seq, ..
            } => answered.push((client_msg_id, seq)),
            ServerFrame::Error { code, .. } => panic!("a send was refused: {code:?}"),
            _ => {}
        }
    }
    let expected: Vec<_> = (1..=BURST).map(|i| (format!("burst-{i}"), 3 + i)).collect();
    assert_eq!(answered, expected, "each answered once, in order");
    let delivered = b.messages_until(chat, 3 + BURST).await;
    assert_eq!(delivered, (1..=3 + BURST).collect::<Vec<_>>());
    server.stop().await;
}
