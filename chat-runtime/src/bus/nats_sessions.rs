//! The live-session directory in a JetStream key-value bucket, for clusters.
//!
//! Bucket `confab-<cluster>-sessions`, entries expiring after [`TTL`], with
//! the ChatCluster's `cache.replicas` copies. Each gateway writes one key per
//! user it holds sessions of, `<user>.<node>`, when the first session opens;
//! rewrites every key it holds each [`TTL`]/3 (so a dead gateway's keys
//! expire on their own); deletes it when the last one closes. Every node
//! keeps a view of the whole bucket through a watch, so `online` is a map
//! lookup. Expiries produce no watch events: the view times entries out
//! itself, [`TTL`] after it last saw them written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::BusError;
use super::sessions::{Counts, Sessions};
use crate::model::UserId;

/// How long an entry lives without being rewritten.
pub const TTL: Duration = Duration::from_secs(30);

/// Other nodes' entries: user → node → when it was last seen written.
type View = HashMap<UserId, HashMap<String, Instant>>;

/// This node's sessions, published to and read from the bucket.
pub struct NatsSessions {
    kv: kv::Store,
    node: String,
    mine: Counts,
    view: Arc<Mutex<View>>,
}

impl std::fmt::Debug for NatsSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSessions")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
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
        max_age: TTL,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(unavailable)
}

impl NatsSessions {
    /// This node (`node`: unique per process, a NATS token) on `kv`; starts
    /// the watch and the refresher, which stop when `self` is dropped.
    pub fn start(kv: kv::Store, node: String) -> Arc<Self> {
        let this = Arc::new(Self {
            kv,
            node,
            mine: Counts::default(),
            view: Arc::default(),
        });
        tokio::spawn(watch(Arc::downgrade(&this)));
        tokio::spawn(refresh(Arc::downgrade(&this)));
        this
    }

    fn key(&self, user: UserId) -> String {
        format!("{}.{}", user.simple(), self.node)
    }

    async fn write(&self, user: UserId) {
        if let Err(e) = self.kv.put(self.key(user), Bytes::from_static(b"1")).await {
            tracing::warn!(error = %e, "cannot record a session in the session cache");
        }
    }

    /// Applies one watched entry to the view.
    fn saw(&self, entry: &kv::Entry) {
        let Some((user, node)) = entry.key.split_once('.') else {
            return;
        };
        let (Ok(user), false) = (user.parse::<UserId>(), node == self.node) else {
            return;
        };
        let mut view = self.view.lock().expect("session view");
        match entry.operation {
            kv::Operation::Put => {
                view.entry(user)
                    .or_default()
                    .insert(node.to_owned(), Instant::now());
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                if let Some(nodes) = view.get_mut(&user) {
                    nodes.remove(node);
                    if nodes.is_empty() {
                        view.remove(&user);
                    }
                }
            }
        }
    }

    /// Drops entries that expired in the bucket.
    fn forget_expired(&self) {
        let mut view = self.view.lock().expect("session view");
        view.retain(|_, nodes| {
            nodes.retain(|_, seen| seen.elapsed() < TTL);
            !nodes.is_empty()
        });
    }
}

/// Keeps the view current; rewatches after an error (NATS restarted).
async fn watch(this: std::sync::Weak<NatsSessions>) {
    loop {
        let Some(me) = this.upgrade() else { return };
        let mut entries = match me.kv.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the session cache; retrying");
                drop(me);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        drop(me);
        while let Some(entry) = entries.next().await {
            let Some(me) = this.upgrade() else { return };
            match entry {
                Ok(entry) => me.saw(&entry),
                Err(e) => {
                    tracing::warn!(error = %e, "session cache watch failed; rewatching");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rewrites this node's keys before they expire.
async fn refresh(this: std::sync::Weak<NatsSessions>) {
    let mut tick = tokio::time::interval(TTL / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(me) = this.upgrade() else { return };
        for user in me.mine.users() {
            me.write(user).await;
            // Its last session may have closed (and deleted the key) meanwhile.
            if !me.mine.contains(user) {
                let _ = me.kv.delete(me.key(user)).await;
            }
        }
        me.forget_expired();
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
            && let Err(e) = self.kv.delete(self.key(user)).await
        {
            tracing::warn!(error = %e, "cannot clear a session from the session cache");
        }
    }

    fn online(&self, user: UserId) -> bool {
        if self.mine.contains(user) {
            return true;
        }
        let view = self.view.lock().expect("session view");
        view.get(&user)
            .is_some_and(|nodes| nodes.values().any(|seen| seen.elapsed() < TTL))
    }
}
