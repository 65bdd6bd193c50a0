//! Steady send load for scenarios that change a cluster under it: pairs of
//! users in direct chats, a paced sender task, and the settle-and-check that
//! ends such a scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use uuid::Uuid;

use crate::api::{Api, User};
use crate::checks::check;
use crate::device::Device;

/// Pairs of users in direct chats: the sender of pair `i` on gateway
/// `i % urls.len()`, its receiver on the next one.
pub struct Pairs {
    pub readers: Vec<User>,
    pub chats: Vec<Uuid>,
    pub senders: Vec<Device>,
    pub receivers: Vec<Device>,
}

impl Pairs {
    /// `n` pairs over the gateways at `urls` (`http://host:port`), every
    /// device connected.
    pub async fn new(urls: &[String], n: usize) -> Result<Self> {
        let mut p = Self {
            readers: Vec::new(),
            chats: Vec::new(),
            senders: Vec::new(),
            receivers: Vec::new(),
        };
        for i in 0..n {
            let (us, ur) = (&urls[i % urls.len()], &urls[(i + 1) % urls.len()]);
            let s = Api::new(us).user("sender").await?;
            let r = Api::new(ur).user("receiver").await?;
            let chat = Api::new(us).direct(&s, &r).await?;
            let mut sd = Device::new(&s.token);
            sd.connect(us).await?;
            let mut rd = Device::new(&r.token);
            rd.connect(ur).await?;
            p.chats.push(chat);
            p.senders.push(sd);
            p.receivers.push(rd);
            p.readers.push(s);
        }
        Ok(p)
    }

    /// Waits for every send to be acked and every receiver to hold everything
    /// (a dropped device reconnects and resumes, as a real client does), then
    /// checks every chat through `api`.
    pub async fn settle(
        self,
        api: &Api,
        mut senders: Vec<Device>,
        rounds: usize,
        wait: Duration,
    ) -> Result<()> {
        let mut receivers = self.receivers;
        for (i, d) in senders.iter_mut().enumerate() {
            d.until_resuming(wait, |d| d.outbox.is_empty())
                .await
                .with_context(|| format!("sender {i}"))?;
            ensure!(
                d.acked.len() == rounds,
                "sender {i}: acked {} of {rounds}; refused: {:?}",
                d.acked.len(),
                d.refused
            );
        }
        for (i, (d, chat)) in receivers.iter_mut().zip(&self.chats).enumerate() {
            d.until_resuming(wait, |d| d.seqs(*chat).len() >= rounds)
                .await
                .with_context(|| format!("receiver {i}"))?;
        }
        for (i, chat) in self.chats.iter().enumerate() {
            check(
                api,
                &self.readers[i],
                *chat,
                &[&senders[i]],
                &[&receivers[i]],
            )
            .await
            .with_context(|| format!("chat {i}"))?;
        }
        Ok(())
    }
}

/// Sends `rounds` messages from every sender, paced (10 ms between rounds),
/// in a task that answers the senders when done.
pub fn load(
    senders: Vec<Device>,
    chats: Vec<Uuid>,
    rounds: usize,
) -> tokio::task::JoinHandle<Result<Vec<Device>>> {
    let run = Load::start(senders, chats, rounds);
    tokio::spawn(async move { Ok(run.task.await??.0) })
}

/// A send load running in a task until told to stop (or `max_rounds`): a
/// sender whose connection drops reconnects and resumes, as a real client
/// does, so the load goes on through gateway restarts.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(Vec<Device>, usize)>>,
}

impl Load {
    pub fn start(mut senders: Vec<Device>, chats: Vec<Uuid>, max_rounds: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut rounds = 0;
            while rounds < max_rounds && !stopped.load(Ordering::Relaxed) {
                for (d, chat) in senders.iter_mut().zip(&chats) {
                    if d.send(*chat, &format!("m-{rounds}"), "load").await.is_err() {
                        d.reconnect(RECONNECT).await?;
                    }
                    loop {
                        match d.next_frame(Duration::from_millis(1)).await {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => d.reconnect(RECONNECT).await?,
                        }
                    }
                }
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok((senders, rounds))
        });
        Self { stop, task }
    }

    /// Stops after the round in progress; the senders and the rounds sent.
    pub async fn stop(self) -> Result<(Vec<Device>, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// How long a sender keeps trying to reconnect.
const RECONNECT: Duration = Duration::from_secs(60);
