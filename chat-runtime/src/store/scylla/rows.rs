//! Conversions between `crate::model` values and CQL rows and cells.
//!
//! Owns the column encodings (enums as snake_case text, seqs as `bigint`,
//! a message's content spread over `kind`/`body`/`event`/`event_user`, a
//! `created` message's title and members as JSON in `body`) and the reading
//! of LWT results. No I/O.

use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use super::backend;
use crate::model::{
    Attachment, ChatId, ChatKind, Content, MediaKind, Member, Message, Role, Seq, SystemEvent,
    UserId,
};
use crate::store::{MemberChange, StoreError};

/// Columns of `messages` that [`MessageRow`] reads, in its order.
pub const MESSAGE_COLUMNS: &str = "seq, sender, client_msg_id, kind, body, event, event_user, \
                                   sent_at, change_put, change_remove";

/// A `messages` row as selected with [`MESSAGE_COLUMNS`].
pub type MessageRow = (
    i64,
    Uuid,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    i64,
    Option<String>,
    Option<Uuid>,
);

/// A `chat_members` row: user_id, role, joined_at, joined_seq, delivered_seq,
/// read_seq.
pub type MemberRow = (
    Uuid,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A seq as stored (`bigint`).
pub fn seq_cell(seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| backend(format!("seq {seq} exceeds the CQL bigint range")))
}

/// A stored seq; negative values (never written by us) read as corruption.
pub fn seq_value(cell: i64) -> Result<Seq, StoreError> {
    Seq::try_from(cell).map_err(|_| backend(format!("stored seq {cell} is negative")))
}

/// The snake_case name serde gives a unit variant.
fn name<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    match serde_json::to_value(v).map_err(backend)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(backend(format!("not a unit variant: {other}"))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| backend(format!("unknown stored value {s:?}: {e}")))
}

pub fn kind_cell(kind: ChatKind) -> Result<String, StoreError> {
    name(&kind)
}

pub fn kind_value(cell: &str) -> Result<ChatKind, StoreError> {
    parse(cell)
}

pub fn role_cell(role: Role) -> Result<String, StoreError> {
    name(&role)
}

/// A member, or `None` for a row without a role (a stray watermark update
/// that raced a removal): such a row is not a membership.
pub fn member_value(row: MemberRow) -> Result<Option<Member>, StoreError> {
    let (user_id, role, joined_at, joined_seq, delivered, read) = row;
    let Some(role) = role else {
        return Ok(None);
    };
    Ok(Some(Member {
        user_id,
        role: parse(&role)?,
        joined_at: joined_at.unwrap_or_default(),
        joined_seq: seq_value(joined_seq.unwrap_or_default())?,
        delivered_seq: seq_value(delivered.unwrap_or_default())?,
        read_seq: seq_value(read.unwrap_or_default())?,
    }))
}

/// The content cells of a message: kind, body, event, event_user.
pub type ContentCells = (String, Option<String>, Option<String>, Option<UserId>);

pub fn content_cells(content: &Content) -> Result<ContentCells, StoreError> {
    Ok(match content {
        Content::Text { body } => ("text".into(), Some(body.clone()), None, None),
        Content::System {
            event,
            user_id,
            title,
            members,
        } => {
            let group = SystemGroup {
                title: title.clone(),
                members: members.clone(),
            };
            let body = if group.title.is_empty() && group.members.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&group).map_err(backend)?)
            };
            ("system".into(), body, Some(name(event)?), Some(*user_id))
        }
        Content::Image(a) => media_cells(MediaKind::Image, a)?,
        Content::Video(a) => media_cells(MediaKind::Video, a)?,
        Content::Audio(a) => media_cells(MediaKind::Audio, a)?,
        Content::File(a) => media_cells(MediaKind::File, a)?,
    })
}

/// What a `created` message keeps in `body`: the group as it was made.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct SystemGroup {
    title: String,
    members: Vec<UserId>,
}

/// A media message keeps its attachment as JSON in `body`.
fn media_cells(kind: MediaKind, a: &Attachment) -> Result<ContentCells, StoreError> {
    let body = serde_json::to_string(a).map_err(backend)?;
    Ok((name(&kind)?, Some(body), None, None))
}

/// The change cells of a message: change_put (member JSON), change_remove.
pub fn change_cells(
    change: Option<&MemberChange>,
) -> Result<(Option<String>, Option<UserId>), StoreError> {
    Ok(match change {
        None => (None, None),
        Some(MemberChange::Put(m)) => (Some(serde_json::to_string(m).map_err(backend)?), None),
        Some(MemberChange::Remove(u)) => (None, Some(*u)),
    })
}

/// A stored message and the membership change written with it.
pub fn message_value(
    chat_id: ChatId,
    row: MessageRow,
) -> Result<(Message, Option<MemberChange>), StoreError> {
    let (seq, sender, client_msg_id, kind, body, event, event_user, sent_at, put, remove) = row;
    let content = match kind.as_str() {
        "text" => Content::Text {
            body: body.unwrap_or_default(),
        },
        "system" => {
            let group: Option<SystemGroup> = body
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(backend)?;
            let SystemGroup { title, members } = group.unwrap_or_default();
            Content::System {
                event: parse::<SystemEvent>(event.as_deref().unwrap_or_default())?,
                user_id: event_user.unwrap_or_default(),
                title,
                members,
            }
        }
        media @ ("image" | "video" | "audio" | "file") => {
            let a: Attachment =
                serde_json::from_str(body.as_deref().unwrap_or_default()).map_err(backend)?;
            let kind = parse::<MediaKind>(media)?;
            Content::media(kind, a)
        }
        other => return Err(backend(format!("unknown message kind {other:?}"))),
    };
    let change = match (put, remove) {
        (Some(json), _) => Some(MemberChange::Put(
            serde_json::from_str(&json).map_err(backend)?,
        )),
        (None, Some(user)) => Some(MemberChange::Remove(user)),
        (None, None) => None,
    };
    let message = Message {
        chat_id,
        seq: seq_value(seq)?,
        sender,
        client_msg_id: client_msg_id.unwrap_or_default(),
        content,
        sent_at,
    };
    Ok((message, change))
}

/// Whether an LWT applied, and the current row it found when it did not.
/// The row is keyed by column name (`[applied]` excluded).
pub fn applied(result: QueryResult) -> Result<(bool, Vec<(String, CqlValue)>), StoreError> {
    let rows = result.into_rows_result().map_err(backend)?;
    let names: Vec<String> = rows
        .column_specs()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let row: Row = rows.first_row().map_err(backend)?;
    let mut applied = None;
    let mut current = Vec::new();
    for (name, cell) in names.into_iter().zip(row.columns) {
        match (name.as_str(), cell) {
            ("[applied]", Some(CqlValue::Boolean(b))) => applied = Some(b),
            (_, Some(v)) => current.push((name, v)),
            (_, None) => {}
        }
    }
    let applied = applied.ok_or_else(|| backend("LWT result without an [applied] column"))?;
    Ok((applied, current))
}

/// A cell of an LWT's current row, by column name.
pub fn cell<'a>(row: &'a [(String, CqlValue)], column: &str) -> Option<&'a CqlValue> {
    row.iter().find(|(n, _)| n == column).map(|(_, v)| v)
}

/// A uuid cell of an LWT's current row, by column name.
pub fn uuid_cell(row: &[(String, CqlValue)], column: &str) -> Result<Uuid, StoreError> {
    match cell(row, column) {
        Some(CqlValue::Uuid(u)) => Ok(*u),
        other => Err(backend(format!("LWT row has no uuid {column}: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_cells() {
        let chat = Uuid::new_v4();
        let member = Member::new(Uuid::new_v4(), Role::Admin, 5);
        for (content, change) in [
            (Content::Text { body: "hi".into() }, None),
            (
                Content::created(member.user_id, "Team".into(), vec![member.user_id]),
                Some(MemberChange::Put(member.clone())),
            ),
            (
                Content::system(SystemEvent::Added, member.user_id),
                Some(MemberChange::Put(member.clone())),
            ),
            (
                Content::system(SystemEvent::Left, member.user_id),
                Some(MemberChange::Remove(member.user_id)),
            ),
            (Content::Video(crate::media::fixtures::attachment()), None),
        ] {
            let (kind, body, event, event_user) = content_cells(&content).unwrap();
            let (put, remove) = change_cells(change.as_ref()).unwrap();
            let row = (
                9,
                member.user_id,
                Some("c9".into()),
                kind,
                body,
                event,
                event_user,
                123,
                put,
                remove,
            );
            let (m, c) = message_value(chat, row).unwrap();
            assert_eq!(m.content, content);
            assert_eq!((m.seq, m.chat_id, m.sent_at), (9, chat, 123));
            assert_eq!(format!("{c:?}"), format!("{change:?}"));
        }
    }

    #[test]
    fn enums_are_stored_by_name() {
        assert_eq!(kind_cell(ChatKind::Direct).unwrap(), "direct");
        assert_eq!(kind_value("group").unwrap(), ChatKind::Group);
        assert_eq!(role_cell(Role::Admin).unwrap(), "admin");
        assert!(kind_value("channel").is_err());
        assert!(seq_cell(u64::MAX).is_err());
        assert!(seq_value(-1).is_err());
    }
}
