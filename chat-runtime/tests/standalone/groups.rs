//! Groups: 100 members at most, fan-out to every member, admin rules.

use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::json;

use crate::harness::{Server, TestUser};

pub(crate) async fn many_users(server: &Server, n: usize, prefix: u64) -> Vec<TestUser> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let phone = format!("+1{}", prefix + i as u64);
        let http = server.http.clone();
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let s = Server::client_only(addr, http);
            s.user(&phone, &format!("u{i}")).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn hundred_member_group_and_the_rejected_101st() {
    let server = Server::start().await;
    let users = many_users(&server, 101, 5551000000).await;
    let (admin, rest) = users.split_first().unwrap();
    let members: Vec<_> = rest[..99].iter().map(|u| u.id).collect();
    let (status, group) = server
        .post(
            "/v1/groups",
            Some(&admin.token),
            json!({"title": "hundred", "members": members}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["members"].as_array().unwrap().len(), 100);
    let chat: uuid::Uuid = group["chat_id"].as_str().unwrap().parse().unwrap();

    // The 101st: through add_member and through join, both typed errors.
    let last = &rest[99];
    let (status, body) = server
        .post(
            &format!("/v1/groups/{chat}/members"),
            Some(&admin.token),
            json!({"user_id": last.id}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("group_full")));
    let invite = server.invite(chat, admin).await;
    let mut l = server.connect(last).await;
    let reply = l
        .request(json!({"type": "join", "chat_id": chat, "invite": invite}))
        .await;
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::GroupFull,
                ..
            }
        ),
        "{reply:?}"
    );
    // Creating a group of 101 fails too.
    let all: Vec<_> = rest.iter().map(|u| u.id).collect();
    let (status, body) = server
        .post(
            "/v1/groups",
            Some(&admin.token),
            json!({"title": "too big", "members": all}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("group_full")));

    // Every member's device gets a message; some members have two devices.
    let mut devices = Vec::new();
    for u in &rest[..99] {
        devices.push(server.connect(u).await);
    }
    devices.push(server.connect(&rest[0]).await);
    let mut a = server.connect(admin).await;
    let seq = a.say(chat, "hello-all", "hello everyone").await;
    for d in &mut devices {
        let got = d
            .until(|f| match f {
                ServerFrame::Message { message } if message.seq == seq => Some(message.sender),
                _ => None,
            })
            .await;
        assert_eq!(got, admin.id);
    }
    server.stop().await;
}

#[tokio::test]
async fn membership_rules() {
    let server = Server::start().await;
    let users = many_users(&server, 3, 5552000000).await;
    let (admin, bob, carol) = (&users[0], &users[1], &users[2]);
    let (_, group) = server
        .post(
            "/v1/groups",
            Some(&admin.token),
            json!({"title": "g", "members": [bob.id]}),
        )
        .await;
    let chat: uuid::Uuid = group["chat_id"].as_str().unwrap().parse().unwrap();
    // The `created` message names the title and everyone the group started
    // with, the creator first: a client shows it without another call.
    let created = &group["last_message"];
    let shown = ["seq", "sender", "event", "user_id", "title", "members"].map(|k| &created[k]);
    let expected = [
        json!(1),
        json!(admin.id),
        json!("created"),
        json!(admin.id),
        json!("g"),
        json!([admin.id, bob.id]),
    ];
    assert_eq!(shown, expected.each_ref());
    // A member who is not an admin may not add or remove.
    let (status, body) = server
        .post(
            &format!("/v1/groups/{chat}/members"),
            Some(&bob.token),
            json!({"user_id": carol.id}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    // Carol joins with the invite; everyone sees the change in order.
    let invite = server.invite(chat, admin).await;
    let mut b = server.connect(bob).await;
    let (status, _) = server
        .post(
            &format!("/v1/groups/{chat}/join"),
            Some(&carol.token),
            json!({"invite": invite}),
        )
        .await;
    assert_eq!(status, 200);
    let event = b
        .until(|f| match f {
            ServerFrame::Message { message } if message.seq == 2 => Some(message.content.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({"kind": "system", "event": "joined", "user_id": carol.id})
    );
    // The admin removes Bob; Bob sees his removal and can no longer send.
    let resp = server
        .http
        .delete(server.url(&format!("/v1/groups/{chat}/members/{}", bob.id)))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let removed = b
        .until(|f| match f {
            ServerFrame::Message { message } if message.seq == 3 => Some(message.content.clone()),
            _ => None,
        })
        .await;
    assert_eq!(serde_json::to_value(&removed).unwrap()["event"], "removed");
    b.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "z", "body": "still here?"}))
        .await;
    let code = b
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::NotMember);
    // Carol leaves.
    let (status, _) = server
        .post(
            &format!("/v1/groups/{chat}/leave"),
            Some(&carol.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, chats) = server.get("/v1/chats", &carol.token).await;
    assert!(chats.as_array().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn group_receipts_reach_the_sender_and_everyone_when_all_have_read() {
    let server = Server::start().await;
    let users = many_users(&server, 3, 5553000000).await;
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let (_, group) = server
        .post(
            "/v1/groups",
            Some(&alice.token),
            json!({"title": "g", "members": [bob.id, carol.id]}),
        )
        .await;
    let chat: uuid::Uuid = group["chat_id"].as_str().unwrap().parse().unwrap();
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    let mut c = server.connect(carol).await;
    let seq = a.say(chat, "q", "read me").await;
    let is_receipt_of = |who: uuid::Uuid| {
        move |f: &ServerFrame| match f {
            ServerFrame::Receipt {
                user_id,
                read_seq,
                read_all_seq,
                ..
            } if *user_id == who => Some((*read_seq, *read_all_seq)),
            _ => None,
        }
    };
    // Bob reads: Alice (the sender) learns it; "read by all" has not moved.
    b.send(json!({"type": "read", "chat_id": chat, "seq": seq}))
        .await;
    assert_eq!(a.until(is_receipt_of(bob.id)).await, (seq, 0));
    // Carol reads: now everyone has read, and every member hears it.
    c.send(json!({"type": "read", "chat_id": chat, "seq": seq}))
        .await;
    assert_eq!(a.until(is_receipt_of(carol.id)).await, (seq, seq));
    assert_eq!(b.until(is_receipt_of(carol.id)).await, (seq, seq));
    // Carol never got Bob's per-member receipt (it did not concern her messages).
    let frames: Vec<ServerFrame> = {
        let mut seen = Vec::new();
        c.send(json!({"type": "ping"})).await;
        loop {
            let f = c.next().await;
            if matches!(f, ServerFrame::Pong {}) {
                break seen;
            }
            seen.push(f);
        }
    };
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Receipt { user_id, .. } if *user_id == bob.id)),
        "{frames:?}"
    );
    server.stop().await;
}
