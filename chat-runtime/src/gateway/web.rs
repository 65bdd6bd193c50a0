//! The web client, embedded in the binary and served at `/`.
//!
//! The files live in `chat-runtime/web/`; they use only the public REST and
//! WebSocket API, so the page doubles as the reference client.

use warp::Filter;

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

fn asset(
    body: &'static str,
    content_type: &'static str,
    host: Option<String>,
) -> impl warp::Reply + use<> {
    let reply = warp::reply::with_header(body, "content-type", content_type);
    let reply = warp::reply::with_header(reply, "cache-control", "no-cache");
    let reply = warp::reply::with_header(reply, "x-content-type-options", "nosniff");
    let reply = warp::reply::with_header(reply, "x-frame-options", "DENY");
    let reply = warp::reply::with_header(reply, "referrer-policy", "no-referrer");
    warp::reply::with_header(reply, "content-security-policy", policy(host.as_deref()))
}

pub fn routes() -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let host = || warp::header::optional::<String>("host");
    let index = warp::path::end()
        .and(host())
        .map(|h| asset(INDEX, "text/html; charset=utf-8", h));
    let js = warp::path!("app.js")
        .and(host())
        .map(|h| asset(APP_JS, "text/javascript; charset=utf-8", h));
    let media = warp::path!("media.js")
        .and(host())
        .map(|h| asset(MEDIA_JS, "text/javascript; charset=utf-8", h));
    let css = warp::path!("app.css")
        .and(host())
        .map(|h| asset(APP_CSS, "text/css; charset=utf-8", h));
    warp::get().and(index.or(js).or(media).or(css))
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
