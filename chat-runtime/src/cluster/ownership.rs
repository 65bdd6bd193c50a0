//! One shard's view of chat ownership (DESIGN §4): the committed ring and its
//! epoch, an optional prepared ring, the shard's lease, and whether it drains.
//!
//! Owns the rules only. A shard may sequence a chat while
//! 1. it is not draining,
//! 2. the committed ring gives it the chat,
//! 3. no prepared ring moves the chat away (phase one of a change stops it),
//! 4. it holds a lease whose expiry is still ahead of `now`.
//!
//! Then [`Ownership::may_sequence`] hands out a [`Fence`] — (committed epoch,
//! lease term) — that every store write of that chat carries. A fencing
//! store keeps the highest fence per chat and refuses lower ones; together
//! with the conditional `(chat, seq)` insert (which the CQL store already
//! has), a writer that lost the chat without noticing — paused past its
//! lease — cannot overwrite anything (`docs/cluster.md` §4, §9).
//!
//! The transitions follow `crds/proto/control.proto`: [`Ownership::prepare`],
//! [`Ownership::commit`] and [`Ownership::abort`] are idempotent for the same
//! arguments and refuse older epochs with a typed error (FAILED_PRECONDITION
//! on the wire). Leases come from the shell ([`Ownership::lease_acquired`],
//! [`Ownership::lease_renewed`], [`Ownership::lease_lost`]) as the expiry and
//! revision a compare-and-set key-value store answered.
//!
//! Must not touch: clocks, sockets, the store, the bus. The shell persists
//! [`Ownership::record`] before it acknowledges a prepare or a commit, and a
//! restarted shard resumes from it with [`Ownership::recover`], leaseless.

use std::collections::BTreeSet;

use confab_api::ring::{Ring, ShardId};
use serde::{Deserialize, Serialize};

use crate::model::ChatId;

/// Aborted epochs remembered (newest kept). A longer run of aborts without a
/// commit only means a very late duplicate prepare might stop chats until the
/// operator's next step; it never lets two shards sequence.
const MAX_ABORTED: usize = 64;

/// Milliseconds on the caller's monotonic clock. The core never reads a
/// clock: the shell passes `now`, the model checker passes ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Millis(pub u64);

/// A held lease, as the lease store granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// When the lease lapses. The shell computes it from the time it *sent*
    /// the request, minus a margin for clock drift, so it is never later
    /// than the lease store's own expiry.
    pub expiry: Millis,
    /// Revision of the latest grant or renewal: the next renewal's
    /// compare-and-set expects it.
    pub revision: u64,
    /// Revision of the grant that started this lease. Stays put across
    /// renewals, so a chat's store fence (and its cached head) survives them;
    /// a new grant after a loss or a restart has a higher one.
    pub term: u64,
}

/// What a store write must be fenced by. Ordered by epoch, then lease term:
/// the store accepts a write of a chat only if its fence is at least the
/// highest it has recorded for that chat (and raises that record).
///
/// Within one epoch a chat has one owner, so terms only order incarnations of
/// the same shard; lease revisions come from one key-value bucket, so they are
/// increasing across shards too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub epoch: u64,
    pub lease_term: u64,
}

/// Why this shard may not sequence a chat now. Part of normal flow: the
/// gateway retries `WrongShard` at `owner`, and `Moving` / lease trouble
/// after a short back-off (sends are idempotent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NotOwner {
    #[error("{owner} sequences this chat at ring epoch {epoch}")]
    WrongShard { owner: ShardId, epoch: u64 },
    #[error("this chat moves to {to} at ring epoch {epoch}; retry once it is committed")]
    Moving { to: ShardId, epoch: u64 },
    #[error("this shard holds no lease yet; retry shortly")]
    NoLease,
    #[error("this shard's lease lapsed at {expiry:?}; retry shortly")]
    LeaseExpired { expiry: Millis },
    #[error("this shard is draining; retry at the chat's next owner")]
    Draining,
}

/// Control-plane refusals: the operator gets FAILED_PRECONDITION for all but
/// [`OwnershipError::NotOwner`], which is the data path's answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    #[error("epoch {asked} is older than this shard's committed epoch {committed}")]
    OlderThanCommitted { asked: u64, committed: u64 },
    #[error("epoch {asked} is older than the epoch {prepared} this shard has prepared")]
    OlderThanPrepared { asked: u64, prepared: u64 },
    #[error(
        "the change starts from epoch {from} but this shard committed {committed}; \
         send it the missed ring first"
    )]
    FromEpochMismatch { from: u64, committed: u64 },
    #[error("epoch {0} was aborted; epochs are never reused, prepare a newer one")]
    Aborted(u64),
    #[error("epoch {0} names a different ring than the one prepared; epochs are never reused")]
    EpochReused(u64),
    #[error("epoch {0} was not prepared here; prepare it before committing")]
    NotPrepared(u64),
}

/// The chats a ring change moves to or from this shard. The shard cannot list
/// every chat (ids are UUIDs), so it asks per chat — typically for the chats
/// it has cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    me: ShardId,
    from: Ring,
    to: Ring,
}

impl Handoff {
    /// The ring the change starts from.
    pub fn from(&self) -> &Ring {
        &self.from
    }

    /// The ring it moves to.
    pub fn to(&self) -> &Ring {
        &self.to
    }

    /// Whether this shard stops sequencing `chat`.
    pub fn releases(&self, chat: ChatId) -> bool {
        self.from.owner(chat) == self.me && self.to.owner(chat) != self.me
    }

    /// Whether this shard starts sequencing `chat`.
    pub fn acquires(&self, chat: ChatId) -> bool {
        self.from.owner(chat) != self.me && self.to.owner(chat) == self.me
    }

    /// The chats among `chats` that this shard releases.
    pub fn released(&self, chats: impl IntoIterator<Item = ChatId>) -> Vec<ChatId> {
        chats.into_iter().filter(|&c| self.releases(c)).collect()
    }

    /// The chats among `chats` that this shard acquires.
    pub fn acquired(&self, chats: impl IntoIterator<Item = ChatId>) -> Vec<ChatId> {
        chats.into_iter().filter(|&c| self.acquires(c)).collect()
    }
}

/// The fields of control.proto's `StatusReply` that ownership knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub shard: ShardId,
    pub ring_epoch: u64,
    /// 0 when no ring is prepared.
    pub prepared_epoch: u64,
    pub lease_held: bool,
    pub draining: bool,
}

/// What a shard persists before it acknowledges a prepare or a commit, so a
/// restart cannot forget that it stopped chats (or took them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipRecord {
    pub shard: ShardId,
    pub committed: Ring,
    pub prepared: Option<Ring>,
    pub aborted: Vec<u64>,
}

/// One shard's ownership state. See the module docs for the rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ownership {
    me: ShardId,
    /// The ring every decision is made by; its epoch is the fence's.
    committed: Ring,
    /// Phase one of a change: chats it moves away from `me` are stopped.
    prepared: Option<Ring>,
    /// Aborted epochs newer than `committed`, so that a late duplicate of
    /// their prepare is refused rather than stopping chats again.
    aborted: BTreeSet<u64>,
    lease: Option<Lease>,
    /// Set by `Drain`: nothing is sequenced any more.
    draining: bool,
}

impl Ownership {
    /// A shard starting from the committed ring of its configuration.
    pub fn new(me: ShardId, committed: Ring) -> Self {
        Self {
            me,
            committed,
            prepared: None,
            aborted: BTreeSet::new(),
            lease: None,
            draining: false,
        }
    }

    /// A restarted shard: the persisted rings, no lease, not draining.
    pub fn recover(record: OwnershipRecord) -> Self {
        let mut own = Self::new(record.shard, record.committed);
        own.prepared = record.prepared;
        own.aborted = record.aborted.into_iter().collect();
        own
    }

    /// What to persist (see [`OwnershipRecord`]).
    pub fn record(&self) -> OwnershipRecord {
        OwnershipRecord {
            shard: self.me,
            committed: self.committed.clone(),
            prepared: self.prepared.clone(),
            aborted: self.aborted.iter().copied().collect(),
        }
    }

    pub fn shard(&self) -> ShardId {
        self.me
    }

    pub fn committed(&self) -> &Ring {
        &self.committed
    }

    pub fn prepared(&self) -> Option<&Ring> {
        self.prepared.as_ref()
    }

    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// Whether `chat` may be sequenced here at `now`, and the fence its
    /// writes must carry.
    pub fn may_sequence(&self, chat: ChatId, now: Millis) -> Result<Fence, NotOwner> {
        if self.draining {
            return Err(NotOwner::Draining);
        }
        let owner = self.committed.owner(chat);
        if owner != self.me {
            let epoch = self.committed.epoch();
            return Err(NotOwner::WrongShard { owner, epoch });
        }
        if let Some(next) = &self.prepared {
            let to = next.owner(chat);
            if to != self.me {
                let epoch = next.epoch();
                return Err(NotOwner::Moving { to, epoch });
            }
        }
        match self.lease {
            None => Err(NotOwner::NoLease),
            Some(l) if now >= l.expiry => Err(NotOwner::LeaseExpired { expiry: l.expiry }),
            Some(l) => Ok(Fence {
                epoch: self.committed.epoch(),
                lease_term: l.term,
            }),
        }
    }

    /// Phase one: stop sequencing the chats `ring` moves away from this
    /// shard. The shell flushes their in-flight writes, persists
    /// [`Self::record`], then acknowledges. Repeating the same prepare
    /// answers the same handoff; a newer epoch replaces a prepared one (its
    /// abort was lost); preparing the committed ring again is a no-op.
    pub fn prepare(&mut self, ring: Ring, from_epoch: u64) -> Result<Handoff, OwnershipError> {
        let have = self.committed.epoch();
        if self.prepared.as_ref() == Some(&ring) && from_epoch == have {
            return Ok(self.handoff_to(ring));
        }
        if ring.epoch() <= have {
            if ring == self.committed {
                return Ok(self.handoff_to(ring));
            }
            let (asked, committed) = (ring.epoch(), have);
            return Err(OwnershipError::OlderThanCommitted { asked, committed });
        }
        if from_epoch != have {
            let committed = have;
            return Err(OwnershipError::FromEpochMismatch {
                from: from_epoch,
                committed,
            });
        }
        if self.aborted.contains(&ring.epoch()) {
            return Err(OwnershipError::Aborted(ring.epoch()));
        }
        if let Some(p) = &self.prepared {
            if p.epoch() > ring.epoch() {
                let (asked, prepared) = (ring.epoch(), p.epoch());
                return Err(OwnershipError::OlderThanPrepared { asked, prepared });
            }
            if p.epoch() == ring.epoch() {
                return Err(OwnershipError::EpochReused(ring.epoch()));
            }
        }
        self.prepared = Some(ring.clone());
        Ok(self.handoff_to(ring))
    }

    /// Phase two: the prepared ring of `epoch` becomes the committed one.
    /// The shell drops cached state of the chats the handoff moves (a new
    /// owner loads a chat's head from the store under its new fence), then
    /// persists [`Self::record`] and acknowledges. Committing the committed
    /// epoch again is a no-op (an empty handoff).
    pub fn commit(&mut self, epoch: u64) -> Result<Handoff, OwnershipError> {
        let have = self.committed.epoch();
        if epoch == have {
            return Ok(self.handoff_to(self.committed.clone()));
        }
        if epoch < have {
            let (asked, committed) = (epoch, have);
            return Err(OwnershipError::OlderThanCommitted { asked, committed });
        }
        match self.prepared.take() {
            Some(next) if next.epoch() == epoch => {
                let from = std::mem::replace(&mut self.committed, next);
                self.aborted.retain(|&e| e > epoch);
                Ok(Handoff {
                    me: self.me,
                    from,
                    to: self.committed.clone(),
                })
            }
            other => {
                self.prepared = other;
                Err(OwnershipError::NotPrepared(epoch))
            }
        }
    }

    /// Drops the prepared ring if it is `epoch`'s (the stopped chats resume);
    /// otherwise only remembers that `epoch` is dead. Answers whether a
    /// prepared ring was dropped. Never touches the committed ring: a
    /// prepared ring of another epoch may already be committed elsewhere.
    pub fn abort(&mut self, epoch: u64) -> bool {
        if epoch <= self.committed.epoch() {
            return false;
        }
        self.aborted.insert(epoch);
        while self.aborted.len() > MAX_ABORTED {
            self.aborted.pop_first();
        }
        if self.prepared.as_ref().is_some_and(|p| p.epoch() == epoch) {
            self.prepared = None;
            return true;
        }
        false
    }

    /// Adopts `ring` when another shard's record shows it committed and it is
    /// newer than this shard's committed ring. A commit is only sent once
    /// every member prepared, so such a ring is the cluster's; a shard that
    /// was down or cut off while it went through (failover takes a shard
    /// out without its answer) must not go on sequencing by the ring it
    /// remembers, nor refuse the next change as `FromEpochMismatch`. A
    /// prepared ring no newer than `ring` is dropped (its change is settled
    /// either way). Returns the handoff when the committed ring moved.
    pub fn catch_up(&mut self, ring: Ring) -> Option<Handoff> {
        if ring.epoch() <= self.committed.epoch() {
            return None;
        }
        if self
            .prepared
            .as_ref()
            .is_some_and(|p| p.epoch() <= ring.epoch())
        {
            self.prepared = None;
        }
        self.aborted.retain(|&e| e > ring.epoch());
        let from = std::mem::replace(&mut self.committed, ring);
        Some(Handoff {
            me: self.me,
            from,
            to: self.committed.clone(),
        })
    }

    /// A new lease was granted (after none, a loss, or a restart).
    pub fn lease_acquired(&mut self, expiry: Millis, revision: u64) {
        self.lease = Some(Lease {
            expiry,
            revision,
            term: revision,
        });
    }

    /// The held lease was renewed; a stale answer (older revision, or one
    /// arriving after the lease was lost) is ignored. Answers whether it
    /// applied.
    pub fn lease_renewed(&mut self, expiry: Millis, revision: u64) -> bool {
        match &mut self.lease {
            Some(l) if revision > l.revision => {
                l.expiry = expiry;
                l.revision = revision;
                true
            }
            _ => false,
        }
    }

    /// The lease is gone (renewal refused, or released on drain).
    pub fn lease_lost(&mut self) {
        self.lease = None;
    }

    /// Stop sequencing everything; the shell flushes and releases its lease.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn status(&self, now: Millis) -> Status {
        Status {
            shard: self.me,
            ring_epoch: self.committed.epoch(),
            prepared_epoch: self.prepared.as_ref().map_or(0, Ring::epoch),
            lease_held: self.lease.is_some_and(|l| now < l.expiry),
            draining: self.draining,
        }
    }

    fn handoff_to(&self, to: Ring) -> Handoff {
        Handoff {
            me: self.me,
            from: self.committed.clone(),
            to,
        }
    }
}

#[cfg(test)]
mod tests;
