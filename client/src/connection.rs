//! One WebSocket connection speaking protocol v1: typed frames in and out,
//! the server's close as [`Error::Closed`]. No retries and no state of its
//! own: [`crate::Client`] builds those on top; load generators use it (or
//! its two halves) directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use confab_protocol::model::{ChatId, Seq};
use confab_protocol::{ClientFrame, ServerFrame};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::Error;

/// A byte stream a WebSocket runs over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The WebSocket under a [`Connection`].
pub type Socket = WebSocketStream<Box<dyn Io>>;
type Ws = Socket;

/// What `welcome` said about the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub user_id: uuid::Uuid,
    pub session_id: String,
    /// Send a `ping` at least this often.
    pub heartbeat_ms: u64,
}

/// An open WebSocket to a Confab server.
pub struct Connection {
    ws: Ws,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// The WebSocket URL of the server at `base` (`http://host:port`,
/// `https://…`, or a `ws://` / `wss://` URL already).
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let url = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    if url.ends_with("/v1/ws") {
        url
    } else {
        format!("{url}/v1/ws")
    }
}

/// TLS settings trusting the system's certificate authorities (installs
/// ring as the process's TLS provider unless one is installed).
pub fn system_tls() -> Arc<rustls::ClientConfig> {
    crate::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

impl Connection {
    /// Opens the WebSocket of the server at `base` (see [`ws_url`]); `wss`
    /// uses `tls`, or the system's CAs when it is `None`.
    pub async fn open(base: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, Error> {
        let url = ws_url(base);
        let bad = |why: String| Error::Connection(format!("{url}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        let secure = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(bad("not a WebSocket URL".into())),
        };
        let host = uri.host().ok_or_else(|| bad("no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = if secure {
            let config = match tls {
                Some(c) => c,
                None => system_tls(),
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| bad(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        Self::over(io, &url).await
    }

    /// Opens the WebSocket of the server at `base` over a stream the caller
    /// connected (bound to a source address, through a proxy).
    pub async fn over(io: Box<dyn Io>, base: &str) -> Result<Self, Error> {
        let (ws, _) = tokio_tungstenite::client_async(ws_url(base), io).await?;
        Ok(Self { ws })
    }

    /// Sends `hello` (with the watermarks to resume from) and reads its
    /// `welcome`. The resume backlog and `synced` follow.
    pub async fn hello(
        &mut self,
        token: &str,
        watermarks: &BTreeMap<ChatId, Seq>,
    ) -> Result<Welcome, Error> {
        self.send(&ClientFrame::Hello {
            token: token.to_owned(),
            watermarks: watermarks.clone(),
        })
        .await?;
        match self.next().await? {
            ServerFrame::Welcome {
                user_id,
                session_id,
                heartbeat_ms,
                ..
            } => Ok(Welcome {
                user_id,
                session_id,
                heartbeat_ms,
            }),
            ServerFrame::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => Err(Error::refused(code, message, retry_after_ms)),
            other => Err(Error::Unexpected(format!("{other:?} before welcome"))),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.ws.send(text(frame)).await.map_err(Error::from)
    }

    /// The next frame from the server.
    pub async fn next(&mut self) -> Result<ServerFrame, Error> {
        read(&mut self.ws).await
    }

    /// Closes with 1000 (normal).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The WebSocket itself, for tools that write and read its messages
    /// directly.
    pub fn into_inner(self) -> Socket {
        self.ws
    }

    /// Splits into a half that sends and a half that reads, to use from two
    /// tasks.
    pub fn split(self) -> (Writer, Reader) {
        let (sink, stream) = self.ws.split();
        (Writer { sink }, Reader { stream })
    }
}

/// The sending half of a [`Connection`].
pub struct Writer {
    sink: SplitSink<Ws, Message>,
}

impl Writer {
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.sink.send(text(frame)).await.map_err(Error::from)
    }

    /// Sends several frames and flushes once.
    pub async fn send_all(&mut self, frames: &[ClientFrame]) -> Result<(), Error> {
        for f in frames {
            self.sink.feed(text(f)).await?;
        }
        self.sink.flush().await.map_err(Error::from)
    }

    /// Closes with 1000 (normal).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The reading half of a [`Connection`].
pub struct Reader {
    stream: SplitStream<Ws>,
}

impl Reader {
    /// The next frame from the server. Cancel-safe: a frame is never lost
    /// when this future is dropped unfinished.
    pub async fn next(&mut self) -> Result<ServerFrame, Error> {
        read(&mut self.stream).await
    }
}

fn text(frame: &ClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).expect("client frames serialize"))
}

/// Reads until a frame (control messages are the WebSocket layer's).
async fn read<S>(stream: &mut S) -> Result<ServerFrame, Error>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            None => return Err(Error::Connection("the connection dropped".into())),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t)
                    .map_err(|e| Error::Unexpected(format!("{e}: {}", t.as_str())));
            }
            Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
            Some(Ok(_)) => {}
        }
    }
}

fn closed(frame: Option<CloseFrame>) -> Error {
    match frame {
        Some(f) => Error::Closed {
            code: f.code.into(),
            reason: f.reason.to_string(),
        },
        None => Error::Closed {
            code: 1005,
            reason: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn base_urls_become_websocket_urls() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(ws_url("https://chat.example/"), "wss://chat.example/v1/ws");
        assert_eq!(ws_url("ws://h:1/v1/ws"), "ws://h:1/v1/ws");
    }
}
