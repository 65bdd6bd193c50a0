//! WebSocket shell: the upgrade handshake on `/v1/ws` and the pump between a
//! socket and a [`session`].
//!
//! The socket is tokio-tungstenite's, configured here rather than through
//! warp: warp 0.4 cannot set the read buffer, and tungstenite's default
//! (128 KiB reserved per socket) dominated the memory of idle connections.
//!
//! [`session`]: crate::session

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use warp::Reply;
use warp::reply::Response;

use crate::client::ClientAddr;
use crate::node::Node;
use crate::protocol::MAX_FRAME_BYTES;
use crate::session::{self, Inbound, Outbound};

/// The WebSocket endpoint.
pub const PATH: &str = "/v1/ws";
/// Frames queued for writing to one socket.
const WRITE_QUEUE: usize = 1024;
/// A peer that accepts no bytes for this long is dropped (its session ends,
/// and the device resumes when it reconnects).
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Messages above this are refused by the WebSocket layer itself (close 1009);
/// between `MAX_FRAME_BYTES` and this they get a `too_large` error frame.
const MAX_WS_MESSAGE: usize = 4 * MAX_FRAME_BYTES;
/// Bytes read from the socket at a time; grows only for larger messages.
const READ_BUFFER: usize = 4 * 1024;
/// Frames are gathered up to this size before a write (the writer flushes
/// after each batch anyway); the buffer grows only while frames are queued.
const WRITE_BUFFER: usize = 16 * 1024;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE))
}

/// Whether `req` asks to upgrade to a WebSocket.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.uri().path() == PATH && has(CONNECTION, "upgrade") && has(UPGRADE, "websocket")
}

/// Answers the handshake (101) and serves the socket once upgraded.
pub fn upgrade(node: Arc<Node>, mut req: Request<Incoming>) -> Response {
    let version_ok = req
        .headers()
        .get("sec-websocket-version")
        .is_some_and(|v| v == "13");
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return warp::reply::with_status("missing Sec-WebSocket-Key", StatusCode::BAD_REQUEST)
            .into_response();
    };
    if !version_ok {
        return warp::reply::with_status("WebSocket version 13 only", StatusCode::BAD_REQUEST)
            .into_response();
    }
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr::UNKNOWN);
    let on_upgrade = hyper::upgrade::on(&mut req);
    node.clone().spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let socket =
                    WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
                serve(node, client, socket).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let accept = derive_accept_key(key.as_bytes());
    let reply = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS);
    let reply = warp::reply::with_header(reply, CONNECTION, "upgrade");
    let reply = warp::reply::with_header(reply, UPGRADE, "websocket");
    warp::reply::with_header(reply, SEC_WEBSOCKET_ACCEPT, accept).into_response()
}

async fn serve<S>(node: Arc<Node>, client: ClientAddr, socket: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(WRITE_QUEUE);
    let session = tokio::spawn(session::run(node, client, in_rx, out_tx));
    let reader = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let inbound = match item {
                Ok(Message::Text(t)) => Inbound::Text(Bytes::from(t)),
                Ok(Message::Binary(_)) => Inbound::Binary,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue, // ping/pong are answered by the WebSocket layer
                Err(WsError::Capacity(_)) => Inbound::TooBig,
                Err(_) => break,
            };
            let last = matches!(inbound, Inbound::TooBig);
            if in_tx.send(inbound).await.is_err() || last {
                break;
            }
        }
    });
    // Writer: batch what is queued, flush once per batch.
    while let Some(first) = out_rx.recv().await {
        let mut next = Some(first);
        let mut closed = false;
        while let Some(item) = next.take() {
            let message = match item {
                Outbound::Frame(bytes) => match Utf8Bytes::try_from(bytes) {
                    Ok(text) => Message::Text(text),
                    Err(_) => continue, // frames are encoded JSON; never reached
                },
                Outbound::Close(code) => {
                    closed = true;
                    Message::Close(Some(CloseFrame {
                        code: code.code().into(),
                        reason: code.reason().into(),
                    }))
                }
            };
            let result = tokio::time::timeout(WRITE_TIMEOUT, sink.feed(message)).await;
            if !matches!(result, Ok(Ok(()))) || closed {
                break;
            }
            next = out_rx.try_recv().ok();
        }
        let flushed = tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) || closed {
            break;
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
    reader.abort();
    session.abort();
    // An aborted task lets go of the node once it is dropped: wait for that.
    let _ = session.await;
}
