//! The web client, embedded in the binary and served at `/`.
//!
//! The files live in `chat-runtime/web/`; they use only the public REST and
//! WebSocket API, so the page doubles as the reference client.

use warp::Filter;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const MEDIA_JS: &str = include_str!("../../web/media.js");
const APP_CSS: &str = include_str!("../../web/app.css");

fn asset(body: &'static str, content_type: &'static str) -> impl warp::Reply + use<> {
    let reply = warp::reply::with_header(body, "content-type", content_type);
    let reply = warp::reply::with_header(reply, "cache-control", "no-cache");
    warp::reply::with_header(
        reply,
        "content-security-policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:",
    )
}

pub fn routes() -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let index = warp::path::end().map(|| asset(INDEX, "text/html; charset=utf-8"));
    let js = warp::path!("app.js").map(|| asset(APP_JS, "text/javascript; charset=utf-8"));
    let media = warp::path!("media.js").map(|| asset(MEDIA_JS, "text/javascript; charset=utf-8"));
    let css = warp::path!("app.css").map(|| asset(APP_CSS, "text/css; charset=utf-8"));
    warp::get().and(index.or(js).or(media).or(css))
}
