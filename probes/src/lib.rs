//! The operational endpoints every Confab process serves — gateway, shard,
//! notifier and operator alike — so probes and scrapers see one contract:
//!
//! - `GET /healthz`: 200 `ok` while the process runs (liveness).
//! - `GET /readyz`: 200 `ready`, or 503 with the reason it should get no
//!   traffic (starting, draining, no lease).
//! - `GET /metrics`: the process's metrics in the OpenMetrics text format,
//!   with its content type.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

/// The content type of an OpenMetrics text exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether a process takes traffic: `Err(reason)` while it should not.
pub type Readiness = Result<(), &'static str>;

/// The three endpoints, over the process's own readiness and metrics.
pub fn router<R, M>(ready: R, metrics: M) -> Router
where
    R: Fn() -> Readiness + Send + Sync + 'static,
    M: Fn() -> String + Send + Sync + 'static,
{
    let (ready, metrics) = (Arc::new(ready), Arc::new(metrics));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                match ready() {
                    Ok(()) => (StatusCode::OK, "ready"),
                    Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                ([(header::CONTENT_TYPE, OPENMETRICS)], metrics()).into_response()
            }),
        )
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let kind = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), kind)
    }

    #[tokio::test]
    async fn health_readiness_with_its_reason_and_openmetrics() {
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let router = router(
            move || flag.load(Ordering::Relaxed).then_some(()).ok_or("starting"),
            || "# EOF\n".to_owned(),
        );
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        let (status, body, _) = get(&router, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "starting")
        );
        up.store(true, Ordering::Relaxed);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        let (status, body, kind) = get(&router, "/metrics").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "# EOF\n"));
        assert_eq!(kind.as_deref(), Some(OPENMETRICS));
        assert_eq!(get(&router, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
