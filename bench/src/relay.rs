//! A raw WebSocket relay built into the bench: the ceiling every chat-server
//! figure is compared with (`--compare`). No accounts, no persistence, no
//! sequencing beyond a counter: what a server costs at the least to move a
//! frame from one socket to another.
//!
//! A client connects to `/<topics>` (comma-separated; `-` for none) and
//! hears every topic it named. A `send` frame is answered with `sent` and
//! forwarded as a `message` to every other connection on the topic its
//! `chat_id` names (a pair's receiver, a group's members), in the shapes
//! chat-runtime uses, so the same load clients drive both.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Ws;

/// Who hears each topic: connection ids and their outbound queues.
type Peers = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

/// The relay, serving on a loopback port until dropped.
pub struct Relay {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start() -> Result<Self> {
        let peers = Peers::default();
        let app = Router::new()
            .route("/{topics}", get(upgrade))
            .with_state(peers);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    /// A client connection that hears `topics`.
    pub async fn connect(&self, topics: &[&str]) -> Result<Ws> {
        let path = if topics.is_empty() {
            "-".to_owned()
        } else {
            topics.join(",")
        };
        let url = format!("ws://{}/{path}", self.addr);
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let io: Box<dyn confab_client::Io> = Box::new(stream);
        let (ws, _) = tokio_tungstenite::client_async(url, io).await?;
        Ok(ws)
    }
}

async fn upgrade(
    State(peers): State<Peers>,
    Path(topics): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let topics: Vec<String> = topics
        .split(',')
        .filter(|t| *t != "-")
        .map(String::from)
        .collect();
    ws.on_upgrade(move |socket| serve(peers, topics, socket))
}

async fn serve(peers: Peers, topics: Vec<String>, socket: WebSocket) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let me = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut peers = peers.lock().expect("peers");
        for t in &topics {
            peers.entry(t.clone()).or_default().push((me, tx.clone()));
        }
    }
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(m) = next.take() {
                if sink.feed(m).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut seq = 0u64;
    while let Some(Ok(Message::Text(text))) = stream.next().await {
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] != "send" {
            continue;
        }
        let to = frame["chat_id"].as_str().unwrap_or_default();
        seq += 1;
        // `type` first, as chat-runtime writes it; encoded once, shared by
        // every recipient.
        let inner = json!({"chat_id": to, "seq": seq, "body": frame["body"]});
        let message = Message::text(format!(r#"{{"type":"message","message":{inner}}}"#));
        let audience = peers.lock().expect("peers").get(to).cloned();
        for (peer, queue) in audience.unwrap_or_default() {
            if peer != me {
                let _ = queue.send(message.clone());
            }
        }
        let id = &frame["client_msg_id"];
        let sent = format!(r#"{{"type":"sent","client_msg_id":{id},"seq":{seq}}}"#);
        let _ = tx.send(Message::text(sent));
    }
    {
        let mut peers = peers.lock().expect("peers");
        for t in &topics {
            if let Some(list) = peers.get_mut(t) {
                list.retain(|(peer, _)| *peer != me);
            }
        }
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    use super::*;

    async fn next_json(ws: &mut Ws) -> Value {
        loop {
            let msg = ws.next().await.expect("open").expect("a frame");
            if let WsMessage::Text(t) = msg {
                return serde_json::from_str(&t).expect("json");
            }
        }
    }

    #[tokio::test]
    async fn a_send_is_acked_and_reaches_every_other_listener_of_its_topic() {
        let relay = Relay::start().await.unwrap();
        let mut ann = relay.connect(&["t"]).await.unwrap();
        let mut bob = relay.connect(&["t", "u"]).await.unwrap();
        let mut sender = relay.connect(&[]).await.unwrap();
        let send = json!({"type": "send", "chat_id": "t", "client_msg_id": "c1", "body": "42"});
        sender
            .send(WsMessage::text(send.to_string()))
            .await
            .unwrap();
        let sent = next_json(&mut sender).await;
        assert_eq!(
            (sent["type"].as_str(), sent["client_msg_id"].as_str()),
            (Some("sent"), Some("c1"))
        );
        for ws in [&mut ann, &mut bob] {
            let WsMessage::Text(raw) = ws.next().await.unwrap().unwrap() else {
                panic!("a text frame");
            };
            assert!(raw.starts_with(r#"{"type":"message""#), "{raw}");
            let got: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(got["type"], "message");
            assert_eq!(got["message"]["body"], "42");
            assert_eq!(got["message"]["chat_id"], "t");
        }
    }
}
