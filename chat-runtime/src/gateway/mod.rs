//! The HTTP edge, one axum router: the REST API under `/v1` ([`rest`], with
//! [`bodies`]: what its requests carry; [`http`]: errors and extractors),
//! media streamed both ways ([`media`]), the WebSocket upgrade ([`ws`]), the
//! web client ([`web`]) and the operational endpoints (`confab-probes`).
//! [`schema`] describes every frame and body as JSON Schema.
//! [`server`] accepts connections (optionally [`tls`]) and serves the router
//! with hyper. A thin shell over [`crate::node::Node`] and [`crate::ops`].

pub mod bodies;
mod http;
mod media;
mod rest;
pub mod schema;
pub mod server;
pub mod tls;
mod web;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use self::http::{Failure, not_found};
use crate::error::ApiError;
use crate::node::Node;
use crate::protocol::ErrorCode;

/// Every route of a gateway.
pub fn router(node: Arc<Node>) -> Router {
    // Requests that end with their body get the body timeout; media streams
    // and sockets are timed by their own rules.
    let timed = rest::routes()
        .merge(web::routes())
        .layer(middleware::from_fn_with_state(node.clone(), in_time));
    let api = Router::new()
        .route(ws::PATH, get(ws::upgrade))
        .merge(media::routes())
        .merge(timed)
        .fallback(|| async { not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { not_found("method not allowed for this endpoint") })
        .layer(middleware::map_response_with_state(node.clone(), counted))
        .with_state(node.clone());
    let (ready, metrics) = (node.clone(), node);
    let probes = confab_probes::router(
        move || {
            if *ready.shutdown_signal().borrow() || ready.draining() {
                Err("shutting down")
            } else {
                Ok(())
            }
        },
        move || metrics.metrics.render(),
    );
    api.merge(probes)
}

/// Counts every refusal the API answers, by its code.
async fn counted(State(node): State<Arc<Node>>, response: Response) -> Response {
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        node.metrics.error(*code);
    }
    response
}

/// A body trickled in byte by byte cannot hold the socket: past the body
/// timeout the request is answered 408 and the connection closed.
async fn in_time(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let deadline = Duration::from_millis(node.limits.body_timeout_ms);
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let e = ApiError::new(
                ErrorCode::Timeout,
                "the request did not arrive in time; send it again",
            );
            let mut response = Failure(e).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
