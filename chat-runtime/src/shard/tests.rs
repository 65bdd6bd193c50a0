//! The shard driven directly on the embedded store: what it keeps in memory
//! and the media shares it records.

use std::sync::Arc;

use uuid::Uuid;

use super::{Command, LocalShardClient, Reply, SendItem, Shard};
use crate::bus::local::LocalBus;
use crate::metrics::Metrics;
use crate::model::Content;
use crate::protocol::ErrorCode;
use crate::store::Store;
use crate::store::conformance::user;
use crate::store::embedded::EmbeddedStore;

async fn shard(dir: &std::path::Path) -> (Shard, Arc<EmbeddedStore>) {
    let store = Arc::new(EmbeddedStore::open(dir).unwrap());
    let shard = Shard::new(
        store.clone(),
        Arc::new(LocalBus::new()),
        Arc::new(Metrics::new()),
    );
    (shard, store)
}

fn send(user: Uuid, chat: Uuid, id: &str) -> Command {
    Command::Send {
        user,
        items: vec![SendItem {
            chat,
            client_msg_id: id.into(),
            content: Content::Text { body: "hi".into() },
        }],
        origin: None,
    }
}

#[tokio::test]
async fn commands_for_chats_that_do_not_exist_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = shard(dir.path()).await;
    let alice = user("+15550000001");
    store.create_user(&alice).await.unwrap();
    for _ in 0..1_000 {
        let chat = Uuid::new_v4();
        let watermark = Command::Watermark {
            user: alice.id,
            chat,
            delivered: 1,
            read: 1,
        };
        let e = shard.handle(watermark).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let Reply::Sent(answers) = shard.handle(send(alice.id, chat, "x")).await.unwrap() else {
            panic!("answers to sends");
        };
        assert_eq!(answers[0].as_ref().unwrap_err().code, ErrorCode::NotFound);
    }
    assert!(shard.cached().is_empty(), "{} kept", shard.cached().len());
}

#[tokio::test]
async fn the_chat_cache_is_bounded_and_a_dropped_chat_reloads_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = shard(dir.path()).await;
    let shard = shard.with_capacity(10);
    let alice = user("+15550000002");
    store.create_user(&alice).await.unwrap();
    let mut chats = Vec::new();
    for i in 0..30 {
        let create = Command::CreateGroup {
            user: alice.id,
            title: format!("g{i}"),
            members: vec![],
        };
        let Reply::Chat(chat) = shard.handle(create).await.unwrap() else {
            panic!("a chat");
        };
        chats.push(chat);
        assert!(shard.cached().len() <= 10, "{}", shard.cached().len());
    }
    // The most recently used chats stay; the first ones were dropped.
    assert!(shard.cached().contains(&chats[29]));
    assert!(!shard.cached().contains(&chats[0]));
    // A dropped chat comes back from the store where it left off.
    let sent = |reply| match reply {
        Ok(Reply::Sent(answers)) => answers[0].clone().unwrap(),
        other => panic!("sent, not {other:?}"),
    };
    let first = sent(shard.handle(send(alice.id, chats[0], "m1")).await);
    assert_eq!((first.seq, first.duplicate), (2, false), "after `created`");
    let retry = sent(shard.handle(send(alice.id, chats[0], "m1")).await);
    assert_eq!(
        (retry.seq, retry.duplicate),
        (2, true),
        "a retry is still recognised"
    );
}

#[tokio::test]
async fn the_in_process_client_passes_the_shard_client_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = shard(dir.path()).await;
    let client = LocalShardClient(Arc::new(shard));
    super::conformance::run(&client, store.as_ref()).await;
}

#[tokio::test]
async fn a_media_send_records_its_share_once_with_its_seq() {
    use crate::media::fixtures;
    use crate::model::{Attachment, MediaKind, Share};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let shard = Shard::new(store.clone(), Arc::new(LocalBus::new()), metrics.clone());
    let alice = user("+15550000003");
    store.create_user(&alice).await.unwrap();
    let create = Command::CreateGroup {
        user: alice.id,
        title: "photos".into(),
        members: vec![],
    };
    let Reply::Chat(chat) = shard.handle(create).await.unwrap() else {
        panic!("a chat");
    };
    let media = fixtures::record(&"ab".repeat(32));
    store.swap_media(&media, None).await.unwrap();
    let item = |id: &str, attachment| SendItem {
        chat,
        client_msg_id: id.into(),
        content: Content::media(MediaKind::Video, attachment),
    };
    let clip = |id: &str| item(id, fixtures::attachment());
    let answer = |items| async {
        let command = Command::Send {
            user: alice.id,
            items,
            origin: None,
        };
        match shard.handle(command).await {
            Ok(Reply::Sent(answers)) => answers,
            other => panic!("sent, not {other:?}"),
        }
    };
    let send = |items| async {
        let answers: Vec<_> = answer(items).await;
        answers.into_iter().map(Result::unwrap).collect()
    };

    // Two messages of one batch carry it: one write, with the later seq.
    let sent: Vec<_> = send(vec![clip("c1"), clip("c2")]).await;
    let recorded = store.media(&media.id).await.unwrap().unwrap();
    let share = Share {
        chat_id: chat,
        seq: sent[1].seq,
        by: alice.id,
    };
    assert_eq!(recorded.shares, vec![share]);
    assert_eq!(recorded.version, media.version + 1, "one write");

    // A retry is answered from the store and records nothing again.
    let retry: Vec<_> = send(vec![clip("c2")]).await;
    assert_eq!((retry[0].seq, retry[0].duplicate), (sent[1].seq, true));
    let after = store.media(&media.id).await.unwrap().unwrap();
    assert_eq!(after.version, recorded.version);

    // A share that cannot be recorded (here: no record yet) leaves the
    // message stored, answered `unavailable` and counted; the retry, once
    // it can, records it and is answered with the stored seq.
    let late = fixtures::record(&"cd".repeat(32));
    let missing = Attachment {
        media_id: late.id.clone(),
        ..fixtures::attachment()
    };
    let refused = answer(vec![item("c3", missing.clone())]).await;
    let code = refused[0].as_ref().map(|_| ()).unwrap_err().code;
    assert_eq!(code, ErrorCode::Unavailable);
    let head = store.head(chat).await.unwrap();
    assert_eq!(metrics.media_share_failures.get(), 1);
    store.swap_media(&late, None).await.unwrap();
    let retry: Vec<_> = send(vec![item("c3", missing)]).await;
    assert_eq!((retry[0].seq, retry[0].duplicate), (head, true));
    let shared = store.media(&late.id).await.unwrap().unwrap().shares;
    assert_eq!(shared.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![head]);
}

#[tokio::test]
async fn a_write_the_claim_refuses_stores_nothing_and_asks_for_a_retry() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = shard(dir.path()).await;
    let allowed = Arc::new(AtomicBool::new(true));
    let shard = shard.with_claim({
        let allowed = allowed.clone();
        Arc::new(move |_| match allowed.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err("the chat is moving".into()),
        })
    });
    let alice = user("+15550000009");
    store.create_user(&alice).await.unwrap();
    let create = Command::CreateGroup {
        user: alice.id,
        title: "g".into(),
        members: vec![],
    };
    let Reply::Chat(chat) = shard.handle(create).await.unwrap() else {
        panic!("a chat");
    };
    let head = store.head(chat).await.unwrap();
    allowed.store(false, Ordering::SeqCst);
    let Reply::Sent(answers) = shard.handle(send(alice.id, chat, "m1")).await.unwrap() else {
        panic!("answers to sends");
    };
    let e = answers[0].as_ref().unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("the chat is moving"), "{}", e.message);
    assert_eq!(store.head(chat).await.unwrap(), head, "nothing written");
    allowed.store(true, Ordering::SeqCst);
    let Reply::Sent(answers) = shard.handle(send(alice.id, chat, "m1")).await.unwrap() else {
        panic!("answers to sends");
    };
    assert_eq!(
        answers[0].as_ref().unwrap().seq,
        head + 1,
        "the retry writes it"
    );
}
