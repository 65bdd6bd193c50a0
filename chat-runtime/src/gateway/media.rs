//! Media over HTTP: `POST /v1/media` streams the request body into the
//! bucket and `GET /v1/media/{id}` streams the object back (with ranges);
//! `GET /v1/media/{id}/thumbnail` serves image previews and
//! `POST /v1/media/{id}/link` issues signed, expiring links.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;

use super::http::{Answer, Authed, Failure, Path, Query, bearer, created, ok};
use crate::error::ApiError;
use crate::media::signed::{self, LinkParams};
use crate::media::{Download, MediaError};
use crate::model::{MediaKind, MediaRecord, UserId, now_ms};
use crate::node::Node;
use crate::protocol::rest::{LinkView, UploadView};

const PREFIX: &str = "/v1/media";

/// The media routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route(PREFIX, post(upload))
        .route("/v1/media/{id}", get(original))
        .route("/v1/media/{id}/thumbnail", get(thumbnail))
        .route("/v1/media/{id}/link", post(link))
}

#[derive(Deserialize, Default)]
struct MediaQuery {
    /// Upload: the file's name (a message sent as `file` shows it).
    name: Option<String>,
    /// Link: lifetime in seconds.
    ttl: Option<i64>,
    // A signed link's parameters.
    u: Option<UserId>,
    exp: Option<i64>,
    sig: Option<String>,
}

async fn upload(
    State(node): State<Arc<Node>>,
    Authed(c): Authed,
    Query(query): Query<MediaQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let user = c.sub;
    let limit = node.media.max_upload();
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > limit) {
        // Refused before reading a byte; the limit is enforced while
        // streaming too, for bodies without a length.
        node.metrics.media_reject("too_large");
        return Err(ApiError::from(MediaError::TooLarge { limit }).into());
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let name = query.name.filter(|n| !n.is_empty() && n.len() <= 255);
    // Each chunk must follow the last within the body timeout: an upload
    // that stalls lets go of its socket (and its bucket write).
    let gap = Duration::from_millis(node.limits.body_timeout_ms);
    let body =
        tokio_stream::StreamExt::timeout(body.into_data_stream(), gap).map(
            move |chunk| match chunk {
                Ok(Ok(bytes)) => Ok(bytes),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no bytes for {} s", gap.as_secs())),
            },
        );
    let up = node
        .media
        .upload(user, &declared, name, Box::pin(body))
        .await?;
    let r = &up.record;
    let view = UploadView {
        media_id: r.id.clone(),
        kind: r.kind,
        facts: r.facts.clone(),
        duplicate: up.duplicate,
    };
    created(&view)
}

async fn link(
    State(node): State<Arc<Node>>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Query(query): Query<MediaQuery>,
) -> Answer {
    let user = c.sub;
    let ttl = signed::lifetime(query.ttl)?;
    let r = node.media.authorize(user, &id).await?;
    let (q, expires_at) = node.media.link(user, &r, ttl);
    let view = LinkView {
        url: format!("{PREFIX}/{id}?{q}"),
        expires_at,
    };
    ok(&view)
}

async fn original(
    state: State<Arc<Node>>,
    id: Path<String>,
    query: Query<MediaQuery>,
    parts: axum::http::request::Parts,
) -> Answer {
    download(state, id, query, parts, false).await
}

async fn thumbnail(
    state: State<Arc<Node>>,
    id: Path<String>,
    query: Query<MediaQuery>,
    parts: axum::http::request::Parts,
) -> Answer {
    download(state, id, query, parts, true).await
}

async fn download(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Query<MediaQuery>,
    parts: axum::http::request::Parts,
    thumbnail: bool,
) -> Answer {
    let (user, r, link_exp) = match (query.u, query.exp, query.sig) {
        (Some(u), Some(exp), Some(sig)) => {
            let p = LinkParams { u, exp, sig };
            let (user, r) = node.media.authorize_link(&id, &p).await?;
            (user, r, Some(exp))
        }
        _ => {
            let user = bearer(&node, &parts).await?.sub;
            (user, node.media.authorize(user, &id).await?, None)
        }
    };
    let etag = if thumbnail {
        format!("\"{}-thumb\"", r.id)
    } else {
        format!("\"{}\"", r.id)
    };
    let cache = match link_exp {
        // A link may be cached by shared caches (a CDN) until it expires.
        Some(exp) => format!("public, max-age={}", (exp - now_ms() / 1000).max(0)),
        // Content-addressed: the bytes behind an id never change.
        None => "private, max-age=31536000, immutable".to_owned(),
    };
    let not_modified = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        set(&mut res, header::ETAG, &etag);
        set(&mut res, header::CACHE_CONTROL, &cache);
        return Ok(res);
    }
    let range = match requested_range(&parts.headers, r.facts.size) {
        _ if thumbnail => None,
        Ok(range) => range,
        Err(size) => {
            let e = ApiError::from(MediaError::Range { size });
            let mut res = Failure(e).into_response();
            set(&mut res, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return Ok(res);
        }
    };
    let head_only = parts.method == Method::HEAD;
    let dl = node.media.open(r, thumbnail, range.clone()).await?;
    let mut res = Response::new(Body::empty());
    if range.is_some() {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!("bytes {}-{}/{}", dl.range.start, dl.range.end - 1, dl.size);
        set(&mut res, header::CONTENT_RANGE, &content_range);
    }
    let content_type = if thumbnail {
        "image/jpeg"
    } else {
        inert(&dl.record.facts.content_type)
    };
    set(&mut res, header::CONTENT_TYPE, content_type);
    // Whatever the bytes are, a browser opening the link runs nothing and
    // leaks the link (its signature) to no one.
    set(&mut res, header::CONTENT_SECURITY_POLICY, "sandbox");
    set(&mut res, header::REFERRER_POLICY, "no-referrer");
    set(
        &mut res,
        header::CONTENT_LENGTH,
        &(dl.range.end - dl.range.start).to_string(),
    );
    set(&mut res, header::ACCEPT_RANGES, "bytes");
    set(&mut res, header::ETAG, &etag);
    set(&mut res, header::CACHE_CONTROL, &cache);
    set(&mut res, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        &mut res,
        header::CONTENT_DISPOSITION,
        &disposition(&dl.record, thumbnail),
    );
    if !head_only {
        *res.body_mut() = stream(node, dl, user, thumbnail);
    }
    Ok(res)
}

/// The one byte range a `Range` header asks for; `None` for the whole
/// object (no header, or several ranges, which are answered whole).
/// `Err(size)` when the range is not satisfiable.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, u64> {
    let Some(h) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let ranges = http_range_header::parse_range_header(h)
        .and_then(|r| r.validate(size))
        .map_err(|_| size)?;
    Ok(match ranges.as_slice() {
        [one] => Some(*one.start()..*one.end() + 1),
        _ => None,
    })
}

fn disposition(r: &MediaRecord, thumbnail: bool) -> String {
    match (&r.facts.name, r.kind, thumbnail) {
        (Some(name), MediaKind::File, false) => {
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && c != '"' && c != '\\' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("attachment; filename=\"{safe}\"")
        }
        (_, MediaKind::File, false) => "attachment".to_owned(),
        _ => "inline".to_owned(),
    }
}

/// The object's bytes as the response body; counts bytes out, and records
/// the download once the object's last byte went out (hyper stops polling a
/// body once its Content-Length is sent, so the end is counted, not awaited).
fn stream(node: Arc<Node>, dl: Download, user: UserId, thumbnail: bool) -> Body {
    let reaches_end = !thumbnail && dl.range.end == dl.size;
    let mut left = dl.range.end - dl.range.start;
    let id = dl.record.id.clone();
    let frames = dl.body.map(move |chunk| {
        let chunk = chunk?;
        node.media.sent_bytes(chunk.len());
        left = left.saturating_sub(chunk.len() as u64);
        if left == 0 && reaches_end {
            let (node, id) = (node.clone(), id.clone());
            node.clone().spawn(async move {
                if let Err(e) = node.media.downloaded(&id, user).await {
                    tracing::warn!(media = %id, error = %e, "media: recording a download failed");
                }
            });
        }
        Ok::<_, object_store::Error>(chunk)
    });
    Body::from_stream(frames)
}

/// Types a browser would run, or render as a page of this origin.
const ACTIVE: [&str; 7] = [
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
];

/// The type to serve bytes of `content_type` as: active types go out as
/// opaque bytes.
fn inert(content_type: &str) -> &str {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if ACTIVE.iter().any(|a| essence.eq_ignore_ascii_case(a)) {
        "application/octet-stream"
    } else {
        content_type
    }
}

fn set(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn pages_and_scripts_are_served_as_opaque_bytes() {
        for active in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
        ] {
            assert_eq!(inert(active), "application/octet-stream", "{active}");
        }
        for passive in [
            "image/png",
            "video/mp4",
            "application/pdf",
            "application/octet-stream",
        ] {
            assert_eq!(inert(passive), passive);
        }
    }
}
