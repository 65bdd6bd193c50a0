//! Who may join a group and what a member reads: revocable invites, bans on
//! removal, history from the join on, and a group that always has an admin.

use std::collections::BTreeMap;

use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::groups::many_users;
use crate::harness::{Client, Server, TestUser};

async fn group(server: &Server, admin: &TestUser, members: &[&TestUser]) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|u| u.id).collect();
    let (status, group) = server
        .post(
            "/v1/groups",
            Some(&admin.token),
            json!({"title": "g", "members": ids}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    group["chat_id"].as_str().unwrap().parse().unwrap()
}

async fn join(server: &Server, chat: Uuid, user: &TestUser, invite: &str) -> (u16, Value) {
    let path = format!("/v1/groups/{chat}/join");
    server
        .post(&path, Some(&user.token), json!({"invite": invite}))
        .await
}

async fn remove(server: &Server, chat: Uuid, admin: &TestUser, user: &TestUser) {
    let path = format!("/v1/groups/{chat}/members/{}", user.id);
    let resp = server
        .http
        .delete(server.url(&path))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
}

async fn add(server: &Server, chat: Uuid, admin: &TestUser, user: &TestUser) {
    let path = format!("/v1/groups/{chat}/members");
    let (status, body) = server
        .post(&path, Some(&admin.token), json!({"user_id": user.id}))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Seqs of the `history` answer for `chat`, newest first.
async fn history(c: &mut Client, chat: Uuid) -> Vec<u64> {
    match c.request(json!({"type": "history", "chat_id": chat})).await {
        ServerFrame::History { messages, .. } => messages.iter().map(|m| m.seq).collect(),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn joining_takes_the_current_invite_and_removal_bans_until_an_admin_adds_back() {
    let server = Server::start().await;
    let users = many_users(&server, 4, 5554000000).await;
    let (admin, bob, carol, dave) = (&users[0], &users[1], &users[2], &users[3]);
    let chat = group(&server, admin, &[bob]).await;

    // The chat id alone (or a made-up code) lets no one in.
    let mut c = server.connect(carol).await;
    let reply = c
        .request(json!({"type": "join", "chat_id": chat, "invite": "guessed"}))
        .await;
    assert_eq!(code(&reply), Some(ErrorCode::Forbidden), "{reply:?}");
    c.send(json!({"type": "join", "req_id": "bare", "chat_id": chat}))
        .await;
    assert_eq!(c.until(code).await, ErrorCode::Invalid);

    // Only admins see the invite; it is stable until reset.
    let invite = server.invite(chat, admin).await;
    assert_eq!(invite.len(), 22);
    assert_eq!(server.invite(chat, admin).await, invite);
    let path = format!("/v1/groups/{chat}/invite");
    let (status, body) = server.get(&path, &bob.token).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    // With it Carol joins; removed, she is banned: the invite no longer works.
    let (status, body) = join(&server, chat, carol, &invite).await;
    assert_eq!(status, 200, "{body}");
    remove(&server, chat, admin, carol).await;
    let (status, body) = join(&server, chat, carol, &invite).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("banned")));
    let reply = c
        .request(json!({"type": "join", "chat_id": chat, "invite": invite}))
        .await;
    assert_eq!(code(&reply), Some(ErrorCode::Banned), "{reply:?}");

    // A reset invite replaces the old one at once.
    let mut a = server.connect(admin).await;
    let fresh = match a
        .request(json!({"type": "reset_invite", "chat_id": chat}))
        .await
    {
        ServerFrame::Invite {
            chat_id, invite, ..
        } if chat_id == chat => invite,
        other => panic!("expected invite, got {other:?}"),
    };
    assert_ne!(fresh, invite);
    let (status, body) = join(&server, chat, dave, &invite).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = join(&server, chat, dave, &fresh).await;
    assert_eq!(status, 200, "{body}");

    // An admin adding Carol back lifts the ban; leaving bans no one.
    add(&server, chat, admin, carol).await;
    let (status, _) = server
        .post(
            &format!("/v1/groups/{chat}/leave"),
            Some(&carol.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = join(&server, chat, carol, &fresh).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn members_read_from_their_join_never_before_nor_while_removed() {
    let server = Server::start().await;
    let users = many_users(&server, 2, 5555000000).await;
    let (admin, carol) = (&users[0], &users[1]);
    let chat = group(&server, admin, &[]).await;
    let mut a = server.connect(admin).await;
    assert_eq!(a.say(chat, "m2", "before carol").await, 2);

    // Carol joins at 3: history, REST messages and resume start there.
    let invite = server.invite(chat, admin).await;
    let (status, view) = join(&server, chat, carol, &invite).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["unread"].as_u64(), view["read_seq"].as_u64()),
        (Some(1), Some(2))
    );
    let zero = BTreeMap::from([(chat, 0)]);
    let mut c = server.connect_with(carol, zero.clone()).await;
    let replayed = c
        .until(|f| match f {
            ServerFrame::Synced { chats } => Some(chats[&chat]),
            _ => None,
        })
        .await;
    assert_eq!(replayed, 3);
    assert_eq!(history(&mut c, chat).await, vec![3]);
    let (_, page) = server
        .get(&format!("/v1/chats/{chat}/messages"), &carol.token)
        .await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!((seqs, page["next_before"].clone()), (vec![3], Value::Null));

    // Removed at 4, a message at 5, added back at 6, a message at 7: her
    // live device gets her removal, then fills the gap before 7 from 6 on,
    // never 5 (what was sent while she was away).
    remove(&server, chat, admin, carol).await;
    assert_eq!(a.say(chat, "m5", "while carol is away").await, 5);
    add(&server, chat, admin, carol).await;
    assert_eq!(a.say(chat, "m7", "welcome back").await, 7);
    assert_eq!(c.messages_until(chat, 7).await, vec![4, 6, 7]);
    assert_eq!(history(&mut c, chat).await, vec![7, 6]);
    // A device that claims to hold nothing is resumed from 6 as well.
    let mut again = server.connect_with(carol, zero).await;
    assert_eq!(again.messages_until(chat, 7).await, vec![6, 7]);
    server.stop().await;
}

/// (seq, event, user) of `chat`'s system messages until seq `last` arrives.
async fn system_events(c: &mut Client, chat: Uuid, last: u64) -> Vec<(u64, Value, Value)> {
    let mut out = Vec::new();
    loop {
        if let ServerFrame::Message { message } = c.next().await
            && message.chat_id == chat
        {
            let content = serde_json::to_value(&message.content).unwrap();
            out.push((
                message.seq,
                content["event"].clone(),
                content["user_id"].clone(),
            ));
            if message.seq == last {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn the_longest_standing_member_is_promoted_when_the_last_admin_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), Limits::default()).await;
    let users = many_users(&server, 3, 5556000000).await;
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let chat = group(&server, alice, &[]).await;
    add(&server, chat, alice, bob).await; // seq 2
    add(&server, chat, alice, carol).await; // seq 3
    let mut c = server.connect(carol).await;
    let (status, _) = server
        .post(
            &format!("/v1/groups/{chat}/leave"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        system_events(&mut c, chat, 5).await,
        vec![
            (3, json!("added"), json!(carol.id)),
            (4, json!("left"), json!(alice.id)),
            (5, json!("promoted"), json!(bob.id)),
        ]
    );
    drop(c);
    server.stop().await;

    // The role is stored: after a restart Bob is the admin and acts as one.
    let server = Server::start_in(dir.path(), Limits::default()).await;
    let (_, view) = server.get(&format!("/v1/chats/{chat}"), &bob.token).await;
    let roles: BTreeMap<&str, &str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    let (b, c) = (bob.id.to_string(), carol.id.to_string());
    assert_eq!(
        roles,
        BTreeMap::from([(b.as_str(), "admin"), (c.as_str(), "member")])
    );
    assert_eq!(server.invite(chat, bob).await.len(), 22);
    server.stop().await;
}

#[tokio::test]
async fn media_sent_before_a_join_stays_out_of_reach_of_the_joiner() {
    let server = Server::start().await;
    let users = many_users(&server, 2, 5557000000).await;
    let (admin, carol) = (&users[0], &users[1]);
    let chat = group(&server, admin, &[]).await;
    let upload = server
        .http
        .post(server.url("/v1/media"))
        .bearer_auth(&admin.token)
        .header("content-type", "application/octet-stream")
        .body(b"minutes of the last meeting".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let up: Value = upload.json().await.unwrap();
    let id = up["media_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/chats/{chat}/messages");
    let send = |n: &str| {
        let body = json!({"client_msg_id": n, "kind": "file", "media_id": id});
        server.post(&path, Some(&admin.token), body)
    };
    let (status, body) = send("before").await;
    assert_eq!(status, 201, "{body}");
    let invite = server.invite(chat, admin).await;
    let (status, _) = join(&server, chat, carol, &invite).await;
    assert_eq!(status, 200);
    // Carol joined after the file was sent: 404, as for media that does not exist.
    let (status, body) = server.get(&format!("/v1/media/{id}"), &carol.token).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // Sent again after her join, it is hers to read.
    let (status, _) = send("after").await;
    assert_eq!(status, 201);
    let status = server
        .http
        .get(server.url(&format!("/v1/media/{id}")))
        .bearer_auth(&carol.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    server.stop().await;
}
