//! The node: everything a gateway needs to serve one user request, shared by
//! the WebSocket sessions and the REST API so both behave the same.
//!
//! Holds the seams (store, bus, shard client) and the policies (auth, rate
//! limits, connection cap). Knows nothing of warp or sockets.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use tokio::sync::watch;

use crate::audit::{self, Event};
use crate::auth::{AuthError, Claims, PasswordPool, TokenKeys};
use crate::bus::Bus;
use crate::bus::sessions::Sessions;
use crate::client::{ClientAddr, Counter, Held};
use crate::error::ApiError;
use crate::media::Media;
use crate::metrics::Metrics;
use crate::model::{ChatId, Content, Device, MediaId, Member, Seq, User, UserId, now_ms};
use crate::presence::Presence;
use crate::protocol::{ChatView, ErrorCode, MAX_PAGE, MemberView, SendKind};
use crate::push::{DevicePolicy, MAX_DEVICES};
use crate::shard::{Command, Reply, SendItem, ShardClient};
use crate::store::{Store, StoreError};

/// How long a client refused by the password-hashing pool should wait.
const HASHING_RETRY: Duration = Duration::from_secs(1);

/// The answer when the password-hashing pool's queue is full.
fn pool_full(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, message).retry_after(HASHING_RETRY)
}

/// `rate_limited`, to retry when a governor limiter next allows it.
fn limited(not_until: &NotUntil<<DefaultClock as Clock>::Instant>, message: &str) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::new(ErrorCode::RateLimited, message).retry_after(wait)
}

/// Addresses the sign-up limiter remembers before it forgets quiet ones.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Bounds that protect the server. Defaults suit one machine.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open WebSocket sessions at most; more are closed with "try again later".
    pub max_connections: usize,
    /// Sustained frames per second per user (all devices together).
    pub rate_per_sec: u32,
    /// Frames a user may send in a burst above the sustained rate.
    pub burst: u32,
    /// Events queued for one session before it is cut off as a slow consumer.
    pub session_queue: usize,
    /// Clients ping at least this often; twice this without a frame closes.
    pub heartbeat_ms: u64,
    /// Time allowed between upgrade and `hello`.
    pub hello_timeout_ms: u64,
    /// Sessions one user may have open on this node at once (every device
    /// and tab); more are closed with 4003.
    pub max_sessions_per_user: usize,
    /// Time an HTTP connection may take to send a request's headers, and
    /// may stay idle between requests, before it is closed.
    pub header_timeout_ms: u64,
    /// Time a request body may take: a whole REST request (408 `timeout`
    /// past it), or the gap between two chunks of a media upload.
    pub body_timeout_ms: u64,
    /// Sessions one client address may have open on this node at once
    /// (signed in or not); more are closed with 4003.
    pub max_sessions_per_address: usize,
    /// Password checks (sign-ins, sign-ups) one client address may have
    /// queued or running at once; more are answered `rate_limited`.
    pub hashing_per_address: usize,
    /// Accounts one client address may register per minute (also the burst).
    pub signups_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (an ingress, a load
    /// balancer); without them every peer is its own client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 19_000,
            rate_per_sec: 100,
            burst: 200,
            session_queue: 4096,
            heartbeat_ms: 25_000,
            hello_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_sessions_per_user: 16,
            max_sessions_per_address: 1_000,
            signups_per_minute: 30,
            hashing_per_address: 16,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The seams a node talks through.
pub struct Seams {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub sessions: Arc<dyn Sessions>,
    pub shards: Arc<dyn ShardClient>,
    pub media: Arc<Media>,
}

/// A gateway's view of the system.
pub struct Node {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub shards: Arc<dyn ShardClient>,
    pub media: Arc<Media>,
    pub keys: TokenKeys,
    pub presence: Presence,
    /// Which devices may register for push notifications.
    pub devices: DevicePolicy,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    limiter: DefaultKeyedRateLimiter<UserId>,
    passwords: PasswordPool,
    /// Failed sign-ins per phone number, with growing waits.
    signins: std::sync::Mutex<crate::signin::Guard>,
    /// Failed sign-ins per client address, with growing waits.
    address_signins: std::sync::Mutex<crate::signin::Guard>,
    /// Registrations per client address.
    signups: DefaultKeyedRateLimiter<ClientAddr>,
    /// Password checks queued or running per client address.
    hashing: Arc<Counter<ClientAddr>>,
    /// What an unknown phone's password is checked against.
    unknown_hash: String,
    connections: AtomicUsize,
    /// Open sessions per user on this node.
    user_sessions: Arc<Counter<UserId>>,
    /// Open sessions per client address on this node.
    address_sessions: Arc<Counter<ClientAddr>>,
    shutdown: watch::Receiver<bool>,
    /// Bumped when events may have been missed (the bus reconnected).
    resync: watch::Sender<u64>,
    /// Set once the gateway drains: open sessions leave within this spread.
    drain: watch::Sender<Option<Duration>>,
    /// Connections and sessions: each holds the node (and its store), so the
    /// server waits for them before it returns.
    tasks: tokio_util::task::TaskTracker,
}

/// A held connection slot; released on drop.
pub struct ConnectionSlot(Arc<Node>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.connections.dec();
    }
}

fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or("");
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Node {
    pub fn new(
        Seams {
            store,
            bus,
            sessions,
            shards,
            media,
        }: Seams,
        keys: TokenKeys,
        metrics: Arc<Metrics>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(limits.rate_per_sec.max(1)).expect("> 0"))
            .allow_burst(NonZeroU32::new(limits.burst.max(1)).expect("> 0"));
        Self {
            presence: Presence::new(sessions, store.clone(), bus.clone()),
            devices: DevicePolicy::default(),
            store,
            bus,
            shards,
            media,
            keys,
            metrics,
            limiter: RateLimiter::keyed(quota),
            passwords: PasswordPool::new(2),
            signins: Default::default(),
            address_signins: std::sync::Mutex::new(crate::signin::Guard::new(
                crate::signin::ADDRESS_FREE_FAILURES,
            )),
            signups: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(limits.signups_per_minute.max(1)).expect("> 0"),
            )),
            unknown_hash: crate::auth::hash_password(&uuid::Uuid::new_v4().to_string()),
            connections: AtomicUsize::new(0),
            user_sessions: Counter::new(limits.max_sessions_per_user),
            address_sessions: Counter::new(limits.max_sessions_per_address),
            hashing: Counter::new(limits.hashing_per_address),
            limits,
            shutdown,
            resync: watch::Sender::new(0),
            drain: watch::Sender::new(None),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Runs `task` as one the server waits for in [`Node::settle`].
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Waits up to `within` for every task of [`Node::spawn`] to end; the
    /// number still running after that.
    pub async fn settle(&self, within: Duration) -> usize {
        self.tasks.close();
        let _ = tokio::time::timeout(within, self.tasks.wait()).await;
        self.tasks.len()
    }

    /// A receiver that changes to `true` when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Tells every session that events may have been lost (the bus
    /// reconnected): each catches up from the store, in place.
    pub fn resync_all(&self) {
        self.resync.send_modify(|n| *n += 1);
    }

    /// Changes when [`Node::resync_all`] is called.
    pub fn resync_signal(&self) -> watch::Receiver<u64> {
        self.resync.subscribe()
    }

    /// Starts draining (once; a second call changes nothing): new sessions
    /// are refused and every open one closes with "server restart" at a
    /// random moment within `spread`, so its devices reconnect to other
    /// gateways spread out rather than all at once.
    pub fn drain(&self, spread: Duration) {
        self.drain.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(spread);
            true
        });
    }

    /// [`Node::drain`]s over `spread`, then waits until no session is left
    /// or `deadline` passed; the sessions left.
    pub async fn drain_within(&self, spread: Duration, deadline: Duration) -> usize {
        self.drain(spread);
        let until = tokio::time::Instant::now() + deadline;
        while self.connections() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.connections()
    }

    /// Whether [`Node::drain`] was called.
    pub fn draining(&self) -> bool {
        self.drain.borrow().is_some()
    }

    /// Holds the drain's spread once [`Node::drain`] was called.
    pub fn drain_signal(&self) -> watch::Receiver<Option<Duration>> {
        self.drain.subscribe()
    }

    /// Takes a connection slot, or `None` at the connection cap.
    pub fn admit(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        self.metrics.connections.inc();
        let slot = ConnectionSlot(self.clone());
        (n < self.limits.max_connections).then_some(slot)
    }

    /// Takes one of `user`'s session slots, or `None` when the user has
    /// [`Limits::max_sessions_per_user`] open already.
    pub fn admit_user(&self, user: UserId) -> Option<Held<UserId>> {
        self.user_sessions.take(user)
    }

    /// Takes one of `client`'s session slots, or `None` when the address
    /// has [`Limits::max_sessions_per_address`] open already.
    pub fn admit_address(&self, client: ClientAddr) -> Option<Held<ClientAddr>> {
        self.address_sessions.take(client)
    }

    /// One of `client`'s places in the password-hashing pool: a client
    /// cannot queue more than [`Limits::hashing_per_address`] checks, so one
    /// address alone cannot make everyone else's sign-ins wait.
    fn hashing_slot(&self, client: ClientAddr) -> Result<Held<ClientAddr>, ApiError> {
        self.hashing.take(client).ok_or_else(|| {
            let message = "too many sign-ins at a time from this address; retry";
            ApiError::new(ErrorCode::RateLimited, message).retry_after(HASHING_RETRY)
        })
    }

    /// The client behind a connection from `peer` (see [`ClientAddr`]).
    pub fn client(&self, peer: std::net::IpAddr, forwarded_for: Option<&str>) -> ClientAddr {
        ClientAddr::resolve(peer, forwarded_for, &self.limits.trusted_proxies)
    }

    /// Open WebSocket sessions.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Charges one frame to `user`'s rate limit.
    pub fn check_rate(&self, user: UserId) -> Result<(), ApiError> {
        self.limiter
            .check_key(&user)
            .map_err(|not_until| limited(&not_until, "too many requests"))
    }

    pub async fn register(
        &self,
        client: ClientAddr,
        phone: &str,
        display_name: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        if let Err(not_until) = self.signups.check_key(&client) {
            audit::record(&self.metrics, Event::SignUpRefused { client });
            let message = "too many sign-ups from this address; wait before trying again";
            return Err(limited(&not_until, message));
        }
        if self.signups.len() > MAX_TRACKED_ADDRESSES {
            self.signups.retain_recent();
        }
        if !valid_phone(phone) {
            return Err(ApiError::invalid(
                "phone must be + followed by 6 to 15 digits",
            ));
        }
        let name = crate::text::display_name(display_name).map_err(ApiError::invalid)?;
        if password.len() < 8 || password.len() > 256 {
            return Err(ApiError::invalid("password must be 8 to 256 bytes"));
        }
        let _hashing = self.hashing_slot(client)?;
        let password_hash = self
            .passwords
            .hash(password.to_owned())
            .await
            .ok_or_else(|| pool_full("too many sign-ups at once; retry"))?;
        let user = User {
            id: uuid::Uuid::now_v7(),
            phone: phone.to_owned(),
            display_name: name,
            password_hash,
            created_at: now_ms(),
        };
        match self.store.create_user(&user).await {
            Err(StoreError::Conflict(_)) => Err(ApiError::new(
                ErrorCode::Conflict,
                "this phone number is already registered",
            )),
            other => other.map_err(ApiError::from),
        }?;
        Ok(User {
            password_hash: String::new(),
            ..user
        })
    }

    /// The item a `send` becomes: text as it is, or media attached (the
    /// upload checked against the sender's rights and shared in the chat).
    pub async fn send_item(
        &self,
        user: UserId,
        chat: ChatId,
        client_msg_id: String,
        kind: SendKind,
        body: String,
        media_id: Option<MediaId>,
    ) -> Result<SendItem, ApiError> {
        let content = match (kind.media(), media_id) {
            (Some(kind), Some(id)) => self.media.attach(user, chat, &id, kind, body).await?,
            (None, None) => Content::Text { body },
            _ => return Err(ApiError::invalid("media_id goes with a media kind")),
        };
        Ok(SendItem {
            chat,
            client_msg_id,
            content,
        })
    }

    /// After `item` was stored at `seq`: a media message records which
    /// message carries its media (retention waits for its delivery).
    pub async fn sent(&self, user: UserId, item: &SendItem, seq: Seq) {
        if let Some(a) = item.content.attachment() {
            self.media.shared(&a.media_id, item.chat, seq, user).await;
        }
    }

    /// Checks credentials and issues a token.
    pub async fn login(
        &self,
        client: ClientAddr,
        phone: &str,
        password: &str,
    ) -> Result<(String, Claims), ApiError> {
        let bad = || ApiError::new(ErrorCode::BadCredentials, "wrong phone number or password");
        let now = std::time::Instant::now();
        let address = client.to_string();
        let waiting = [
            (&self.signins, phone, "this phone number"),
            (&self.address_signins, address.as_str(), "this address"),
        ]
        .into_iter()
        .find_map(|(guard, key, what)| {
            let wait = guard.lock().expect("sign-in guard").check(key, now).err()?;
            Some((wait, what))
        });
        if let Some((wait, what)) = waiting {
            let message = format!("too many failed sign-ins for {what}; wait before trying again");
            return Err(ApiError::new(ErrorCode::RateLimited, message).retry_after(wait));
        }
        let user = self.store.user_by_phone(phone).await?;
        // An unknown phone costs a verification too: timing tells nothing.
        let hash = user
            .as_ref()
            .map_or_else(|| self.unknown_hash.clone(), |u| u.password_hash.clone());
        let hashing = self.hashing_slot(client)?;
        let Some(matched) = self.passwords.verify(password.to_owned(), hash).await else {
            return Err(pool_full("too many sign-ins at once; retry"));
        };
        drop(hashing);
        let mut guard = self.signins.lock().expect("sign-in guard");
        match user {
            Some(user) if matched => {
                guard.succeeded(phone);
                Ok(self.keys.issue(user.id))
            }
            _ => {
                let phone_locked = guard.failed(phone, now);
                drop(guard);
                let address_locked = self
                    .address_signins
                    .lock()
                    .expect("sign-in guard")
                    .failed(&address, now);
                audit::record(&self.metrics, Event::SignInFailed { phone, client });
                let locks = [(phone, phone_locked), (address.as_str(), address_locked)];
                for (key, locked) in locks {
                    if let Some(wait) = locked {
                        audit::record(&self.metrics, Event::SignInLocked { key, wait });
                    }
                }
                Err(bad())
            }
        }
    }

    /// Verifies an `Authorization: Bearer <token>` header's value.
    pub async fn authenticate_header(&self, value: Option<&str>) -> Result<Claims, ApiError> {
        let token = value
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "send Authorization: Bearer <token>",
                )
            })?;
        self.authenticate(token).await
    }

    /// Verifies a token: signature, expiry and revocation.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.keys.verify(token).map_err(|e| match e {
            AuthError::Expired => ApiError::new(ErrorCode::TokenExpired, e.to_string()),
            AuthError::Invalid => ApiError::new(ErrorCode::Unauthenticated, e.to_string()),
        })?;
        if self.store.is_revoked(&claims.jti).await? {
            return Err(ApiError::new(
                ErrorCode::TokenRevoked,
                "this token was revoked",
            ));
        }
        Ok(claims)
    }

    pub async fn logout(&self, claims: &Claims) -> Result<(), ApiError> {
        self.store.revoke_token(&claims.jti, claims.exp).await?;
        let event = Event::TokenRevoked {
            user: claims.sub,
            token_id: &claims.jti,
        };
        audit::record(&self.metrics, event);
        Ok(())
    }

    /// `self`, letting devices register as `policy` says.
    pub fn with_devices(mut self, policy: DevicePolicy) -> Self {
        self.devices = policy;
        self
    }

    /// Registers (or re-registers, same id) a device of `user` for push
    /// notifications.
    pub async fn register_device(&self, user: UserId, device: Device) -> Result<Device, ApiError> {
        self.devices.check(&device).map_err(ApiError::invalid)?;
        let existing = self.store.devices(user).await?;
        let known = existing.iter().any(|d| d.device_id == device.device_id);
        if !known && existing.len() >= MAX_DEVICES {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("at most {MAX_DEVICES} devices per user; remove one first"),
            ));
        }
        self.store.put_device(user, &device).await?;
        Ok(device)
    }

    pub async fn devices(&self, user: UserId) -> Result<Vec<Device>, ApiError> {
        Ok(self.store.devices(user).await?)
    }

    /// Unregisters a device; unknown ids are not an error (idempotent).
    pub async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), ApiError> {
        Ok(self.store.remove_device(user, device_id).await?)
    }

    pub async fn command(&self, command: Command) -> Result<Reply, ApiError> {
        self.shards.call(command).await
    }

    /// Runs a command that answers with a chat, and returns that chat's view.
    pub async fn chat_command(&self, user: UserId, command: Command) -> Result<ChatView, ApiError> {
        match self.command(command).await? {
            Reply::Chat(id) => self.chat_view(user, id).await,
            other => Err(ApiError::new(
                ErrorCode::Internal,
                format!("unexpected shard reply {other:?}"),
            )),
        }
    }

    /// The direct chat with the user registered under `phone`, created on first use.
    pub async fn open_direct(&self, user: UserId, phone: &str) -> Result<ChatView, ApiError> {
        let peer = self.lookup(phone).await?;
        self.chat_command(
            user,
            Command::OpenDirect {
                user,
                peer: peer.id,
            },
        )
        .await
    }

    /// The user registered under `phone` (without secrets).
    pub async fn lookup(&self, phone: &str) -> Result<User, ApiError> {
        let user = self
            .store
            .user_by_phone(phone)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(User {
            password_hash: String::new(),
            ..user
        })
    }

    /// getAll: the user's chats, most recently active first.
    pub async fn chats(&self, user: UserId) -> Result<Vec<ChatView>, ApiError> {
        let mut out = Vec::new();
        for id in self.store.user_chats(user).await? {
            match self.chat_view(user, id).await {
                Ok(v) => out.push(v),
                Err(e) if e.code == ErrorCode::NotMember => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.sent_at)));
        Ok(out)
    }

    /// One chat as `user` sees it; `not_member` unless they belong to it.
    pub async fn chat_view(&self, user: UserId, chat: ChatId) -> Result<ChatView, ApiError> {
        let meta = self
            .store
            .chat(chat)
            .await?
            .ok_or_else(|| ApiError::not_found("chat"))?;
        let members = self.store.members(chat).await?;
        let me = members
            .iter()
            .find(|m| m.user_id == user)
            .cloned()
            .ok_or_else(ApiError::not_member)?;
        let last_message = self
            .store
            .messages_before(chat, None, 1)
            .await?
            .into_iter()
            .next();
        let last_seq = last_message.as_ref().map_or(0, |m| m.seq);
        let mut views = Vec::with_capacity(members.len());
        for m in &members {
            let (name, phone) = match self.store.user(m.user_id).await? {
                Some(u) => (u.display_name, u.phone),
                None => (String::new(), String::new()),
            };
            views.push(MemberView::new(m, name, phone));
        }
        Ok(ChatView {
            chat_id: chat,
            kind: meta.kind,
            title: meta.title,
            members: views,
            last_seq,
            last_message,
            unread: last_seq.saturating_sub(me.read_seq),
            delivered_seq: me.delivered_seq,
            read_seq: me.read_seq,
        })
    }

    /// getMessages: a page of history, newest first, and the cursor for the
    /// next page. A member reads from the seq they joined at, never before.
    pub async fn history(
        &self,
        user: UserId,
        chat: ChatId,
        before: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<(Vec<crate::model::Message>, Option<Seq>), ApiError> {
        let limit = match limit.unwrap_or(50) {
            n @ 1..=MAX_PAGE => n as usize,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        };
        let floor = self.member(user, chat).await?.joined_seq.max(1);
        let mut page = self.store.messages_before(chat, before, limit).await?;
        page.retain(|m| m.seq >= floor);
        let next = match page.last() {
            Some(m) if page.len() == limit && m.seq > floor => Some(m.seq),
            _ => None,
        };
        Ok((page, next))
    }

    /// The user's membership of a chat: `not_found` for a missing chat,
    /// `not_member` for someone else's.
    pub async fn member(&self, user: UserId, chat: ChatId) -> Result<Member, ApiError> {
        if self.store.chat(chat).await?.is_none() {
            return Err(ApiError::not_found("chat"));
        }
        self.store
            .members(chat)
            .await?
            .into_iter()
            .find(|m| m.user_id == user)
            .ok_or_else(ApiError::not_member)
    }

    /// A group's invite code, for its admins: the current one, or (`reset`)
    /// a new one that replaces it.
    pub async fn invite(
        &self,
        user: UserId,
        chat: ChatId,
        reset: bool,
    ) -> Result<String, ApiError> {
        match self.command(Command::Invite { user, chat, reset }).await? {
            Reply::Invite(code) => Ok(code),
            other => Err(ApiError::new(
                ErrorCode::Internal,
                format!("unexpected shard reply {other:?}"),
            )),
        }
    }
}
