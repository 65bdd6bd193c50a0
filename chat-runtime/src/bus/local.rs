//! In-process `Bus` for standalone: a map from user to the senders of that
//! user's live subscriptions.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Bus, BusError, Envelope, Subscription};
use crate::mailbox::{self, Sender};
use crate::model::UserId;
use async_trait::async_trait;

/// The in-process bus.
#[derive(Default)]
pub struct LocalBus {
    subscribers: Mutex<HashMap<UserId, Vec<Sender<Envelope>>>>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn deliver(map: &mut HashMap<UserId, Vec<Sender<Envelope>>>, user: UserId, e: &Envelope) {
        let Some(subs) = map.get_mut(&user) else {
            return;
        };
        // A full queue cuts the subscriber off: dropping its sender ends the
        // stream, and the session closes with a reconnect code.
        subs.retain(|tx| tx.try_send(e.clone()).is_ok());
        if subs.is_empty() {
            map.remove(&user);
        }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, user: UserId, event: Envelope) -> Result<(), BusError> {
        let mut map = self.subscribers.lock().expect("bus lock");
        Self::deliver(&mut map, user, &event);
        Ok(())
    }

    async fn publish_many(&self, users: &[UserId], event: Envelope) -> Result<(), BusError> {
        let mut map = self.subscribers.lock().expect("bus lock");
        for u in users {
            Self::deliver(&mut map, *u, &event);
        }
        Ok(())
    }

    async fn subscribe(&self, user: UserId, capacity: usize) -> Result<Subscription, BusError> {
        let (tx, events) = mailbox::channel(capacity);
        let mut map = self.subscribers.lock().expect("bus lock");
        let subs = map.entry(user).or_default();
        subs.retain(|s| !s.is_closed());
        subs.push(tx);
        Ok(Subscription { events })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        crate::bus::conformance::run(&super::LocalBus::new()).await;
    }
}
