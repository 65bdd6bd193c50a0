//! The REST client: accounts, chats, sends, history and uploads, with
//! refusals as typed errors carrying the HTTP status and the server's code.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use confab_client::Error;
use confab_client::protocol::ErrorCode;
use confab_client::protocol::model::MediaKind;

use super::harness::{Server, user};

#[tokio::test]
async fn accounts_chats_sends_and_history() -> Result<()> {
    let server = Server::start(&[]).await?;
    let (ann, bob) = (user(&server, "Ann").await?, user(&server, "Bob").await?);
    assert_eq!(ann.rest.lookup(&bob.phone).await?.display_name, "Bob");

    let chat = ann.rest.direct(&bob.phone).await?;
    let first = ann.rest.send(chat.chat_id, "r-1", "hello").await?;
    let again = ann.rest.send(chat.chat_id, "r-1", "hello").await?;
    assert_eq!(again.seq, first.seq, "a retry is stored once");
    assert!(again.duplicate && !first.duplicate);

    let page = bob.rest.history(chat.chat_id, None, 10).await?;
    assert_eq!(page.messages[0].seq, first.seq, "newest first");
    assert_eq!(bob.rest.chats().await?.len(), 1);

    let taken = server
        .rest()
        .register(&ann.phone, "Impostor", "s3cret-pass")
        .await;
    assert!(
        matches!(
            taken,
            Err(Error::Refused {
                code: ErrorCode::Conflict,
                status: Some(409),
                ..
            })
        ),
        "{taken:?}"
    );
    let anonymous = server.rest().chats().await.unwrap_err();
    assert!(
        matches!(
            anonymous,
            Error::Refused {
                status: Some(401),
                ..
            }
        ),
        "{anonymous:?}"
    );
    Ok(())
}

#[tokio::test]
async fn uploads_report_progress_and_are_content_addressed() -> Result<()> {
    let server = Server::start(&[]).await?;
    let ann = user(&server, "Ann").await?;
    let bytes = bytes::Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let seen = seen.clone();
        move |sent, total| seen.lock().unwrap().push((sent, total))
    };
    let up = ann
        .rest
        .upload(
            "data.bin",
            "application/octet-stream",
            bytes.clone(),
            progress,
        )
        .await?;
    assert_eq!(up.kind, MediaKind::File);
    assert_eq!(up.facts.size, 200_000);
    assert_eq!(up.facts.name.as_deref(), Some("data.bin"));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "one report per chunk: {seen:?}");
    assert_eq!(seen.last(), Some(&(200_000, 200_000)));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));

    let again = ann
        .rest
        .upload("copy.bin", "application/octet-stream", bytes, |_, _| {})
        .await?;
    assert_eq!(again.media_id, up.media_id, "the same bytes are one media");
    assert!(again.duplicate);
    Ok(())
}
