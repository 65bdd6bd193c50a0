//! The model's world: what each node holds and what travels between them.
//!
//! Shards hold the real [`Ownership`] core; everything else (operator, lease
//! service, store, network, clients) is a plain value so that the checker can
//! hash, clone and compare whole states.

use std::collections::{BTreeMap, BTreeSet};

use chat_runtime::cluster::{Fence, Ownership, OwnershipRecord};
use confab_api::ring::{Ring, ShardId};

/// Shards in the model (ordinals `0..SHARDS`); a shard set is a bit mask.
pub const SHARDS: u32 = 2;
/// A message id.
pub type MsgId = u8;
/// A set of shards, bit `i` for shard `i`.
pub type Mask = u8;

/// The ring of a shard mask at an epoch (one vnode each: placement is all
/// that matters here).
pub fn ring(epoch: u64, mask: Mask) -> Ring {
    let shards: Vec<ShardId> = (0..SHARDS)
        .filter(|s| mask & bit(*s) != 0)
        .map(ShardId)
        .collect();
    Ring::new(epoch, &shards, 1).expect("a valid model ring")
}

pub fn bit(shard: u32) -> Mask {
    1 << shard
}

/// One node of the network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[expect(
    clippy::large_enum_variant,
    reason = "states are cloned whole at every step; a box would add an allocation to each"
)]
pub enum Node {
    Up(Shard),
    /// Crashed: all memory is gone; `life` numbers the next incarnation.
    Down {
        life: u8,
    },
}

/// A running shard: the ownership core plus what its shell keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Incarnation; store replies to an earlier one are ignored.
    pub life: u8,
    pub own: Ownership,
    /// The chat's head, valid only under the fence it was claimed with.
    pub head: Option<(Fence, u64)>,
    /// The write in flight (message, seq, fence): one per chat at a time,
    /// like the per-chat lock of the real shard.
    pub inflight: Option<(MsgId, u64, Fence)>,
    /// A prepare that released the chat while a write was in flight: it is
    /// acknowledged once that write is answered (flushed).
    pub ack_after_flush: Option<u64>,
}

/// A lease key in the compare-and-set key-value store, one per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseKey {
    Absent,
    Held {
        revision: u64,
        expiry: u64,
    },
    /// Written by the operator over an expired lease of a shard it removes
    /// without that shard's prepare: the shard may take a lease again only
    /// once it has committed `epoch` or later.
    Revoked {
        epoch: u64,
    },
}

impl LeaseKey {
    /// Whether someone holds this key at `now`.
    pub fn live(self, now: u64) -> bool {
        matches!(self, LeaseKey::Held { expiry, .. } if now < expiry)
    }
}

/// The store: the chat's message log, its fence, and each shard's persisted
/// ownership record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    /// seq → (message, the shard that wrote it).
    pub messages: BTreeMap<u64, (MsgId, u32)>,
    /// Highest fence that claimed or wrote the chat.
    pub fence: Option<Fence>,
    pub records: Vec<OwnershipRecord>,
    /// Whether a write was refused for its fence (coverage only).
    pub fenced_out: bool,
}

impl Store {
    pub fn head(&self) -> u64 {
        self.messages.keys().next_back().copied().unwrap_or(0)
    }

    pub fn seq_of(&self, msg: MsgId) -> Option<u64> {
        self.messages
            .iter()
            .find_map(|(s, (m, _))| (*m == msg).then_some(*s))
    }

    /// Whether `fence` may claim or write the chat.
    pub fn admits(&self, fence: Fence) -> bool {
        self.fence.is_none_or(|f| fence >= f)
    }

    pub fn raise(&mut self, fence: Fence) {
        self.fence = Some(self.fence.map_or(fence, |f| f.max(fence)));
    }
}

/// The operator's progress through a ring change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Idle,
    Preparing {
        epoch: u64,
        shards: Mask,
        acked: Mask,
        /// Members removed without their ack, their expired lease revoked.
        forced: Mask,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operator {
    pub epoch: u64,
    pub shards: Mask,
    pub phase: Phase,
    /// Epochs are never reused: an aborted one is skipped.
    pub next_epoch: u64,
    pub changes_left: u8,
}

/// Everything that crosses the network. Any message may be delivered in any
/// order or never (lost); control messages may also be delivered more than
/// once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    Prepare {
        to: u32,
        epoch: u64,
        shards: Mask,
        from_epoch: u64,
    },
    Commit {
        to: u32,
        epoch: u64,
    },
    Abort {
        to: u32,
        epoch: u64,
    },
    /// A client's send, routed by a possibly stale ring to any shard.
    Send {
        to: u32,
        msg: MsgId,
    },
    Append {
        from: u32,
        life: u8,
        fence: Fence,
        seq: u64,
        msg: MsgId,
    },
    Appended {
        to: u32,
        life: u8,
        seq: u64,
        msg: MsgId,
        ok: bool,
    },
}

impl Msg {
    /// The shard a message is addressed to, if any.
    pub fn to_shard(self) -> Option<u32> {
        match self {
            Msg::Prepare { to, .. }
            | Msg::Commit { to, .. }
            | Msg::Abort { to, .. }
            | Msg::Send { to, .. }
            | Msg::Appended { to, .. } => Some(to),
            Msg::Append { .. } => None,
        }
    }

    /// Whether the network may deliver a copy and keep the message.
    pub fn may_duplicate(self) -> bool {
        matches!(
            self,
            Msg::Prepare { .. } | Msg::Commit { .. } | Msg::Abort { .. }
        )
    }
}

/// A whole state of the system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Discrete time; every lease expiry is in these ticks.
    pub now: u64,
    pub operator: Operator,
    pub nodes: Vec<Node>,
    pub leases: Vec<LeaseKey>,
    /// The key-value store's revision counter (one per bucket).
    pub revision: u64,
    pub store: Store,
    pub net: BTreeSet<Msg>,
    /// Acks sent to clients: message → seq.
    pub acked: BTreeMap<MsgId, u64>,
    /// A message was acked with two different seqs.
    pub ack_conflict: bool,
    pub crashes: u8,
    /// Graceful stops so far (a shard drained, its lease released).
    pub stops: u8,
    /// A shard adopted a ring from another's record (coverage only).
    pub caught_up: bool,
}

impl State {
    pub fn initial(committed: &Ring, mask: Mask) -> Self {
        let shards = 0..SHARDS;
        let nodes = shards
            .clone()
            .map(|s| {
                Node::Up(Shard {
                    life: 0,
                    own: Ownership::new(ShardId(s), committed.clone()),
                    head: None,
                    inflight: None,
                    ack_after_flush: None,
                })
            })
            .collect::<Vec<_>>();
        let records = nodes
            .iter()
            .map(|n| match n {
                Node::Up(s) => s.own.record(),
                Node::Down { .. } => unreachable!("all start up"),
            })
            .collect();
        Self {
            now: 0,
            operator: Operator {
                epoch: committed.epoch(),
                shards: mask,
                phase: Phase::Idle,
                next_epoch: committed.epoch() + 1,
                changes_left: 0,
            },
            nodes,
            leases: shards.map(|_| LeaseKey::Absent).collect(),
            revision: 0,
            store: Store {
                messages: BTreeMap::new(),
                fence: None,
                records,
                fenced_out: false,
            },
            net: BTreeSet::new(),
            acked: BTreeMap::new(),
            ack_conflict: false,
            crashes: 0,
            stops: 0,
            caught_up: false,
        }
    }

    pub fn shard_mut(&mut self, s: u32) -> Option<&mut Shard> {
        match &mut self.nodes[s as usize] {
            Node::Up(shard) => Some(shard),
            Node::Down { .. } => None,
        }
    }

    /// Persists shard `s`'s ownership record (before it acknowledges).
    pub fn persist(&mut self, s: u32) {
        if let Node::Up(shard) = &self.nodes[s as usize] {
            self.store.records[s as usize] = shard.own.record();
        }
    }

    /// An ack to the client of `msg`.
    pub fn ack(&mut self, msg: MsgId, seq: u64) {
        if *self.acked.entry(msg).or_insert(seq) != seq {
            self.ack_conflict = true;
        }
    }
}
