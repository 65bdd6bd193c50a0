//! The ring: which sequencing shard owns a chat (DESIGN §4).
//!
//! Owns placement only — a pure function of the shard set and the vnode count,
//! computed identically by the operator (which publishes the ring in a
//! ConfigMap) and by every runtime pod. It holds no leases and knows nothing
//! of Kubernetes or the store.
//!
//! # Algorithm (version 1; frozen — any change is a new [`Ring::VERSION`])
//! - **Tokens.** Shard `s` gets `vnodes_per_shard` points on a 2^64 ring:
//!   token `(s, i)` = XXH3-64, seed 0, of the 8 bytes `s.to_le_bytes() ++
//!   i.to_le_bytes()` (`s`, `i` as `u32`). Tokens are sorted by `(token,
//!   shard)`, so neither the order the shards were given in nor any hash-map
//!   order plays a part.
//! - **Chats.** A chat id's 16 bytes (RFC 4122 order, [`Uuid::as_bytes`])
//!   hash with XXH3-128, seed 0, to `(h1, h2)`; its [`PROBES`] probe points are
//!   `h1 + j·(h2 | 1)` (mod 2^64, double hashing) for `j = 0..PROBES`.
//! - **Owner.** For each probe, the nearest token on either side (the first
//!   at or after it, wrapping, and the last before it) and the distance to it;
//!   the chat belongs to the shard of the token nearest to any probe (ties:
//!   lowest `j`, then the clockwise token). This is multi-probe consistent
//!   hashing (Appleton & O'Reilly, 2015) on a vnode ring.
//!
//! XXH3 is a fixed, published specification (stable since xxHash 0.8.0) with
//! byte-exact output on every platform; `twox-hash` implements it, and the
//! pinned placements in this module's tests catch any drift.
//!
//! # Why probes on top of vnodes
//! With one probe (the classic vnode ring) a shard's share is the sum of its
//! 64 arcs, whose relative spread is about 1/√64 ≈ 12.5 %: measured over 1M
//! chats, the fullest of 8–128 shards held 1.26–1.39× and the emptiest
//! 0.67–0.79× an even share. A token's share under multi-probe no longer
//! grows with its arcs once they are longer than the typical best distance,
//! so the spread falls to ≈ 1.5 % (16 probes, both sides: 0.94–1.08× up to
//! 128 shards). Consistent hashing's guarantee still holds: adding a shard
//! can only shorten a probe's distance to a token *of that shard*, so chats
//! only move to it; removing one only moves its own chats (the same argument
//! backwards). The price is 16 binary searches per lookup (≈ 0.3–0.5 µs in
//! a release build).
//!
//! The epoch names a ring; it does not enter placement, so two rings with the
//! same shards place every chat identically whatever their epochs.

use serde::{Deserialize, Serialize};
use twox_hash::{XxHash3_64, XxHash3_128};
use uuid::Uuid;

/// Probes per chat. Part of the algorithm: changing it changes placements.
pub const PROBES: u64 = 16;
/// Most virtual nodes a shard may have.
pub const MAX_VNODES: u32 = 4096;
/// Most tokens a ring may hold (bounds memory: 16 bytes each).
pub const MAX_TOKENS: usize = 1 << 20;
/// Chat ids sampled by [`Ring::moved`] (standard error ≤ 0.2 percentage points).
pub const MOVED_SAMPLE: u64 = 1 << 16;

/// A sequencing shard: the ordinal of its pod (`<cluster>-shard-<n>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// Why a ring cannot be built (or read back from its serialized form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("a ring needs at least one shard")]
    NoShards,
    #[error("vnodes per shard must be between 1 and {MAX_VNODES}, got {0}")]
    Vnodes(u32),
    #[error("{0} tokens exceed the limit of {MAX_TOKENS}; use fewer vnodes per shard")]
    TooLarge(usize),
    #[error(
        "ring algorithm version {0} is unknown to this build (it knows {v}); \
         upgrade before reading this ring",
        v = Ring::VERSION
    )]
    Version(u32),
}

/// A committed placement of chats onto shards.
///
/// Serializes to its inputs only (`version`, `epoch`, `shards`,
/// `vnodesPerShard`); the tokens are recomputed when it is read back.
/// `Hash` lets a ring sit in a model checker's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RingSpec", into = "RingSpec")]
pub struct Ring {
    epoch: u64,
    /// Sorted and without duplicates.
    shards: Vec<ShardId>,
    vnodes_per_shard: u32,
    /// `(token, shard)`, sorted; derived from the fields above.
    tokens: Vec<(u64, ShardId)>,
}

/// The serialized form of a [`Ring`] (the ConfigMap's payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RingSpec {
    /// Algorithm version; a reader refuses one it does not know.
    version: u32,
    epoch: u64,
    shards: Vec<ShardId>,
    vnodes_per_shard: u32,
}

impl TryFrom<RingSpec> for Ring {
    type Error = RingError;

    fn try_from(spec: RingSpec) -> Result<Self, RingError> {
        if spec.version != Ring::VERSION {
            return Err(RingError::Version(spec.version));
        }
        Ring::new(spec.epoch, &spec.shards, spec.vnodes_per_shard)
    }
}

impl From<Ring> for RingSpec {
    fn from(ring: Ring) -> Self {
        RingSpec {
            version: Ring::VERSION,
            epoch: ring.epoch,
            shards: ring.shards,
            vnodes_per_shard: ring.vnodes_per_shard,
        }
    }
}

/// Token of a shard's `vnode`-th virtual node.
fn token(shard: ShardId, vnode: u32) -> u64 {
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&shard.0.to_le_bytes());
    key[4..].copy_from_slice(&vnode.to_le_bytes());
    XxHash3_64::oneshot_with_seed(0, &key)
}

/// The `(start, stride)` of a chat's probe sequence.
fn probe_base(chat: Uuid) -> (u64, u64) {
    let h = XxHash3_128::oneshot_with_seed(0, chat.as_bytes());
    (h as u64, ((h >> 64) as u64) | 1)
}

impl Ring {
    /// Version of the placement algorithm (see the module docs).
    pub const VERSION: u32 = 1;

    /// Builds the ring of `shards` (in any order; duplicates ignored) with
    /// `vnodes_per_shard` virtual nodes each.
    pub fn new(epoch: u64, shards: &[ShardId], vnodes_per_shard: u32) -> Result<Self, RingError> {
        if !(1..=MAX_VNODES).contains(&vnodes_per_shard) {
            return Err(RingError::Vnodes(vnodes_per_shard));
        }
        let mut shards = shards.to_vec();
        shards.sort_unstable();
        shards.dedup();
        if shards.is_empty() {
            return Err(RingError::NoShards);
        }
        let total = shards.len().saturating_mul(vnodes_per_shard as usize);
        if total > MAX_TOKENS {
            return Err(RingError::TooLarge(total));
        }
        let mut tokens = Vec::with_capacity(total);
        for &s in &shards {
            tokens.extend((0..vnodes_per_shard).map(|i| (token(s, i), s)));
        }
        tokens.sort_unstable();
        Ok(Self {
            epoch,
            shards,
            vnodes_per_shard,
            tokens,
        })
    }

    /// The epoch this ring was committed at.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The ring's shards, ascending.
    pub fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    pub fn vnodes_per_shard(&self) -> u32 {
        self.vnodes_per_shard
    }

    /// Whether `shard` is in the ring.
    pub fn contains(&self, shard: ShardId) -> bool {
        self.shards.binary_search(&shard).is_ok()
    }

    /// The same placement under another epoch.
    pub fn with_epoch(&self, epoch: u64) -> Self {
        Self {
            epoch,
            ..self.clone()
        }
    }

    /// The shard that sequences `chat`.
    pub fn owner(&self, chat: Uuid) -> ShardId {
        let n = self.tokens.len();
        let (mut probe, stride) = probe_base(chat);
        let (mut best_distance, mut best) = (u64::MAX, self.tokens[0].1);
        for _ in 0..PROBES {
            // First token at or after the probe, and the last one before it.
            let i = self.tokens.partition_point(|&(t, _)| t < probe);
            let (next, next_shard) = self.tokens[i % n];
            let (prev, prev_shard) = self.tokens[(i + n - 1) % n];
            // Strict comparisons: on a tie the earlier probe, then the
            // clockwise token, wins.
            let distance = next.wrapping_sub(probe);
            if distance < best_distance {
                (best_distance, best) = (distance, next_shard);
            }
            let distance = probe.wrapping_sub(prev);
            if distance < best_distance {
                (best_distance, best) = (distance, prev_shard);
            }
            probe = probe.wrapping_add(stride);
        }
        best
    }

    /// Where `chat` moves between two rings: `Some((from, to))` when its
    /// owner changes, `None` when it stays.
    pub fn handoff(old: &Ring, new: &Ring, chat: Uuid) -> Option<(ShardId, ShardId)> {
        let (from, to) = (old.owner(chat), new.owner(chat));
        (from != to).then_some((from, to))
    }

    /// Fraction of chats whose owner differs between `old` and `new`,
    /// estimated over a fixed sample of [`MOVED_SAMPLE`] chat ids (the same
    /// sample in every process, so every caller gets the same number).
    pub fn moved(old: &Ring, new: &Ring) -> f64 {
        let moved = sample_chats(MOVED_SAMPLE)
            .filter(|&c| old.owner(c) != new.owner(c))
            .count();
        moved as f64 / MOVED_SAMPLE as f64
    }
}

/// `n` chat ids from a fixed SplitMix64 sequence, shaped as UUID v4 — the
/// same ids on every platform and in every version.
pub fn sample_chats(n: u64) -> impl Iterator<Item = Uuid> {
    let mut state: u64 = 0x636f_6e66_6162_0001; // "confab" + 1
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n).map(move |_| {
        let bits = (u128::from(next()) << 64) | u128::from(next());
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    })
}

#[cfg(test)]
mod tests;
