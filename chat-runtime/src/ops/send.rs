//! Sending: a device's consecutive messages go to the shards as one batch
//! (one store write per chat), media attached first (checked only: the
//! chat's shard records the share once the message is stored); each is
//! answered with where it landed, in order.

use std::time::Instant;

use crate::bus::Origin;
use crate::error::ApiError;
use crate::model::{ChatId, Content, MediaId, UserId};
use crate::node::Node;
use crate::protocol::{SendKind, ServerFrame, check_send};
use crate::shard::{SendItem, Sent, batch};

/// A message a device asks to send: a `send` frame, or a REST body with the
/// chat from its path.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub chat: ChatId,
    pub client_msg_id: String,
    pub kind: SendKind,
    /// The text, or a media message's caption.
    pub body: String,
    pub media_id: Option<MediaId>,
}

impl Outgoing {
    /// The limits a send must meet before anything is looked up (the
    /// WebSocket checks them as it decodes a frame).
    pub fn check(&self) -> Result<(), ApiError> {
        check_send(
            self.kind,
            &self.client_msg_id,
            &self.body,
            self.media_id.as_deref(),
        )
        .map_err(ApiError::invalid)
    }

    /// The `sent` frame that answers this send once it landed at `sent`.
    pub fn sent(&self, sent: Sent) -> ServerFrame {
        ServerFrame::Sent {
            chat_id: self.chat,
            client_msg_id: self.client_msg_id.clone(),
            seq: sent.seq,
            sent_at: sent.sent_at,
            duplicate: sent.duplicate,
        }
    }
}

impl Node {
    /// Sends `outgoing` (checked) for `user`, from session `origin` if any
    /// (which then hears `sent`, not its own message back): media is
    /// attached (the upload checked against the sender's rights), then every
    /// item that is ready goes to the shards in one batch. One answer per
    /// item, in order.
    pub async fn send(
        &self,
        user: UserId,
        outgoing: &[Outgoing],
        origin: Option<Origin>,
    ) -> Vec<Result<Sent, ApiError>> {
        let started = Instant::now();
        let mut answers = Vec::with_capacity(outgoing.len());
        let mut ready = Vec::with_capacity(outgoing.len());
        for (i, o) in outgoing.iter().enumerate() {
            match self.item(user, o).await {
                Ok(item) => ready.push((i, item)),
                Err(e) => answers.push((i, Err(e))),
            }
        }
        let (indexes, items): (Vec<usize>, Vec<SendItem>) = ready.into_iter().unzip();
        let sent = self.shards.send(user, items, origin).await;
        for (i, answer) in indexes.into_iter().zip(sent) {
            if answer.is_ok() {
                let latency = started.elapsed().as_secs_f64();
                self.metrics.send_latency.observe(latency);
            }
            answers.push((i, answer));
        }
        batch::join(outgoing.len(), answers)
    }

    /// What `o` becomes on its way to the shard: text as it is, or media
    /// attached.
    async fn item(&self, user: UserId, o: &Outgoing) -> Result<SendItem, ApiError> {
        let content = match (o.kind.media(), &o.media_id) {
            (Some(kind), Some(id)) => {
                let caption = o.body.clone();
                self.media.attach(user, o.chat, id, kind, caption).await?
            }
            (None, None) => Content::Text {
                body: o.body.clone(),
            },
            _ => return Err(ApiError::invalid("media_id goes with a media kind")),
        };
        Ok(SendItem {
            chat: o.chat,
            client_msg_id: o.client_msg_id.clone(),
            content,
        })
    }

    /// Tells the chat's other members that `user` is typing.
    pub async fn typing(&self, user: UserId, chat: ChatId) -> Result<(), ApiError> {
        self.shards.typing(user, chat).await
    }
}
