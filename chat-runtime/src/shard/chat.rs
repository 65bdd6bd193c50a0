//! One chat's sequencing, as a plain state machine: no store, no bus, no
//! clock.
//!
//! [`ChatState`] is what a shard keeps of a chat it sequences: its head seq,
//! its members with their watermarks, and the senders of its latest messages.
//! Each method takes what the shell read from the store and the time of the
//! command, applies the chat's rules and returns what to write and whom to
//! tell; the shell (`sequencer`) performs that — the store first, then the
//! bus — and reports a durable write back with [`ChatState::stored`].
//!
//! Rules kept here: seqs are gapless (a batch takes the next seqs in order);
//! a `client_msg_id` already sent answers the original seq; only members
//! send, mark or type; watermarks only rise, never past the head, and
//! reading implies holding; a group member's receipt reaches only the
//! senders it covers. Groups and their members: [`membership`].

mod membership;

use std::collections::{BTreeMap, HashMap, VecDeque};

pub use membership::{Change, Membership, check_pair, group_members, new_direct, new_group};

use super::{SendItem, Sent};
use crate::error::ApiError;
use crate::model::{Chat, ChatId, ChatKind, Member, Message, Seq, UserId};
use crate::protocol::ServerFrame;
use crate::push::{self, PushJob};
use crate::store::MemberChange;

/// Runs of messages by one sender remembered per chat, to send a group
/// member's receipts only to the senders whose messages they cover. A run
/// is as long as one member keeps sending, so a chat with a few busy
/// senders is remembered far back: a receipt from a member who fell behind
/// does not fall back to telling everyone — the most costly answer at the
/// moment the server is busiest.
const RECENT_RUNS: usize = 1024;

/// What the shard keeps of a chat it sequences.
#[derive(Debug)]
pub struct ChatState {
    chat: Chat,
    /// The seq of the chat's latest stored message.
    head: Seq,
    members: BTreeMap<UserId, Member>,
    /// (first seq, sender) of the latest runs of messages by one sender,
    /// oldest first; a run ends where the next begins, the last at the head.
    recent: VecDeque<(Seq, UserId)>,
}

/// One event for the bus: who hears it and what.
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    pub to: Vec<UserId>,
    pub frame: ServerFrame,
}

/// Messages just stored, and who hears them.
#[derive(Debug)]
pub struct Fanout {
    /// The members before the write, and a user it removed (who sees their
    /// removal); sorted, without repeats.
    pub audience: Vec<UserId>,
    /// In seq order.
    pub messages: Vec<Message>,
}

/// A send the store already holds, by `client_msg_id`: its (seq, sent_at),
/// or why the store could not tell.
pub type Earlier = Result<Option<(Seq, i64)>, ApiError>;

/// What a batch of sends becomes.
#[derive(Debug)]
pub struct SendBatch {
    /// New messages, the chat's next seqs in order: stored in one write
    /// with `change`.
    pub messages: Vec<Message>,
    /// The sender's watermarks at the last new message (they hold and have
    /// read their own messages); `None` when nothing is new.
    pub change: Option<MemberChange>,
    pub replies: SendReplies,
}

/// The answers to a batch of sends, by item index, once the write is done.
#[derive(Debug)]
pub struct SendReplies {
    /// Answers that do not wait for the write: duplicates and failed lookups.
    known: Vec<(usize, Result<Sent, ApiError>)>,
    /// Items that became new messages, with their seqs.
    fresh: Vec<(usize, Seq)>,
    sent_at: i64,
}

/// A member's raised watermarks.
#[derive(Debug)]
pub struct Receipt {
    /// The watermarks to store, clamped to the head.
    pub delivered: Seq,
    pub read: Seq,
    /// The receipt, once stored.
    pub publish: Publish,
}

impl ChatState {
    /// A chat as the store holds it: `head` is its latest seq.
    pub fn new(chat: Chat, head: Seq, members: Vec<Member>) -> Self {
        Self {
            chat,
            head,
            members: members.into_iter().map(|m| (m.user_id, m)).collect(),
            recent: VecDeque::new(),
        }
    }

    pub fn id(&self) -> ChatId {
        self.chat.id
    }

    /// `user`'s membership; `not_member` when they have none.
    pub fn member(&self, user: UserId) -> Result<&Member, ApiError> {
        self.members.get(&user).ok_or_else(ApiError::not_member)
    }

    fn member_ids(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }

    /// Sequences `items` (all for this chat, with their indexes in the
    /// device's batch) sent by `user` at `now`. `earlier` holds what the
    /// store answered for each `client_msg_id` (the shell asks once per id).
    /// An id already stored, or earlier in the batch, answers its original
    /// seq; a failed lookup fails that item only; the rest take the next
    /// seqs in order.
    pub fn send(
        &self,
        user: UserId,
        items: Vec<(usize, SendItem)>,
        earlier: &HashMap<String, Earlier>,
        now: i64,
    ) -> Result<SendBatch, ApiError> {
        let sender = self.member(user)?;
        let mut known = Vec::new();
        let mut messages: Vec<Message> = Vec::new();
        let mut fresh = Vec::new();
        for (i, item) in items {
            let id = &item.client_msg_id;
            let answer = match messages.iter().find(|m| m.client_msg_id == *id) {
                Some(m) => Ok(Some((m.seq, now))),
                None => earlier.get(id).cloned().unwrap_or(Ok(None)),
            };
            match answer {
                Ok(Some((seq, sent_at))) => known.push((i, Ok(sent(seq, sent_at, true)))),
                Err(e) => known.push((i, Err(e))),
                Ok(None) => {
                    let seq = self.head + 1 + messages.len() as Seq;
                    fresh.push((i, seq));
                    messages.push(Message {
                        chat_id: self.chat.id,
                        seq,
                        sender: user,
                        client_msg_id: item.client_msg_id,
                        content: item.content,
                        sent_at: now,
                    });
                }
            }
        }
        let change = messages.last().map(|last| {
            MemberChange::Put(Member {
                delivered_seq: last.seq,
                read_seq: last.seq,
                ..sender.clone()
            })
        });
        Ok(SendBatch {
            messages,
            change,
            replies: SendReplies {
                known,
                fresh,
                sent_at: now,
            },
        })
    }

    /// After `messages` (the chat's next seqs, in order) and `change` are
    /// durable: applies them and says who hears of them.
    pub fn stored(&mut self, messages: Vec<Message>, change: Option<MemberChange>) -> Fanout {
        let mut audience = self.member_ids();
        match change {
            Some(MemberChange::Put(m)) => {
                self.members.insert(m.user_id, m);
            }
            Some(MemberChange::Remove(u)) => {
                self.members.remove(&u);
                audience.push(u); // the removed user sees their removal
            }
            None => {}
        }
        audience.sort_unstable();
        audience.dedup();
        for m in &messages {
            self.head = m.seq;
            self.remember_sender(m.seq, m.sender);
        }
        Fanout { audience, messages }
    }

    /// Someone else wrote this chat (the store refused our seqs): it is at
    /// `head` now.
    /// Who sent the seqs it wrote is unknown here: the runs are forgotten,
    /// so receipts over them go to everyone.
    pub fn moved(&mut self, head: Seq) {
        self.head = head;
        self.recent.clear();
    }

    fn remember_sender(&mut self, seq: Seq, sender: UserId) {
        if self.recent.back().is_some_and(|(_, last)| *last == sender) {
            return; // the run goes on
        }
        if self.recent.len() == RECENT_RUNS {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, sender));
    }

    /// Raises `user`'s watermarks to `delivered` and `read`, each clamped to
    /// the head; reading a message implies holding it. `None` when neither
    /// rises (nothing to store or tell).
    pub fn watermark(
        &mut self,
        user: UserId,
        delivered: Seq,
        read: Seq,
    ) -> Result<Option<Receipt>, ApiError> {
        let m = self.member(user)?.clone();
        let (delivered, read) = (delivered.min(self.head), read.min(self.head));
        let mut updated = m.clone();
        if !updated.raise(delivered, read) {
            return Ok(None);
        }
        let before = self.all_marks();
        let moved = [
            (m.delivered_seq, updated.delivered_seq),
            (m.read_seq, updated.read_seq),
        ];
        self.members.insert(user, updated);
        let all_moved = self.all_marks() != before;
        let publish = Publish {
            to: self.receipt_audience(user, moved, all_moved),
            frame: self.receipt(user),
        };
        Ok(Some(Receipt {
            delivered,
            read,
            publish,
        }))
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

    /// Who hears that `user`'s watermarks moved, each over the seqs in
    /// `(from, to]` of `moved` (delivered, read): in a 1:1 chat both members;
    /// in a group the user's own devices and the senders of the messages whose
    /// delivered or read state changed — everyone when the "by all"
    /// watermarks moved (or those messages are no longer remembered). This
    /// keeps group receipts from costing members² events: a member who acks
    /// `delivered` and never reads tells only the senders of what arrived.
    fn receipt_audience(
        &self,
        user: UserId,
        moved: [(Seq, Seq); 2],
        all_moved: bool,
    ) -> Vec<UserId> {
        let moved = moved.into_iter().filter(|(from, to)| to > from);
        let lowest = moved
            .clone()
            .map(|(from, _)| from)
            .min()
            .unwrap_or(Seq::MAX);
        let oldest = self.recent.front().map_or(Seq::MAX, |(s, _)| *s);
        if self.chat.kind == ChatKind::Direct || all_moved || lowest.saturating_add(1) < oldest {
            return self.member_ids();
        }
        // Run i holds seqs [its first, the next run's first - 1].
        let ends = self.recent.iter().skip(1).map(|(first, _)| first - 1);
        let runs = self.recent.iter().zip(ends.chain([self.head]));
        let mut out: Vec<UserId> = runs
            .filter(|((first, _), last)| {
                moved.clone().any(|(from, to)| *first <= to && *last > from)
            })
            .map(|((_, sender), _)| *sender)
            .chain([user])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `user` is typing: the other members hear it.
    pub fn typing(&self, user: UserId) -> Result<Publish, ApiError> {
        self.member(user)?;
        Ok(Publish {
            to: self
                .members
                .keys()
                .copied()
                .filter(|u| *u != user)
                .collect(),
            frame: ServerFrame::Typing {
                chat_id: self.chat.id,
                user_id: user,
            },
        })
    }
}

impl Fanout {
    /// The push jobs for these messages: one per recipient who is not
    /// `online` (and not the sender), for content that deserves one.
    pub fn push_jobs(&self, online: impl Fn(UserId) -> bool) -> Vec<PushJob> {
        self.messages
            .iter()
            .flat_map(|m| push::jobs_for(m, &self.audience, &online))
            .collect()
    }
}

impl SendReplies {
    /// The answer to every item, given how storing the new messages went.
    pub fn after(mut self, stored: Result<(), ApiError>) -> Vec<(usize, Result<Sent, ApiError>)> {
        let sent_at = self.sent_at;
        self.known
            .extend(self.fresh.into_iter().map(|(i, seq)| match &stored {
                Ok(()) => (i, Ok(sent(seq, sent_at, false))),
                Err(e) => (i, Err(e.clone())),
            }));
        self.known
    }
}

fn sent(seq: Seq, sent_at: i64, duplicate: bool) -> Sent {
    Sent {
        seq,
        sent_at,
        duplicate,
    }
}

#[cfg(test)]
mod tests;
