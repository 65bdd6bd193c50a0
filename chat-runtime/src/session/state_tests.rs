//! The session's decisions, event by event: live forwarding, duplicates,
//! gap fills, catch-up from watermarks, client frames and the heartbeat.

use std::ops::RangeInclusive;

use super::*;
use crate::model::{Content, Role};

const HEARTBEAT: Duration = Duration::from_secs(10);
/// The tag of the session under test.
const ME: Origin = 7;

fn chat(n: u128) -> ChatId {
    ChatId::from_u128(n)
}

/// A live event's frame; the tests only need to tell them apart.
fn frame(seq: Seq) -> Bytes {
    Bytes::from(format!("live {seq}"))
}

fn live(chat: ChatId, seq: Seq) -> Event {
    Event::Bus(Envelope {
        chat: Some(chat),
        seq,
        frame: frame(seq),
        origin: Some(ME + 1),
    })
}

/// A live message this session sent.
fn own(chat: ChatId, seq: Seq) -> Event {
    Event::Bus(Envelope {
        chat: Some(chat),
        seq,
        frame: frame(seq),
        origin: Some(ME),
    })
}

fn forward(seq: Seq) -> Action {
    Action::Forward(frame(seq))
}

fn message(chat: ChatId, seq: Seq) -> Message {
    Message {
        chat_id: chat,
        seq,
        sender: ChatId::from_u128(99),
        client_msg_id: format!("m{seq}"),
        content: Content::Text {
            body: format!("message {seq}"),
        },
        sent_at: 0,
    }
}

fn page(chat: ChatId, seqs: RangeInclusive<Seq>) -> Event {
    Event::Page(seqs.map(|seq| message(chat, seq)).collect())
}

fn delivered(chat: ChatId, seqs: RangeInclusive<Seq>) -> Vec<Action> {
    seqs.map(|seq| Action::Deliver(message(chat, seq)))
        .collect()
}

fn member(joined_seq: Seq, delivered_seq: Seq) -> Event {
    Event::Member(Some(Member {
        user_id: ChatId::from_u128(1),
        role: Role::Member,
        joined_at: 0,
        joined_seq,
        delivered_seq,
        read_seq: 0,
    }))
}

fn lookup(chat: ChatId) -> Vec<Action> {
    vec![Action::LookUp(chat)]
}

/// `first`, then `next`.
fn chain(mut first: Vec<Action>, next: Vec<Action>) -> Vec<Action> {
    first.extend(next);
    first
}

fn read(chat: ChatId, after: Seq, limit: usize) -> Vec<Action> {
    vec![Action::Read { chat, after, limit }]
}

/// A session whose device holds `marks`.
fn session(marks: &[(ChatId, Seq)]) -> SessionState {
    SessionState::new(marks.iter().copied().collect(), HEARTBEAT, ME)
}

/// A session whose device holds `mark` of a chat, given that chat's live
/// event `seq` above `mark + 1`: it looks up the membership to fill the gap.
fn gap(mark: Seq, seq: Seq) -> (ChatId, SessionState) {
    let a = chat(1);
    let mut s = session(&[(a, mark)]);
    assert_eq!(s.on_event(live(a, seq)), lookup(a));
    (a, s)
}

fn text(s: &str) -> Event {
    Event::Frame(Inbound::Text(Bytes::copy_from_slice(s.as_bytes())), now())
}

fn now() -> Instant {
    Instant::now()
}

// Live events.

#[test]
fn events_in_order_are_forwarded() {
    let a = chat(1);
    let mut s = session(&[(a, 3)]);
    assert_eq!(s.on_event(live(a, 4)), vec![forward(4)]);
    assert_eq!(s.on_event(live(a, 5)), vec![forward(5)]);
}

#[test]
fn duplicates_and_old_seqs_are_skipped() {
    let a = chat(1);
    let mut s = session(&[(a, 3)]);
    assert_eq!(s.on_event(live(a, 3)), vec![]);
    assert_eq!(s.on_event(live(a, 1)), vec![]);
    assert_eq!(s.on_event(live(a, 4)), vec![forward(4)]);
    assert_eq!(s.on_event(live(a, 4)), vec![]);
}

#[test]
fn a_chats_first_event_sets_its_mark_without_a_fill() {
    let a = chat(1);
    let mut s = session(&[]);
    assert_eq!(s.on_event(live(a, 40)), vec![forward(40)]);
    assert_eq!(s.on_event(live(a, 40)), vec![]);
    assert_eq!(s.on_event(live(a, 41)), vec![forward(41)]);
}

#[test]
fn events_without_a_seq_always_pass() {
    let a = chat(1);
    let mut s = session(&[(a, 3)]);
    let typing = |chat| Envelope {
        chat,
        seq: 0,
        frame: frame(0),
        origin: None,
    };
    assert_eq!(s.on_event(Event::Bus(typing(Some(a)))), vec![forward(0)]);
    assert_eq!(s.on_event(Event::Bus(typing(Some(a)))), vec![forward(0)]);
    assert_eq!(s.on_event(Event::Bus(typing(None))), vec![forward(0)]);
    assert_eq!(s.on_event(live(a, 4)), vec![forward(4)]);
}

#[test]
fn chats_keep_their_own_marks() {
    let (a, b) = (chat(1), chat(2));
    let mut s = session(&[(a, 3), (b, 10)]);
    assert_eq!(s.on_event(live(b, 11)), vec![forward(11)]);
    assert_eq!(s.on_event(live(a, 4)), vec![forward(4)]);
    assert_eq!(s.on_event(live(a, 11)), lookup(a));
}

// Gaps.

#[test]
fn a_gap_is_filled_with_exactly_the_missing_range_then_the_event() {
    let (a, mut s) = gap(2, 6);
    assert_eq!(s.on_event(member(1, 0)), read(a, 2, 3));
    let expected = chain(delivered(a, 3..=5), vec![forward(6)]);
    assert_eq!(s.on_event(page(a, 3..=5)), expected);
    assert_eq!(s.on_event(live(a, 7)), vec![forward(7)]);
}

#[test]
fn a_long_gap_is_read_page_by_page() {
    let (a, mut s) = gap(0, 451);
    assert_eq!(s.on_event(member(0, 0)), read(a, 0, PAGE));
    let expected = chain(delivered(a, 1..=200), read(a, 200, PAGE));
    assert_eq!(s.on_event(page(a, 1..=200)), expected);
    let expected = chain(delivered(a, 201..=400), read(a, 400, 50));
    assert_eq!(s.on_event(page(a, 201..=400)), expected);
    let expected = chain(delivered(a, 401..=450), vec![forward(451)]);
    assert_eq!(s.on_event(page(a, 401..=450)), expected);
}

#[test]
fn a_fill_never_reads_from_before_the_join() {
    let (a, mut s) = gap(0, 9);
    assert_eq!(s.on_event(member(6, 0)), read(a, 5, 3));
}

#[test]
fn a_gap_closed_by_the_join_needs_no_read() {
    let (a, mut s) = gap(0, 9);
    assert_eq!(s.on_event(member(9, 0)), vec![forward(9)]);
    assert_eq!(s.on_event(live(a, 10)), vec![forward(10)]);
}

#[test]
fn a_non_members_gap_is_not_filled_but_its_event_passes() {
    // A removed member's device still gets the removal itself.
    let (a, mut s) = gap(2, 8);
    assert_eq!(s.on_event(Event::Member(None)), vec![forward(8)]);
    assert_eq!(s.on_event(live(a, 8)), vec![]);
}

#[test]
fn a_failed_fill_still_forwards_the_event_and_moves_on() {
    let (a, mut s) = gap(2, 6);
    s.on_event(member(0, 0));
    assert_eq!(s.on_event(Event::Page(vec![])), vec![forward(6)]);
    assert_eq!(s.on_event(live(a, 7)), vec![forward(7)]);
}

#[test]
fn events_that_waited_during_a_fill_are_neither_lost_nor_repeated() {
    // While 3..=5 is read, the bus queue holds late copies of 4 and 5 (the
    // reason for the gap: they were slow) and the newer 7 and 8.
    let (a, mut s) = gap(2, 6);
    s.on_event(member(0, 0));
    s.on_event(page(a, 3..=5));
    let waited = [4, 5, 7, 8].map(|seq| s.on_event(live(a, seq)));
    assert_eq!(waited, [vec![], vec![], vec![forward(7)], vec![forward(8)]]);
}

#[test]
fn an_answer_nobody_asked_for_is_ignored() {
    let a = chat(1);
    let mut s = session(&[(a, 2)]);
    assert_eq!(s.on_event(page(a, 3..=4)), vec![]);
    assert_eq!(s.on_event(member(0, 0)), vec![]);
    assert_eq!(s.on_event(live(a, 3)), vec![forward(3)]);
}

// Catch-up (resume).

#[test]
fn a_catch_up_resumes_from_the_devices_watermarks() {
    let (a, b) = (chat(1), chat(2));
    let mut s = session(&[(a, 3)]);
    assert_eq!(s.on_event(Event::CatchUp), vec![Action::ListChats]);
    assert_eq!(s.on_event(Event::Chats(vec![a, b])), lookup(a));
    // The device's mark (3) wins over the user's delivered watermark (1).
    assert_eq!(s.on_event(member(0, 1)), read(a, 3, PAGE));
    let expected = chain(delivered(a, 4..=5), read(a, 5, PAGE));
    assert_eq!(s.on_event(page(a, 4..=5)), expected);
    assert_eq!(s.on_event(Event::Page(vec![])), lookup(b));
    // A chat the device did not list resumes from the delivered watermark.
    assert_eq!(s.on_event(member(0, 7)), read(b, 7, PAGE));
    let synced = ServerFrame::Synced {
        chats: BTreeMap::from([(a, 5), (b, 7)]),
    };
    assert_eq!(s.on_event(Event::Page(vec![])), vec![Action::Reply(synced)]);
    // Live events resume where the catch-up ended.
    assert_eq!(s.on_event(live(a, 5)), vec![]);
    assert_eq!(s.on_event(live(b, 8)), vec![forward(8)]);
}

#[test]
fn a_catch_up_skips_chats_the_user_left_or_was_removed_from() {
    let (a, b) = (chat(1), chat(2));
    let mut s = session(&[(a, 3), (b, 3)]);
    s.on_event(Event::CatchUp);
    assert_eq!(s.on_event(Event::Chats(vec![a, b])), lookup(a));
    assert_eq!(s.on_event(Event::Member(None)), lookup(b));
    assert_eq!(s.on_event(member(0, 0)), read(b, 3, PAGE));
    let synced = ServerFrame::Synced {
        chats: BTreeMap::from([(b, 3)]),
    };
    assert_eq!(s.on_event(Event::Page(vec![])), vec![Action::Reply(synced)]);
}

#[test]
fn a_catch_up_starts_a_new_member_at_their_join() {
    let a = chat(1);
    let mut s = session(&[]);
    s.on_event(Event::CatchUp);
    s.on_event(Event::Chats(vec![a]));
    assert_eq!(s.on_event(member(12, 0)), read(a, 11, PAGE));
}

#[test]
fn a_catch_up_without_chats_is_synced_at_once() {
    let mut s = session(&[]);
    let synced = ServerFrame::Synced {
        chats: BTreeMap::new(),
    };
    assert_eq!(
        s.on_event(Event::Chats(vec![])),
        vec![Action::Reply(synced)]
    );
}

// Client frames.

#[test]
fn ping_is_answered_and_commands_are_dispatched() {
    let mut s = session(&[]);
    let pong = Action::Reply(ServerFrame::Pong {});
    assert_eq!(s.on_event(text(r#"{"type":"ping"}"#)), vec![pong]);
    let chats = ClientFrame::Chats { req_id: "r".into() };
    let actions = s.on_event(text(r#"{"type":"chats","req_id":"r"}"#));
    assert_eq!(actions, vec![Action::Dispatch(chats)]);
}

#[test]
fn a_second_hello_or_an_oversized_message_closes() {
    let mut s = session(&[]);
    let hello = text(r#"{"type":"hello","token":"t"}"#);
    let violation = Action::Close(CloseCode::ProtocolViolation);
    assert_eq!(s.on_event(hello), vec![violation]);
    let too_big = Event::Frame(Inbound::TooBig, now());
    let close = Action::Close(CloseCode::MessageTooBig);
    assert_eq!(s.on_event(too_big), vec![close]);
}

#[test]
fn a_bad_frame_is_answered_with_its_error() {
    let mut s = session(&[]);
    let actions = s.on_event(Event::Frame(Inbound::Binary, now()));
    let [
        Action::CountError(code),
        Action::Reply(ServerFrame::Error { code: sent, .. }),
    ] = actions.as_slice()
    else {
        panic!("expected a counted error reply, got {actions:?}");
    };
    assert_eq!((*code, *sent), (ErrorCode::BadFrame, ErrorCode::BadFrame));
}

#[test]
fn a_refused_frame_is_answered_with_the_ids_it_carried() {
    let mut s = session(&[]);
    let long_id = "x".repeat(65);
    let send = format!(
        r#"{{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"{long_id}","body":"hi"}}"#
    );
    let history = r#"{"type":"history","req_id":"r9","chat_id":"not a uuid"}"#;
    let cases = [
        (send.as_str(), None, Some(long_id.as_str())),
        (history, Some("r9"), None),
        (
            r#"{"type":"send","client_msg_id":"m1","extra":1}"#,
            None,
            Some("m1"),
        ),
        (r#"{"type":"chats","req_id":7}"#, None, None),
        ("{", None, None),
    ];
    for (input, req, msg) in cases {
        let actions = s.on_event(text(input));
        let [
            _,
            Action::Reply(ServerFrame::Error {
                req_id,
                client_msg_id,
                ..
            }),
        ] = actions.as_slice()
        else {
            panic!("{input}: expected an error reply, got {actions:?}");
        };
        assert_eq!(
            (req_id.as_deref(), client_msg_id.as_deref()),
            (req, msg),
            "{input}"
        );
    }
}

#[test]
fn too_many_bad_frames_in_a_row_close_the_connection() {
    let mut s = session(&[]);
    for _ in 0..MAX_BAD_FRAMES {
        assert!(matches!(s.on_event(text("{"))[1], Action::Reply(_)));
    }
    // A good frame starts the count again.
    s.on_event(text(r#"{"type":"ping"}"#));
    for _ in 0..MAX_BAD_FRAMES {
        assert!(matches!(s.on_event(text("{"))[1], Action::Reply(_)));
    }
    let close = vec![
        Action::CountError(ErrorCode::BadFrame),
        Action::Close(CloseCode::ProtocolViolation),
    ];
    assert_eq!(s.on_event(text("{")), close);
}

// Heartbeat, ends.

#[test]
fn a_device_silent_for_two_heartbeats_is_closed() {
    let mut s = session(&[]);
    let t0 = now();
    assert_eq!(s.on_event(Event::Tick(t0 + HEARTBEAT * 3)), vec![]);
    s.on_event(Event::Live(t0));
    assert_eq!(s.on_event(Event::Tick(t0 + HEARTBEAT * 2)), vec![]);
    let ping = r#"{"type":"ping"}"#.as_bytes();
    let heard = t0 + HEARTBEAT;
    s.on_event(Event::Frame(Inbound::Text(Bytes::from(ping)), heard));
    assert_eq!(s.on_event(Event::Tick(t0 + HEARTBEAT * 3)), vec![]);
    let timeout = vec![Action::Close(CloseCode::HeartbeatTimeout)];
    let late = heard + HEARTBEAT * 2 + Duration::from_millis(1);
    assert_eq!(s.on_event(Event::Tick(late)), timeout);
}

#[test]
fn the_session_ends_with_the_right_code() {
    let mut s = session(&[]);
    let slow = vec![Action::Close(CloseCode::SlowConsumer)];
    assert_eq!(s.on_event(Event::BusEnded), slow);
    let restart = vec![Action::Close(CloseCode::ServerRestart)];
    assert_eq!(s.on_event(Event::Shutdown), restart);
    assert_eq!(s.on_event(Event::SocketEnded), vec![Action::End]);
}

#[test]
fn the_sessions_own_message_moves_its_mark_but_is_not_sent_back() {
    let a = chat(1);
    let mut s = session(&[(a, 3)]);
    assert_eq!(s.on_event(own(a, 4)), vec![]);
    // The next message follows on without a fill, and the own one stays a
    // duplicate.
    assert_eq!(s.on_event(live(a, 5)), vec![forward(5)]);
    assert_eq!(s.on_event(own(a, 4)), vec![]);
}

#[test]
fn a_gap_before_the_sessions_own_message_is_filled_and_the_message_held_back() {
    let a = chat(1);
    let mut s = session(&[(a, 3)]);
    assert_eq!(s.on_event(own(a, 6)), lookup(a));
    assert_eq!(s.on_event(member(1, 0)), read(a, 3, 2));
    // The fill delivers 4 and 5; 6 is the device's own: nothing more.
    assert_eq!(s.on_event(page(a, 4..=5)), delivered(a, 4..=5));
    assert_eq!(s.on_event(live(a, 7)), vec![forward(7)]);
}
