//! Gateways reach shards over NATS request/reply (DESIGN §2, the
//! `ShardClient` seam in clusters).
//!
//! Subject `<prefix>.<ordinal>`; the request is a [`Command`], the reply an
//! [`Answer`], each in the wire version the two processes agree on
//! ([`wire`]: JSON or MessagePack). A shard answers a command for a chat it does not own
//! with [`Answer::Moved`] and its committed ring, so a gateway with an older
//! ring catches up from the answer itself; "not now" (a ring change in
//! flight, no lease yet) is [`Answer::Retry`]. The gateway retries both —
//! and timeouts and "no responders" — with backoff until a deadline: every
//! command is idempotent (sends carry a `client_msg_id`), so a retry never
//! doubles a message.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use confab_api::ring::{Ring, ShardId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::wire::{self, VERSION_HEADER, Version};
use super::{Command, Reply, SendItem, Sent, Shard, ShardClient, batch, client};
use crate::backoff;
use crate::bus::Origin;
use crate::error::ApiError;
use crate::protocol::ErrorCode;

/// Subject prefix of shard inboxes unless another is given.
pub const DEFAULT_PREFIX: &str = "confab.shard";
/// How long one request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command keeps being retried before the caller is told
/// `unavailable` (and retries itself, idempotently).
const DEADLINE: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A shard's answer to a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", content = "value", rename_all = "snake_case")]
pub enum Answer {
    /// The command ran (or was refused on its merits).
    Done(Result<Reply, ApiError>),
    /// This shard does not own the chat in `ring` (its committed ring).
    Moved { ring: Ring },
    /// Try again shortly (the chat is moving, or the shard has no lease).
    Retry { reason: String },
}

/// The subject of shard `ordinal`'s inbox.
pub fn subject(prefix: &str, shard: ShardId) -> String {
    format!("{prefix}.{}", shard.0)
}

/// Gateway side: routes each command to its chat's owner by the newest ring
/// it knows.
pub struct NatsShardClient {
    client: async_nats::Client,
    prefix: String,
    ring: RwLock<Ring>,
    /// The highest wire version this gateway reads.
    wire: Version,
    /// The highest wire version each shard (by ordinal) said it reads.
    learned: Vec<AtomicU8>,
}

impl NatsShardClient {
    pub fn new(client: async_nats::Client, prefix: impl Into<String>, ring: Ring) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            ring: RwLock::new(ring),
            wire: wire::LATEST,
            learned: (0..=u8::MAX).map(|_| AtomicU8::new(1)).collect(),
        }
    }

    /// Speaks at most wire version `max` (`--wire-max`).
    pub fn with_wire_max(mut self, max: Version) -> Self {
        self.wire = max;
        self
    }

    /// The version to write to `shard` in: the highest both read, as far as
    /// this gateway knows.
    fn version_for(&self, shard: ShardId) -> Version {
        let learned = self
            .learned
            .get(shard.0 as usize)
            .map_or(1, |v| v.load(Ordering::Relaxed));
        Version::new(learned)
            .unwrap_or(Version::JSON)
            .min(self.wire)
    }

    fn learn(&self, shard: ShardId, max: Version) {
        if let Some(v) = self.learned.get(shard.0 as usize) {
            v.store(max.number(), Ordering::Relaxed);
        }
    }

    /// The ring this gateway routes by.
    pub fn ring(&self) -> Ring {
        self.ring.read().expect("ring lock").clone()
    }

    /// Adopts `ring` if it is newer; returns whether it was.
    fn adopt(&self, ring: Ring) -> bool {
        let mut current = self.ring.write().expect("ring lock");
        if ring.epoch() > current.epoch() {
            tracing::info!(epoch = ring.epoch(), "gateway: routing by a newer ring");
            *current = ring;
            true
        } else {
            false
        }
    }

    /// The shard after `shard` in the ring (wrapping), if there is another.
    fn next_after(&self, shard: ShardId) -> Option<ShardId> {
        let ring = self.ring.read().expect("ring lock");
        let shards = ring.shards();
        let i = shards.iter().position(|s| *s == shard).map_or(0, |i| i + 1);
        let next = shards[i % shards.len()];
        (next != shard).then_some(next)
    }

    fn owner(&self, command: &Command) -> ShardId {
        let key = command.chat().unwrap_or_else(|| command.user());
        self.ring.read().expect("ring lock").owner(key)
    }

    /// One command to one owner, retried until answered or out of time.
    async fn call_one(&self, command: &Command) -> Result<Reply, ApiError> {
        let started = Instant::now();
        let mut waits = backoff::waits(FIRST_BACKOFF, MAX_BACKOFF);
        // After a shard does not answer (dead, or removed from the ring we
        // route by), ask the next one: any live shard answers `Moved` with
        // its committed ring, which is how a gateway catches up with a ring
        // that no longer has the shard it was calling.
        let mut probe: Option<ShardId> = None;
        loop {
            let owner = probe.take().unwrap_or_else(|| self.owner(command));
            let version = self.version_for(owner);
            let request = async_nats::Request::new()
                .payload(version.encode(command))
                .headers(wire::headers(version, self.wire))
                .timeout(Some(REQUEST_TIMEOUT));
            let why = match self
                .client
                .send_request(subject(&self.prefix, owner), request)
                .await
            {
                Ok(msg) => match self.read_answer(owner, &msg) {
                    Ok(Answer::Done(result)) => return result,
                    Ok(Answer::Moved { ring }) => {
                        if self.adopt(ring) {
                            continue;
                        }
                        format!("{owner} does not own the chat at our ring's epoch")
                    }
                    Ok(Answer::Retry { reason }) => reason,
                    Err(e) => format!("answer from {owner}: {e}"),
                },
                Err(e) => {
                    probe = self.next_after(owner);
                    format!("{owner}: {e}")
                }
            };
            if started.elapsed() > DEADLINE {
                tracing::warn!(%owner, reason = %why, "gateway: shard unavailable");
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the chat's shard is not answering; retry",
                ));
            }
            tracing::debug!(%owner, reason = %why, "gateway: retrying a command");
            tokio::time::sleep(waits.next().unwrap_or(MAX_BACKOFF)).await;
        }
    }

    /// An answer of `shard`, read in the version it names; learns the
    /// highest version the shard reads.
    fn read_answer(
        &self,
        shard: ShardId,
        msg: &async_nats::Message,
    ) -> Result<Answer, wire::WireError> {
        let headers = msg.headers.as_ref();
        self.learn(shard, Version::peer_max(headers));
        Version::from_headers(headers, VERSION_HEADER)?.decode(&msg.payload)
    }

    /// A batch of sends may span chats of several shards: one batch per
    /// owner, answered in the original order.
    async fn send(&self, user: uuid::Uuid, items: Vec<SendItem>, origin: Option<Origin>) -> Reply {
        let ring = self.ring();
        let n = items.len();
        let calls = batch::split(items, |item| ring.owner(item.chat))
            .into_iter()
            .map(|(_, list)| async move {
                let (indexes, items): (Vec<usize>, Vec<SendItem>) = list.into_iter().unzip();
                let answers = self.send_one_shard(user, items, origin).await;
                indexes.into_iter().zip(answers).collect::<Vec<_>>()
            });
        let answers = futures::future::join_all(calls).await;
        Reply::Sent(batch::join(n, answers.into_iter().flatten()))
    }

    /// Sends whose chats one shard owns; an answer per item.
    async fn send_one_shard(
        &self,
        user: uuid::Uuid,
        items: Vec<SendItem>,
        origin: Option<Origin>,
    ) -> Vec<Result<Sent, ApiError>> {
        let n = items.len();
        let command = Command::Send {
            user,
            items,
            origin,
        };
        client::per_item(n, self.call_one(&command).await)
    }
}

#[async_trait]
impl ShardClient for NatsShardClient {
    async fn call(&self, command: Command) -> Result<Reply, ApiError> {
        match command {
            Command::Send {
                user,
                items,
                origin,
            } => Ok(self.send(user, items, origin).await),
            other => self.call_one(&other).await,
        }
    }
}

/// Decides whether this shard takes a command now: `Ok` to run it, or the
/// answer to give instead.
pub trait Gate: Send + Sync + 'static {
    fn admit(&self, command: &Command) -> Result<(), Answer>;
}

/// Shard side: answers the commands sent to shard `me`'s inbox until the
/// subscription ends, reading and writing wire versions up to `wire`. Each
/// command runs in its own task; the sequencer orders commands per chat.
pub async fn serve(
    client: async_nats::Client,
    prefix: &str,
    me: ShardId,
    wire: Version,
    shard: Arc<Shard>,
    gate: Arc<dyn Gate>,
) -> Result<(), async_nats::SubscribeError> {
    let mut inbox = client
        .queue_subscribe(subject(prefix, me), format!("shard-{}", me.0))
        .await?;
    while let Some(msg) = inbox.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let (client, shard, gate) = (client.clone(), shard.clone(), gate.clone());
        tokio::spawn(async move {
            let headers = msg.headers.as_ref();
            let (answer, version) = match Version::from_headers(headers, VERSION_HEADER) {
                // Asked in a version this build does not read: say which it
                // does, in the one every build reads.
                Err(e) => (
                    Answer::Retry {
                        reason: e.to_string(),
                    },
                    Version::JSON,
                ),
                Ok(asked) => {
                    shard.metrics().wire_command(asked.number());
                    let answer = match asked.decode::<Command>(&msg.payload) {
                        Err(e) => Answer::Done(Err(ApiError::invalid(format!("bad command: {e}")))),
                        Ok(command) => match gate.admit(&command) {
                            Ok(()) => Answer::Done(shard.handle(command).await),
                            Err(answer) => answer,
                        },
                    };
                    (answer, Version::peer_max(headers).min(wire))
                }
            };
            let reply = client.publish_with_headers(
                reply_to,
                wire::headers(version, wire),
                version.encode(&answer),
            );
            if let Err(e) = reply.await {
                tracing::warn!(error = %e, "shard: could not answer a command");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Content;

    #[test]
    fn commands_and_answers_round_trip_in_every_wire_version() {
        let user = uuid::Uuid::new_v4();
        let command = Command::Send {
            user,
            items: vec![SendItem {
                chat: uuid::Uuid::new_v4(),
                client_msg_id: "c-1".into(),
                content: Content::Text { body: "hi".into() },
            }],
            origin: Some(7),
        };
        let versions = [Version::JSON, wire::LATEST];
        for v in versions {
            assert_eq!(v.decode::<Command>(&v.encode(&command)).unwrap(), command);
        }
        let answers = [
            Answer::Done(Ok(Reply::Sent(vec![
                Ok(Sent {
                    seq: 4,
                    sent_at: 9,
                    duplicate: false,
                }),
                Err(ApiError::not_member()),
            ]))),
            Answer::Done(Ok(Reply::Chat(user))),
            Answer::Moved {
                ring: Ring::new(2, &[ShardId(0), ShardId(1)], 8).unwrap(),
            },
            Answer::Retry {
                reason: "moving".into(),
            },
        ];
        for (a, v) in answers
            .into_iter()
            .flat_map(|a| versions.map(|v| (a.clone(), v)))
        {
            assert_eq!(v.decode::<Answer>(&v.encode(&a)).unwrap(), a, "{v:?}");
        }
    }
}
