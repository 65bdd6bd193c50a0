//! The chat core driven directly: sends, dedup, receipts, watermarks,
//! membership and push decisions, with no store, bus or clock.

use std::collections::HashMap;

use uuid::Uuid;

use super::*;
use crate::model::{Content, Role, SystemEvent};
use crate::protocol::ErrorCode;

const NOW: i64 = 1_700_000_000_000;

fn u(n: u128) -> UserId {
    Uuid::from_u128(n)
}

/// A group made by user 1 with users `2..=size` in it, at seq 1.
fn group(size: u128) -> ChatState {
    let ids = chat_members((2..=size).map(u).collect());
    ChatState::created(new_group(Uuid::from_u128(100), "g".into(), u(1), &ids, NOW)).0
}

fn chat_members(invited: Vec<UserId>) -> Vec<UserId> {
    group_members(u(1), invited).unwrap()
}

/// A 1:1 chat of users 1 and 2 with no messages.
fn direct() -> ChatState {
    let (chat, members) = new_direct(Uuid::from_u128(200), u(1), u(2), NOW);
    ChatState::new(chat, 0, members.into())
}

fn items(st: &ChatState, ids: &[&str]) -> Vec<(usize, SendItem)> {
    let item = |id: &str| SendItem {
        chat: st.id(),
        client_msg_id: id.into(),
        content: Content::Text { body: "hi".into() },
    };
    ids.iter().map(|id| item(id)).enumerate().collect()
}

/// `user` sends `ids` (none stored before); what is new is stored.
fn send(st: &mut ChatState, user: UserId, ids: &[&str]) -> Vec<Sent> {
    let batch = st.send(user, items(st, ids), &HashMap::new(), NOW).unwrap();
    st.stored(batch.messages, batch.change);
    answers(batch.replies.after(Ok(())))
}

/// The answers in item order, all successful.
fn answers(mut replies: Vec<(usize, Result<Sent, ApiError>)>) -> Vec<Sent> {
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, r)| r.unwrap()).collect()
}

fn sent(seq: Seq, duplicate: bool) -> Sent {
    super::sent(seq, NOW, duplicate)
}

/// Applies `change` as if stored.
fn apply(st: &mut ChatState, change: Change) -> Fanout {
    st.stored(vec![change.message], Some(change.member))
}

fn change(st: &ChatState, actor: UserId, target: UserId, what: Membership) -> Change {
    st.membership(actor, target, what, NOW).unwrap().unwrap()
}

/// The code `st` refuses `actor`'s `what` of `target` with.
fn refused(st: &ChatState, actor: UserId, target: UserId, what: Membership) -> ErrorCode {
    refusal(st.membership(actor, target, what, NOW))
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn seqs_are_gapless_across_batches_and_senders() {
    let mut st = group(2);
    assert_eq!(st.head, 1, "the `created` message");
    assert_eq!(
        send(&mut st, u(1), &["a", "b", "c"]),
        [sent(2, false), sent(3, false), sent(4, false)]
    );
    assert_eq!(send(&mut st, u(2), &["a"]), [sent(5, false)]);
    assert_eq!(st.head, 5);
}

#[test]
fn a_batch_is_stored_as_consecutive_messages_and_the_sender_has_read_them() {
    let st = group(2);
    let batch = st.send(u(2), items(&st, &["a", "b"]), &HashMap::new(), NOW);
    let batch = batch.unwrap();
    let seqs: Vec<_> = batch.messages.iter().map(|m| (m.seq, m.sender)).collect();
    assert_eq!(seqs, [(2, u(2)), (3, u(2))]);
    let Some(MemberChange::Put(me)) = batch.change else {
        panic!("the sender's watermarks");
    };
    assert_eq!((me.user_id, me.delivered_seq, me.read_seq), (u(2), 3, 3));
}

#[test]
fn a_client_msg_id_repeated_in_a_batch_answers_its_first_seq() {
    let mut st = group(2);
    assert_eq!(
        send(&mut st, u(1), &["a", "b", "a"]),
        [sent(2, false), sent(3, false), sent(2, true)]
    );
    assert_eq!(st.head, 3, "no message for the repeat");
}

#[test]
fn a_stored_client_msg_id_answers_its_original_seq_and_time() {
    let st = group(2);
    let earlier = HashMap::from([("a".to_owned(), Ok(Some((7, 123))))]);
    let batch = st.send(u(1), items(&st, &["a"]), &earlier, NOW).unwrap();
    assert!(batch.messages.is_empty() && batch.change.is_none());
    assert_eq!(
        answers(batch.replies.after(Ok(()))),
        [super::sent(7, 123, true)]
    );
}

#[test]
fn a_failed_lookup_fails_its_item_only_and_leaves_no_gap() {
    let st = group(2);
    let down = ApiError::new(ErrorCode::Internal, "store down");
    let earlier = HashMap::from([("a".to_owned(), Err(down.clone()))]);
    let batch = st
        .send(u(1), items(&st, &["a", "b"]), &earlier, NOW)
        .unwrap();
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].seq, 2);
    let mut replies = batch.replies.after(Ok(()));
    replies.sort_by_key(|(i, _)| *i);
    assert_eq!(replies, [(0, Err(down)), (1, Ok(sent(2, false)))]);
}

#[test]
fn a_failed_write_fails_the_new_items_but_not_the_known_ones() {
    let st = group(2);
    let earlier = HashMap::from([("old".to_owned(), Ok(Some((1, 5))))]);
    let batch = st
        .send(u(1), items(&st, &["old", "new"]), &earlier, NOW)
        .unwrap();
    let moved = ApiError::new(ErrorCode::Unavailable, "chat moved");
    let mut replies = batch.replies.after(Err(moved.clone()));
    replies.sort_by_key(|(i, _)| *i);
    assert_eq!(replies, [(0, Ok(super::sent(1, 5, true))), (1, Err(moved))]);
}

#[test]
fn only_members_send_mark_or_type() {
    let mut st = group(2);
    let stranger = u(9);
    let batch = st.send(stranger, items(&st, &["a"]), &HashMap::new(), NOW);
    assert_eq!(refusal(batch), ErrorCode::NotMember);
    assert_eq!(refusal(st.watermark(stranger, 1, 1)), ErrorCode::NotMember);
    assert_eq!(refusal(st.typing(stranger)), ErrorCode::NotMember);
}

#[test]
fn typing_is_heard_by_the_other_members() {
    let st = group(3);
    let event = st.typing(u(2)).unwrap();
    assert_eq!(event.to, [u(1), u(3)]);
    assert_eq!(
        event.frame,
        ServerFrame::Typing {
            chat_id: st.id(),
            user_id: u(2)
        }
    );
}

#[test]
fn in_a_direct_chat_both_members_hear_every_receipt() {
    let mut st = direct();
    send(&mut st, u(1), &["a"]);
    let receipt = st.watermark(u(2), 1, 0).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(1), u(2)]);
}

#[test]
fn a_group_receipt_goes_to_the_senders_of_the_messages_it_covers() {
    let mut st = group(4);
    send(&mut st, u(2), &["b"]); // seq 2
    send(&mut st, u(3), &["c"]); // seq 3
    // User 4 reads up to seq 2: the creator (seq 1) and user 2 sent those;
    // user 3's message is not covered.
    let receipt = st.watermark(u(4), 2, 2).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(1), u(2), u(4)]);
    assert_eq!(
        receipt.publish.frame,
        ServerFrame::Receipt {
            chat_id: st.id(),
            user_id: u(4),
            delivered_seq: 2,
            read_seq: 2,
            delivered_all_seq: 0,
            read_all_seq: 0,
        }
    );
}

#[test]
fn everyone_hears_a_receipt_that_moves_the_by_all_watermarks() {
    let mut st = group(3);
    send(&mut st, u(2), &["b"]); // seq 2
    st.watermark(u(1), 2, 2).unwrap().unwrap();
    // User 3 is the last to read: "read by all" moves to 2.
    let receipt = st.watermark(u(3), 2, 2).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(1), u(2), u(3)]);
    let ServerFrame::Receipt { read_all_seq, .. } = receipt.publish.frame else {
        panic!("a receipt");
    };
    assert_eq!(read_all_seq, 2);
}

#[test]
fn everyone_hears_a_receipt_over_messages_too_old_to_remember() {
    let mut st = group(3);
    take_turns(&mut st, RECENT_RUNS + 10);
    let receipt = st.watermark(u(3), 5, 5).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(1), u(2), u(3)]);
}

#[test]
fn a_member_who_only_acks_delivery_tells_only_the_senders_of_what_arrived() {
    // Far more messages than are remembered, none of them read: the
    // receipt covers only the delivered range that moved, not everything
    // since the (never raised) read watermark.
    let mut st = group(4);
    take_turns(&mut st, RECENT_RUNS + 10);
    let head = st.head;
    send(&mut st, u(3), &["c"]);
    st.watermark(u(1), head + 1, 0).unwrap().unwrap();
    st.watermark(u(4), head, 0).unwrap().unwrap();
    let receipt = st.watermark(u(4), head + 1, 0).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(3), u(4)]);
}

#[test]
fn a_run_of_messages_by_one_sender_is_remembered_however_long() {
    // One member sends far more messages than there are runs remembered;
    // another, far behind, acks all of them: the sender and the creator
    // (whose `created` message it covers) hear it, not user 4.
    let mut st = group(4);
    let ids: Vec<String> = (0..RECENT_RUNS * 4).map(|i| i.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    send(&mut st, u(2), &ids);
    let head = st.head;
    let receipt = st.watermark(u(3), head, 0).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(1), u(2), u(3)]);
    send(&mut st, u(2), &["one more"]);
    let receipt = st.watermark(u(3), head + 1, 0).unwrap().unwrap();
    assert_eq!(receipt.publish.to, [u(2), u(3)]);
}

/// `n` messages in `st`, users 1 and 2 taking turns: `n` runs.
fn take_turns(st: &mut ChatState, n: usize) {
    for i in 0..n {
        send(st, u(1 + (i % 2) as u128), &[&i.to_string()]);
    }
}

/// A group of two in which user 1 sent seqs 2 and 3.
fn two_sent() -> ChatState {
    let mut st = group(2);
    send(&mut st, u(1), &["a", "b"]);
    st
}

/// `user`'s (delivered, read) watermarks.
fn marks(st: &ChatState, user: UserId) -> (Seq, Seq) {
    let m = st.member(user).unwrap();
    (m.delivered_seq, m.read_seq)
}

#[test]
fn watermarks_are_clamped_to_the_head() {
    let mut st = two_sent();
    let receipt = st.watermark(u(2), 100, 50).unwrap().unwrap();
    assert_eq!((receipt.delivered, receipt.read), (3, 3));
    assert_eq!(marks(&st, u(2)), (3, 3));
}

#[test]
fn watermarks_never_go_down() {
    let mut st = two_sent();
    st.watermark(u(2), 3, 2).unwrap().unwrap();
    assert!(st.watermark(u(2), 1, 1).unwrap().is_none(), "lower");
    assert!(st.watermark(u(2), 3, 2).unwrap().is_none(), "the same");
    st.watermark(u(2), 0, 3)
        .unwrap()
        .expect("`read` alone rises");
    assert_eq!(marks(&st, u(2)), (3, 3));
}

#[test]
fn reading_a_message_implies_holding_it() {
    let mut st = two_sent();
    let receipt = st.watermark(u(2), 0, 3).unwrap().unwrap();
    assert_eq!((receipt.delivered, receipt.read), (0, 3), "stored as asked");
    assert_eq!(marks(&st, u(2)), (3, 3));
    let ServerFrame::Receipt { delivered_seq, .. } = receipt.publish.frame else {
        panic!("a receipt");
    };
    assert_eq!(delivered_seq, 3);
}

#[test]
fn a_new_group_starts_at_seq_one_with_its_creator_as_admin() {
    assert_eq!(chat_members(vec![u(2), u(1), u(2)]), [u(1), u(2)]);
    let ids = chat_members(vec![u(3), u(2)]);
    let g = new_group(Uuid::from_u128(100), "t".into(), u(1), &ids, NOW);
    assert_eq!((g.first.seq, g.first.sender), (1, u(1)));
    // The `created` message says who made the group, its title and who
    // was in it from the start: enough to show it without the chat view.
    let created = Content::System {
        event: SystemEvent::Created,
        user_id: u(1),
        title: "t".into(),
        members: vec![u(1), u(3), u(2)],
    };
    assert_eq!(g.first.content, created);
    let roles: Vec<_> = g.members.iter().map(|m| (m.role, m.joined_seq)).collect();
    assert_eq!(
        roles,
        [(Role::Admin, 1), (Role::Member, 1), (Role::Member, 1)]
    );
    let (st, created) = ChatState::created(g);
    assert_eq!(created.to, [u(1), u(2), u(3)]);
    assert_eq!(st.head, 1);
}

#[test]
fn a_group_holds_at_most_100_members() {
    let many = |n: u128| (2..2 + n).map(u).collect::<Vec<_>>();
    assert_eq!(group_members(u(1), many(99)).unwrap().len(), 100);
    assert_eq!(
        refusal(group_members(u(1), many(100))),
        ErrorCode::GroupFull
    );
    let st = group(100);
    let full = ErrorCode::GroupFull;
    assert_eq!(refused(&st, u(500), u(500), Membership::Join), full);
    assert_eq!(refused(&st, u(1), u(500), Membership::Add), full);
}

#[test]
fn a_joiner_reads_from_their_join_on() {
    let mut st = group(2);
    send(&mut st, u(1), &["a"]); // seq 2
    let c = change(&st, u(3), u(3), Membership::Join);
    assert_eq!((c.message.seq, c.ban), (3, None));
    assert_eq!(
        c.message.content,
        Content::system(SystemEvent::Joined, u(3))
    );
    let MemberChange::Put(m) = &c.member else {
        panic!("a new member");
    };
    assert_eq!((m.joined_seq, m.delivered_seq, m.read_seq), (3, 2, 2));
    assert_eq!(m.role, Role::Member);
}

#[test]
fn joining_again_or_adding_a_member_changes_nothing() {
    let st = group(2);
    for (actor, what) in [(u(2), Membership::Join), (u(1), Membership::Add)] {
        assert!(st.membership(actor, u(2), what, NOW).unwrap().is_none());
    }
}

#[test]
fn only_admins_add_or_remove_and_only_members_leave() {
    let st = group(3);
    for what in [Membership::Add, Membership::Remove] {
        assert_eq!(refused(&st, u(2), u(3), what), ErrorCode::Forbidden);
    }
    let not_member = ErrorCode::NotMember;
    assert_eq!(refused(&st, u(9), u(9), Membership::Leave), not_member);
    assert_eq!(refused(&st, u(1), u(9), Membership::Remove), not_member);
}

#[test]
fn membership_of_a_direct_chat_cannot_change() {
    let st = direct();
    for what in [Membership::Join, Membership::Leave, Membership::Add] {
        assert_eq!(refused(&st, u(1), u(3), what), ErrorCode::Forbidden);
    }
    assert_eq!(refusal(st.needs_invite(u(3))), ErrorCode::Forbidden);
    assert_eq!(refusal(st.may_invite(u(1))), ErrorCode::Forbidden);
}

#[test]
fn invites_are_for_admins_and_needed_by_non_members() {
    let st = group(2);
    assert_eq!(st.may_invite(u(1)), Ok(()));
    assert_eq!(refusal(st.may_invite(u(2))), ErrorCode::Forbidden);
    assert_eq!(st.needs_invite(u(2)), Ok(false));
    assert_eq!(st.needs_invite(u(3)), Ok(true));
}

#[test]
fn a_removal_by_an_admin_bans_and_an_add_lifts_the_ban() {
    let mut st = group(3);
    let removed = change(&st, u(1), u(3), Membership::Remove);
    assert_eq!(removed.ban, Some((u(3), true)));
    let fanout = apply(&mut st, removed);
    assert_eq!(
        fanout.audience,
        [u(1), u(2), u(3)],
        "the removed user sees it"
    );
    assert!(st.member(u(3)).is_err());
    assert_eq!(
        change(&st, u(1), u(3), Membership::Add).ban,
        Some((u(3), false))
    );
    assert_eq!(change(&st, u(2), u(2), Membership::Leave).ban, None);
}

#[test]
fn a_change_is_heard_by_the_members_before_it() {
    let mut st = group(2);
    let joined = change(&st, u(3), u(3), Membership::Join);
    assert_eq!(apply(&mut st, joined).audience, [u(1), u(2)]);
    assert!(st.member(u(3)).is_ok());
}

#[test]
fn when_the_last_admin_leaves_the_longest_standing_member_is_promoted() {
    // User 3 was in the group from the start; user 2 joined later.
    let ids = chat_members(vec![u(3)]);
    let g = new_group(Uuid::from_u128(100), "g".into(), u(1), &ids, NOW);
    let mut st = ChatState::created(g).0;
    let joined = change(&st, u(2), u(2), Membership::Join);
    apply(&mut st, joined);
    assert!(st.promotion(NOW).is_none(), "the creator is admin");
    let left = change(&st, u(1), u(1), Membership::Leave);
    apply(&mut st, left);
    let promoted = st.promotion(NOW).expect("a promotion");
    assert_eq!(promoted.message.seq, 4);
    assert_eq!(
        promoted.message.content,
        Content::system(SystemEvent::Promoted, u(3))
    );
    apply(&mut st, promoted);
    assert_eq!(st.member(u(3)).unwrap().role, Role::Admin);
    assert!(st.promotion(NOW).is_none());
}

#[test]
fn no_promotion_in_an_empty_group_or_a_direct_chat() {
    let mut st = group(1);
    let left = change(&st, u(1), u(1), Membership::Leave);
    apply(&mut st, left);
    assert!(st.promotion(NOW).is_none());
    assert!(direct().promotion(NOW).is_none());
}

#[test]
fn pushes_go_to_offline_recipients_other_than_the_sender() {
    let mut st = group(3);
    let batch = st
        .send(u(1), items(&st, &["a"]), &HashMap::new(), NOW)
        .unwrap();
    let fanout = st.stored(batch.messages, batch.change);
    let jobs = fanout.push_jobs(|user| user == u(2));
    let to: Vec<_> = jobs.iter().map(|j| (j.user, j.seq)).collect();
    assert_eq!(to, [(u(3), 2)]);
}

#[test]
fn membership_changes_push_nothing() {
    let mut st = group(3);
    let removed = change(&st, u(1), u(3), Membership::Remove);
    assert!(apply(&mut st, removed).push_jobs(|_| false).is_empty());
}
