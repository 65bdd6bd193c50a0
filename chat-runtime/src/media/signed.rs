//! Signed, expiring download links: `GET /v1/media/{id}?u=..&exp=..&sig=..`
//! works without a token until `exp`, so a CDN or a plain `<img>`/`<video>`
//! element can fetch it. The signature (HMAC-SHA-256 under a key derived from
//! the token signing key) binds the media, the user it was issued to (whose
//! download it counts as) and the expiry.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::MediaError;
use crate::model::UserId;

/// Longest lifetime a link may be given.
pub const MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Lifetime when the client asks for none.
pub const DEFAULT_TTL_SECS: i64 = 3600;

/// The lifetime of a link asked to last `ttl` seconds (the default when
/// none): 1 s to [`MAX_TTL_SECS`]. Anything else is refused, never trimmed,
/// like every range a client asks for.
pub fn lifetime(ttl: Option<i64>) -> Result<i64, MediaError> {
    match ttl.unwrap_or(DEFAULT_TTL_SECS) {
        ttl @ 1..=MAX_TTL_SECS => Ok(ttl),
        _ => Err(MediaError::BadTtl),
    }
}

/// Issues and checks links. Cheap to clone.
#[derive(Clone)]
pub struct Links {
    key: Vec<u8>,
}

/// The query parameters of a signed link.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct LinkParams {
    pub u: UserId,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    pub sig: String,
}

impl Links {
    /// Derives the link key from the token signing key, so that neither
    /// kind of credential can stand in for the other.
    pub fn new(signing_key: &[u8]) -> Self {
        Self {
            key: mac(signing_key, b"confab media links v1").to_vec(),
        }
    }

    fn signature(&self, id: &str, user: UserId, exp: i64) -> [u8; 32] {
        mac(&self.key, format!("{id}\n{user}\n{exp}").as_bytes())
    }

    /// The query string of a link to `id` for `user`, valid until `exp`.
    pub fn query(&self, id: &str, user: UserId, exp: i64) -> String {
        let sig = hex::encode(self.signature(id, user, exp));
        format!("u={user}&exp={exp}&sig={sig}")
    }

    /// The user a link was issued to, if it is genuine and unexpired at `now`
    /// (seconds since the Unix epoch).
    pub fn verify(&self, id: &str, p: &LinkParams, now: i64) -> Result<UserId, MediaError> {
        let sig = hex::decode(&p.sig).map_err(|_| MediaError::BadLink)?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(format!("{id}\n{}\n{}", p.u, p.exp).as_bytes());
        m.verify_slice(&sig).map_err(|_| MediaError::BadLink)?;
        if now >= p.exp {
            return Err(MediaError::LinkExpired);
        }
        Ok(p.u)
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn params(query: &str) -> LinkParams {
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_owned()
        };
        LinkParams {
            u: get("u").parse().unwrap(),
            exp: get("exp").parse().unwrap(),
            sig: get("sig"),
        }
    }

    #[test]
    fn a_lifetime_is_one_second_to_seven_days_and_an_hour_by_default() {
        assert_eq!(lifetime(None).unwrap(), 3600);
        for ttl in [1, 60, MAX_TTL_SECS] {
            assert_eq!(lifetime(Some(ttl)).unwrap(), ttl);
        }
        for ttl in [i64::MIN, -1, 0, MAX_TTL_SECS + 1, i64::MAX] {
            assert!(matches!(lifetime(Some(ttl)), Err(MediaError::BadTtl)));
        }
    }

    #[test]
    fn a_link_works_until_it_expires_and_only_for_its_media() {
        let links = Links::new(&[7; 32]);
        let user = Uuid::new_v4();
        let p = params(&links.query("abc", user, 1000));
        assert_eq!(links.verify("abc", &p, 999).unwrap(), user);
        assert!(matches!(
            links.verify("abc", &p, 1000),
            Err(MediaError::LinkExpired)
        ));
        assert!(matches!(
            links.verify("abd", &p, 10),
            Err(MediaError::BadLink)
        ));
        let longer = LinkParams {
            exp: 5000,
            ..p.clone()
        };
        assert!(matches!(
            links.verify("abc", &longer, 10),
            Err(MediaError::BadLink)
        ));
        let other = LinkParams {
            u: Uuid::new_v4(),
            ..p.clone()
        };
        assert!(matches!(
            links.verify("abc", &other, 10),
            Err(MediaError::BadLink)
        ));
        let forged = Links::new(&[8; 32]);
        assert!(matches!(
            forged.verify("abc", &p, 10),
            Err(MediaError::BadLink)
        ));
    }
}
