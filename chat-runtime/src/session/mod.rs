//! One device's WebSocket session, independent of the socket library.
//!
//! The socket shell feeds received frames into `inbound` and writes whatever
//! appears on `outbound`. The session authenticates (`handshake`), replays
//! what the device missed, then forwards live events in seq order — skipping
//! duplicates and filling gaps from the store — while a worker task applies
//! the device's commands one at a time, in the order they were sent
//! (`dispatch`). When events may have been missed (the gateway's bus
//! reconnected) it catches up from the store in place; when its gateway
//! drains it closes with "reconnect" at a random moment, so devices move
//! elsewhere spread out.
//!
//! Every decision (what to forward, skip or fill, when to close) is made by
//! the pure [`state`] machine; this module only reads the socket, the bus, the
//! store and the timers, and performs the actions it returns.

mod dispatch;
mod handshake;
pub mod state;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::bus::{Envelope, Origin};
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::mailbox;
use crate::model::{ChatId, Member, UserId};
use crate::node::Node;
use crate::protocol::{self, ClientFrame, CloseCode, ServerFrame};
use state::{Action, Event, SessionState};

/// A session catches up at a random moment within this long after a resync.
const RESYNC_SPREAD: Duration = Duration::from_secs(1);
/// Commands queued for the worker.
const COMMAND_QUEUE: usize = 256;

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

/// The session's socket went away; stop quietly.
struct Gone;

/// Runs a session to its end.
pub async fn run(
    node: Arc<Node>,
    client: ClientAddr,
    mut inbound: mailbox::Receiver<Inbound>,
    outbound: mailbox::Sender<Outbound>,
) {
    let Some(opened) = handshake::open(&node, client, &mut inbound, &outbound).await else {
        return;
    };
    let user = opened.user;
    let welcome = ServerFrame::Welcome {
        user_id: user,
        session_id: uuid::Uuid::new_v4().simple().to_string(),
        heartbeat_ms: node.limits.heartbeat_ms,
        max_frame_bytes: protocol::MAX_FRAME_BYTES,
    };
    if outbound.send(out(&welcome)).await.is_err() {
        return;
    }
    let heartbeat = Duration::from_millis(node.limits.heartbeat_ms);
    // Tags this session's sends, so their messages are not sent back to it.
    let origin: Origin = rand::random();
    let mut session = Session {
        node: node.clone(),
        user,
        outbound: outbound.clone(),
        commands: None,
        state: SessionState::new(opened.watermarks, heartbeat, origin),
    };
    node.presence.connected(user).await;
    let mut events = opened.subscription.events;
    let mut worker = None;
    let close = match session.drive(Event::CatchUp).await {
        ControlFlow::Continue(()) => {
            // Commands are read only once the device is caught up.
            let (commands, queue) = mailbox::channel(COMMAND_QUEUE);
            session.commands = Some(commands);
            let work = dispatch::worker(node.clone(), user, origin, queue, outbound.clone());
            worker = Some(tokio::spawn(work));
            session.live(&mut inbound, &mut events).await
        }
        ControlFlow::Break(_) => None,
    };
    // The worker answers what was queued before the socket and the
    // subscription are let go.
    drop(session);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    drop((inbound, events));
    node.presence.disconnected(user).await;
    if let Some(code) = close {
        if code == CloseCode::SlowConsumer {
            node.metrics.slow_consumers.inc();
        }
        let _ = outbound.send(Outbound::Close(code)).await;
    }
}

struct Session {
    node: Arc<Node>,
    user: UserId,
    outbound: mailbox::Sender<Outbound>,
    /// The worker's queue, from the live phase on (frames are read only
    /// then); dropping it ends the worker. Made after the catch-up, not
    /// before: allocated among the catch-up's temporaries, its block cost
    /// every idle session ~1 KiB of heap (`confab-bench idle`).
    commands: Option<mailbox::Sender<ClientFrame>>,
    state: SessionState,
}

impl Session {
    async fn send(&self, frame: Outbound) -> Result<(), Gone> {
        self.outbound.send(frame).await.map_err(|_| Gone)
    }

    /// Feeds `event` to the state machine and performs what it asks,
    /// answering its store reads, until it waits for the next event.
    /// `Break` ends the session, with the close code to send if any.
    async fn drive(&mut self, event: Event) -> ControlFlow<Option<CloseCode>> {
        let mut next = Some(event);
        while let Some(event) = next.take() {
            for action in self.state.on_event(event) {
                match self.perform(action).await {
                    Ok(Some(answer)) => next = Some(answer),
                    Ok(None) => {}
                    Err(Stop(close)) => return ControlFlow::Break(close),
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Performs one action; a store read gives the event that answers it.
    async fn perform(&self, action: Action) -> Result<Option<Event>, Stop> {
        match action {
            Action::Forward(frame) => self.deliver(Outbound::Frame(frame)).await?,
            Action::Deliver(message) => {
                self.deliver(out(&ServerFrame::Message { message })).await?
            }
            Action::Reply(frame) => self.send(out(&frame)).await?,
            Action::CountError(code) => self.node.metrics.error(code),
            Action::Dispatch(frame) => {
                let commands = self.commands.as_ref().ok_or(Gone)?;
                commands.send(frame).await.map_err(|_| Gone)?
            }
            Action::Close(code) => return Err(Stop(Some(code))),
            Action::End => return Err(Stop(None)),
            Action::ListChats => {
                let chats = self.node.store.user_chats(self.user).await;
                return Ok(Some(Event::Chats(chats.unwrap_or_default())));
            }
            Action::LookUp(chat) => return Ok(Some(Event::Member(self.membership(chat).await))),
            Action::Read { chat, after, limit } => {
                let page = self.node.store.messages_after(chat, after, limit).await;
                let page = page.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "resume read failed");
                    Vec::new()
                });
                return Ok(Some(Event::Page(page)));
            }
        }
        Ok(None)
    }

    async fn deliver(&self, frame: Outbound) -> Result<(), Gone> {
        self.node.metrics.deliveries.inc();
        self.send(frame).await
    }

    /// The user's membership of `chat`, if they are a member.
    async fn membership(&self, chat: ChatId) -> Option<Member> {
        self.node.store.member(chat, self.user).await.ok().flatten()
    }

    /// The live phase: frames in, events out, heartbeats, shutdown.
    async fn live(
        &mut self,
        inbound: &mut mailbox::Receiver<Inbound>,
        events: &mut mailbox::Receiver<Envelope>,
    ) -> Option<CloseCode> {
        let heartbeat = Duration::from_millis(self.node.limits.heartbeat_ms);
        let mut shutdown = self.node.shutdown_signal();
        let mut resync = self.node.resync_signal();
        // A catch-up after a resync waits a random moment up to
        // RESYNC_SPREAD, so a gateway's sessions do not all read the store
        // at once (a chat with new traffic fills its gap sooner, on its own).
        let catch_up = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(catch_up);
        let mut catch_up_due = false;
        let drained = drained(self.node.drain_signal());
        tokio::pin!(drained);
        let mut tick = tokio::time::interval(heartbeat / 2);
        let mut event = Some(Event::Live(Instant::now()));
        loop {
            if let Some(event) = event.take()
                && let ControlFlow::Break(close) = self.drive(event).await
            {
                return close;
            }
            event = tokio::select! {
                frame = inbound.recv() => Some(match frame {
                    Some(frame) => Event::Frame(frame, Instant::now()),
                    None => Event::SocketEnded,
                }),
                event = events.recv() => Some(event.map_or(Event::BusEnded, Event::Bus)),
                _ = tick.tick() => Some(Event::Tick(Instant::now())),
                _ = shutdown.changed() => Some(Event::Shutdown),
                _ = resync.changed() => {
                    let at = jitter(RESYNC_SPREAD);
                    catch_up.as_mut().reset(tokio::time::Instant::now() + at);
                    catch_up_due = true;
                    None
                }
                () = &mut catch_up, if catch_up_due => {
                    catch_up_due = false;
                    Some(Event::CatchUp)
                }
                () = &mut drained => Some(Event::Shutdown),
            };
        }
    }
}

/// Why [`Session::perform`] ended the session: the close code to send, if any.
struct Stop(Option<CloseCode>);

impl From<Gone> for Stop {
    fn from(Gone: Gone) -> Self {
        Stop(None)
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
