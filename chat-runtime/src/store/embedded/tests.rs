//! The embedded store against the conformance suite, expiry and reopening.

use super::*;

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    crate::store::conformance::run(&store).await;
    crate::store::conformance::concurrent_appends(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn dedup_entries_expire_after_their_ttl() {
    use crate::model::{Content, Message, now_ms};
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let (chat, sender) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ttl = DEFAULT_DEDUP_TTL.as_millis() as i64;
    let message = |seq, id: &str, sent_at| Message {
        chat_id: chat,
        seq,
        sender,
        client_msg_id: id.into(),
        content: Content::Text { body: "hi".into() },
        sent_at,
    };
    let now = now_ms();
    store
        .append(&message(1, "old", now - ttl - 1_000), None)
        .await
        .unwrap();
    store.append(&message(2, "new", now), None).await.unwrap();
    // The writer expires on its own once a minute (and after its first
    // batch); run one pass here so the test does not wait for it.
    let before = now - ttl;
    store
        .write(move |tx, ks| expire_dedup(tx, ks, before, usize::MAX))
        .await
        .unwrap();
    assert_eq!(store.dedup(chat, sender, "old").await.unwrap(), None);
    assert_eq!(store.dedup(chat, sender, "new").await.unwrap(), Some(2));
    // The message itself stays: only the memory of its id expires.
    assert_eq!(store.head(chat).await.unwrap(), 2);
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let user = crate::store::conformance::user("+15550001");
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_user(&user).await.unwrap();
    }
    // Closed when the last handle dropped: it opens again at once.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.user(user.id).await.unwrap(), Some(user));
}

#[tokio::test]
async fn watermarks_write_the_marks_row_and_member_rows_from_before_it_keep_their_marks() {
    use crate::model::{Member, Role};
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let (chat, user) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    // A member row as written before watermarks had their own rows.
    let mut legacy = Member::new(user, Role::Member, 1);
    legacy.raise(5, 3);
    let key = Key::new().id(chat).id(user).done();
    let row = (key.clone(), encode(&legacy).unwrap());
    store
        .write(move |tx, ks| {
            tx.insert(&ks.members, row.0, row.1);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        store.member(chat, user).await.unwrap(),
        Some(legacy.clone())
    );

    let raised = store.advance_watermarks(chat, user, 7, 3).await.unwrap();
    assert_eq!(raised.map(|m| (m.delivered_seq, m.read_seq)), Some((7, 3)));
    // A lower receipt moves nothing.
    let kept = store.advance_watermarks(chat, user, 6, 2).await.unwrap();
    assert_eq!(kept.map(|m| (m.delivered_seq, m.read_seq)), Some((7, 3)));
    let members = store.members(chat).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.delivered_seq, m.read_seq))
            .collect::<Vec<_>>(),
        [(7, 3)]
    );
    // A send raising the sender's marks writes only the marks row too.
    let mut sender = legacy.clone();
    sender.raise(9, 9);
    let sent = crate::model::Message {
        chat_id: chat,
        seq: 9,
        sender: user,
        client_msg_id: "m9".into(),
        content: crate::model::Content::Text { body: "hi".into() },
        sent_at: 1,
    };
    store
        .append(&sent, Some(MemberChange::Put(sender.clone())))
        .await
        .unwrap();
    assert_eq!(store.member(chat, user).await.unwrap(), Some(sender));
    // The member row itself is untouched: receipts and sends pile no
    // versions on it.
    let stored: Option<Member> = store.read(|r, ks| get_json(r, &ks.members, &key)).unwrap();
    assert_eq!(stored, Some(legacy));
}
