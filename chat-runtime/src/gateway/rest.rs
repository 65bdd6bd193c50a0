//! REST API under `/v1`: the same operations as the WebSocket, for clients
//! that prefer request/response (documented in `docs/protocol.md`). Each
//! handler decodes its input and calls the operation in [`crate::ops`] (or
//! the node's accounts); [`super::http`] turns refusals into error bodies.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post, put};
use uuid::Uuid;

use super::bodies::{
    AddMember, DeviceBody, Direct, Group, Join, Login, Page, PhoneQuery, Register, SendBody,
    Watermark,
};
use super::http::{Answer, Authed, Json, Path, Peer, Query, created, done, ok};
use crate::error::ApiError;
use crate::model::User;
use crate::node::Node;
use crate::protocol::rest::{Devices, HistoryPage, Invite, SentView, Session, UserView};

type Shared = State<Arc<Node>>;

// Answers are the protocol crate's; a `UserView` is its own type, so no
// secret of the stored `User` can reach one.
impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            phone: u.phone,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

/// Every REST route.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/users", get(lookup))
        .route("/v1/users/{user}/presence", get(presence))
        .route("/v1/chats", get(chats))
        .route("/v1/chats/{chat}", get(chat))
        .route("/v1/chats/{chat}/messages", get(history).post(send))
        .route("/v1/chats/{chat}/receipts", post(receipts))
        .route("/v1/direct", post(direct))
        .route("/v1/groups", post(create_group))
        .route("/v1/groups/{chat}/join", post(join))
        // GET reads the invite code (made on first use); POST replaces it.
        .route("/v1/groups/{chat}/invite", get(invite).post(new_invite))
        .route("/v1/groups/{chat}/leave", post(leave))
        .route("/v1/groups/{chat}/members", post(add_member))
        .route("/v1/groups/{chat}/members/{user}", delete(remove_member))
        .route("/v1/devices", get(devices))
        .route(
            "/v1/devices/{device}",
            put(register_device).delete(remove_device),
        )
}

async fn register(State(node): Shared, Peer(from): Peer, Json(b): Json<Register>) -> Answer {
    let view = node
        .register(from, &b.phone, &b.display_name, &b.password)
        .await?;
    created(&UserView::from(view))
}

async fn login(State(node): Shared, Peer(from): Peer, Json(b): Json<Login>) -> Answer {
    let (token, c) = node.login(from, &b.phone, &b.password).await?;
    ok(&Session {
        token,
        user_id: c.sub,
        expires_at: c.exp,
    })
}

async fn logout(State(node): Shared, Authed(c): Authed) -> Answer {
    node.logout(&c).await?;
    done()
}

async fn lookup(State(node): Shared, Authed(_): Authed, Query(q): Query<PhoneQuery>) -> Answer {
    ok(&UserView::from(node.lookup(&q.phone).await?))
}

async fn presence(State(node): Shared, Authed(c): Authed, Path(user): Path<Uuid>) -> Answer {
    ok(&node.presence.query(c.sub, user).await?)
}

async fn chats(State(node): Shared, Authed(c): Authed) -> Answer {
    ok(&node.chats(c.sub).await?)
}

async fn chat(State(node): Shared, Authed(c): Authed, Path(chat): Path<Uuid>) -> Answer {
    ok(&node.chat_view(c.sub, chat).await?)
}

async fn history(
    State(node): Shared,
    Authed(c): Authed,
    Path(chat): Path<Uuid>,
    Query(p): Query<Page>,
) -> Answer {
    let (messages, next_before) = node.history(c.sub, chat, p.before, p.limit).await?;
    ok(&HistoryPage {
        messages,
        next_before,
    })
}

async fn send(
    State(node): Shared,
    Authed(c): Authed,
    Path(chat): Path<Uuid>,
    Json(b): Json<SendBody>,
) -> Answer {
    created(&send_message(&node, c.sub, chat, b).await?)
}

async fn receipts(
    State(node): Shared,
    Authed(c): Authed,
    Path(chat): Path<Uuid>,
    Json(b): Json<Watermark>,
) -> Answer {
    let (delivered, read) = (b.delivered.unwrap_or(0), b.read.unwrap_or(0));
    node.mark(c.sub, chat, delivered, read).await?;
    ok(&node.chat_view(c.sub, chat).await?)
}

/// 201 when this call created the chat, 200 when it was there: a retry
/// finds it.
async fn direct(State(node): Shared, Authed(c): Authed, Json(b): Json<Direct>) -> Answer {
    match node.open_direct(c.sub, &b.phone).await? {
        (view, true) => created(&view),
        (view, false) => ok(&view),
    }
}

async fn create_group(State(node): Shared, Authed(c): Authed, Json(b): Json<Group>) -> Answer {
    created(&node.create_group(c.sub, &b.title, b.members).await?)
}

async fn join(
    State(node): Shared,
    Authed(c): Authed,
    Path(chat): Path<Uuid>,
    Json(b): Json<Join>,
) -> Answer {
    ok(&node.join(c.sub, chat, b.invite).await?)
}

async fn invite(State(node): Shared, Authed(c): Authed, Path(chat): Path<Uuid>) -> Answer {
    let invite = node.invite(c.sub, chat, false).await?;
    ok(&Invite {
        chat_id: chat,
        invite,
    })
}

async fn new_invite(State(node): Shared, Authed(c): Authed, Path(chat): Path<Uuid>) -> Answer {
    let invite = node.invite(c.sub, chat, true).await?;
    ok(&Invite {
        chat_id: chat,
        invite,
    })
}

async fn leave(State(node): Shared, Authed(c): Authed, Path(chat): Path<Uuid>) -> Answer {
    node.leave(c.sub, chat).await?;
    done()
}

async fn add_member(
    State(node): Shared,
    Authed(c): Authed,
    Path(chat): Path<Uuid>,
    Json(b): Json<AddMember>,
) -> Answer {
    ok(&node.add_member(c.sub, chat, b.user_id).await?)
}

async fn remove_member(
    State(node): Shared,
    Authed(c): Authed,
    Path((chat, user)): Path<(Uuid, Uuid)>,
) -> Answer {
    node.remove_member(c.sub, chat, user).await?;
    done()
}

async fn devices(State(node): Shared, Authed(c): Authed) -> Answer {
    let devices = node.devices(c.sub).await?;
    ok(&Devices { devices })
}

async fn register_device(
    State(node): Shared,
    Authed(c): Authed,
    Path(id): Path<String>,
    Json(b): Json<DeviceBody>,
) -> Answer {
    ok(&node.register_device(c.sub, b.device(id)).await?)
}

async fn remove_device(State(node): Shared, Authed(c): Authed, Path(id): Path<String>) -> Answer {
    node.remove_device(c.sub, &id).await?;
    done()
}

/// `POST /v1/chats/{id}/messages`: one send, answered like the WebSocket's.
async fn send_message(
    node: &Node,
    user: crate::model::UserId,
    chat: Uuid,
    b: SendBody,
) -> Result<SentView, ApiError> {
    let outgoing = b.outgoing(chat);
    outgoing.check()?;
    // No session sent it: every device of the sender hears it.
    let sent = node.send(user, std::slice::from_ref(&outgoing), None).await;
    let sent = sent.into_iter().next().expect("one answer per send")?;
    Ok(SentView {
        chat_id: chat,
        client_msg_id: outgoing.client_msg_id,
        seq: sent.seq,
        sent_at: sent.sent_at,
        duplicate: sent.duplicate,
    })
}
