//! The shard: the shell around each chat's core ([`ChatState`]). It loads a
//! chat from the store into its slot on first use, asks the core what a
//! command does, and performs the answer in the order the delivery
//! invariants need: store writes first (a message is acknowledged and
//! published only once durable, and the media it carries is recorded as
//! shared before it is published), then the bus, then the push queue. It reads
//! the clock once per command and passes the time in. Sends are in `send`,
//! chat creation and membership in `groups`.

mod groups;
mod send;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};
use uuid::Uuid;

use super::cache::{MAX_CACHED_CHATS, Slots};
use super::chat::{ChatState, Membership, Publish};
use super::pushes::Pushes;
use super::{Command, Reply};
use crate::audit;
use crate::bus::queue::PushQueue;
use crate::bus::sessions::Sessions;
use crate::bus::{Bus, BusError, Envelope, Origin};
use crate::error::ApiError;
use crate::media;
use crate::metrics::Metrics;
use crate::model::{ChatId, Message, Seq, UserId};
use crate::protocol::{self, ErrorCode, ServerFrame};
use crate::store::{MemberChange, Store, StoreError};

/// A chat's loaded state, locked for one command.
type Locked = OwnedMappedMutexGuard<Option<ChatState>, ChatState>;

/// Makes the id of a new chat. In a cluster a shard mints ids the ring gives
/// to itself, so the chat it creates is one it sequences.
pub type Minter = Arc<dyn Fn() -> ChatId + Send + Sync>;

/// Whether this shard may write `chat` now (in a cluster: its ownership
/// core's `may_sequence`); the reason when not.
pub type Claim = Arc<dyn Fn(ChatId) -> Result<(), String> + Send + Sync>;

/// The sequencer for the chats it owns.
pub struct Shard {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    chats: Slots<ChatState>,
    mint: Minter,
    push: Option<Pushes>,
    claim: Option<Claim>,
}

/// The bus event for `frame` in `chat`; a message event carries its seq
/// (sessions skip duplicates and find gaps by it).
fn envelope(chat: ChatId, frame: &ServerFrame) -> Envelope {
    let seq = match frame {
        ServerFrame::Message { message } => message.seq,
        _ => 0,
    };
    Envelope {
        chat: Some(chat),
        seq,
        frame: Bytes::from(protocol::encode(frame)),
        origin: None,
    }
}

impl Shard {
    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        Self::with_minter(store, bus, metrics, Arc::new(Uuid::now_v7))
    }

    /// A shard whose new chats get their ids from `mint`.
    pub fn with_minter(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        mint: Minter,
    ) -> Self {
        Self {
            store,
            bus,
            metrics,
            chats: Slots::new(MAX_CACHED_CHATS),
            mint,
            push: None,
            claim: None,
        }
    }

    /// `self`, asking `claim` right before each write whether it still may
    /// write the chat: a command admitted just before a ring change stopped
    /// the chat, or before the lease lapsed, writes nothing.
    pub fn with_claim(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// `self`, caching at most `capacity` chats.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.chats = Slots::new(capacity);
        self
    }

    /// `self`, queueing a push job on `queue` for each recipient of a
    /// message who has no live session in `sessions`.
    pub fn with_push(mut self, queue: Arc<dyn PushQueue>, sessions: Arc<dyn Sessions>) -> Self {
        self.push = Some(Pushes::new(queue, sessions, self.metrics.clone()));
        self
    }

    /// Chats whose state this shard holds in memory.
    pub fn cached(&self) -> Vec<ChatId> {
        self.chats.ids()
    }

    /// Waits for the commands running on `chat` to finish, then drops its
    /// state: the next command reloads it from the store. Used when a ring
    /// change moves the chat (away, or back after another shard had it).
    pub async fn release(&self, chat: ChatId) {
        self.chats.release(chat).await;
    }

    /// Applies one command.
    pub async fn handle(&self, command: Command) -> Result<Reply, ApiError> {
        match command {
            Command::Send {
                user,
                items,
                origin,
            } => Ok(Reply::Sent(self.send_many(user, items, origin).await)),
            Command::Watermark {
                user,
                chat,
                delivered,
                read,
            } => self.watermark(user, chat, delivered, read).await,
            Command::Typing { user, chat } => self.typing(user, chat).await,
            Command::CreateGroup {
                user,
                title,
                members,
            } => self.create_group(user, title, members).await,
            Command::OpenDirect { user, peer } => self.open_direct(user, peer).await,
            Command::Join { user, chat, invite } => self.join(user, chat, &invite).await,
            Command::Invite { user, chat, reset } => self.invite(user, chat, reset).await,
            Command::Leave { user, chat } => {
                self.change_membership(user, chat, user, Membership::Leave)
                    .await?;
                Ok(Reply::Done)
            }
            Command::AddMember { user, chat, target } => {
                self.change_membership(user, chat, target, Membership::Add)
                    .await
            }
            Command::RemoveMember { user, chat, target } => {
                self.change_membership(user, chat, target, Membership::Remove)
                    .await?;
                let event = audit::Event::MemberRemoved {
                    chat,
                    by: user,
                    user: target,
                };
                audit::record(&self.metrics, event);
                Ok(Reply::Done)
            }
        }
    }

    /// Locks a chat, loading it from the store on first use.
    async fn lock(&self, chat: ChatId) -> Result<Locked, ApiError> {
        let mut guard = self.chats.slot(chat).lock_owned().await;
        if guard.is_none() {
            let Some(meta) = self.store.chat(chat).await? else {
                // Nothing is kept for a chat that does not exist.
                drop(guard);
                self.chats.forget_if_idle(chat);
                return Err(ApiError::not_found("chat"));
            };
            let head = self.store.head(chat).await?;
            let members = self.store.members(chat).await?;
            *guard = Some(ChatState::new(meta, head, members));
        }
        Ok(OwnedMutexGuard::map(guard, |st| {
            st.as_mut().expect("loaded")
        }))
    }

    /// Stores `msgs` (the chat's next seqs, in order) with `change` in one
    /// write, records the media they carry as shared, then fans each out in
    /// seq order (tagged with the session they came from, if any) and queues
    /// their pushes. Returns the media whose share could not be recorded.
    async fn append(
        &self,
        st: &mut ChatState,
        msgs: Vec<Message>,
        change: Option<MemberChange>,
        origin: Option<Origin>,
    ) -> Result<Vec<String>, ApiError> {
        if let Some(claim) = &self.claim
            && let Err(why) = claim(st.id())
        {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("this shard may not write the chat now ({why}); retry the request"),
            ));
        }
        match self.store.append_all(&msgs, change.clone()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Someone else wrote these seqs: our view is stale. Reload.
                st.moved(self.store.head(st.id()).await?);
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "chat moved; retry the request",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let unshared = self.record_shares(&msgs).await;
        let fanout = st.stored(msgs, change);
        let jobs = match &self.push {
            Some(push) => fanout.push_jobs(|u| push.online(u)),
            None => Vec::new(),
        };
        for message in fanout.messages {
            self.metrics.messages.inc();
            let envelope = Envelope {
                origin,
                ..envelope(st.id(), &ServerFrame::Message { message })
            };
            // The bus is at-most-once; a session that misses this reads it back.
            if let Err(e) = self.bus.publish_many(&fanout.audience, envelope).await {
                tracing::warn!(error = %e, chat = %st.id(), "fan-out failed");
            }
        }
        if let Some(push) = &self.push {
            push.queue(jobs);
        }
        Ok(unshared)
    }

    /// Records the share of each media `msgs` carry, with the seq of the last
    /// message carrying it: one write per media, by the shard that stored
    /// them, before they are published (recipients may then download it
    /// and retention keeps it for them). A failed write leaves the messages
    /// stored; it is logged and counted, and the media returned: their sends
    /// are answered `unavailable`, and the retry records the share.
    async fn record_shares(&self, msgs: &[Message]) -> Vec<String> {
        let mut recorded: Vec<&str> = Vec::new();
        let mut failed = Vec::new();
        for m in msgs.iter().rev() {
            let Some(a) = m.content.attachment() else {
                continue;
            };
            if recorded.contains(&a.media_id.as_str()) {
                continue;
            }
            recorded.push(&a.media_id);
            let shared = media::record_share(&*self.store, &a.media_id, m.chat_id, m.seq, m.sender);
            if let Err(e) = shared.await {
                self.metrics.media_share_failures.inc();
                tracing::warn!(
                    media = %a.media_id, chat = %m.chat_id, seq = m.seq, error = %e,
                    "media: recording a share failed"
                );
                failed.push(a.media_id.clone());
            }
        }
        failed
    }

    /// Publishes `event` of `chat`.
    async fn publish(&self, chat: ChatId, event: &Publish) -> Result<(), BusError> {
        self.bus
            .publish_many(&event.to, envelope(chat, &event.frame))
            .await
    }

    /// Raises a member's watermarks. The chat's lock is held only to update
    /// the in-memory state, not across the store write, so receipts never
    /// queue behind sends; the receipt goes out once the write is durable.
    async fn watermark(
        &self,
        user: UserId,
        chat: ChatId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Reply, ApiError> {
        let receipt = {
            let mut st = self.lock(chat).await?;
            match st.watermark(user, delivered, read)? {
                Some(receipt) => receipt,
                None => return Ok(Reply::Done),
            }
        };
        let advanced = self
            .store
            .advance_watermarks(chat, user, receipt.delivered, receipt.read)
            .await;
        // On failure memory ran ahead of the store: reload the chat next time.
        match advanced {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.chats.remove(chat);
                return Err(ApiError::not_member());
            }
            Err(e) => {
                self.chats.remove(chat);
                return Err(e.into());
            }
        }
        if let Err(e) = self.publish(chat, &receipt.publish).await {
            tracing::warn!(error = %e, "receipt fan-out failed");
        }
        Ok(Reply::Done)
    }

    async fn typing(&self, user: UserId, chat: ChatId) -> Result<Reply, ApiError> {
        let st = self.lock(chat).await?;
        let _ = self.publish(chat, &st.typing(user)?).await;
        Ok(Reply::Done)
    }
}
