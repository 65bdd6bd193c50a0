//! Resume: an offline device catches up in order, with nothing twice.

use std::collections::BTreeMap;

use chat_runtime::protocol::ServerFrame;
use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn offline_member_reconnects_and_gets_everything_in_order() {
    let server = Server::start().await;
    let alice = server.user("+15550000041", "Alice").await;
    let bob = server.user("+15550000042", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;

    // Bob holds seq 1..=3, then goes offline.
    let mut b = server.connect(&bob).await;
    for i in 1..=3 {
        a.say(chat, &format!("early-{i}"), "x").await;
    }
    assert_eq!(b.messages_until(chat, 3).await, vec![1, 2, 3]);
    drop(b);

    for i in 1..=250 {
        a.say(chat, &format!("late-{i}"), &format!("while away {i}"))
            .await;
    }
    // Reconnect with this device's watermark: exactly 4..=253, in order, then synced.
    let mut b = server.connect_with(&bob, BTreeMap::from([(chat, 3)])).await;
    let mut seqs = Vec::new();
    let heads = loop {
        match b.next().await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Synced { chats } => break chats,
            _ => {}
        }
    };
    assert_eq!(seqs, (4..=253).collect::<Vec<_>>());
    assert_eq!(heads.get(&chat), Some(&253));
    // Live events follow, without repeats.
    a.say(chat, "live", "now").await;
    assert_eq!(b.messages_until(chat, 254).await, vec![254]);
    server.stop().await;
}

#[tokio::test]
async fn new_device_without_watermarks_gets_what_no_device_acked() {
    let server = Server::start().await;
    let alice = server.user("+15550000051", "Alice").await;
    let bob = server.user("+15550000052", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    for i in 1..=5 {
        a.say(chat, &format!("m{i}"), "x").await;
    }
    // Bob's phone acked up to 2 over REST.
    let (status, _) = server
        .post(
            &format!("/v1/chats/{chat}/receipts"),
            Some(&bob.token),
            json!({"delivered": 2}),
        )
        .await;
    assert_eq!(status, 200);
    let mut laptop = server.connect(&bob).await;
    let mut seqs = Vec::new();
    loop {
        match laptop.next().await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Synced { .. } => break,
            _ => {}
        }
    }
    assert_eq!(seqs, vec![3, 4, 5]);
    server.stop().await;
}

#[tokio::test]
async fn every_device_of_a_user_gets_every_event() {
    let server = Server::start().await;
    let alice = server.user("+15550000061", "Alice").await;
    let bob = server.user("+15550000062", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut phone = server.connect(&bob).await;
    let mut laptop = server.connect(&bob).await;
    let mut a = server.connect(&alice).await;
    for i in 1..=20 {
        a.say(chat, &format!("d{i}"), "x").await;
    }
    let all: Vec<u64> = (1..=20).collect();
    assert_eq!(phone.messages_until(chat, 20).await, all);
    assert_eq!(laptop.messages_until(chat, 20).await, all);
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect() {
    let server = Server::start().await;
    let alice = server.user("+15550000071", "Alice").await;
    let mut a = server.connect(&alice).await;
    let _ = a
        .until(|f| matches!(f, ServerFrame::Synced { .. }).then_some(()))
        .await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(a.closed().await, 1012);
    stopping.await.unwrap();
}
