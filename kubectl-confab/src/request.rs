//! `kubectl confab drain` and `kubectl confab failover`: the request is an
//! annotation on the ChatCluster (`confab_api::cluster::requests`); the
//! operator carries it out, answers with an event and removes the
//! annotation. This waits for that answer.

use std::time::Duration;

use confab_api::cluster::ChatCluster;
use confab_api::cluster::requests::Request;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::Error;

/// Events the operator answers a request with.
const ANSWERS: [&str; 3] = ["Drained", "FailedOverOnRequest", "RequestRefused"];

/// How far the operator's clock may trail this one.
const SKEW: SignedDuration = SignedDuration::from_secs(5);

/// Asks for `request` on ChatCluster `name`; answers the operator's note
/// once it is done, or why it refused.
pub async fn send(
    client: &Client,
    namespace: &str,
    name: &str,
    request: &Request,
    timeout: Duration,
) -> Result<String, Error> {
    let api: Api<ChatCluster> = Api::namespaced(client.clone(), namespace);
    let cc = api.get_opt(name).await?.ok_or_else(|| Error::NotFound {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    let (key, value) = request.annotation();
    if let Some(pending) = cc.metadata.annotations.as_ref().and_then(|a| a.get(key)) {
        return Err(Error::Refused(format!(
            "a request is already waiting: {key}={pending} (cancel it with `kubectl annotate chatcluster/{name} {key}-`)"
        )));
    }
    let asked = Timestamp::now();
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let cc = api.get(name).await?;
        let waiting = cc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(key));
        if !waiting {
            return answer(client, namespace, name, asked).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Refused(format!(
                "the operator did not carry out {key}={value} within {timeout:?}; the request stays, \
                 so it is done when the operator can (cancel it with `kubectl annotate chatcluster/{name} {key}-`)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The operator's answering event, newest first since `asked`.
async fn answer(
    client: &Client,
    namespace: &str,
    name: &str,
    asked: Timestamp,
) -> Result<String, Error> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await?.items;
    let when = |e: &Event| {
        let series = e.series.as_ref().map(|s| s.last_observed_time.0);
        series.or(e.event_time.as_ref().map(|t| t.0))
    };
    let found = list
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| ANSWERS.contains(&e.reason.as_deref().unwrap_or_default()))
        .filter(|e| when(e).is_some_and(|t| t >= asked - SKEW))
        .max_by_key(|e| when(e));
    match found {
        Some(e) if e.reason.as_deref() == Some("RequestRefused") => {
            Err(Error::Refused(e.note.clone().unwrap_or_default()))
        }
        Some(e) => Ok(e.note.clone().unwrap_or_default()),
        None => Ok("done (the operator's event has expired)".into()),
    }
}
