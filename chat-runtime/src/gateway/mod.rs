//! The HTTP edge: [`server`] (hyper: accept loop, WebSocket upgrades), its
//! optional [`tls`] (certificate files reloaded on change), the REST API
//! under `/v1` ([`bodies`]: what its requests carry), the web client and the
//! operational endpoints (warp filters). A thin shell over
//! [`crate::node::Node`].

pub mod bodies;
mod media;
mod rest;
pub mod server;
pub mod tls;
mod web;
mod ws;

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;

use crate::node::Node;

/// Every route of a gateway.
pub fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let health = warp::path!("healthz").map(|| "ok");
    let ready_node = node.clone();
    let ready = warp::path!("readyz").map(move || {
        if *ready_node.shutdown_signal().borrow() || ready_node.draining() {
            warp::reply::with_status("shutting down", warp::http::StatusCode::SERVICE_UNAVAILABLE)
        } else {
            warp::reply::with_status("ready", warp::http::StatusCode::OK)
        }
    });
    let metrics_node = node.clone();
    let metrics = warp::path!("metrics").map(move || {
        warp::reply::with_header(
            metrics_node.metrics.render(),
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    });
    let ops = warp::get().and(health.or(ready).or(metrics));
    ops.or(web::routes())
        .or(rest::routes(node))
        .recover(rest::recover)
}
