//! The decisions of one live session as a plain state machine: which frames
//! reach the device, which are skipped, which gaps are filled from the store
//! and when the session closes. No socket, store, bus or clock: the shell
//! feeds [`Event`]s (with the time when it matters) and performs the
//! [`Action`]s they lead to.
//!
//! Rules:
//! - Per chat the session remembers the highest seq written to this device
//!   (its high mark). A live event at or below it is a duplicate and skipped;
//!   one above it + 1 reveals a gap, filled from the store before the event
//!   is forwarded, so the device sees every chat in seq order. A chat's first
//!   live event sets the mark (nothing before it is filled). A message this
//!   session sent moves the mark but is not forwarded: the device has its
//!   `sent` (its other devices get the message).
//! - Only members are filled in, and never from before they joined (their
//!   join seq), whatever the device's mark says. A non-member's event still
//!   passes (a removal's own event reaches the removed device).
//! - A catch-up (at the start, after the device's watermarks, and whenever
//!   events may have been missed) sends every stored message of the user's
//!   chats above the high marks — for a chat without one, above the user's
//!   delivered watermark — then `synced` with each chat's new mark.
//! - Frames: `ping` is answered, a second `hello` or an oversized message
//!   closes, commands go to the dispatcher, and more than [`MAX_BAD_FRAMES`]
//!   undecodable frames in a row close the connection.
//! - A device silent for two heartbeat intervals is closed.
//!
//! A store read asked for by an action ([`Action::ListChats`],
//! [`Action::LookUp`], [`Action::Read`]) is answered by the next event the
//! shell feeds ([`Event::Chats`], [`Event::Member`], [`Event::Page`]); the
//! shell reads nothing else meanwhile, so live events wait in the bus's
//! bounded queue and come after the fill, in order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Inbound, error_frame};
use crate::bus::{Envelope, Origin};
use crate::error::ApiError;
use crate::model::{ChatId, Member, Message, Seq};
use crate::protocol::{self, ClientFrame, CloseCode, Correlation, ErrorCode, ServerFrame};

/// Messages read from the store at a time during catch-up and gap filling.
pub const PAGE: usize = 200;
/// Consecutive undecodable frames tolerated before the connection is closed.
pub const MAX_BAD_FRAMES: u32 = 16;

/// What happened, as the shell tells it.
#[derive(Debug)]
pub enum Event {
    /// The resume is over and the live phase starts: the device's silence
    /// counts from here.
    Live(Instant),
    /// The socket delivered a frame at this instant.
    Frame(Inbound, Instant),
    /// The socket's reader ended (the device went away).
    SocketEnded,
    /// An event for the user from the bus.
    Bus(Envelope),
    /// The bus cut the subscription off: the device did not keep up.
    BusEnded,
    /// The heartbeat timer fired at this instant.
    Tick(Instant),
    /// The gateway shuts down, or this session's moment to leave a draining
    /// gateway has come.
    Shutdown,
    /// Catch up with the store: after hello, and when events may have been
    /// missed (the gateway's bus reconnected).
    CatchUp,
    /// Answers [`Action::ListChats`]: the user's chats.
    Chats(Vec<ChatId>),
    /// Answers [`Action::LookUp`]: the user's membership, if they are a member.
    Member(Option<Member>),
    /// Answers [`Action::Read`]: the messages read, in seq order; empty when
    /// there are none or the read failed.
    Page(Vec<Message>),
}

/// What the shell should do, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Write a live event's frame, as it came from the bus (a delivery).
    Forward(Bytes),
    /// Write a stored message (a delivery).
    Deliver(Message),
    /// Write a reply of the session itself (`pong`, `synced`, an error).
    Reply(ServerFrame),
    /// Count a refused frame under its error code.
    CountError(ErrorCode),
    /// Hand a command frame to the dispatcher.
    Dispatch(ClientFrame),
    /// Close the socket with this code; the session is over.
    Close(CloseCode),
    /// Stop without a close frame; the session is over.
    End,
    /// Read the user's chats; answer with [`Event::Chats`].
    ListChats,
    /// Look up the user's membership of the chat; answer with [`Event::Member`].
    LookUp(ChatId),
    /// Read up to `limit` messages of `chat` after `after`; answer with
    /// [`Event::Page`].
    Read {
        chat: ChatId,
        after: Seq,
        limit: usize,
    },
}

/// One session's memory.
#[derive(Debug)]
pub struct SessionState {
    /// Highest seq written to this device per chat.
    highs: HashMap<ChatId, Seq>,
    /// The device must send something at least this often.
    heartbeat: Duration,
    /// When the device was last heard from; `None` until the live phase.
    heard: Option<Instant>,
    /// Undecodable frames since the last good one.
    bad_frames: u32,
    /// The fill under way, if the session waits for the store (boxed: an
    /// idle session keeps no room for one).
    job: Option<Box<Job>>,
    /// This session's tag, on the messages it sends.
    origin: Origin,
}

/// Filling one or more chats from the store, then finishing.
#[derive(Debug)]
struct Job {
    /// Chats still to fill, in order.
    chats: std::vec::IntoIter<ChatId>,
    /// Fill each chat up to this seq (inclusive).
    until: Seq,
    /// The chat being filled.
    chat: Option<ChatId>,
    /// Its mark so far, once its membership is known.
    high: Seq,
    /// What ends the job.
    then: Then,
}

#[derive(Debug)]
enum Then {
    /// The live event whose gap was filled: forward it (`None`: this
    /// session's own message, only its seq is taken).
    Forward {
        chat: ChatId,
        seq: Seq,
        frame: Option<Bytes>,
    },
    /// A catch-up: send `synced` with these marks.
    Synced(BTreeMap<ChatId, Seq>),
}

impl SessionState {
    /// A session tagged `origin` whose device holds `watermarks` (from its
    /// hello).
    pub fn new(watermarks: BTreeMap<ChatId, Seq>, heartbeat: Duration, origin: Origin) -> Self {
        Self {
            highs: watermarks.into_iter().collect(),
            heartbeat,
            heard: None,
            bad_frames: 0,
            job: None,
            origin,
        }
    }

    /// Takes one event; returns what to do, in order. After an action that
    /// asks for a store read, the next event must be its answer.
    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Live(now) => {
                self.heard = Some(now);
                vec![]
            }
            Event::Frame(frame, now) => {
                self.heard = Some(now);
                self.on_frame(frame)
            }
            Event::SocketEnded => vec![Action::End],
            Event::Bus(envelope) => self.on_bus(envelope),
            Event::BusEnded => vec![Action::Close(CloseCode::SlowConsumer)],
            Event::Tick(now) => self.on_tick(now),
            Event::Shutdown => vec![Action::Close(CloseCode::ServerRestart)],
            Event::CatchUp => vec![Action::ListChats],
            Event::Chats(chats) => {
                let then = Then::Synced(BTreeMap::new());
                self.start(chats, Seq::MAX, then)
            }
            Event::Member(member) => self.on_member(member),
            Event::Page(page) => self.on_page(page),
        }
    }

    fn on_frame(&mut self, frame: Inbound) -> Vec<Action> {
        let decoded = match frame {
            Inbound::TooBig => return vec![Action::Close(CloseCode::MessageTooBig)],
            Inbound::Text(b) => protocol::decode(&b).map_err(|e| {
                let refused = ApiError::new(e.code(), e.to_string());
                (refused, Correlation::read(&b))
            }),
            Inbound::Binary => Err((
                ApiError::new(
                    ErrorCode::BadFrame,
                    "binary frames are not supported; send JSON text",
                ),
                Correlation::default(),
            )),
        };
        match decoded {
            Ok(ClientFrame::Hello { .. }) => vec![Action::Close(CloseCode::ProtocolViolation)],
            Ok(frame) => {
                self.bad_frames = 0;
                match frame {
                    ClientFrame::Ping {} => vec![Action::Reply(ServerFrame::Pong {})],
                    frame => vec![Action::Dispatch(frame)],
                }
            }
            Err((e, ids)) => {
                self.bad_frames += 1;
                let count = Action::CountError(e.code);
                if self.bad_frames > MAX_BAD_FRAMES {
                    return vec![count, Action::Close(CloseCode::ProtocolViolation)];
                }
                let reply = error_frame(&e, ids.req_id, ids.client_msg_id);
                vec![count, Action::Reply(reply)]
            }
        }
    }

    fn on_tick(&self, now: Instant) -> Vec<Action> {
        let silent = self.heard.map(|t| now.saturating_duration_since(t));
        if silent.is_some_and(|s| s > self.heartbeat * 2) {
            return vec![Action::Close(CloseCode::HeartbeatTimeout)];
        }
        vec![]
    }

    /// Forwards a live event in order, without duplicates, after filling
    /// any gap before it.
    fn on_bus(&mut self, envelope: Envelope) -> Vec<Action> {
        let seq = envelope.seq;
        let Some(chat) = envelope.chat.filter(|_| seq > 0) else {
            return vec![Action::Forward(envelope.frame)];
        };
        let high = *self.highs.entry(chat).or_insert(seq - 1);
        if seq <= high {
            return vec![];
        }
        let own = envelope.origin == Some(self.origin);
        let frame = (!own).then_some(envelope.frame);
        if seq > high + 1 {
            return self.start(vec![chat], seq - 1, Then::Forward { chat, seq, frame });
        }
        self.highs.insert(chat, seq);
        frame.map(Action::Forward).into_iter().collect()
    }

    fn start(&mut self, chats: Vec<ChatId>, until: Seq, then: Then) -> Vec<Action> {
        self.job = Some(Box::new(Job {
            chats: chats.into_iter(),
            until,
            chat: None,
            high: 0,
            then,
        }));
        self.next_chat(vec![])
    }

    /// Looks up the job's next chat, or finishes the job.
    fn next_chat(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        let Some(job) = self.job.as_mut() else {
            return actions;
        };
        job.chat = job.chats.next();
        if let Some(chat) = job.chat {
            actions.push(Action::LookUp(chat));
            return actions;
        }
        let Some(job) = self.job.take() else {
            return actions;
        };
        match job.then {
            Then::Forward { chat, seq, frame } => {
                self.highs.insert(chat, seq);
                actions.extend(frame.map(Action::Forward));
            }
            Then::Synced(chats) => actions.push(Action::Reply(ServerFrame::Synced { chats })),
        }
        actions
    }

    /// Fills the chat from the member's mark, never from before they joined;
    /// skips it for a non-member.
    fn on_member(&mut self, member: Option<Member>) -> Vec<Action> {
        let Some(job) = self.job.as_mut() else {
            return vec![];
        };
        let (Some(chat), Some(me)) = (job.chat, member) else {
            return self.next_chat(vec![]);
        };
        let held = *self.highs.entry(chat).or_insert(me.delivered_seq);
        job.high = held.max(me.joined_seq.saturating_sub(1));
        self.read(vec![])
    }

    fn on_page(&mut self, page: Vec<Message>) -> Vec<Action> {
        let Some(job) = self.job.as_mut() else {
            return vec![];
        };
        let Some(last) = page.last().map(|m| m.seq) else {
            return self.finish_chat(vec![]);
        };
        job.high = last;
        self.read(page.into_iter().map(Action::Deliver).collect())
    }

    /// Asks for the chat's next page, or finishes it when it is full.
    fn read(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        let Some(&Job {
            chat: Some(chat),
            high,
            until,
            ..
        }) = self.job.as_deref()
        else {
            return actions;
        };
        if high >= until {
            return self.finish_chat(actions);
        }
        let limit = usize::try_from(until - high).map_or(PAGE, |n| n.min(PAGE));
        actions.push(Action::Read {
            chat,
            after: high,
            limit,
        });
        actions
    }

    /// Records the filled chat's mark and moves on.
    fn finish_chat(&mut self, actions: Vec<Action>) -> Vec<Action> {
        if let Some(job) = self.job.as_mut()
            && let Some(chat) = job.chat
        {
            self.highs.insert(chat, job.high);
            if let Then::Synced(heads) = &mut job.then {
                heads.insert(chat, job.high);
            }
        }
        self.next_chat(actions)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
