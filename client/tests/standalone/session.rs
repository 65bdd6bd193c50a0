//! The session: sends acked and delivered once in order, receipts and
//! typing heard, requests answered, resume from stored watermarks, and
//! refusals typed with the id of what they refuse.

use std::sync::Arc;

use anyhow::Result;
use confab_client::protocol::model::Content;
use confab_client::protocol::{ErrorCode, SendKind, ServerFrame};
use confab_client::{Client, Error, Event, JsonFile};
use futures::future::try_join_all;

use super::harness::{Server, WAIT, ann_and_bob, connect, options, until, user};

/// The text bodies of the next `n` messages `events` shows.
async fn texts(events: &mut confab_client::Events, n: usize) -> Result<Vec<(u64, String)>> {
    let mut got = Vec::new();
    until(events, |e| {
        if let Event::Message(m) = e
            && let Content::Text { body } = m.content
        {
            got.push((m.seq, body));
        }
        (got.len() >= n).then_some(())
    })
    .await?;
    Ok(got)
}

#[tokio::test]
async fn pipelined_sends_are_acked_and_arrive_once_in_order() -> Result<()> {
    let server = Server::start(&[]).await?;
    let (ann, bob, chat) = ann_and_bob(&server).await?;
    let (a, mut a_events) = connect(&server, &ann).await?;
    let (b, mut b_events) = connect(&server, &bob).await?;

    let sends = (0..50).map(|i| {
        let id = format!("m-{i:02}");
        a.submit(chat, id, SendKind::Text, format!("hello {i:02}"), None)
    });
    let acked = try_join_all(sends).await?;
    let seqs: Vec<u64> = acked.iter().map(|s| s.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, in order: {seqs:?}"
    );
    assert!(acked.iter().all(|s| !s.duplicate));

    let got = texts(&mut b_events, 50).await?;
    let want: Vec<(u64, String)> = (0..50)
        .map(|i| (seqs[i], format!("hello {i:02}")))
        .collect();
    assert_eq!(got, want);

    // Receipts reach the sender; typing reaches the other member.
    let last = *seqs.last().unwrap();
    b.read(chat, last).await?;
    b.typing(chat).await?;
    let read = until(&mut a_events, |e| match e {
        Event::Live(ServerFrame::Receipt { read_seq, .. }) if read_seq == last => Some(read_seq),
        Event::Message(m) => panic!("the sending session got its own message back: {m:?}"),
        _ => None,
    })
    .await?;
    assert_eq!(read, last);
    until(&mut a_events, |e| {
        matches!(e, Event::Live(ServerFrame::Typing { user_id, .. }) if user_id == bob.id)
            .then_some(())
    })
    .await?;
    a.close().await;
    b.close().await;
    Ok(())
}

#[tokio::test]
async fn requests_page_history_and_find_people() -> Result<()> {
    let server = Server::start(&[]).await?;
    let (ann, bob) = (user(&server, "Ann").await?, user(&server, "Bob").await?);
    let (a, _events) = connect(&server, &ann).await?;

    assert_eq!(a.lookup(&bob.phone).await?, (bob.id, "Bob".to_owned()));
    let chat = a.open_direct(&bob.phone).await?;
    assert_eq!(
        a.open_direct(&bob.phone).await?.chat_id,
        chat.chat_id,
        "one per pair"
    );
    for i in 0..5 {
        a.send_text(chat.chat_id, format!("n{i}")).await?;
    }
    // Newest first, two at a time, down to the start of the chat.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = a.history(chat.chat_id, before, 2).await?;
        pages.push(page.iter().map(|m| m.seq).collect::<Vec<_>>());
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let seqs: Vec<u64> = pages.concat();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first: {pages:?}"
    );
    assert_eq!(seqs.last(), Some(&1), "down to the first message");
    assert!(pages.iter().all(|p| p.len() <= 2));

    let group = a.create_group("Climbing", vec![bob.id]).await?;
    assert_eq!(group.members.len(), 2);
    assert_eq!(a.chats().await?.len(), 2);
    let (online, _) = a.presence(bob.id).await?;
    assert!(!online, "Bob has no session");

    // A refused request is a typed error, not a hang.
    let err = a.history(uuid::Uuid::new_v4(), None, 0).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid), "{err:?}");
    a.close().await;
    Ok(())
}

#[tokio::test]
async fn a_device_resumes_from_its_stored_watermarks_with_nothing_lost_or_shown_twice() -> Result<()>
{
    let server = Server::start(&[]).await?;
    let (ann, bob, chat) = ann_and_bob(&server).await?;
    let (a, _a_events) = connect(&server, &ann).await?;
    let dir = tempfile::tempdir()?;
    let file = || Arc::new(JsonFile::new(dir.path().join("bob.json")));

    for i in 0..3 {
        a.send_text(chat, format!("before {i}")).await?;
    }
    let mut o = options(&server, &bob);
    o.watermarks = file();
    let (b, mut b_events) = Client::connect(o).await?;
    assert_eq!(texts(&mut b_events, 3).await?.len(), 3);
    b.close().await; // saves the watermarks

    for i in 0..4 {
        a.send_text(chat, format!("after {i}")).await?;
    }
    let mut o = options(&server, &bob);
    o.watermarks = file();
    let (b, mut b_events) = Client::connect(o).await?;
    // The backlog is in once `connect` returned: exactly the four new ones.
    let got: Vec<String> = texts(&mut b_events, 4)
        .await?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(got, ["after 0", "after 1", "after 2", "after 3"]);
    let more = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        loop {
            if let Some(Event::Message(m)) = b_events.next().await {
                return m;
            }
        }
    });
    assert!(more.await.is_err(), "nothing shown twice");
    b.close().await;
    a.close().await;
    Ok(())
}

#[tokio::test]
async fn refusals_name_the_send_they_refuse_and_the_session_goes_on() -> Result<()> {
    let server = Server::start(&[]).await?;
    let (ann, _bob, chat) = ann_and_bob(&server).await?;
    let (a, mut events) = connect(&server, &ann).await?;

    let stranger = uuid::Uuid::new_v4();
    let err = a
        .submit(stranger, "x-1".into(), SendKind::Text, "hi".into(), None)
        .await
        .unwrap_err();
    let code = err.code();
    assert!(
        matches!(code, Some(ErrorCode::NotMember | ErrorCode::NotFound)),
        "{err:?}"
    );
    let long = "x".repeat(16 * 1024 + 1);
    let err = a
        .submit(chat, "x-2".into(), SendKind::Text, long, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid), "{err:?}");
    let refused: Vec<String> = {
        let mut ids = Vec::new();
        until(&mut events, |e| {
            if let Event::Refused { client_msg_id, .. } = e {
                ids.push(client_msg_id);
            }
            (ids.len() == 2).then_some(())
        })
        .await?;
        ids
    };
    assert_eq!(refused, ["x-1", "x-2"]);
    assert!(a.send_text(chat, "still here").await.is_ok());
    a.close().await;
    Ok(())
}

#[tokio::test]
async fn a_bad_token_stops_the_session_instead_of_retrying_forever() -> Result<()> {
    let server = Server::start(&[]).await?;
    let err = Client::connect(confab_client::Options::new(&server.url, "not-a-token"))
        .await
        .unwrap_err();
    let unauthenticated = matches!(err, Error::Closed { code: 4100, .. })
        || err.code() == Some(ErrorCode::Unauthenticated);
    assert!(unauthenticated, "{err:?}");
    assert!(!err.retryable());

    // A session that has started stops, and its queued sends fail, when
    // it is closed.
    let ann = user(&server, "Ann").await?;
    let (a, mut events) = Client::start(options(&server, &ann));
    until(&mut events, |e| matches!(e, Event::Synced(_)).then_some(())).await?;
    a.close().await;
    let stopped = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Stopped(e)) = events.next().await {
                return e;
            }
        }
    })
    .await?;
    assert!(matches!(stopped, Error::Stopped));
    let after = a.send_text(uuid::Uuid::new_v4(), "late").await.unwrap_err();
    assert!(matches!(after, Error::Stopped), "{after:?}");
    Ok(())
}

#[tokio::test]
async fn rest_and_the_session_work_over_tls() -> Result<()> {
    let server = Server::start_tls().await?;
    assert!(server.url.starts_with("https://"));
    let (ann, bob, chat) = ann_and_bob(&server).await?;
    let (a, _a_events) = connect(&server, &ann).await?;
    let (b, mut b_events) = connect(&server, &bob).await?;
    a.send_text(chat, "over tls").await?;
    assert_eq!(texts(&mut b_events, 1).await?[0].1, "over tls");

    // Without the server's CA in its trust, the session fails to connect.
    let err = Client::connect(confab_client::Options::new(&server.url, &bob.session.token))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    a.close().await;
    b.close().await;
    Ok(())
}
