//! Accounts' secrets: argon2 password hashes and signed, expiring tokens.
//!
//! Tokens are HS256 JWTs (`sub` = user id, `jti` = token id for revocation).
//! The signing key comes from configuration; `standalone` generates one on
//! first run and keeps it in its data directory. Revocation lives in the store.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm as Argon2Variant, Argon2, Block, Params, Version};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::model::{UserId, now_ms};

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is malformed or its signature is wrong")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    /// Token id, for revocation.
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    pub iat: i64,
}

/// Lifetime of login tokens unless configured otherwise: a week.
pub const DEFAULT_TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

/// Issues and checks tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl TokenKeys {
    /// Keys from a shared secret of at least 32 bytes.
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        assert!(secret.len() >= 32, "signing key must be at least 32 bytes");
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        }
    }

    /// A new token for `user`.
    pub fn issue(&self, user: UserId) -> (String, Claims) {
        let iat = now_ms() / 1000;
        let claims = Claims {
            sub: user,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            exp: iat + self.ttl_secs,
            iat,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, claims)
    }

    /// Checks signature and expiry (no leeway: an expired token is expired).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }
}

/// A small, fixed pool of threads for argon2 work.
///
/// Argon2 is memory-hard (19 MiB per hash with the default parameters) and
/// CPU-heavy by design. A fixed pool bounds both: a login storm queues here
/// instead of taking every core from the message path. Each pool thread
/// allocates its 19 MiB once and hashes in it every time: allocating it per
/// hash let glibc's malloc keep freed blocks around (its mmap threshold rises
/// after the first free), and RSS grew to ~350 MiB after a few dozen logins.
pub struct PasswordPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

impl PasswordPool {
    /// Starts `threads` hashing threads.
    pub fn new(threads: usize) -> Self {
        // About a second of work at most: a longer queue only makes every
        // sign-in slow; past it callers are told to retry.
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(64 * threads.max(1));
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = vec![Block::default(); Params::default().block_count()];
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn argon2 thread");
        }
        Self { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move |memory: &mut [Block]| {
            let _ = tx.send(f(memory));
        });
        self.jobs.try_send(job).ok()?;
        rx.await.ok()
    }

    /// Hashes on the pool; `None` when the pool is saturated.
    pub async fn hash(&self, password: String) -> Option<String> {
        self.run(move |memory| hash_in(&password, memory)).await
    }

    /// Verifies on the pool; `None` when the pool is saturated.
    pub async fn verify(&self, password: String, hash: String) -> Option<bool> {
        self.run(move |memory| verify_in(&password, &hash, memory))
            .await
    }
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let mut memory = vec![Block::default(); Params::default().block_count()];
    hash_in(password, &mut memory)
}

/// Checks a password against a PHC string; false for any malformed hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    verify_in(password, hash, &mut [])
}

/// [`hash_password`] in `memory` (at least the default parameters' blocks).
fn hash_in(password: &str, memory: &mut [Block]) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16-byte salt");
    let params = Params::default();
    let argon = Argon2::new(Argon2Variant::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .expect("a salt just encoded");
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Password)
    })
    .expect("argon2 with default parameters");
    PasswordHash {
        algorithm: Argon2Variant::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("default parameters"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// [`verify_password`] in `memory` when it is large enough for the hash's
/// parameters, else in memory allocated for this call.
fn verify_in(password: &str, hash: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Argon2Variant::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut own = Vec::new();
    let memory = if memory.len() >= params.block_count() {
        memory
    } else {
        own.resize(params.block_count(), Block::default());
        own.as_mut_slice()
    };
    let argon = Argon2::new(algorithm, version, params);
    Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Password)
    })
    .is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let h = hash_password("correct horse");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    /// Hashes stored before the pool hashed in its own memory (made by the
    /// argon2 crate's `PasswordHasher`) still verify, and the other way
    /// round; other parameters verify in memory of their own.
    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(&[3; 16]).unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let mut memory = vec![Block::default(); Params::default().block_count()];
        assert!(verify_in("correct horse", &theirs, &mut memory));
        assert!(!verify_in("wrong horse", &theirs, &mut memory));
        let ours = hash_in("correct horse", &mut memory);
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let small = Params::new(4096, 3, 1, None).unwrap();
        let other = Argon2::new(Argon2Variant::Argon2id, Version::V0x13, small)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("pw", &other));
        assert!(verify_in("pw", &other, &mut memory));
    }

    #[test]
    fn tokens() {
        let keys = TokenKeys::new(&[7; 32], 60);
        let user = uuid::Uuid::new_v4();
        let (token, claims) = keys.issue(user);
        assert_eq!(keys.verify(&token).unwrap(), claims);
        assert_eq!(keys.verify("garbage"), Err(AuthError::Invalid));
        let other = TokenKeys::new(&[8; 32], 60);
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        let expired = TokenKeys::new(&[7; 32], -10);
        let (old, _) = expired.issue(user);
        assert_eq!(keys.verify(&old), Err(AuthError::Expired));
    }
}
