//! The `Bus` contract as one suite, run against every implementation.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::{Bus, Envelope};

fn event(seq: u64) -> Envelope {
    Envelope {
        chat: Some(Uuid::nil()),
        seq,
        frame: Bytes::from(format!("{{\"seq\":{seq}}}")),
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
        b.events.try_recv().is_err(),
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
