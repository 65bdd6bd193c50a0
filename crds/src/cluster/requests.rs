//! One-off requests to the operator, made by annotating a `ChatCluster`
//! (what `kubectl confab drain` and `kubectl confab failover` write). The
//! operator carries a request out, records an event, and removes the
//! annotation; a value it cannot read is refused the same way.
//!
//! - `confab.dev/drain: gateway/<pod>`: the gateway's sessions are told to
//!   reconnect elsewhere (spread out), then its pod is deleted and the
//!   Deployment replaces it.
//! - `confab.dev/drain: shard/<n>`: shard `n` flushes and releases its
//!   leases, then its pod is deleted and comes back; its chats wait for it.
//! - `confab.dev/failover: "<n>"`: shard `n` is taken out of the ring at
//!   once, as if NotReady past its failover delay (its chats move to ring
//!   neighbours without asking it), then its pod is deleted; it rejoins
//!   when its new pod is Ready.

use std::collections::BTreeMap;
use std::fmt;

/// Annotation asking for a drain.
pub const DRAIN: &str = "confab.dev/drain";
/// Annotation asking for a forced failover.
pub const FAILOVER: &str = "confab.dev/failover";

/// A pod a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodRef {
    /// A gateway pod, by name.
    Gateway(String),
    /// A shard, by ordinal.
    Shard(u32),
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodRef::Gateway(pod) => write!(f, "gateway/{pod}"),
            PodRef::Shard(n) => write!(f, "shard/{n}"),
        }
    }
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Drain(PodRef),
    FailOver(u32),
}

impl Request {
    /// The annotation that asks for it: `(key, value)`.
    pub fn annotation(&self) -> (&'static str, String) {
        match self {
            Request::Drain(pod) => (DRAIN, pod.to_string()),
            Request::FailOver(n) => (FAILOVER, n.to_string()),
        }
    }

    /// The request annotation `key` holds with `value`.
    pub fn parse(key: &str, value: &str) -> Result<Self, String> {
        let shard = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| format!("{key}: {value:?} does not name a shard ordinal"))
        };
        match key {
            DRAIN => match value.split_once('/') {
                Some(("gateway", pod)) if !pod.is_empty() => {
                    Ok(Request::Drain(PodRef::Gateway(pod.into())))
                }
                Some(("shard", n)) => Ok(Request::Drain(PodRef::Shard(shard(n)?))),
                _ => Err(format!(
                    "{key}: {value:?} is neither gateway/<pod> nor shard/<ordinal>"
                )),
            },
            FAILOVER => Ok(Request::FailOver(shard(value)?)),
            _ => Err(format!("{key} is not a request annotation")),
        }
    }
}

/// The requests among `annotations`, each with its key; unreadable ones as
/// the reason.
pub fn requests(
    annotations: &BTreeMap<String, String>,
) -> Vec<(&'static str, Result<Request, String>)> {
    [DRAIN, FAILOVER]
        .into_iter()
        .filter_map(|key| Some((key, Request::parse(key, annotations.get(key)?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_annotations() {
        for r in [
            Request::Drain(PodRef::Gateway("chat-gateway-7d9f-x2".into())),
            Request::Drain(PodRef::Shard(3)),
            Request::FailOver(1),
        ] {
            let (key, value) = r.annotation();
            assert_eq!(Request::parse(key, &value), Ok(r));
        }
    }

    #[test]
    fn unreadable_values_say_what_is_expected() {
        let bad = [
            (
                DRAIN,
                "node/1",
                "is neither gateway/<pod> nor shard/<ordinal>",
            ),
            (DRAIN, "gateway/", "is neither"),
            (DRAIN, "shard/x", "does not name a shard ordinal"),
            (FAILOVER, "-1", "does not name a shard ordinal"),
        ];
        for (key, value, says) in bad {
            let err = Request::parse(key, value).unwrap_err();
            assert!(err.contains(says), "{value}: {err}");
        }
        let annotations = BTreeMap::from([
            (FAILOVER.to_string(), "2".to_string()),
            ("other".to_string(), "x".to_string()),
        ]);
        assert_eq!(
            requests(&annotations),
            [(FAILOVER, Ok(Request::FailOver(2)))]
        );
    }
}
