//! Presence: who is online, and when a user was last seen.
//!
//! Online = at least one live session on any gateway (the bus's
//! [`Sessions`] directory). Going online or offline is announced to the
//! user's contacts and never to anyone else: users who share a group with
//! them, or a 1:1 chat in which a message was sent (opening a chat with a
//! known phone number is not enough). Last seen is stored when the last
//! session ends. Announcing is best effort and never blocks the message
//! path.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Serialize;

use crate::bus::sessions::Sessions;
use crate::bus::{Bus, Envelope};
use crate::error::ApiError;
use crate::model::{ChatId, ChatKind, UserId, now_ms};
use crate::protocol::{self, ServerFrame};
use crate::store::Store;

/// A user's presence as a contact may see it: what `GET
/// /v1/users/{user}/presence` answers and a `presence` frame carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "PresenceView")]
pub struct Seen {
    pub user_id: UserId,
    pub online: bool,
    /// When their last session ended; absent while online (or never seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
}

impl Seen {
    /// The `presence` frame answering request `req_id`.
    pub fn frame(self, req_id: String) -> ServerFrame {
        ServerFrame::Presence {
            req_id: Some(req_id),
            user_id: self.user_id,
            online: self.online,
            last_seen: self.last_seen,
        }
    }
}

/// Who is online, and the announcements that follow changes.
pub struct Presence {
    sessions: Arc<dyn Sessions>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

impl Presence {
    pub fn new(sessions: Arc<dyn Sessions>, store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            sessions,
            store,
            bus,
        }
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.sessions.online(user)
    }

    /// A session of `user` started.
    pub async fn connected(&self, user: UserId) {
        let first = !self.sessions.online(user);
        self.sessions.opened(user).await;
        if first {
            self.announce(user, true, None).await;
        }
    }

    /// A session of `user` ended.
    pub async fn disconnected(&self, user: UserId) {
        self.sessions.closed(user).await;
        if !self.sessions.online(user) {
            let at = now_ms();
            if let Err(e) = self.store.set_last_seen(user, at).await {
                tracing::warn!(error = %e, "cannot store last seen");
            }
            self.announce(user, false, Some(at)).await;
        }
    }

    /// Whether sharing `chat` makes its members contacts: a group does, a
    /// 1:1 chat once a message was sent in it.
    async fn connects(&self, chat: ChatId) -> Result<bool, ApiError> {
        Ok(match self.store.chat(chat).await? {
            Some(c) if c.kind == ChatKind::Group => true,
            Some(_) => self.store.head(chat).await? > 0,
            None => false,
        })
    }

    /// `user`'s contacts (see the module's comment).
    pub async fn contacts(&self, user: UserId) -> Result<BTreeSet<UserId>, ApiError> {
        let mut out = BTreeSet::new();
        for chat in self.store.user_chats(user).await? {
            if !self.connects(chat).await? {
                continue;
            }
            for m in self.store.members(chat).await? {
                out.insert(m.user_id);
            }
        }
        out.remove(&user);
        Ok(out)
    }

    /// Whether `viewer` may see `subject`'s presence: only a contact may.
    pub async fn visible(&self, viewer: UserId, subject: UserId) -> Result<bool, ApiError> {
        if viewer == subject {
            return Ok(true);
        }
        let theirs: BTreeSet<_> = self.store.user_chats(subject).await?.into_iter().collect();
        for chat in self.store.user_chats(viewer).await? {
            if theirs.contains(&chat) && self.connects(chat).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `subject`'s presence, as `viewer` may see it.
    pub async fn query(&self, viewer: UserId, subject: UserId) -> Result<Seen, ApiError> {
        if !self.visible(viewer, subject).await? {
            // Same answer as for a user that does not exist: reveals nothing.
            return Err(ApiError::not_found("user"));
        }
        let online = self.is_online(subject);
        let last_seen = if online {
            None
        } else {
            self.store.last_seen(subject).await?
        };
        Ok(Seen {
            user_id: subject,
            online,
            last_seen,
        })
    }

    async fn announce(&self, user: UserId, online: bool, last_seen: Option<i64>) {
        let contacts = match self.contacts(user).await {
            Ok(c) => c.into_iter().collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list contacts for presence");
                return;
            }
        };
        let frame = ServerFrame::Presence {
            req_id: None,
            user_id: user,
            online,
            last_seen,
        };
        let envelope = Envelope {
            chat: None,
            seq: 0,
            frame: Bytes::from(protocol::encode(&frame)),
            origin: None,
        };
        let _ = self.bus.publish_many(&contacts, envelope).await;
    }
}
