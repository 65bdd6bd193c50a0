//! The web client, embedded in the binary and served at `/`.
//!
//! The files live in `chat-runtime/web/`; they use only the public REST and
//! WebSocket API, so the page doubles as the reference client.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::node::Node;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const MEDIA_JS: &str = include_str!("../../web/media.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// The page's policy: its own scripts only, WebSocket and fetches only to
/// the origin the page came from (`host`, as the browser sent it), never
/// framed, links leak no referrer.
fn policy(host: Option<&str>) -> String {
    let host = host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    let sockets = host.map_or_else(String::new, |h| format!(" ws://{h} wss://{h}"));
    format!(
        "default-src 'self'; connect-src 'self'{sockets}; img-src 'self' data: blob:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

fn asset(body: &'static str, content_type: &'static str, headers: &HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::X_FRAME_OPTIONS, "DENY".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
            (header::CONTENT_SECURITY_POLICY, policy(host)),
        ],
        body,
    )
        .into_response()
}

/// The page and its assets.
pub fn routes() -> Router<Arc<Node>> {
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { asset(INDEX, "text/html; charset=utf-8", &h) }),
        )
        .route(
            "/app.js",
            get(|h: HeaderMap| async move { asset(APP_JS, JS, &h) }),
        )
        .route(
            "/media.js",
            get(|h: HeaderMap| async move { asset(MEDIA_JS, JS, &h) }),
        )
        .route(
            "/app.css",
            get(|h: HeaderMap| async move { asset(APP_CSS, "text/css; charset=utf-8", &h) }),
        )
}

#[cfg(test)]
mod tests {
    use super::policy;

    #[test]
    fn the_page_may_open_sockets_only_to_its_own_origin() {
        let p = policy(Some("chat.example:8080"));
        assert!(
            p.contains("connect-src 'self' ws://chat.example:8080 wss://chat.example:8080;"),
            "{p}"
        );
        assert!(p.contains("frame-ancestors 'none'"), "{p}");
        assert!(!p.contains("ws: "), "no socket to any host: {p}");
        // A Host header cannot write into the policy.
        let p = policy(Some("x; script-src *"));
        assert!(p.contains("connect-src 'self';"), "{p}");
    }
}
