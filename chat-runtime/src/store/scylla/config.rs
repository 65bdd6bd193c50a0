//! What the caller decides about the CQL store: keyspace, replication, TTLs.
//!
//! Owns validation of those settings (the keyspace and datacenter names are
//! spliced into CQL text, so they are checked here first). No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backend;
use crate::store::StoreError;

pub use crate::store::DEFAULT_DEDUP_TTL;
/// Longest dedup TTL accepted: a retry after a year is not a retry.
const MAX_DEDUP_TTL_SECS: u64 = 366 * 24 * 3600;
/// CQL's longest TTL (20 years).
const CQL_MAX_TTL_SECS: i64 = 630_720_000;
/// Cassandra up to 5.0 (in its default storage mode) refuses a write that
/// would expire after 2038-01-19T03:14:07Z (CASSANDRA-14092).
const CASSANDRA_LAST_EXPIRY: i64 = i32::MAX as i64;

/// The longest TTL a write made at `now_secs` may carry on both ScyllaDB and
/// Cassandra (a day short of the limit, for clock skew between nodes).
pub fn ttl_cap(now_secs: i64) -> i64 {
    (CASSANDRA_LAST_EXPIRY - now_secs - 24 * 3600).clamp(1, CQL_MAX_TTL_SECS)
}

/// How the keyspace is replicated (used only when it is created).
#[derive(Clone, Debug, PartialEq)]
pub enum Replication {
    /// One datacenter (and tests): `SimpleStrategy`.
    Simple { factor: u32 },
    /// Production: replicas per datacenter, `NetworkTopologyStrategy`.
    NetworkTopology(BTreeMap<String, u32>),
}

/// What the caller decides about the store.
#[derive(Clone, Debug)]
pub struct ScyllaConfig {
    /// Lowercase letters, digits and `_`, starting with a letter, ≤ 48 chars.
    pub keyspace: String,
    pub replication: Replication,
    /// How long a dedup entry lives: a retry after this may be stored twice.
    pub dedup_ttl: Duration,
}

impl ScyllaConfig {
    pub fn new(keyspace: impl Into<String>, replication: Replication) -> Self {
        Self {
            keyspace: keyspace.into(),
            replication,
            dedup_ttl: DEFAULT_DEDUP_TTL,
        }
    }

    pub(super) fn validate(&self) -> Result<(), StoreError> {
        let ks = self.keyspace.as_str();
        let ident = |s: &str| {
            s.len() <= 48
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident(ks) {
            return Err(backend(format!(
                "keyspace {ks:?} is not a CQL identifier of lowercase letters, digits and _"
            )));
        }
        let factors: Vec<(&str, u32)> = match &self.replication {
            Replication::Simple { factor } => vec![("replication_factor", *factor)],
            Replication::NetworkTopology(dcs) => {
                dcs.iter().map(|(d, f)| (d.as_str(), *f)).collect()
            }
        };
        let bad_dc = |d: &str| d.is_empty() || d.contains(['\'', '\\']);
        if factors.is_empty() || factors.iter().any(|&(d, f)| f == 0 || bad_dc(d)) {
            return Err(backend(format!(
                "replication {:?} needs at least one datacenter, each with a factor ≥ 1",
                self.replication
            )));
        }
        let ttl = self.dedup_ttl.as_secs();
        if ttl == 0 || ttl > MAX_DEDUP_TTL_SECS {
            return Err(backend(format!(
                "dedup TTL {ttl}s must be between 1 s and {MAX_DEDUP_TTL_SECS} s"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let ok = ScyllaConfig::new("confab_1", Replication::Simple { factor: 1 });
        assert!(ok.validate().is_ok());
        for ks in ["", "1abc", "Confab", "a-b", "a;drop", &"k".repeat(49)] {
            let c = ScyllaConfig::new(ks, Replication::Simple { factor: 1 });
            assert!(c.validate().is_err(), "{ks:?} accepted");
        }
        let zero = ScyllaConfig::new("k", Replication::Simple { factor: 0 });
        assert!(zero.validate().is_err());
        let quote = [("dc'1".to_owned(), 3)].into();
        let c = ScyllaConfig::new("k", Replication::NetworkTopology(quote));
        assert!(c.validate().is_err());
        let empty = ScyllaConfig::new("k", Replication::NetworkTopology(BTreeMap::new()));
        assert!(empty.validate().is_err());
        let mut short = ok.clone();
        short.dedup_ttl = Duration::ZERO;
        assert!(short.validate().is_err());
    }

    #[test]
    fn ttls_stay_within_what_cassandra_accepts() {
        let nov_2026 = 1_795_000_000;
        assert!(nov_2026 + ttl_cap(nov_2026) < CASSANDRA_LAST_EXPIRY);
        assert_eq!(ttl_cap(0), CQL_MAX_TTL_SECS);
        assert_eq!(ttl_cap(CASSANDRA_LAST_EXPIRY), 1);
    }
}
