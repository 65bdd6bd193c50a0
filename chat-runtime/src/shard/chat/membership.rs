//! Groups and their members, as rules on a [`ChatState`]: who may join
//! (non-members with the invite, checked by the shell through `invite`),
//! add, remove or leave; a group holds at most [`MAX_GROUP_MEMBERS`]; a
//! member reads the chat from the change that made them one; a group with
//! members always has an admin. Every change is a system message at the
//! chat's next seq, stored with the member it puts or removes. No I/O.

use super::{ChatState, Publish};
use crate::error::ApiError;
use crate::model::{
    Chat, ChatId, ChatKind, Content, MAX_GROUP_MEMBERS, Member, Message, Role, Seq, SystemEvent,
    UserId,
};
use crate::protocol::{ErrorCode, ServerFrame};
use crate::store::MemberChange;

/// A change of a group's members that a user asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// With the group's invite (checked by the shell).
    Join,
    Leave,
    /// By an admin; lifts a ban.
    Add,
    /// By an admin; bans the user from joining again.
    Remove,
}

impl Membership {
    /// The system message that records it.
    fn event(self) -> SystemEvent {
        match self {
            Self::Join => SystemEvent::Joined,
            Self::Leave => SystemEvent::Left,
            Self::Add => SystemEvent::Added,
            Self::Remove => SystemEvent::Removed,
        }
    }
}

/// A membership change, recorded as a system message at the next seq.
#[derive(Debug)]
pub struct Change {
    pub message: Message,
    /// Stored with the message.
    pub member: MemberChange,
    /// (user, banned), written before it: an admin's removal bans the user
    /// from joining again, an admin's add lifts the ban (a crash in between
    /// errs on the side of the ban).
    pub ban: Option<(UserId, bool)>,
}

/// A group about to be created: written in one store call.
#[derive(Debug)]
pub struct NewGroup {
    pub chat: Chat,
    pub members: Vec<Member>,
    /// The `created` message, seq 1.
    pub first: Message,
}

/// A group at its size limit.
fn group_full() -> ApiError {
    ApiError::new(
        ErrorCode::GroupFull,
        format!("a group holds at most {MAX_GROUP_MEMBERS} members"),
    )
}

/// The members of a new group: its creator first, then the invited users,
/// each once; refused past the limit.
pub fn group_members(creator: UserId, invited: Vec<UserId>) -> Result<Vec<UserId>, ApiError> {
    let mut ids = vec![creator];
    for u in invited {
        if !ids.contains(&u) {
            ids.push(u);
        }
    }
    if ids.len() > MAX_GROUP_MEMBERS {
        return Err(group_full());
    }
    Ok(ids)
}

/// Group `id` titled `title`, made by `creator` (its admin) with `ids` (from
/// [`group_members`]) as members; everyone reads it from the `created`
/// message on.
pub fn new_group(id: ChatId, title: String, creator: UserId, ids: &[UserId], now: i64) -> NewGroup {
    let chat = Chat {
        id,
        kind: ChatKind::Group,
        title,
        created_by: creator,
        created_at: now,
    };
    let members = ids
        .iter()
        .map(|&u| {
            let role = if u == creator {
                Role::Admin
            } else {
                Role::Member
            };
            Member {
                joined_seq: 1,
                ..Member::new(u, role, now)
            }
        })
        .collect();
    let created = Content::created(creator, chat.title.clone(), ids.to_vec());
    let first = system_message(id, 1, creator, created, now);
    NewGroup {
        chat,
        members,
        first,
    }
}

/// The 1:1 chat `id` between `user` and `peer`, and its two members.
pub fn new_direct(id: ChatId, user: UserId, peer: UserId, now: i64) -> (Chat, [Member; 2]) {
    let chat = Chat {
        id,
        kind: ChatKind::Direct,
        title: String::new(),
        created_by: user,
        created_at: now,
    };
    let members = [
        Member::new(user, Role::Member, now),
        Member::new(peer, Role::Member, now),
    ];
    (chat, members)
}

/// A direct chat needs two different users.
pub fn check_pair(user: UserId, peer: UserId) -> Result<(), ApiError> {
    if user == peer {
        return Err(ApiError::invalid("a direct chat needs two different users"));
    }
    Ok(())
}

/// The system message `content` at `seq` of `chat`, sent by `actor`.
fn system_message(chat: ChatId, seq: Seq, actor: UserId, content: Content, now: i64) -> Message {
    Message {
        chat_id: chat,
        seq,
        sender: actor,
        client_msg_id: String::new(),
        content,
        sent_at: now,
    }
}

impl ChatState {
    /// A group just stored, and the event announcing it to its members.
    pub fn created(group: NewGroup) -> (Self, Publish) {
        let first = group.first;
        let mut st = Self::new(group.chat, first.seq, group.members);
        st.remember_sender(first.seq, first.sender);
        let publish = Publish {
            to: st.member_ids(),
            frame: ServerFrame::Message { message: first },
        };
        (st, publish)
    }

    fn admin(&self, user: UserId) -> Result<(), ApiError> {
        match self.member(user)?.role {
            Role::Admin => Ok(()),
            Role::Member => Err(ApiError::new(
                ErrorCode::Forbidden,
                "only group admins may do this",
            )),
        }
    }

    fn group(&self) -> Result<(), ApiError> {
        match self.chat.kind {
            ChatKind::Group => Ok(()),
            ChatKind::Direct => Err(ApiError::new(
                ErrorCode::Forbidden,
                "membership of a direct chat cannot change",
            )),
        }
    }

    /// Whether `user` must show the invite (and not be banned) to join:
    /// everyone but a member of the group.
    pub fn needs_invite(&self, user: UserId) -> Result<bool, ApiError> {
        self.group()?;
        Ok(!self.members.contains_key(&user))
    }

    /// Who may see and reset the group's invite: its admins.
    pub fn may_invite(&self, user: UserId) -> Result<(), ApiError> {
        self.group()?;
        self.admin(user)
    }

    /// Whether `actor` may ask for `change` in this chat at all: only in a
    /// group, adds and removals only by its admins.
    pub fn may_change(&self, actor: UserId, change: Membership) -> Result<(), ApiError> {
        self.group()?;
        match change {
            Membership::Add | Membership::Remove => self.admin(actor),
            Membership::Join | Membership::Leave => Ok(()),
        }
    }

    /// `actor` makes `target` join, leave, be added or be removed at `now`.
    /// `None` when `target` is a member already (joining again changes
    /// nothing). A member joins (or is added) at the change's seq and reads
    /// the chat from there.
    pub fn membership(
        &self,
        actor: UserId,
        target: UserId,
        change: Membership,
        now: i64,
    ) -> Result<Option<Change>, ApiError> {
        self.may_change(actor, change)?;
        let is_member = self.members.contains_key(&target);
        let seq = self.head + 1;
        let (member, ban) = match change {
            Membership::Join | Membership::Add => {
                if is_member {
                    return Ok(None);
                }
                if self.members.len() >= MAX_GROUP_MEMBERS {
                    return Err(group_full());
                }
                // Nothing before the join is theirs to read, or to have read.
                let joined = Member {
                    joined_seq: seq,
                    delivered_seq: seq - 1,
                    read_seq: seq - 1,
                    ..Member::new(target, Role::Member, now)
                };
                let ban = (change == Membership::Add).then_some((target, false));
                (MemberChange::Put(joined), ban)
            }
            Membership::Leave | Membership::Remove => {
                if !is_member {
                    return Err(ApiError::not_member());
                }
                let ban = (change == Membership::Remove).then_some((target, true));
                (MemberChange::Remove(target), ban)
            }
        };
        let content = Content::system(change.event(), target);
        let message = system_message(self.chat.id, seq, actor, content, now);
        Ok(Some(Change {
            message,
            member,
            ban,
        }))
    }

    /// A group with members always has an admin: when there is none (the
    /// last admin left or was removed), the longest-standing member — the
    /// earliest join — becomes one, recorded as a `promoted` message.
    pub fn promotion(&self, now: i64) -> Option<Change> {
        if self.chat.kind != ChatKind::Group || self.members.values().any(|m| m.role == Role::Admin)
        {
            return None;
        }
        let eldest = self
            .members
            .values()
            .min_by_key(|m| (m.joined_seq, m.joined_at, m.user_id))?;
        let user = eldest.user_id;
        let promoted = Member {
            role: Role::Admin,
            ..eldest.clone()
        };
        let content = Content::system(SystemEvent::Promoted, user);
        let message = system_message(self.chat.id, self.head + 1, user, content, now);
        Some(Change {
            message,
            member: MemberChange::Put(promoted),
            ban: None,
        })
    }
}
