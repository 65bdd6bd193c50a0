//! The nodes' handlers: a shard's shell around the ownership core, the
//! lease service and the store. What the shell does here (claim a chat's
//! head under its fence, flush before acknowledging a prepare, persist the
//! ownership record, ignore replies to an earlier incarnation) is the
//! contract the real shard process must follow.

use chat_runtime::cluster::Millis;

use crate::model::{Action, Bug, Handoff};
use crate::world::{LeaseKey, Msg, MsgId, Node, Phase, State, bit, ring};

impl Handoff {
    /// The expiry the shard's shell hands its core.
    pub(crate) fn shell_expiry(&self, expiry: u64) -> Millis {
        if self.has(Bug::IgnoreLeaseExpiry) {
            Millis(u64::MAX)
        } else {
            Millis(expiry)
        }
    }

    /// Whether the store checks and raises the chat's fence.
    fn store_fences(&self) -> bool {
        !self.has(Bug::BlindStore) && !self.has(Bug::NoStoreFence)
    }

    pub(crate) fn lease_step(&self, state: &mut State, action: &Action) -> Option<()> {
        let (now, ttl) = (state.now, self.ttl);
        let revision = state.revision + 1;
        match *action {
            Action::Acquire(s) => {
                let Node::Up(shard) = &mut state.nodes[s as usize] else {
                    return None;
                };
                let free = match state.leases[s as usize] {
                    LeaseKey::Absent => true,
                    LeaseKey::Held { expiry, .. } => expiry <= now,
                    LeaseKey::Revoked { epoch } => shard.own.committed().epoch() >= epoch,
                };
                if !free {
                    return None;
                }
                state.leases[s as usize] = LeaseKey::Held {
                    revision,
                    expiry: now + ttl,
                };
                shard
                    .own
                    .lease_acquired(self.shell_expiry(now + ttl), revision);
            }
            Action::Renew(s) => {
                let Node::Up(shard) = &mut state.nodes[s as usize] else {
                    return None;
                };
                let held = shard.own.lease()?;
                match state.leases[s as usize] {
                    LeaseKey::Held {
                        revision: r,
                        expiry,
                    } if r == held.revision && now < expiry => {
                        if now + ttl == expiry {
                            return None; // nothing to extend
                        }
                        state.leases[s as usize] = LeaseKey::Held {
                            revision,
                            expiry: now + ttl,
                        };
                        shard
                            .own
                            .lease_renewed(self.shell_expiry(now + ttl), revision);
                    }
                    _ => {
                        shard.own.lease_lost();
                        return Some(());
                    }
                }
            }
            _ => unreachable!("not a lease action: {action:?}"),
        }
        state.revision = revision;
        Some(())
    }

    /// A client's send reaches shard `s`.
    pub(crate) fn on_send(&self, state: &mut State, s: u32, msg: MsgId) {
        let now = Millis(state.now);
        let Some(shard) = state.shard_mut(s) else {
            return;
        };
        if shard.inflight.is_some() {
            return; // the model's gateway gives up; the client retries
        }
        let Ok(fence) = shard.own.may_sequence(self.chat, now) else {
            return;
        };
        let head = match shard.head {
            Some((f, head)) if f == fence => head,
            _ => {
                // Claim the chat under this fence and load its head.
                if self.store_fences() {
                    if !state.store.admits(fence) {
                        state.store.fenced_out = true;
                        return;
                    }
                    state.store.raise(fence);
                }
                let head = state.store.head();
                let shard = state.shard_mut(s).expect("up");
                shard.head = Some((fence, head));
                head
            }
        };
        if let Some(seq) = state.store.seq_of(msg) {
            state.ack(msg, seq); // an idempotent retry
            return;
        }
        let shard = state.shard_mut(s).expect("up");
        let (seq, life) = (head + 1, shard.life);
        shard.inflight = Some((msg, seq, fence));
        state.net.insert(Msg::Append {
            from: s,
            life,
            fence,
            seq,
            msg,
        });
    }

    /// A store write arrives: the conditional insert and the fence check.
    pub(crate) fn on_append(&self, state: &mut State, m: Msg) {
        let Msg::Append {
            from,
            life,
            fence,
            seq,
            msg,
        } = m
        else {
            unreachable!()
        };
        let store = &mut state.store;
        let fenced_out = self.store_fences() && !store.admits(fence);
        store.fenced_out |= fenced_out;
        let taken = !self.has(Bug::BlindStore) && store.messages.contains_key(&seq);
        let ok = !fenced_out && !taken;
        if ok {
            store.messages.insert(seq, (msg, from));
            if self.store_fences() {
                store.raise(fence);
            }
        }
        state.net.insert(Msg::Appended {
            to: from,
            life,
            seq,
            msg,
            ok,
        });
    }

    /// The store's answer reaches the shard that wrote.
    pub(crate) fn on_appended(
        &self,
        state: &mut State,
        to: u32,
        life: u8,
        seq: u64,
        msg: MsgId,
        ok: bool,
    ) {
        let Some(shard) = state.shard_mut(to) else {
            return;
        };
        let Some((m, s, fence)) = shard.inflight else {
            return;
        };
        if shard.life != life || (m, s) != (msg, seq) {
            return;
        }
        shard.inflight = None;
        shard.head = ok.then_some((fence, seq));
        if let Some(epoch) = shard.ack_after_flush.take() {
            self.ack_prepare(state, to, epoch);
        }
        if ok {
            state.ack(msg, seq);
        }
    }

    pub(crate) fn on_control(&self, state: &mut State, m: Msg) {
        match m {
            Msg::Prepare {
                to,
                epoch,
                shards,
                from_epoch,
            } => {
                let chat = self.chat;
                let Some(shard) = state.shard_mut(to) else {
                    return;
                };
                let Ok(handoff) = shard.own.prepare(ring(epoch, shards), from_epoch) else {
                    return;
                };
                if handoff.releases(chat) {
                    shard.head = None;
                    if shard.inflight.is_some() {
                        shard.ack_after_flush = Some(epoch);
                        return;
                    }
                }
                self.ack_prepare(state, to, epoch);
            }
            Msg::Commit { to, epoch } => {
                let Some(shard) = state.shard_mut(to) else {
                    return;
                };
                if shard.own.commit(epoch).is_ok() {
                    state.persist(to);
                }
            }
            Msg::Abort { to, epoch } => {
                let Some(shard) = state.shard_mut(to) else {
                    return;
                };
                shard.own.abort(epoch);
                state.persist(to);
            }
            _ => unreachable!("not a control message: {m:?}"),
        }
    }

    /// Persists the prepared ring, then acknowledges the prepare.
    pub(crate) fn ack_prepare(&self, state: &mut State, s: u32, epoch: u64) {
        if !self.has(Bug::AckPrepareUnpersisted) {
            state.persist(s);
        }
        Self::on_prepared(state, s, epoch);
    }

    pub(crate) fn on_prepared(state: &mut State, from: u32, epoch: u64) {
        if let Phase::Preparing {
            epoch: e, acked, ..
        } = &mut state.operator.phase
            && epoch == *e
        {
            *acked |= bit(from);
        }
    }

    pub(crate) fn deliver(&self, state: &mut State, m: Msg) {
        match m {
            Msg::Send { to, msg } => self.on_send(state, to, msg),
            Msg::Append { .. } => self.on_append(state, m),
            Msg::Appended {
                to,
                life,
                seq,
                msg,
                ok,
            } => self.on_appended(state, to, life, seq, msg, ok),
            Msg::Prepare { .. } | Msg::Commit { .. } | Msg::Abort { .. } => {
                self.on_control(state, m)
            }
        }
    }
}
