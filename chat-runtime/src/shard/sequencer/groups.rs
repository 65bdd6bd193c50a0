//! Chats and their members: creating groups and 1:1 chats, joining with
//! an invite, invite codes, leaving, adds and removals. The core decides
//! (`chat::membership`); this reads what it needs from the store first and
//! writes the change — a ban before the message that records it.

use super::Shard;
use crate::error::ApiError;
use crate::model::{ChatId, UserId, now_ms};
use crate::shard::chat::{self, ChatState, Membership};
use crate::shard::{Reply, invite};

impl Shard {
    pub(super) async fn create_group(
        &self,
        user: UserId,
        title: String,
        invited: Vec<UserId>,
    ) -> Result<Reply, ApiError> {
        let ids = chat::group_members(user, invited)?;
        for u in &ids[1..] {
            if self.store.user(*u).await?.is_none() {
                return Err(ApiError::not_found(&format!("user {u}")));
            }
        }
        let group = chat::new_group((self.mint)(), title, user, &ids, now_ms());
        let mut slot = self.chats.slot(group.chat.id).lock_owned().await;
        self.store
            .create_chat(&group.chat, &group.members, &group.first)
            .await?;
        let (st, created) = ChatState::created(group);
        let id = st.id();
        *slot = Some(st);
        let _ = self.publish(id, &created).await;
        Ok(Reply::Chat(id))
    }

    pub(super) async fn open_direct(&self, user: UserId, peer: UserId) -> Result<Reply, ApiError> {
        chat::check_pair(user, peer)?;
        if let Some(chat) = self.store.direct_chat(user, peer).await? {
            return Ok(Reply::Direct {
                chat,
                created: false,
            });
        }
        if self.store.user(peer).await?.is_none() {
            return Err(ApiError::not_found("user"));
        }
        let (chat, members) = chat::new_direct((self.mint)(), user, peer, now_ms());
        // A racing open of the same pair may have won: then it is found.
        let (chat, created) = self.store.create_direct(&chat, members).await?;
        Ok(Reply::Direct { chat, created })
    }

    /// Join: the user must hold the group's current invite code, and not
    /// have been removed by an admin since (a member joining again is a no-op).
    pub(super) async fn join(
        &self,
        user: UserId,
        chat: ChatId,
        code: &str,
    ) -> Result<Reply, ApiError> {
        let mut st = self.lock(chat).await?;
        if st.needs_invite(user)? {
            invite::admit(self.store.invite(chat).await?.as_deref(), code)?;
            invite::unbanned(self.store.is_banned(chat, user).await?)?;
        }
        self.membership(&mut st, user, user, Membership::Join).await
    }

    /// An admin's view of the group's invite code: made on first use, or
    /// replaced when `reset` (the old code stops working at once).
    pub(super) async fn invite(
        &self,
        user: UserId,
        chat: ChatId,
        reset: bool,
    ) -> Result<Reply, ApiError> {
        let mut st = self.lock(chat).await?;
        self.ensure_admin(&mut st).await?;
        st.may_invite(user)?;
        let code = match self.store.invite(chat).await? {
            Some(code) if !reset => code,
            _ => {
                let code = invite::new_code();
                self.store.set_invite(chat, &code).await?;
                code
            }
        };
        Ok(Reply::Invite(code))
    }

    /// Leave, add or remove.
    pub(super) async fn change_membership(
        &self,
        actor: UserId,
        chat: ChatId,
        target: UserId,
        change: Membership,
    ) -> Result<Reply, ApiError> {
        let mut st = self.lock(chat).await?;
        self.membership(&mut st, actor, target, change).await
    }

    /// Checks a membership change against the chat's rules (and, for an
    /// add, that the user exists), then records it.
    async fn membership(
        &self,
        st: &mut ChatState,
        actor: UserId,
        target: UserId,
        change: Membership,
    ) -> Result<Reply, ApiError> {
        let chat = st.id();
        self.ensure_admin(st).await?;
        st.may_change(actor, change)?;
        if change == Membership::Add && self.store.user(target).await?.is_none() {
            return Err(ApiError::not_found("user"));
        }
        let Some(change) = st.membership(actor, target, change, now_ms())? else {
            return Ok(Reply::Chat(chat));
        };
        self.record(st, change).await?;
        if let Err(e) = self.ensure_admin(st).await {
            // The change itself is stored; the next one retries the promotion.
            tracing::warn!(error = %e, %chat, "promoting a new admin failed");
        }
        Ok(Reply::Chat(chat))
    }

    /// Writes a membership change: its ban first, then its message with it.
    async fn record(&self, st: &mut ChatState, change: chat::Change) -> Result<(), ApiError> {
        if let Some((user, banned)) = change.ban {
            self.store.set_banned(st.id(), user, banned).await?;
        }
        // A membership message carries no media: nothing to share.
        self.append(st, vec![change.message], Some(change.member), None)
            .await
            .map(drop)
    }

    /// Promotes a member when the group has no admin (see
    /// [`ChatState::promotion`]).
    async fn ensure_admin(&self, st: &mut ChatState) -> Result<(), ApiError> {
        match st.promotion(now_ms()) {
            Some(change) => self.record(st, change).await,
            None => Ok(()),
        }
    }
}
