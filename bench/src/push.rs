//! `confab-bench push`: push notifications end to end. R recipients, each
//! with a webhook device served by this benchmark and no live session, get
//! M messages in all from one sender (REST sends, 64 in flight); prints
//! pushes/s from the first send to the last push received, and the latency
//! from a message's `sent_at` to its push arriving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chat_runtime::push::Notification;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;

use super::{Target, cpu_secs, rss_kib};

/// Extra server flags: webhook pushes to this benchmark's loopback receiver.
pub fn server_args() -> Vec<String> {
    vec!["--push-webhooks".into(), "--push-allow-http".into()]
}

struct Received {
    count: u64,
    latency_ms: Histogram<u64>,
    last: Option<Instant>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn run(target: &Target, recipients: usize, messages: u64) -> Result<()> {
    let got = Arc::new(Mutex::new(Received {
        count: 0,
        latency_ms: Histogram::new(3)?,
        last: None,
    }));
    let g = got.clone();
    let route = axum::Router::new().route(
        "/up/{device}",
        axum::routing::post(move |body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let Ok(n) = serde_json::from_slice::<Notification>(&body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut r = g.lock().await;
                r.count += 1;
                let _ = r
                    .latency_ms
                    .record(now_ms().saturating_sub(n.sent_at as u64));
                r.last = Some(Instant::now());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/up", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, route).await });

    let mut users = target.users(recipients + 1).await?;
    let sender = users.remove(0);
    let mut chats = Vec::with_capacity(recipients);
    for (i, u) in users.iter().enumerate() {
        let body = json!({"platform": "webhook", "token": format!("{base}/{i}")});
        let resp = target
            .http
            .put(format!("http://{}/v1/devices/d{i}", target.addr))
            .bearer_auth(&u.token)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("device registration: {}", resp.status());
        }
        chats.push(target.rest(&sender).direct(&u.phone).await?.chat_id);
    }

    let cpu0 = target.pid.and_then(cpu_secs);
    let t0 = Instant::now();
    let rest = target.rest(&sender);
    let sends = futures::stream::iter(0..messages).map(|i| {
        let chat = chats[i as usize % chats.len()];
        let rest = &rest;
        async move {
            rest.send(chat, &format!("p{i}"), &format!("push {i}"))
                .await
        }
    });
    let sent: Vec<_> = sends.buffer_unordered(64).collect().await;
    let failed = sent.iter().filter(|r| r.is_err()).count();
    let send_secs = t0.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = got.lock().await.count;
        if n >= messages - failed as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = got.lock().await;
    let secs = r.last.map_or(0.0, |l| (l - t0).as_secs_f64());
    println!("scenario            push ({recipients} offline recipients, webhook devices)");
    println!(
        "sent                {} ({:.0} msgs/s, {failed} failed)",
        messages - failed as u64,
        (messages - failed as u64) as f64 / send_secs
    );
    println!(
        "pushes received     {} ({:.0} /s, first send to last push)",
        r.count,
        r.count as f64 / secs
    );
    println!(
        "sent_at→push (ms)   p50 {} p99 {} max {}",
        r.latency_ms.value_at_quantile(0.5),
        r.latency_ms.value_at_quantile(0.99),
        r.latency_ms.max()
    );
    if let Some(rss) = target.pid.and_then(rss_kib) {
        println!("server RSS          {:.1} MiB", rss as f64 / 1024.0);
    }
    if let (Some(c0), Some(c1)) = (cpu0, target.pid.and_then(cpu_secs)) {
        println!(
            "server CPU          {:.1} s ({:.0}% of one core)",
            c1 - c0,
            (c1 - c0) / secs * 100.0
        );
    }
    Ok(())
}
