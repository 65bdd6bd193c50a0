//! Webhook push: the device's token is an endpoint URL (for example one a
//! UnifiedPush distributor handed the app) and a notification is a JSON POST
//! to it:
//! `{"chat_id","seq","title","body","sent_at"}`.
//!
//! Endpoints must be `https` (plain `http` only when the operator allows it,
//! for development); redirects are not followed, so an endpoint cannot bounce
//! the notifier elsewhere. Nor can an endpoint point the notifier inside its
//! own network: an address that is not public (loopback, private, link-local
//! such as the cloud metadata service at 169.254.169.254, carrier-grade NAT,
//! unique-local IPv6...) is refused at registration when it is written as
//! one, and at every delivery after DNS resolution — the connection goes only
//! to the public addresses the resolver kept, so a rebinding name gains
//! nothing. Development mode (`allow_http`) also allows private addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
    let host = url.host_str().unwrap_or_default();
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if let Some(ip) = literal.filter(|ip| !allow_http && !is_public(*ip)) {
        return Err(format!(
            "a webhook endpoint must be a public address, not {ip}"
        ));
    }
    Ok(url)
}

/// Whether `ip` is reachable on the public internet (and so fit for a
/// webhook): not loopback, private, link-local, shared (CGNAT), multicast,
/// unspecified, broadcast, documentation or unique-local.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// A name that resolved to no public address.
#[derive(Debug, thiserror::Error)]
#[error("{0} has no public address")]
struct NotPublic(String);

/// The [`NotPublic`] somewhere in `e`'s chain of causes.
fn not_public(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(n) = c.downcast_ref::<NotPublic>() {
            return Some(n.to_string());
        }
        cause = c.source();
    }
    None
}

/// Resolves names like the system does, then keeps only public addresses.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let found: Vec<SocketAddr> = tokio::net::lookup_host(host).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(NotPublic(name.as_str().to_string())) as _);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The webhook provider.
#[derive(Clone, Debug)]
pub struct Webhook {
    http: reqwest::Client,
    allow_http: bool,
}

impl Webhook {
    pub fn new(allow_http: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT);
        if !allow_http {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let http = builder
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
            // Not a network hiccup: the endpoint points inside; drop it.
            Err(e) => match not_public(&e) {
                Some(why) => Outcome::Rejected(why),
                None => unreachable(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_inside_the_network_are_refused_unless_in_development() {
        for inside in [
            "https://127.0.0.1/up",
            "https://10.1.2.3/up",
            "https://169.254.169.254/latest/meta-data",
            "https://192.168.0.10:8443/up",
            "https://100.64.0.1/up",
            "https://[::1]/up",
            "https://[fd00::1]/up",
            "https://[::ffff:10.0.0.1]/up",
            "https://0.0.0.0/up",
        ] {
            let e = check_endpoint(inside, false).unwrap_err();
            assert!(e.contains("public address"), "{inside}: {e}");
            assert!(
                check_endpoint(inside, true).is_ok(),
                "{inside} in development"
            );
        }
        assert!(check_endpoint("https://93.184.215.14/up", false).is_ok());
        assert!(check_endpoint("https://[2606:4700::1111]/up", false).is_ok());
    }

    #[tokio::test]
    async fn delivery_resolves_names_and_never_connects_inside() {
        use crate::push::Notification;
        crate::install_crypto();
        let hook = Webhook::new(false);
        let n = Notification {
            chat_id: uuid::Uuid::nil(),
            seq: 1,
            title: "t".into(),
            body: "b".into(),
            sent_at: 0,
        };
        // `localhost` resolves to loopback only: refused before connecting,
        // and for good (the device is dropped), not retried.
        let outcome = hook.send("https://localhost:1/up", &n).await;
        assert!(
            matches!(&outcome, Outcome::Rejected(why) if why.contains("localhost has no public address")),
            "{outcome:?}"
        );
    }

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
