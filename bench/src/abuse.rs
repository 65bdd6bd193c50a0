//! `abuse`: the server's memory and answers under the floods a public chat
//! service sees, at its default limits: decompression bombs, commands for
//! chats that do not exist, REST mutation floods, password guessing, sign-up
//! floods and silent sockets (the server runs with its defaults). Prints, per case, what the server answered and
//! its RSS before and at peak (sampled every 20 ms).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Result;
use chat_runtime::media::fixtures::gif_bomb;
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Target, rss_kib, sample_rss};

/// Statuses seen, as `201×10 429×90`.
fn tally(statuses: impl IntoIterator<Item = u16>) -> String {
    let mut counts = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_insert(0u32) += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `case` while sampling the server's RSS; prints one line.
async fn measured<F: Future<Output = Result<String>>>(
    target: &Target,
    name: &str,
    case: F,
) -> Result<()> {
    let before = target.pid.and_then(rss_kib).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = target.pid.map(|p| sample_rss(p, stop.clone()));
    let started = Instant::now();
    let outcome = case.await?;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = match sampler {
        Some(s) => s.await?,
        None => 0,
    };
    let healthy = target
        .http
        .get(format!("http://{}/healthz", target.addr))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    println!(
        "{name:<34} {outcome:<28} RSS {:>6.1} → peak {:>6.1} MiB  {:>5.1} s  healthy: {healthy}",
        before as f64 / 1024.0,
        peak.max(before) as f64 / 1024.0,
        took.as_secs_f64(),
    );
    Ok(())
}

async fn upload(target: &Target, token: &str, bytes: Vec<u8>) -> u16 {
    let sent = target
        .http
        .post(format!("http://{}/v1/media", target.addr))
        .bearer_auth(token)
        .header("content-type", "image/gif")
        .body(bytes)
        .send()
        .await;
    sent.map_or(0, |r| r.status().as_u16())
}

/// `n` uploads at once of `width`×`height` GIF bombs (each different, so
/// none is a dedup hit).
async fn bombs(target: &Target, token: &str, n: u16, width: u16, height: u16) -> Result<String> {
    let uploads = (0..n).map(|i| upload(target, token, gif_bomb(width - i, height)));
    Ok(tally(futures::future::join_all(uploads).await))
}

/// Receipts for `n` chats that do not exist, over one WebSocket.
async fn unknown_chats(target: &Target, token: &str, n: usize) -> Result<String> {
    let mut ws = target.connect(token, None).await?;
    for _ in 0..n {
        let chat = uuid::Uuid::new_v4();
        let frame = json!({"type": "read", "chat_id": chat, "seq": 1});
        ws.feed(Message::text(frame.to_string())).await?;
    }
    ws.flush().await?;
    // The server answers each; give it time to work through them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(format!("{n} receipts sent"))
}

async fn rest_flood(target: &Target, token: &str, victim: &str, n: usize) -> Result<String> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"title": format!("spam {i}"), "members": [victim]});
        let resp = target
            .http
            .post(format!("http://{}/v1/groups", target.addr))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
    }
    Ok(tally(statuses))
}

async fn guesses(target: &Target, phone: &str, n: usize) -> Result<String> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        // Alternate the victim and unknown numbers, as a guesser would.
        let phone = if i % 2 == 0 {
            phone.to_owned()
        } else {
            format!("+1999{i:07}")
        };
        let body = json!({"phone": phone, "password": format!("guess-{i:04}")});
        let resp = target
            .http
            .post(format!("http://{}/v1/login", target.addr))
            .json(&body)
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
    }
    Ok(tally(statuses))
}

async fn sign_ups(target: &Target, n: usize) -> Result<String> {
    let base = rand::random::<u32>() % 1_000_000;
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("+1888{:07}", base as usize * 10 + i);
        let body = json!({"phone": phone, "display_name": "spam", "password": "spam-pass"});
        let resp = target
            .http
            .post(format!("http://{}/v1/register", target.addr))
            .json(&body)
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
    }
    Ok(tally(statuses))
}

/// `n` sockets that connect and never speak; how many the server closed
/// within `wait`.
async fn silent(target: &Target, n: usize, wait: Duration) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(tokio::net::TcpStream::connect(target.addr).await?);
    }
    let closed = futures::future::join_all(sockets.iter_mut().map(|s| async {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, s.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }))
    .await;
    let n_closed = closed.iter().filter(|c| **c).count();
    Ok(format!("{n_closed}/{n} closed by the server"))
}

pub async fn run(target: &Target) -> Result<()> {
    let users = target.users(2).await?;
    let (mallory, victim) = (&users[0], &users[1]);
    println!("scenario  abuse at the default limits (statuses as status×count)");
    measured(
        target,
        "6 GIF bombs of 128 MP at once",
        bombs(target, &mallory.token, 6, 16_000, 8_000),
    )
    .await?;
    measured(
        target,
        "6 GIF bombs of 39.9 MP at once",
        bombs(target, &mallory.token, 6, 7_000, 5_700),
    )
    .await?;
    measured(
        target,
        "20000 receipts for unknown chats",
        unknown_chats(target, &mallory.token, 20_000),
    )
    .await?;
    measured(
        target,
        "1000 REST group creations",
        rest_flood(target, &mallory.token, &victim.id, 1000),
    )
    .await?;
    measured(
        target,
        "200 password guesses",
        guesses(target, &victim.phone, 200),
    )
    .await?;
    measured(
        target,
        "100 sign-ups from one address",
        sign_ups(target, 100),
    )
    .await?;
    measured(
        target,
        "200 silent sockets (12 s)",
        silent(target, 200, Duration::from_secs(12)),
    )
    .await?;
    Ok(())
}
