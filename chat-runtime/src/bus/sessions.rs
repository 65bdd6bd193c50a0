//! Who has a live session anywhere: the presence half of the bus's TTL
//! cache (DESIGN §2). Gateways record the sessions they hold; presence and
//! the push decision ("only members with no live session") read it.
//!
//! Best effort by design: recording never fails the session (presence must
//! not block the message path), and a reader's view may lag a change by the
//! cache's propagation delay. In clusters a gateway that dies stops its
//! heartbeat and its entries are dropped ([`super::nats_sessions`]).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::UserId;

/// The live-session directory.
#[async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// A session of `user` opened on this node.
    async fn opened(&self, user: UserId);
    /// A session of `user` on this node closed.
    async fn closed(&self, user: UserId);
    /// Whether `user` has a live session on any node, as far as this node
    /// knows now.
    fn online(&self, user: UserId) -> bool;
}

/// Session counts per user on this node.
#[derive(Debug, Default)]
pub struct Counts(Mutex<HashMap<UserId, usize>>);

impl Counts {
    /// Counts one more session; true when it is the user's first here.
    pub fn add(&self, user: UserId) -> bool {
        let mut m = self.0.lock().expect("session counts");
        let n = m.entry(user).or_default();
        *n += 1;
        *n == 1
    }

    /// Counts one session less; true when it was the user's last here.
    pub fn remove(&self, user: UserId) -> bool {
        let mut m = self.0.lock().expect("session counts");
        match m.get_mut(&user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                m.remove(&user);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, user: UserId) -> bool {
        self.0.lock().expect("session counts").contains_key(&user)
    }

    /// The users with at least one session here.
    pub fn users(&self) -> Vec<UserId> {
        self.0
            .lock()
            .expect("session counts")
            .keys()
            .copied()
            .collect()
    }
}

/// Standalone: this process is the only node.
#[derive(Debug, Default)]
pub struct LocalSessions(Counts);

#[async_trait]
impl Sessions for LocalSessions {
    async fn opened(&self, user: UserId) {
        self.0.add(user);
    }

    async fn closed(&self, user: UserId) {
        self.0.remove(user);
    }

    fn online(&self, user: UserId) -> bool {
        self.0.contains(user)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::sessions(&super::LocalSessions::default()).await;
    }
}
