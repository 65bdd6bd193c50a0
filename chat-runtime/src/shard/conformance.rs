//! The `ShardClient` contract, one suite for every client: the in-process
//! one (standalone) and the NATS one (clusters) must answer each typed
//! method the same way — seqs, dedup, per-item refusals in a batch,
//! membership rules and their error codes.
//!
//! The suite creates its users in `store`, the store behind the shard the
//! client reaches; every run uses fresh users, so one store serves many runs.

use uuid::Uuid;

use super::{SendItem, ShardClient};
use crate::model::{Content, UserId};
use crate::protocol::ErrorCode;
use crate::store::Store;
use crate::store::conformance::user;

fn text(chat: Uuid, id: &str) -> SendItem {
    SendItem {
        chat,
        client_msg_id: id.into(),
        content: Content::Text { body: id.into() },
    }
}

async fn users(store: &dyn Store, n: usize) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let u = user(&format!("+1555{:07}", rand::random_range(0..10_000_000)));
        store.create_user(&u).await.expect("a user");
        ids.push(u.id);
    }
    ids
}

fn code<T: std::fmt::Debug>(r: Result<T, crate::error::ApiError>) -> ErrorCode {
    r.expect_err("a refusal").code
}

/// Runs the whole contract against `client`.
pub async fn run(client: &dyn ShardClient, store: &dyn Store) {
    direct_chats_and_sends(client, store).await;
    groups_and_membership(client, store).await;
}

async fn direct_chats_and_sends(client: &dyn ShardClient, store: &dyn Store) {
    let [ann, bob, eve] = users(store, 3).await[..] else {
        unreachable!()
    };
    let (chat, created) = client.open_direct(ann, bob).await.unwrap();
    assert!(created, "the first open creates the chat");
    assert_eq!(
        client.open_direct(bob, ann).await.unwrap(),
        (chat, false),
        "one chat per pair, found"
    );
    assert_eq!(
        code(client.open_direct(ann, Uuid::new_v4()).await),
        ErrorCode::NotFound
    );

    // One batch: answers in order, each item on its own merits.
    let nowhere = Uuid::new_v4();
    let items = vec![
        text(chat, "m1"),
        text(nowhere, "lost"),
        text(chat, "m2"),
        text(chat, "m1"),
    ];
    let answers = client.send(ann, items, None).await;
    assert_eq!(answers.len(), 4);
    let first = answers[0].clone().unwrap();
    assert!(!first.duplicate);
    assert_eq!(answers[1].clone().unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(answers[2].clone().unwrap().seq, first.seq + 1, "gapless");
    let again = answers[3].clone().unwrap();
    assert!(
        again.duplicate,
        "a resent client_msg_id is answered, not stored"
    );
    assert_eq!(again.seq, first.seq);
    // A retry of the whole batch stores nothing new.
    let retried = client.send(ann, vec![text(chat, "m2")], None).await;
    assert_eq!(retried[0].clone().unwrap().seq, first.seq + 1);
    assert!(client.send(ann, Vec::new(), None).await.is_empty());

    let stranger = client.send(eve, vec![text(chat, "x")], None).await;
    assert_eq!(stranger[0].clone().unwrap_err().code, ErrorCode::NotMember);
    client
        .watermark(bob, chat, first.seq + 1, first.seq)
        .await
        .unwrap();
    assert_eq!(
        code(client.watermark(eve, chat, 1, 1).await),
        ErrorCode::NotMember
    );
    client.typing(bob, chat).await.unwrap();
    assert_eq!(code(client.typing(eve, chat).await), ErrorCode::NotMember);
}

async fn groups_and_membership(client: &dyn ShardClient, store: &dyn Store) {
    let [admin, bob, cat, dan] = users(store, 4).await[..] else {
        unreachable!()
    };
    let group = client
        .create_group(admin, "Team".into(), vec![bob])
        .await
        .unwrap();
    let unknown = vec![Uuid::new_v4()];
    assert_eq!(
        code(client.create_group(admin, "Ghosts".into(), unknown).await),
        ErrorCode::NotFound
    );
    let crowd = (0..100).map(|_| Uuid::new_v4()).collect();
    assert_eq!(
        code(client.create_group(admin, "Crowd".into(), crowd).await),
        ErrorCode::GroupFull,
        "101 members with the creator"
    );

    // Invites: stable until reset, for admins only.
    let code1 = client.invite(admin, group, false).await.unwrap();
    assert_eq!(client.invite(admin, group, false).await.unwrap(), code1);
    assert_eq!(
        code(client.invite(bob, group, false).await),
        ErrorCode::Forbidden
    );
    let code2 = client.invite(admin, group, true).await.unwrap();
    assert_ne!(code2, code1, "a reset replaces the code");
    assert_eq!(
        code(client.join(cat, group, code1).await),
        ErrorCode::Forbidden
    );
    assert_eq!(client.join(cat, group, code2.clone()).await.unwrap(), group);
    assert_eq!(
        client.join(cat, group, code2).await.unwrap(),
        group,
        "joining twice is a no-op"
    );

    // Admins add and remove; members do not.
    assert_eq!(
        code(client.add_member(bob, group, dan).await),
        ErrorCode::Forbidden
    );
    assert_eq!(client.add_member(admin, group, dan).await.unwrap(), group);
    assert_eq!(
        code(client.remove_member(bob, group, dan).await),
        ErrorCode::Forbidden
    );
    client.remove_member(admin, group, dan).await.unwrap();
    let removed = client.send(dan, vec![text(group, "after")], None).await;
    assert_eq!(removed[0].clone().unwrap_err().code, ErrorCode::NotMember);
    let current = client.invite(admin, group, false).await.unwrap();
    assert_eq!(
        code(client.join(dan, group, current).await),
        ErrorCode::Banned,
        "removed by an admin: the code does not let them back"
    );

    client.leave(cat, group).await.unwrap();
    let left = client.send(cat, vec![text(group, "after")], None).await;
    assert_eq!(left[0].clone().unwrap_err().code, ErrorCode::NotMember);
    let sent = client
        .send(bob, vec![text(group, "still here")], None)
        .await;
    assert!(sent[0].is_ok(), "{sent:?}");
}
