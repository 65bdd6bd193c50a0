//! The message load: senders at a target rate, receivers that time each
//! delivery, and the figures of one run ([`Figures`]). `direct` and `group`
//! run it against the chat server and, with `--compare`, against the
//! built-in [`Relay`] in the same run, so every figure comes with its
//! ceiling; `direct` with several rates runs them as a ladder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::relay::Relay;
use super::{Target, User, Ws, cpu_secs, rss_kib};

/// The rates of `direct --ladder`, in messages per second.
pub const LADDER: [u64; 6] = [1_000, 2_000, 5_000, 10_000, 20_000, 30_000];

fn now_us(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// Shared latency recorder.
struct Stats {
    t0: Instant,
    /// This run's id, in every `client_msg_id` it sends.
    run: u32,
    /// Server and bench CPU seconds when the measured phase began.
    cpu_start: std::sync::Mutex<(f64, f64)>,
    delivered: AtomicU64,
    /// Receivers whose connection the server closed (slow consumers).
    cut_off: AtomicU64,
    deliver: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            t0: Instant::now(),
            run: rand::random(),
            cpu_start: std::sync::Mutex::new((0.0, 0.0)),
            delivered: AtomicU64::new(0),
            cut_off: AtomicU64::new(0),
            deliver: Mutex::new(Histogram::new(3).expect("histogram")),
            ack: Mutex::new(Histogram::new(3).expect("histogram")),
        })
    }
}

impl Stats {
    /// Marks the start of the measured phase (after set-up and registration).
    fn start_measuring(&self, server: Option<&Target>) {
        let server = server.and_then(|t| t.pid).and_then(cpu_secs).unwrap_or(0.0);
        let bench = cpu_secs(std::process::id()).unwrap_or(0.0);
        *self.cpu_start.lock().expect("cpu lock") = (server, bench);
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.2} ms", h.value_at_quantile(q) as f64 / 1000.0)
}

/// Receives message events, records send→deliver latency (send time is in
/// the body), acknowledges `delivered` every 16 messages.
/// When receivers stop: set once the senders are done (plus a grace period),
/// so slow set-up never shortens the measured window.
type Deadline = Arc<std::sync::OnceLock<Instant>>;

async fn receiver(mut ws: Ws, stats: Arc<Stats>, deadline: Deadline) {
    let mut local = Histogram::<u64>::new(3).expect("histogram");
    let mut count = 0u64;
    while deadline.get().is_none_or(|d| Instant::now() < *d) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => continue, // quiet: look at the deadline again
            Ok(Some(Ok(msg))) => msg,
            // Closed by the server (a slow consumer at overload) or broken.
            Ok(None | Some(Err(_))) => {
                stats.cut_off.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        let Message::Text(t) = msg else { continue };
        if !t.starts_with("{\"type\":\"message\"") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            continue;
        };
        let m = &v["message"];
        if let Some(sent) = m["body"].as_str().and_then(|b| b.parse::<u64>().ok()) {
            let _ = local.record(now_us(stats.t0).saturating_sub(sent));
            count += 1;
            if count.is_multiple_of(16) {
                let ack = json!({"type":"delivered","chat_id":m["chat_id"],"seq":m["seq"]});
                let _ = ws.send(Message::text(ack.to_string())).await;
            }
        }
    }
    stats.delivered.fetch_add(count, Ordering::Relaxed);
    let _ = stats.deliver.lock().await.add(&local);
}

/// Sends to `chat` at `rate` msgs/s until `until`; records send→ack latency.
/// Writing and reading run apart, so a server that pushes back on one never
/// stalls the other.
async fn sender(ws: Ws, chat: String, rate: f64, stats: Arc<Stats>, until: Instant) -> u64 {
    let (mut sink, mut stream) = ws.split();
    let pending = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let reader = {
        let (pending, stats) = (pending.clone(), stats.clone());
        tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut acked = 0u64;
            let stop = until + Duration::from_secs(2);
            while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(stop.into(), stream.next()).await
            {
                let Message::Text(t) = msg else { continue };
                if t.starts_with("{\"type\":\"sent\"")
                    && let Ok(v) = serde_json::from_str::<Value>(&t)
                    && let Some(id) = v["client_msg_id"].as_str()
                    && let Some(sent) = pending.lock().expect("pending").remove(id)
                {
                    let _ = local.record(now_us(stats.t0).saturating_sub(sent));
                    acked += 1;
                }
            }
            let _ = stats.ack.lock().await.add(&local);
            acked
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        let sent = now_us(stats.t0);
        // Unique across runs: a rate of a ladder reuses the pairs, and a
        // repeated id would be answered as a duplicate, not sent.
        let id = format!("b{}-{n}", stats.run);
        n += 1;
        pending.lock().expect("pending").insert(id.clone(), sent);
        let f = json!({"type":"send","chat_id":chat,"client_msg_id":id,"body":sent.to_string()});
        if sink.send(Message::text(f.to_string())).await.is_err() {
            break;
        }
    }
    reader.await.unwrap_or(0)
}

/// What one run measured.
pub struct Figures {
    pub deliver: Histogram<u64>,
    /// Server CPU while measuring, in % of one core (none for the relay,
    /// which runs inside the bench).
    pub server_cpu: Option<f64>,
    pub delivered_per_sec: f64,
}

/// Prints the figures of a run and returns them.
async fn report(
    name: &str,
    server: Option<&Target>,
    stats: &Stats,
    sent: u64,
    secs: f64,
) -> Figures {
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let d = stats.deliver.lock().await;
    let a = stats.ack.lock().await;
    println!("scenario            {name}");
    println!(
        "acked sends         {sent} ({:.0} msgs/s)",
        sent as f64 / secs
    );
    println!(
        "deliveries          {delivered} ({:.0} /s)",
        delivered as f64 / secs
    );
    let cut_off = stats.cut_off.load(Ordering::Relaxed);
    if cut_off > 0 {
        println!("receivers cut off   {cut_off} (closed by the server: overload)");
    }
    println!(
        "send→ack    p50 {} p99 {} p999 {}",
        pct(&a, 0.5),
        pct(&a, 0.99),
        pct(&a, 0.999)
    );
    println!(
        "send→deliver p50 {} p99 {} p999 {}",
        pct(&d, 0.5),
        pct(&d, 0.99),
        pct(&d, 0.999)
    );
    let pid = server.and_then(|t| t.pid);
    if let Some(rss) = pid.and_then(rss_kib) {
        println!("server RSS          {:.1} MiB", rss as f64 / 1024.0);
    }
    let (server0, bench0) = *stats.cpu_start.lock().expect("cpu lock");
    let server_cpu = pid
        .and_then(cpu_secs)
        .map(|cpu| (cpu - server0) / secs * 100.0);
    if let Some(pct) = server_cpu {
        println!(
            "server CPU          {:.1} s while measuring ({pct:.0}% of one core)",
            pct * secs / 100.0
        );
    }
    if let Some(cpu) = cpu_secs(std::process::id()) {
        println!("bench CPU           {:.1} s while measuring", cpu - bench0);
    }
    println!();
    Figures {
        deliver: d.clone(),
        server_cpu,
        delivered_per_sec: delivered as f64 / secs,
    }
}

/// `direct`: P pairs, each sender at its share of each rate in `rates`;
/// with `compare`, each rate again through the relay.
pub async fn direct(
    target: &Target,
    pairs: usize,
    rates: &[u64],
    seconds: u64,
    compare: bool,
) -> Result<()> {
    let users = target.users(pairs * 2).await?;
    let mut chats = Vec::with_capacity(pairs);
    for pair in users.chunks(2) {
        let direct = target.rest(&pair[0]).direct(&pair[1].phone).await?;
        chats.push(direct.chat_id.to_string());
    }
    let relay = if compare {
        Some(Relay::start().await?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for &rate in rates {
        let per = rate as f64 / pairs as f64;
        let mut load = Load::new();
        for (pair, chat) in users.chunks(2).zip(&chats) {
            load.receiver(target.connect(&pair[1].token, None).await?);
            load.sender(target.connect(&pair[0].token, None).await?, chat.clone());
        }
        let name = format!("direct (1:1) at {rate} msgs/s");
        let server = load.run(Some(target), &name, per, seconds).await?;
        let ceiling = match &relay {
            Some(relay) => {
                let mut load = Load::new();
                for i in 0..pairs {
                    let topic = format!("p{i}");
                    load.receiver(relay.connect(&[&topic]).await?);
                    load.sender(relay.connect(&[]).await?, topic);
                }
                let name = format!("relay (1:1) at {rate} msgs/s");
                Some(load.run(None, &name, per, seconds).await?)
            }
            None => None,
        };
        rows.push((rate, server, ceiling));
    }
    if rows.len() > 1 || compare {
        summary(
            &format!("direct (1:1), {pairs} pairs, {seconds} s per rate"),
            &rows,
        );
    }
    Ok(())
}

/// One line per rate: the server's send→deliver percentiles and CPU, and
/// beside them the relay's and the ratio of the p99s.
fn summary(name: &str, rows: &[(u64, Figures, Option<Figures>)]) {
    println!("summary             {name}");
    println!(
        "{:>8} {:>12} {:>9} {:>9} {:>9} {:>6} | {:>9} {:>9} {:>9} | {:>9}",
        "rate/s",
        "delivered/s",
        "p50",
        "p99",
        "p999",
        "CPU",
        "relay p50",
        "p99",
        "p999",
        "p99 ratio"
    );
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    for (rate, s, relay) in rows {
        let cpu = s.server_cpu.map_or("-".to_owned(), |c| format!("{c:.0}%"));
        let (r50, r99, r999, ratio) = match relay {
            Some(r) => (
                format!("{:.2}", ms(&r.deliver, 0.5)),
                format!("{:.2}", ms(&r.deliver, 0.99)),
                format!("{:.2}", ms(&r.deliver, 0.999)),
                format!(
                    "{:.1}×",
                    ms(&s.deliver, 0.99) / ms(&r.deliver, 0.99).max(0.001)
                ),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{rate:>8} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {cpu:>6} | {r50:>9} {r99:>9} {r999:>9} | {ratio:>9}",
            s.delivered_per_sec,
            ms(&s.deliver, 0.5),
            ms(&s.deliver, 0.99),
            ms(&s.deliver, 0.999),
        );
    }
    println!("(send→deliver latencies in ms; CPU: the server's, in % of one core)");
}

/// Connected receivers and senders, ready to measure.
struct Load {
    stats: Arc<Stats>,
    deadline: Deadline,
    receivers: Vec<tokio::task::JoinHandle<()>>,
    senders: Vec<(Ws, String)>,
}

impl Load {
    fn new() -> Self {
        Self {
            stats: Stats::new(),
            deadline: Deadline::default(),
            receivers: Vec::new(),
            senders: Vec::new(),
        }
    }

    /// A socket that times what it receives.
    fn receiver(&mut self, ws: Ws) {
        let task = receiver(ws, self.stats.clone(), self.deadline.clone());
        self.receivers.push(tokio::spawn(task));
    }

    /// A socket that sends to `chat`.
    fn sender(&mut self, ws: Ws, chat: String) {
        self.senders.push((ws, chat));
    }

    /// Sends at `per` msgs/s per sender for `seconds`, lets receivers drain
    /// for a second, then prints the figures and returns them.
    async fn run(
        self,
        server: Option<&Target>,
        name: &str,
        per: f64,
        seconds: u64,
    ) -> Result<Figures> {
        let Load {
            stats,
            deadline,
            receivers,
            senders,
        } = self;
        stats.start_measuring(server);
        let send_until = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = senders
            .into_iter()
            .map(|(ws, chat)| tokio::spawn(sender(ws, chat, per, stats.clone(), send_until)))
            .collect();
        let mut sent = 0;
        for t in tasks {
            sent += t.await?;
        }
        let _ = deadline.set(Instant::now() + Duration::from_secs(1));
        for r in receivers {
            r.await?;
        }
        Ok(report(name, server, &stats, sent, seconds as f64).await)
    }
}

/// `group`: G groups of M members, one sender per group; with `compare`,
/// the same fan-out through the relay.
pub async fn group(
    target: &Target,
    groups: usize,
    members: usize,
    rate: u64,
    seconds: u64,
    compare: bool,
) -> Result<()> {
    let users: Vec<User> = target.users(members).await?;
    let ids: Vec<uuid::Uuid> = users[1..]
        .iter()
        .map(|u| u.id.parse())
        .collect::<Result<_, _>>()?;
    let mut chats = Vec::new();
    for g in 0..groups {
        let title = format!("bench {g}");
        let group = target.rest(&users[0]).group(&title, &ids).await?;
        chats.push(group.chat_id.to_string());
    }
    let mut load = Load::new();
    for u in &users {
        load.receiver(target.connect(&u.token, None).await?);
    }
    for chat in &chats {
        load.sender(target.connect(&users[0].token, None).await?, chat.clone());
    }
    let per = rate as f64 / groups as f64;
    let name = format!("group ({groups} × {members} members)");
    let server = load.run(Some(target), &name, per, seconds).await?;
    if compare {
        let relay = Relay::start().await?;
        let topics: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();
        let heard: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut load = Load::new();
        for _ in 0..members {
            load.receiver(relay.connect(&heard).await?);
        }
        for topic in &topics {
            load.sender(relay.connect(&[]).await?, topic.clone());
        }
        let name = format!("relay group ({groups} × {members} members)");
        let ceiling = load.run(None, &name, per, seconds).await?;
        let title = format!("group ({groups} × {members} members), {seconds} s");
        summary(&title, &[(rate, server, Some(ceiling))]);
    }
    Ok(())
}
