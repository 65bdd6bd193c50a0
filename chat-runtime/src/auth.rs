//! Accounts' secrets: argon2 password hashes and signed, expiring tokens.
//!
//! Tokens are HS256 JWTs (`sub` = user id, `jti` = token id for revocation).
//! The signing key comes from configuration; `standalone` generates one on
//! first run and keeps it in its data directory. Revocation lives in the store.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
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
/// instead of taking every core from the message path, and the allocator
/// keeps at most one hash's memory per pool thread (spawning a blocking task
/// per hash let RSS grow by ~30 MiB per concurrent login).
pub struct PasswordPool {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
}

impl PasswordPool {
    /// Starts `threads` hashing threads.
    pub fn new(threads: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(1024);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn argon2 thread");
        }
        Self { jobs }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.try_send(job).ok()?;
        rx.await.ok()
    }

    /// Hashes on the pool; `None` when the pool is saturated.
    pub async fn hash(&self, password: String) -> Option<String> {
        self.run(move || hash_password(&password)).await
    }

    /// Verifies on the pool; false when saturated or wrong.
    pub async fn verify(&self, password: String, hash: String) -> bool {
        self.run(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    }
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16-byte salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Checks a password against a PHC string; false for any malformed hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
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
