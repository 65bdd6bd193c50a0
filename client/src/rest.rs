//! The REST API (`docs/protocol.md`, "REST"): accounts, chats, history,
//! sends, and media uploads with progress. Every refusal is a typed
//! [`Error::Refused`] with the server's code.

use std::sync::Arc;

use confab_protocol::ChatView;
use confab_protocol::model::{ChatId, Seq, UserId};
use confab_protocol::rest::{ErrorBody, HistoryPage, SentView, Session, UploadView, UserView};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Error, Sent};

/// Calls to the server at one base URL, as one user once logged in.
#[derive(Clone, Debug)]
pub struct Rest {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Upload chunks: progress is reported after each.
const CHUNK: usize = 64 * 1024;

impl Rest {
    /// A client of the server at `base` (`http://host:port`). Installs
    /// ring as the process's TLS provider unless one is installed.
    pub fn new(base: impl Into<String>) -> Self {
        crate::install_crypto();
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// A client of the server at `https` `base` that trusts what `tls`
    /// trusts (a private CA, say): the same settings as the session's
    /// [`crate::Options::tls`].
    pub fn with_tls(
        base: impl Into<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .build()?;
        Ok(Self {
            http,
            ..Self::new(base)
        })
    }

    /// The same client, calling as the user `token` belongs to.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn register(
        &self,
        phone: &str,
        display_name: &str,
        password: &str,
    ) -> Result<UserView, Error> {
        let body = json!({"phone": phone, "display_name": display_name, "password": password});
        self.call(self.http.post(self.url("/v1/register")).json(&body))
            .await
    }

    /// Logs in; [`Rest::with_token`] with the session's token calls as the user.
    pub async fn login(&self, phone: &str, password: &str) -> Result<Session, Error> {
        let body = json!({"phone": phone, "password": password});
        self.call(self.http.post(self.url("/v1/login")).json(&body))
            .await
    }

    /// The user registered under `phone`.
    pub async fn lookup(&self, phone: &str) -> Result<UserView, Error> {
        let req = self
            .http
            .get(self.url("/v1/users"))
            .query(&[("phone", phone)]);
        self.call(req).await
    }

    /// The 1:1 chat with the user registered under `phone` (made on first use).
    pub async fn direct(&self, phone: &str) -> Result<ChatView, Error> {
        self.post("/v1/direct", json!({"phone": phone})).await
    }

    /// A new group with this user as its admin.
    pub async fn group(&self, title: &str, members: &[UserId]) -> Result<ChatView, Error> {
        self.post("/v1/groups", json!({"title": title, "members": members}))
            .await
    }

    pub async fn chats(&self) -> Result<Vec<ChatView>, Error> {
        self.call(self.http.get(self.url("/v1/chats"))).await
    }

    /// A page of `chat`'s history, newest first, older than `before`.
    pub async fn history(
        &self,
        chat: ChatId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<HistoryPage, Error> {
        let mut req = self
            .http
            .get(self.url(&format!("/v1/chats/{chat}/messages")))
            .query(&[("limit", limit)]);
        if let Some(b) = before {
            req = req.query(&[("before", b)]);
        }
        self.call(req).await
    }

    /// Sends a text message; answered once it is stored.
    pub async fn send(&self, chat: ChatId, client_msg_id: &str, body: &str) -> Result<Sent, Error> {
        let path = format!("/v1/chats/{chat}/messages");
        let sent: SentView = self
            .post(&path, json!({"client_msg_id": client_msg_id, "body": body}))
            .await?;
        Ok(Sent {
            chat_id: sent.chat_id,
            client_msg_id: sent.client_msg_id,
            seq: sent.seq,
            sent_at: sent.sent_at,
            duplicate: sent.duplicate,
        })
    }

    /// Uploads `bytes` as a file named `name`; `progress` hears the bytes
    /// sent so far after each chunk. Send it with a media `send`.
    pub async fn upload(
        &self,
        name: &str,
        content_type: &str,
        bytes: bytes::Bytes,
        mut progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<UploadView, Error> {
        let total = bytes.len() as u64;
        let chunks: Vec<bytes::Bytes> = (0..bytes.len())
            .step_by(CHUNK)
            .map(|at| bytes.slice(at..(at + CHUNK).min(bytes.len())))
            .collect();
        let mut sent = 0u64;
        let stream = futures::stream::iter(chunks.into_iter().map(move |c| {
            sent += c.len() as u64;
            progress(sent, total);
            Ok::<_, std::io::Error>(c)
        }));
        let req = self
            .http
            .post(self.url("/v1/media"))
            .query(&[("name", name)])
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(stream));
        self.call(req).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T, Error> {
        self.call(self.http.post(self.url(path)).json(&body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `req` (with the token, if any) and reads its JSON answer, or
    /// the error body of a refusal.
    async fn call<T: DeserializeOwned>(
        &self,
        mut req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text)
                .map_err(|e| Error::Unexpected(format!("{status} {e}: {text}")));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => Err(Error::Refused {
                code: b.code,
                message: b.message,
                status: Some(status),
                retry_after_ms: b.retry_after_ms,
            }),
            Err(_) => Err(Error::Unexpected(format!("{status}: {text}"))),
        }
    }
}
