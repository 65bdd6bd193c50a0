//! `client`: what one `confab-client` session sustains. One device sends
//! `messages` texts as fast as its send queue allows (pipelined, each
//! retried until stored); a second device of another user receives them.
//! Prints acked and received msgs/s and the client process's CPU.

use std::time::Instant;

use anyhow::{Result, ensure};
use confab_client::protocol::SendKind;
use confab_client::{Client, Event, Options};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Target, cpu_secs};

pub async fn run(target: &Target, messages: usize, window: usize) -> Result<()> {
    let users = target.users(2).await?;
    let chat = target
        .rest(&users[0])
        .direct(&users[1].phone)
        .await?
        .chat_id;
    let url = format!("http://{}", target.addr);
    let mut options = Options::new(&url, &users[0].token);
    options.pacing.window = window;
    let (sender, _) = Client::connect(options).await?;
    let (receiver, mut events) = Client::connect(Options::new(&url, &users[1].token)).await?;

    let cpu0 = cpu_secs(std::process::id());
    let t0 = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut got = 0;
        while got < messages {
            match events.next().await {
                Some(Event::Message(_)) => got += 1,
                Some(_) => {}
                None => break,
            }
        }
        (got, t0.elapsed())
    });
    let mut sends: FuturesUnordered<_> = (0..messages)
        .map(|i| {
            sender.submit(
                chat,
                format!("c{i}"),
                SendKind::Text,
                format!("client {i}"),
                None,
            )
        })
        .collect();
    let mut acked = 0;
    while let Some(sent) = sends.next().await {
        sent?;
        acked += 1;
    }
    let acked_in = t0.elapsed();
    let (received, received_in) = receiving.await?;
    let cpu = cpu0.zip(cpu_secs(std::process::id())).map(|(a, b)| b - a);
    ensure!(received == messages, "received {received} of {messages}");
    println!("scenario            one confab-client session, window {window}");
    println!(
        "acked sends         {acked} in {:.2} s ({:.0} msgs/s)",
        acked_in.as_secs_f64(),
        acked as f64 / acked_in.as_secs_f64()
    );
    println!(
        "received            {received} in {:.2} s ({:.0} msgs/s)",
        received_in.as_secs_f64(),
        received as f64 / received_in.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!("bench CPU           {cpu:.2} s (both client sessions)");
    }
    sender.close().await;
    receiver.close().await;
    Ok(())
}
