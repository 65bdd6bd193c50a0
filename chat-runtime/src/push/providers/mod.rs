//! Push services: one [`Provider`] per platform, chosen by the device's
//! [`Platform`]. Each turns a [`Notification`] into the service's request
//! and the service's answer into an [`Outcome`].
//!
//! - [`fcm`]: Firebase Cloud Messaging (HTTP v1, service-account OAuth);
//! - [`apns`]: Apple Push Notification service (HTTP/2, `.p8` token auth);
//! - [`webhook`]: a JSON POST to the device's own HTTPS endpoint
//!   (UnifiedPush distributors, self-hosted relays).

pub mod apns;
pub mod fcm;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use confab_api::config::PushConfig;

use super::policy::Outcome;
use super::{Notification, PushError};
use crate::model::Platform;

/// A push service client.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Delivers `n` to the device behind `token`.
    async fn send(&self, token: &str, n: &Notification) -> Outcome;
}

/// The configured providers, by platform.
#[derive(Clone, Default)]
pub struct Providers(Vec<(Platform, Arc<dyn Provider>)>);

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.platforms()).finish()
    }
}

impl Providers {
    /// `self` with `provider` serving `platform` (replacing an earlier one).
    pub fn with(mut self, platform: Platform, provider: Arc<dyn Provider>) -> Self {
        self.0.retain(|(p, _)| *p != platform);
        self.0.push((platform, provider));
        self
    }

    pub fn get(&self, platform: Platform) -> Option<&Arc<dyn Provider>> {
        self.0.iter().find(|(p, _)| *p == platform).map(|(_, x)| x)
    }

    pub fn platforms(&self) -> Vec<Platform> {
        self.0.iter().map(|(p, _)| *p).collect()
    }
}

/// The providers `config` has credentials for.
pub fn from_config(config: &PushConfig) -> Result<Providers, PushError> {
    let read = |what: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|e| PushError::Config(format!("{what} {path}: {e}")))
    };
    let mut providers = Providers::default();
    if let Some(path) = &config.fcm_credentials_file {
        let account = read("FCM service account", path)?;
        let fcm = fcm::Fcm::new(&account, config.fcm_endpoint.as_deref())?;
        providers = providers.with(Platform::Fcm, Arc::new(fcm));
    }
    if let Some(a) = &config.apns {
        let default = if a.sandbox {
            apns::SANDBOX
        } else {
            apns::PRODUCTION
        };
        let settings = apns::ApnsSettings {
            key_pem: read("APNs key", &a.key_file)?,
            key_id: a.key_id.clone(),
            team_id: a.team_id.clone(),
            topic: a.topic.clone(),
            endpoint: a.endpoint.clone().unwrap_or_else(|| default.to_owned()),
        };
        providers = providers.with(Platform::Apns, Arc::new(apns::Apns::new(settings)?));
    }
    if config.webhooks {
        let webhook = webhook::Webhook::new(config.allow_http_webhooks);
        providers = providers.with(Platform::Webhook, Arc::new(webhook));
    }
    Ok(providers)
}

/// A bearer token reused until its end; one caller at a time makes a new one.
#[derive(Debug, Default)]
pub(crate) struct TokenCache(tokio::sync::Mutex<Option<(String, SystemTime)>>);

impl TokenCache {
    /// The cached token, or a new one from `make` (the token and how long
    /// to use it).
    pub(crate) async fn get(
        &self,
        make: impl AsyncFnOnce() -> Result<(String, Duration), Outcome>,
    ) -> Result<String, Outcome> {
        let mut cached = self.0.lock().await;
        if let Some((token, until)) = &*cached
            && SystemTime::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, life) = make().await?;
        *cached = Some((token.clone(), SystemTime::now() + life));
        Ok(token)
    }

    /// Forgets the token (the service refused it before its end).
    pub(crate) async fn clear(&self) {
        *self.0.lock().await = None;
    }
}

/// Seconds since the Unix epoch (JWT `iat`).
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a `Retry-After` header, in either of its forms: seconds, or an
/// HTTP date (a date already past means now).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// A transport failure (no answer at all) is worth retrying.
pub(crate) fn unreachable(e: reqwest::Error) -> Outcome {
    Outcome::Retry {
        reason: format!("unreachable: {e}"),
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use std::time::Duration;

    fn after(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers)
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(after("120"), Some(Duration::from_secs(120)));
        let later = SystemTime::now() + Duration::from_secs(90);
        let wait = after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(85) && wait <= Duration::from_secs(90));
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(after(&past), Some(Duration::ZERO));
        assert_eq!(after("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
