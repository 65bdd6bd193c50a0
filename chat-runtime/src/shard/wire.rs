//! Versions of the gateway↔shard wire (commands and their answers over NATS
//! request/reply) and how two processes of different builds agree on one,
//! so a cluster keeps serving while it is rolled onto a new build.
//!
//! - **1**: JSON. Every build speaks it; a message without a version header
//!   is version 1 (builds from before versioning send none).
//! - **2**: MessagePack (structs as maps): smaller and cheaper to parse.
//!
//! Negotiation, per shard, with no extra round trip: a gateway writes each
//! request in the version it last learned that shard reads (1 until it
//! knows), naming it in `Confab-Wire`, and the highest it reads itself in
//! `Confab-Wire-Max`. The shard reads the request in the version named and
//! writes its answer in the highest version both read, naming that and its
//! own highest; the gateway reads the answer in the version named and
//! remembers the shard's highest for the next request. A shard asked in a
//! version it does not read (one rolled back to an older build) answers
//! `Retry` in version 1 with its highest, and the gateway asks again.
//! `--wire-max` pins a process lower, e.g. to emulate an older build.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Header naming the version a message is written in.
pub const VERSION_HEADER: &str = "Confab-Wire";
/// Header naming the highest version its sender reads.
pub const MAX_HEADER: &str = "Confab-Wire-Max";

/// The highest version this build speaks.
pub const LATEST: Version = Version(2);

/// A wire version this build knows (1..=[`LATEST`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u8);

/// A message that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("wire version {0} is not one this build reads (1..={max})", max = LATEST.0)]
    Unknown(String),
    #[error("undecodable message in wire version {version}: {reason}")]
    Decode { version: u8, reason: String },
}

impl Version {
    /// JSON: what every build reads.
    pub const JSON: Version = Version(1);

    /// The version `n`, if this build knows it.
    pub fn new(n: u8) -> Option<Self> {
        (1..=LATEST.0).contains(&n).then_some(Version(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The version `headers` name under `key`: absent is version 1; a
    /// number this build does not know is an error.
    pub fn from_headers(headers: Option<&HeaderMap>, key: &str) -> Result<Self, WireError> {
        let Some(value) = headers.and_then(|h| h.get(key)) else {
            return Ok(Version::JSON);
        };
        let text = value.as_str();
        text.parse::<u8>()
            .ok()
            .and_then(Version::new)
            .ok_or_else(|| WireError::Unknown(text.to_string()))
    }

    /// The highest version a peer reads, from its `Confab-Wire-Max`:
    /// absent is 1; a number above this build's is capped to it.
    pub fn peer_max(headers: Option<&HeaderMap>) -> Self {
        let named = headers
            .and_then(|h| h.get(MAX_HEADER))
            .and_then(|v| v.as_str().parse::<u8>().ok());
        match named {
            Some(n) if n >= LATEST.0 => LATEST,
            Some(n) => Version::new(n).unwrap_or(Version::JSON),
            None => Version::JSON,
        }
    }

    /// `T` written in this version.
    pub fn encode<T: Serialize>(self, value: &T) -> Bytes {
        let bytes = match self.0 {
            1 => serde_json::to_vec(value).expect("wire messages serialize"),
            _ => rmp_serde::to_vec_named(value).expect("wire messages serialize"),
        };
        Bytes::from(bytes)
    }

    /// `T` read in this version.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, WireError> {
        let decoded = match self.0 {
            1 => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            _ => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        };
        decoded.map_err(|reason| WireError::Decode {
            version: self.0,
            reason,
        })
    }
}

/// Headers of a message written in `version` by a process that reads up to
/// `max`.
pub fn headers(version: Version, max: Version) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(VERSION_HEADER, version.0.to_string().as_str());
    h.insert(MAX_HEADER, max.0.to_string().as_str());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_headers_are_version_1_and_unknown_ones_are_refused() {
        assert_eq!(
            Version::from_headers(None, VERSION_HEADER).unwrap(),
            Version::JSON
        );
        let h = headers(LATEST, LATEST);
        assert_eq!(
            Version::from_headers(Some(&h), VERSION_HEADER).unwrap(),
            LATEST
        );
        let mut future = HeaderMap::new();
        future.insert(VERSION_HEADER, "9");
        let err = Version::from_headers(Some(&future), VERSION_HEADER).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wire version 9 is not one this build reads (1..=2)"
        );
    }

    #[test]
    fn a_peers_max_is_capped_to_what_this_build_reads() {
        let mut h = HeaderMap::new();
        assert_eq!(Version::peer_max(None), Version::JSON);
        h.insert(MAX_HEADER, "7");
        assert_eq!(Version::peer_max(Some(&h)), LATEST);
        h.insert(MAX_HEADER, "1");
        assert_eq!(Version::peer_max(Some(&h)), Version::JSON);
    }

    #[test]
    fn version_2_is_smaller_than_json_and_reads_back() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        enum Probe {
            Send {
                user: uuid::Uuid,
                body: String,
                seq: u64,
            },
        }
        let p = Probe::Send {
            user: uuid::Uuid::new_v4(),
            body: "hello".into(),
            seq: 42,
        };
        for v in [Version::JSON, LATEST] {
            assert_eq!(v.decode::<Probe>(&v.encode(&p)).unwrap(), p);
        }
        assert!(LATEST.encode(&p).len() < Version::JSON.encode(&p).len());
        let json = Version::JSON.encode(&p);
        assert!(matches!(
            LATEST.decode::<Probe>(&json),
            Err(WireError::Decode { version: 2, .. })
        ));
    }
}
