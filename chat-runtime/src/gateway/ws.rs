//! WebSocket shell: the upgrade on `/v1/ws` and the pump between a socket
//! and a [`session`].
//!
//! The socket's buffers are sized here: tungstenite's defaults (128 KiB
//! reserved per socket for reading) would dominate the memory of idle
//! connections.
//!
//! [`session`]: crate::session

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Error as WsError;

use super::http::Peer;
use crate::client::ClientAddr;
use crate::mailbox;
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
const READ_BUFFER: usize = 1024;
/// Frames are gathered up to this size before a write (the writer flushes
/// after each batch anyway); the buffer grows only while frames are queued.
const WRITE_BUFFER: usize = 16 * 1024;

/// Answers the handshake (101) and serves the socket once upgraded.
pub async fn upgrade(
    State(node): State<Arc<Node>>,
    Peer(client): Peer,
    ws: WebSocketUpgrade,
) -> Response {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            // Counted among the node's tasks, so a shutdown waits for it.
            node.clone().spawn(serve(node, client, socket));
        })
}

/// Whether a read failed because the message was over the size limit.
fn too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|e| e.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}

async fn serve(node: Arc<Node>, client: ClientAddr, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mailbox::channel(64);
    let (out_tx, mut out_rx) = mailbox::channel::<Outbound>(WRITE_QUEUE);
    let session = tokio::spawn(session::run(node, client, in_rx, out_tx));
    let reader = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let inbound = match item {
                Ok(Message::Text(t)) => Inbound::Text(Bytes::from(t)),
                Ok(Message::Binary(_)) => Inbound::Binary,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue, // ping/pong are answered by the WebSocket layer
                Err(e) if too_big(&e) => Inbound::TooBig,
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
                        code: code.code(),
                        reason: code.reason().into(),
                    }))
                }
            };
            let result = tokio::time::timeout(WRITE_TIMEOUT, sink.feed(message)).await;
            if !matches!(result, Ok(Ok(()))) || closed {
                break;
            }
            next = out_rx.try_recv();
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
