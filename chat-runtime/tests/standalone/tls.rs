//! The listener's own TLS: REST, media and the WebSocket (wss://) over a
//! certificate made here, a renewed certificate served without a restart,
//! plain HTTP and stalled handshakes turned away.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_runtime::gateway::tls::{CHECK_EVERY, TlsFiles};
use chat_runtime::node::Limits;
use chat_runtime::protocol::ServerFrame;
use chat_runtime::standalone;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Server, WAIT};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM.
struct Pair {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Pair {
    fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        Self {
            der: made.cert.der().clone(),
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
        }
    }

    /// Replaces the files the way a Secret update or a renewal tool does:
    /// written aside, then renamed over the old ones.
    fn install(&self, files: &TlsFiles) {
        for (path, text) in [(&files.cert, &self.cert_pem), (&files.key, &self.key_pem)] {
            let aside = path.with_extension("new");
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, path).unwrap();
        }
    }
}

fn files_in(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

/// A TLS client trusting only `roots`.
fn client_config(roots: &[&CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth()
}

/// A standalone server serving `pair` over TLS, with an HTTPS client that
/// trusts it; the caller keeps `dir`.
async fn tls_server(dir: &Path, pair: &Pair, limits: Limits) -> Server {
    chat_runtime::install_crypto();
    let files = files_in(dir);
    pair.install(&files);
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(&[&pair.der]))
        .build()
        .unwrap();
    let config = standalone::Config {
        token_ttl_secs: 3600,
        limits,
        tls: Some(files),
        ..standalone::Config::new(dir.join("data"))
    };
    Server::serve(config, http).await
}

/// A finished TLS handshake with `addr`, trusting `roots`.
async fn handshake(
    addr: SocketAddr,
    roots: &[&CertificateDer<'static>],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(Arc::new(client_config(roots)))
        .connect(name, tcp)
        .await
}

/// The certificate the server presents now.
async fn presented(
    addr: SocketAddr,
    roots: &[&CertificateDer<'static>],
) -> CertificateDer<'static> {
    let tls = handshake(addr, roots).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn rest_media_and_the_websocket_work_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new();
    let server = tls_server(dir.path(), &pair, Limits::default()).await;
    assert!(server.url("/").starts_with("https://"));
    let alice = server.user("+15550190001", "Alice").await;
    let bob = server.user("+15550190002", "Bob").await;
    let chat = server.direct(&alice, &bob).await;

    // Media: upload and download through the streamed-body path.
    let up: Value = server
        .http
        .post(server.url("/v1/media"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = up["media_id"].as_str().expect("an upload id").to_owned();
    let got = server
        .http
        .get(server.url(&format!("/v1/media/{id}")))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &[7u8; 100_000][..]);

    // The WebSocket: wss:// on the same port, a message sent and acknowledged.
    let tls = handshake(server.addr, &[&pair.der]).await.unwrap();
    let url = format!("wss://{}/v1/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let hello = json!({"type": "hello", "token": alice.token, "watermarks": {}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    assert!(
        matches!(frame(&mut ws).await, ServerFrame::Welcome { user_id, .. } if user_id == alice.id)
    );
    let send = json!({"type": "send", "chat_id": chat, "client_msg_id": "c-1", "body": "over tls"});
    ws.send(Message::text(send.to_string())).await.unwrap();
    loop {
        if let ServerFrame::Sent {
            client_msg_id, seq, ..
        } = frame(&mut ws).await
        {
            assert_eq!((client_msg_id.as_str(), seq), ("c-1", 1));
            break;
        }
    }
    server.stop().await;
}

/// The next text frame of `ws`.
async fn frame<S>(ws: &mut WebSocketStream<S>) -> ServerFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Pair::new(), Pair::new());
    let server = tls_server(dir.path(), &old, Limits::default()).await;
    let both = [&old.der, &new.der];
    assert_eq!(presented(server.addr, &both).await, old.der);

    // A half-written renewal does not load: the old pair stays in use.
    let files = files_in(dir.path());
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    tokio::time::sleep(CHECK_EVERY + Duration::from_millis(500)).await;
    assert_eq!(presented(server.addr, &both).await, old.der);
    assert_eq!(presented(server.addr, &both).await, old.der);

    // The finished renewal is picked up within the check interval.
    new.install(&files);
    let deadline = tokio::time::Instant::now() + CHECK_EVERY * 3;
    while presented(server.addr, &both).await != new.der {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A client that trusts only the new certificate now gets through; one
    // that trusts only the old one no longer does.
    let renewed = reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(&[&new.der]))
        .build()
        .unwrap();
    let ok = renewed.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new();
    let server = tls_server(dir.path(), &pair, Limits::default()).await;
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .timeout(WAIT)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    let ok = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the server still serves HTTPS");
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new();
    let limits = Limits {
        header_timeout_ms: 300,
        ..Limits::default()
    };
    let server = tls_server(dir.path(), &pair, limits).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // The start of a TLS record (a handshake, 512 bytes long), then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the server closed the stalled connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}
