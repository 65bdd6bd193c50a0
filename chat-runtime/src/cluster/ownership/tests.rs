//! Ownership rules, one transition at a time. The interleavings (lost,
//! duplicated and reordered control messages, pauses, crashes) are the model
//! checker's job (`tests/handoff_model`).

use confab_api::ring::sample_chats;

use super::*;

const S0: ShardId = ShardId(0);
const S1: ShardId = ShardId(1);

fn ring(epoch: u64, shards: &[u32]) -> Ring {
    let shards: Vec<ShardId> = shards.iter().copied().map(ShardId).collect();
    Ring::new(epoch, &shards, 8).expect("valid ring")
}

/// A chat that `{0, 1}` places on `owner`.
fn chat_of_pair(owner: ShardId) -> ChatId {
    let pair = ring(1, &[0, 1]);
    sample_chats(1000)
        .find(|&c| pair.owner(c) == owner)
        .expect("some chat lands on each shard")
}

/// Shard 0 alone at epoch 1, holding a lease until t=100 (term 7).
fn solo() -> Ownership {
    let mut own = Ownership::new(S0, ring(1, &[0]));
    own.lease_acquired(Millis(100), 7);
    own
}

const FENCE_1: Fence = Fence {
    epoch: 1,
    lease_term: 7,
};

#[test]
fn owner_with_a_lease_sequences_under_epoch_and_term() {
    let own = solo();
    let chat = chat_of_pair(S1);
    assert_eq!(own.may_sequence(chat, Millis(0)), Ok(FENCE_1));
    assert_eq!(own.may_sequence(chat, Millis(99)), Ok(FENCE_1));
}

#[test]
fn other_shards_chats_name_their_owner() {
    let own = Ownership::new(S1, ring(4, &[0, 1]));
    let chat = chat_of_pair(S0);
    assert_eq!(
        own.may_sequence(chat, Millis(0)),
        Err(NotOwner::WrongShard {
            owner: S0,
            epoch: 4
        })
    );
}

#[test]
fn no_lease_or_an_expired_one_stops_sequencing() {
    let chat = chat_of_pair(S0);
    let fresh = Ownership::new(S0, ring(1, &[0]));
    assert_eq!(fresh.may_sequence(chat, Millis(0)), Err(NotOwner::NoLease));
    let own = solo();
    let expired = Err(NotOwner::LeaseExpired {
        expiry: Millis(100),
    });
    assert_eq!(own.may_sequence(chat, Millis(100)), expired);
    assert_eq!(own.may_sequence(chat, Millis(5000)), expired);
}

#[test]
fn draining_stops_everything() {
    let mut own = solo();
    own.drain();
    let chat = chat_of_pair(S0);
    assert_eq!(own.may_sequence(chat, Millis(0)), Err(NotOwner::Draining));
    assert!(own.status(Millis(0)).draining);
}

#[test]
fn prepare_stops_only_the_chats_that_move_away() {
    let mut own = solo();
    let (moving, staying) = (chat_of_pair(S1), chat_of_pair(S0));
    let handoff = own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    assert!(handoff.releases(moving) && !handoff.releases(staying));
    assert_eq!(handoff.released([moving, staying]), vec![moving]);
    assert!(handoff.acquired([moving, staying]).is_empty());
    assert_eq!(
        own.may_sequence(moving, Millis(0)),
        Err(NotOwner::Moving { to: S1, epoch: 2 })
    );
    // Chats that stay keep their epoch-1 fence until the commit.
    assert_eq!(own.may_sequence(staying, Millis(0)), Ok(FENCE_1));
}

#[test]
fn prepare_is_idempotent() {
    let mut own = solo();
    let first = own.prepare(ring(2, &[0, 1]), 1);
    let again = own.prepare(ring(2, &[0, 1]), 1);
    assert_eq!(first, again);
    assert_eq!(own.prepared().map(Ring::epoch), Some(2));
}

#[test]
fn prepare_refuses_a_change_from_another_epoch() {
    let mut own = solo();
    assert_eq!(
        own.prepare(ring(3, &[0, 1]), 2),
        Err(OwnershipError::FromEpochMismatch {
            from: 2,
            committed: 1
        })
    );
    assert_eq!(own.prepared(), None);
}

#[test]
fn prepare_refuses_older_epochs() {
    let mut own = Ownership::new(S0, ring(5, &[0]));
    assert_eq!(
        own.prepare(ring(4, &[0, 1]), 5),
        Err(OwnershipError::OlderThanCommitted {
            asked: 4,
            committed: 5
        })
    );
    own.prepare(ring(7, &[0, 1]), 5).expect("prepared");
    assert_eq!(
        own.prepare(ring(6, &[1]), 5),
        Err(OwnershipError::OlderThanPrepared {
            asked: 6,
            prepared: 7
        })
    );
    assert_eq!(
        own.prepare(ring(7, &[1]), 5),
        Err(OwnershipError::EpochReused(7))
    );
}

#[test]
fn a_newer_prepare_replaces_one_whose_abort_was_lost() {
    let mut own = solo();
    let chat = chat_of_pair(S1);
    own.prepare(ring(2, &[1]), 1).expect("prepared");
    own.prepare(ring(3, &[0]), 1).expect("replaced");
    assert_eq!(own.prepared().map(Ring::epoch), Some(3));
    assert_eq!(own.may_sequence(chat, Millis(0)), Ok(FENCE_1));
}

#[test]
fn preparing_the_committed_ring_again_is_a_no_op() {
    let mut own = solo();
    let handoff = own.prepare(ring(1, &[0]), 0).expect("no-op");
    assert!(handoff.released(sample_chats(100)).is_empty());
    assert_eq!(own.prepared(), None);
}

#[test]
fn commit_moves_the_fence_to_the_new_epoch() {
    let mut own = solo();
    let staying = chat_of_pair(S0);
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    let handoff = own.commit(2).expect("committed");
    assert_eq!((handoff.from().epoch(), handoff.to().epoch()), (1, 2));
    assert_eq!(own.committed().epoch(), 2);
    assert_eq!(own.prepared(), None);
    assert_eq!(
        own.may_sequence(staying, Millis(0)),
        Ok(Fence {
            epoch: 2,
            lease_term: 7
        })
    );
    assert_eq!(
        own.may_sequence(chat_of_pair(S1), Millis(0)),
        Err(NotOwner::WrongShard {
            owner: S1,
            epoch: 2
        })
    );
}

#[test]
fn the_new_owner_acquires_at_commit_and_not_before() {
    let mut own = Ownership::new(S1, ring(1, &[0]));
    own.lease_acquired(Millis(100), 3);
    let chat = chat_of_pair(S1);
    let prepared = own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    assert!(prepared.acquires(chat));
    assert!(matches!(
        own.may_sequence(chat, Millis(0)),
        Err(NotOwner::WrongShard { owner: S0, .. })
    ));
    assert_eq!(
        own.commit(2).expect("committed").acquired([chat]),
        vec![chat]
    );
    assert_eq!(
        own.may_sequence(chat, Millis(0)),
        Ok(Fence {
            epoch: 2,
            lease_term: 3
        })
    );
}

#[test]
fn commit_is_idempotent_and_refuses_the_unprepared_and_the_old() {
    let mut own = solo();
    assert_eq!(own.commit(2), Err(OwnershipError::NotPrepared(2)));
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    assert_eq!(own.commit(3), Err(OwnershipError::NotPrepared(3)));
    assert_eq!(own.prepared().map(Ring::epoch), Some(2), "kept");
    own.commit(2).expect("committed");
    let again = own.commit(2).expect("repeated");
    assert!(again.acquired(sample_chats(100)).is_empty());
    assert_eq!(
        own.commit(1),
        Err(OwnershipError::OlderThanCommitted {
            asked: 1,
            committed: 2
        })
    );
}

#[test]
fn abort_resumes_stopped_chats_and_refuses_their_late_prepare() {
    let mut own = solo();
    let chat = chat_of_pair(S1);
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    assert!(own.abort(2));
    assert_eq!(own.may_sequence(chat, Millis(0)), Ok(FENCE_1));
    assert!(!own.abort(2), "a repeated abort is a no-op");
    assert_eq!(
        own.prepare(ring(2, &[0, 1]), 1),
        Err(OwnershipError::Aborted(2))
    );
}

#[test]
fn abort_of_another_epoch_keeps_the_prepared_ring() {
    let mut own = solo();
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    // Epoch 2 may be committed elsewhere: dropping it would resume chats
    // their new owners already sequence.
    assert!(!own.abort(3));
    assert_eq!(own.prepared().map(Ring::epoch), Some(2));
    // An abort that overtook its prepare still kills that epoch.
    assert_eq!(
        own.prepare(ring(3, &[1]), 1),
        Err(OwnershipError::Aborted(3))
    );
    assert!(!own.abort(1), "the committed epoch cannot be aborted");
}

#[test]
fn renewals_extend_the_lease_but_keep_its_term() {
    let mut own = solo();
    assert!(own.lease_renewed(Millis(200), 9));
    assert_eq!(
        own.lease(),
        Some(Lease {
            expiry: Millis(200),
            revision: 9,
            term: 7
        })
    );
    assert!(!own.lease_renewed(Millis(300), 8), "stale answer ignored");
    assert_eq!(own.may_sequence(chat_of_pair(S0), Millis(150)), Ok(FENCE_1));
    own.lease_lost();
    assert!(!own.lease_renewed(Millis(400), 10), "no renewal after loss");
    assert_eq!(
        own.may_sequence(chat_of_pair(S0), Millis(0)),
        Err(NotOwner::NoLease)
    );
    own.lease_acquired(Millis(500), 11);
    assert_eq!(own.lease().map(|l| l.term), Some(11));
}

#[test]
fn a_restart_keeps_the_rings_and_drops_the_lease() {
    let mut own = solo();
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    own.abort(3);
    let json = serde_json::to_string(&own.record()).expect("serialize");
    let record: OwnershipRecord = serde_json::from_str(&json).expect("deserialize");
    let back = Ownership::recover(record);
    assert_eq!(back.committed(), own.committed());
    assert_eq!(back.prepared(), own.prepared());
    assert_eq!(back.lease(), None);
    assert_eq!(back.record(), own.record());
    assert!(matches!(
        back.may_sequence(chat_of_pair(S1), Millis(0)),
        Err(NotOwner::Moving { .. })
    ));
}

#[test]
fn status_reports_epochs_and_lease() {
    let mut own = solo();
    own.prepare(ring(2, &[0, 1]), 1).expect("prepared");
    assert_eq!(
        own.status(Millis(50)),
        Status {
            shard: S0,
            ring_epoch: 1,
            prepared_epoch: 2,
            lease_held: true,
            draining: false
        }
    );
    assert!(!own.status(Millis(100)).lease_held);
}

#[test]
fn not_owner_converts_into_the_layer_error() {
    let e: OwnershipError = NotOwner::NoLease.into();
    assert_eq!(e, OwnershipError::NotOwner(NotOwner::NoLease));
}

#[test]
fn a_shard_left_out_catches_up_with_the_committed_ring() {
    // Shard 1 was failed over (ring 2 = {0}) while it was down; it restarts
    // remembering ring 1 = {0, 1}, then sees shard 0's record.
    let mut own = Ownership::new(S1, ring(1, &[0, 1]));
    own.lease_acquired(Millis(100), 3);
    let mine = chat_of_pair(S1);
    assert!(own.may_sequence(mine, Millis(10)).is_ok());
    let handoff = own.catch_up(ring(2, &[0])).expect("a newer ring");
    assert!(handoff.releases(mine));
    assert_eq!(
        own.may_sequence(mine, Millis(10)),
        Err(NotOwner::WrongShard {
            owner: S0,
            epoch: 2
        })
    );
    // The rejoin that follows is a change from epoch 2, as for everyone.
    assert!(own.prepare(ring(3, &[0, 1]), 2).is_ok());
    // Older or equal rings change nothing.
    assert!(own.catch_up(ring(2, &[0])).is_none());
    assert!(own.catch_up(ring(1, &[0, 1])).is_none());
    assert_eq!(own.prepared().map(Ring::epoch), Some(3));
}

#[test]
fn catching_up_settles_a_prepare_it_passes_and_keeps_a_newer_one() {
    let mut own = Ownership::new(S0, ring(1, &[0, 1]));
    own.prepare(ring(2, &[0]), 1).expect("prepare 2");
    own.catch_up(ring(3, &[0, 1])).expect("newer");
    assert_eq!(own.prepared(), None);
    assert_eq!(own.committed().epoch(), 3);
    own.prepare(ring(5, &[0]), 3).expect("prepare 5");
    own.catch_up(ring(4, &[1])).expect("newer than 3");
    assert_eq!(own.prepared().map(Ring::epoch), Some(5));
}
