//! WebSocket shell: pumps frames between a warp socket and a [`session`].
//!
//! [`session`]: crate::session

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use warp::Filter;
use warp::ws::{Message, WebSocket, Ws};

use crate::node::Node;
use crate::protocol::MAX_FRAME_BYTES;
use crate::session::{self, Inbound, Outbound};

/// Frames queued for writing to one socket.
const WRITE_QUEUE: usize = 1024;
/// Messages above this are refused by the WebSocket layer itself (close 1009);
/// between `MAX_FRAME_BYTES` and this they get a `too_large` error frame.
const MAX_WS_MESSAGE: usize = 4 * MAX_FRAME_BYTES;

pub fn route(
    node: Arc<Node>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("v1" / "ws").and(warp::ws()).map(move |ws: Ws| {
        let node = node.clone();
        ws.max_message_size(MAX_WS_MESSAGE)
            .max_frame_size(MAX_WS_MESSAGE)
            .on_upgrade(move |socket| serve(node, socket))
    })
}

/// Whether a read failed because the message exceeded `MAX_WS_MESSAGE`.
fn too_big(e: &warp::Error) -> bool {
    use std::error::Error;
    use tokio_tungstenite::tungstenite::Error as WsError;
    e.source()
        .and_then(|s| s.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}

async fn serve(node: Arc<Node>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(WRITE_QUEUE);
    let session = tokio::spawn(session::run(node, in_rx, out_tx));
    let reader = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let msg = match item {
                Ok(msg) => msg,
                Err(e) => {
                    if too_big(&e) {
                        let _ = in_tx.send(Inbound::TooBig).await;
                    }
                    break;
                }
            };
            let inbound = if msg.is_text() {
                Inbound::Text(bytes::Bytes::copy_from_slice(msg.as_bytes()))
            } else if msg.is_binary() {
                Inbound::Binary
            } else if msg.is_close() {
                break;
            } else {
                continue; // ping/pong are answered by the WebSocket layer
            };
            if in_tx.send(inbound).await.is_err() {
                break;
            }
        }
    });
    // Writer: batch what is queued, flush once per batch.
    while let Some(first) = out_rx.recv().await {
        let mut next = Some(first);
        let mut closed = false;
        while let Some(item) = next.take() {
            let result = match item {
                Outbound::Frame(bytes) => {
                    let text = String::from_utf8(bytes.to_vec()).unwrap_or_default();
                    sink.feed(Message::text(text)).await
                }
                Outbound::Close(code) => {
                    closed = true;
                    sink.feed(Message::close_with(code.code(), code.reason()))
                        .await
                }
            };
            if result.is_err() || closed {
                break;
            }
            next = out_rx.try_recv().ok();
        }
        if sink.flush().await.is_err() || closed {
            break;
        }
    }
    let _ = sink.close().await;
    reader.abort();
    session.abort();
}
