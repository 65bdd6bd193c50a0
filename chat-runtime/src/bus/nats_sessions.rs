//! The live-session directory in a JetStream key-value bucket, for clusters.
//!
//! Bucket `confab-<cluster>-sessions`, with the ChatCluster's
//! `cache.replicas` copies. Each node (gateway or shard process) writes a
//! heartbeat key `node.<node>` every [`HEARTBEAT`]; a gateway writes one key
//! per user it holds sessions of, `<user>.<node>`, when the first session
//! opens and deletes it when the last one closes. Session keys are not
//! refreshed with the heartbeat (only every [`MAX_AGE`]/3, which bounds what
//! the bucket keeps): a node's keys count while its heartbeat does, and a
//! node silent for [`NODE_TTL`] (killed, cut off) is dead — every live node
//! then purges its keys (idempotent).
//! A node that finds one of its own keys purged while the session is still
//! open (it was cut off for a while) writes it again.
//!
//! Every node keeps a view of the whole bucket through a watch ([`View`],
//! pure), so `online` is a map lookup.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::sessions::{Counts, Sessions};
use super::{BusError, unavailable};
use crate::backoff;
use crate::model::UserId;

/// How often a node writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node whose heartbeat was not seen for this long is dead.
pub const NODE_TTL: Duration = Duration::from_secs(8);
/// Entries (and delete markers) older than this leave the bucket; live
/// nodes rewrite their session keys every third of it.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Prefix of heartbeat keys.
const NODE_PREFIX: &str = "node.";

/// What a key of the bucket names.
#[derive(Debug, PartialEq, Eq)]
enum Key<'a> {
    Heartbeat { node: &'a str },
    Session { user: UserId, node: &'a str },
}

fn parse(key: &str) -> Option<Key<'_>> {
    if let Some(node) = key.strip_prefix(NODE_PREFIX) {
        return Some(Key::Heartbeat { node });
    }
    let (user, node) = key.split_once('.')?;
    Some(Key::Session {
        user: user.parse().ok()?,
        node,
    })
}

fn session_key(user: UserId, node: &str) -> String {
    format!("{}.{node}", user.simple())
}

/// Other nodes' sessions and liveness, as far as the watch told.
#[derive(Debug, Default)]
struct View {
    /// user → nodes holding sessions of that user.
    users: HashMap<UserId, HashSet<String>>,
    /// node → when it was last heard from (a heartbeat or a session key).
    nodes: HashMap<String, Instant>,
}

impl View {
    /// Applies one written (`put`) or removed key, seen at `now`.
    fn apply(&mut self, key: &str, put: bool, now: Instant) {
        match (parse(key), put) {
            (Some(Key::Heartbeat { node }), true) => {
                self.nodes.insert(node.to_owned(), now);
            }
            (Some(Key::Heartbeat { node }), false) => self.forget(node),
            (Some(Key::Session { user, node }), true) => {
                self.nodes.entry(node.to_owned()).or_insert(now);
                self.users.entry(user).or_default().insert(node.to_owned());
            }
            (Some(Key::Session { user, node }), false) => {
                if let Some(nodes) = self.users.get_mut(&user) {
                    nodes.remove(node);
                    if nodes.is_empty() {
                        self.users.remove(&user);
                    }
                }
            }
            (None, _) => {}
        }
    }

    fn alive(&self, node: &str, now: Instant) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|seen| now.saturating_duration_since(*seen) < NODE_TTL)
    }

    /// Whether a live node holds a session of `user`.
    fn online(&self, user: UserId, now: Instant) -> bool {
        self.users
            .get(&user)
            .is_some_and(|nodes| nodes.iter().any(|n| self.alive(n, now)))
    }

    /// Nodes silent for [`NODE_TTL`], each with the users it held.
    fn dead(&self, now: Instant) -> Vec<(String, Vec<UserId>)> {
        self.nodes
            .keys()
            .filter(|n| !self.alive(n, now))
            .map(|n| {
                let users = self
                    .users
                    .iter()
                    .filter(|(_, nodes)| nodes.contains(n))
                    .map(|(u, _)| *u)
                    .collect();
                (n.clone(), users)
            })
            .collect()
    }

    /// Drops `node` and its sessions.
    fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
        self.users.retain(|_, nodes| {
            nodes.remove(node);
            !nodes.is_empty()
        });
    }
}

/// This node's sessions, published to and read from the bucket.
pub struct NatsSessions {
    kv: kv::Store,
    node: String,
    mine: Counts,
    view: Mutex<View>,
}

impl std::fmt::Debug for NatsSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSessions")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Opens the session bucket of `cluster` with `replicas` copies, creating it
/// or bringing an existing one to that configuration.
pub async fn bucket(
    js: &jetstream::Context,
    cluster: &str,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    let name = format!("confab-{cluster}-sessions");
    js.create_or_update_key_value(kv::Config {
        bucket: name,
        history: 1,
        max_age: MAX_AGE,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(unavailable)
}

impl NatsSessions {
    /// This node (`node`: unique per process, a NATS token) on `kv`; starts
    /// the watch and the heartbeat, which stop when `self` is dropped.
    pub fn start(kv: kv::Store, node: String) -> Arc<Self> {
        let this = Arc::new(Self {
            kv,
            node,
            mine: Counts::default(),
            view: Mutex::default(),
        });
        tokio::spawn(watch(Arc::downgrade(&this)));
        tokio::spawn(heartbeat(Arc::downgrade(&this)));
        this
    }

    async fn write(&self, user: UserId) {
        let key = session_key(user, &self.node);
        if let Err(e) = self.kv.put(key, Bytes::from_static(b"1")).await {
            tracing::warn!(error = %e, "cannot record a session in the session cache");
        }
    }

    /// Applies one watched entry: to the view, or — for one of this node's
    /// own keys removed while its session is open — by writing it again.
    async fn saw(&self, entry: &kv::Entry) {
        let put = entry.operation == kv::Operation::Put;
        match parse(&entry.key) {
            Some(Key::Session { user, node }) if node == self.node => {
                if !put && self.mine.contains(user) {
                    self.write(user).await;
                }
            }
            Some(Key::Heartbeat { node }) if node == self.node => {}
            _ => self
                .view
                .lock()
                .expect("session view")
                .apply(&entry.key, put, Instant::now()),
        }
    }

    /// Writes every key this node holds (after the watch was lost: NATS may
    /// have come back without them; and before they reach [`MAX_AGE`]).
    async fn rewrite_mine(&self) {
        for user in self.mine.users() {
            self.write(user).await;
        }
    }

    /// Purges the keys of nodes that fell silent.
    async fn purge_dead(&self) {
        let dead = self.view.lock().expect("session view").dead(Instant::now());
        for (node, users) in dead {
            tracing::info!(%node, sessions = users.len(), "node silent: purging its sessions");
            for user in users {
                let _ = self.kv.purge(session_key(user, &node)).await;
            }
            let _ = self.kv.purge(format!("{NODE_PREFIX}{node}")).await;
            self.view.lock().expect("session view").forget(&node);
        }
    }
}

/// Keeps the view current; rewatches after an error (NATS restarted).
async fn watch(this: Weak<NatsSessions>) {
    let mut first = true;
    let mut waits = backoff::reconnect();
    loop {
        let Some(me) = this.upgrade() else { return };
        let mut entries = match me.kv.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the session cache; retrying");
                drop(me);
                tokio::time::sleep(waits.next().unwrap_or_default()).await;
                continue;
            }
        };
        if !first {
            me.rewrite_mine().await;
        }
        first = false;
        waits = backoff::reconnect();
        drop(me);
        while let Some(entry) = entries.next().await {
            let Some(me) = this.upgrade() else { return };
            match entry {
                Ok(entry) => me.saw(&entry).await,
                Err(e) => {
                    tracing::warn!(error = %e, "session cache watch failed; rewatching");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes this node's heartbeat and purges silent nodes, every [`HEARTBEAT`].
async fn heartbeat(this: Weak<NatsSessions>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut rewritten = Instant::now();
    loop {
        tick.tick().await;
        let Some(me) = this.upgrade() else { return };
        if rewritten.elapsed() >= MAX_AGE / 3 {
            me.rewrite_mine().await;
            rewritten = Instant::now();
        }
        let key = format!("{NODE_PREFIX}{}", me.node);
        if let Err(e) = me.kv.put(key, Bytes::from_static(b"1")).await {
            tracing::warn!(error = %e, "cannot write this node's session-cache heartbeat");
        }
        me.purge_dead().await;
    }
}

#[async_trait]
impl Sessions for NatsSessions {
    async fn opened(&self, user: UserId) {
        if self.mine.add(user) {
            self.write(user).await;
        }
    }

    async fn closed(&self, user: UserId) {
        if self.mine.remove(user)
            && let Err(e) = self.kv.delete(session_key(user, &self.node)).await
        {
            tracing::warn!(error = %e, "cannot clear a session from the session cache");
        }
    }

    fn online(&self, user: UserId) -> bool {
        self.mine.contains(user)
            || self
                .view
                .lock()
                .expect("session view")
                .online(user, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId::from_u128(n)
    }

    #[test]
    fn keys_name_heartbeats_and_sessions() {
        assert_eq!(parse("node.gw-a"), Some(Key::Heartbeat { node: "gw-a" }));
        let key = session_key(user(7), "gw-a");
        assert_eq!(
            parse(&key),
            Some(Key::Session {
                user: user(7),
                node: "gw-a"
            })
        );
        assert_eq!(parse("junk"), None);
        assert_eq!(parse("not-a-uuid.gw-a"), None);
    }

    #[test]
    fn a_session_counts_while_its_node_beats() {
        let t0 = Instant::now();
        let mut view = View::default();
        view.apply("node.gw-a", true, t0);
        view.apply(&session_key(user(1), "gw-a"), true, t0);
        assert!(view.online(user(1), t0 + NODE_TTL / 2));
        assert!(!view.online(user(2), t0));
        // A heartbeat keeps it alive past the first TTL.
        view.apply("node.gw-a", true, t0 + NODE_TTL / 2);
        assert!(view.online(user(1), t0 + NODE_TTL));
        assert!(view.dead(t0 + NODE_TTL).is_empty());
        // Silence kills the node and, with it, its sessions.
        let later = t0 + NODE_TTL / 2 + NODE_TTL;
        assert!(!view.online(user(1), later));
        assert_eq!(view.dead(later), vec![("gw-a".to_string(), vec![user(1)])]);
        view.forget("gw-a");
        assert!(view.dead(later).is_empty() && view.users.is_empty());
    }

    #[test]
    fn closing_one_of_two_nodes_keeps_the_user_online() {
        let t0 = Instant::now();
        let mut view = View::default();
        for node in ["gw-a", "gw-b"] {
            view.apply(&format!("node.{node}"), true, t0);
            view.apply(&session_key(user(1), node), true, t0);
        }
        view.apply(&session_key(user(1), "gw-a"), false, t0);
        assert!(view.online(user(1), t0));
        view.apply("node.gw-b", false, t0);
        assert!(
            !view.online(user(1), t0),
            "a purged heartbeat drops the node"
        );
    }

    #[test]
    fn a_session_key_without_a_heartbeat_yet_counts_for_a_ttl() {
        let t0 = Instant::now();
        let mut view = View::default();
        view.apply(&session_key(user(1), "gw-new"), true, t0);
        assert!(view.online(user(1), t0));
        assert!(!view.online(user(1), t0 + NODE_TTL));
    }
}
