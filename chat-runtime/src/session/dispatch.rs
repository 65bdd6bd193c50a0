//! A device's commands, applied one at a time in the order they were sent:
//! each client frame becomes a call of its operation (`crate::ops`) and,
//! where it has one, its reply frame. Sends that queue up while earlier ones
//! are stored go to the shards as one batch. The worker runs while commands
//! wait and stops when its queue is empty.

use std::sync::Arc;

use super::{Gone, Outbound, error_frame, out};
use crate::bus::Origin;
use crate::error::ApiError;
use crate::mailbox;
use crate::model::UserId;
use crate::node::Node;
use crate::ops::send::Outgoing;
use crate::protocol::{ClientFrame, ServerFrame};

/// Most frames taken from the queue at once; consecutive sends among them
/// are sequenced and stored together.
const BATCH: usize = 64;

/// Applies one device's commands in order and answers each, until the
/// queue is empty; gives the queue back. Sends that queue up while earlier
/// ones are being stored go to the shard as one batch, so a busy device
/// costs one store write per batch instead of one per message.
pub(super) async fn worker(
    node: Arc<Node>,
    user: UserId,
    origin: Origin,
    mut queue: mailbox::Receiver<ClientFrame>,
    outbound: mailbox::Sender<Outbound>,
) -> mailbox::Receiver<ClientFrame> {
    let mut frames = Vec::new();
    let mut sends = Vec::new();
    while queue.try_recv_many(&mut frames, BATCH) > 0 {
        for frame in frames.drain(..) {
            // Every frame but a receipt is charged to the user's rate limit
            // (receipts are idempotent; a repeat costs no write).
            let charged = match &frame {
                ClientFrame::Delivered { .. } | ClientFrame::Read { .. } => Ok(()),
                _ => node.check_rate(user),
            };
            let frame = match (frame, &charged) {
                (
                    ClientFrame::Send {
                        chat_id,
                        client_msg_id,
                        kind,
                        body,
                        media_id,
                    },
                    Ok(()),
                ) => {
                    sends.push(Outgoing {
                        chat: chat_id,
                        client_msg_id,
                        kind,
                        body,
                        media_id,
                    });
                    continue;
                }
                (frame, _) => frame,
            };
            // Answers go out in the order their frames came in.
            if send_batch(&node, user, origin, &mut sends, &outbound)
                .await
                .is_err()
            {
                return queue;
            }
            let (req_id, client_msg_id) = ids(&frame);
            let reply = match charged {
                Ok(()) => apply(&node, user, frame).await,
                Err(e) => Err(e),
            };
            let reply = reply.unwrap_or_else(|e| Some(refused(&node, &e, req_id, client_msg_id)));
            if let Some(reply) = reply
                && outbound.send(out(&reply)).await.is_err()
            {
                return queue;
            }
        }
        if send_batch(&node, user, origin, &mut sends, &outbound)
            .await
            .is_err()
        {
            return queue;
        }
    }
    queue
}

/// The error frame that refuses a frame, counted.
fn refused(
    node: &Node,
    e: &ApiError,
    req_id: Option<String>,
    client_msg_id: Option<String>,
) -> ServerFrame {
    node.metrics.error(e.code);
    error_frame(e, req_id, client_msg_id)
}

/// Sends the queued messages and answers each with `sent` or `error`, in order.
async fn send_batch(
    node: &Node,
    user: UserId,
    origin: Origin,
    sends: &mut Vec<Outgoing>,
    outbound: &mailbox::Sender<Outbound>,
) -> Result<(), Gone> {
    if sends.is_empty() {
        return Ok(());
    }
    let answers = node.send(user, sends, Some(origin)).await;
    for (o, answer) in sends.drain(..).zip(answers) {
        let frame = match answer {
            Ok(sent) => o.sent(sent),
            Err(e) => refused(node, &e, None, Some(o.client_msg_id)),
        };
        outbound.send(out(&frame)).await.map_err(|_| Gone)?;
    }
    Ok(())
}

/// The ids a refusal of `frame` echoes: its `req_id`, or a send's
/// `client_msg_id`.
fn ids(frame: &ClientFrame) -> (Option<String>, Option<String>) {
    let req_id = match frame {
        ClientFrame::Chats { req_id }
        | ClientFrame::History { req_id, .. }
        | ClientFrame::OpenDirect { req_id, .. }
        | ClientFrame::CreateGroup { req_id, .. }
        | ClientFrame::Join { req_id, .. }
        | ClientFrame::Invite { req_id, .. }
        | ClientFrame::ResetInvite { req_id, .. }
        | ClientFrame::Leave { req_id, .. }
        | ClientFrame::AddMember { req_id, .. }
        | ClientFrame::RemoveMember { req_id, .. }
        | ClientFrame::Presence { req_id, .. }
        | ClientFrame::Lookup { req_id, .. } => Some(req_id.clone()),
        _ => None,
    };
    let client_msg_id = match frame {
        ClientFrame::Send { client_msg_id, .. } => Some(client_msg_id.clone()),
        _ => None,
    };
    (req_id, client_msg_id)
}

/// Applies one frame (not a send: those are batched) by its operation;
/// answers with its reply frame, if it has one.
async fn apply(
    node: &Node,
    user: UserId,
    frame: ClientFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    Ok(Some(match frame {
        ClientFrame::Delivered { chat_id, seq } => {
            node.mark(user, chat_id, seq, 0).await?;
            return Ok(None);
        }
        ClientFrame::Read { chat_id, seq } => {
            node.mark(user, chat_id, seq, seq).await?;
            return Ok(None);
        }
        ClientFrame::Typing { chat_id } => {
            node.typing(user, chat_id).await?;
            return Ok(None);
        }
        ClientFrame::Chats { req_id } => ServerFrame::Chats {
            req_id,
            chats: node.chats(user).await?,
        },
        ClientFrame::History {
            req_id,
            chat_id,
            before,
            limit,
        } => {
            let (messages, next_before) = node.history(user, chat_id, before, limit).await?;
            ServerFrame::History {
                req_id,
                chat_id,
                messages,
                next_before,
            }
        }
        ClientFrame::OpenDirect { req_id, phone } => ServerFrame::Chat {
            req_id,
            chat: node.open_direct(user, &phone).await?.0,
        },
        ClientFrame::CreateGroup {
            req_id,
            title,
            members,
        } => ServerFrame::Chat {
            req_id,
            chat: node.create_group(user, &title, members).await?,
        },
        ClientFrame::Join {
            req_id,
            chat_id,
            invite,
        } => ServerFrame::Chat {
            req_id,
            chat: node.join(user, chat_id, invite).await?,
        },
        ClientFrame::Invite { req_id, chat_id } => ServerFrame::Invite {
            req_id,
            chat_id,
            invite: node.invite(user, chat_id, false).await?,
        },
        ClientFrame::ResetInvite { req_id, chat_id } => ServerFrame::Invite {
            req_id,
            chat_id,
            invite: node.invite(user, chat_id, true).await?,
        },
        ClientFrame::Leave { req_id, chat_id } => {
            node.leave(user, chat_id).await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::AddMember {
            req_id,
            chat_id,
            user_id,
        } => ServerFrame::Chat {
            req_id,
            chat: node.add_member(user, chat_id, user_id).await?,
        },
        ClientFrame::RemoveMember {
            req_id,
            chat_id,
            user_id,
        } => {
            node.remove_member(user, chat_id, user_id).await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::Presence { req_id, user_id } => {
            node.presence.query(user, user_id).await?.frame(req_id)
        }
        ClientFrame::Lookup { req_id, phone } => {
            let u = node.lookup(&phone).await?;
            ServerFrame::User {
                req_id,
                user_id: u.id,
                display_name: u.display_name,
            }
        }
        ClientFrame::Send { .. } => {
            let why = "sends are answered by the batching worker";
            return Err(ApiError::new(crate::protocol::ErrorCode::Internal, why));
        }
        ClientFrame::Hello { .. } | ClientFrame::Ping {} => ServerFrame::Pong {},
    }))
}
