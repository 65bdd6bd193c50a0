//! Webhook push: the device's token is an endpoint URL (for example one a
//! UnifiedPush distributor handed the app) and a notification is a JSON POST
//! to it:
//! `{"chat_id","seq","title","body","sent_at"}`.
//!
//! Endpoints must be `https` (plain `http` only when the operator allows it,
//! for development); redirects are not followed, so an endpoint cannot bounce
//! the notifier elsewhere.

use std::time::Duration;

use async_trait::async_trait;

use super::{Provider, retry_after, unreachable};
use crate::push::Notification;
use crate::push::policy::{Outcome, from_status};

/// How long one POST may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest endpoint URL accepted.
pub const MAX_ENDPOINT: usize = 2048;

/// Checks that `endpoint` is a URL the notifier may POST to.
pub fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<reqwest::Url, String> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(format!(
            "a webhook endpoint has at most {MAX_ENDPOINT} bytes"
        ));
    }
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err("a webhook endpoint must be an https URL".into()),
    }
    if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() {
        return Err("a webhook endpoint needs a host and no credentials".into());
    }
    Ok(url)
}

/// The webhook provider.
#[derive(Clone, Debug)]
pub struct Webhook {
    http: reqwest::Client,
    allow_http: bool,
}

impl Webhook {
    pub fn new(allow_http: bool) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .expect("a reqwest client with a TLS provider installed");
        Self { http, allow_http }
    }
}

#[async_trait]
impl Provider for Webhook {
    async fn send(&self, token: &str, n: &Notification) -> Outcome {
        let url = match check_endpoint(token, self.allow_http) {
            Ok(url) => url,
            Err(e) => return Outcome::Rejected(e),
        };
        match self.http.post(url).json(n).send().await {
            Ok(resp) => {
                let after = retry_after(resp.headers());
                let status = resp.status().as_u16();
                from_status(status, after, "webhook endpoint")
            }
            Err(e) => unreachable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints_must_be_https_with_a_host_unless_http_is_allowed() {
        assert!(check_endpoint("https://push.example/up/1", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:9/up", false).is_err());
        assert!(check_endpoint("http://127.0.0.1:9/up", true).is_ok());
        assert!(check_endpoint("file:///etc/passwd", true).is_err());
        assert!(check_endpoint("https://user:pw@push.example/", false).is_err());
        assert!(check_endpoint("not a url", true).is_err());
        let long = format!("https://push.example/{}", "a".repeat(3000));
        assert!(check_endpoint(&long, false).is_err());
    }
}
