//! The invariants the checker proves, and the coverage each scenario must
//! reach so that they cannot hold vacuously.

use std::collections::BTreeSet;

use stateright::Property;

use crate::model::{Handoff, Scenario};
use crate::world::{LeaseKey, MsgId, State};

pub fn of(scenario: Scenario) -> Vec<Property<Handoff>> {
    let mut properties = vec![
        Property::always("one sequencer per chat", |m: &Handoff, s: &State| {
            m.sequencers(s) <= 1
        }),
        Property::always("no acked message lost", |_, s: &State| {
            let stored = |seq, msg| s.store.messages.get(seq).is_some_and(|(m, _)| *m == msg);
            s.acked.iter().all(|(msg, seq)| stored(seq, *msg))
        }),
        Property::always("seqs gapless per chat", |_, s: &State| {
            let n = s.store.messages.len() as u64;
            s.store.messages.keys().copied().eq(1..=n)
        }),
        Property::always("each message stored and acked once", |_, s: &State| {
            let mut seen: Vec<MsgId> = s.store.messages.values().map(|(m, _)| *m).collect();
            seen.sort_unstable();
            seen.windows(2).all(|w| w[0] != w[1]) && !s.ack_conflict
        }),
    ];
    // Coverage: each scenario must reach what it is about.
    properties.push(match scenario {
        Scenario::RingChanges | Scenario::Duplicates => {
            Property::sometimes("the new owner acked a write", |_, s: &State| {
                s.store.messages.values().any(|(_, w)| *w == 1) && !s.acked.is_empty()
            })
        }
        Scenario::Clients => Property::sometimes("both shards wrote the chat", |_, s: &State| {
            let writers: BTreeSet<u32> = s.store.messages.values().map(|(_, w)| *w).collect();
            writers.len() == 2
        }),
        Scenario::Failover => Property::sometimes(
            "a failover committed over a lapsed lease",
            |_, s: &State| {
                let revoked = s.leases.iter().any(
                    |l| matches!(l, LeaseKey::Revoked { epoch } if *epoch <= s.operator.epoch),
                );
                revoked && s.store.messages.values().any(|(_, w)| *w == 1)
            },
        ),
        Scenario::Crashes => Property::sometimes("a write acked after a crash", |_, s: &State| {
            s.crashes > 0 && s.acked.len() == s.store.messages.len() && !s.acked.is_empty()
        }),
        Scenario::Rejoin => Property::sometimes(
            "a stopped shard came back by the records and a write was acked",
            |_, s: &State| s.stops > 0 && s.caught_up && !s.acked.is_empty(),
        ),
    });
    if scenario == Scenario::Failover {
        properties.push(Property::sometimes(
            "a late write was fenced out",
            |_, s: &State| s.store.fenced_out,
        ));
    }
    properties
}
