//! Media over the WebSocket: a photo sent in a `send` frame arrives as an
//! `image` message with the server-measured facts; bad media sends get typed
//! errors in order with the text sends around them. (Upload and download
//! scenarios for every bucket backend live in the e2e crate.)

use chat_runtime::model::Content;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use serde_json::{Value, json};

use crate::harness::Server;

/// A 64×48 PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn a_photo_sent_over_the_websocket_arrives_with_its_facts() {
    let server = Server::start().await;
    let alice = server.user("+15550100001", "Alice").await;
    let bob = server.user("+15550100002", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let id = upload_png(&server, &alice.token, "photo.png").await;

    let mut a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    a.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "t-1", "body": "before"}))
        .await;
    a.send(
        json!({"type": "send", "chat_id": chat, "client_msg_id": "m-1", "kind": "image",
                  "media_id": id, "body": "a square-ish photo"}),
    )
    .await;
    a.send(
        json!({"type": "send", "chat_id": chat, "client_msg_id": "m-2", "kind": "video",
                  "media_id": id}),
    )
    .await;
    a.send(json!({"type": "send", "chat_id": chat, "client_msg_id": "t-2", "body": "after"}))
        .await;
    // Answers come in the order sent; the mismatched kind is refused.
    let mut answers = Vec::new();
    while answers.len() < 4 {
        match a.next().await {
            ServerFrame::Sent {
                client_msg_id, seq, ..
            } => answers.push((client_msg_id, Some(seq))),
            ServerFrame::Error {
                client_msg_id: Some(c),
                code,
                ..
            } => {
                assert_eq!(code, ErrorCode::Invalid);
                answers.push((c, None));
            }
            _ => {}
        }
    }
    let order: Vec<&str> = answers.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(order, ["t-1", "m-1", "m-2", "t-2"]);
    assert_eq!(answers[2].1, None);

    let photo = b
        .until(|f| match f {
            ServerFrame::Message { message } if message.client_msg_id == "m-1" => {
                Some(message.clone())
            }
            _ => None,
        })
        .await;
    let Content::Image(a) = photo.content else {
        panic!("expected an image, got {:?}", photo.content);
    };
    assert_eq!(
        (a.facts.width, a.facts.height, a.facts.thumbnail),
        (Some(64), Some(48), true)
    );
    assert_eq!(
        (a.media_id.as_str(), a.facts.content_type.as_str()),
        (id.as_str(), "image/png")
    );
    assert_eq!(a.caption, "a square-ish photo");
    assert!(a.facts.blurhash.is_some());
    // Bob may now fetch it: the share was recorded before the message went out.
    let got = server
        .http
        .get(server.url(&format!("/v1/media/{id}")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
}

#[tokio::test]
async fn media_sends_are_checked_before_anything_is_stored() {
    let server = Server::start().await;
    let alice = server.user("+15550100011", "Alice").await;
    let bob = server.user("+15550100012", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let mut a = server.connect(&alice).await;
    let cases = [
        (json!({"kind": "image"}), ErrorCode::Invalid),
        (
            json!({"kind": "file", "media_id": "0".repeat(64)}),
            ErrorCode::NotFound,
        ),
        (
            json!({"kind": "text", "body": "x", "media_id": "0".repeat(64)}),
            ErrorCode::Invalid,
        ),
    ];
    for (i, (extra, code)) in cases.into_iter().enumerate() {
        let mut frame = json!({"type": "send", "chat_id": chat, "client_msg_id": format!("b-{i}")});
        for (k, v) in extra.as_object().unwrap() {
            frame[k] = v.clone();
        }
        a.send(frame).await;
        let got = a
            .until(|f| match f {
                ServerFrame::Error { code, .. } => Some(*code),
                _ => None,
            })
            .await;
        assert_eq!(got, code, "case {i}");
    }
    assert_eq!(
        a.say(chat, "ok", "still fine").await,
        1,
        "nothing was stored before"
    );
}

/// A photo uploaded with a name and sent as a `file` keeps the name; sent
/// as an `image` it shows none.
#[tokio::test]
async fn a_photo_sent_as_a_file_keeps_its_name() {
    let server = Server::start().await;
    let alice = server.user("+15550100021", "Alice").await;
    let bob = server.user("+15550100022", "Bob").await;
    let chat = server.direct(&alice, &bob).await;
    let id = upload_png(&server, &alice.token, "beach.png").await;
    let path = format!("/v1/chats/{chat}/messages");
    for (n, kind) in ["file", "image"].into_iter().enumerate() {
        let body = json!({"client_msg_id": format!("p-{n}"), "kind": kind, "media_id": id});
        let (status, _) = server.post(&path, Some(&alice.token), body).await;
        assert_eq!(status, 201, "{kind}");
    }
    let (_, page) = server.get(&path, &bob.token).await;
    let names: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].clone(), m["name"].clone()))
        .collect();
    // Newest first.
    assert_eq!(
        names,
        [
            (json!("image"), Value::Null),
            (json!("file"), json!("beach.png"))
        ]
    );
}

/// A signed link lives 1 s to 7 days (anything else is refused, not
/// trimmed), and its `url` is relative to the server that issued it.
#[tokio::test]
async fn a_signed_link_is_relative_and_its_ttl_is_refused_out_of_range() {
    let server = Server::start().await;
    let alice = server.user("+15550100031", "Alice").await;
    let id = upload_png(&server, &alice.token, "p.png").await;
    for ttl in ["0", "-5", "604801"] {
        let (status, body) = server
            .post(
                &format!("/v1/media/{id}/link?ttl={ttl}"),
                Some(&alice.token),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid")),
            "{ttl}"
        );
    }
    let (status, link) = server
        .post(
            &format!("/v1/media/{id}/link?ttl=604800"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/v1/media/{id}?")), "{url}");
    // Joined to the server's base URL, it works without a token.
    let got = server.http.get(server.url(url)).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), png().as_slice());
}

/// Uploads [`png`] as `name`; its media id.
async fn upload_png(server: &Server, token: &str, name: &str) -> String {
    let up: Value = server
        .http
        .post(server.url(&format!("/v1/media?name={name}")))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(png())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    up["media_id"].as_str().unwrap().to_owned()
}
