//! How the embedded store's keys are laid out as bytes: fixed-width ids and
//! numbers big-endian, so byte order is the order the reads need (a chat's
//! messages by seq, a user's chats, dedup entries by age), and at most one
//! variable-length part, always last, so a prefix names exactly one group.

use crate::model::{ChatId, Seq, UserId};

/// A key under construction.
pub(super) struct Key(Vec<u8>);

impl Key {
    pub(super) fn new() -> Self {
        Self(Vec::with_capacity(48))
    }

    pub(super) fn id(mut self, id: uuid::Uuid) -> Self {
        self.0.extend_from_slice(id.as_bytes());
        self
    }

    pub(super) fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// A signed number, its sign bit flipped so negatives sort first.
    pub(super) fn i64(self, n: i64) -> Self {
        self.u64((n as u64) ^ (1 << 63))
    }

    /// The variable-length tail (nothing may follow it).
    pub(super) fn tail(mut self, s: &str) -> Vec<u8> {
        self.0.extend_from_slice(s.as_bytes());
        self.0
    }

    pub(super) fn done(self) -> Vec<u8> {
        self.0
    }
}

/// `(min, max)` of a direct chat's two users: one key whoever asks.
pub(super) fn pair(a: UserId, b: UserId) -> Vec<u8> {
    Key::new().id(a.min(b)).id(a.max(b)).done()
}

pub(super) fn message(chat: ChatId, seq: Seq) -> Vec<u8> {
    Key::new().id(chat).u64(seq).done()
}

pub(super) fn dedup(chat: ChatId, sender: UserId, client_msg_id: &str) -> Vec<u8> {
    Key::new().id(chat).id(sender).tail(client_msg_id)
}

/// A dedup entry by the time its message was sent, then its dedup key.
pub(super) fn dedup_age(sent_at: i64, dedup_key: &[u8]) -> Vec<u8> {
    let mut key = Key::new().i64(sent_at).done();
    key.extend_from_slice(dedup_key);
    key
}

/// The dedup key inside an age key.
pub(super) fn dedup_of_age(age_key: &[u8]) -> &[u8] {
    &age_key[8..]
}

/// Reads the big-endian number that ends `bytes`.
pub(super) fn u64_at_end(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(8).map(|start| &bytes[start..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// Reads the 16-byte id at `offset` of `bytes`.
pub(super) fn id_at(bytes: &[u8], offset: usize) -> Option<uuid::Uuid> {
    let raw = bytes.get(offset..offset + 16)?;
    Some(uuid::Uuid::from_bytes(raw.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_sort_by_chat_then_seq() {
        let chat = uuid::Uuid::new_v4();
        assert!(message(chat, 9) < message(chat, 10));
        assert!(message(chat, 255) < message(chat, 256));
        assert_eq!(u64_at_end(&message(chat, 256)), Some(256));
        assert_eq!(id_at(&message(chat, 1), 0), Some(chat));
    }

    #[test]
    fn ages_sort_by_time_including_before_1970() {
        let d = dedup(uuid::Uuid::nil(), uuid::Uuid::nil(), "x");
        assert!(dedup_age(-1, &d) < dedup_age(0, &d));
        assert!(dedup_age(0, &d) < dedup_age(1, &d));
        assert!(dedup_age(1 << 40, &d) < dedup_age(1 << 41, &d));
        assert_eq!(dedup_of_age(&dedup_age(5, &d)), d.as_slice());
    }

    #[test]
    fn a_pair_is_the_same_whoever_asks() {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(pair(a, b), pair(b, a));
    }
}
