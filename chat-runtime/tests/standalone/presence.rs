//! Last seen and typing: visible to contacts, hidden from strangers.

use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn last_seen_visible_to_a_contact_and_hidden_from_a_stranger() {
    let server = Server::start().await;
    let alice = server.user("+15550000081", "Alice").await;
    let bob = server.user("+15550000082", "Bob").await;
    let eve = server.user("+15550000083", "Eve").await;
    let chat = server.direct(&alice, &bob).await;
    let (status, body) = server
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&bob.token),
            json!({"client_msg_id": "hello", "body": "hi Alice"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    // Bob sees Alice online.
    let reply = b
        .request(json!({"type": "presence", "user_id": alice.id}))
        .await;
    assert!(
        matches!(reply, ServerFrame::Presence { online: true, .. }),
        "{reply:?}"
    );

    // Alice goes away: Bob gets an offline event with last seen.
    a.ws.close(None).await.unwrap();
    let last_seen = b
        .until(|f| match f {
            ServerFrame::Presence {
                user_id,
                online: false,
                last_seen,
                req_id: None,
            } if *user_id == alice.id => Some(*last_seen),
            _ => None,
        })
        .await;
    assert!(last_seen.is_some());
    let reply = b
        .request(json!({"type": "presence", "user_id": alice.id}))
        .await;
    assert!(
        matches!(reply, ServerFrame::Presence { online: false, last_seen: ls, .. } if ls == last_seen),
        "{reply:?}"
    );

    // Eve shares no chat with Alice: same answer as for nobody.
    let mut e = server.connect(&eve).await;
    let reply = e
        .request(json!({"type": "presence", "user_id": alice.id}))
        .await;
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{reply:?}"
    );
    let (status, _) = server
        .get(&format!("/v1/users/{}/presence", alice.id), &eve.token)
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .get(&format!("/v1/users/{}/presence", alice.id), &bob.token)
        .await;
    assert_eq!((status, body["online"].as_bool()), (200, Some(false)));
    // REST answers the frame's fields, without the frame's `type`.
    let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["last_seen", "online", "user_id"]);
    server.stop().await;
}

#[tokio::test]
async fn knowing_a_phone_number_does_not_show_presence() {
    let server = Server::start().await;
    let alice = server.user("+15550000084", "Alice").await;
    let eve = server.user("+15550000085", "Eve").await;
    let _a = server.connect(&alice).await;
    // Eve opens a 1:1 chat with Alice's number: no message, no presence.
    let chat = server.direct(&eve, &alice).await;
    let path = format!("/v1/users/{}/presence", alice.id);
    let (status, body) = server.get(&path, &eve.token).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // Once a message was sent in it, the chat makes them contacts.
    let (status, _) = server
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&eve.token),
            json!({"client_msg_id": "hi", "body": "hi, it's Eve"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server.get(&path, &eve.token).await;
    assert_eq!((status, body["online"].as_bool()), (200, Some(true)));
    server.stop().await;
}

#[tokio::test]
async fn typing_reaches_the_other_member_only() {
    let server = Server::start().await;
    let alice = server.user("+15550000091", "Alice").await;
    let bob = server.user("+15550000092", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    a.send(json!({"type": "typing", "chat_id": chat})).await;
    let who = b
        .until(|f| match f {
            ServerFrame::Typing { user_id, chat_id } if *chat_id == chat => Some(*user_id),
            _ => None,
        })
        .await;
    assert_eq!(who, alice.id);
    // Typing is never stored.
    let (_, page) = server
        .get(&format!("/v1/chats/{chat}/messages"), &bob.token)
        .await;
    assert!(page["messages"].as_array().unwrap().is_empty());
    server.stop().await;
}
