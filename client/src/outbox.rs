//! The send queue. Every send has a `client_msg_id` and stays queued until
//! its `sent` arrives: it is (re)transmitted on every connection, after no
//! answer for a while, and after a refusal that says "try again" — always
//! with the same id, so the server stores it once (`docs/protocol.md`,
//! "Idempotent send"). At most `window` sends are on the wire at a time, in
//! the order they were queued. Pure bookkeeping: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use confab_protocol::ClientFrame;

/// How the queue paces sends.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Sends on the wire at once.
    pub window: usize,
    /// Transmit again after this long without an answer.
    pub resend_after: Duration,
    /// Wait before retrying a refusal that names no wait.
    pub retry_after: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            window: 64,
            resend_after: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Not on the wire: goes out when the window allows.
    Waiting,
    /// Transmitted at this instant; no answer yet.
    InFlight(Instant),
    /// Refused with "try again": goes out again at this instant.
    RetryAt(Instant),
}

#[derive(Debug)]
struct Entry {
    id: String,
    frame: ClientFrame,
    state: State,
}

/// Sends waiting for their `sent`, oldest first.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    pacing: Pacing,
}

impl Outbox {
    pub fn new(pacing: Pacing) -> Self {
        Self {
            queue: VecDeque::new(),
            pacing,
        }
    }

    /// Queues a `send` frame; false (and nothing queued) when a send with
    /// its `client_msg_id` is queued already.
    pub fn add(&mut self, frame: ClientFrame) -> bool {
        let ClientFrame::Send { client_msg_id, .. } = &frame else {
            return false;
        };
        if self.position(client_msg_id).is_some() {
            return false;
        }
        let id = client_msg_id.clone();
        self.queue.push_back(Entry {
            id,
            frame,
            state: State::Waiting,
        });
        true
    }

    /// Sends still waiting for their `sent`.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The frames to transmit now, oldest first: waiting ones while the
    /// window allows, retries that are due, and in-flight ones that went
    /// unanswered for too long.
    pub fn due(&mut self, now: Instant) -> Vec<ClientFrame> {
        let mut in_flight = self
            .queue
            .iter()
            .filter(|e| matches!(e.state, State::InFlight(_)))
            .count();
        let mut out = Vec::new();
        for e in &mut self.queue {
            let go = match e.state {
                State::InFlight(at) => now >= at + self.pacing.resend_after,
                State::RetryAt(at) if now < at => false,
                State::Waiting | State::RetryAt(_) if in_flight < self.pacing.window => {
                    in_flight += 1;
                    true
                }
                State::Waiting | State::RetryAt(_) => false,
            };
            if go {
                e.state = State::InFlight(now);
                out.push(e.frame.clone());
            }
        }
        out
    }

    /// When [`Outbox::due`] next has something (a retry or a resend).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .iter()
            .filter_map(|e| match e.state {
                State::InFlight(at) => Some(at + self.pacing.resend_after),
                State::RetryAt(at) => Some(at),
                State::Waiting => None,
            })
            .min()
    }

    /// A `sent` answered `id`: it is stored. False when no such send waits.
    pub fn sent(&mut self, id: &str) -> bool {
        self.position(id)
            .and_then(|i| self.queue.remove(i))
            .is_some()
    }

    /// The server refused `id` with "try again" (after `after`, or the
    /// default wait). False when no such send waits.
    pub fn retry(&mut self, id: &str, after: Option<Duration>, now: Instant) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        let after = after.unwrap_or(self.pacing.retry_after);
        self.queue[i].state = State::RetryAt(now + after);
        true
    }

    /// The server refused `id` for good: it leaves the queue.
    pub fn refused(&mut self, id: &str) -> bool {
        self.sent(id)
    }

    /// The connection is gone: whatever was on the wire goes again on the
    /// next one.
    pub fn down(&mut self) {
        for e in &mut self.queue {
            if matches!(e.state, State::InFlight(_)) {
                e.state = State::Waiting;
            }
        }
    }

    /// Empties the queue (the client stopped for good); the ids it held.
    pub fn drain(&mut self) -> Vec<String> {
        self.queue.drain(..).map(|e| e.id).collect()
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.queue.iter().position(|e| e.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(id: &str) -> ClientFrame {
        ClientFrame::Send {
            chat_id: uuid::Uuid::nil(),
            client_msg_id: id.into(),
            kind: Default::default(),
            body: "hi".into(),
            media_id: None,
        }
    }

    fn ids(frames: &[ClientFrame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                ClientFrame::Send { client_msg_id, .. } => client_msg_id.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    fn outbox(window: usize) -> Outbox {
        Outbox::new(Pacing {
            window,
            resend_after: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
        })
    }

    #[test]
    fn the_window_holds_back_what_does_not_fit_in_order() {
        let (mut o, t) = (outbox(2), Instant::now());
        for id in ["a", "b", "c"] {
            assert!(o.add(send(id)));
        }
        assert!(!o.add(send("a")), "one send per id");
        assert_eq!(ids(&o.due(t)), ["a", "b"]);
        assert!(o.due(t).is_empty(), "nothing twice while in flight");
        assert!(o.sent("a"));
        assert_eq!(ids(&o.due(t)), ["c"]);
        assert!(!o.sent("a"), "answered once");
    }

    #[test]
    fn unanswered_and_retried_sends_go_again_with_the_same_id() {
        let (mut o, t) = (outbox(8), Instant::now());
        o.add(send("a"));
        o.add(send("b"));
        o.due(t);
        assert!(o.retry("b", Some(Duration::from_millis(300)), t));
        assert_eq!(o.next_deadline(), Some(t + Duration::from_millis(300)));
        assert!(o.due(t + Duration::from_millis(299)).is_empty());
        assert_eq!(ids(&o.due(t + Duration::from_millis(300))), ["b"]);
        assert_eq!(
            ids(&o.due(t + Duration::from_secs(10))),
            ["a"],
            "resent unanswered"
        );
    }

    #[test]
    fn a_lost_connection_puts_everything_back_on_the_wire() {
        let (mut o, t) = (outbox(8), Instant::now());
        o.add(send("a"));
        o.due(t);
        o.down();
        assert_eq!(ids(&o.due(t)), ["a"]);
        assert!(o.refused("a"));
        assert!(o.is_empty());
    }
}
