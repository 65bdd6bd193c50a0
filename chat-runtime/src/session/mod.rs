//! One device's WebSocket session, independent of the socket library.
//!
//! The shell feeds received frames into `inbound` and writes whatever appears
//! on `outbound`. The session authenticates (`hello`), replays what the device
//! missed, then forwards live events in seq order — skipping duplicates and
//! filling gaps from the store — while a worker task applies the device's
//! commands one at a time, in the order they were sent. When events may have
//! been missed (the gateway's bus reconnected) it catches up from the store
//! in place; when its gateway drains it closes with "reconnect" at a random
//! moment, so devices move elsewhere spread out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::bus::Envelope;
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::model::{ChatId, Content, Member, Seq, UserId};
use crate::node::Node;
use crate::protocol::{self, ClientFrame, CloseCode, ErrorCode, ServerFrame};
use crate::shard::{Command, Reply, SendItem};

/// Messages replayed per store read during resume and gap filling.
const PAGE: usize = 200;
/// Consecutive undecodable frames tolerated before the connection is closed.
const MAX_BAD_FRAMES: u32 = 16;
/// A session catches up at a random moment within this long after a resync.
const RESYNC_SPREAD: Duration = Duration::from_secs(1);

/// What the socket delivered.
#[derive(Debug)]
pub enum Inbound {
    Text(Bytes),
    Binary,
    /// A message beyond what the WebSocket layer accepts; the socket is unusable.
    TooBig,
}

/// What the socket should write.
#[derive(Debug, PartialEq)]
pub enum Outbound {
    Frame(Bytes),
    Close(CloseCode),
}

fn out(frame: &ServerFrame) -> Outbound {
    Outbound::Frame(Bytes::from(protocol::encode(frame)))
}

fn error_frame(e: &ApiError, req_id: Option<String>, client_msg_id: Option<String>) -> ServerFrame {
    ServerFrame::Error {
        req_id,
        client_msg_id,
        code: e.code,
        message: e.message.clone(),
        retry_after_ms: e.retry_after_ms,
    }
}

/// Runs a session to its end.
pub async fn run(
    node: Arc<Node>,
    client: ClientAddr,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: mpsc::Sender<Outbound>,
) {
    let admitted = node.admit().filter(|_| !node.draining());
    let Some(_slot) = admitted else {
        let _ = outbound
            .send(Outbound::Close(CloseCode::TryAgainLater))
            .await;
        return;
    };
    let Some(_address_slot) = node.admit_address(client) else {
        let _ = outbound
            .send(Outbound::Close(CloseCode::TooManySessions))
            .await;
        return;
    };
    let hello_timeout = Duration::from_millis(node.limits.hello_timeout_ms);
    let hello = match tokio::time::timeout(hello_timeout, inbound.recv()).await {
        Ok(Some(Inbound::Text(b))) => protocol::decode(&b),
        Ok(_) => return,
        Err(_) => {
            let _ = outbound.send(Outbound::Close(CloseCode::AuthTimeout)).await;
            return;
        }
    };
    let (token, watermarks) = match hello {
        Ok(ClientFrame::Hello { token, watermarks }) => (token, watermarks),
        Ok(_) => {
            let e = ApiError::new(ErrorCode::Unauthenticated, "the first frame must be hello");
            return refuse(&node, &outbound, &e).await;
        }
        Err(e) => {
            let e = ApiError::new(e.code(), e.to_string());
            return refuse(&node, &outbound, &e).await;
        }
    };
    let claims = match node.authenticate(&token).await {
        Ok(c) => c,
        Err(e) => return refuse(&node, &outbound, &e).await,
    };
    let user = claims.sub;
    let Some(_user_slot) = node.admit_user(user) else {
        let _ = outbound
            .send(Outbound::Close(CloseCode::TooManySessions))
            .await;
        return;
    };
    let subscription = match node.bus.subscribe(user, node.limits.session_queue).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "bus subscribe failed");
            let _ = outbound
                .send(Outbound::Close(CloseCode::TryAgainLater))
                .await;
            return;
        }
    };
    let mut session = Session {
        node: node.clone(),
        user,
        outbound: outbound.clone(),
        highs: HashMap::new(),
    };
    let welcome = ServerFrame::Welcome {
        user_id: user,
        session_id: uuid::Uuid::new_v4().simple().to_string(),
        heartbeat_ms: node.limits.heartbeat_ms,
        max_frame_bytes: protocol::MAX_FRAME_BYTES,
    };
    if outbound.send(out(&welcome)).await.is_err() {
        return;
    }
    node.presence.connected(user).await;
    let close = match session.resume(watermarks).await {
        Ok(()) => session.live(inbound, subscription.events).await,
        Err(_) => None,
    };
    node.presence.disconnected(user).await;
    if let Some(code) = close {
        if code == CloseCode::SlowConsumer {
            node.metrics.slow_consumers.inc();
        }
        let _ = outbound.send(Outbound::Close(code)).await;
    }
}

async fn refuse(node: &Node, outbound: &mpsc::Sender<Outbound>, e: &ApiError) {
    node.metrics.error(e.code);
    let _ = outbound.send(out(&error_frame(e, None, None))).await;
    let code = match e.code {
        ErrorCode::TokenRevoked => CloseCode::TokenRevoked,
        ErrorCode::Unauthenticated | ErrorCode::TokenExpired => CloseCode::Unauthenticated,
        _ => CloseCode::ProtocolViolation,
    };
    let _ = outbound.send(Outbound::Close(code)).await;
}

struct Session {
    node: Arc<Node>,
    user: UserId,
    outbound: mpsc::Sender<Outbound>,
    /// Highest seq written to this device per chat: later events at or below
    /// it are duplicates, events above it + 1 reveal a gap to fill.
    highs: HashMap<ChatId, Seq>,
}

/// The session's socket went away; stop quietly.
struct Gone;

impl Session {
    async fn send(&self, frame: Outbound) -> Result<(), Gone> {
        self.outbound.send(frame).await.map_err(|_| Gone)
    }

    /// Sends every message newer than the device's watermarks (or, for chats
    /// it did not list, newer than the user's delivered watermark), then `synced`.
    async fn resume(&mut self, watermarks: BTreeMap<ChatId, Seq>) -> Result<(), Gone> {
        self.highs.extend(watermarks);
        self.catch_up().await
    }

    /// Sends every stored message of the user's chats above this device's
    /// high marks (for a chat without one: above the user's delivered
    /// watermark), then `synced`. At the start of a session, and again when
    /// events may have been missed (the gateway's bus reconnected): the
    /// session stays open and the device needs no reconnect.
    async fn catch_up(&mut self) -> Result<(), Gone> {
        let mut heads = BTreeMap::new();
        let chats = self
            .node
            .store
            .user_chats(self.user)
            .await
            .unwrap_or_default();
        for chat in chats {
            let Some(me) = self.membership(chat).await else {
                continue;
            };
            self.highs.entry(chat).or_insert(me.delivered_seq);
            let high = self.fill(chat, u64::MAX, &me).await?;
            heads.insert(chat, high);
        }
        self.send(out(&ServerFrame::Synced { chats: heads })).await
    }

    /// The user's membership of `chat`, if they are a member.
    async fn membership(&self, chat: ChatId) -> Option<Member> {
        let members = self.node.store.members(chat).await.unwrap_or_default();
        members.into_iter().find(|m| m.user_id == self.user)
    }

    /// Writes stored messages after this device's high mark, up to `until`
    /// (inclusive), and returns the new high mark. Never a message from
    /// before the member (`me`) joined, whatever the device's mark says.
    async fn fill(&mut self, chat: ChatId, until: Seq, me: &Member) -> Result<Seq, Gone> {
        let held = self.highs.get(&chat).copied().unwrap_or(0);
        let mut high = held.max(me.joined_seq.saturating_sub(1));
        while high < until {
            let want = PAGE.min((until - high) as usize);
            let page = match self.node.store.messages_after(chat, high, want).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "resume read failed");
                    break;
                }
            };
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in page {
                self.node.metrics.deliveries.inc();
                self.send(out(&ServerFrame::Message { message })).await?;
            }
            high = last;
        }
        self.highs.insert(chat, high);
        Ok(high)
    }

    /// Forwards one bus event in order, without duplicates.
    async fn forward(&mut self, e: Envelope) -> Result<(), Gone> {
        if let (Some(chat), seq) = (e.chat, e.seq)
            && seq > 0
        {
            let high = *self.highs.entry(chat).or_insert(seq - 1);
            if seq <= high {
                return Ok(());
            }
            // Only members are filled in (a removal's own event still passes).
            if seq > high + 1
                && let Some(me) = self.membership(chat).await
            {
                self.fill(chat, seq - 1, &me).await?;
            }
            self.highs.insert(chat, seq);
        }
        self.node.metrics.deliveries.inc();
        self.send(Outbound::Frame(e.frame)).await
    }

    /// The live phase: frames in, events out, heartbeats, shutdown.
    async fn live(
        &mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut events: mpsc::Receiver<Envelope>,
    ) -> Option<CloseCode> {
        let (commands, queue) = mpsc::channel(256);
        let worker = tokio::spawn(worker(
            self.node.clone(),
            self.user,
            queue,
            self.outbound.clone(),
        ));
        let heartbeat = Duration::from_millis(self.node.limits.heartbeat_ms);
        let mut shutdown = self.node.shutdown_signal();
        let mut resync = self.node.resync_signal();
        // A catch-up after a resync waits a random moment up to
        // RESYNC_SPREAD, so a gateway's sessions do not all read the store
        // at once (a chat with new traffic fills its gap sooner, in `forward`).
        let catch_up = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(catch_up);
        let mut catch_up_due = false;
        let drained = drained(self.node.drain_signal());
        tokio::pin!(drained);
        let mut tick = tokio::time::interval(heartbeat / 2);
        let mut last_frame = Instant::now();
        let mut bad_frames = 0;
        let close = loop {
            tokio::select! {
                frame = inbound.recv() => {
                    let Some(frame) = frame else { break None };
                    last_frame = Instant::now();
                    let decoded = match frame {
                        Inbound::TooBig => break Some(CloseCode::MessageTooBig),
                        Inbound::Text(b) => protocol::decode(&b).map_err(|e| ApiError::new(e.code(), e.to_string())),
                        Inbound::Binary => Err(ApiError::new(ErrorCode::BadFrame, "binary frames are not supported; send JSON text")),
                    };
                    match decoded {
                        Ok(ClientFrame::Hello { .. }) => break Some(CloseCode::ProtocolViolation),
                        Ok(ClientFrame::Ping {}) => {
                            bad_frames = 0;
                            if self.send(out(&ServerFrame::Pong {})).await.is_err() { break None }
                        }
                        Ok(f) => {
                            bad_frames = 0;
                            if commands.send(f).await.is_err() { break None }
                        }
                        Err(e) => {
                            bad_frames += 1;
                            self.node.metrics.error(e.code);
                            if bad_frames > MAX_BAD_FRAMES { break Some(CloseCode::ProtocolViolation) }
                            if self.send(out(&error_frame(&e, None, None))).await.is_err() { break None }
                        }
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break Some(CloseCode::SlowConsumer) };
                    if self.forward(event).await.is_err() { break None }
                }
                _ = tick.tick() => {
                    if last_frame.elapsed() > heartbeat * 2 { break Some(CloseCode::HeartbeatTimeout) }
                }
                _ = shutdown.changed() => break Some(CloseCode::ServerRestart),
                _ = resync.changed() => {
                    let at = jitter(RESYNC_SPREAD);
                    catch_up.as_mut().reset(tokio::time::Instant::now() + at);
                    catch_up_due = true;
                }
                () = &mut catch_up, if catch_up_due => {
                    catch_up_due = false;
                    if self.catch_up().await.is_err() { break None }
                }
                () = &mut drained => break Some(CloseCode::ServerRestart),
            }
        };
        drop(commands);
        let _ = worker.await;
        close
    }
}

/// Resolves at this session's moment to leave a draining gateway: a random
/// point within the drain's spread (never, while the gateway serves).
async fn drained(mut signal: watch::Receiver<Option<Duration>>) {
    let spread = signal.wait_for(Option::is_some).await.map(|s| *s);
    let Ok(Some(spread)) = spread else {
        return std::future::pending().await;
    };
    tokio::time::sleep(jitter(spread)).await;
}

/// A random duration below `spread` (zero for zero).
fn jitter(spread: Duration) -> Duration {
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    if spread_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random_range(0..spread_ms))
}

/// Most frames taken from the queue at once; consecutive sends among them
/// are sequenced and stored together.
const BATCH: usize = 64;

/// Applies one device's commands in order and answers each. Sends that queue
/// up while earlier ones are being stored go to the shard as one batch, so a
/// busy device costs one store write per batch instead of one per message.
async fn worker(
    node: Arc<Node>,
    user: UserId,
    mut queue: mpsc::Receiver<ClientFrame>,
    outbound: mpsc::Sender<Outbound>,
) {
    let mut frames = Vec::with_capacity(BATCH);
    let mut sends = Vec::new();
    while queue.recv_many(&mut frames, BATCH).await > 0 {
        for frame in frames.drain(..) {
            if let ClientFrame::Send {
                chat_id,
                client_msg_id,
                kind,
                body,
                media_id,
            } = frame
            {
                if kind.media().is_none() {
                    sends.push(SendItem {
                        chat: chat_id,
                        client_msg_id,
                        content: Content::Text { body },
                    });
                    continue;
                }
                // Attaching media takes store round trips: answer the sends
                // queued before it first, so answers stay in order.
                if send_batch(&node, user, &mut sends, &outbound)
                    .await
                    .is_err()
                {
                    return;
                }
                let id = client_msg_id.clone();
                match node
                    .send_item(user, chat_id, client_msg_id, kind, body, media_id)
                    .await
                {
                    Ok(item) => sends.push(item),
                    Err(e) => {
                        node.metrics.error(e.code);
                        let frame = error_frame(&e, None, Some(id));
                        if outbound.send(out(&frame)).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            if send_batch(&node, user, &mut sends, &outbound)
                .await
                .is_err()
            {
                return;
            }
            let Some(reply) = handle(&node, user, frame).await else {
                continue;
            };
            if outbound.send(out(&reply)).await.is_err() {
                return;
            }
        }
        if send_batch(&node, user, &mut sends, &outbound)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends the queued messages and answers each with `sent` or `error`, in order.
async fn send_batch(
    node: &Node,
    user: UserId,
    sends: &mut Vec<SendItem>,
    outbound: &mpsc::Sender<Outbound>,
) -> Result<(), Gone> {
    if sends.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut answers: Vec<(SendItem, Option<Result<Reply, ApiError>>)> = Vec::new();
    let mut accepted = Vec::new();
    for item in sends.drain(..) {
        match node.check_rate(user) {
            Ok(()) => {
                accepted.push(item.clone());
                answers.push((item, None));
            }
            Err(e) => answers.push((item, Some(Err(e)))),
        }
    }
    let n = accepted.len();
    let mut results = if n == 0 {
        Vec::new()
    } else {
        match node
            .command(Command::SendMany {
                user,
                items: accepted,
            })
            .await
        {
            Ok(Reply::SentMany(r)) if r.len() == n => r,
            Ok(other) => {
                let e = ApiError::new(ErrorCode::Internal, format!("unexpected reply {other:?}"));
                vec![Err(e); n]
            }
            Err(e) => vec![Err(e); n],
        }
    }
    .into_iter();
    for (item, answer) in answers {
        let result = match answer {
            Some(r) => r,
            None => results.next().expect("one result per accepted send"),
        };
        let frame = match result {
            Ok(Reply::Sent {
                seq,
                sent_at,
                duplicate,
            }) => {
                node.sent(user, &item, seq).await;
                node.metrics
                    .send_latency
                    .observe(started.elapsed().as_secs_f64());
                ServerFrame::Sent {
                    chat_id: item.chat,
                    client_msg_id: item.client_msg_id,
                    seq,
                    sent_at,
                    duplicate,
                }
            }
            Ok(other) => {
                let e = ApiError::new(ErrorCode::Internal, format!("unexpected reply {other:?}"));
                error_frame(&e, None, Some(item.client_msg_id))
            }
            Err(e) => {
                node.metrics.error(e.code);
                error_frame(&e, None, Some(item.client_msg_id))
            }
        };
        outbound.send(out(&frame)).await.map_err(|_| Gone)?;
    }
    Ok(())
}

/// Applies one frame; `None` for frames that have no reply (receipts, typing).
async fn handle(node: &Node, user: UserId, frame: ClientFrame) -> Option<ServerFrame> {
    let req_id = request_id(&frame);
    match apply(node, user, frame).await {
        Ok(reply) => reply,
        Err(e) => {
            node.metrics.error(e.code);
            Some(error_frame(&e, req_id, None))
        }
    }
}

fn request_id(frame: &ClientFrame) -> Option<String> {
    match frame {
        ClientFrame::Chats { req_id }
        | ClientFrame::History { req_id, .. }
        | ClientFrame::OpenDirect { req_id, .. }
        | ClientFrame::CreateGroup { req_id, .. }
        | ClientFrame::Join { req_id, .. }
        | ClientFrame::Invite { req_id, .. }
        | ClientFrame::ResetInvite { req_id, .. }
        | ClientFrame::Leave { req_id, .. }
        | ClientFrame::AddMember { req_id, .. }
        | ClientFrame::RemoveMember { req_id, .. }
        | ClientFrame::Presence { req_id, .. }
        | ClientFrame::Lookup { req_id, .. } => Some(req_id.clone()),
        _ => None,
    }
}

/// Applies one command frame; answers with its reply frame, if it has one.
async fn apply(
    node: &Node,
    user: UserId,
    frame: ClientFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    // Receipts are exempt: they are idempotent, and a repeat costs no write.
    if !matches!(
        frame,
        ClientFrame::Delivered { .. } | ClientFrame::Read { .. }
    ) {
        node.check_rate(user)?;
    }
    Ok(Some(match frame {
        ClientFrame::Send { .. } => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "sends are answered by the batching worker",
            ));
        }
        ClientFrame::Delivered { chat_id, seq } => {
            return watermark(node, user, chat_id, seq, 0).await;
        }
        ClientFrame::Read { chat_id, seq } => {
            return watermark(node, user, chat_id, seq, seq).await;
        }
        ClientFrame::Typing { chat_id } => {
            node.command(Command::Typing {
                user,
                chat: chat_id,
            })
            .await?;
            return Ok(None);
        }
        ClientFrame::Chats { req_id } => ServerFrame::Chats {
            req_id,
            chats: node.chats(user).await?,
        },
        ClientFrame::History {
            req_id,
            chat_id,
            before,
            limit,
        } => {
            let (messages, next_before) = node.history(user, chat_id, before, limit).await?;
            ServerFrame::History {
                req_id,
                chat_id,
                messages,
                next_before,
            }
        }
        ClientFrame::OpenDirect { req_id, phone } => ServerFrame::Chat {
            req_id,
            chat: node.open_direct(user, &phone).await?,
        },
        ClientFrame::CreateGroup {
            req_id,
            title,
            members,
        } => {
            let command = Command::CreateGroup {
                user,
                title,
                members,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
        ClientFrame::Join {
            req_id,
            chat_id,
            invite,
        } => {
            let command = Command::Join {
                user,
                chat: chat_id,
                invite,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
        ClientFrame::Invite { req_id, chat_id } => ServerFrame::Invite {
            req_id,
            chat_id,
            invite: node.invite(user, chat_id, false).await?,
        },
        ClientFrame::ResetInvite { req_id, chat_id } => ServerFrame::Invite {
            req_id,
            chat_id,
            invite: node.invite(user, chat_id, true).await?,
        },
        ClientFrame::Leave { req_id, chat_id } => {
            node.command(Command::Leave {
                user,
                chat: chat_id,
            })
            .await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::AddMember {
            req_id,
            chat_id,
            user_id,
        } => {
            let command = Command::AddMember {
                user,
                chat: chat_id,
                target: user_id,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
        ClientFrame::RemoveMember {
            req_id,
            chat_id,
            user_id,
        } => {
            let command = Command::RemoveMember {
                user,
                chat: chat_id,
                target: user_id,
            };
            node.command(command).await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::Presence { req_id, user_id } => {
            node.presence.query(user, user_id, Some(req_id)).await?
        }
        ClientFrame::Lookup { req_id, phone } => {
            let u = node.lookup(&phone).await?;
            ServerFrame::User {
                req_id,
                user_id: u.id,
                display_name: u.display_name,
            }
        }
        ClientFrame::Hello { .. } | ClientFrame::Ping {} => ServerFrame::Pong {},
    }))
}

/// `delivered` / `read`: no reply on success; receipts reach members as events.
async fn watermark(
    node: &Node,
    user: UserId,
    chat: ChatId,
    delivered: Seq,
    read: Seq,
) -> Result<Option<ServerFrame>, ApiError> {
    if delivered == 0 {
        return Err(ApiError::invalid("seq must be at least 1"));
    }
    node.command(Command::Watermark {
        user,
        chat,
        delivered,
        read,
    })
    .await?;
    Ok(None)
}
