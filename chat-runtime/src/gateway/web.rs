//! The web client, embedded in the binary and served at `/`.
//!
//! The files live in `chat-runtime/web/`; they use only the public REST and
//! WebSocket API, through the TypeScript SDK (`sdk/typescript`), whose
//! compiled modules are checked in under `web/sdk/` and served at `/sdk/`:
//! the page doubles as the SDK's reference client, and serving it needs no
//! build step.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::node::Node;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const MEDIA_JS: &str = include_str!("../../web/media.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// The SDK's compiled ES modules, as `e2e/scripts/sdk.sh` copies them from
/// its build (and checks they are current).
const SDK: [(&str, &str); 13] = [
    ("backoff.js", include_str!("../../web/sdk/backoff.js")),
    ("client.js", include_str!("../../web/sdk/client.js")),
    ("cursor.js", include_str!("../../web/sdk/cursor.js")),
    ("emitter.js", include_str!("../../web/sdk/emitter.js")),
    ("errors.js", include_str!("../../web/sdk/errors.js")),
    ("index.js", include_str!("../../web/sdk/index.js")),
    ("indexeddb.js", include_str!("../../web/sdk/indexeddb.js")),
    ("outbox.js", include_str!("../../web/sdk/outbox.js")),
    ("protocol.js", include_str!("../../web/sdk/protocol.js")),
    ("requests.js", include_str!("../../web/sdk/requests.js")),
    ("rest.js", include_str!("../../web/sdk/rest.js")),
    ("storage.js", include_str!("../../web/sdk/storage.js")),
    ("upload.js", include_str!("../../web/sdk/upload.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

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

/// One of the SDK's modules, by file name.
async fn sdk(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match SDK.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(body, JS, &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The page and its assets.
pub fn routes() -> Router<Arc<Node>> {
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
        .route("/sdk/{file}", get(sdk))
        .route(
            "/app.css",
            get(|h: HeaderMap| async move { asset(APP_CSS, "text/css; charset=utf-8", &h) }),
        )
}

#[cfg(test)]
mod tests {
    use super::{SDK, policy};

    #[test]
    fn every_checked_in_sdk_module_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/sdk");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let served: Vec<&str> = SDK.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, served, "web/sdk/ and the SDK table differ");
    }

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
