//! A client device for scenario tests, on the Rust client's pieces: its
//! typed [`Connection`], its send queue ([`Outbox`]: re-sends what was never
//! acknowledged, with the same `client_msg_id`, and what the server asked
//! to retry) and its watermarks ([`Cursor`]: what `hello` resumes from).
//! Unlike the client's own session, a scenario decides when to reconnect,
//! and the device records what the scenario checks: every message
//! received, every acknowledgement, refusal and close, and how long acks
//! and resumes took.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chat_runtime::protocol::{ClientFrame, ServerFrame};
use confab_client::cursor::Cursor;
use confab_client::outbox::{Outbox, Pacing};
use confab_client::{Connection, Error};
use uuid::Uuid;

/// A logged-in device.
pub struct Device {
    pub token: String,
    /// The gateway it last connected to.
    base: String,
    conn: Option<Connection>,
    /// What the next `hello` resumes from.
    cursor: Cursor,
    /// Every (chat, seq) received, with the client_msg_id it carried.
    pub received: BTreeMap<(Uuid, u64), String>,
    /// Sends not yet acknowledged.
    pub outbox: Outbox,
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
    /// How many sends were answered "retry" (a chat moving, a shard failing over).
    pub retried: usize,
}

impl Device {
    pub fn new(token: &str) -> Self {
        Self {
            token: token.to_owned(),
            base: String::new(),
            conn: None,
            cursor: Cursor::default(),
            received: BTreeMap::new(),
            // Every pending send goes out on each connection at once.
            outbox: Outbox::new(Pacing {
                window: usize::MAX,
                ..Pacing::default()
            }),
            acked: BTreeMap::new(),
            duplicates: BTreeSet::new(),
            refused: Vec::new(),
            closed_with: None,
            closes: Vec::new(),
            slowest_ack: Duration::ZERO,
            resumed_after: Vec::new(),
            sent_at: BTreeMap::new(),
            lost_at: None,
            retried: 0,
        }
    }

    /// Connects to `base` (`http://host:port`), resumes, and re-sends what
    /// was pending. Returns once `synced` arrived.
    pub async fn connect(&mut self, base: &str) -> Result<()> {
        self.base = base.to_owned();
        let mut conn = Connection::open(base, None).await?;
        if let Err(e) = conn.hello(&self.token, self.cursor.watermarks()).await {
            if let Error::Closed { code, .. } = &e {
                self.closed_by_server(*code);
            }
            return Err(e.into());
        }
        self.conn = Some(conn);
        self.outbox.down();
        loop {
            match self.next_frame(Duration::from_secs(20)).await? {
                Some(ServerFrame::Synced { .. }) => return Ok(()),
                Some(_) => {}
                None => bail!("no `synced` within 20 s of hello"),
            }
        }
    }

    /// Reconnects to the same gateway, retrying for up to `wait` (as a real
    /// client does after a "reconnect" close).
    pub async fn reconnect(&mut self, wait: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        let base = self.base.clone();
        loop {
            self.conn = None;
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

    async fn write(&mut self, frame: &ClientFrame) -> Result<()> {
        let conn = self.conn.as_mut().context("not connected")?;
        Ok(conn.send(frame).await?)
    }

    /// Sends a text message (pending until acknowledged).
    pub async fn send(&mut self, chat: Uuid, id: &str, body: &str) -> Result<()> {
        self.outbox.add(ClientFrame::Send {
            chat_id: chat,
            client_msg_id: id.to_owned(),
            kind: Default::default(),
            body: body.to_owned(),
            media_id: None,
        });
        self.sent_at
            .entry(id.to_owned())
            .or_insert_with(Instant::now);
        self.flush().await
    }

    /// Puts on the wire what the send queue says is due.
    async fn flush(&mut self) -> Result<()> {
        if self.conn.is_none() {
            return Ok(());
        }
        for frame in self.outbox.due(Instant::now()) {
            self.write(&frame).await?;
        }
        Ok(())
    }

    /// Reads one frame (or `None` after `wait` of silence) and records it;
    /// first re-sends what the server asked to retry and is due.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Option<ServerFrame>> {
        let deadline = Instant::now() + wait;
        let read = loop {
            self.flush().await?;
            let until = self
                .outbox
                .next_deadline()
                .map_or(deadline, |d| d.min(deadline));
            let conn = self.conn.as_mut().context("not connected")?;
            match tokio::time::timeout_at(until.into(), conn.next()).await {
                Err(_) if Instant::now() >= deadline => return Ok(None),
                Err(_) => continue,
                Ok(read) => break read,
            }
        };
        let frame = match read {
            Ok(frame) => frame,
            Err(Error::Closed { code, reason }) => {
                self.closed_by_server(code);
                self.lost();
                bail!("closed by the server: {code} {reason}")
            }
            Err(e) => {
                self.lost();
                return Err(e.into());
            }
        };
        self.record(&frame);
        Ok(Some(frame))
    }

    fn record(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Message { message } => {
                let key = (message.chat_id, message.seq);
                self.received.insert(key, message.client_msg_id.clone());
                self.cursor.message(message.chat_id, message.seq);
            }
            ServerFrame::Sent {
                chat_id,
                client_msg_id,
                seq,
                duplicate,
                ..
            } => {
                self.outbox.sent(client_msg_id);
                if let Some(at) = self.sent_at.remove(client_msg_id) {
                    self.slowest_ack = self.slowest_ack.max(at.elapsed());
                }
                self.acked.insert(client_msg_id.clone(), (*chat_id, *seq));
                // The sending connection holds its message from `sent` (it
                // is not sent back).
                self.received
                    .insert((*chat_id, *seq), client_msg_id.clone());
                self.cursor.sent(*chat_id, *seq);
                if *duplicate {
                    self.duplicates.insert(client_msg_id.clone());
                }
            }
            ServerFrame::Error {
                client_msg_id: Some(id),
                code,
                retry_after_ms,
                ..
            } if code.retryable() => {
                // As the protocol says: retry with backoff, same client_msg_id.
                let after = Duration::from_millis(retry_after_ms.unwrap_or(200));
                if self.outbox.retry(id, Some(after), Instant::now()) {
                    self.retried += 1;
                }
            }
            ServerFrame::Error {
                client_msg_id: Some(id),
                code,
                message,
                ..
            } if self.outbox.refused(id) => {
                self.sent_at.remove(id);
                self.refused.push(format!("{id}: {code:?} {message}"));
            }
            ServerFrame::Synced { chats } => {
                self.cursor.synced(chats);
                if let Some(at) = self.lost_at.take() {
                    self.resumed_after.push(at.elapsed());
                }
            }
            _ => {}
        }
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

    /// Records a close the server chose (also one in answer to `hello`).
    fn closed_by_server(&mut self, code: u16) {
        self.closed_with = Some(code);
        self.closes.push((Instant::now(), code));
    }

    /// Marks the connection lost (the first time since the last `synced`).
    fn lost(&mut self) {
        self.conn = None;
        self.outbox.down();
        self.lost_at.get_or_insert_with(Instant::now);
    }

    /// Sends a `delivered` or `read` receipt for `seq` in `chat`.
    pub async fn receipt(&mut self, kind: &str, chat: Uuid, seq: u64) -> Result<()> {
        let frame = match kind {
            "delivered" => ClientFrame::Delivered { chat_id: chat, seq },
            "read" => ClientFrame::Read { chat_id: chat, seq },
            other => bail!("no receipt kind {other:?}"),
        };
        self.write(&frame).await
    }

    /// Seqs received in `chat`, ascending.
    pub fn seqs(&self, chat: Uuid) -> Vec<u64> {
        self.received
            .range((chat, 0)..=(chat, u64::MAX))
            .map(|((_, s), _)| *s)
            .collect()
    }
}
