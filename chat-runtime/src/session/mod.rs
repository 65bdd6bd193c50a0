//! One device's WebSocket session, independent of the socket library.
//!
//! The socket shell hands the session a [`Link`]: frames in, frames out. The
//! session authenticates (`handshake`), replays what the device missed, then
//! forwards live events in seq order — skipping duplicates and filling gaps
//! from the store — while a worker task applies the device's commands one at
//! a time, in the order they were sent (`dispatch`). When events may have been missed (the gateway's bus
//! reconnected) it catches up from the store in place; when its gateway
//! drains it closes with "reconnect" at a random moment, so devices move
//! elsewhere spread out.
//!
//! Every decision (what to forward, skip or fill, when to close) is made by
//! the pure [`state`] machine; this module only reads the socket, the bus, the
//! store and the timers, and performs the actions it returns.
//!
//! An idle connection is one task and no buffers: the session itself reads
//! and writes its socket, the worker runs only while commands wait, and the
//! store reads of a catch-up are boxed, so they take memory only while they
//! run (`confab-bench idle` measures the cost per connection).

mod dispatch;
mod handshake;
pub mod state;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::{Envelope, Origin};
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::mailbox;
use crate::model::UserId;
use crate::node::Node;
use crate::protocol::{self, ClientFrame, CloseCode, ServerFrame};
use state::{Action, Event, SessionState};

/// A session catches up at a random moment within this long after a resync.
const RESYNC_SPREAD: Duration = Duration::from_secs(1);
/// Commands queued for the worker.
const COMMAND_QUEUE: usize = 256;
/// The worker's answers waiting to be written. Larger than what the worker
/// can have in hand (the queue and one batch), so it never waits on the
/// session while the session waits for room in the queue.
const REPLY_QUEUE: usize = 1024;
/// Most frames written before the socket is flushed.
const WRITE_BATCH: usize = 64;

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

/// The device's socket, as the session sees it: the seam to the WebSocket
/// library.
pub trait Link: Send {
    /// The next frame from the device; `None` once the socket has ended.
    /// Cancel-safe: the session waits for it beside its other inputs.
    fn recv(&mut self) -> impl Future<Output = Option<Inbound>> + Send;
    /// Queues `frame` to be written; [`Link::flush`] writes it at the latest.
    fn feed(&mut self, frame: Outbound) -> impl Future<Output = Result<(), Gone>> + Send;
    /// Writes out everything fed so far.
    fn flush(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;
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
#[derive(Debug)]
pub struct Gone;

/// Runs a session to its end.
pub async fn run(node: Arc<Node>, client: ClientAddr, mut link: impl Link) {
    // Boxed: the handshake's state is needed once, not for the session's life.
    let Some(opened) = Box::pin(handshake::open(&node, client, &mut link)).await else {
        return;
    };
    let user = opened.user;
    let welcome = ServerFrame::Welcome {
        user_id: user,
        session_id: uuid::Uuid::new_v4().simple().to_string(),
        heartbeat_ms: node.limits.heartbeat_ms,
        max_frame_bytes: protocol::MAX_FRAME_BYTES,
    };
    if write(&mut link, out(&welcome)).await.is_err() {
        return;
    }
    let heartbeat = Duration::from_millis(node.limits.heartbeat_ms);
    // Tags this session's sends, so their messages are not sent back to it.
    let origin: Origin = rand::random();
    let mut session = Session {
        node: node.clone(),
        user,
        origin,
        link,
        commands: None,
        state: SessionState::new(opened.watermarks, heartbeat, origin),
    };
    node.presence.connected(user).await;
    let mut events = opened.subscription.events;
    let close = match session.drive(Event::CatchUp).await {
        ControlFlow::Continue(()) => {
            // Commands are read only once the device is caught up.
            session.commands = Some(Commands::new());
            let close = session.live(&mut events).await;
            // What the worker was given is answered before the session ends.
            session.settle().await;
            close
        }
        ControlFlow::Break(close) => close,
    };
    drop(events);
    node.presence.disconnected(user).await;
    if let Some(code) = close {
        if code == CloseCode::SlowConsumer {
            node.metrics.slow_consumers.inc();
        }
        let _ = write(&mut session.link, Outbound::Close(code)).await;
    }
}

/// Writes one frame at once.
async fn write(link: &mut impl Link, frame: Outbound) -> Result<(), Gone> {
    link.feed(frame).await?;
    link.flush().await
}

/// The device's commands and the worker that applies them. The worker runs
/// only while commands wait: it owns the queue's receiving end while it
/// runs and gives it back when the queue is empty.
struct Commands {
    queue: mailbox::Sender<ClientFrame>,
    /// The queue's receiving end while no worker runs.
    idle: Option<mailbox::Receiver<ClientFrame>>,
    worker: Option<JoinHandle<mailbox::Receiver<ClientFrame>>>,
    /// The worker's answers, written by the session.
    replies: mailbox::Receiver<Outbound>,
    reply_to: mailbox::Sender<Outbound>,
}

impl Commands {
    fn new() -> Self {
        let (queue, idle) = mailbox::channel(COMMAND_QUEUE);
        let (reply_to, replies) = mailbox::channel(REPLY_QUEUE);
        Self {
            queue,
            idle: Some(idle),
            worker: None,
            replies,
            reply_to,
        }
    }

    /// Queues `frame`, starting the worker if none runs.
    async fn dispatch(
        &mut self,
        node: &Arc<Node>,
        user: UserId,
        origin: Origin,
        frame: ClientFrame,
    ) -> Result<(), Gone> {
        self.queue.send(frame).await.map_err(|_| Gone)?;
        if let Some(idle) = self.idle.take() {
            self.start(node, user, origin, idle);
        }
        Ok(())
    }

    fn start(
        &mut self,
        node: &Arc<Node>,
        user: UserId,
        origin: Origin,
        queue: mailbox::Receiver<ClientFrame>,
    ) {
        let work = dispatch::worker(node.clone(), user, origin, queue, self.reply_to.clone());
        self.worker = Some(tokio::spawn(work));
    }

    /// The worker stopped and gave `queue` back (`None`: it panicked, and
    /// the session ends). A command queued while it was stopping is still
    /// waiting: the worker starts again for it.
    fn stopped(
        &mut self,
        node: &Arc<Node>,
        user: UserId,
        origin: Origin,
        queue: Option<mailbox::Receiver<ClientFrame>>,
    ) -> Result<(), Gone> {
        match queue {
            Some(queue) if !queue.is_empty() => self.start(node, user, origin, queue),
            Some(queue) => self.idle = Some(queue),
            None => return Err(Gone),
        }
        Ok(())
    }
}

/// Resolves when the running worker has emptied its queue and stopped,
/// giving the queue back (`None` if it panicked, or none runs).
async fn stopped<R>(worker: &mut Option<JoinHandle<R>>) -> Option<R> {
    let queue = worker.as_mut()?.await.ok();
    *worker = None;
    queue
}

struct Session<L> {
    node: Arc<Node>,
    user: UserId,
    origin: Origin,
    link: L,
    /// From the live phase on (frames are read only then). Made after the
    /// catch-up, not before: allocated among the catch-up's temporaries,
    /// its queues cost every idle session ~1 KiB of heap
    /// (`confab-bench idle`).
    commands: Option<Commands>,
    state: SessionState,
}

impl<L: Link> Session<L> {
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
    async fn perform(&mut self, action: Action) -> Result<Option<Event>, Stop> {
        match action {
            Action::Forward(frame) => self.deliver(Outbound::Frame(frame)).await?,
            Action::Deliver(message) => {
                self.deliver(out(&ServerFrame::Message { message })).await?
            }
            Action::Reply(frame) => self.link.feed(out(&frame)).await?,
            Action::CountError(code) => self.node.metrics.error(code),
            Action::Dispatch(frame) => {
                let commands = self.commands.as_mut().ok_or(Gone)?;
                commands
                    .dispatch(&self.node, self.user, self.origin, frame)
                    .await?
            }
            Action::Close(code) => return Err(Stop(Some(code))),
            Action::End => return Err(Stop(None)),
            // Store reads are rare (resume, gaps): boxed, so the session
            // does not keep room for them while idle.
            Action::ListChats => {
                let chats = Box::pin(self.node.store.user_chats(self.user)).await;
                return Ok(Some(Event::Chats(chats.unwrap_or_default())));
            }
            Action::LookUp(chat) => {
                let member = Box::pin(self.node.store.member(chat, self.user)).await;
                return Ok(Some(Event::Member(member.ok().flatten())));
            }
            Action::Read { chat, after, limit } => {
                let page = Box::pin(self.node.store.messages_after(chat, after, limit)).await;
                let page = page.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "resume read failed");
                    Vec::new()
                });
                return Ok(Some(Event::Page(page)));
            }
        }
        Ok(None)
    }

    async fn deliver(&mut self, frame: Outbound) -> Result<(), Gone> {
        self.node.metrics.deliveries.inc();
        self.link.feed(frame).await
    }

    /// Writes the worker's answers that are ready.
    async fn write_replies(&mut self) -> Result<(), Gone> {
        let Some(commands) = self.commands.as_mut() else {
            return Ok(());
        };
        while let Some(reply) = commands.replies.try_recv() {
            self.link.feed(reply).await?;
        }
        Ok(())
    }

    /// Lets the worker finish what it was given (starting it again for a
    /// command queued while it was stopping), writing its answers, then
    /// writes the last of them.
    async fn settle(&mut self) {
        let Some(commands) = self.commands.as_mut() else {
            return;
        };
        while commands.worker.is_some() {
            tokio::select! {
                reply = commands.replies.recv() => {
                    let Some(reply) = reply else { return };
                    if self.link.feed(reply).await.is_err() {
                        // The socket is gone: the worker stops at its next answer.
                        return;
                    }
                }
                queue = stopped(&mut commands.worker) => {
                    if commands.stopped(&self.node, self.user, self.origin, queue).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = self.write_replies().await;
        let _ = self.link.flush().await;
    }

    /// The live phase: frames in, events out, heartbeats, shutdown.
    async fn live(&mut self, events: &mut mailbox::Receiver<Envelope>) -> Option<CloseCode> {
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
        let mut burst = 0;
        loop {
            if let Some(event) = event.take()
                && let ControlFlow::Break(close) = self.drive(event).await
            {
                return close;
            }
            if self.write_replies().await.is_err() {
                return None;
            }
            // Events already queued are handled before the socket is
            // flushed, so a burst goes out in few writes.
            if burst < WRITE_BATCH
                && let Some(queued) = events.try_recv()
            {
                burst += 1;
                event = Some(Event::Bus(queued));
                continue;
            }
            burst = 0;
            if self.link.flush().await.is_err() {
                return None;
            }
            let commands = self.commands.as_mut().expect("made before the live phase");
            event = tokio::select! {
                frame = self.link.recv() => Some(match frame {
                    Some(frame) => Event::Frame(frame, Instant::now()),
                    None => Event::SocketEnded,
                }),
                event = events.recv() => Some(event.map_or(Event::BusEnded, Event::Bus)),
                reply = commands.replies.recv() => {
                    // The session holds a sender: never `None`.
                    if let Some(reply) = reply && self.link.feed(reply).await.is_err() {
                        return None;
                    }
                    None
                }
                queue = stopped(&mut commands.worker), if commands.worker.is_some() => {
                    if commands.stopped(&self.node, self.user, self.origin, queue).is_err() {
                        return None;
                    }
                    None
                }
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
