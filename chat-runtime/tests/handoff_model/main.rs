//! Model check of the shard handoff protocol (`docs/cluster.md`).
//!
//! Shards in the model run the real `chat_runtime::cluster::Ownership` core;
//! the checker explores every interleaving of ring changes (prepare, commit,
//! abort, forced failover), lease grants and expiries, client sends, store
//! writes, crashes and network faults within the bounds of each
//! [`Scenario`]. Each deliberately broken variant must produce a
//! counterexample, so the invariants cannot hold vacuously.

mod model;
mod nodes;
mod properties;
mod world;

use std::collections::BTreeSet;
use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model};

use model::{Bug, Handoff, Scenario};

const ONE_SEQUENCER: &str = "one sequencer per chat";
const NO_ACKED_LOST: &str = "no acked message lost";

/// Checks `model` on every reachable state (or until `stop` is found),
/// printing what it explored. A broken model is checked on one thread, so
/// that breadth-first order makes the first counterexample a shortest one
/// (a full check keeps the last one it met).
fn check(model: Handoff, stop: Option<&'static str>) -> impl Checker<Handoff> {
    let label = format!("{:?}, bugs {:?}", model.scenario, model.bugs);
    let started = Instant::now();
    let threads = if model.bugs.is_empty() { 2 } else { 1 };
    let mut builder = model.checker().threads(threads);
    if let Some(name) = stop {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name])));
    }
    let checker = builder.spawn_bfs().join();
    println!(
        "handoff model {label}: {} states ({} unique), depth {}, {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    checker
}

/// `property` fails on `model`; prints a shortest counterexample.
fn caught(model: Handoff, property: &'static str) {
    let path = check(model, Some(property)).assert_any_discovery(property);
    println!(
        "{property}: shortest counterexample {:?}",
        path.into_actions()
    );
}

/// Every `always` holds and every `sometimes` (coverage) was reached.
fn holds(scenario: Scenario) {
    let checker = check(Handoff::new(scenario, &[]), None);
    assert!(checker.is_done(), "the check ran to completion");
    checker.assert_properties();
}

#[test]
fn ring_changes_with_aborts_and_reordering() {
    holds(Scenario::RingChanges);
}

#[test]
fn duplicated_control_messages() {
    holds(Scenario::Duplicates);
}

#[test]
fn racing_clients() {
    holds(Scenario::Clients);
}

#[test]
fn failover_of_a_shard_paused_past_its_lease() {
    holds(Scenario::Failover);
}

#[test]
fn crashes_and_restarts_during_a_change() {
    holds(Scenario::Crashes);
}

#[test]
fn graceful_stops_and_catching_up_from_the_records() {
    holds(Scenario::Rejoin);
}

#[test]
fn catching_up_to_a_ring_only_prepared_makes_two_sequencers() {
    let model = Handoff::new(Scenario::Rejoin, &[Bug::CatchUpFromPrepared]);
    caught(model, ONE_SEQUENCER);
}

#[test]
fn without_the_lease_check_two_shards_sequence_yet_the_conditional_insert_keeps_the_log() {
    // Both the lease check and the store's fence are off: only the
    // conditional insert on (chat, seq) stands between a paused shard and
    // the log.
    let bugs = [Bug::IgnoreLeaseExpiry, Bug::NoStoreFence];
    caught(Handoff::new(Scenario::Failover, &bugs), ONE_SEQUENCER);
    // Explored in full, the overlap is harmless to the log.
    let checker = check(Handoff::new(Scenario::Failover, &bugs), None);
    checker.assert_any_discovery(ONE_SEQUENCER);
    checker.assert_no_discovery(NO_ACKED_LOST);
    checker.assert_no_discovery("seqs gapless per chat");
    checker.assert_no_discovery("each message stored and acked once");
}

#[test]
fn committing_before_every_prepare_is_acked_makes_two_sequencers() {
    let model = Handoff::new(Scenario::RingChanges, &[Bug::CommitWithoutAcks]);
    caught(model, ONE_SEQUENCER);
}

#[test]
fn acknowledging_an_unpersisted_prepare_makes_two_sequencers_after_a_restart() {
    let model = Handoff::new(Scenario::Crashes, &[Bug::AckPrepareUnpersisted]);
    caught(model, ONE_SEQUENCER);
}

#[test]
fn removing_a_shard_without_revoking_its_lease_makes_two_sequencers() {
    let model = Handoff::new(Scenario::Failover, &[Bug::ForceWithoutTombstone]);
    caught(model, ONE_SEQUENCER);
}

#[test]
fn a_store_without_its_conditional_insert_loses_acked_messages() {
    let model = Handoff::new(Scenario::Clients, &[Bug::BlindStore]);
    caught(model, NO_ACKED_LOST);
}
