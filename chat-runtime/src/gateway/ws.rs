//! WebSocket shell: the upgrade on `/v1/ws`, and the socket as a session's
//! [`Link`]. A connection is one task: the session reads and writes the
//! socket itself.
//!
//! The socket's buffers are sized here: tungstenite's defaults (128 KiB
//! reserved per socket for reading) would dominate the memory of idle
//! connections.
//!
//! [`Link`]: crate::session::Link

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Error as WsError;

use super::http::Peer;
use crate::client::ClientAddr;
use crate::node::Node;
use crate::protocol::MAX_FRAME_BYTES;
use crate::session::{self, Gone, Inbound, Link, Outbound};

/// The WebSocket endpoint.
pub const PATH: &str = "/v1/ws";
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
    let mut socket = Socket {
        socket,
        dirty: false,
        ended: false,
    };
    session::run(node, client, &mut socket).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.socket.close()).await;
}

/// A WebSocket as a session's link.
struct Socket {
    socket: WebSocket,
    /// Frames were fed since the last flush.
    dirty: bool,
    /// The socket can give no more frames.
    ended: bool,
}

impl Link for &mut Socket {
    async fn recv(&mut self) -> Option<Inbound> {
        while !self.ended {
            let inbound = match self.socket.next().await {
                Some(Ok(Message::Text(t))) => Inbound::Text(Bytes::from(t)),
                Some(Ok(Message::Binary(_))) => Inbound::Binary,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue, // ping/pong are answered by the WebSocket layer
                Some(Err(e)) if too_big(&e) => {
                    self.ended = true; // the socket is unusable after this
                    Inbound::TooBig
                }
                Some(Err(_)) => break,
            };
            return Some(inbound);
        }
        self.ended = true;
        None
    }

    async fn feed(&mut self, frame: Outbound) -> Result<(), Gone> {
        let message = match frame {
            Outbound::Frame(bytes) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => Message::Text(text),
                Err(_) => return Ok(()), // frames are encoded JSON; never reached
            },
            Outbound::Close(code) => Message::Close(Some(CloseFrame {
                code: code.code(),
                reason: code.reason().into(),
            })),
        };
        self.dirty = true;
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.feed(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }
}
