//! A real standalone server on port 0 and real WebSocket / HTTP clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_runtime::node::Limits;
use chat_runtime::protocol::{ErrorCode, ServerFrame};
use chat_runtime::standalone;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// `http`, or `https` when the server serves TLS.
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub phone: String,
    pub token: String,
}

impl Server {
    /// Default limits, except that every test client comes from one
    /// address: it may register as many accounts as a test needs, at once.
    pub async fn start() -> Self {
        Self::start_with(Limits {
            signups_per_minute: 100_000,
            hashing_per_address: 1_000,
            ..Limits::default()
        })
        .await
    }

    pub async fn start_with(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path(), limits).await;
        s._dir = Some(dir);
        s
    }

    /// Serves from `data_dir`; the caller keeps the directory.
    pub async fn start_in(data_dir: &std::path::Path, limits: Limits) -> Self {
        let config = standalone::Config {
            token_ttl_secs: 3600,
            limits,
            ..standalone::Config::new(data_dir.to_path_buf())
        };
        // reqwest's client needs the crypto provider before it is built.
        chat_runtime::install_crypto();
        Self::serve(config, reqwest::Client::new()).await
    }

    /// Serves `config` (the caller keeps its directory); `http` talks to it
    /// (over TLS when `config.tls` is set).
    pub async fn serve(config: standalone::Config, http: reqwest::Client) -> Self {
        chat_runtime::install_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let task = tokio::spawn(async move {
            standalone::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            http,
            scheme,
            stop: Some(stop),
            task,
            _dir: None,
        }
    }

    /// The data directory of a server started by `start` / `start_with`.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir
            .as_ref()
            .expect("server owns its directory")
            .path()
    }

    /// A handle that only talks to the server at `addr` (for use in tasks).
    pub fn client_only(addr: SocketAddr, http: reqwest::Client) -> Self {
        Self {
            addr,
            http,
            scheme: "http",
            stop: None,
            task: tokio::spawn(async {}),
            _dir: None,
        }
    }

    /// Graceful shutdown; waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A group's invite code, as its admin `admin` reads it.
    pub async fn invite(&self, chat: Uuid, admin: &TestUser) -> String {
        let (status, body) = self
            .get(&format!("/v1/groups/{chat}/invite"), &admin.token)
            .await;
        assert_eq!(status, 200, "{body}");
        body["invite"].as_str().expect("an invite code").to_owned()
    }

    /// Registers and logs in a user.
    pub async fn user(&self, phone: &str, name: &str) -> TestUser {
        let (status, body) = self
            .post(
                "/v1/register",
                None,
                json!({"phone": phone, "display_name": name, "password": "s3cret-pass"}),
            )
            .await;
        assert_eq!(status, 201, "register {phone}: {body}");
        let (status, body) = self
            .post(
                "/v1/login",
                None,
                json!({"phone": phone, "password": "s3cret-pass"}),
            )
            .await;
        assert_eq!(status, 200, "login {phone}: {body}");
        TestUser {
            id: body["user_id"].as_str().unwrap().parse().unwrap(),
            phone: phone.into(),
            token: body["token"].as_str().unwrap().into(),
        }
    }

    /// The direct chat between two users, created (201) or found (200)
    /// through REST.
    pub async fn direct(&self, a: &TestUser, b: &TestUser) -> Uuid {
        let (status, body) = self
            .post("/v1/direct", Some(&a.token), json!({"phone": b.phone}))
            .await;
        assert!(matches!(status, 200 | 201), "{status} {body}");
        body["chat_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn connect(&self, user: &TestUser) -> Client {
        self.connect_with(user, BTreeMap::new()).await
    }

    /// Connects, says hello with `watermarks`, and reads `welcome`.
    pub async fn connect_with(&self, user: &TestUser, watermarks: BTreeMap<Uuid, u64>) -> Client {
        let mut c = Client::open(self.addr).await;
        c.send(json!({"type": "hello", "token": user.token, "watermarks": watermarks}))
            .await;
        match c.next().await {
            ServerFrame::Welcome { user_id, .. } => assert_eq!(user_id, user.id),
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `chat-runtime standalone` binary on a free port, serving `dir`, with
/// `extra` flags; a handle to it once it is healthy.
pub async fn spawn(dir: &std::path::Path, extra: &[&str]) -> (Child, Server) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-runtime"))
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(["--rate", "100000", "--burst", "100000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat-runtime");
    chat_runtime::install_crypto();
    let server = Server::client_only(
        format!("127.0.0.1:{port}").parse().unwrap(),
        reqwest::Client::new(),
    );
    for _ in 0..100 {
        if let Ok(r) = server.http.get(server.url("/healthz")).send().await
            && r.status().is_success()
        {
            return (child, server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chat-runtime did not become healthy");
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn open(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
            .await
            .unwrap();
        Self { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// The next server frame (pongs included).
    pub async fn next(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("socket open")
                .expect("socket ok");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("valid server frame"),
                Message::Close(c) => panic!("unexpected close: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Reads until `pick` returns something; other frames are discarded.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> T {
        loop {
            let f = self.next().await;
            if let Some(t) = pick(&f) {
                return t;
            }
        }
    }

    /// Waits for the socket to close; returns the close code.
    /// The next frame, or the close code if the server closed instead.
    pub async fn next_or_closed(&mut self) -> Result<ServerFrame, u16> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Ok(serde_json::from_str(&t).expect("valid server frame"));
                }
                Some(Ok(Message::Close(Some(c)))) => return Err(c.code.into()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Err(1006),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn closed(&mut self) -> u16 {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close within the wait");
            match msg {
                Some(Ok(Message::Close(Some(c)))) => return c.code.into(),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 1006,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a text message and returns its `sent` seq; a `rate_limited`
    /// answer is retried after `retry_after_ms` with the same id, as the
    /// protocol tells clients to (a loaded machine can trip the limit).
    pub async fn say(&mut self, chat: Uuid, id: &str, body: &str) -> u64 {
        loop {
            self.send(json!({"type": "send", "chat_id": chat, "client_msg_id": id, "body": body}))
                .await;
            let answer = self
                .until(|f| match f {
                    ServerFrame::Sent {
                        client_msg_id, seq, ..
                    } if client_msg_id == id => Some(Ok(*seq)),
                    ServerFrame::Error {
                        client_msg_id: Some(c),
                        code: ErrorCode::RateLimited,
                        retry_after_ms,
                        ..
                    } if c == id => Some(Err(retry_after_ms.unwrap_or(100))),
                    ServerFrame::Error {
                        client_msg_id: Some(c),
                        code,
                        ..
                    } if c == id => panic!("send {id} failed: {code:?}"),
                    _ => None,
                })
                .await;
            match answer {
                Ok(seq) => return seq,
                Err(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
        }
    }

    /// Sends a request frame and returns the reply with the same `req_id`.
    pub async fn request(&mut self, mut v: Value) -> ServerFrame {
        let req_id = Uuid::new_v4().to_string();
        v["req_id"] = json!(req_id);
        self.send(v).await;
        self.until(|f| {
            let id = match f {
                ServerFrame::Chats { req_id, .. }
                | ServerFrame::History { req_id, .. }
                | ServerFrame::Chat { req_id, .. }
                | ServerFrame::Invite { req_id, .. }
                | ServerFrame::Ok { req_id } => Some(req_id.clone()),
                ServerFrame::Presence { req_id, .. } | ServerFrame::Error { req_id, .. } => {
                    req_id.clone()
                }
                _ => None,
            };
            (id.as_deref() == Some(req_id.as_str())).then(|| f.clone())
        })
        .await
    }

    /// Message events (seq) of `chat` until `last` arrives, in arrival order.
    pub async fn messages_until(&mut self, chat: Uuid, last: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        while seqs.last() != Some(&last) {
            let f = self.next().await;
            if let ServerFrame::Message { message } = f
                && message.chat_id == chat
            {
                seqs.push(message.seq);
            }
        }
        seqs
    }
}
