//! The node: what every operation of a gateway runs with — the seams (store,
//! bus, shard client, media) and the policies (auth, rate limits, connection
//! and session caps, drain). The operations themselves are in [`crate::ops`];
//! sign-up and sign-in in `accounts`. Knows nothing of HTTP or sockets.

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
use crate::model::{User, UserId, now_ms};
use crate::presence::Presence;
use crate::protocol::ErrorCode;
use crate::push::DevicePolicy;
use crate::shard::ShardClient;
use crate::store::{Store, StoreError};

mod accounts;

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
            max_connections: confab_api::config::DEFAULT_MAX_CONNECTIONS as usize,
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
}
