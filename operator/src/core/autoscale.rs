//! The autoscaler, pure: from two reads of the pods' own status, the load;
//! from the load and `spec.*.autoscale`, the count each role calls for; from
//! the recommendations of the stabilization window, whether to step now.
//!
//! Rules (the HorizontalPodAutoscaler's, with a ring in mind):
//! - shards want `ceil(sends/s ÷ target)`, one more than they have while the
//!   gateways' p99 is over its target; they scale down only once
//!   `ceil(sends/s ÷ 0.9 target)` is below the count (a 10 % band, so a
//!   load right at a boundary does not flap);
//! - gateways want `ceil(connections ÷ target)`, with the same band;
//! - a step is taken only when *every* recommendation of the window is on
//!   the same side of the count, and the window is covered (an operator that
//!   just started waits a whole window);
//! - shards move one at a time (each step is a two-phase ring change that
//!   moves about 1/N of the chats); gateways go straight to the least
//!   (scaling up) or most (down) the window recommended;
//! - a count outside `min..=max` is brought inside at once;
//! - nothing moves while the cluster is paused, Degraded, or changing its
//!   ring — the status says which.

use std::collections::{BTreeMap, VecDeque};

use confab_api::cluster::{
    AutoscaleStatus, GatewayAutoscale, LoadStatus, ScaleStatus, ShardAutoscale, ShardLoad,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// What one pod reported through the control API's `Status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodReport {
    /// Messages sequenced since the process started.
    pub messages: u64,
    /// Open client connections.
    pub connections: u64,
    /// Send→ack latency: `(upper bound s, count in that bucket)`, since start.
    pub latency: Vec<(f64, u64)>,
    pub ring_epoch: u64,
    pub owned_chats: u64,
    pub lease_held: bool,
}

/// One read of every pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub at: Timestamp,
    /// By shard ordinal.
    pub shards: BTreeMap<u32, PodReport>,
    /// By gateway pod name.
    pub gateways: BTreeMap<String, PodReport>,
    /// Pods that did not answer, with why.
    pub unreachable: Vec<String>,
}

/// `now - then` of a counter that restarts at 0 when its process does.
fn increase(then: Option<u64>, now: u64) -> u64 {
    match then {
        Some(then) if then <= now => now - then,
        // Restarted (or new) within the interval: all it counted is new.
        _ => now,
    }
}

/// The load between `prev` and `cur`.
pub fn load(prev: &Reading, cur: &Reading) -> LoadStatus {
    let seconds = cur.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let per_second = |n: u64| (n as f64 / seconds).round() as i64;
    let shards: Vec<ShardLoad> = cur
        .shards
        .iter()
        .map(|(&ordinal, r)| {
            let before = prev.shards.get(&ordinal).map(|p| p.messages);
            ShardLoad {
                ordinal,
                ring_epoch: r.ring_epoch,
                owned_chats: r.owned_chats,
                lease_held: r.lease_held,
                sends_per_second: per_second(increase(before, r.messages)),
            }
        })
        .collect();
    let mut latency: Vec<(f64, u64)> = Vec::new();
    for (pod, r) in &cur.gateways {
        let before = prev.gateways.get(pod);
        for (i, &(le, count)) in r.latency.iter().enumerate() {
            let then = before.and_then(|b| b.latency.get(i)).map(|&(_, n)| n);
            let restarted = before.is_some_and(|b| total(&b.latency) > total(&r.latency));
            let new = increase(if restarted { None } else { then }, count);
            match latency.get_mut(i) {
                Some(bucket) => bucket.1 += new,
                None => latency.push((le, new)),
            }
        }
    }
    LoadStatus {
        observed_at: Time(cur.at),
        sends_per_second: shards.iter().map(|s| s.sends_per_second).sum(),
        p99_send_millis: quantile(&latency, 0.99).map(|s| (s * 1000.0).round() as i64),
        connections: cur.gateways.values().map(|g| g.connections as i64).sum(),
        gateways: cur.gateways.len() as i32,
        shards,
        unreachable: cur.unreachable.clone(),
    }
}

fn total(buckets: &[(f64, u64)]) -> u64 {
    buckets.iter().map(|b| b.1).sum()
}

/// The `q` quantile of a histogram of per-bucket counts, interpolating
/// linearly inside the bucket as Prometheus' `histogram_quantile` does; the
/// unbounded last bucket answers its lower bound. `None` when empty.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let n = total(buckets);
    if n == 0 {
        return None;
    }
    let rank = q * n as f64;
    let mut below = 0u64;
    let mut lower = 0.0;
    for &(le, count) in buckets {
        if count > 0 && (below + count) as f64 >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let into = (rank - below as f64) / count as f64;
            return Some(lower + (le - lower) * into);
        }
        below += count;
        lower = le;
    }
    Some(lower)
}

/// A count a role calls for, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub count: i32,
    pub why: String,
}

/// `ceil(amount ÷ per)` as a count.
fn needed(amount: f64, per: f64) -> i32 {
    (amount / per).ceil().clamp(0.0, i32::MAX as f64) as i32
}

/// Keeps `current` unless `up` asks for more or `down` (the banded count)
/// for fewer.
fn banded(current: i32, up: i32, down: i32) -> i32 {
    if up > current { up } else { down.min(current) }
}

/// The shard count `load` calls for.
pub fn shards_wanted(spec: &ShardAutoscale, current: i32, load: &LoadStatus) -> Wanted {
    let target = f64::from(spec.target_sends_per_second);
    let sends = load.sends_per_second as f64;
    let by_rate = banded(current, needed(sends, target), needed(sends, 0.9 * target));
    let slow = match (spec.target_p99_millis, load.p99_send_millis) {
        (Some(target), Some(p99)) if p99 > i64::from(target) => Some((p99, target)),
        _ => None,
    };
    let (count, why) = match slow {
        Some((p99, target)) if current + 1 > by_rate => (
            current + 1,
            format!("p99 send latency {p99} ms is above the target {target} ms"),
        ),
        _ => (
            by_rate,
            format!(
                "{} sends/s at a target of {} per shard",
                load.sends_per_second, spec.target_sends_per_second
            ),
        ),
    };
    Wanted {
        count: count.clamp(spec.min, spec.max),
        why,
    }
}

/// The gateway count `load` calls for.
pub fn gateways_wanted(spec: &GatewayAutoscale, current: i32, load: &LoadStatus) -> Wanted {
    let target = f64::from(spec.target_connections);
    let open = load.connections as f64;
    let count = banded(current, needed(open, target), needed(open, 0.9 * target));
    Wanted {
        count: count.clamp(spec.min, spec.max),
        why: format!(
            "{} connections at a target of {} per gateway",
            load.connections, spec.target_connections
        ),
    }
}

/// One recommendation, as remembered for the stabilization windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub at: Timestamp,
    pub count: i32,
}

/// How one role scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub min: i32,
    pub max: i32,
    pub up_window: SignedDuration,
    pub down_window: SignedDuration,
    /// Most a step may change the count; `None`: as far as the window says.
    pub max_step: Option<i32>,
}

impl Policy {
    pub fn shards(spec: &ShardAutoscale) -> Self {
        Self {
            min: spec.min,
            max: spec.max,
            up_window: seconds(spec.scale_up_stabilization_seconds),
            down_window: seconds(spec.scale_down_stabilization_seconds),
            max_step: Some(1),
        }
    }

    pub fn gateways(spec: &GatewayAutoscale) -> Self {
        Self {
            min: spec.min,
            max: spec.max,
            up_window: seconds(spec.scale_up_stabilization_seconds),
            down_window: seconds(spec.scale_down_stabilization_seconds),
            max_step: None,
        }
    }

    /// The longest window: how long recommendations are remembered.
    pub fn memory(&self) -> SignedDuration {
        self.up_window.max(self.down_window)
    }
}

fn seconds(s: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(s.max(0)))
}

/// What to do about one role's count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the count; `why` when the recommendation differs from it.
    Hold { why: Option<String> },
    /// Set the count to `to`; `why` when not for the load's sake.
    Scale { to: i32, why: Option<String> },
}

/// The verdict for a role at `current`, given the recommendations so far
/// (oldest first, the newest is this reading's) and what blocks scaling.
pub fn decide(
    policy: &Policy,
    current: i32,
    history: &[Recommendation],
    now: Timestamp,
    blocked: Option<&str>,
) -> Verdict {
    if let Some(why) = blocked {
        let differs = history.last().is_some_and(|r| r.count != current);
        return Verdict::Hold {
            why: differs.then(|| format!("not scaling while {why}")),
        };
    }
    let bounded = current.clamp(policy.min, policy.max);
    if bounded != current {
        let why = format!("the count is outside {}..={}", policy.min, policy.max);
        return Verdict::Scale {
            to: bounded,
            why: Some(why),
        };
    }
    let Some(newest) = history.last() else {
        return Verdict::Hold { why: None };
    };
    let up = newest.count > current;
    if newest.count == current {
        return Verdict::Hold { why: None };
    }
    let window = if up {
        policy.up_window
    } else {
        policy.down_window
    };
    let since = now - window;
    let covered = history.first().is_some_and(|r| r.at <= since) || window.is_zero();
    let recent: Vec<i32> = history
        .iter()
        .filter(|r| r.at >= since)
        .map(|r| r.count)
        .collect();
    let agree = recent
        .iter()
        .all(|&c| if up { c > current } else { c < current });
    if !(covered && agree) {
        let direction = if up { "up" } else { "down" };
        return Verdict::Hold {
            why: Some(format!(
                "the load must call for {} for {} s before scaling {direction}",
                newest.count,
                window.as_secs()
            )),
        };
    }
    // The most cautious count the whole window agrees on.
    let agreed = if up {
        recent.iter().copied().min()
    } else {
        recent.iter().copied().max()
    }
    .unwrap_or(newest.count);
    let to = match policy.max_step {
        Some(step) => agreed.clamp(current - step, current + step),
        None => agreed,
    };
    Verdict::Scale { to, why: None }
}

/// What the operator remembers of one cluster's load between reconciles.
/// Lost on restart: the windows then start over.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The previous reading (rates are between two).
    pub last: Option<Reading>,
    /// The load between the last two readings.
    pub load: Option<LoadStatus>,
    pub shards: VecDeque<Recommendation>,
    pub gateways: VecDeque<Recommendation>,
    /// The autoscaler's status after the last reading.
    pub status: Option<AutoscaleStatus>,
}

impl Memory {
    /// Whether a reading is due: none yet, or the last is `interval` old.
    pub fn due(&self, now: Timestamp, interval: SignedDuration) -> bool {
        self.last
            .as_ref()
            .is_none_or(|r| now.duration_since(r.at) >= interval)
    }

    /// Takes `reading`; answers the load since the previous one.
    pub fn read(&mut self, reading: Reading) -> Option<&LoadStatus> {
        self.load = self.last.as_ref().map(|prev| load(prev, &reading));
        self.last = Some(reading);
        self.load.as_ref()
    }
}

/// Adds `rec` to `history` and forgets what `policy`'s windows no longer
/// need (keeping one older than the longest window, which shows it covered).
pub fn remember(history: &mut VecDeque<Recommendation>, rec: Recommendation, policy: &Policy) {
    let since = rec.at - policy.memory();
    history.push_back(rec);
    while history.len() > 1 && history[1].at <= since {
        history.pop_front();
    }
}

/// The status of one role's autoscaler after a verdict.
pub fn scale_status(
    old: Option<&ScaleStatus>,
    wanted: &Wanted,
    verdict: &Verdict,
    current: i32,
    now: Timestamp,
) -> ScaleStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.recommended = wanted.count;
    status.holding = None;
    match verdict {
        Verdict::Hold { why } => status.holding = why.clone(),
        Verdict::Scale { to, why } => {
            let why = why.as_ref().unwrap_or(&wanted.why);
            status.last_scale_time = Some(Time(now));
            status.last_scale_reason = Some(format!("{current} → {to}: {why}"));
        }
    }
    status
}

#[cfg(test)]
#[path = "autoscale_tests.rs"]
mod tests;
