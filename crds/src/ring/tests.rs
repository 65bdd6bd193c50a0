//! Ring tests: pinned placements (determinism across versions), and property
//! tests for balance, minimal movement and independence from input order.
//!
//! Proptest runs with a fixed RNG seed so that every run checks the same
//! shard sets; the chat ids come from [`sample_chats`].

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::*;

/// Chats in the balance checks.
const BALANCE_CHATS: u64 = 1_000_000;
/// Chats in the movement checks (each moved fraction has a standard error of
/// ≈ 0.1 percentage points at this size).
const MOVE_CHATS: u64 = 100_000;
/// Allowed deviation from an even share.
const TOLERANCE: f64 = 0.10;

fn shards(ids: impl IntoIterator<Item = u32>) -> Vec<ShardId> {
    ids.into_iter().map(ShardId).collect()
}

/// Chats per shard over the first `chats` sample ids, in shard order.
fn loads(ring: &Ring, chats: u64) -> Vec<u64> {
    let mut load = vec![0u64; ring.shards().len()];
    for chat in sample_chats(chats) {
        let owner = ring.owner(chat);
        let i = ring
            .shards()
            .binary_search(&owner)
            .expect("owner is in the ring");
        load[i] += 1;
    }
    load
}

/// (emptiest, fullest) shard as a multiple of an even share.
fn spread(load: &[u64]) -> (f64, f64) {
    let even = load.iter().sum::<u64>() as f64 / load.len() as f64;
    let min = *load.iter().min().unwrap() as f64 / even;
    let max = *load.iter().max().unwrap() as f64 / even;
    (min, max)
}

fn fixed_config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x636f_6e66_6162),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Distinct shard ordinals, 1..=max of them.
fn shard_set(max: usize) -> impl Strategy<Value = Vec<ShardId>> {
    prop::collection::btree_set(0u32..1024, 1..=max).prop_map(shards)
}

#[test]
fn xxh3_matches_the_published_test_vector() {
    // XXH3_64bits of the empty input, seed 0 (xxHash's sanity check).
    assert_eq!(XxHash3_64::oneshot(b""), 0x2d06_8005_38d3_94c2);
}

#[test]
fn placements_are_pinned() {
    // Changing any of these is changing the algorithm: bump Ring::VERSION.
    let ring = Ring::new(7, &shards(0..5), 64).unwrap();
    let owners: Vec<u32> = sample_chats(12).map(|c| ring.owner(c).0).collect();
    assert_eq!(owners, PINNED_OWNERS);
    assert_eq!(ring.owner(Uuid::nil()).0, PINNED_NIL);
    assert_eq!(
        sample_chats(1).next().unwrap().to_string(),
        PINNED_FIRST_SAMPLE
    );
}

const PINNED_OWNERS: [u32; 12] = [1, 4, 2, 0, 0, 4, 2, 3, 0, 2, 2, 0];
const PINNED_NIL: u32 = 0;
const PINNED_FIRST_SAMPLE: &str = "da62f9e8-b143-4e25-8d9e-1bf5e2268284";

#[test]
fn rejects_bad_input() {
    assert_eq!(Ring::new(1, &[], 64), Err(RingError::NoShards));
    assert_eq!(Ring::new(1, &shards([0]), 0), Err(RingError::Vnodes(0)));
    assert_eq!(
        Ring::new(1, &shards([0]), MAX_VNODES + 1),
        Err(RingError::Vnodes(MAX_VNODES + 1))
    );
    assert!(matches!(
        Ring::new(1, &shards(0..1024), MAX_VNODES),
        Err(RingError::TooLarge(_))
    ));
}

#[test]
fn one_shard_owns_everything() {
    let ring = Ring::new(1, &shards([9]), 1).unwrap();
    assert!(sample_chats(1000).all(|c| ring.owner(c) == ShardId(9)));
}

#[test]
fn serializes_to_its_inputs_and_back() {
    let ring = Ring::new(3, &shards([4, 1, 2]), 64).unwrap();
    let json = serde_json::to_value(&ring).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"version": 1, "epoch": 3, "shards": [1, 2, 4], "vnodesPerShard": 64})
    );
    let back: Ring = serde_json::from_value(json).unwrap();
    assert_eq!(back, ring);

    let future = serde_json::json!({"version": 2, "epoch": 3, "shards": [1], "vnodesPerShard": 64});
    let err = serde_json::from_value::<Ring>(future).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let empty = serde_json::json!({"version": 1, "epoch": 3, "shards": [], "vnodesPerShard": 64});
    assert!(serde_json::from_value::<Ring>(empty).is_err());
}

#[test]
fn epoch_does_not_move_chats() {
    let a = Ring::new(1, &shards(0..8), 64).unwrap();
    let b = a.with_epoch(2);
    assert_eq!(b.epoch(), 2);
    assert_eq!(Ring::moved(&a, &b), 0.0);
}

/// The balance the ring promises at the default 64 vnodes, for shard counts
/// an operator would run (printed with `--nocapture`).
#[test]
fn balanced_at_64_vnodes() {
    for n in [2, 3, 5, 8, 16, 32, 64] {
        let ring = Ring::new(1, &shards(0..n), 64).unwrap();
        let (min, max) = spread(&loads(&ring, BALANCE_CHATS));
        println!("{n:3} shards: min {min:.3} max {max:.3} of even");
        assert!(
            (1.0 - TOLERANCE..=1.0 + TOLERANCE).contains(&min)
                && (1.0 - TOLERANCE..=1.0 + TOLERANCE).contains(&max),
            "{n} shards: load {min:.3}..{max:.3} of even"
        );
    }
}

proptest! {
    #![proptest_config(fixed_config(6))]

    /// Any set of shard ordinals is balanced within ±10 %.
    #[test]
    fn any_shard_set_is_balanced(set in shard_set(64)) {
        let ring = Ring::new(1, &set, 64).unwrap();
        let (min, max) = spread(&loads(&ring, BALANCE_CHATS));
        println!("{:3} shards (ordinals up to {}): min {min:.3} max {max:.3} of even",
            set.len(), set.last().map_or(0, |s| s.0));
        prop_assert!(
            min >= 1.0 - TOLERANCE && max <= 1.0 + TOLERANCE,
            "{} shards: load {:.3}..{:.3} of even", set.len(), min, max
        );
    }
}

proptest! {
    #![proptest_config(fixed_config(24))]

    /// Adding one shard moves ≈ 1/(N+1) of the chats, all of them to it;
    /// removing it again moves exactly those chats back.
    #[test]
    fn adding_or_removing_a_shard_moves_only_its_chats(
        set in shard_set(32),
        extra in 0u32..1024,
    ) {
        prop_assume!(!set.contains(&ShardId(extra)));
        let old = Ring::new(1, &set, 64).unwrap();
        let mut grown = set.clone();
        grown.push(ShardId(extra));
        let new = Ring::new(2, &grown, 64).unwrap();
        let mut moved = 0u64;
        for chat in sample_chats(MOVE_CHATS) {
            match Ring::handoff(&old, &new, chat) {
                None => {}
                Some((_, to)) => {
                    prop_assert_eq!(to, ShardId(extra), "a chat moved between old shards");
                    moved += 1;
                }
            }
            // Removal is the same comparison read backwards.
            if let Some((from, _)) = Ring::handoff(&new, &old, chat) {
                prop_assert_eq!(from, ShardId(extra), "removal moved another shard's chat");
            } else {
                prop_assert_ne!(new.owner(chat), ShardId(extra), "a removed shard kept a chat");
            }
        }
        let share = moved as f64 / MOVE_CHATS as f64 * grown.len() as f64;
        prop_assert!(
            (share - 1.0).abs() <= 0.15,
            "{} -> {} shards moved {:.3} of an even share", set.len(), grown.len(), share
        );
    }

    /// The ring depends on the set of shards, not on their order or repeats.
    #[test]
    fn order_and_repeats_do_not_matter(
        set in shard_set(16),
        seed in any::<u64>(),
    ) {
        let mut shuffled = set.clone();
        shuffled.extend(set.iter().take(3).copied());
        // A deterministic shuffle driven by the generated seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = Ring::new(5, &set, 32).unwrap();
        let b = Ring::new(5, &shuffled, 32).unwrap();
        prop_assert_eq!(&a, &b);
        for chat in sample_chats(2_000) {
            prop_assert_eq!(a.owner(chat), b.owner(chat));
        }
    }
}

#[test]
fn moved_reports_the_fraction() {
    let old = Ring::new(1, &shards(0..4), 64).unwrap();
    let new = Ring::new(2, &shards(0..5), 64).unwrap();
    let f = Ring::moved(&old, &new);
    assert!((f - 0.2).abs() < 0.02, "adding a 5th shard moved {f}");
    assert_eq!(Ring::moved(&old, &old), 0.0);
}
