//! The shard: per-chat state behind a per-chat lock, so one chat's commands
//! are applied one at a time (gapless seqs) while different chats proceed in
//! parallel and share the store's group commits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use uuid::Uuid;

use super::{Command, Reply, SendItem, invite};
use crate::audit;
use crate::bus::queue::PushQueue;
use crate::bus::sessions::Sessions;
use crate::bus::{Bus, Envelope};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::model::{
    Chat, ChatId, ChatKind, Content, MAX_GROUP_MEMBERS, Member, Message, Role, Seq, SystemEvent,
    UserId, now_ms,
};
use crate::protocol::{self, ErrorCode, ServerFrame};
use crate::push::{self, PushJob};
use crate::store::{MemberChange, Store, StoreError};

/// Senders of this many recent messages are remembered per chat, to send a
/// group member's receipts only to the senders whose messages they cover.
const RECENT_SENDERS: usize = 1024;

/// Chats whose state a shard keeps in memory at most; past it, the least
/// recently used idle ones are dropped (the next command reloads them).
const MAX_CACHED_CHATS: usize = 100_000;

/// What the shard keeps of a chat it sequences.
struct ChatState {
    chat: Chat,
    head: Seq,
    members: BTreeMap<UserId, Member>,
    /// (seq, sender) of the latest messages, oldest first.
    recent: VecDeque<(Seq, UserId)>,
    /// When the chat was last used, on the shard's use counter.
    used: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<ChatState>>>;

/// Makes the id of a new chat. In a cluster a shard mints ids the ring gives
/// to itself, so the chat it creates is one it sequences.
pub type Minter = Arc<dyn Fn() -> ChatId + Send + Sync>;

/// The sequencer for the chats it owns.
pub struct Shard {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    chats: Mutex<HashMap<ChatId, Slot>>,
    /// Counts chat uses: the order in which idle chats are dropped.
    uses: std::sync::atomic::AtomicU64,
    /// At most this many chats are cached.
    capacity: usize,
    mint: Minter,
    push: Option<Push>,
}

/// Where a shard queues push jobs, and how it tells who is offline.
struct Push {
    queue: Arc<dyn PushQueue>,
    sessions: Arc<dyn Sessions>,
    /// Batches of jobs being queued.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Batches of push jobs a shard queues at once before it drops new ones.
pub const PUSH_BACKLOG: usize = 4096;

fn group_full() -> ApiError {
    ApiError::new(
        ErrorCode::GroupFull,
        format!("a group holds at most {MAX_GROUP_MEMBERS} members"),
    )
}

fn frame_bytes(frame: &ServerFrame) -> Bytes {
    Bytes::from(protocol::encode(frame))
}

impl ChatState {
    fn member(&self, user: UserId) -> Result<&Member, ApiError> {
        self.members.get(&user).ok_or_else(ApiError::not_member)
    }

    fn admin(&self, user: UserId) -> Result<(), ApiError> {
        match self.member(user)?.role {
            Role::Admin => Ok(()),
            Role::Member => Err(ApiError::new(
                ErrorCode::Forbidden,
                "only group admins may do this",
            )),
        }
    }

    fn group(&self) -> Result<(), ApiError> {
        match self.chat.kind {
            ChatKind::Group => Ok(()),
            ChatKind::Direct => Err(ApiError::new(
                ErrorCode::Forbidden,
                "membership of a direct chat cannot change",
            )),
        }
    }

    fn member_ids(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }

    /// (delivered by all, read by all) watermarks.
    fn all_marks(&self) -> (Seq, Seq) {
        let min = |f: fn(&Member) -> Seq| self.members.values().map(f).min().unwrap_or(0);
        (min(|m| m.delivered_seq), min(|m| m.read_seq))
    }

    fn receipt(&self, user: UserId) -> ServerFrame {
        let m = &self.members[&user];
        let (delivered_all_seq, read_all_seq) = self.all_marks();
        ServerFrame::Receipt {
            chat_id: self.chat.id,
            user_id: user,
            delivered_seq: m.delivered_seq,
            read_seq: m.read_seq,
            delivered_all_seq,
            read_all_seq,
        }
    }

    fn remember_sender(&mut self, seq: Seq, sender: UserId) {
        if self.recent.len() == RECENT_SENDERS {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, sender));
    }

    /// Who hears that `user`'s watermarks moved over seqs in `(from, to]`:
    /// in a 1:1 chat both members; in a group the user's own devices and the
    /// senders of the covered messages — everyone when the "by all"
    /// watermarks moved (or the covered messages are no longer remembered).
    /// This keeps group receipts from costing members² events.
    fn receipt_audience(&self, user: UserId, from: Seq, to: Seq, all_moved: bool) -> Vec<UserId> {
        let oldest = self.recent.front().map_or(Seq::MAX, |(s, _)| *s);
        if self.chat.kind == ChatKind::Direct || all_moved || from + 1 < oldest {
            return self.member_ids();
        }
        let mut out: Vec<UserId> = self
            .recent
            .iter()
            .filter(|(s, _)| *s > from && *s <= to)
            .map(|(_, u)| *u)
            .chain([user])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Shard {
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
            chats: Mutex::new(HashMap::new()),
            uses: Default::default(),
            capacity: MAX_CACHED_CHATS,
            mint,
            push: None,
        }
    }

    /// `self`, caching at most `capacity` chats.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// `self`, queueing a push job on `queue` for each recipient of a
    /// message who has no live session in `sessions`.
    pub fn with_push(mut self, queue: Arc<dyn PushQueue>, sessions: Arc<dyn Sessions>) -> Self {
        self.push = Some(Push {
            queue,
            sessions,
            in_flight: Arc::new(tokio::sync::Semaphore::new(PUSH_BACKLOG)),
        });
        self
    }

    /// Queues `jobs` in the background, off the chat's critical section
    /// (the message is stored and fanned out already). A refusal is logged
    /// and counted, and never fails the send; so is a backlog past
    /// [`PUSH_BACKLOG`] enqueues in flight (the queue is not keeping up).
    fn queue_pushes(&self, jobs: Vec<PushJob>) {
        let Some(push) = &self.push else { return };
        if jobs.is_empty() {
            return;
        }
        let metrics = self.metrics.clone();
        let Ok(permit) = push.in_flight.clone().try_acquire_owned() else {
            metrics.push_enqueue_failures.inc_by(jobs.len() as u64);
            tracing::warn!(
                jobs = jobs.len(),
                "push queue backlog full: jobs not queued"
            );
            return;
        };
        let queue = push.queue.clone();
        tokio::spawn(async move {
            let queued = futures::future::join_all(jobs.iter().map(|j| queue.enqueue(j))).await;
            for (job, result) in jobs.iter().zip(queued) {
                match result {
                    Ok(()) => {
                        metrics.push_enqueued.inc();
                    }
                    Err(e) => {
                        metrics.push_enqueue_failures.inc();
                        tracing::warn!(error = %e, job = %job.key(), "push job not queued");
                    }
                }
            }
            drop(permit);
        });
    }

    /// Chats whose state this shard holds in memory.
    pub fn cached(&self) -> Vec<ChatId> {
        self.chats
            .lock()
            .expect("chat map")
            .keys()
            .copied()
            .collect()
    }

    /// Waits for the commands running on `chat` to finish, then drops its
    /// state: the next command reloads it from the store. Used when a ring
    /// change moves the chat (away, or back after another shard had it).
    pub async fn release(&self, chat: ChatId) {
        let slot = self.chats.lock().expect("chat map").get(&chat).cloned();
        if let Some(slot) = slot {
            slot.lock().await.take();
            self.chats.lock().expect("chat map").remove(&chat);
        }
    }

    /// Applies one command.
    pub async fn handle(&self, command: Command) -> Result<Reply, ApiError> {
        match command {
            Command::Send { user, item } => self
                .send_many(user, vec![item])
                .await
                .pop()
                .expect("one answer per item"),
            Command::SendMany { user, items } => {
                Ok(Reply::SentMany(self.send_many(user, items).await))
            }
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
                self.change_membership(user, chat, user, SystemEvent::Left)
                    .await
            }
            Command::AddMember { user, chat, target } => {
                self.change_membership(user, chat, target, SystemEvent::Added)
                    .await
            }
            Command::RemoveMember { user, chat, target } => {
                let removed = self
                    .change_membership(user, chat, target, SystemEvent::Removed)
                    .await?;
                let event = audit::Event::MemberRemoved {
                    chat,
                    by: user,
                    user: target,
                };
                audit::record(&self.metrics, event);
                Ok(removed)
            }
        }
    }

    fn slot(&self, chat: ChatId) -> Slot {
        let mut chats = self.chats.lock().expect("shard map lock");
        if chats.len() >= self.capacity && !chats.contains_key(&chat) {
            shrink(&mut chats, self.capacity);
        }
        chats.entry(chat).or_default().clone()
    }

    /// Locks a chat, loading it from the store on first use.
    async fn lock(
        &self,
        chat: ChatId,
    ) -> Result<tokio::sync::OwnedMutexGuard<Option<ChatState>>, ApiError> {
        let mut guard = self.slot(chat).lock_owned().await;
        if guard.is_none() {
            let Some(meta) = self.store.chat(chat).await? else {
                // Nothing is kept for a chat that does not exist.
                drop(guard);
                self.forget_if_idle(chat);
                return Err(ApiError::not_found("chat"));
            };
            let head = self.store.head(chat).await?;
            let members = self.store.members(chat).await?;
            *guard = Some(ChatState {
                chat: meta,
                head,
                members: members.into_iter().map(|m| (m.user_id, m)).collect(),
                recent: VecDeque::new(),
                used: 0,
            });
        }
        if let Some(st) = guard.as_mut() {
            st.used = self.tick();
        }
        Ok(guard)
    }

    /// The next value of the use counter.
    fn tick(&self) -> u64 {
        self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops `chat`'s slot if it holds no state and no command waits on it.
    fn forget_if_idle(&self, chat: ChatId) {
        let mut chats = self.chats.lock().expect("shard map lock");
        if chats.get(&chat).is_some_and(idle_and_empty) {
            chats.remove(&chat);
        }
    }

    /// Stores `msg` as the chat's next seq, then fans it out.
    async fn append(
        &self,
        st: &mut ChatState,
        msg: Message,
        change: Option<MemberChange>,
    ) -> Result<(), ApiError> {
        self.append_all(st, vec![msg], change).await
    }

    /// Stores `msgs` (the chat's next seqs, in order) in one write, then fans
    /// each out in seq order.
    async fn append_all(
        &self,
        st: &mut ChatState,
        msgs: Vec<Message>,
        change: Option<MemberChange>,
    ) -> Result<(), ApiError> {
        match self.store.append_all(&msgs, change.clone()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Someone else wrote these seqs: our view is stale. Reload.
                st.head = self.store.head(st.chat.id).await?;
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "chat moved; retry the request",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut audience = st.member_ids();
        match change {
            Some(MemberChange::Put(m)) => {
                st.members.insert(m.user_id, m);
            }
            Some(MemberChange::Remove(u)) => {
                st.members.remove(&u);
                audience.push(u); // the removed user sees their removal
            }
            None => {}
        }
        audience.sort_unstable();
        audience.dedup();
        let mut pushes = Vec::new();
        for msg in msgs {
            if let Some(push) = &self.push {
                pushes.extend(push::jobs_for(&msg, &audience, |u| push.sessions.online(u)));
            }
            st.head = msg.seq;
            st.remember_sender(msg.seq, msg.sender);
            let envelope = Envelope {
                chat: Some(st.chat.id),
                seq: msg.seq,
                frame: frame_bytes(&ServerFrame::Message { message: msg }),
            };
            self.metrics.messages.inc();
            // The bus is at-most-once; a session that misses this reads it back.
            if let Err(e) = self.bus.publish_many(&audience, envelope).await {
                tracing::warn!(error = %e, chat = %st.chat.id, "fan-out failed");
            }
        }
        self.queue_pushes(pushes);
        Ok(())
    }

    /// Sends a device's consecutive messages: each chat's share is sequenced
    /// under its lock and stored in one write, chats in parallel. Answers in
    /// the order of `items`.
    async fn send_many(&self, user: UserId, items: Vec<SendItem>) -> Vec<Result<Reply, ApiError>> {
        let mut by_chat: Vec<(ChatId, Vec<(usize, SendItem)>)> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match by_chat.iter_mut().find(|(c, _)| *c == item.chat) {
                Some((_, v)) => v.push((i, item)),
                None => by_chat.push((item.chat, vec![(i, item)])),
            }
        }
        let n = by_chat.iter().map(|(_, v)| v.len()).sum();
        let parts = futures::future::join_all(
            by_chat
                .into_iter()
                .map(|(chat, items)| self.send_to_chat(user, chat, items)),
        )
        .await;
        let mut out: Vec<Option<Result<Reply, ApiError>>> = (0..n).map(|_| None).collect();
        for (i, r) in parts.into_iter().flatten() {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("every item answered"))
            .collect()
    }

    async fn send_to_chat(
        &self,
        user: UserId,
        chat: ChatId,
        items: Vec<(usize, SendItem)>,
    ) -> Vec<(usize, Result<Reply, ApiError>)> {
        let mut guard = match self.lock(chat).await {
            Ok(g) => g,
            Err(e) => {
                return items
                    .into_iter()
                    .map(|(i, _)| (i, Err(e.clone())))
                    .collect();
            }
        };
        let st = guard.as_mut().expect("loaded");
        let sender = match st.member(user) {
            Ok(m) => m.clone(),
            Err(e) => {
                return items
                    .into_iter()
                    .map(|(i, _)| (i, Err(e.clone())))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut fresh: Vec<(usize, Message)> = Vec::new();
        let sent_at = now_ms();
        for (i, item) in items {
            if let Some((_, m)) = fresh
                .iter()
                .find(|(_, m)| m.client_msg_id == item.client_msg_id)
            {
                out.push((
                    i,
                    Ok(Reply::Sent {
                        seq: m.seq,
                        sent_at,
                        duplicate: true,
                    }),
                ));
                continue;
            }
            match self.stored_duplicate(chat, user, &item.client_msg_id).await {
                Ok(Some(reply)) => out.push((i, Ok(reply))),
                Err(e) => out.push((i, Err(e))),
                Ok(None) => {
                    let seq = st.head + 1 + fresh.len() as Seq;
                    let msg = Message {
                        chat_id: chat,
                        seq,
                        sender: user,
                        client_msg_id: item.client_msg_id,
                        content: item.content,
                        sent_at,
                    };
                    fresh.push((i, msg));
                }
            }
        }
        let Some(last) = fresh.last().map(|(_, m)| m.seq) else {
            return out;
        };
        // The sender holds and has read their own messages.
        let me = Member {
            delivered_seq: last,
            read_seq: last,
            ..sender
        };
        let (indexes, msgs): (Vec<usize>, Vec<Message>) = fresh.into_iter().unzip();
        let seqs: Vec<Seq> = msgs.iter().map(|m| m.seq).collect();
        match self.append_all(st, msgs, Some(MemberChange::Put(me))).await {
            Ok(()) => out.extend(indexes.into_iter().zip(seqs).map(|(i, seq)| {
                (
                    i,
                    Ok(Reply::Sent {
                        seq,
                        sent_at,
                        duplicate: false,
                    }),
                )
            })),
            Err(e) => out.extend(indexes.into_iter().map(|i| (i, Err(e.clone())))),
        }
        out
    }

    /// The reply for a `client_msg_id` the store already holds, if it does.
    async fn stored_duplicate(
        &self,
        chat: ChatId,
        user: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Reply>, ApiError> {
        let Some(seq) = self.store.dedup(chat, user, client_msg_id).await? else {
            return Ok(None);
        };
        let sent_at = self
            .store
            .messages_after(chat, seq - 1, 1)
            .await?
            .first()
            .map_or(0, |m| m.sent_at);
        Ok(Some(Reply::Sent {
            seq,
            sent_at,
            duplicate: true,
        }))
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
        let (frame, audience) = {
            let mut guard = self.lock(chat).await?;
            let st = guard.as_mut().expect("loaded");
            let m = st.member(user)?.clone();
            let (delivered, read) = (delivered.min(st.head), read.min(st.head));
            if delivered <= m.delivered_seq && read <= m.read_seq {
                return Ok(Reply::Done);
            }
            let before = st.all_marks();
            let updated = Member {
                delivered_seq: m.delivered_seq.max(delivered).max(read),
                read_seq: m.read_seq.max(read),
                ..m.clone()
            };
            let to = updated.delivered_seq;
            st.members.insert(user, updated);
            let all_moved = st.all_marks() != before;
            let audience = st.receipt_audience(user, m.read_seq, to, all_moved);
            (frame_bytes(&st.receipt(user)), audience)
        };
        match self
            .store
            .advance_watermarks(chat, user, delivered, read)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.evict(chat);
                return Err(ApiError::not_member());
            }
            Err(e) => {
                self.evict(chat);
                return Err(e.into());
            }
        }
        let envelope = Envelope {
            chat: Some(chat),
            seq: 0,
            frame,
        };
        if let Err(e) = self.bus.publish_many(&audience, envelope).await {
            tracing::warn!(error = %e, "receipt fan-out failed");
        }
        Ok(Reply::Done)
    }

    /// Drops a chat's cached state; the next command reloads it from the store.
    fn evict(&self, chat: ChatId) {
        self.chats.lock().expect("shard map lock").remove(&chat);
    }

    async fn typing(&self, user: UserId, chat: ChatId) -> Result<Reply, ApiError> {
        let guard = self.lock(chat).await?;
        let st = guard.as_ref().expect("loaded");
        st.member(user)?;
        let others: Vec<_> = st.members.keys().copied().filter(|u| *u != user).collect();
        let envelope = Envelope {
            chat: Some(chat),
            seq: 0,
            frame: frame_bytes(&ServerFrame::Typing {
                chat_id: chat,
                user_id: user,
            }),
        };
        let _ = self.bus.publish_many(&others, envelope).await;
        Ok(Reply::Done)
    }

    async fn create_group(
        &self,
        user: UserId,
        title: String,
        invited: Vec<UserId>,
    ) -> Result<Reply, ApiError> {
        let mut ids = vec![user];
        for u in invited {
            if !ids.contains(&u) {
                ids.push(u);
            }
        }
        if ids.len() > MAX_GROUP_MEMBERS {
            return Err(group_full());
        }
        for u in &ids[1..] {
            if self.store.user(*u).await?.is_none() {
                return Err(ApiError::not_found(&format!("user {u}")));
            }
        }
        let now = now_ms();
        let chat = Chat {
            id: (self.mint)(),
            kind: ChatKind::Group,
            title,
            created_by: user,
            created_at: now,
        };
        let members: Vec<Member> = ids
            .iter()
            .map(|u| {
                let role = if *u == user {
                    Role::Admin
                } else {
                    Role::Member
                };
                Member {
                    joined_seq: 1,
                    ..Member::new(*u, role, now)
                }
            })
            .collect();
        let first = system_message(chat.id, 1, user, SystemEvent::Created, user);
        let mut guard = self.slot(chat.id).lock_owned().await;
        self.store.create_chat(&chat, &members, &first).await?;
        let st = guard.insert(ChatState {
            chat: chat.clone(),
            head: 1,
            members: members.into_iter().map(|m| (m.user_id, m)).collect(),
            recent: VecDeque::from([(1, user)]),
            used: self.tick(),
        });
        let envelope = Envelope {
            chat: Some(chat.id),
            seq: 1,
            frame: frame_bytes(&ServerFrame::Message { message: first }),
        };
        let _ = self.bus.publish_many(&st.member_ids(), envelope).await;
        Ok(Reply::Chat(chat.id))
    }

    async fn open_direct(&self, user: UserId, peer: UserId) -> Result<Reply, ApiError> {
        if user == peer {
            return Err(ApiError::invalid("a direct chat needs two different users"));
        }
        if let Some(id) = self.store.direct_chat(user, peer).await? {
            return Ok(Reply::Chat(id));
        }
        if self.store.user(peer).await?.is_none() {
            return Err(ApiError::not_found("user"));
        }
        let now = now_ms();
        let chat = Chat {
            id: (self.mint)(),
            kind: ChatKind::Direct,
            title: String::new(),
            created_by: user,
            created_at: now,
        };
        let members = [
            Member::new(user, Role::Member, now),
            Member::new(peer, Role::Member, now),
        ];
        let (id, _) = self.store.create_direct(&chat, members).await?;
        Ok(Reply::Chat(id))
    }

    /// Join: the user must hold the group's current invite code, and not
    /// have been removed by an admin since (a member joining again is a no-op).
    async fn join(&self, user: UserId, chat: ChatId, code: &str) -> Result<Reply, ApiError> {
        let mut guard = self.lock(chat).await?;
        let st = guard.as_mut().expect("loaded");
        st.group()?;
        if !st.members.contains_key(&user) {
            let current = self.store.invite(chat).await?;
            if current.is_none_or(|c| !invite::matches(&c, code)) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this invite is not valid: ask an admin for the current one",
                ));
            }
            if self.store.is_banned(chat, user).await? {
                return Err(ApiError::new(
                    ErrorCode::Banned,
                    "an admin removed you from this group; only an admin can add you back",
                ));
            }
        }
        self.membership(st, user, user, SystemEvent::Joined).await
    }

    /// An admin's view of the group's invite code: made on first use, or
    /// replaced when `reset` (the old code stops working at once).
    async fn invite(&self, user: UserId, chat: ChatId, reset: bool) -> Result<Reply, ApiError> {
        let mut guard = self.lock(chat).await?;
        let st = guard.as_mut().expect("loaded");
        st.group()?;
        self.ensure_admin(st).await?;
        st.admin(user)?;
        let code = match self.store.invite(chat).await? {
            Some(code) if !reset => code,
            _ => {
                let code = invite::new_code();
                self.store.set_invite(chat, &code).await?;
                code
            }
        };
        Ok(Reply::Invite(code))
    }

    /// Leave, add or remove.
    async fn change_membership(
        &self,
        actor: UserId,
        chat: ChatId,
        target: UserId,
        event: SystemEvent,
    ) -> Result<Reply, ApiError> {
        let mut guard = self.lock(chat).await?;
        let st = guard.as_mut().expect("loaded");
        self.membership(st, actor, target, event).await
    }

    /// Checks the rules of a membership change, then records it as a system
    /// message in the chat's sequence. A member joins (or is added) at that
    /// message's seq and reads the chat from there. An admin's removal bans
    /// the user from joining again; an admin's add lifts the ban (each written
    /// before the change, so a crash in between errs on the side of the ban).
    async fn membership(
        &self,
        st: &mut ChatState,
        actor: UserId,
        target: UserId,
        event: SystemEvent,
    ) -> Result<Reply, ApiError> {
        let chat = st.chat.id;
        st.group()?;
        self.ensure_admin(st).await?;
        let is_member = st.members.contains_key(&target);
        let seq = st.head + 1;
        let change = match event {
            SystemEvent::Joined | SystemEvent::Added => {
                if event == SystemEvent::Added {
                    st.admin(actor)?;
                    if self.store.user(target).await?.is_none() {
                        return Err(ApiError::not_found("user"));
                    }
                }
                if is_member {
                    return Ok(Reply::Chat(chat));
                }
                if st.members.len() >= MAX_GROUP_MEMBERS {
                    return Err(group_full());
                }
                if event == SystemEvent::Added {
                    self.store.set_banned(chat, target, false).await?;
                }
                // Nothing before the join is theirs to read, or to have read.
                MemberChange::Put(Member {
                    joined_seq: seq,
                    delivered_seq: seq - 1,
                    read_seq: seq - 1,
                    ..Member::new(target, Role::Member, now_ms())
                })
            }
            SystemEvent::Left | SystemEvent::Removed => {
                if event == SystemEvent::Removed {
                    st.admin(actor)?;
                }
                if !is_member {
                    return Err(ApiError::not_member());
                }
                if event == SystemEvent::Removed {
                    self.store.set_banned(chat, target, true).await?;
                }
                MemberChange::Remove(target)
            }
            SystemEvent::Created | SystemEvent::Promoted => {
                return Err(ApiError::invalid("not a membership change"));
            }
        };
        let msg = system_message(chat, seq, actor, event, target);
        self.append(st, msg, Some(change)).await?;
        if let Err(e) = self.ensure_admin(st).await {
            // The change itself is stored; the next one retries the promotion.
            tracing::warn!(error = %e, %chat, "promoting a new admin failed");
        }
        Ok(Reply::Chat(chat))
    }

    /// A group with members always has an admin: when there is none (the
    /// last admin left or was removed), the longest-standing member — the
    /// earliest join — becomes one, recorded as a `promoted` system message.
    async fn ensure_admin(&self, st: &mut ChatState) -> Result<(), ApiError> {
        if st.chat.kind != ChatKind::Group || st.members.values().any(|m| m.role == Role::Admin) {
            return Ok(());
        }
        let eldest = st
            .members
            .values()
            .min_by_key(|m| (m.joined_seq, m.joined_at, m.user_id));
        let Some(eldest) = eldest else {
            return Ok(());
        };
        let promoted = Member {
            role: Role::Admin,
            ..eldest.clone()
        };
        let user = promoted.user_id;
        let msg = system_message(st.chat.id, st.head + 1, user, SystemEvent::Promoted, user);
        self.append(st, msg, Some(MemberChange::Put(promoted)))
            .await
    }
}

/// A slot nobody holds or waits on (only the map has it) and with no state.
fn idle_and_empty(slot: &Slot) -> bool {
    Arc::strong_count(slot) == 1 && slot.try_lock().is_ok_and(|st| st.is_none())
}

/// Drops idle chats from a full cache, least recently used first, down to
/// nine tenths of `capacity`: the scan then runs once per tenth of inserts.
/// Chats with a command running or waiting stay.
fn shrink(chats: &mut HashMap<ChatId, Slot>, capacity: usize) {
    let mut idle: Vec<(u64, ChatId)> = chats
        .iter()
        .filter(|(_, slot)| Arc::strong_count(slot) == 1)
        .filter_map(|(id, slot)| {
            let st = slot.try_lock().ok()?;
            Some((st.as_ref().map_or(0, |s| s.used), *id))
        })
        .collect();
    let target = capacity - capacity / 10;
    let excess = chats.len().saturating_sub(target).min(idle.len());
    if excess == 0 {
        return;
    }
    idle.select_nth_unstable(excess - 1);
    for (_, id) in &idle[..excess] {
        chats.remove(id);
    }
}

fn system_message(
    chat: ChatId,
    seq: Seq,
    actor: UserId,
    event: SystemEvent,
    user_id: UserId,
) -> Message {
    Message {
        chat_id: chat,
        seq,
        sender: actor,
        client_msg_id: String::new(),
        content: Content::System { event, user_id },
        sent_at: now_ms(),
    }
}
