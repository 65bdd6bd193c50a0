//! The session a chat app keeps open ([`Client`]): one task that owns the
//! WebSocket, resumes from stored watermarks, reconnects with jittered
//! backoff unless a close code says stop, sends `ping`s, retries sends
//! until stored ([`crate::outbox`]), shows each message once
//! ([`crate::cursor`]) and answers requests by `req_id`. The app talks to
//! it through [`Client`] (cheap to clone) and hears it through [`Events`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use confab_protocol::model::{ChatId, MediaId, Message, Seq, UserId};
use confab_protocol::{ChatView, ClientFrame, SendKind, ServerFrame};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connection::{Connection, Welcome, Writer};
use crate::cursor::Cursor;
use crate::outbox::{Outbox, Pacing};
use crate::storage::{InMemory, Watermarks};
use crate::{CloseAction, Error, close_action};

/// How to reach the server, as whom, and how to behave.
pub struct Options {
    /// The server's base URL (`http://host:port`, `https://…`).
    pub url: String,
    /// A token from `POST /v1/login`.
    pub token: String,
    /// Where the resume watermarks are kept between runs.
    pub watermarks: Arc<dyn Watermarks>,
    /// TLS settings for `https`/`wss`; `None` trusts the system's CAs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub pacing: Pacing,
    /// First and longest wait between reconnects (jittered, doubling).
    pub reconnect: (Duration, Duration),
}

impl Options {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            watermarks: Arc::new(InMemory::default()),
            tls: None,
            pacing: Pacing::default(),
            reconnect: (Duration::from_millis(500), Duration::from_secs(30)),
        }
    }
}

/// A stored send: the `sent` frame's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub chat_id: ChatId,
    pub client_msg_id: String,
    pub seq: Seq,
    pub sent_at: i64,
    /// This `client_msg_id` was stored before (a retry's answer).
    pub duplicate: bool,
}

/// What the session tells the app, in order.
#[derive(Clone, Debug)]
pub enum Event {
    /// A connection is up (after `welcome`); the resume backlog follows.
    Connected(Welcome),
    /// The backlog is in; live events follow. Each chat's highest seq.
    Synced(BTreeMap<ChatId, Seq>),
    /// A message this device did not hold: each one once.
    Message(Message),
    /// A send is stored (its `send` call hears it too).
    Sent(Sent),
    /// The server asked to send this again later; the session will.
    Retrying {
        client_msg_id: String,
        after: Option<Duration>,
    },
    /// The server refused a send for good (its `send` call hears it too).
    Refused { client_msg_id: String, error: Error },
    /// A `receipt`, `typing` or `presence` frame.
    Live(ServerFrame),
    /// An `error` that answers no send or request of this session (a
    /// refused receipt, say).
    Error(Error),
    /// The connection is gone; the session reconnects after `retry_in`.
    Disconnected { error: Error, retry_in: Duration },
    /// The session ended: closed by the app, or a close code that says
    /// stop (log in again). Queued sends and requests fail with `error`.
    Stopped(Error),
}

/// Where a request's answer goes.
type Answer = oneshot::Sender<Result<ServerFrame, Error>>;

/// What the session hears from the app.
enum Command {
    Send {
        frame: ClientFrame,
        reply: oneshot::Sender<Result<Sent, Error>>,
    },
    Request {
        req_id: String,
        frame: ClientFrame,
        reply: Answer,
    },
    /// A frame with no answer (receipts, typing): now or never.
    Fire {
        frame: ClientFrame,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Watermarks(oneshot::Sender<BTreeMap<ChatId, Seq>>),
    Close(oneshot::Sender<()>),
}

/// The app's handle on a session. Cheap to clone; the session stops when
/// [`Client::close`] is called or every handle is dropped.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

/// The session's events, in order. Read them: they are queued until read.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event; `None` once the session has ended and every event
    /// was read.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }
}

impl Client {
    /// Starts a session that keeps trying to connect, in the background.
    pub fn start(options: Options) -> (Self, Events) {
        Self::spawn(options, None)
    }

    /// Connects, resumes and returns once `synced` arrived (the backlog is
    /// in [`Events`]). A first attempt that fails is an error; later drops
    /// reconnect on their own.
    pub async fn connect(options: Options) -> Result<(Self, Events), Error> {
        let (ready, synced) = oneshot::channel();
        let (client, events) = Self::spawn(options, Some(ready));
        synced.await.map_err(|_| Error::Stopped)??;
        Ok((client, events))
    }

    fn spawn(
        options: Options,
        ready: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> (Self, Events) {
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let task = Task {
            cursor: Cursor::new(options.watermarks.load()),
            outbox: Outbox::new(options.pacing),
            options,
            rx,
            events,
            senders: HashMap::new(),
            unsent: Vec::new(),
            asked: HashMap::new(),
            ready,
            closer: None,
        };
        tokio::spawn(task.run());
        (Self { commands }, Events(events_rx))
    }

    /// Queues a send and returns at once; the future resolves when it is
    /// stored (retried, with the same `client_msg_id`, until then) or
    /// refused for good. Dropping the future keeps the send queued.
    pub fn submit(
        &self,
        chat_id: ChatId,
        client_msg_id: String,
        kind: SendKind,
        body: String,
        media_id: Option<MediaId>,
    ) -> impl Future<Output = Result<Sent, Error>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let frame = ClientFrame::Send {
            chat_id,
            client_msg_id,
            kind,
            body,
            media_id,
        };
        let queued = self.commands.send(Command::Send { frame, reply });
        async move {
            queued.map_err(|_| Error::Stopped)?;
            answer.await.map_err(|_| Error::Stopped)?
        }
    }

    /// Sends a text message (with a new `client_msg_id`); resolves once stored.
    pub async fn send_text(&self, chat_id: ChatId, body: impl Into<String>) -> Result<Sent, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        self.submit(chat_id, id, SendKind::Text, body.into(), None)
            .await
    }

    /// Every message up to `seq` in `chat_id` reached this device.
    pub async fn delivered(&self, chat_id: ChatId, seq: Seq) -> Result<(), Error> {
        self.fire(ClientFrame::Delivered { chat_id, seq }).await
    }

    /// The user read `chat_id` up to `seq`.
    pub async fn read(&self, chat_id: ChatId, seq: Seq) -> Result<(), Error> {
        self.fire(ClientFrame::Read { chat_id, seq }).await
    }

    /// The user is typing in `chat_id` (ephemeral: dropped while offline).
    pub async fn typing(&self, chat_id: ChatId) -> Result<(), Error> {
        self.fire(ClientFrame::Typing { chat_id }).await
    }

    /// Every chat of the user.
    pub async fn chats(&self) -> Result<Vec<ChatView>, Error> {
        match self.request(|req_id| ClientFrame::Chats { req_id }).await? {
            ServerFrame::Chats { chats, .. } => Ok(chats),
            other => Err(unexpected(other)),
        }
    }

    /// A page of `chat_id`'s history, newest first, older than `before`;
    /// with the `before` of the next (older) page, if any.
    pub async fn history(
        &self,
        chat_id: ChatId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<Seq>), Error> {
        let frame = |req_id| ClientFrame::History {
            req_id,
            chat_id,
            before,
            limit: Some(limit),
        };
        match self.request(frame).await? {
            ServerFrame::History {
                messages,
                next_before,
                ..
            } => Ok((messages, next_before)),
            other => Err(unexpected(other)),
        }
    }

    /// The 1:1 chat with the user registered under `phone`.
    pub async fn open_direct(&self, phone: &str) -> Result<ChatView, Error> {
        let phone = phone.to_owned();
        self.chat(|req_id| ClientFrame::OpenDirect { req_id, phone })
            .await
    }

    /// A new group with this user as its admin.
    pub async fn create_group(&self, title: &str, members: Vec<UserId>) -> Result<ChatView, Error> {
        let title = title.to_owned();
        self.chat(|req_id| ClientFrame::CreateGroup {
            req_id,
            title,
            members,
        })
        .await
    }

    /// The id and name of the user registered under `phone`.
    pub async fn lookup(&self, phone: &str) -> Result<(UserId, String), Error> {
        let phone = phone.to_owned();
        match self
            .request(|req_id| ClientFrame::Lookup { req_id, phone })
            .await?
        {
            ServerFrame::User {
                user_id,
                display_name,
                ..
            } => Ok((user_id, display_name)),
            other => Err(unexpected(other)),
        }
    }

    /// Whether `user_id` is online, or when they were last seen.
    pub async fn presence(&self, user_id: UserId) -> Result<(bool, Option<i64>), Error> {
        match self
            .request(|req_id| ClientFrame::Presence { req_id, user_id })
            .await?
        {
            ServerFrame::Presence {
                online, last_seen, ..
            } => Ok((online, last_seen)),
            other => Err(unexpected(other)),
        }
    }

    /// Sends the request `make` builds around a fresh `req_id`; its answer
    /// (an `error` is [`Error::Refused`]). Waits for a connection; a
    /// connection lost before the answer is [`Error::Disconnected`].
    pub async fn request(
        &self,
        make: impl FnOnce(String) -> ClientFrame,
    ) -> Result<ServerFrame, Error> {
        let req_id = uuid::Uuid::now_v7().to_string();
        let (reply, answer) = oneshot::channel();
        let frame = make(req_id.clone());
        self.commands
            .send(Command::Request {
                req_id,
                frame,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// The watermarks the next `hello` would resume from.
    pub async fn watermarks(&self) -> Result<BTreeMap<ChatId, Seq>, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Watermarks(reply))
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// Ends the session (close 1000); queued sends fail with
    /// [`Error::Stopped`]. Returns once the watermarks are saved.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }

    async fn chat(&self, make: impl FnOnce(String) -> ClientFrame) -> Result<ChatView, Error> {
        match self.request(make).await? {
            ServerFrame::Chat { chat, .. } => Ok(chat),
            other => Err(unexpected(other)),
        }
    }

    async fn fire(&self, frame: ClientFrame) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Fire { frame, reply })
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }
}

fn unexpected(frame: ServerFrame) -> Error {
    Error::Unexpected(format!("{frame:?}"))
}

/// The session's task: everything it holds between connections.
struct Task {
    options: Options,
    rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    cursor: Cursor,
    outbox: Outbox,
    /// Callers waiting for each queued send's answer.
    senders: HashMap<String, Vec<oneshot::Sender<Result<Sent, Error>>>>,
    /// Requests waiting for a connection.
    unsent: Vec<(String, ClientFrame, Answer)>,
    /// Requests on the wire, by `req_id`.
    asked: HashMap<String, Answer>,
    /// Told once the first `synced` arrived (or the first attempt failed).
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    /// Told once a `close` is done.
    closer: Option<oneshot::Sender<()>>,
}

impl Task {
    async fn run(mut self) {
        let (first, max) = self.options.reconnect;
        let mut waits = backoff(first, max);
        let end = loop {
            let error = match self.open().await {
                Ok((conn, welcome)) => {
                    waits = backoff(first, max);
                    self.live(conn, welcome).await
                }
                Err(e) => e,
            };
            self.outbox.down();
            for (_, reply) in self.asked.drain() {
                let _ = reply.send(Err(Error::Disconnected));
            }
            self.save();
            if ends_session(&error) || self.ready.is_some() {
                break error;
            }
            let retry_in = waits.next().unwrap_or(max);
            self.emit(Event::Disconnected {
                error: error.clone(),
                retry_in,
            });
            if let Err(e) = self.idle(retry_in).await {
                break e;
            }
        };
        self.stop(end);
    }

    /// Opens a connection and says `hello` with the watermarks held.
    async fn open(&mut self) -> Result<(Connection, Welcome), Error> {
        let mut conn = Connection::open(&self.options.url, self.options.tls.clone()).await?;
        let welcome = conn
            .hello(&self.options.token, self.cursor.watermarks())
            .await?;
        Ok((conn, welcome))
    }

    /// Serves one connection until it ends; why it ended.
    async fn live(&mut self, conn: Connection, welcome: Welcome) -> Error {
        let beat = Duration::from_millis(welcome.heartbeat_ms.max(100));
        self.emit(Event::Connected(welcome));
        let (mut writer, mut reader) = conn.split();
        for (req_id, frame, reply) in std::mem::take(&mut self.unsent) {
            if let Err(e) = writer.send(&frame).await {
                let _ = reply.send(Err(Error::Disconnected));
                return e;
            }
            self.asked.insert(req_id, reply);
        }
        let mut ping = tokio::time::interval_at(Instant::now() + beat, beat);
        let mut heard = Instant::now();
        loop {
            let due = self.outbox.due(Instant::now().into_std());
            if !due.is_empty()
                && let Err(e) = writer.send_all(&due).await
            {
                return e;
            }
            let retry = self.outbox.next_deadline().map(Instant::from_std);
            tokio::select! {
                frame = reader.next() => match frame {
                    Ok(frame) => {
                        heard = Instant::now();
                        self.on_frame(frame);
                    }
                    Err(Error::Unexpected(what)) => {
                        // A frame this client does not know (a newer
                        // server): skipped, never fatal.
                        heard = Instant::now();
                        tracing::debug!(%what, "skipped a frame");
                    }
                    Err(e) => return e,
                },
                command = self.rx.recv() => match command {
                    None => return Error::Stopped,
                    Some(c) => {
                        if let Err(e) = self.command(c, Some(&mut writer)).await {
                            if matches!(e, Error::Stopped) {
                                writer.close().await;
                            }
                            return e;
                        }
                    }
                },
                _ = sleep_until(retry) => {}
                _ = ping.tick() => {
                    self.save();
                    if let Err(e) = writer.send(&ClientFrame::Ping {}).await {
                        return e;
                    }
                }
                _ = tokio::time::sleep_until(heard + beat * 2) => {
                    return Error::Connection(format!("no frame from the server for {:?}", beat * 2));
                }
            }
        }
    }

    /// Waits `wait` before reconnecting, serving commands meanwhile.
    async fn idle(&mut self, wait: Duration) -> Result<(), Error> {
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(()),
                command = self.rx.recv() => match command {
                    None => return Err(Error::Stopped),
                    Some(c) => self.command(c, None).await?,
                },
            }
        }
    }

    /// Serves one command; `writer` is the open connection, if any. A
    /// `close` ends the session: [`Error::Stopped`].
    async fn command(
        &mut self,
        command: Command,
        writer: Option<&mut Writer>,
    ) -> Result<(), Error> {
        match command {
            Command::Send { frame, reply } => {
                if let ClientFrame::Send { client_msg_id, .. } = &frame {
                    self.senders
                        .entry(client_msg_id.clone())
                        .or_default()
                        .push(reply);
                }
                self.outbox.add(frame);
            }
            Command::Request {
                req_id,
                frame,
                reply,
            } => match writer {
                Some(w) => {
                    w.send(&frame).await?;
                    self.asked.insert(req_id, reply);
                }
                None => self.unsent.push((req_id, frame, reply)),
            },
            Command::Fire { frame, reply } => match writer {
                Some(w) => {
                    let sent = w.send(&frame).await;
                    let _ = reply.send(sent.clone());
                    sent?;
                }
                None => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
            },
            Command::Watermarks(reply) => {
                let _ = reply.send(self.cursor.watermarks().clone());
            }
            Command::Close(done) => {
                self.closer = Some(done);
                return Err(Error::Stopped);
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message { message } => {
                if self.cursor.message(message.chat_id, message.seq) {
                    self.emit(Event::Message(message));
                }
            }
            ServerFrame::Sent {
                chat_id,
                client_msg_id,
                seq,
                sent_at,
                duplicate,
            } => {
                self.cursor.sent(chat_id, seq);
                self.outbox.sent(&client_msg_id);
                let sent = Sent {
                    chat_id,
                    client_msg_id,
                    seq,
                    sent_at,
                    duplicate,
                };
                for reply in self.senders.remove(&sent.client_msg_id).unwrap_or_default() {
                    let _ = reply.send(Ok(sent.clone()));
                }
                self.emit(Event::Sent(sent));
            }
            ServerFrame::Synced { chats } => {
                self.cursor.synced(&chats);
                self.save();
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                self.emit(Event::Synced(chats));
            }
            ServerFrame::Error {
                req_id,
                client_msg_id,
                code,
                message,
                retry_after_ms,
            } => {
                let error = Error::refused(code, message, retry_after_ms);
                if let Some(id) = client_msg_id {
                    let after = retry_after_ms.map(Duration::from_millis);
                    let now = std::time::Instant::now();
                    if code.retryable() && self.outbox.retry(&id, after, now) {
                        self.emit(Event::Retrying {
                            client_msg_id: id,
                            after,
                        });
                        return;
                    }
                    if self.outbox.refused(&id) {
                        for reply in self.senders.remove(&id).unwrap_or_default() {
                            let _ = reply.send(Err(error.clone()));
                        }
                        self.emit(Event::Refused {
                            client_msg_id: id,
                            error,
                        });
                        return;
                    }
                }
                match req_id.and_then(|id| self.asked.remove(&id)) {
                    Some(reply) => {
                        let _ = reply.send(Err(error));
                    }
                    None => self.emit(Event::Error(error)),
                }
            }
            ServerFrame::Receipt { .. } | ServerFrame::Typing { .. } => {
                self.emit(Event::Live(frame));
            }
            ServerFrame::Presence { req_id: None, .. } => self.emit(Event::Live(frame)),
            ServerFrame::Presence {
                req_id: Some(ref id),
                ..
            }
            | ServerFrame::Chats { req_id: ref id, .. }
            | ServerFrame::History { req_id: ref id, .. }
            | ServerFrame::Chat { req_id: ref id, .. }
            | ServerFrame::Ok { req_id: ref id }
            | ServerFrame::Invite { req_id: ref id, .. }
            | ServerFrame::User { req_id: ref id, .. } => {
                if let Some(reply) = self.asked.remove(id) {
                    let _ = reply.send(Ok(frame));
                }
            }
            ServerFrame::Pong {} | ServerFrame::Welcome { .. } => {}
        }
    }

    /// Saves the watermarks (a failed save is retried on the next one).
    fn save(&self) {
        if let Err(e) = self.options.watermarks.save(self.cursor.watermarks()) {
            tracing::warn!(error = %e, "saving the watermarks failed");
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Fails what waits with `end` and says the session stopped.
    fn stop(mut self, end: Error) {
        for id in self.outbox.drain() {
            for reply in self.senders.remove(&id).unwrap_or_default() {
                let _ = reply.send(Err(end.clone()));
            }
        }
        for (_, _, reply) in self.unsent.drain(..) {
            let _ = reply.send(Err(end.clone()));
        }
        self.save();
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(end.clone()));
        }
        self.emit(Event::Stopped(end));
        if let Some(done) = self.closer.take() {
            let _ = done.send(());
        }
    }
}

/// Whether `error` ends the session rather than a connection: the app
/// closed it, a close code says stop, or `hello` was refused for good.
fn ends_session(error: &Error) -> bool {
    match error {
        Error::Stopped | Error::Unexpected(_) => true,
        Error::Closed { code, .. } => close_action(*code) == CloseAction::Terminal,
        Error::Refused { code, .. } => !code.retryable(),
        Error::Connection(_) | Error::Disconnected => false,
    }
}

fn backoff(first: Duration, max: Duration) -> Box<dyn Iterator<Item = Duration> + Send> {
    Box::new(
        ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build(),
    )
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
