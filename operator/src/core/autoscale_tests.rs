//! Table tests of the autoscaler: load from readings, the counts each load
//! calls for, and when a recommendation becomes a step.

use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn shard(messages: u64) -> PodReport {
    PodReport {
        messages,
        ..PodReport::default()
    }
}

fn gateway(connections: u64, latency: &[(f64, u64)]) -> PodReport {
    PodReport {
        connections,
        latency: latency.to_vec(),
        ..PodReport::default()
    }
}

fn reading(s: i64, shards: &[(u32, u64)], gateways: &[(&str, PodReport)]) -> Reading {
    Reading {
        at: at(s),
        shards: shards.iter().map(|&(o, m)| (o, shard(m))).collect(),
        gateways: gateways
            .iter()
            .map(|(n, r)| (n.to_string(), r.clone()))
            .collect(),
        unreachable: Vec::new(),
    }
}

#[test]
fn rates_are_increases_over_the_interval_and_survive_restarts() {
    let prev = reading(0, &[(0, 1_000), (1, 50_000)], &[]);
    // Shard 1 restarted (its counter went back) and counted 2,000 since;
    // shard 2 is new.
    let cur = reading(10, &[(0, 11_000), (1, 2_000), (2, 500)], &[]);
    let load = load(&prev, &cur);
    let rates: Vec<(u32, i64)> = load
        .shards
        .iter()
        .map(|s| (s.ordinal, s.sends_per_second))
        .collect();
    assert_eq!(rates, vec![(0, 1_000), (1, 200), (2, 50)]);
    assert_eq!(load.sends_per_second, 1_250);
}

#[test]
fn p99_merges_the_gateways_bucket_increases() {
    let bounds = |a: u64, b: u64, c: u64| [(0.01, a), (0.1, b), (f64::INFINITY, c)];
    let prev = reading(
        0,
        &[],
        &[
            ("g1", gateway(10, &bounds(500, 0, 0))),
            ("g2", gateway(20, &bounds(0, 0, 0))),
        ],
    );
    // Over the interval: 90 sends ≤ 10 ms, 10 in (10, 100] ms.
    let cur = reading(
        10,
        &[],
        &[
            ("g1", gateway(15, &bounds(560, 5, 0))),
            ("g2", gateway(25, &bounds(30, 5, 0))),
        ],
    );
    let load = load(&prev, &cur);
    assert_eq!(load.connections, 40);
    assert_eq!(load.gateways, 2);
    // Rank 99 of 100: 9 of the 10 in the second bucket → 10 + 90 × 0.9 ms.
    assert_eq!(load.p99_send_millis, Some(91));
    let idle = reading(20, &[], &[("g1", gateway(15, &bounds(560, 5, 0)))]);
    assert_eq!(super::load(&cur, &idle).p99_send_millis, None);
}

#[test]
fn quantile_of_the_unbounded_bucket_is_its_lower_bound() {
    let h = [(0.5, 1), (f64::INFINITY, 99)];
    assert_eq!(quantile(&h, 0.99), Some(0.5));
    assert_eq!(quantile(&[(0.5, 0)], 0.99), None);
}

fn shard_spec() -> ShardAutoscale {
    serde_json::from_value(serde_json::json!({
        "min": 2, "max": 6, "targetSendsPerSecond": 1000, "targetP99Millis": 200
    }))
    .unwrap()
}

fn sends(per_second: i64, p99: Option<i64>) -> LoadStatus {
    LoadStatus {
        sends_per_second: per_second,
        p99_send_millis: p99,
        ..LoadStatus::default()
    }
}

#[test]
fn shards_wanted_by_rate_latency_band_and_bounds() {
    // (current, sends/s, p99 ms) → wanted
    let table = [
        (2, 2_000, None, 2),      // exactly at target: stay
        (2, 2_001, None, 3),      // above: one more
        (2, 4_500, None, 5),      // far above: as many as it takes
        (3, 2_000, None, 3),      // 2 would be at 100 %: inside the band, stay
        (3, 1_800, None, 2),      // 2 at 90 %: scale down
        (3, 0, None, 2),          // idle: min
        (2, 100_000, None, 6),    // max
        (3, 2_500, Some(250), 4), // slow: one more than it has
        (3, 5_000, Some(250), 5), // slow, and the rate asks for more still
        (3, 2_500, Some(150), 3), // fast enough
        (3, 1_000, Some(250), 4), // slow beats the band
    ];
    for (current, rate, p99, want) in table {
        let got = shards_wanted(&shard_spec(), current, &sends(rate, p99));
        assert_eq!(
            got.count, want,
            "{current} shards at {rate}/s, p99 {p99:?}: {}",
            got.why
        );
    }
    let slow = shards_wanted(&shard_spec(), 3, &sends(2_500, Some(250)));
    assert_eq!(
        slow.why,
        "p99 send latency 250 ms is above the target 200 ms"
    );
}

#[test]
fn gateways_wanted_by_connections() {
    let spec: GatewayAutoscale = serde_json::from_value(serde_json::json!({
        "min": 1, "max": 10, "targetConnections": 10000
    }))
    .unwrap();
    let conns = |n| LoadStatus {
        connections: n,
        ..LoadStatus::default()
    };
    for (current, open, want) in [
        (1, 10_000, 1),
        (1, 10_001, 2),
        (4, 25_000, 3),
        (3, 27_000, 3),
        (3, 0, 1),
        (3, 500_000, 10),
    ] {
        assert_eq!(
            gateways_wanted(&spec, current, &conns(open)).count,
            want,
            "{current} at {open}"
        );
    }
}

fn policy(max_step: Option<i32>) -> Policy {
    Policy {
        min: 1,
        max: 10,
        up_window: SignedDuration::from_secs(60),
        down_window: SignedDuration::from_secs(300),
        max_step,
    }
}

fn history(recs: &[(i64, i32)]) -> Vec<Recommendation> {
    recs.iter()
        .map(|&(s, count)| Recommendation { at: at(s), count })
        .collect()
}

#[test]
fn a_step_needs_the_whole_window_to_agree() {
    let p = policy(Some(1));
    let scale = |to| Verdict::Scale { to, why: None };
    // (recommendations (seconds, count), now) → verdict at current 3
    let up = [
        (history(&[(0, 5), (30, 4), (60, 5)]), 60, scale(4)), // covered, all above: one step
        (
            history(&[(30, 4), (60, 5)]),
            60,
            Verdict::Hold {
                why: Some("the load must call for 5 for 60 s before scaling up".into()),
            },
        ), // window not covered yet
        (
            history(&[(0, 5), (30, 3), (60, 5)]),
            60,
            Verdict::Hold {
                why: Some("the load must call for 5 for 60 s before scaling up".into()),
            },
        ), // a dip inside the window
        (history(&[(0, 3), (60, 3)]), 60, Verdict::Hold { why: None }),
    ];
    for (h, now, want) in up {
        assert_eq!(decide(&p, 3, &h, at(now), None), want, "{h:?}");
    }
    // Scaling down waits the longer window.
    let down = history(&[(0, 1), (200, 1), (300, 2)]);
    assert_eq!(decide(&p, 3, &down, at(300), None), scale(2));
    let short = history(&[(100, 1), (300, 1)]);
    assert!(matches!(
        decide(&p, 3, &short, at(300), None),
        Verdict::Hold { .. }
    ));
}

#[test]
fn gateways_jump_to_what_the_whole_window_agrees_on() {
    let h = history(&[(0, 7), (30, 6), (60, 9)]);
    assert_eq!(
        decide(&policy(None), 3, &h, at(60), None),
        Verdict::Scale { to: 6, why: None }
    );
    let down = history(&[(0, 1), (200, 2), (300, 1)]);
    assert_eq!(
        decide(&policy(None), 5, &down, at(300), None),
        Verdict::Scale { to: 2, why: None }
    );
}

#[test]
fn nothing_moves_while_blocked_and_bounds_apply_at_once() {
    let p = policy(Some(1));
    let h = history(&[(0, 5), (60, 5)]);
    assert_eq!(
        decide(&p, 3, &h, at(60), Some("the ring is changing")),
        Verdict::Hold {
            why: Some("not scaling while the ring is changing".into())
        }
    );
    // Out of bounds: no window, no step limit.
    assert_eq!(
        decide(&p, 14, &[], at(0), None),
        Verdict::Scale {
            to: 10,
            why: Some("the count is outside 1..=10".into())
        }
    );
}

#[test]
fn memory_keeps_just_enough_to_cover_the_longest_window() {
    let p = policy(Some(1));
    let mut h = VecDeque::new();
    for s in (0..=600).step_by(15) {
        remember(
            &mut h,
            Recommendation {
                at: at(s),
                count: 1,
            },
            &p,
        );
    }
    assert_eq!(h.front().unwrap().at, at(300), "one at the window's start");
    assert_eq!(h.back().unwrap().at, at(600));
}

#[test]
fn readings_are_due_once_an_interval_passed() {
    let mut m = Memory::default();
    let every = SignedDuration::from_secs(15);
    assert!(m.due(at(0), every));
    assert!(
        m.read(reading(0, &[(0, 0)], &[])).is_none(),
        "one reading has no rate"
    );
    assert!(!m.due(at(14), every));
    assert!(m.due(at(15), every));
    let load = m.read(reading(15, &[(0, 3_000)], &[])).unwrap();
    assert_eq!(load.sends_per_second, 200);
}

#[test]
fn status_says_why_it_holds_and_what_it_did_last() {
    let wanted = Wanted {
        count: 3,
        why: "2500 sends/s at a target of 1000 per shard".into(),
    };
    let scaled = scale_status(
        None,
        &wanted,
        &Verdict::Scale { to: 3, why: None },
        2,
        at(0),
    );
    assert_eq!(
        scaled.last_scale_reason.as_deref(),
        Some("2 → 3: 2500 sends/s at a target of 1000 per shard")
    );
    let held = scale_status(
        Some(&scaled),
        &wanted,
        &Verdict::Hold {
            why: Some("x".into()),
        },
        3,
        at(10),
    );
    assert_eq!(
        (held.holding.as_deref(), held.last_scale_time),
        (Some("x"), Some(Time(at(0))))
    );
}
