//! Stand-ins for FCM and APNs that speak their wire protocols, for push
//! scenarios on a machine that cannot reach Google or Apple. They check what
//! the real services check first: FCM's OAuth grant is a JWT signed with the
//! service account's RSA key (verified with its public half), sends carry an
//! access token it issued; APNs requests come over HTTP/2 with a provider
//! token signed (ES256) by the `.p8` key, with the key id and team id. Keys
//! are generated per run. Answers can be scripted, as from the services.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as With};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use confab_api::config::{ApnsConfig, PushConfig};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub const PROJECT: &str = "confab-test";
pub const CLIENT_EMAIL: &str = "notifier@confab-test.iam.gserviceaccount.com";
pub const KEY_ID: &str = "KEY1234567";
pub const TEAM_ID: &str = "TEAM123456";
pub const TOPIC: &str = "dev.confab.app";

/// A request APNs accepted (or refused as scripted).
#[derive(Clone, Debug)]
pub struct ApnsRequest {
    pub device: String,
    pub headers: HashMap<String, String>,
    pub payload: Value,
    pub status: u16,
}

#[derive(Default)]
struct State {
    token_uri: String,
    tokens_issued: u32,
    fcm: Vec<(Value, u16)>,
    apns: Vec<ApnsRequest>,
    fcm_script: VecDeque<(u16, Value)>,
    apns_script: VecDeque<(u16, &'static str)>,
    /// Requests refused for bad credentials, with why.
    refused: Vec<String>,
    rsa_public: String,
    ec_public: String,
}

type Shared = Arc<Mutex<State>>;

/// The two services on one loopback port; stops when dropped.
pub struct PushServices {
    pub base: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Drop for PushServices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: u16, body: &Value) -> Response {
    let code = StatusCode::from_u16(status).expect("a status");
    let json = [("content-type", "application/json")];
    (code, json, body.to_string()).into_response()
}

/// The 400 the real services answer a body that is not JSON.
fn not_json() -> Response {
    reply(400, &json!({"error": "the body is not JSON"}))
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `POST /token`: the OAuth JWT-bearer grant.
async fn token(With(state): With<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut st = state.lock().expect("state");
    let grant_type = form.get("grant_type").map(String::as_str);
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[st.token_uri.clone()]);
    v.set_issuer(&[CLIENT_EMAIL]);
    let key = DecodingKey::from_rsa_pem(st.rsa_public.as_bytes()).expect("our public key");
    let checked = jsonwebtoken::decode::<Value>(&assertion, &key, &v);
    match (grant_type, checked) {
        (Some("urn:ietf:params:oauth:grant-type:jwt-bearer"), Ok(t))
            if t.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging" =>
        {
            st.tokens_issued += 1;
            let n = st.tokens_issued;
            reply(
                200,
                &json!({"access_token": format!("at-{n}"), "expires_in": 3600, "token_type": "Bearer"}),
            )
        }
        (g, checked) => {
            st.refused.push(format!("grant {g:?}: {:?}", checked.err()));
            reply(400, &json!({"error": "invalid_grant"}))
        }
    }
}

/// `POST /v1/projects/{project}/messages:send`.
async fn fcm_send(
    Path(project): Path<String>,
    With(state): With<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return not_json();
    };
    let mut st = state.lock().expect("state");
    let bearer = header(&h, "authorization");
    let valid = (1..=st.tokens_issued).any(|n| bearer == format!("Bearer at-{n}"));
    if !valid || project != PROJECT {
        st.refused
            .push(format!("FCM send with {bearer:?} to {project}"));
        return reply(
            401,
            &json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        );
    }
    let (status, answer) = st.fcm_script.pop_front().unwrap_or((
        200,
        json!({"name": format!("projects/{PROJECT}/messages/1")}),
    ));
    st.fcm.push((body, status));
    reply(status, &answer)
}

/// `POST /3/device/{token}`.
async fn apns_send(
    Path(device): Path<String>,
    With(state): With<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return not_json();
    };
    let mut st = state.lock().expect("state");
    let jwt = header(&h, "authorization");
    let jwt = jwt.strip_prefix("bearer ").unwrap_or_default();
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.set_issuer(&[TEAM_ID]);
    let key = DecodingKey::from_ec_pem(st.ec_public.as_bytes()).expect("our public key");
    let kid = jsonwebtoken::decode_header(jwt).ok().and_then(|hd| hd.kid);
    if let Err(e) = jsonwebtoken::decode::<Value>(jwt, &key, &v) {
        st.refused.push(format!("APNs token: {e}"));
        return reply(403, &json!({"reason": "InvalidProviderToken"}));
    }
    if kid.as_deref() != Some(KEY_ID) {
        st.refused.push(format!("APNs key id {kid:?}"));
        return reply(403, &json!({"reason": "InvalidProviderToken"}));
    }
    let (status, reason) = st.apns_script.pop_front().unwrap_or((200, ""));
    let headers = [
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-collapse-id",
    ]
    .into_iter()
    .map(|n| (n.to_owned(), header(&h, n)))
    .collect();
    st.apns.push(ApnsRequest {
        device,
        headers,
        payload,
        status,
    });
    reply(status, &json!({"reason": reason}))
}

impl PushServices {
    /// Generates the keys, writes the credential files and starts serving.
    pub async fn start() -> Result<Self> {
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        let mut rng = rsa::rand_core::OsRng;
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048)?;
        let rsa_public = rsa::RsaPublicKey::from(&rsa_key).to_public_key_pem(LineEnding::LF)?;
        let ec_key = p256::SecretKey::random(&mut rng);
        let ec_public = ec_key.public_key().to_public_key_pem(LineEnding::LF)?;

        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state: Shared = Arc::new(Mutex::new(State {
            token_uri: format!("{base}/token"),
            rsa_public,
            ec_public,
            ..State::default()
        }));
        let dir = tempfile::tempdir()?;
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "client_email": CLIENT_EMAIL,
            "private_key": rsa_key.to_pkcs8_pem(LineEnding::LF)?.as_str(),
            "token_uri": format!("{base}/token"),
        });
        std::fs::write(dir.path().join("fcm.json"), account.to_string())?;
        std::fs::write(
            dir.path().join("apns.p8"),
            ec_key.to_pkcs8_pem(LineEnding::LF)?.as_bytes(),
        )?;

        let routes = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send))
            .route("/3/device/{device}", post(apns_send))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        Ok(Self {
            base,
            state,
            task,
            dir,
        })
    }

    /// The push settings that point the notifier here.
    pub fn push_config(&self) -> PushConfig {
        let file = |name: &str| self.dir.path().join(name).to_string_lossy().into_owned();
        PushConfig {
            fcm_credentials_file: Some(file("fcm.json")),
            fcm_endpoint: Some(self.base.clone()),
            apns: Some(ApnsConfig {
                key_file: file("apns.p8"),
                key_id: KEY_ID.into(),
                team_id: TEAM_ID.into(),
                topic: TOPIC.into(),
                sandbox: false,
                endpoint: Some(self.base.clone()),
            }),
            ..PushConfig::default()
        }
    }

    /// Where the credential files are.
    pub fn credentials_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// FCM answers the next send with `status` and `body`.
    pub fn fcm_answers(&self, status: u16, body: Value) {
        self.state
            .lock()
            .expect("state")
            .fcm_script
            .push_back((status, body));
    }

    /// APNs answers the next request with `status` and `reason`.
    pub fn apns_answers(&self, status: u16, reason: &'static str) {
        self.state
            .lock()
            .expect("state")
            .apns_script
            .push_back((status, reason));
    }

    /// FCM messages received, with the status they were answered.
    pub fn fcm_messages(&self) -> Vec<(Value, u16)> {
        self.state.lock().expect("state").fcm.clone()
    }

    pub fn apns_requests(&self) -> Vec<ApnsRequest> {
        self.state.lock().expect("state").apns.clone()
    }

    pub fn tokens_issued(&self) -> u32 {
        self.state.lock().expect("state").tokens_issued
    }

    /// Requests refused for bad credentials (none, when the notifier is right).
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().expect("state").refused.clone()
    }

    /// Waits until `done` holds (fails after `within`).
    pub async fn until(&self, within: Duration, done: impl Fn(&Self) -> bool) -> Result<()> {
        crate::eventually("the push services' expected requests", within, async || {
            Ok(done(self))
        })
        .await
        .with_context(|| {
            format!(
                "FCM {:?}, APNs {:?}, refused {:?}",
                self.fcm_messages(),
                self.apns_requests(),
                self.refused()
            )
        })
    }
}
