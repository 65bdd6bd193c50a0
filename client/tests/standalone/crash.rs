//! kill -9 with sends in flight: the server dies mid-stream and comes back
//! on the same data. Every send the client reports stored arrives at the
//! other device exactly once, with the seq it was acked at, in the order it
//! was sent; the sends in flight at the kill are retried until stored.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use confab_client::protocol::SendKind;
use confab_client::protocol::model::Content;
use confab_client::{Event, Sent};
use futures::StreamExt;
use futures::stream::FuturesOrdered;

use super::harness::{Server, ann_and_bob, connect, until};

const TOTAL: usize = 300;

#[tokio::test]
async fn kill_dash_nine_with_sends_in_flight_every_acked_message_once_in_order() -> Result<()> {
    let mut server = Server::start(&["--rate", "5000", "--burst", "5000"]).await?;
    let (ann, bob, chat) = ann_and_bob(&server).await?;
    let (a, mut a_events) = connect(&server, &ann).await?;
    let (b, mut b_events) = connect(&server, &bob).await?;

    let body = |i: usize| format!("m{i:03}");
    let mut sends: FuturesOrdered<_> = (0..TOTAL)
        .map(|i| a.submit(chat, format!("crash-{i:03}"), SendKind::Text, body(i), None))
        .collect();
    let mut acked: Vec<Sent> = Vec::new();
    while acked.len() < TOTAL / 3 {
        acked.push(sends.next().await.expect("a send per message")?);
    }
    server.kill();
    let before_kill = acked.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await?;
    while let Some(sent) = sends.next().await {
        acked.push(sent?);
    }
    assert!(before_kill < TOTAL, "the kill came with sends in flight");

    // Bob sees each once, gapless, in the order sent, at the acked seqs.
    let mut got = BTreeMap::new();
    until(&mut b_events, |e| {
        if let Event::Message(m) = e
            && let Content::Text { body } = m.content
        {
            assert!(
                got.insert(m.seq, body).is_none(),
                "seq {} shown twice",
                m.seq
            );
        }
        (got.len() >= TOTAL).then_some(())
    })
    .await?;
    let seqs: Vec<u64> = got.keys().copied().collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );
    for (i, sent) in acked.iter().enumerate() {
        assert_eq!(
            got.get(&sent.seq),
            Some(&body(i)),
            "send {i} at its acked seq"
        );
    }
    let retried = std::iter::from_fn(|| a_events.try_next())
        .filter(|e| matches!(e, Event::Retrying { .. }))
        .count();
    let duplicates = acked.iter().filter(|s| s.duplicate).count();
    println!(
        "acked before the kill: {before_kill}; answered as duplicates after it: {duplicates}; \
         retried on request: {retried}"
    );
    a.close().await;
    b.close().await;
    Ok(())
}
