//! `kill -9` under load: every acknowledged message survives, seqs stay gapless.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chat_runtime::protocol::ServerFrame;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::harness::{Server, TestUser, spawn};

/// Sends as fast as acks come back (8 in flight) until the socket dies;
/// returns client_msg_id → acked seq.
async fn sender(server: Server, user: TestUser, chat: Uuid) -> BTreeMap<String, u64> {
    let mut acked = BTreeMap::new();
    let url = format!("ws://{}/v1/ws", server.addr);
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return acked;
    };
    let hello = json!({"type":"hello","token":user.token}).to_string();
    if ws.send(Message::text(hello)).await.is_err() {
        return acked;
    }
    let mut next = 0u64;
    let mut in_flight = 0;
    loop {
        while in_flight < 8 {
            let frame = json!({"type":"send","chat_id":chat,"client_msg_id":format!("{}-{next}", user.id),"body":"crash me"});
            next += 1;
            in_flight += 1;
            if ws.send(Message::text(frame.to_string())).await.is_err() {
                return acked;
            }
        }
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if let Ok(ServerFrame::Sent {
                    client_msg_id, seq, ..
                }) = serde_json::from_str(&t)
                {
                    acked.insert(client_msg_id, seq);
                    in_flight -= 1;
                }
            }
            Some(Ok(_)) => {}
            _ => return acked,
        }
    }
}

#[tokio::test]
async fn kill_dash_nine_under_load_loses_no_acked_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, server) = spawn(dir.path(), &[]).await;
    let mut work = Vec::new();
    for i in 0..4 {
        let a = server.user(&format!("+1555900{i}001"), "A").await;
        let b = server.user(&format!("+1555900{i}002"), "B").await;
        let chat = server.direct(&a, &b).await;
        work.push((a, b, chat));
    }
    let mut tasks = Vec::new();
    for (a, b, chat) in &work {
        for u in [a, b] {
            let s = Server::client_only(server.addr, server.http.clone());
            tasks.push(tokio::spawn(sender(s, u.clone(), *chat)));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL"); // kill -9
    child.wait().unwrap();
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "load too light to mean anything: {}",
        acked.len()
    );

    let (mut child, server) = spawn(dir.path(), &[]).await;
    let mut stored = BTreeMap::new();
    for (a, _, chat) in &work {
        let mut seqs = Vec::new();
        let mut ids = HashSet::new();
        let mut before: Option<u64> = None;
        loop {
            let q = before.map_or(String::new(), |b| format!("&before={b}"));
            let (status, page) = server
                .get(&format!("/v1/chats/{chat}/messages?limit=200{q}"), &a.token)
                .await;
            assert_eq!(status, 200);
            for m in page["messages"].as_array().unwrap() {
                let seq = m["seq"].as_u64().unwrap();
                let id = m["client_msg_id"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "duplicate message {id}");
                seqs.push(seq);
                stored.insert(id, seq);
            }
            match page["next_before"].as_u64() {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        seqs.reverse();
        let n = seqs.len() as u64;
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "gapless seqs in {chat}");
    }
    for (id, seq) in &acked {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "acked message {id} lost or moved"
        );
    }
    eprintln!(
        "crash test: {} acked, {} stored (stored may include unacked in-flight)",
        acked.len(),
        stored.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
