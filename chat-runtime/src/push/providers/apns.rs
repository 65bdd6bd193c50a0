//! Apple Push Notification service, token-based (`.p8` key) over HTTP/2.
//!
//! The provider token is a JWT (ES256, `kid` = key id, `iss` = team id)
//! reused for 50 minutes (Apple refuses tokens older than an hour and
//! throttles fresher ones). A notification is
//! `POST {endpoint}/3/device/{token}` with `apns-topic` (the app's bundle
//! id), `apns-push-type: alert`, priority 10 and the chat as `apns-collapse-id`
//! and `thread-id` (grouped per chat on the device).

use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Provider, TokenCache, retry_after, unix_secs, unreachable};
use crate::push::policy::{Outcome, from_status};
use crate::push::{Notification, PushError};

pub const PRODUCTION: &str = "https://api.push.apple.com";
pub const SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// How long one provider token is used.
pub const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The provider token's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub iat: u64,
}

/// What the provider is configured with.
#[derive(Clone, Debug)]
pub struct ApnsSettings {
    /// The `.p8` key (PKCS#8 PEM).
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
    /// [`PRODUCTION`], [`SANDBOX`], or a test server.
    pub endpoint: String,
}

/// The APNs provider.
pub struct Apns {
    http: reqwest::Client,
    key: EncodingKey,
    settings: ApnsSettings,
    token: TokenCache,
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns")
            .field("key_id", &self.settings.key_id)
            .field("team_id", &self.settings.team_id)
            .field("topic", &self.settings.topic)
            .field("endpoint", &self.settings.endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    reason: String,
}

impl Apns {
    pub fn new(settings: ApnsSettings) -> Result<Self, PushError> {
        let key = EncodingKey::from_ec_pem(settings.key_pem.as_bytes())
            .map_err(|e| PushError::Config(format!("APNs key: {e}")))?;
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| PushError::Config(e.to_string()))?;
        Ok(Self {
            http,
            key,
            settings,
            token: TokenCache::default(),
        })
    }

    /// A signed provider token, used for [`TOKEN_LIFE`].
    fn provider_token(&self) -> Result<(String, Duration), Outcome> {
        let claims = Claims {
            iss: self.settings.team_id.clone(),
            iat: unix_secs(),
        };
        let header = Header {
            kid: Some(self.settings.key_id.clone()),
            ..Header::new(Algorithm::ES256)
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Outcome::Rejected(format!("signing the APNs token: {e}")))?;
        Ok((token, TOKEN_LIFE))
    }
}

/// The APNs payload for `n`.
pub fn payload(n: &Notification) -> serde_json::Value {
    json!({
        "aps": {
            "alert": {"title": n.title, "body": n.body},
            "sound": "default",
            "thread-id": n.chat_id.to_string(),
        },
        "chat_id": n.chat_id.to_string(),
        "seq": n.seq,
        "sent_at": n.sent_at,
    })
}

/// What an APNs answer means: `BadDeviceToken`, `Unregistered` and
/// `DeviceTokenNotForTopic` mean the token is gone.
fn outcome(status: u16, after: Option<Duration>, reason: &str) -> Outcome {
    match reason {
        "BadDeviceToken" | "Unregistered" | "DeviceTokenNotForTopic" => Outcome::TokenGone,
        _ => from_status(status, after, reason),
    }
}

#[async_trait]
impl Provider for Apns {
    async fn send(&self, token: &str, n: &Notification) -> Outcome {
        if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Outcome::TokenGone;
        }
        let jwt = match self.token.get(async || self.provider_token()).await {
            Ok(t) => t,
            Err(o) => return o,
        };
        let url = format!(
            "{}/3/device/{token}",
            self.settings.endpoint.trim_end_matches('/')
        );
        let resp = self
            .http
            .post(url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &self.settings.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-collapse-id", n.chat_id.to_string())
            .json(&payload(n))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return unreachable(e),
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        if status == 200 {
            return Outcome::Delivered;
        }
        let reason = resp
            .json::<Refusal>()
            .await
            .map(|r| r.reason)
            .unwrap_or_default();
        if reason == "ExpiredProviderToken" {
            self.token.clear().await;
            return Outcome::Retry {
                reason,
                after: Some(Duration::ZERO),
            };
        }
        outcome(status, after, &reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_map_to_outcomes() {
        assert_eq!(outcome(400, None, "BadDeviceToken"), Outcome::TokenGone);
        assert_eq!(outcome(410, None, "Unregistered"), Outcome::TokenGone);
        assert!(matches!(
            outcome(429, None, "TooManyRequests"),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            outcome(403, None, "InvalidProviderToken"),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn a_key_that_is_not_an_ec_key_is_a_config_error() {
        let settings = ApnsSettings {
            key_pem: "not a key".into(),
            key_id: "K".into(),
            team_id: "T".into(),
            topic: "app".into(),
            endpoint: SANDBOX.into(),
        };
        assert!(matches!(Apns::new(settings), Err(PushError::Config(_))));
    }
}
