//! Pure changes to a [`MediaRecord`]: who may read it, uploads, shares,
//! downloads, and whether retention lets the sweeper delete it. The service
//! applies each change with the store's compare-and-set; nothing here does I/O.

use std::collections::BTreeMap;

use crate::model::{
    Attachment, ChatId, MediaFacts, MediaId, MediaKind, MediaRecord, MediaState, Member, Seq,
    Share, UserId,
};

/// Uploaded bytes: where they are and what they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub id: MediaId,
    pub bucket: String,
    pub kind: MediaKind,
    pub facts: MediaFacts,
}

/// What an upload does to the record of its bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Write this record (compare-and-set against `expected`); the object
    /// must be in the bucket first.
    Write {
        record: MediaRecord,
        expected: Option<u64>,
        /// The bytes were already stored and live (a duplicate upload).
        duplicate: bool,
    },
    /// The uploader already holds this live media: nothing to write.
    Unchanged(MediaRecord),
    /// The sweeper is deleting the object; try again shortly.
    Wait,
}

/// How `upload` by `user` changes `current`.
pub fn claim(current: Option<&MediaRecord>, upload: Upload, user: UserId, now: i64) -> Claim {
    match current {
        Some(r) if r.state == MediaState::Deleting => Claim::Wait,
        Some(r) if r.state == MediaState::Live => {
            if r.uploaders.contains(&user) {
                return Claim::Unchanged(r.clone());
            }
            let mut record = r.clone();
            record.uploaders.push(user);
            record.touched_at = now;
            record.version += 1;
            Claim::Write {
                record,
                expected: Some(r.version),
                duplicate: true,
            }
        }
        // New bytes, or bytes deleted by retention and uploaded again.
        _ => Claim::Write {
            record: MediaRecord {
                id: upload.id,
                bucket: upload.bucket,
                kind: upload.kind,
                facts: upload.facts,
                uploaders: vec![user],
                shares: current.map(|r| r.shares.clone()).unwrap_or_default(),
                downloads: Vec::new(),
                state: MediaState::Live,
                created_at: now,
                touched_at: now,
                version: current.map_or(1, |r| r.version + 1),
            },
            expected: current.map(|r| r.version),
            duplicate: false,
        },
    }
}

/// Whether `user` may download or forward `r`: they uploaded the bytes, or
/// it was shared in one of their chats (`chats`: each with the seq they
/// joined at) by a message they can read — one from their join on. A share
/// at seq 0 (left by earlier versions, which recorded it before the message
/// was stored) counts for every member.
pub fn may_read(r: &MediaRecord, user: UserId, chats: &[(ChatId, Seq)]) -> bool {
    r.uploaders.contains(&user)
        || r.shares.iter().any(|s| {
            chats
                .iter()
                .any(|(chat, joined)| *chat == s.chat_id && (s.seq == 0 || s.seq >= *joined))
        })
}

/// `r` shared in `chat` by `by`, carried by stored message `seq`. `None`
/// when a message at `seq` or later already carries it there (a send
/// recorded once).
pub fn with_share(
    r: &MediaRecord,
    chat: ChatId,
    seq: Seq,
    by: UserId,
    now: i64,
) -> Option<MediaRecord> {
    let mut next = r.clone();
    match next.shares.iter_mut().find(|s| s.chat_id == chat) {
        Some(s) if s.seq >= seq => return None,
        Some(s) => {
            s.seq = seq;
            s.by = by;
        }
        None => next.shares.push(Share {
            chat_id: chat,
            seq,
            by,
        }),
    }
    next.touched_at = now;
    next.version += 1;
    Some(next)
}

/// `r` after `user` fetched all of it; `None` when already recorded.
pub fn with_download(r: &MediaRecord, user: UserId) -> Option<MediaRecord> {
    if r.downloads.contains(&user) || r.uploaders.contains(&user) {
        return None;
    }
    let mut next = r.clone();
    next.downloads.push(user);
    next.version += 1;
    Some(next)
}

/// `r` moved to `state`.
pub fn with_state(r: &MediaRecord, state: MediaState) -> MediaRecord {
    let mut next = r.clone();
    next.state = state;
    next.version += 1;
    if state == MediaState::Deleted {
        next.uploaders.clear();
        next.downloads.clear();
    }
    next
}

/// The attachment a message of `kind` carrying `r` has. The name it was
/// uploaded with goes only with a `file` (a document shows its name; a
/// photo, video or voice note sent as such shows none, and gives away no
/// file name).
pub fn attachment(r: &MediaRecord, kind: MediaKind, caption: String) -> Attachment {
    let mut facts = r.facts.clone();
    if kind != MediaKind::File {
        facts.name = None;
    }
    Attachment {
        media_id: r.id.clone(),
        facts,
        caption,
    }
}

/// A bucket's retention policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete this long (ms) after the last upload or share.
    pub expire_after_ms: Option<i64>,
    /// Delete once every recipient has downloaded it (WhatsApp-style).
    pub after_download: bool,
}

/// An upload no message carries yet is kept at least this long whatever the
/// retention: apps send right after uploading, and a sweep in between must
/// not delete what the next `send` attaches.
pub const UNSENT_GRACE_MS: i64 = 10 * 60 * 1000;

/// Whether the sweeper may delete `r` now. `members` holds the current
/// members of every chat `r` was shared in. Never while a message carrying
/// it is undelivered to any recipient.
pub fn due(
    r: &MediaRecord,
    policy: Retention,
    members: &BTreeMap<ChatId, Vec<Member>>,
    now: i64,
) -> bool {
    if r.state != MediaState::Live {
        return false;
    }
    let recipients = || {
        r.shares.iter().flat_map(move |s| {
            members
                .get(&s.chat_id)
                .into_iter()
                .flatten()
                .filter(move |m| m.user_id != s.by && !r.uploaders.contains(&m.user_id))
                // A member who joined after the message never receives it.
                .filter(move |m| s.seq == 0 || m.joined_seq <= s.seq)
                .map(move |m| (s, m))
        })
    };
    // A recipient who downloaded the media holds it, acked or not. A share
    // left pending (seq 0) may be undelivered to anyone.
    let undelivered = r.shares.iter().any(|s| s.seq == 0)
        || recipients().any(|(s, m)| m.delivered_seq < s.seq && !r.downloads.contains(&m.user_id));
    if undelivered {
        return false;
    }
    let downloaded_by_all =
        !r.shares.is_empty() && recipients().all(|(_, m)| r.downloads.contains(&m.user_id));
    let unsent = r.shares.is_empty();
    let expired = policy.expire_after_ms.is_some_and(|ttl| {
        let ttl = if unsent {
            ttl.max(UNSENT_GRACE_MS)
        } else {
            ttl
        };
        now.saturating_sub(r.touched_at) >= ttl
    });
    (policy.after_download && downloaded_by_all) || expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fixtures;
    use crate::model::Role;
    use uuid::Uuid;

    #[test]
    fn only_a_file_carries_the_name_it_was_uploaded_with() {
        let clip = fixtures::record(&"ab".repeat(32));
        let name = |kind| attachment(&clip, kind, String::new()).facts.name;
        assert_eq!(name(MediaKind::File).as_deref(), Some("clip.mp4"));
        assert_eq!(name(MediaKind::Video), None);
    }

    fn upload(id: &str) -> Upload {
        let r = fixtures::record(id);
        Upload {
            id: r.id,
            bucket: r.bucket,
            kind: r.kind,
            facts: r.facts,
        }
    }

    /// `r` with a share at seq 0, as earlier versions recorded one before
    /// its message was stored.
    fn pending(r: &MediaRecord, chat: ChatId, by: UserId) -> MediaRecord {
        let mut r = r.clone();
        r.shares.push(Share {
            chat_id: chat,
            seq: 0,
            by,
        });
        r
    }

    fn written(c: Claim) -> (MediaRecord, Option<u64>, bool) {
        match c {
            Claim::Write {
                record,
                expected,
                duplicate,
            } => (record, expected, duplicate),
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn the_same_bytes_uploaded_twice_are_one_record_with_two_uploaders() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (first, expected, dup) = written(claim(None, upload("x"), a, 1));
        assert_eq!((expected, dup, first.version), (None, false, 1));
        let (second, expected, dup) = written(claim(Some(&first), upload("x"), b, 2));
        assert_eq!((expected, dup), (Some(1), true));
        assert_eq!(second.uploaders, vec![a, b]);
        assert_eq!(
            claim(Some(&second), upload("x"), a, 3),
            Claim::Unchanged(second.clone())
        );
        let deleting = with_state(&second, MediaState::Deleting);
        assert_eq!(claim(Some(&deleting), upload("x"), a, 4), Claim::Wait);
        // Re-uploaded after retention deleted it: live again, shares kept.
        let shared = with_share(&second, Uuid::new_v4(), 4, a, 3).unwrap();
        let deleted = with_state(
            &with_state(&shared, MediaState::Deleting),
            MediaState::Deleted,
        );
        let (revived, expected, dup) = written(claim(Some(&deleted), upload("x"), b, 9));
        assert_eq!((expected, dup), (Some(deleted.version), false));
        assert_eq!(
            (revived.state, revived.uploaders.clone()),
            (MediaState::Live, vec![b])
        );
        assert_eq!(revived.shares, shared.shares);
    }

    #[test]
    fn only_uploaders_and_members_of_a_sharing_chat_may_read() {
        let (owner, peer, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let chat = Uuid::new_v4();
        let (r, ..) = written(claim(None, upload("x"), owner, 1));
        assert!(may_read(&r, owner, &[]));
        assert!(!may_read(&r, peer, &[(chat, 0)]));
        assert!(
            may_read(&pending(&r, chat, owner), peer, &[(chat, 6)]),
            "a share left pending counts for every member"
        );
        // Shared by message 5: a member who joined at 6 never saw it.
        let r = with_share(&r, chat, 5, owner, 3).unwrap();
        assert!(may_read(&r, peer, &[(chat, 5)]));
        assert!(!may_read(&r, stranger, &[(chat, 6)]));
        assert!(!may_read(&r, stranger, &[(Uuid::new_v4(), 0)]));
    }

    #[test]
    fn shares_remember_the_latest_message_and_its_sender() {
        let (owner, bob, chat) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (fresh, ..) = written(claim(None, upload("x"), owner, 1));
        let r = with_share(&fresh, chat, 3, owner, 2).unwrap();
        assert_eq!(
            with_share(&r, chat, 3, owner, 2),
            None,
            "one message is recorded once"
        );
        let r = with_share(&r, chat, 7, bob, 3).unwrap();
        let latest = Share {
            chat_id: chat,
            seq: 7,
            by: bob,
        };
        assert_eq!(r.shares, vec![latest]);
        assert_eq!(
            with_share(&r, chat, 5, owner, 4),
            None,
            "an older seq changes nothing"
        );
        // A share left pending takes the seq of the next message.
        let r = with_share(&pending(&fresh, chat, owner), chat, 2, owner, 5).unwrap();
        assert_eq!((r.shares.len(), r.shares[0].seq), (1, 2));
    }

    fn member(user: UserId, delivered: Seq) -> Member {
        Member {
            delivered_seq: delivered,
            read_seq: 0,
            ..Member::new(user, Role::Member, 0)
        }
    }

    #[test]
    fn after_download_waits_for_the_last_recipient() {
        let (owner, bob, carol, chat) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let (r, ..) = written(claim(None, upload("x"), owner, 1));
        let r = with_share(&r, chat, 3, owner, 1).unwrap();
        // Carol never acked delivery; her download shows she has it.
        let members = BTreeMap::from([(
            chat,
            vec![member(owner, 3), member(bob, 3), member(carol, 0)],
        )]);
        let policy = Retention {
            expire_after_ms: None,
            after_download: true,
        };
        assert!(!due(&r, policy, &members, 10));
        let r = with_download(&r, bob).unwrap();
        assert!(!due(&r, policy, &members, 10), "carol has not downloaded");
        assert_eq!(with_download(&r, bob), None);
        assert_eq!(
            with_download(&r, owner),
            None,
            "the uploader does not count"
        );
        let r = with_download(&r, carol).unwrap();
        assert!(due(&r, policy, &members, 10));
        assert!(
            !due(&r, Retention::default(), &members, 10),
            "keep means keep"
        );
        // Dave joined after the message: he is not waited for.
        let dave = Member {
            joined_seq: 4,
            ..member(Uuid::new_v4(), 4)
        };
        let mut later = members.clone();
        later.get_mut(&chat).unwrap().push(dave);
        assert!(due(&r, policy, &later, 10));
    }

    #[test]
    fn expiry_never_deletes_what_a_recipient_has_not_received() {
        let (owner, bob, chat) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (r, ..) = written(claim(None, upload("x"), owner, 0));
        let policy = Retention {
            expire_after_ms: Some(100),
            after_download: false,
        };
        assert!(
            !due(&r, policy, &BTreeMap::new(), 100),
            "never shared: a send may be on its way"
        );
        assert!(
            due(&r, policy, &BTreeMap::new(), UNSENT_GRACE_MS),
            "never shared, expired"
        );
        assert!(
            !due(&pending(&r, chat, owner), policy, &BTreeMap::new(), 500),
            "a share left pending"
        );
        let r = with_share(&r, chat, 5, owner, 0).unwrap();
        let offline = BTreeMap::from([(chat, vec![member(owner, 5), member(bob, 4)])]);
        assert!(
            !due(&r, policy, &offline, 500),
            "bob has not received seq 5"
        );
        let back = BTreeMap::from([(chat, vec![member(owner, 5), member(bob, 5)])]);
        assert!(due(&r, policy, &back, 500));
        assert!(!due(
            &with_state(&r, MediaState::Deleting),
            policy,
            &back,
            500
        ));
    }
}
