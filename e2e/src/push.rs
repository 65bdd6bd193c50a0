//! Push-notification scenarios, run standalone and on a local cluster: a
//! real webhook endpoint ([`Receiver`]) on loopback stands in for the push
//! service (FCM and APNs are not reachable here; webhook pushes are a real
//! platform of their own), so what the notifier sends, and how it reacts to
//! each answer, is observed from the outside.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chat_runtime::push::Notification;
use serde_json::json;

use crate::api::{Api, User};
use crate::device::Device;
use crate::eventually;

/// One POST the endpoint received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The last path segment: which device endpoint was called.
    pub device: String,
    pub notification: Notification,
    /// What the endpoint answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    got: Vec<Received>,
    script: VecDeque<u16>,
}

/// A webhook push endpoint: records every notification POSTed to
/// `<base>/<device>` and answers with scripted statuses (then 200, each with
/// `Retry-After: 0`). Stops when dropped.
pub struct Receiver {
    pub base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let route = axum::Router::new().route(
            "/up/{device}",
            axum::routing::post(
                move |axum::extract::Path(device): axum::extract::Path<String>,
                      body: axum::body::Bytes| async move {
                    let Ok(notification) = serde_json::from_slice::<Notification>(&body) else {
                        return (axum::http::StatusCode::BAD_REQUEST, [("retry-after", "0")]);
                    };
                    let mut st = s.lock().expect("receiver state");
                    let status = st.script.pop_front().unwrap_or(200);
                    st.got.push(Received {
                        device,
                        notification,
                        status,
                    });
                    let code = axum::http::StatusCode::from_u16(status).expect("scripted status");
                    (code, [("retry-after", "0")])
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port");
        let base = format!("http://{}/up", listener.local_addr().expect("bound"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, route).await;
        });
        Self { base, state, task }
    }

    /// The endpoint URL of `device` (what the device registers as its token).
    pub fn endpoint(&self, device: &str) -> String {
        format!("{}/{device}", self.base)
    }

    /// Answers the next requests with `statuses`, in order.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state
            .lock()
            .expect("receiver state")
            .script
            .extend(statuses);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("receiver state").got.clone()
    }

    /// Waits until `n` requests arrived; all of them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Result<Vec<Received>> {
        eventually(&format!("{n} push requests"), within, async || {
            Ok(self.received().len() >= n)
        })
        .await
        .with_context(|| format!("received {:#?}", self.received()))?;
        Ok(self.received())
    }
}

/// Where the scenarios run.
pub struct Target {
    /// A REST client per gateway (one for standalone).
    pub gateways: Vec<Api>,
    /// The `/metrics` URL of the process that runs the notifier.
    pub notifier_metrics: String,
}

/// How long a push may take to arrive (retries included).
const WAIT: Duration = Duration::from_secs(20);
/// Once one gateway sees a session change, how long the other watchers of
/// the session cache (the shards) may still lag: the same NATS message
/// reaches each watch, so milliseconds; this leaves room for a loaded CI box.
const PROPAGATION: Duration = Duration::from_millis(300);

impl Target {
    fn first(&self) -> &Api {
        &self.gateways[0]
    }

    fn last(&self) -> &Api {
        self.gateways.last().expect("a gateway")
    }

    /// Polls `viewer`'s view of `user`'s presence until it is `online`,
    /// then gives the shards' views [`PROPAGATION`] to follow.
    async fn presence_is(&self, viewer: &User, user: &User, online: bool) -> Result<()> {
        let path = format!("/v1/users/{}/presence", user.id);
        eventually(&format!("presence online = {online}"), WAIT, async || {
            let resp = self.first().get(&path, Some(&viewer.token), &[]).await?;
            let body: serde_json::Value = resp.json().await?;
            Ok(body["online"] == online)
        })
        .await?;
        tokio::time::sleep(PROPAGATION).await;
        Ok(())
    }

    /// The notifier's count of dead-lettered jobs.
    async fn dead_letters(&self) -> Result<u64> {
        let text = reqwest::get(&self.notifier_metrics).await?.text().await?;
        let line = text
            .lines()
            .find(|l| l.starts_with("confab_push_dead_letters_total "))
            .context("no dead-letter counter in /metrics")?;
        Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
    }
}

/// Registers a webhook device of `u` at `receiver`.
async fn register(api: &Api, u: &User, device: &str, receiver: &Receiver) -> Result<()> {
    let body = json!({"platform": "webhook", "token": receiver.endpoint(device)});
    let (s, b) = api
        .put(&format!("/v1/devices/{device}"), &u.token, body)
        .await?;
    ensure!(s == 200, "register device: {s} {b}");
    Ok(())
}

/// Waits `settle` and checks that exactly `n` requests arrived.
async fn exactly(receiver: &Receiver, n: usize) -> Result<Vec<Received>> {
    let got = receiver.wait_for(n, WAIT).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = receiver.received();
    ensure!(
        after.len() == n,
        "expected {n} push requests, got {after:#?}"
    );
    Ok(got)
}

/// Members with no live session get a push per device, named after the
/// sender (and the group); a member with a session on any gateway gets
/// none; going offline again brings pushes back.
pub async fn offline_members_get_pushes(t: &Target) -> Result<()> {
    let r = Receiver::start().await;
    let alice = t.first().user("alice").await?;
    let bob = t.last().user("bob").await?;
    let carol = t.last().user("carol").await?;
    let team = t.first().group(&alice, "Team", &[&bob, &carol]).await?;
    let direct = t.first().direct(&alice, &bob).await?;
    register(t.last(), &bob, "bob-phone", &r).await?;
    register(t.last(), &carol, "carol-phone", &r).await?;

    let seq = t.first().say(&alice, team, "hello team").await?;
    let got = exactly(&r, 2).await?;
    let mut devices: Vec<&str> = got.iter().map(|g| g.device.as_str()).collect();
    devices.sort_unstable();
    ensure!(devices == ["bob-phone", "carol-phone"], "{got:#?}");
    for g in &got {
        let n = &g.notification;
        ensure!(n.title == "alice @ Team" && n.body == "hello team", "{n:?}");
        ensure!(n.chat_id == team && n.seq == seq, "{n:?}");
    }

    // Bob comes online on the last gateway: no push for him, Carol still gets hers.
    let mut phone = Device::new(&bob.token);
    phone.connect(&t.last().url).await?;
    t.presence_is(&alice, &bob, true).await?;
    t.first().say(&alice, direct, "are you there?").await?;
    t.first().say(&alice, team, "second").await?;
    let got = exactly(&r, 3).await?;
    let third = &got[2];
    ensure!(
        third.device == "carol-phone" && third.notification.body == "second",
        "{got:#?}"
    );

    // Bob leaves: pushes come back.
    phone.disconnect();
    t.presence_is(&alice, &bob, false).await?;
    let seq = t.first().say(&alice, direct, "gone?").await?;
    let got = exactly(&r, 4).await?;
    let n = &got[3].notification;
    ensure!(got[3].device == "bob-phone", "{got:#?}");
    ensure!(
        n.title == "alice" && n.body == "gone?" && n.seq == seq,
        "{n:?}"
    );
    Ok(())
}

/// A push service that fails for a while is retried until it answers; a
/// token it calls gone is forgotten; a refusal is dead-lettered at once.
pub async fn failures_are_retried_forgotten_or_dead_lettered(t: &Target) -> Result<()> {
    let r = Receiver::start().await;
    let dead_before = t.dead_letters().await?;
    let alice = t.first().user("alice").await?;
    let bob = t.last().user("bob").await?;
    let chat = t.first().direct(&alice, &bob).await?;
    register(t.last(), &bob, "flaky", &r).await?;

    r.answer_next(&[503, 429]);
    let seq = t.first().say(&alice, chat, "one").await?;
    let got = exactly(&r, 3).await?;
    let statuses: Vec<u16> = got.iter().map(|g| g.status).collect();
    ensure!(statuses == [503, 429, 200], "{got:#?}");
    ensure!(got.iter().all(|g| g.notification.seq == seq));

    r.answer_next(&[410]);
    t.first().say(&alice, chat, "two").await?;
    exactly(&r, 4).await?;
    devices_gone(t.last(), &bob).await?;

    register(t.last(), &bob, "strict", &r).await?;
    r.answer_next(&[400]);
    t.first().say(&alice, chat, "three").await?;
    let got = exactly(&r, 5).await?;
    ensure!(
        got[4].device == "strict" && got[4].status == 400,
        "{got:#?}"
    );
    eventually("the refused push dead-lettered", WAIT, async || {
        Ok(t.dead_letters().await? == dead_before + 1)
    })
    .await
}

/// Device registration: typed refusals for bad ids, unconfigured platforms,
/// bad endpoints and an eleventh device; re-registering replaces; removing
/// is idempotent; no token, no devices.
pub async fn device_registration_refuses_bad_input(t: &Target) -> Result<()> {
    let api = t.first();
    let u = api.user("dana").await?;
    let put = |id: String, body: serde_json::Value| {
        let u = u.clone();
        async move { api.put(&format!("/v1/devices/{id}"), &u.token, body).await }
    };
    let hook =
        |n: usize| json!({"platform": "webhook", "token": format!("http://127.0.0.1:9/up/{n}")});
    let refused = [
        ("bad%20id".to_owned(), hook(0)),
        ("x".repeat(65), hook(0)),
        (
            "phone".to_owned(),
            json!({"platform": "fcm", "token": "abc"}),
        ),
        (
            "phone".to_owned(),
            json!({"platform": "pigeon", "token": "abc"}),
        ),
        (
            "phone".to_owned(),
            json!({"platform": "webhook", "token": "ftp://x/y"}),
        ),
        ("phone".to_owned(), json!({"platform": "webhook"})),
    ];
    for (id, body) in refused {
        let (s, b) = put(id.clone(), body.clone()).await?;
        ensure!(s == 400, "{id} {body}: {s} {b}");
    }
    for n in 0..10 {
        let (s, b) = put(format!("d{n}"), hook(n)).await?;
        ensure!(s == 200 && b["device_id"] == format!("d{n}"), "{s} {b}");
    }
    let (s, b) = put("d10".into(), hook(10)).await?;
    ensure!(
        s == 409 && b["code"] == "conflict",
        "an eleventh device: {s} {b}"
    );
    let (s, b) = put("d0".into(), hook(99)).await?;
    ensure!(
        s == 200 && b["token"] == "http://127.0.0.1:9/up/99",
        "{s} {b}"
    );
    let listed: serde_json::Value = api
        .get("/v1/devices", Some(&u.token), &[])
        .await?
        .json()
        .await?;
    let devices = listed["devices"].as_array().context("devices")?;
    ensure!(devices.len() == 10 && devices[0]["token"] == "http://127.0.0.1:9/up/99");
    ensure!(api.delete("/v1/devices/d3", &u.token).await? == 204);
    ensure!(api.delete("/v1/devices/d3", &u.token).await? == 204);
    let (s, _) = put("d10".into(), hook(10)).await?;
    ensure!(s == 200, "room again after a removal: {s}");
    let anonymous = api
        .http
        .get(format!("{}/v1/devices", api.url))
        .send()
        .await?;
    ensure!(anonymous.status() == 401);
    Ok(())
}

/// Polls until `u` has no registered device.
async fn devices_gone(api: &Api, u: &User) -> Result<()> {
    eventually("a gone token forgotten", WAIT, async || {
        let resp = api.get("/v1/devices", Some(&u.token), &[]).await?;
        let body: serde_json::Value = resp.json().await?;
        Ok(body["devices"].as_array().is_some_and(Vec::is_empty))
    })
    .await
}

/// FCM and APNs: each gets its platform's request, authenticated as the
/// service expects (one OAuth exchange for many sends; an ES256 provider
/// token); "unregistered" answers unregister the devices.
pub async fn fcm_and_apns_deliver_and_forget_gone_tokens(
    t: &Target,
    services: &crate::push_services::PushServices,
) -> Result<()> {
    use crate::push_services::TOPIC;
    let api = t.first();
    let alice = api.user("alice").await?;
    let bob = api.user("bob").await?;
    let carol = api.user("carol").await?;
    let team = api.group(&alice, "Team", &[&bob, &carol]).await?;
    let apns_token = "a1b2c3d4".repeat(8);
    let (s, b) = api
        .put(
            "/v1/devices/pixel",
            &bob.token,
            json!({"platform": "fcm", "token": "fcm-token-bob"}),
        )
        .await?;
    ensure!(s == 200, "{s} {b}");
    let (s, b) = api
        .put(
            "/v1/devices/iphone",
            &carol.token,
            json!({"platform": "apns", "token": apns_token}),
        )
        .await?;
    ensure!(s == 200, "{s} {b}");

    let seq = api.say(&alice, team, "hello").await?;
    services
        .until(WAIT, |s| {
            s.fcm_messages().len() == 1 && s.apns_requests().len() == 1
        })
        .await?;
    let (m, _) = &services.fcm_messages()[0];
    let m = &m["message"];
    ensure!(m["token"] == "fcm-token-bob", "{m}");
    ensure!(
        m["notification"] == json!({"title": "alice @ Team", "body": "hello"}),
        "{m}"
    );
    ensure!(
        m["data"]["chat_id"] == team.to_string()
            && m["data"]["seq"].as_str() == Some(seq.to_string().as_str()),
        "{m}"
    );
    ensure!(
        m["android"] == json!({"priority": "high", "collapse_key": team.to_string()}),
        "{m}"
    );
    let r = &services.apns_requests()[0];
    ensure!(r.device == apns_token, "{r:?}");
    let h = |n: &str| r.headers.get(n).map(String::as_str).unwrap_or("");
    ensure!(
        h("apns-topic") == TOPIC && h("apns-push-type") == "alert",
        "{r:?}"
    );
    ensure!(
        h("apns-priority") == "10" && h("apns-collapse-id") == team.to_string(),
        "{r:?}"
    );
    let alert = &r.payload["aps"]["alert"];
    ensure!(
        *alert == json!({"title": "alice @ Team", "body": "hello"}),
        "{r:?}"
    );
    ensure!(
        r.payload["aps"]["thread-id"] == team.to_string() && r.payload["seq"] == seq,
        "{r:?}"
    );

    api.say(&alice, team, "again").await?;
    services
        .until(WAIT, |s| {
            s.fcm_messages().len() == 2 && s.apns_requests().len() == 2
        })
        .await?;
    ensure!(services.tokens_issued() == 1, "the access token is reused");

    let unregistered = json!({"error": {"code": 404, "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
    services.fcm_answers(404, unregistered);
    services.apns_answers(410, "Unregistered");
    api.say(&alice, team, "third").await?;
    devices_gone(api, &bob).await?;
    devices_gone(api, &carol).await?;
    ensure!(services.refused().is_empty(), "{:?}", services.refused());
    Ok(())
}
