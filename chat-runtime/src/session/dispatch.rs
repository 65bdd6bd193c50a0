//! A device's commands, applied one at a time in the order they were sent:
//! each client frame becomes a shard command (or a node call) and its reply
//! frame. Sends that queue up while earlier ones are stored go to the shard
//! as one batch.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Gone, Outbound, error_frame, out};
use crate::error::ApiError;
use crate::model::{ChatId, Content, Seq, UserId};
use crate::node::Node;
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};
use crate::shard::{Command, Reply, SendItem};

/// Most frames taken from the queue at once; consecutive sends among them
/// are sequenced and stored together.
const BATCH: usize = 64;

/// Applies one device's commands in order and answers each. Sends that queue
/// up while earlier ones are being stored go to the shard as one batch, so a
/// busy device costs one store write per batch instead of one per message.
pub(super) async fn worker(
    node: Arc<Node>,
    user: UserId,
    mut queue: mpsc::Receiver<ClientFrame>,
    outbound: mpsc::Sender<Outbound>,
) {
    let mut frames = Vec::with_capacity(BATCH);
    let mut sends = Vec::new();
    while queue.recv_many(&mut frames, BATCH).await > 0 {
        for frame in frames.drain(..) {
            if let ClientFrame::Send {
                chat_id,
                client_msg_id,
                kind,
                body,
                media_id,
            } = frame
            {
                if kind.media().is_none() {
                    sends.push(SendItem {
                        chat: chat_id,
                        client_msg_id,
                        content: Content::Text { body },
                    });
                    continue;
                }
                // Attaching media takes store round trips: answer the sends
                // queued before it first, so answers stay in order.
                if send_batch(&node, user, &mut sends, &outbound)
                    .await
                    .is_err()
                {
                    return;
                }
                let id = client_msg_id.clone();
                match node
                    .send_item(user, chat_id, client_msg_id, kind, body, media_id)
                    .await
                {
                    Ok(item) => sends.push(item),
                    Err(e) => {
                        node.metrics.error(e.code);
                        let frame = error_frame(&e, None, Some(id));
                        if outbound.send(out(&frame)).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            if send_batch(&node, user, &mut sends, &outbound)
                .await
                .is_err()
            {
                return;
            }
            let Some(reply) = handle(&node, user, frame).await else {
                continue;
            };
            if outbound.send(out(&reply)).await.is_err() {
                return;
            }
        }
        if send_batch(&node, user, &mut sends, &outbound)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends the queued messages and answers each with `sent` or `error`, in order.
async fn send_batch(
    node: &Node,
    user: UserId,
    sends: &mut Vec<SendItem>,
    outbound: &mpsc::Sender<Outbound>,
) -> Result<(), Gone> {
    if sends.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut answers: Vec<(SendItem, Option<Result<Reply, ApiError>>)> = Vec::new();
    let mut accepted = Vec::new();
    for item in sends.drain(..) {
        match node.check_rate(user) {
            Ok(()) => {
                accepted.push(item.clone());
                answers.push((item, None));
            }
            Err(e) => answers.push((item, Some(Err(e)))),
        }
    }
    let n = accepted.len();
    let mut results = if n == 0 {
        Vec::new()
    } else {
        match node
            .command(Command::SendMany {
                user,
                items: accepted,
            })
            .await
        {
            Ok(Reply::SentMany(r)) if r.len() == n => r,
            Ok(other) => {
                let e = ApiError::new(ErrorCode::Internal, format!("unexpected reply {other:?}"));
                vec![Err(e); n]
            }
            Err(e) => vec![Err(e); n],
        }
    }
    .into_iter();
    for (item, answer) in answers {
        let result = match answer {
            Some(r) => r,
            None => results.next().expect("one result per accepted send"),
        };
        let frame = match result {
            Ok(Reply::Sent {
                seq,
                sent_at,
                duplicate,
            }) => {
                node.sent(user, &item, seq).await;
                node.metrics
                    .send_latency
                    .observe(started.elapsed().as_secs_f64());
                ServerFrame::Sent {
                    chat_id: item.chat,
                    client_msg_id: item.client_msg_id,
                    seq,
                    sent_at,
                    duplicate,
                }
            }
            Ok(other) => {
                let e = ApiError::new(ErrorCode::Internal, format!("unexpected reply {other:?}"));
                error_frame(&e, None, Some(item.client_msg_id))
            }
            Err(e) => {
                node.metrics.error(e.code);
                error_frame(&e, None, Some(item.client_msg_id))
            }
        };
        outbound.send(out(&frame)).await.map_err(|_| Gone)?;
    }
    Ok(())
}

/// Applies one frame; `None` for frames that have no reply (receipts, typing).
async fn handle(node: &Node, user: UserId, frame: ClientFrame) -> Option<ServerFrame> {
    let req_id = request_id(&frame);
    match apply(node, user, frame).await {
        Ok(reply) => reply,
        Err(e) => {
            node.metrics.error(e.code);
            Some(error_frame(&e, req_id, None))
        }
    }
}

fn request_id(frame: &ClientFrame) -> Option<String> {
    match frame {
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
    }
}

/// Applies one command frame; answers with its reply frame, if it has one.
async fn apply(
    node: &Node,
    user: UserId,
    frame: ClientFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    // Receipts are exempt: they are idempotent, and a repeat costs no write.
    if !matches!(
        frame,
        ClientFrame::Delivered { .. } | ClientFrame::Read { .. }
    ) {
        node.check_rate(user)?;
    }
    Ok(Some(match frame {
        ClientFrame::Send { .. } => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "sends are answered by the batching worker",
            ));
        }
        ClientFrame::Delivered { chat_id, seq } => {
            return watermark(node, user, chat_id, seq, 0).await;
        }
        ClientFrame::Read { chat_id, seq } => {
            return watermark(node, user, chat_id, seq, seq).await;
        }
        ClientFrame::Typing { chat_id } => {
            node.command(Command::Typing {
                user,
                chat: chat_id,
            })
            .await?;
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
            chat: node.open_direct(user, &phone).await?,
        },
        ClientFrame::CreateGroup {
            req_id,
            title,
            members,
        } => {
            let command = Command::CreateGroup {
                user,
                title,
                members,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
        ClientFrame::Join {
            req_id,
            chat_id,
            invite,
        } => {
            let command = Command::Join {
                user,
                chat: chat_id,
                invite,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
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
            node.command(Command::Leave {
                user,
                chat: chat_id,
            })
            .await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::AddMember {
            req_id,
            chat_id,
            user_id,
        } => {
            let command = Command::AddMember {
                user,
                chat: chat_id,
                target: user_id,
            };
            ServerFrame::Chat {
                req_id,
                chat: node.chat_command(user, command).await?,
            }
        }
        ClientFrame::RemoveMember {
            req_id,
            chat_id,
            user_id,
        } => {
            let command = Command::RemoveMember {
                user,
                chat: chat_id,
                target: user_id,
            };
            node.command(command).await?;
            ServerFrame::Ok { req_id }
        }
        ClientFrame::Presence { req_id, user_id } => {
            node.presence.query(user, user_id, Some(req_id)).await?
        }
        ClientFrame::Lookup { req_id, phone } => {
            let u = node.lookup(&phone).await?;
            ServerFrame::User {
                req_id,
                user_id: u.id,
                display_name: u.display_name,
            }
        }
        ClientFrame::Hello { .. } | ClientFrame::Ping {} => ServerFrame::Pong {},
    }))
}

/// `delivered` / `read`: no reply on success; receipts reach members as events.
async fn watermark(
    node: &Node,
    user: UserId,
    chat: ChatId,
    delivered: Seq,
    read: Seq,
) -> Result<Option<ServerFrame>, ApiError> {
    if delivered == 0 {
        return Err(ApiError::invalid("seq must be at least 1"));
    }
    node.command(Command::Watermark {
        user,
        chat,
        delivered,
        read,
    })
    .await?;
    Ok(None)
}
