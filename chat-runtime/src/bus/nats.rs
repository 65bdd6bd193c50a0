//! `Bus` on core NATS, for clusters: one subject per user.
//!
//! Owns the mapping of [`Envelope`]s to NATS messages and the per-subscription
//! forwarding task. It does not own the connection: it is handed a connected
//! `async_nats::Client` (options, credentials and reconnects are the caller's).
//!
//! # Wire format
//! Subject `<prefix>.<user uuid>` (default prefix [`DEFAULT_PREFIX`]); the
//! payload is the encoded frame as it is; headers [`CHAT_HEADER`] (the chat's
//! uuid, absent for events of no chat), [`SEQ_HEADER`] (decimal) and
//! [`ORIGIN_HEADER`] (the sending session's tag, decimal; absent when none).
//!
//! # Delivery
//! Core NATS is at-most-once, like the in-process bus: the store is the
//! truth, and a session that sees a gap in seqs reads it back. A subscription
//! is a NATS subscription plus a task that moves its messages into a bounded
//! queue; when that queue is full the task stops, which unsubscribes and ends
//! the stream — the same slow-consumer policy as [`super::local`].
//! `subscribe` returns once the SUB is written to the socket, so a publish
//! made afterwards through the same client is seen; publishers on other
//! connections may race it, which a session's resume from the store covers.

use std::str::FromStr;

use async_nats::{Client, HeaderMap, Message, Subscriber};
use async_trait::async_trait;
use futures::StreamExt;

use super::{Bus, BusError, Envelope, Subscription, unavailable};
use crate::mailbox;
use crate::model::{ChatId, UserId};

/// Subject prefix of user subjects unless another is given.
pub const DEFAULT_PREFIX: &str = "confab.user";
/// Header carrying the event's chat id.
pub const CHAT_HEADER: &str = "Confab-Chat";
/// Header carrying the event's seq.
pub const SEQ_HEADER: &str = "Confab-Seq";
/// Header carrying the tag of the session a message was sent from.
pub const ORIGIN_HEADER: &str = "Confab-Origin";

/// The NATS bus. Cheap to clone (the client is a handle).
#[derive(Clone, Debug)]
pub struct NatsBus {
    client: Client,
    /// Lets several clusters share one NATS without seeing each other's events.
    prefix: String,
}

impl NatsBus {
    /// A bus on `client` with the default subject prefix.
    pub fn new(client: Client) -> Self {
        Self::with_prefix(client, DEFAULT_PREFIX)
    }

    /// A bus on `client` whose user subjects start with `prefix` (dot-separated
    /// NATS tokens, no wildcards).
    pub fn with_prefix(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn subject(&self, user: UserId) -> String {
        format!("{}.{}", self.prefix, user.as_hyphenated())
    }

    /// Queues `event` for `user` on the client's connection, without flushing.
    async fn enqueue(
        &self,
        user: UserId,
        headers: HeaderMap,
        event: &Envelope,
    ) -> Result<(), BusError> {
        self.client
            .publish_with_headers(self.subject(user), headers, event.frame.clone())
            .await
            .map_err(unavailable)
    }
}

fn headers(event: &Envelope) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(chat) = event.chat {
        h.insert(CHAT_HEADER, chat.as_hyphenated().to_string());
    }
    h.insert(SEQ_HEADER, event.seq.to_string());
    if let Some(origin) = event.origin {
        h.insert(ORIGIN_HEADER, origin.to_string());
    }
    h
}

/// The envelope a NATS message carries; `None` when it is not one of ours.
fn decode(msg: Message) -> Option<Envelope> {
    let h = msg.headers.as_ref()?;
    let seq = h.get(SEQ_HEADER)?.as_str().parse().ok()?;
    let chat = match h.get(CHAT_HEADER) {
        Some(v) => Some(ChatId::from_str(v.as_str()).ok()?),
        None => None,
    };
    let origin = match h.get(ORIGIN_HEADER) {
        Some(v) => Some(v.as_str().parse().ok()?),
        None => None,
    };
    Some(Envelope {
        chat,
        seq,
        frame: msg.payload,
        origin,
    })
}

/// Moves one subscription's messages into its bounded queue until the queue
/// overflows, its receiver is dropped or the client closes. Returning drops
/// `sub` (which unsubscribes) and `tx` (which ends the stream).
async fn forward(mut sub: Subscriber, tx: mailbox::Sender<Envelope>, subject: String) {
    loop {
        let msg = tokio::select! {
            biased;
            () = tx.closed() => return,
            msg = sub.next() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let Some(event) = decode(msg) else {
            tracing::warn!(%subject, "bus: ignoring a message without confab headers");
            continue;
        };
        if tx.try_send(event).is_err() {
            tracing::debug!(%subject, "bus: subscriber queue full, cutting it off");
            return;
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, user: UserId, event: Envelope) -> Result<(), BusError> {
        self.enqueue(user, headers(&event), &event).await?;
        self.client.flush().await.map_err(unavailable)
    }

    /// One publish per user into the client's write buffer, then one flush:
    /// no per-user wait on the socket or the server.
    async fn publish_many(&self, users: &[UserId], event: Envelope) -> Result<(), BusError> {
        let h = headers(&event);
        for &user in users {
            self.enqueue(user, h.clone(), &event).await?;
        }
        self.client.flush().await.map_err(unavailable)
    }

    async fn subscribe(&self, user: UserId, capacity: usize) -> Result<Subscription, BusError> {
        let subject = self.subject(user);
        let sub = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(unavailable)?;
        // The SUB is on the wire before the caller publishes anything.
        self.client.flush().await.map_err(unavailable)?;
        let (tx, events) = mailbox::channel(capacity);
        tokio::spawn(forward(sub, tx, subject));
        Ok(Subscription { events })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn headers_carry_chat_and_seq() {
        let chat = Uuid::new_v4();
        let e = Envelope {
            chat: Some(chat),
            seq: 42,
            frame: Bytes::from_static(b"{}"),
            origin: Some(9),
        };
        let h = headers(&e);
        assert_eq!(h.get(SEQ_HEADER).unwrap().as_str(), "42");
        assert_eq!(h.get(CHAT_HEADER).unwrap().as_str(), chat.to_string());
        assert_eq!(h.get(ORIGIN_HEADER).unwrap().as_str(), "9");
        let none = headers(&Envelope {
            chat: None,
            origin: None,
            ..e
        });
        assert!(none.get(CHAT_HEADER).is_none());
        assert!(none.get(ORIGIN_HEADER).is_none());
    }

    fn message(headers: Option<HeaderMap>) -> Message {
        Message {
            subject: "confab.user.x".into(),
            reply: None,
            payload: Bytes::from_static(b"frame"),
            headers,
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn decodes_what_it_encodes_and_ignores_strangers() {
        for (chat, origin) in [(Some(Uuid::new_v4()), Some(u64::MAX)), (None, None)] {
            let e = Envelope {
                chat,
                seq: 7,
                frame: Bytes::from_static(b"frame"),
                origin,
            };
            assert_eq!(decode(message(Some(headers(&e)))), Some(e));
        }
        assert_eq!(decode(message(None)), None);
        let mut bad = HeaderMap::new();
        bad.insert(SEQ_HEADER, "x");
        assert_eq!(decode(message(Some(bad))), None);
    }
}
