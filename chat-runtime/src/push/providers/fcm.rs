//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! Authenticates as the configured service account: a JWT signed with its
//! key (RS256) is exchanged at its `token_uri` for an OAuth access token,
//! cached until a minute before it expires. A notification is
//! `POST {endpoint}/v1/projects/{project}/messages:send` with the token, a
//! title and body, the chat id and seq as data, high priority and the chat
//! as collapse key (Android keeps one pending notification per chat).

use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Provider, TokenCache, retry_after, unix_secs, unreachable};
use crate::push::policy::{Outcome, from_status};
use crate::push::{Notification, PushError};

/// Google's endpoint unless the config names another (an emulator, a test).
pub const ENDPOINT: &str = "https://fcm.googleapis.com";
/// The OAuth scope of the send API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The fields of a service-account JSON key that are used.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// The claims of the token-exchange JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct Grant {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
    expires_in: u64,
}

/// The FCM provider.
pub struct Fcm {
    http: reqwest::Client,
    account: ServiceAccount,
    key: EncodingKey,
    send_url: String,
    /// The OAuth access token.
    token: TokenCache,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm")
            .field("account", &self.account)
            .field("send_url", &self.send_url)
            .finish_non_exhaustive()
    }
}

impl Fcm {
    /// From a service-account JSON key; `endpoint` overrides [`ENDPOINT`].
    pub fn new(account_json: &str, endpoint: Option<&str>) -> Result<Self, PushError> {
        let account: ServiceAccount = serde_json::from_str(account_json)
            .map_err(|e| PushError::Config(format!("FCM service account: {e}")))?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| PushError::Config(format!("FCM service account key: {e}")))?;
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            endpoint.unwrap_or(ENDPOINT).trim_end_matches('/'),
            account.project_id
        );
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| PushError::Config(e.to_string()))?;
        Ok(Self {
            http,
            account,
            key,
            send_url,
            token: TokenCache::default(),
        })
    }

    /// An access token for the service account, and how long to use it (a
    /// minute less than it lives).
    async fn exchange(&self) -> Result<(String, Duration), Outcome> {
        let iat = unix_secs();
        let grant = Grant {
            iss: self.account.client_email.clone(),
            scope: SCOPE.into(),
            aud: self.account.token_uri.clone(),
            iat,
            exp: iat + 3600,
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &grant, &self.key)
            .map_err(|e| Outcome::Rejected(format!("signing the FCM grant: {e}")))?;
        let form = serde_urlencoded::to_string([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .map_err(|e| Outcome::Rejected(e.to_string()))?;
        let resp = self
            .http
            .post(&self.account.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        if status != 200 {
            // The account itself is refused (revoked key, bad email): final.
            return Err(match from_status(status, retry_after(resp.headers()), "") {
                Outcome::Retry { after, .. } => Outcome::Retry {
                    reason: format!("{status} from the FCM token endpoint"),
                    after,
                },
                _ => Outcome::Rejected(format!("{status} from the FCM token endpoint")),
            });
        }
        let token: AccessToken = resp
            .json()
            .await
            .map_err(|e| Outcome::Rejected(format!("FCM token endpoint answer: {e}")))?;
        let life = Duration::from_secs(token.expires_in.saturating_sub(60));
        Ok((token.access_token, life))
    }
}

/// The FCM message for `n` to `token`.
pub fn message(token: &str, n: &Notification) -> serde_json::Value {
    json!({"message": {
        "token": token,
        "notification": {"title": n.title, "body": n.body},
        "data": {
            "chat_id": n.chat_id.to_string(),
            "seq": n.seq.to_string(),
            "sent_at": n.sent_at.to_string(),
        },
        "android": {"priority": "high", "collapse_key": n.chat_id.to_string()},
    }})
}

/// What an FCM error answer means: `UNREGISTERED` / `NOT_FOUND` tokens are
/// gone; the rest follows the status.
fn outcome(status: u16, after: Option<Duration>, body: &str) -> Outcome {
    let gone = ["UNREGISTERED", "NOT_FOUND"]
        .iter()
        .any(|code| body.contains(code));
    if gone && status != 200 {
        return Outcome::TokenGone;
    }
    from_status(status, after, body.get(..200).unwrap_or(body))
}

#[async_trait]
impl Provider for Fcm {
    async fn send(&self, token: &str, n: &Notification) -> Outcome {
        let access = match self.token.get(async || self.exchange().await).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        let resp = match self
            .http
            .post(&self.send_url)
            .bearer_auth(access)
            .json(&message(token, n))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return unreachable(e),
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        if status == 401 {
            // The access token was refused before its time: exchange anew.
            self.token.clear().await;
            return Outcome::Retry {
                reason: "401 from FCM".into(),
                after: Some(Duration::ZERO),
            };
        }
        let body = resp.text().await.unwrap_or_default();
        outcome(status, after, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_tokens_are_told_apart_from_other_errors() {
        let unregistered = r#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(outcome(404, None, unregistered), Outcome::TokenGone);
        let bad = r#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#;
        assert!(matches!(outcome(400, None, bad), Outcome::Rejected(_)));
        assert!(matches!(outcome(503, None, ""), Outcome::Retry { .. }));
        assert_eq!(outcome(200, None, "{}"), Outcome::Delivered);
    }

    #[test]
    fn a_broken_service_account_is_a_config_error() {
        assert!(matches!(Fcm::new("{}", None), Err(PushError::Config(_))));
        let bad_key =
            r#"{"project_id":"p","client_email":"e","private_key":"nope","token_uri":"t"}"#;
        assert!(matches!(Fcm::new(bad_key, None), Err(PushError::Config(_))));
    }
}
