//! REST API under `/v1`: the same operations as the WebSocket, for clients
//! that prefer request/response (documented in `docs/protocol.md`).

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::bodies::{
    AddMember, DeviceBody, Direct, Group, Join, Login, Page, PhoneQuery, Register, SendBody,
    Watermark,
};
use crate::auth::Claims;
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::model::Device;
use crate::node::Node;
use crate::protocol::{ErrorCode, ServerFrame};

/// Largest JSON body accepted by the REST API.
const MAX_BODY: u64 = 64 * 1024;

#[derive(Serialize)]
struct Session {
    token: String,
    user_id: Uuid,
    expires_at: i64,
}

/// A group's invite code, as its admins see it.
#[derive(Serialize)]
struct Invite {
    chat_id: Uuid,
    invite: String,
}

#[derive(Serialize)]
struct Devices {
    devices: Vec<Device>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

pub(super) fn error_response(e: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody {
        code: e.code,
        message: &e.message,
        retry_after_ms: e.retry_after_ms,
    };
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    if let Some(ms) = e.retry_after_ms {
        // Whole seconds, rounded up: never earlier than the server said.
        let secs = ms.div_ceil(1000).max(1);
        response
            .headers_mut()
            .insert(warp::http::header::RETRY_AFTER, secs.into());
    }
    response
}

fn respond<T: Serialize>(node: &Node, status: StatusCode, r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => warp::reply::with_status(warp::reply::json(&v), status).into_response(),
        Err(e) => {
            node.metrics.error(e.code);
            error_response(&e)
        }
    }
}

fn with_node(node: Arc<Node>) -> impl Filter<Extract = (Arc<Node>,), Error = Infallible> + Clone {
    warp::any().map(move || node.clone())
}

fn json<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY).and(warp::body::json())
}

/// The client a request is counted under (see [`ClientAddr`]).
fn client() -> impl Filter<Extract = (ClientAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .map(|c: Option<ClientAddr>| c.unwrap_or(ClientAddr::UNKNOWN))
}

/// A request from an authenticated user, or an error to answer with.
type Authed = Result<Claims, ApiError>;

/// Authenticates the request and charges it to the user's budget: each
/// request costs what one WebSocket frame does, so switching to REST buys
/// no extra rate (429 `rate_limited` over it).
fn authed(node: Arc<Node>) -> impl Filter<Extract = (Authed,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").then(move |h: Option<String>| {
        let node = node.clone();
        async move {
            let claims = node.authenticate_header(h.as_deref()).await?;
            node.check_rate(claims.sub)?;
            Ok(claims)
        }
    })
}

/// Every REST route, boxed in groups: warp's nested filter types otherwise
/// grow past the compiler's recursion limit in release builds.
pub fn routes(node: Arc<Node>) -> BoxedFilter<(Response,)> {
    let n = || with_node(node.clone());
    let a = || authed(node.clone());
    let register = warp::path!("v1" / "register")
        .and(warp::post())
        .and(n())
        .and(client())
        .and(json::<Register>())
        .then(
            |node: Arc<Node>, from: ClientAddr, b: Register| async move {
                let r = node
                    .register(from, &b.phone, &b.display_name, &b.password)
                    .await;
                respond(&node, StatusCode::CREATED, r)
            },
        );
    let login = warp::path!("v1" / "login")
        .and(warp::post())
        .and(n())
        .and(client())
        .and(json::<Login>())
        .then(|node: Arc<Node>, from: ClientAddr, b: Login| async move {
            let r = node
                .login(from, &b.phone, &b.password)
                .await
                .map(|(token, c)| Session {
                    token,
                    user_id: c.sub,
                    expires_at: c.exp,
                });
            respond(&node, StatusCode::OK, r)
        });
    let logout = warp::path!("v1" / "logout")
        .and(warp::post())
        .and(n())
        .and(a())
        .then(|node: Arc<Node>, c: Authed| async move {
            let r = async { node.logout(&c?).await }.await;
            match r {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => respond::<()>(&node, StatusCode::OK, Err(e)),
            }
        });
    let chats = warp::path!("v1" / "chats")
        .and(warp::get())
        .and(n())
        .and(a())
        .then(|node: Arc<Node>, c: Authed| async move {
            let r = async { node.chats(c?.sub).await }.await;
            respond(&node, StatusCode::OK, r)
        });
    let chat = warp::path!("v1" / "chats" / Uuid)
        .and(warp::get())
        .and(n())
        .and(a())
        .then(|id: Uuid, node: Arc<Node>, c: Authed| async move {
            let r = async { node.chat_view(c?.sub, id).await }.await;
            respond(&node, StatusCode::OK, r)
        });
    let history = warp::path!("v1" / "chats" / Uuid / "messages")
        .and(warp::get())
        .and(n())
        .and(a())
        .and(warp::query::<Page>())
        .then(|id: Uuid, node: Arc<Node>, c: Authed, p: Page| async move {
            let r = async {
                let (messages, next_before) = node.history(c?.sub, id, p.before, p.limit).await?;
                Ok(serde_json::json!({ "messages": messages, "next_before": next_before }))
            }
            .await;
            respond(&node, StatusCode::OK, r)
        });
    let send = warp::path!("v1" / "chats" / Uuid / "messages")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<SendBody>())
        .then(
            |id: Uuid, node: Arc<Node>, c: Authed, b: SendBody| async move {
                let r = send_message(&node, c, id, b).await;
                respond(&node, StatusCode::CREATED, r)
            },
        );
    let receipts = warp::path!("v1" / "chats" / Uuid / "receipts")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<Watermark>())
        .then(
            |id: Uuid, node: Arc<Node>, c: Authed, b: Watermark| async move {
                let r = async {
                    let user = c?.sub;
                    let (delivered, read) = (b.delivered.unwrap_or(0), b.read.unwrap_or(0));
                    node.mark(user, id, delivered, read).await?;
                    node.chat_view(user, id).await
                }
                .await;
                respond(&node, StatusCode::OK, r)
            },
        );
    let direct = warp::path!("v1" / "direct")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<Direct>())
        .then(|node: Arc<Node>, c: Authed, b: Direct| async move {
            let r = async { node.open_direct(c?.sub, &b.phone).await }.await;
            respond(&node, StatusCode::OK, r)
        });
    let groups = warp::path!("v1" / "groups")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<Group>())
        .then(|node: Arc<Node>, c: Authed, b: Group| async move {
            let r = async { node.create_group(c?.sub, &b.title, b.members).await }.await;
            respond(&node, StatusCode::CREATED, r)
        });
    let join = warp::path!("v1" / "groups" / Uuid / "join")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<Join>())
        .then(|id: Uuid, node: Arc<Node>, c: Authed, b: Join| async move {
            let r = async { node.join(c?.sub, id, b.invite).await }.await;
            respond(&node, StatusCode::OK, r)
        });
    // GET reads the invite code (made on first use); POST replaces it.
    let invite = warp::path!("v1" / "groups" / Uuid / "invite")
        .and(
            warp::get()
                .map(|| false)
                .or(warp::post().map(|| true))
                .unify(),
        )
        .and(n())
        .and(a())
        .then(
            |id: Uuid, reset: bool, node: Arc<Node>, c: Authed| async move {
                let r = async {
                    let invite = node.invite(c?.sub, id, reset).await?;
                    Ok(Invite {
                        chat_id: id,
                        invite,
                    })
                }
                .await;
                respond(&node, StatusCode::OK, r)
            },
        );
    let leave = warp::path!("v1" / "groups" / Uuid / "leave")
        .and(warp::post())
        .and(n())
        .and(a())
        .then(|id: Uuid, node: Arc<Node>, c: Authed| async move {
            let r = async { node.leave(c?.sub, id).await }.await;
            match r {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => respond::<()>(&node, StatusCode::OK, Err(e)),
            }
        });
    let add = warp::path!("v1" / "groups" / Uuid / "members")
        .and(warp::post())
        .and(n())
        .and(a())
        .and(json::<AddMember>())
        .then(
            |id: Uuid, node: Arc<Node>, c: Authed, b: AddMember| async move {
                let r = async { node.add_member(c?.sub, id, b.user_id).await }.await;
                respond(&node, StatusCode::OK, r)
            },
        );
    let remove = warp::path!("v1" / "groups" / Uuid / "members" / Uuid)
        .and(warp::delete())
        .and(n())
        .and(a())
        .then(
            |id: Uuid, target: Uuid, node: Arc<Node>, c: Authed| async move {
                let r = async { node.remove_member(c?.sub, id, target).await }.await;
                match r {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(e) => respond::<()>(&node, StatusCode::OK, Err(e)),
                }
            },
        );
    let presence = warp::path!("v1" / "users" / Uuid / "presence")
        .and(warp::get())
        .and(n())
        .and(a())
        .then(|id: Uuid, node: Arc<Node>, c: Authed| async move {
            let r = async { node.presence.query(c?.sub, id, None).await }.await;
            respond(&node, StatusCode::OK, r)
        });
    let lookup = warp::path!("v1" / "users")
        .and(warp::get())
        .and(n())
        .and(a())
        .and(warp::query::<PhoneQuery>())
        .then(|node: Arc<Node>, c: Authed, q: PhoneQuery| async move {
            let r = async {
                c?;
                node.lookup(&q.phone).await
            }
            .await;
            respond(&node, StatusCode::OK, r)
        });
    let put_device = warp::path!("v1" / "devices" / String)
        .and(warp::put())
        .and(n())
        .and(a())
        .and(json::<DeviceBody>())
        .then(
            |id: String, node: Arc<Node>, c: Authed, b: DeviceBody| async move {
                let device = b.device(id);
                let r = async { node.register_device(c?.sub, device).await }.await;
                respond(&node, StatusCode::OK, r)
            },
        );
    let list_devices = warp::path!("v1" / "devices")
        .and(warp::get())
        .and(n())
        .and(a())
        .then(|node: Arc<Node>, c: Authed| async move {
            let r = async { node.devices(c?.sub).await }.await;
            respond(&node, StatusCode::OK, r.map(|devices| Devices { devices }))
        });
    let delete_device = warp::path!("v1" / "devices" / String)
        .and(warp::delete())
        .and(n())
        .and(a())
        .then(|id: String, node: Arc<Node>, c: Authed| async move {
            match async { node.remove_device(c?.sub, &id).await }.await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => respond::<()>(&node, StatusCode::OK, Err(e)),
            }
        });
    let device_routes = put_device
        .or(list_devices)
        .unify()
        .or(delete_device)
        .unify()
        .boxed();
    let accounts = register
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(lookup)
        .unify()
        .boxed();
    let chat_routes = chats
        .or(chat)
        .unify()
        .or(history)
        .unify()
        .or(send)
        .unify()
        .or(receipts)
        .unify()
        .or(direct)
        .unify()
        .boxed();
    let group_routes = groups
        .or(join)
        .unify()
        .or(invite)
        .unify()
        .or(leave)
        .unify()
        .or(add)
        .unify()
        .or(remove)
        .unify()
        .or(presence)
        .unify()
        .boxed();
    accounts
        .or(chat_routes)
        .unify()
        .or(group_routes)
        .unify()
        .or(device_routes)
        .unify()
        .boxed()
}

/// `POST /v1/chats/{id}/messages`: one send, answered like the WebSocket's.
async fn send_message(
    node: &Node,
    claims: Authed,
    chat: Uuid,
    b: SendBody,
) -> Result<ServerFrame, ApiError> {
    let user = claims?.sub;
    let outgoing = b.outgoing(chat);
    outgoing.check()?;
    let sent = node.send(user, std::slice::from_ref(&outgoing)).await;
    let sent = sent.into_iter().next().expect("one answer per send")?;
    Ok(outgoing.sent(sent))
}

/// Turns warp's rejections into the API's typed error bodies.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let e = if r.is_not_found() {
        ApiError::new(ErrorCode::NotFound, "no such endpoint")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("bodies are limited to {MAX_BODY} bytes"),
        )
    } else if let Some(b) = r.find::<warp::body::BodyDeserializeError>() {
        ApiError::invalid(b.to_string())
    } else if let Some(q) = r.find::<warp::reject::InvalidQuery>() {
        ApiError::invalid(q.to_string())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(ErrorCode::NotFound, "method not allowed for this endpoint")
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some()
        || r.find::<warp::reject::LengthRequired>().is_some()
    {
        ApiError::invalid("send a JSON body with Content-Type: application/json")
    } else {
        ApiError::new(ErrorCode::Invalid, format!("{r:?}"))
    };
    Ok(error_response(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_with_a_retry_time_carries_retry_after_in_whole_seconds() {
        let mut e = ApiError::new(ErrorCode::Unavailable, "busy");
        e.retry_after_ms = Some(1_200);
        let response = error_response(&e);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "2");
        let plain = error_response(&ApiError::invalid("no"));
        assert!(plain.headers().get("retry-after").is_none());
    }
}
