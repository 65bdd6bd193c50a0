//! Which messages a device holds, per chat: the resume watermarks sent in
//! `hello`, and "each message once" (dedupe by `(chat_id, seq)`).
//!
//! Within one connection the server sends each chat's messages in seq order
//! with no gaps, except the sender's own messages, which its connection gets
//! as `sent` instead — possibly before an earlier message of someone else.
//! So a chat's watermark is the highest seq such that everything up to it
//! was seen as a `message` or a `sent`; own seqs above it wait in a set
//! until the messages below them arrive. Pure bookkeeping, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use confab_protocol::model::{ChatId, Seq};

/// Per chat: the gapless high watermark and own seqs above it.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    high: BTreeMap<ChatId, Seq>,
    own: HashMap<ChatId, BTreeSet<Seq>>,
}

impl Cursor {
    /// Starts from watermarks a device stored earlier.
    pub fn new(watermarks: BTreeMap<ChatId, Seq>) -> Self {
        Self {
            high: watermarks,
            own: HashMap::new(),
        }
    }

    /// A `message` arrived: true when it is new (show it), false when this
    /// device already holds it (a resume sent it again, or it is its own).
    pub fn message(&mut self, chat: ChatId, seq: Seq) -> bool {
        if self.high.get(&chat).is_some_and(|h| seq <= *h) {
            return false;
        }
        let own = self.own.get_mut(&chat).is_some_and(|own| own.remove(&seq));
        self.raise(chat, seq);
        !own
    }

    /// A `sent` arrived: this device holds its own message at `seq`. Below a
    /// chat's first watermark messages may still be on their way (the
    /// resume backlog), so it counts once they are in.
    pub fn sent(&mut self, chat: ChatId, seq: Seq) {
        match self.high.get(&chat) {
            Some(h) if seq == h + 1 => self.raise(chat, seq),
            Some(h) if seq <= *h => {}
            _ => {
                self.own.entry(chat).or_default().insert(seq);
            }
        }
    }

    /// A `synced` arrived: every message up to each chat's seq in it has
    /// reached this connection.
    pub fn synced(&mut self, chats: &BTreeMap<ChatId, Seq>) {
        for (chat, seq) in chats {
            self.raise(*chat, *seq);
        }
    }

    /// The highest seq held without a gap in `chat`.
    pub fn watermark(&self, chat: ChatId) -> Option<Seq> {
        self.high.get(&chat).copied()
    }

    /// Every chat's watermark: what `hello` sends to resume.
    pub fn watermarks(&self) -> &BTreeMap<ChatId, Seq> {
        &self.high
    }

    fn raise(&mut self, chat: ChatId, seq: Seq) {
        let high = self.high.entry(chat).or_default();
        *high = (*high).max(seq);
        if let Some(own) = self.own.get_mut(&chat) {
            own.retain(|s| s > high);
            while own.remove(&(*high + 1)) {
                *high += 1;
            }
            if own.is_empty() {
                self.own.remove(&chat);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> ChatId {
        ChatId::from_u128(7)
    }

    #[test]
    fn each_message_counts_once() {
        let mut c = Cursor::default();
        assert!(c.message(chat(), 1));
        assert!(c.message(chat(), 2));
        assert!(!c.message(chat(), 2), "a resend is not new");
        assert!(!c.message(chat(), 1));
        assert_eq!(c.watermark(chat()), Some(2));
    }

    #[test]
    fn own_sends_close_the_gap_once_what_is_below_arrives() {
        let mut c = Cursor::new(BTreeMap::from([(chat(), 3)]));
        c.sent(chat(), 5); // 4 (someone else's) is still on its way
        assert_eq!(c.watermark(chat()), Some(3), "no gap is skipped");
        assert!(c.message(chat(), 4));
        assert_eq!(c.watermark(chat()), Some(5), "4 closed the gap up to own 5");
        assert!(
            !c.message(chat(), 5),
            "its own message sent back is not new"
        );
        c.sent(chat(), 6);
        assert_eq!(c.watermark(chat()), Some(6), "next in line moves at once");
    }

    #[test]
    fn an_own_message_sent_back_after_a_reconnect_is_not_new() {
        let mut c = Cursor::default();
        c.sent(chat(), 1); // a new chat: its backlog may still be coming
        assert_eq!(c.watermark(chat()), None);
        assert!(!c.message(chat(), 1));
        assert_eq!(c.watermark(chat()), Some(1));
    }

    #[test]
    fn synced_raises_to_the_chat_heads() {
        let mut c = Cursor::default();
        c.sent(chat(), 4);
        c.synced(&BTreeMap::from([(chat(), 3)]));
        assert_eq!(c.watermark(chat()), Some(4));
    }
}
