//! The HTTP server: accepts connections (plain, or TLS through a
//! [`super::tls`] acceptor) and serves each with hyper (HTTP/1.1 with
//! upgrades, drained gracefully on shutdown) through the gateway's router.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tower_service::Service;

use super::tls::TlsAcceptor;
use crate::node::Node;

/// Longest wait for open HTTP requests once `shutdown` resolved.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `node` on `listener` until `shutdown` resolves; then sets `stop`
/// (sessions close with 1012, "reconnect"), gives them a moment to send
/// their close frames, and drains open requests. `stop` must be the sender
/// of the node's shutdown signal. With `tls`, every connection is TLS.
pub async fn serve_until(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    node: Arc<Node>,
    stop: tokio::sync::watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut stopped = stop.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
        // Keep the sender alive so sessions see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    serve(listener, tls, node, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
}

/// Serves `listener` (TLS with `tls`) until `shutdown` resolves, then
/// drains open requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()>,
) {
    let router = super::router(node.clone());
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_millis(node.limits.header_timeout_ms);
    let mut http = auto::Builder::new(TokioExecutor::new());
    // A slow or silent client (slowloris, idle keep-alive) cannot hold a
    // socket: the headers of each request must arrive within the timeout.
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let http = http.http1_only();
    // Connections still opening (first byte, TLS handshake) are not hyper's yet:
    // this tells them to let go (of the node, and its store) at shutdown.
    let (closing, _) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (shared, router) = (node.clone(), router.clone());
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let forwarded = req.headers().get("x-forwarded-for");
            let client = shared.client(peer.ip(), forwarded.and_then(|v| v.to_str().ok()));
            req.extensions_mut().insert(client);
            // A router is always ready: no need to poll it first.
            router.clone().call(req)
        });
        let (http, watcher) = (http.clone(), graceful.watcher());
        let (mut closing, tls) = (closing.subscribe(), tls.clone());
        node.spawn(async move {
            let io = tokio::select! {
                io = open(stream, tls, header_timeout) => match io {
                    Some(io) => io,
                    None => return,
                },
                _ = closing.wait_for(|c| *c) => return,
            };
            let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.send_replace(true);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    // Sessions were told to close; once these end, nothing holds the node.
    let left = node.settle(DRAIN).await;
    if left > 0 {
        tracing::warn!(tasks = left, "connections still open after the drain");
    }
}

/// A connection ready for HTTP: its first byte arrived and, with `tls`, its
/// handshake finished, both within `timeout` of the accept. hyper times
/// headers from their first byte: a socket that sends none, or a TLS client
/// that stalls its handshake, is closed here instead of holding a
/// descriptor. `None`: closed (silent, too slow, or not TLS).
///
/// The TLS stream is boxed: inline, its ~1.1 KiB of state would be part of
/// every connection, plain ones included (`confab-bench idle`).
async fn open(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
) -> Option<Either<TcpStream, Box<TlsStream<TcpStream>>>> {
    let ready = async {
        let mut byte = [0u8; 1];
        if stream.peek(&mut byte).await.ok()? == 0 {
            return None;
        }
        match tls {
            None => Some(Either::Left(stream)),
            Some(tls) => match tls.accept(stream).await {
                Ok(stream) => Some(Either::Right(Box::new(stream))),
                Err(e) => {
                    // Plain HTTP to the TLS port lands here too.
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
            },
        }
    };
    tokio::time::timeout(timeout, ready).await.ok().flatten()
}
