//! The `Bus` contract as one suite, run against every implementation.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::queue::PushQueue;
use super::sessions::Sessions;
use super::{Bus, Envelope};
use crate::push::PushJob;

fn event(seq: u64) -> Envelope {
    Envelope {
        chat: Some(Uuid::nil()),
        seq,
        frame: Bytes::from(format!("{{\"seq\":{seq}}}")),
        origin: Some(seq),
    }
}

async fn next(sub: &mut super::Subscription) -> Option<Envelope> {
    tokio::time::timeout(Duration::from_secs(5), sub.events.recv())
        .await
        .expect("bus event within 5 s")
}

/// Runs every contract check against `bus`.
pub async fn run(bus: &dyn Bus) {
    // Every subscriber of a user gets every event, in publish order.
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut a1 = bus.subscribe(alice, 64).await.unwrap();
    let mut a2 = bus.subscribe(alice, 64).await.unwrap();
    let mut b = bus.subscribe(bob, 64).await.unwrap();
    for seq in 1..=10 {
        bus.publish(alice, event(seq)).await.unwrap();
    }
    for sub in [&mut a1, &mut a2] {
        for seq in 1..=10 {
            assert_eq!(next(sub).await, Some(event(seq)));
        }
    }
    // Fan-out reaches each listed user once; others get nothing.
    bus.publish_many(&[alice, bob], event(11)).await.unwrap();
    assert_eq!(next(&mut a1).await, Some(event(11)));
    assert_eq!(next(&mut b).await, Some(event(11)));
    bus.publish(alice, event(12)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        b.events.try_recv().is_none(),
        "bob must not get alice's events"
    );

    // Publishing to a user with no subscriber is not an error.
    bus.publish(Uuid::new_v4(), event(1)).await.unwrap();

    // Dropping a subscription unsubscribes; the other one keeps receiving.
    drop(a2);
    bus.publish(alice, event(13)).await.unwrap();
    assert_eq!(next(&mut a1).await, Some(event(12)));
    assert_eq!(next(&mut a1).await, Some(event(13)));

    // A subscriber whose queue overflows is cut off: its stream ends.
    let carol = Uuid::new_v4();
    let mut slow = bus.subscribe(carol, 4).await.unwrap();
    for seq in 1..=64 {
        bus.publish(carol, event(seq)).await.unwrap();
    }
    let mut got = 0;
    while let Some(e) = next(&mut slow).await {
        got += 1;
        assert_eq!(e.seq, got, "events before the cut arrive in order");
    }
    assert!(got < 64, "slow subscriber must be cut off, got all {got}");
}

fn job(seq: u64) -> PushJob {
    PushJob {
        user: Uuid::new_v4(),
        chat: Uuid::new_v4(),
        seq,
        sender: Uuid::new_v4(),
        preview: format!("message {seq}"),
        sent_at: 1,
        device: None,
    }
}

async fn take(queue: &dyn PushQueue) -> super::queue::Delivery {
    tokio::time::timeout(Duration::from_secs(10), queue.next())
        .await
        .expect("a push job within 10 s")
        .expect("the queue answers")
}

/// The push queue's contract, on an empty queue: jobs come out in order,
/// once each; a job handed back comes again after its delay with the next
/// attempt number; an acknowledged job never comes again; dead letters are
/// listed with their reasons.
pub async fn push_queue(queue: &dyn PushQueue) {
    let (first, second) = (job(1), job(2));
    queue.enqueue(&first).await.unwrap();
    queue.enqueue(&second).await.unwrap();
    let d = take(queue).await;
    assert_eq!((&d.job, d.attempt), (&first, 1));
    d.ack().await.unwrap();
    let d = take(queue).await;
    assert_eq!((&d.job, d.attempt), (&second, 1));
    let handed_back = std::time::Instant::now();
    d.retry(Duration::from_millis(300)).await.unwrap();
    let d = take(queue).await;
    assert_eq!((&d.job, d.attempt), (&second, 2));
    assert!(
        handed_back.elapsed() >= Duration::from_millis(250),
        "a retried job waits out its delay"
    );
    d.ack().await.unwrap();
    let again = tokio::time::timeout(Duration::from_millis(700), queue.next()).await;
    assert!(again.is_err(), "acknowledged jobs never come again");

    let lost = job(3);
    queue
        .dead_letter(&lost, "410 from the push service")
        .await
        .unwrap();
    let dead = queue.dead_letters().await.unwrap();
    let last = dead.last().expect("the dead letter is listed");
    assert_eq!(
        (&last.job, last.reason.as_str()),
        (&lost, "410 from the push service")
    );
}

/// The session directory's contract on one node: online while any of the
/// user's sessions is open, and only that user.
pub async fn sessions(directory: &dyn Sessions) {
    let (u, v) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(!directory.online(u));
    directory.opened(u).await;
    directory.opened(u).await;
    directory.closed(u).await;
    assert!(directory.online(u), "one session is still open");
    assert!(!directory.online(v));
    directory.closed(u).await;
    assert!(!directory.online(u));
    directory.closed(u).await; // an extra close is harmless
    assert!(!directory.online(u));
}
