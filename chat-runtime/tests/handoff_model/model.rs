//! The handoff protocol as a stateright [`Model`]: the operator's two-phase
//! ring change, shards driving the real ownership core (handlers in
//! `nodes`), a lease service with compare-and-set by revision, a store that
//! fences writes, clients, and a network that loses, duplicates and
//! reorders. Bounds per [`Scenario`]; invariants in `properties`.
//!
//! Simplifications (argued in `docs/cluster.md`): lease calls are atomic
//! compare-and-sets; a shard's prepare acknowledgement reaches the operator
//! at once; the operator does not await commit acknowledgements (so it may
//! start the next change early, which only adds behaviours); one clock for
//! all nodes.

use chat_runtime::cluster::{Millis, Ownership};
use chat_runtime::model::ChatId;
use confab_api::ring::{Ring, ShardId, sample_chats};
use stateright::{Model, Property};

use crate::world::{
    LeaseKey, Mask, Msg, MsgId, Node, Operator, Phase, SHARDS, Shard, State, bit, ring,
};

/// A deliberate protocol bug, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The shard shell hands the core a lease that never expires: a shard
    /// paused past its lease keeps sequencing.
    IgnoreLeaseExpiry,
    /// The operator commits without waiting for every prepare.
    CommitWithoutAcks,
    /// The shard acknowledges a prepare without persisting it: a restart
    /// forgets that it stopped the chat.
    AckPrepareUnpersisted,
    /// The operator removes an unresponsive shard without revoking its
    /// lapsed lease: the shard leases again under its old ring.
    ForceWithoutTombstone,
    /// The store writes blindly: no conditional insert, no fence.
    BlindStore,
    /// The store keeps its conditional insert but checks no fence.
    NoStoreFence,
    /// A shard following the others' records adopts a ring one of them
    /// has only prepared, as if it were committed.
    CatchUpFromPrepared,
}

/// Bounds and faults of one check.
#[derive(Clone, Debug)]
pub struct Handoff {
    pub scenario: Scenario,
    /// Deliberate bugs switched on (none in the real protocol).
    pub bugs: Vec<Bug>,
    /// The one chat; `{0}` places it on shard 0, `{1}` and `{0, 1}` on 1, so
    /// every ring change moves it.
    pub chat: ChatId,
    /// Time runs from 0 to this tick.
    pub max_time: u64,
    /// Lease time to live, in ticks.
    pub ttl: u64,
    pub max_crashes: u8,
    /// Most graceful stops (drain, release the lease, go down).
    pub max_stops: u8,
    /// Whether shards follow each other's records (`Ownership::catch_up`),
    /// also before they take a lease on restart.
    pub follow: bool,
    /// Most lease grants and renewals (each takes a revision).
    pub max_revision: u64,
    /// Ring changes the operator starts (aborted ones included).
    pub changes: u8,
    /// Whether control messages may be delivered more than once.
    pub duplicates: bool,
    /// Client messages, all to the one chat.
    pub messages: MsgId,
}

/// The faults one check explores, each exhaustively within its bounds (one
/// check of all of them at once would not finish in CI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Two ring changes (each may be aborted) with duplicated and reordered
    /// control messages; leases never expire.
    RingChanges,
    /// One ring change while time runs: leases lapse, shards pause past
    /// them, renewals fail, the operator removes an unresponsive shard.
    Failover,
    /// One ring change with control messages delivered more than once.
    Duplicates,
    /// One ring change while two clients' messages race to the chat.
    Clients,
    /// One ring change while a shard may crash, losing its memory, and
    /// restart from its persisted record.
    Crashes,
    /// One ring change while shards follow each other's records and one may
    /// stop gracefully (drained, its lease released) and come back, catching
    /// up before it takes a lease.
    Rejoin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Tick,
    Deliver(Msg),
    /// Deliver a copy and leave the message in the network.
    Duplicate(Msg),
    ClientSend {
        to: u32,
        msg: MsgId,
    },
    Acquire(u32),
    Renew(u32),
    /// The shard stops waiting for its in-flight write: the outcome is
    /// unknown, so it forgets the chat's head (the write may still land).
    Timeout(u32),
    Crash(u32),
    Restart(u32),
    /// The operator starts a change to these shards.
    Start(Mask),
    /// Remove a member that did not acknowledge, once its lease expired.
    Force(u32),
    /// A graceful stop: the shard, with no write in flight, releases its
    /// lease (deletes its key at its revision) and goes down.
    Stop(u32),
    /// The shard adopts a newer ring another shard's record shows.
    CatchUp(u32),
    Commit,
    Abort,
}

/// The initially committed ring: shard 0 alone, epoch 1.
const INITIAL: (u64, Mask) = (1, 0b01);

impl Handoff {
    pub fn new(scenario: Scenario, bugs: &[Bug]) -> Self {
        let pair = ring(1, 0b11);
        let chat = sample_chats(1000)
            .find(|&c| pair.owner(c) == ShardId(1))
            .expect("a chat that {0, 1} places on shard 1");
        let base = Self {
            scenario,
            bugs: bugs.to_vec(),
            chat,
            max_time: 0,
            ttl: 2,
            max_crashes: 0,
            max_stops: 0,
            follow: false,
            max_revision: SHARDS.into(),
            changes: 1,
            duplicates: false,
            messages: 1,
        };
        match scenario {
            Scenario::RingChanges => Self { changes: 2, ..base },
            Scenario::Duplicates => Self {
                duplicates: true,
                ..base
            },
            Scenario::Clients => Self {
                messages: 2,
                ..base
            },
            Scenario::Failover => Self {
                max_time: 2,
                max_revision: base.max_revision + 2,
                ..base
            },
            Scenario::Crashes => Self {
                max_time: 2,
                max_crashes: 1,
                max_revision: base.max_revision + 2,
                ..base
            },
            Scenario::Rejoin => Self {
                max_time: 2,
                max_stops: 1,
                follow: true,
                max_revision: base.max_revision + 2,
                ..base
            },
        }
    }

    pub fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }

    /// A ring newer than shard `s`'s committed one that another shard's
    /// record shows committed (or, with the bug, only prepared).
    fn newer_ring(&self, state: &State, s: u32) -> Option<Ring> {
        let Node::Up(shard) = &state.nodes[s as usize] else {
            return None;
        };
        let mine = shard.own.committed().epoch();
        let others = state.store.records.iter().filter(|r| r.shard.0 != s);
        let shown = others.flat_map(|r| {
            let prepared = r
                .prepared
                .clone()
                .filter(|_| self.has(Bug::CatchUpFromPrepared));
            [Some(r.committed.clone()), prepared]
        });
        shown
            .flatten()
            .filter(|r| r.epoch() > mine)
            .max_by_key(Ring::epoch)
    }

    /// Shard `s` adopts the newest ring another's record shows; the chat's
    /// cached head is dropped (reloaded on the next write) and the record
    /// persisted.
    fn catch_up(&self, state: &mut State, s: u32) {
        let Some(ring) = self.newer_ring(state, s) else {
            return;
        };
        let Some(shard) = state.shard_mut(s) else {
            return;
        };
        if shard.own.catch_up(ring).is_some() {
            shard.head = None;
            state.caught_up = true;
            state.persist(s);
        }
    }

    fn members(from: Mask, to: Mask) -> impl Iterator<Item = u32> {
        (0..SHARDS).filter(move |s| (from | to) & bit(*s) != 0)
    }

    /// Shards whose core says they may sequence the chat now.
    pub fn sequencers(&self, state: &State) -> usize {
        let now = Millis(state.now);
        let may = |n: &Node| match n {
            Node::Up(s) => s.own.may_sequence(self.chat, now).is_ok(),
            Node::Down { .. } => false,
        };
        state.nodes.iter().filter(|n| may(n)).count()
    }

    fn operator_actions(&self, op: &Operator, state: &State, actions: &mut Vec<Action>) {
        match op.phase {
            Phase::Idle if op.changes_left > 0 => {
                let targets = (1..1u8 << SHARDS).filter(|m| *m != op.shards);
                actions.extend(targets.map(Action::Start));
            }
            Phase::Idle => {}
            Phase::Preparing {
                shards,
                acked,
                forced,
                ..
            } => {
                let members = Self::members(op.shards, shards).fold(0, |m, s| m | bit(s));
                let missing = members & !(acked | forced);
                if missing == 0 || self.has(Bug::CommitWithoutAcks) {
                    actions.push(Action::Commit);
                }
                if forced == 0 {
                    actions.push(Action::Abort);
                }
                for s in Self::members(missing, 0) {
                    if shards & bit(s) == 0 && !state.leases[s as usize].live(state.now) {
                        actions.push(Action::Force(s));
                    }
                }
            }
        }
    }

    fn operator_step(&self, state: &mut State, action: &Action) {
        let op = &mut state.operator;
        let mut send = Vec::new();
        match (*action, op.phase) {
            (Action::Start(shards), Phase::Idle) => {
                let epoch = op.next_epoch;
                op.next_epoch += 1;
                op.changes_left -= 1;
                op.phase = Phase::Preparing {
                    epoch,
                    shards,
                    acked: 0,
                    forced: 0,
                };
                send.extend(Self::members(op.shards, shards).map(|to| Msg::Prepare {
                    to,
                    epoch,
                    shards,
                    from_epoch: op.epoch,
                }));
            }
            (
                Action::Force(s),
                Phase::Preparing {
                    epoch,
                    shards,
                    acked,
                    forced,
                },
            ) => {
                if !self.has(Bug::ForceWithoutTombstone) {
                    state.leases[s as usize] = LeaseKey::Revoked { epoch };
                }
                op.phase = Phase::Preparing {
                    epoch,
                    shards,
                    acked,
                    forced: forced | bit(s),
                };
            }
            (Action::Commit, Phase::Preparing { epoch, shards, .. }) => {
                // Commit acks are not awaited: a member that missed the
                // commit refuses the next prepare (from-epoch mismatch), and
                // the operator aborts that change.
                send.extend(Self::members(op.shards, shards).map(|to| Msg::Commit { to, epoch }));
                (op.epoch, op.shards) = (epoch, shards);
                op.phase = Phase::Idle;
            }
            (Action::Abort, Phase::Preparing { epoch, shards, .. }) => {
                send.extend(Self::members(op.shards, shards).map(|to| Msg::Abort { to, epoch }));
                op.phase = Phase::Idle;
            }
            _ => unreachable!("operator action {action:?} in {:?}", op.phase),
        }
        state.net.extend(send);
    }

    fn shard_actions(&self, s: u32, state: &State, actions: &mut Vec<Action>) {
        match &state.nodes[s as usize] {
            Node::Down { .. } => actions.push(Action::Restart(s)),
            Node::Up(shard) => {
                let held = shard.own.lease().filter(|l| Millis(state.now) < l.expiry);
                if state.revision < self.max_revision {
                    actions.push(if held.is_some() {
                        Action::Renew(s)
                    } else {
                        Action::Acquire(s)
                    });
                }
                if shard.inflight.is_some() {
                    actions.push(Action::Timeout(s));
                }
                if state.crashes < self.max_crashes {
                    actions.push(Action::Crash(s));
                }
                if state.stops < self.max_stops && shard.inflight.is_none() {
                    actions.push(Action::Stop(s));
                }
                if self.follow && self.newer_ring(state, s).is_some() {
                    actions.push(Action::CatchUp(s));
                }
                // Clients send one request at a time, any message not yet
                // acked (a client may give up and another send), to any
                // shard (their ring may be stale).
                if !state.net.iter().any(|m| matches!(m, Msg::Send { .. })) {
                    let unacked = (0..self.messages).filter(|m| !state.acked.contains_key(m));
                    actions.extend(unacked.map(|msg| Action::ClientSend { to: s, msg }));
                }
            }
        }
    }
}

impl Model for Handoff {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let (epoch, mask) = INITIAL;
        let mut state = State::initial(&ring(epoch, mask), mask);
        state.operator.changes_left = self.changes;
        // Both shards start holding a lease.
        for s in 0..SHARDS {
            let revision = state.revision + 1;
            state.revision = revision;
            state.leases[s as usize] = LeaseKey::Held {
                revision,
                expiry: self.ttl,
            };
            let shard = state.shard_mut(s).expect("up");
            shard
                .own
                .lease_acquired(self.shell_expiry(self.ttl), revision);
        }
        vec![state]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.now < self.max_time {
            actions.push(Action::Tick);
        }
        for &m in &state.net {
            // A message to a crashed shard waits for its restart.
            if m.to_shard()
                .is_some_and(|s| matches!(state.nodes[s as usize], Node::Down { .. }))
            {
                continue;
            }
            actions.push(Action::Deliver(m));
            if self.duplicates && m.may_duplicate() {
                actions.push(Action::Duplicate(m));
            }
        }
        self.operator_actions(&state.operator, state, actions);
        for s in 0..SHARDS {
            self.shard_actions(s, state, actions);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Tick => state.now += 1,
            Action::Deliver(m) => {
                state.net.remove(&m);
                self.deliver(&mut state, m);
            }
            Action::Duplicate(m) => self.deliver(&mut state, m),
            Action::ClientSend { to, msg } => {
                state.net.insert(Msg::Send { to, msg });
            }
            Action::Acquire(_) | Action::Renew(_) => self.lease_step(&mut state, &action)?,
            Action::Timeout(s) => {
                let shard = state.shard_mut(s)?;
                shard.inflight.take()?;
                shard.head = None;
                if let Some(epoch) = shard.ack_after_flush.take() {
                    self.ack_prepare(&mut state, s, epoch);
                }
            }
            Action::Crash(s) => {
                let Node::Up(shard) = &state.nodes[s as usize] else {
                    return None;
                };
                state.nodes[s as usize] = Node::Down {
                    life: shard.life + 1,
                };
                state.crashes += 1;
            }
            Action::Restart(s) => {
                let Node::Down { life } = state.nodes[s as usize] else {
                    return None;
                };
                let own = Ownership::recover(state.store.records[s as usize].clone());
                state.nodes[s as usize] = Node::Up(Shard {
                    life,
                    own,
                    head: None,
                    inflight: None,
                    ack_after_flush: None,
                });
                // The records are read before a lease is taken.
                if self.follow {
                    self.catch_up(&mut state, s);
                }
            }
            Action::Stop(s) => {
                let Node::Up(shard) = &state.nodes[s as usize] else {
                    return None;
                };
                let held = shard.own.lease().map(|l| l.revision);
                if let (LeaseKey::Held { revision, .. }, Some(mine)) =
                    (state.leases[s as usize], held)
                    && revision == mine
                {
                    state.leases[s as usize] = LeaseKey::Absent;
                }
                state.nodes[s as usize] = Node::Down {
                    life: shard.life + 1,
                };
                state.stops += 1;
            }
            Action::CatchUp(s) => self.catch_up(&mut state, s),
            Action::Start(_) | Action::Force(_) | Action::Commit | Action::Abort => {
                self.operator_step(&mut state, &action);
            }
        }
        (state != *last).then_some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::of(self.scenario)
    }
}
