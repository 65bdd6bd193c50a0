//! A scripted API server for the shell's tests: a real `kube::Client` over a
//! `tower_test` mock, answered from a small in-memory store of objects kept
//! by URL path. Every request lands in a shared [`Journal`] — and so do the
//! control RPCs of [`JournalControl`] — so a test asserts the exact sequence
//! of calls one reconcile made, API and runtime interleaved.
//!
//! It serves only what the shell uses: GET (404 when absent), LIST (every
//! stored object under the collection; selectors are recorded, not
//! evaluated), server-side apply (stored and echoed; on `/status` merged into
//! the stored object and refused with 409 when its `resourceVersion`
//! precondition is stale; on a path set with [`FakeApi::refusing`] refused
//! with its code and message), JSON patches (applied to the stored object),
//! event POSTs, DELETE of one object or of a collection. Anything else fails
//! the test. It decides nothing about Confab; the tests do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use confab_api::ring::Ring;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::{Value, json};

use super::control::{ControlApi, ControlError, Target};
use crate::core::autoscale::PodReport;

/// One call, as the test sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `"GET /api/v1/namespaces/prod/pods"`, `"POST <events path> <reason>"`
    /// or `"RPC PrepareRing 0 @2"`.
    pub call: String,
    /// The query string (kube writes `&k=v&...`), empty for RPCs.
    pub query: String,
    /// The request body as JSON, if it had one.
    pub body: Option<Value>,
}

/// Calls in the order they happened.
#[derive(Clone, Debug, Default)]
pub struct Journal(Arc<Mutex<Vec<Entry>>>);

impl Journal {
    fn push(&self, entry: Entry) {
        self.0.lock().expect("journal lock").push(entry);
    }

    /// Every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("journal lock").clone()
    }

    /// The `call` of every entry so far.
    pub fn calls(&self) -> Vec<String> {
        self.entries().into_iter().map(|e| e.call).collect()
    }

    /// The first entry whose call is `call`.
    pub fn find(&self, call: &str) -> Entry {
        let entries = self.entries();
        entries
            .iter()
            .find(|e| e.call == call)
            .cloned()
            .unwrap_or_else(|| panic!("no `{call}` in {:#?}", self.calls()))
    }
}

/// The store the fake answers from.
#[derive(Clone, Debug, Default)]
pub struct FakeApi {
    objects: BTreeMap<String, Value>,
    /// Refuse every status write with 409, as if another writer got there
    /// first.
    status_conflicts: bool,
    /// Paths whose server-side applies are refused: `(code, message)`.
    refused: BTreeMap<String, (u16, String)>,
}

/// `<collection path>/<name>` of `obj`.
pub fn path_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let meta = obj.meta();
    let ns = meta.namespace.as_deref();
    let name = meta.name.as_deref().expect("stored objects have a name");
    format!("{}/{name}", K::url_path(&(), ns))
}

fn status(code: u16, reason: &str) -> Value {
    refusal(code, reason, reason)
}

fn refusal(code: u16, reason: &str, message: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Status", "metadata": {},
            "status": "Failure", "reason": reason, "message": message, "code": code })
}

impl FakeApi {
    /// Stores `obj` (namespaced, `metadata.namespace` set) as existing.
    pub fn with<K: Resource<DynamicType = ()> + Serialize>(mut self, obj: &K) -> Self {
        let value = serde_json::to_value(obj).expect("serializable object");
        self.objects.insert(path_of(obj), value);
        self
    }

    /// Refuses every apply to `path` with `code` and `message`, as the API
    /// server refuses an invalid object.
    pub fn refusing(mut self, path: &str, code: u16, message: &str) -> Self {
        self.refused
            .insert(path.to_string(), (code, message.to_string()));
        self
    }

    /// Refuses every status write with 409 Conflict.
    pub fn refusing_status_writes(mut self) -> Self {
        self.status_conflicts = true;
        self
    }

    /// A client served by this store, and the journal it writes. The serving
    /// task ends once every clone of the client is dropped.
    pub fn serve(self, journal: &Journal) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let journal = journal.clone();
        tokio::spawn(async move {
            let mut store = self;
            while let Some((request, reply)) = handle.next_request().await {
                let (code, body) = store.answer(request, &journal).await;
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&body).expect("json")))
                    .expect("response");
                reply.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    async fn answer(&mut self, request: Request<Body>, journal: &Journal) -> (StatusCode, Value) {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Option<Value> = (!bytes.is_empty())
            .then(|| serde_json::from_slice(&bytes).expect("a JSON request body"));
        // An event's reason is what tells one apart in a sequence.
        let reason = match &body {
            Some(b) if path.ends_with("/events") => {
                format!(" {}", b["reason"].as_str().unwrap_or("?"))
            }
            _ => String::new(),
        };
        journal.push(Entry {
            call: format!("{method} {path}{reason}"),
            query,
            body: body.clone(),
        });
        if method == Method::PATCH
            && let Some((code, message)) = self.refused.get(&path)
        {
            let code = StatusCode::from_u16(*code).expect("an HTTP status");
            return (code, refusal(code.as_u16(), "Invalid", message));
        }
        let collection = is_collection(&path);
        match (method, collection) {
            (Method::GET, true) => (StatusCode::OK, self.list(&path)),
            (Method::GET, false) => match self.objects.get(&path) {
                Some(obj) => (StatusCode::OK, obj.clone()),
                None => (StatusCode::NOT_FOUND, status(404, "NotFound")),
            },
            (Method::PATCH, false) if content_type.contains("apply-patch") => {
                self.apply(&path, body.expect("an apply body"))
            }
            (Method::PATCH, false) if content_type.contains("json-patch") => {
                self.json_patch(&path, body.expect("a JSON patch"))
            }
            (Method::POST, true) => (StatusCode::CREATED, body.expect("an object to create")),
            (Method::DELETE, false) => match self.objects.remove(&path) {
                Some(obj) => (StatusCode::OK, obj),
                None => (StatusCode::NOT_FOUND, status(404, "NotFound")),
            },
            (Method::DELETE, true) => {
                let gone = self.list(&path);
                self.objects
                    .retain(|p, _| !p.starts_with(&format!("{path}/")));
                (StatusCode::OK, gone)
            }
            (m, _) => panic!("the fake API server does not serve {m} {path} ({content_type})"),
        }
    }

    fn list(&self, collection: &str) -> Value {
        let prefix = format!("{collection}/");
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .map(|(_, v)| v)
            .collect();
        json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "1" },
                "items": items })
    }

    /// Server-side apply: a `/status` apply lands in the stored object's
    /// status (409 on a stale resourceVersion); any other is stored as sent.
    fn apply(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        let Some(parent) = path.strip_suffix("/status") else {
            self.objects.insert(path.to_string(), body.clone());
            return (StatusCode::OK, body);
        };
        let stored = self
            .objects
            .get_mut(parent)
            .expect("status of a stored object");
        let expected = &stored["metadata"]["resourceVersion"];
        let precondition = &body["metadata"]["resourceVersion"];
        if self.status_conflicts || (!precondition.is_null() && precondition != expected) {
            return (StatusCode::CONFLICT, status(409, "Conflict"));
        }
        stored["status"] = body["status"].clone();
        bump(stored);
        (StatusCode::OK, stored.clone())
    }

    /// The `test`/`add`/`remove` operations the finalizer helper sends.
    fn json_patch(&mut self, path: &str, ops: Value) -> (StatusCode, Value) {
        let stored = self
            .objects
            .get_mut(path)
            .expect("patch of a stored object");
        for op in ops.as_array().expect("a JSON patch is a list") {
            let pointer = op["path"].as_str().expect("op path");
            match op["op"].as_str() {
                Some("test") => {
                    let at = stored.pointer(pointer).cloned().unwrap_or(Value::Null);
                    if at != op["value"] {
                        return (StatusCode::UNPROCESSABLE_ENTITY, status(422, "Invalid"));
                    }
                }
                Some("add") if pointer == "/metadata/finalizers" => {
                    stored["metadata"]["finalizers"] = op["value"].clone();
                }
                Some("remove") => {
                    let (list, index) = pointer.rsplit_once('/').expect("an index");
                    let index: usize = index.parse().expect("a list index");
                    let list = stored.pointer_mut(list).expect("the list");
                    list.as_array_mut().expect("a list").remove(index);
                }
                other => panic!("unsupported JSON patch op {other:?} at {pointer}"),
            }
        }
        bump(stored);
        (StatusCode::OK, stored.clone())
    }
}

fn bump(obj: &mut Value) {
    let rv: u64 = obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
}

/// `/api/v1/namespaces/ns/pods` (a collection) versus `.../pods/name`.
fn is_collection(path: &str) -> bool {
    let after = path
        .split_once("/namespaces/")
        .map(|(_, rest)| rest)
        .expect("the shell only calls namespaced paths");
    after.split('/').count() == 2
}

/// A control API that journals every call beside the API requests
/// (`RPC <name> <shard> @<epoch>`, with the target's address and token as
/// its body) and answers it — or, built with
/// [`JournalControl::unreachable`], fails it as a pod behind a default-deny
/// NetworkPolicy would.
#[derive(Clone, Debug, Default)]
pub struct JournalControl {
    journal: Journal,
    unreachable: bool,
}

impl JournalControl {
    /// Answers every call.
    pub fn new(journal: &Journal) -> Self {
        JournalControl {
            journal: journal.clone(),
            unreachable: false,
        }
    }

    /// Fails every call with `Unavailable`.
    pub fn unreachable(journal: &Journal) -> Self {
        JournalControl {
            journal: journal.clone(),
            unreachable: true,
        }
    }

    fn push(&self, rpc: &'static str, target: &Target, epoch: u64) -> Result<(), ControlError> {
        self.journal.push(Entry {
            call: format!("RPC {rpc} {} @{epoch}", target.shard),
            query: String::new(),
            body: Some(json!({ "address": target.address, "token": target.token })),
        });
        if self.unreachable {
            return Err(ControlError::Rejected {
                address: target.address.clone(),
                rpc,
                code: tonic::Code::Unavailable,
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ControlApi for JournalControl {
    async fn status(&self, t: &Target) -> Result<PodReport, ControlError> {
        match self.unreachable {
            true => Err(ControlError::Address(format!("{} (refused)", t.address))),
            false => Ok(PodReport::default()),
        }
    }

    async fn prepare_ring(&self, t: &Target, ring: &Ring, _: u64) -> Result<u64, ControlError> {
        self.push("PrepareRing", t, ring.epoch()).map(|()| 0)
    }

    async fn commit_ring(&self, t: &Target, epoch: u64) -> Result<u64, ControlError> {
        self.push("CommitRing", t, epoch).map(|()| 0)
    }

    async fn abort_ring(&self, t: &Target, epoch: u64) -> Result<(), ControlError> {
        self.push("AbortRing", t, epoch)
    }

    async fn drain(&self, t: &Target, _: Duration) -> Result<u64, ControlError> {
        self.push("Drain", t, 0).map(|()| 0)
    }
}
