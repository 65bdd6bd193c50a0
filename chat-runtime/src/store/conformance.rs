//! The `Store` contract as one suite, run against every implementation
//! (embedded here; ScyllaDB against a real CQL server in the e2e suite).

use uuid::Uuid;

use super::{MemberChange, Store, StoreError, Taken};
use crate::model::{
    Chat, ChatKind, Content, Member, Message, Role, SystemEvent, User, UserId, now_ms,
};

/// A fresh user with a unique id and the given phone number.
pub fn user(phone: &str) -> User {
    User {
        id: Uuid::new_v4(),
        phone: phone.to_owned(),
        display_name: format!("user {phone}"),
        password_hash: "$argon2id$test".into(),
        created_at: now_ms(),
    }
}

fn text(chat: &Chat, seq: u64, sender: UserId, id: &str) -> Message {
    Message {
        chat_id: chat.id,
        seq,
        sender,
        client_msg_id: id.to_owned(),
        content: Content::Text {
            body: format!("m{seq}"),
        },
        sent_at: now_ms(),
    }
}

fn system(chat: &Chat, seq: u64, event: SystemEvent, user_id: UserId) -> Message {
    Message {
        chat_id: chat.id,
        seq,
        sender: user_id,
        client_msg_id: String::new(),
        content: Content::system(event, user_id),
        sent_at: now_ms(),
    }
}

/// Runs every contract check against `store`. Uses fresh random ids, so it
/// may run against a store that already holds data.
pub async fn run(store: &dyn Store) {
    users(store).await;
    direct_chats(store).await;
    groups_and_messages(store).await;
    group_access(store).await;
    watermarks(store).await;
    presence_and_tokens(store).await;
    media(store).await;
    devices(store).await;
}

/// Devices are kept per user, replaced by id, listed by id, and forgotten.
async fn devices(store: &dyn Store) {
    use crate::model::{Device, Platform};
    let (user, neighbour) = (Uuid::new_v4(), Uuid::new_v4());
    let device = |id: &str, platform, token: &str| Device {
        device_id: id.into(),
        platform,
        token: token.into(),
    };
    assert_eq!(store.devices(user).await.unwrap(), vec![]);
    let phone = device("phone", Platform::Fcm, "fcm-token-1");
    let tablet = device("tablet", Platform::Apns, "a0b1c2");
    store.put_device(user, &tablet).await.unwrap();
    store.put_device(user, &phone).await.unwrap();
    let other = device("phone", Platform::Webhook, "https://push.example/u/1");
    store.put_device(neighbour, &other).await.unwrap();
    assert_eq!(
        store.devices(user).await.unwrap(),
        vec![phone.clone(), tablet.clone()]
    );
    let renewed = device("phone", Platform::Fcm, "fcm-token-2");
    store.put_device(user, &renewed).await.unwrap();
    assert_eq!(
        store.devices(user).await.unwrap(),
        vec![renewed, tablet.clone()]
    );
    store.remove_device(user, "phone").await.unwrap();
    store.remove_device(user, "never-registered").await.unwrap();
    assert_eq!(store.devices(user).await.unwrap(), vec![tablet]);
    assert_eq!(store.devices(neighbour).await.unwrap(), vec![other]);
}

async fn users(store: &dyn Store) {
    let phone = format!("+1{}", Uuid::new_v4().as_u128() % 10_000_000_000);
    let a = user(&phone);
    store.create_user(&a).await.unwrap();
    assert_eq!(store.user(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.user_by_phone(&phone).await.unwrap(), Some(a.clone()));
    let clash = user(&phone);
    assert!(matches!(
        store.create_user(&clash).await,
        Err(StoreError::Conflict(Taken::Phone))
    ));
    assert_eq!(store.user(clash.id).await.unwrap(), None);
    assert_eq!(store.user_by_phone("+0").await.unwrap(), None);
}

async fn direct_chats(store: &dyn Store) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = Chat {
        id: Uuid::new_v4(),
        kind: ChatKind::Direct,
        title: String::new(),
        created_by: a,
        created_at: now_ms(),
    };
    let members = [
        Member::new(a, Role::Member, 1),
        Member::new(b, Role::Member, 1),
    ];
    assert_eq!(store.direct_chat(a, b).await.unwrap(), None);
    let (id, created) = store.create_direct(&chat, members.clone()).await.unwrap();
    assert_eq!((id, created), (chat.id, true));
    let other = Chat {
        id: Uuid::new_v4(),
        ..chat.clone()
    };
    let (again, created) = store.create_direct(&other, members).await.unwrap();
    assert_eq!(
        (again, created),
        (chat.id, false),
        "one direct chat per pair"
    );
    assert_eq!(store.direct_chat(b, a).await.unwrap(), Some(chat.id));
    assert_eq!(store.chat(other.id).await.unwrap(), None);
    assert_eq!(store.members(chat.id).await.unwrap().len(), 2);
    let member = store.member(chat.id, b).await.unwrap();
    assert_eq!(member.map(|m| m.user_id), Some(b));
    let stranger = Uuid::new_v4();
    assert_eq!(store.member(chat.id, stranger).await.unwrap(), None);
    assert_eq!(store.member(Uuid::new_v4(), b).await.unwrap(), None);
    assert_eq!(store.user_chats(b).await.unwrap(), vec![chat.id]);
}

async fn groups_and_messages(store: &dyn Store) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = Chat {
        id: Uuid::new_v4(),
        kind: ChatKind::Group,
        title: "g".into(),
        created_by: a,
        created_at: now_ms(),
    };
    let first = system(&chat, 1, SystemEvent::Created, a);
    store
        .create_chat(&chat, &[Member::new(a, Role::Admin, 1)], &first)
        .await
        .unwrap();
    assert_eq!(store.chat(chat.id).await.unwrap(), Some(chat.clone()));
    assert_eq!(store.head(chat.id).await.unwrap(), 1);

    let added = system(&chat, 2, SystemEvent::Added, b);
    let change = MemberChange::Put(Member::new(b, Role::Member, 2));
    store.append(&added, Some(change)).await.unwrap();
    assert_eq!(store.members(chat.id).await.unwrap().len(), 2);
    assert_eq!(store.user_chats(b).await.unwrap(), vec![chat.id]);

    for seq in 3..=12 {
        store
            .append(&text(&chat, seq, b, &format!("c{seq}")), None)
            .await
            .unwrap();
    }
    assert!(matches!(
        store.append(&text(&chat, 5, b, "again"), None).await,
        Err(StoreError::Conflict(Taken::Seq))
    ));
    assert_eq!(store.dedup(chat.id, b, "c7").await.unwrap(), Some(7));
    assert_eq!(store.dedup(chat.id, a, "c7").await.unwrap(), None);
    assert_eq!(store.dedup(chat.id, b, "again").await.unwrap(), None);
    assert_eq!(store.head(chat.id).await.unwrap(), 12);

    let page = store.messages_before(chat.id, None, 5).await.unwrap();
    let seqs: Vec<_> = page.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![12, 11, 10, 9, 8]);
    let page = store.messages_before(chat.id, Some(8), 100).await.unwrap();
    assert_eq!(page.len(), 7);
    assert_eq!(page.last().unwrap().content, first.content);
    let after: Vec<_> = store
        .messages_after(chat.id, 10, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(after, vec![11, 12]);

    // Consecutive messages in one call; a batch whose first seq is taken
    // writes nothing.
    let batch: Vec<Message> = (13..=15)
        .map(|seq| text(&chat, seq, b, &format!("c{seq}")))
        .collect();
    store.append_all(&batch, None).await.unwrap();
    assert_eq!(store.head(chat.id).await.unwrap(), 15);
    assert_eq!(store.dedup(chat.id, b, "c14").await.unwrap(), Some(14));
    let clash: Vec<Message> = (15..=16)
        .map(|seq| text(&chat, seq, b, &format!("x{seq}")))
        .collect();
    assert!(matches!(
        store.append_all(&clash, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.head(chat.id).await.unwrap(), 15);
    assert_eq!(store.dedup(chat.id, b, "x16").await.unwrap(), None);

    let left = system(&chat, 16, SystemEvent::Left, b);
    store
        .append(&left, Some(MemberChange::Remove(b)))
        .await
        .unwrap();
    assert_eq!(store.members(chat.id).await.unwrap().len(), 1);
    assert!(store.user_chats(b).await.unwrap().is_empty());
}

/// Bans and invite codes are per chat; a member keeps the seq they joined
/// at, and a role change (promotion) is a put of the same member.
async fn group_access(store: &dyn Store) {
    let (chat, other, a, b) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    assert!(!store.is_banned(chat, b).await.unwrap());
    store.set_banned(chat, b, true).await.unwrap();
    assert!(store.is_banned(chat, b).await.unwrap());
    assert!(!store.is_banned(chat, a).await.unwrap());
    assert!(!store.is_banned(other, b).await.unwrap());
    store.set_banned(chat, b, false).await.unwrap();
    assert!(!store.is_banned(chat, b).await.unwrap());

    assert_eq!(store.invite(chat).await.unwrap(), None);
    store.set_invite(chat, "first-code").await.unwrap();
    store.set_invite(chat, "second-code").await.unwrap();
    assert_eq!(
        store.invite(chat).await.unwrap().as_deref(),
        Some("second-code")
    );
    assert_eq!(store.invite(other).await.unwrap(), None);

    let group = Chat {
        id: chat,
        kind: ChatKind::Group,
        title: "g".into(),
        created_by: a,
        created_at: now_ms(),
    };
    let creator = Member {
        joined_seq: 1,
        ..Member::new(a, Role::Admin, 1)
    };
    let first = system(&group, 1, SystemEvent::Created, a);
    store.create_chat(&group, &[creator], &first).await.unwrap();
    let joiner = Member {
        joined_seq: 2,
        ..Member::new(b, Role::Member, 2)
    };
    let joined = system(&group, 2, SystemEvent::Joined, b);
    store
        .append(&joined, Some(MemberChange::Put(joiner.clone())))
        .await
        .unwrap();
    let left = system(&group, 3, SystemEvent::Left, a);
    store
        .append(&left, Some(MemberChange::Remove(a)))
        .await
        .unwrap();
    let admin = Member {
        role: Role::Admin,
        ..joiner
    };
    let promoted = system(&group, 4, SystemEvent::Promoted, b);
    store
        .append(&promoted, Some(MemberChange::Put(admin.clone())))
        .await
        .unwrap();
    assert_eq!(store.members(chat).await.unwrap(), vec![admin]);
    let last = store.messages_before(chat, None, 1).await.unwrap();
    assert_eq!(last[0].content, promoted.content);
}

async fn watermarks(store: &dyn Store) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = Chat {
        id: Uuid::new_v4(),
        kind: ChatKind::Direct,
        title: String::new(),
        created_by: a,
        created_at: now_ms(),
    };
    let members = [
        Member::new(a, Role::Member, 1),
        Member::new(b, Role::Member, 1),
    ];
    store.create_direct(&chat, members).await.unwrap();
    let m = store.advance_watermarks(chat.id, b, 5, 0).await.unwrap();
    assert_eq!(m.map(|m| (m.delivered_seq, m.read_seq)), Some((5, 0)));
    let m = store.advance_watermarks(chat.id, b, 3, 2).await.unwrap();
    assert_eq!(
        m.map(|m| (m.delivered_seq, m.read_seq)),
        Some((5, 2)),
        "never lowered"
    );
    let m = store.advance_watermarks(chat.id, b, 0, 7).await.unwrap();
    assert_eq!(
        m.map(|m| (m.delivered_seq, m.read_seq)),
        Some((7, 7)),
        "read implies delivered"
    );
    let stranger = Uuid::new_v4();
    assert_eq!(
        store
            .advance_watermarks(chat.id, stranger, 1, 1)
            .await
            .unwrap(),
        None
    );
}

async fn presence_and_tokens(store: &dyn Store) {
    let u = Uuid::new_v4();
    assert_eq!(store.last_seen(u).await.unwrap(), None);
    store.set_last_seen(u, 42).await.unwrap();
    store.set_last_seen(u, 43).await.unwrap();
    assert_eq!(store.last_seen(u).await.unwrap(), Some(43));
    let jti = Uuid::new_v4().to_string();
    assert!(!store.is_revoked(&jti).await.unwrap());
    store
        .revoke_token(&jti, now_ms() / 1000 + 1000)
        .await
        .unwrap();
    assert!(store.is_revoked(&jti).await.unwrap());
}

/// Many concurrent appends to many chats: all durable, none lost (group commit).
async fn media(store: &dyn Store) {
    let mut record = crate::media::fixtures::record(&format!("{:064x}", Uuid::new_v4().as_u128()));
    assert_eq!(store.media(&record.id).await.unwrap(), None);
    assert!(store.swap_media(&record, None).await.unwrap());
    // A second create loses: the record exists.
    assert!(!store.swap_media(&record, None).await.unwrap());
    assert_eq!(store.media(&record.id).await.unwrap(), Some(record.clone()));

    let stale = record.version;
    record.version += 1;
    record.downloads.push(Uuid::new_v4());
    assert!(store.swap_media(&record, Some(stale)).await.unwrap());
    // A writer that read the old version cannot overwrite the new one.
    let mut lost = record.clone();
    lost.version = stale + 1;
    lost.downloads.clear();
    assert!(!store.swap_media(&lost, Some(stale)).await.unwrap());
    assert_eq!(store.media(&record.id).await.unwrap(), Some(record.clone()));

    // The sweeper's scan visits every record once, page by page.
    let mut ids = vec![record.id.clone()];
    for _ in 0..4 {
        let r = crate::media::fixtures::record(&format!("{:064x}", Uuid::new_v4().as_u128()));
        assert!(store.swap_media(&r, None).await.unwrap());
        ids.push(r.id);
    }
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = store.media_page(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record was visited twice");
    for id in &ids {
        assert!(seen.contains(id), "the scan missed {id}");
    }
}

pub async fn concurrent_appends(store: std::sync::Arc<dyn Store>) {
    let sender = Uuid::new_v4();
    let chats: Vec<Chat> = (0..8)
        .map(|_| Chat {
            id: Uuid::new_v4(),
            kind: ChatKind::Group,
            title: String::new(),
            created_by: sender,
            created_at: now_ms(),
        })
        .collect();
    let mut tasks = Vec::new();
    for chat in chats.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 1..=50 {
                store
                    .append(&text(&chat, seq, sender, &format!("{seq}")), None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for chat in chats {
        assert_eq!(store.head(chat.id).await.unwrap(), 50);
        assert_eq!(
            store.messages_after(chat.id, 0, 1000).await.unwrap().len(),
            50
        );
    }
}
