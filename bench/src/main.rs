//! `confab-bench`: drives real WebSocket clients against a chat-runtime and
//! prints throughput, latency percentiles and server memory.
//!
//! By default it starts `chat-runtime standalone` (the binary next to this
//! one) on a fresh data directory, so it knows the server's pid for RSS;
//! `--url` targets a running server instead (RSS then needs `--pid`).
//!
//! Scenarios:
//! - `direct`: P pairs of users; each sender sends at a share of the target
//!   rate; receivers acknowledge `delivered` every 16 messages. Several
//!   rates (`--rate 1000,5000` or `--ladder`) run one after another.
//! - `group`: G groups of M members (M ≤ 100); one sender per group.
//! - With `--compare`, `direct` and `group` run the same load through a raw
//!   WebSocket relay built into the bench ([`relay`]) right after each
//!   server run: every figure beside its ceiling ([`load`]).
//! - `idle`: N authenticated, idle connections from several 127.0.0.x
//!   source addresses; reports server RSS per connection.
//! - `store`: embedded store append throughput at several concurrencies
//!   (group commit), no network.
//! - `media`: upload and download throughput of one large file against the
//!   bucket backend directly (`object_store`) and through the server, and
//!   the server's peak RSS while it streams ([`media`]).
//! - `push`: offline recipients with webhook devices served by the bench;
//!   pushes/s and send-to-push latency ([`push`]).
//! - `abuse`: bombs and floods at the default limits; the answers and the
//!   server's peak RSS per case ([`abuse`]).
//! - `client`: what one session of the Rust client (`confab-client`)
//!   sustains, sending pipelined to another ([`client`]).
//!
//! Accounts, chats and handshakes go through `confab-client`; the measured
//! loops of `direct` and `group` write and read frames themselves, the same
//! code against the server and the relay.

mod abuse;
mod client;
mod load;
mod media;
mod push;
mod relay;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chat_runtime::protocol::ServerFrame;
use clap::{Parser, Subcommand};
use tokio::net::TcpSocket;

#[derive(Parser)]
#[command(about = "Load generator and benchmark for chat-runtime")]
struct Args {
    /// A running server (http://host:port); default: start a standalone one.
    #[arg(long)]
    url: Option<String>,
    /// Pid of the running server given by --url, for RSS.
    #[arg(long)]
    pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// 1:1 chats at a target total rate.
    Direct {
        #[arg(long, default_value_t = 200)]
        pairs: usize,
        /// Target messages per second in total; several (comma-separated)
        /// run one after another.
        #[arg(long, value_delimiter = ',', default_value = "30000")]
        rate: Vec<u64>,
        /// The standard ladder of rates: 1k, 2k, 5k, 10k, 20k, 30k msgs/s.
        #[arg(long, conflicts_with = "rate")]
        ladder: bool,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Each rate also through the built-in relay (the ceiling).
        #[arg(long)]
        compare: bool,
    },
    /// Group fan-out.
    Group {
        #[arg(long, default_value_t = 4)]
        groups: usize,
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Target messages per second in total (deliveries = rate × members).
        #[arg(long, default_value_t = 3_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The same fan-out also through the built-in relay (the ceiling).
        #[arg(long)]
        compare: bool,
    },
    /// Idle authenticated connections.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Source addresses 127.0.0.2 … 127.0.0.(1+N).
        #[arg(long, default_value_t = 4)]
        sources: u8,
    },
    /// What the gateway↔shard wire versions cost: bytes, encode and decode
    /// time of a typical command and answer (no server).
    Wire {
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// Embedded store append throughput (group commit), no network.
    Store {
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
    },
    /// Large-file upload and download, raw backend vs through the server.
    Media {
        /// Size of the file, in MiB.
        #[arg(long, default_value_t = 512)]
        mib: u64,
        /// JSON list of buckets (as `--media-buckets` of the server); the
        /// first is used. Default: a local folder.
        #[arg(long)]
        buckets: Option<PathBuf>,
    },
    /// Floods and bombs at the server's default limits: answers and RSS.
    Abuse,
    /// One Rust client session sending pipelined to another.
    Client {
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Sends on the wire at once.
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// Push notifications to offline recipients' webhook devices.
    Push {
        #[arg(long, default_value_t = 200)]
        recipients: usize,
        #[arg(long, default_value_t = 5_000)]
        messages: u64,
    },
}

/// A WebSocket of the bench: to the server (opened by `confab-client`) or
/// to the relay; the measured loops read and write its messages directly,
/// the same code for both.
type Ws = confab_client::Socket;

struct User {
    id: String,
    token: String,
    phone: String,
}

struct Target {
    addr: SocketAddr,
    pid: Option<u32>,
    http: reqwest::Client,
    _child: Option<ChildGuard>,
    _dir: Option<tempfile::TempDir>,
}

struct ChildGuard(std::process::Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU seconds of a process (from /proc).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Server flags for load: limits out of the way. The idle scenario holds
/// many sessions for a few users, and every client of the bench comes from
/// one address.
fn roomy() -> Vec<String> {
    [
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--max-connections",
        "200000",
        "--max-sessions-per-user",
        "200000",
        "--max-sessions-per-address",
        "200000",
        "--signups-per-minute",
        "1000000",
    ]
    .map(String::from)
    .to_vec()
}

/// Samples the server's RSS until `stop`; returns the largest, in KiB.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn start_target(url: Option<String>, pid: Option<u32>, extra: &[String]) -> Result<Target> {
    let http = reqwest::Client::new();
    if let Some(url) = url {
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        return Ok(Target {
            addr,
            pid,
            http,
            _child: None,
            _dir: None,
        });
    }
    let dir = tempfile::tempdir()?;
    let port = portpicker::pick_unused_port().context("no free port")?;
    let exe: PathBuf = std::env::current_exe()?.with_file_name("chat-runtime");
    let child = std::process::Command::new(&exe)
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .env("RUST_LOG", "warn")
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;
    let pid = Some(child.id());
    let target = Target {
        addr: format!("127.0.0.1:{port}").parse()?,
        pid,
        http,
        _child: Some(ChildGuard(child)),
        _dir: Some(dir),
    };
    for _ in 0..100 {
        if target
            .http
            .get(format!("http://{}/healthz", target.addr))
            .send()
            .await
            .is_ok()
        {
            return Ok(target);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("server did not start")
}

impl Target {
    /// Registers and logs in a user.
    async fn user(&self, phone: String) -> Result<User> {
        let rest = confab_client::Rest::new(format!("http://{}", self.addr));
        rest.register(&phone, "bench", "bench-pass").await?;
        let session = rest.login(&phone, "bench-pass").await?;
        Ok(User {
            id: session.user_id.to_string(),
            token: session.token,
            phone,
        })
    }

    /// The REST API as `user`.
    fn rest(&self, user: &User) -> confab_client::Rest {
        confab_client::Rest::new(format!("http://{}", self.addr)).with_token(&user.token)
    }

    async fn users(&self, n: usize) -> Result<Vec<User>> {
        let base = rand::random::<u32>() as u64 % 1_000_000 * 1000;
        let mut out = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
            let futs = chunk
                .iter()
                .map(|i| self.user(format!("+1{:010}", base + *i as u64)));
            for r in futures::future::join_all(futs).await {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// A session of `token`, from `source` if given, once `synced`.
    async fn connect(&self, token: &str, source: Option<std::net::IpAddr>) -> Result<Ws> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        // Small frames go out at once, as from any chat client.
        stream.set_nodelay(true)?;
        let base = format!("http://{}", self.addr);
        let mut conn = confab_client::Connection::over(Box::new(stream), &base).await?;
        conn.hello(token, &Default::default()).await?;
        loop {
            if let ServerFrame::Synced { .. } = conn.next().await? {
                return Ok(conn.into_inner());
            }
        }
    }
}

async fn idle(target: &Target, connections: usize, sources: u8) -> Result<()> {
    let users = target.users(4).await?;
    let before = target.pid.and_then(rss_kib);
    let started = Instant::now();
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let src = std::net::IpAddr::from([127, 0, 0, 2 + (i % sources.max(1) as usize) as u8]);
        match target
            .connect(&users[i % users.len()].token, Some(src))
            .await
        {
            Ok(ws) => held.push(ws),
            Err(e) => {
                println!("stopped at {i} connections: {e:#}");
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target.pid.and_then(rss_kib);
    println!("scenario            idle");
    println!(
        "connections         {} (opened in {:.1} s)",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "server RSS          {:.1} MiB → {:.1} MiB",
            b as f64 / 1024.0,
            a as f64 / 1024.0
        );
        println!(
            "RSS per connection  {:.2} KiB",
            (a.saturating_sub(b)) as f64 / held.len().max(1) as f64
        );
    }
    Ok(())
}

async fn store_bench(messages: u64) -> Result<()> {
    use chat_runtime::model::{Content, Message as Msg, now_ms};
    use chat_runtime::store::Store;
    use chat_runtime::store::embedded::EmbeddedStore;
    println!("scenario            embedded store appends (group commit, fsync per commit)");
    for concurrency in [1u64, 16, 256] {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(EmbeddedStore::open(dir.path())?);
        let per = messages / concurrency;
        let t = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let chat = uuid::Uuid::new_v4();
                    for seq in 1..=per {
                        let m = Msg {
                            chat_id: chat,
                            seq,
                            sender: chat,
                            client_msg_id: format!("{seq}"),
                            content: Content::Text {
                                body: "x".repeat(100),
                            },
                            sent_at: now_ms(),
                        };
                        store.append(&m, None).await.expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        let n = per * concurrency;
        println!(
            "concurrency {concurrency:>4}    {:>8.0} appends/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    chat_runtime::install_crypto();
    let Args { url, pid, scenario } = Args::parse();
    match scenario {
        Scenario::Store { messages } => return store_bench(messages).await,
        Scenario::Wire { iterations } => return wire::run(iterations),
        _ => {}
    }
    let extra = match &scenario {
        Scenario::Media { mib, buckets } => {
            [roomy(), media::server_args(*mib, buckets.as_deref())].concat()
        }
        Scenario::Push { .. } => [roomy(), push::server_args()].concat(),
        Scenario::Abuse => Vec::new(),
        _ => roomy(),
    };
    let target = start_target(url, pid, &extra).await?;
    match scenario {
        Scenario::Direct {
            pairs,
            rate,
            ladder,
            seconds,
            compare,
        } => {
            let rates = if ladder { load::LADDER.to_vec() } else { rate };
            load::direct(&target, pairs, &rates, seconds, compare).await
        }
        Scenario::Group {
            groups,
            members,
            rate,
            seconds,
            compare,
        } => {
            if members > 100 {
                bail!("groups hold at most 100 members");
            }
            load::group(&target, groups, members, rate, seconds, compare).await
        }
        Scenario::Idle {
            connections,
            sources,
        } => idle(&target, connections, sources).await,
        Scenario::Media { mib, buckets } => media::run(&target, mib, buckets.as_deref()).await,
        Scenario::Push {
            recipients,
            messages,
        } => push::run(&target, recipients, messages).await,
        Scenario::Abuse => abuse::run(&target).await,
        Scenario::Client { messages, window } => client::run(&target, messages, window).await,
        Scenario::Store { .. } | Scenario::Wire { .. } => unreachable!("handled above"),
    }
}
