//! A client device for scenario tests: one WebSocket session that resumes
//! from its watermarks, remembers what it received, and re-sends what was
//! never acknowledged (with the same `client_msg_id`, as real clients do).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A logged-in device.
pub struct Device {
    pub token: String,
    /// The gateway it last connected to.
    base: String,
    ws: Option<Ws>,
    /// Highest seq held per chat (what `hello` resumes from).
    pub watermarks: BTreeMap<Uuid, u64>,
    /// Every (chat, seq) received, with the client_msg_id it carried.
    pub received: BTreeMap<(Uuid, u64), String>,
    /// Sends not yet acknowledged: client_msg_id → (chat, body).
    pub pending: BTreeMap<String, (Uuid, String)>,
    /// Acknowledged sends: client_msg_id → (chat, seq).
    pub acked: BTreeMap<String, (Uuid, u64)>,
    /// Acknowledgements that said `duplicate` (a retry of a stored send).
    pub duplicates: BTreeSet<String>,
    /// Sends the server refused, with its reason (a scenario expects none).
    pub refused: Vec<String>,
    /// The close code of the last connection the server closed.
    pub closed_with: Option<u16>,
    /// Every close by the server: when, and its code.
    pub closes: Vec<(Instant, u16)>,
    /// The longest wait from a send to its acknowledgement.
    pub slowest_ack: Duration,
    /// For each lost connection, how long until the device was `synced` again.
    pub resumed_after: Vec<Duration>,
    /// When each pending send was (first) sent.
    sent_at: BTreeMap<String, Instant>,
    /// When the connection was lost, until the next `synced`.
    lost_at: Option<Instant>,
    /// Sends the server answered "retry" (`unavailable`, `internal`,
    /// `rate_limited`), and when to send each again.
    retry_at: BTreeMap<String, Instant>,
    /// How many sends were answered "retry" (a chat moving, a shard failing over).
    pub retried: usize,
}

impl Device {
    pub fn new(token: &str) -> Self {
        Self {
            token: token.to_owned(),
            base: String::new(),
            ws: None,
            watermarks: BTreeMap::new(),
            received: BTreeMap::new(),
            pending: BTreeMap::new(),
            acked: BTreeMap::new(),
            duplicates: BTreeSet::new(),
            refused: Vec::new(),
            closed_with: None,
            closes: Vec::new(),
            slowest_ack: Duration::ZERO,
            resumed_after: Vec::new(),
            sent_at: BTreeMap::new(),
            lost_at: None,
            retry_at: BTreeMap::new(),
            retried: 0,
        }
    }

    /// Connects to `base` (`http://host:port`), resumes, and re-sends what
    /// was pending. Returns once `synced` arrived.
    pub async fn connect(&mut self, base: &str) -> Result<()> {
        self.base = base.to_owned();
        let url = format!("{}/v1/ws", base.replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        let hello = json!({"type": "hello", "token": self.token, "watermarks": self.watermarks});
        ws.send(Message::text(hello.to_string())).await?;
        self.ws = Some(ws);
        loop {
            match self.next_frame(Duration::from_secs(20)).await? {
                Some(ServerFrame::Synced { .. }) => break,
                Some(_) => {}
                None => bail!("no `synced` within 20 s of hello"),
            }
        }
        let pending: Vec<_> = self
            .pending
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, (chat, body)) in pending {
            self.write(json!({"type": "send", "chat_id": chat, "client_msg_id": id, "body": body}))
                .await?;
        }
        Ok(())
    }

    /// Reconnects to the same gateway, retrying for up to `wait` (as a real
    /// client does after a "reconnect" close).
    pub async fn reconnect(&mut self, wait: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        let base = self.base.clone();
        loop {
            self.ws = None;
            match self.connect(&base).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub fn disconnect(&mut self) {
        self.lost();
    }

    async fn write(&mut self, v: Value) -> Result<()> {
        let ws = self.ws.as_mut().context("not connected")?;
        ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    /// Sends a text message (remembered as pending until acknowledged).
    pub async fn send(&mut self, chat: Uuid, id: &str, body: &str) -> Result<()> {
        self.pending.insert(id.to_owned(), (chat, body.to_owned()));
        self.sent_at
            .entry(id.to_owned())
            .or_insert_with(Instant::now);
        self.write(json!({"type": "send", "chat_id": chat, "client_msg_id": id, "body": body}))
            .await
    }

    /// Reads one frame (or `None` after `wait` of silence) and records it;
    /// first re-sends what the server asked to retry and is due.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Option<ServerFrame>> {
        let deadline = Instant::now() + wait;
        let msg = loop {
            self.resend_due().await?;
            let until = self
                .retry_at
                .values()
                .min()
                .map_or(deadline, |d| (*d).min(deadline));
            let ws = self.ws.as_mut().context("not connected")?;
            match tokio::time::timeout_at(until.into(), ws.next()).await {
                Err(_) if Instant::now() >= deadline => return Ok(None),
                Err(_) => continue,
                Ok(None) => {
                    self.lost();
                    bail!("connection closed")
                }
                Ok(Some(Err(e))) => {
                    self.lost();
                    return Err(e.into());
                }
                Ok(Some(Ok(m))) => break m,
            }
        };
        let frame: ServerFrame = match msg {
            Message::Text(t) => serde_json::from_str(&t)?,
            Message::Close(c) => {
                self.closed_with = c.as_ref().map(|f| u16::from(f.code));
                if let Some(code) = self.closed_with {
                    self.closes.push((Instant::now(), code));
                }
                self.lost();
                bail!("closed by the server: {c:?}")
            }
            _ => return Ok(None),
        };
        match &frame {
            ServerFrame::Message { message } => {
                let key = (message.chat_id, message.seq);
                self.received.insert(key, message.client_msg_id.clone());
                let w = self.watermarks.entry(message.chat_id).or_default();
                *w = (*w).max(message.seq);
            }
            ServerFrame::Sent {
                chat_id,
                client_msg_id,
                seq,
                duplicate,
                ..
            } => {
                self.pending.remove(client_msg_id);
                if let Some(at) = self.sent_at.remove(client_msg_id) {
                    self.slowest_ack = self.slowest_ack.max(at.elapsed());
                }
                self.acked.insert(client_msg_id.clone(), (*chat_id, *seq));
                // The sending connection holds its message from `sent` (it is
                // not sent back). Its resume watermark still moves only with
                // `message` frames: a lower seq may not have arrived yet.
                self.received
                    .insert((*chat_id, *seq), client_msg_id.clone());
                if *duplicate {
                    self.duplicates.insert(client_msg_id.clone());
                }
            }
            ServerFrame::Error {
                client_msg_id: Some(id),
                code: ErrorCode::Unavailable | ErrorCode::Internal | ErrorCode::RateLimited,
                retry_after_ms,
                ..
            } if self.pending.contains_key(id) => {
                // As the protocol says: retry with backoff, same client_msg_id.
                let after = Duration::from_millis(retry_after_ms.unwrap_or(200));
                self.retry_at.insert(id.clone(), Instant::now() + after);
                self.retried += 1;
            }
            ServerFrame::Error {
                client_msg_id: Some(id),
                code,
                message,
                ..
            } => {
                self.pending.remove(id);
                self.sent_at.remove(id);
                self.refused.push(format!("{id}: {code:?} {message}"));
            }
            ServerFrame::Synced { .. } => {
                if let Some(at) = self.lost_at.take() {
                    self.resumed_after.push(at.elapsed());
                }
            }
            _ => {}
        }
        Ok(Some(frame))
    }

    /// Reads until `done` holds or `wait` passes without progress.
    pub async fn until(&mut self, wait: Duration, done: impl Fn(&Self) -> bool) -> Result<()> {
        while !done(self) {
            if self.next_frame(wait).await?.is_none() {
                bail!("no progress for {wait:?}");
            }
        }
        Ok(())
    }

    /// Like [`Device::until`], but a dropped connection is reconnected (to
    /// the same gateway) and resumed, as a real client does.
    pub async fn until_resuming(
        &mut self,
        wait: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Result<()> {
        while !done(self) {
            match self.next_frame(wait).await {
                Ok(Some(_)) => {}
                Ok(None) => bail!("no progress for {wait:?}"),
                Err(_) => self.reconnect(wait).await?,
            }
        }
        Ok(())
    }

    /// Reads until the server closes the connection; its close code.
    pub async fn until_closed(&mut self, wait: Duration) -> Result<u16> {
        loop {
            match self.next_frame(wait).await {
                Ok(Some(_)) => {}
                Ok(None) => bail!("not closed within {wait:?} of silence"),
                Err(e) => return self.closed_with.with_context(|| format!("{e:#}")),
            }
        }
    }

    /// Re-sends the retries that are due (a reconnect re-sends every pending
    /// send anyway).
    async fn resend_due(&mut self) -> Result<()> {
        let now = Instant::now();
        let due: Vec<String> = self
            .retry_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.retry_at.remove(&id);
            if let Some((chat, body)) = self.pending.get(&id).cloned() {
                self.write(
                    json!({"type": "send", "chat_id": chat, "client_msg_id": id, "body": body}),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Marks the connection lost (the first time since the last `synced`).
    fn lost(&mut self) {
        self.ws = None;
        self.lost_at.get_or_insert_with(Instant::now);
    }

    /// Sends a `delivered` or `read` receipt for `seq` in `chat`.
    pub async fn receipt(&mut self, kind: &str, chat: Uuid, seq: u64) -> Result<()> {
        self.write(json!({"type": kind, "chat_id": chat, "seq": seq}))
            .await
    }

    /// Seqs received in `chat`, ascending.
    pub fn seqs(&self, chat: Uuid) -> Vec<u64> {
        self.received
            .range((chat, 0)..=(chat, u64::MAX))
            .map(|((_, s), _)| *s)
            .collect()
    }
}
