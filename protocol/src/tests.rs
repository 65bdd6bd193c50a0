//! Decoder tests: every class of bad input, and every split of valid input.

use super::*;

const SEND: &str = r#"{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"c-1","body":"héllo ✓"}"#;

#[test]
fn decodes_send() {
    let f = decode(SEND.as_bytes()).unwrap();
    assert!(
        matches!(f, ClientFrame::Send { kind: SendKind::Text, ref body, .. } if body == "héllo ✓")
    );
}

#[test]
fn every_split_point_is_a_typed_error_then_the_whole_frame() {
    let bytes = SEND.as_bytes();
    let whole = decode(bytes).unwrap();
    for cut in 0..bytes.len() {
        let (head, tail) = bytes.split_at(cut);
        // A prefix alone is never a frame and never panics.
        let err = decode(head).unwrap_err();
        assert!(
            matches!(
                err.code(),
                ErrorCode::BadFrame | ErrorCode::Invalid | ErrorCode::UnknownType
            ),
            "cut {cut}: {err:?}"
        );
        // Reassembled, the two halves give the same frame.
        let mut joined = head.to_vec();
        joined.extend_from_slice(tail);
        assert_eq!(decode(&joined).unwrap(), whole, "cut {cut}");
    }
}

#[test]
fn classifies_bad_input() {
    let cases: &[(&str, ErrorCode)] = &[
        ("", ErrorCode::BadFrame),
        ("not json", ErrorCode::BadFrame),
        ("[1,2]", ErrorCode::BadFrame),
        (r#"{"no_type":1}"#, ErrorCode::BadFrame),
        (r#"{"type":7}"#, ErrorCode::BadFrame),
        (r#"{"type":"launch_rockets"}"#, ErrorCode::UnknownType),
        (r#"{"type":"send"}"#, ErrorCode::Invalid),
        (
            r#"{"type":"read","chat_id":"not-a-uuid","seq":1}"#,
            ErrorCode::Invalid,
        ),
        (
            r#"{"type":"read","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","seq":-1}"#,
            ErrorCode::Invalid,
        ),
        (r#"{"type":"ping","extra":true}"#, ErrorCode::Invalid),
        (
            r#"{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"","body":"x"}"#,
            ErrorCode::Invalid,
        ),
        (
            r#"{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"a","body":"x","kind":"hologram"}"#,
            ErrorCode::Invalid,
        ),
    ];
    for (input, code) in cases {
        let err = decode(input.as_bytes()).unwrap_err();
        assert_eq!(err.code(), *code, "{input}: {err}");
    }
}

#[test]
fn rejects_oversize_frames_before_parsing() {
    let big = vec![b' '; MAX_FRAME_BYTES + 1];
    assert_eq!(decode(&big).unwrap_err().code(), ErrorCode::TooLarge);
    let body = "x".repeat(MAX_BODY_BYTES + 1);
    let frame = format!(
        r#"{{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"a","body":"{body}"}}"#
    );
    assert_eq!(
        decode(frame.as_bytes()).unwrap_err().code(),
        ErrorCode::Invalid
    );
}

#[test]
fn media_sends_need_a_media_id_and_text_sends_a_body() {
    let id = "ab".repeat(32);
    let ok = format!(
        r#"{{"type":"send","chat_id":"0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e","client_msg_id":"a","kind":"video","media_id":"{id}"}}"#
    );
    assert!(matches!(
        decode(ok.as_bytes()).unwrap(),
        ClientFrame::Send { kind: SendKind::Video, ref body, .. } if body.is_empty()
    ));
    let cases = [
        (
            SendKind::Image,
            "",
            None,
            "a media message needs the media_id of an upload",
        ),
        (
            SendKind::Text,
            "hi",
            Some(id.as_str()),
            "a text message takes no media_id",
        ),
        (SendKind::Text, "", None, "body must be 1 to 16384 bytes"),
        (
            SendKind::File,
            "",
            Some("not-hex"),
            "media_id must be 64 hex digits",
        ),
    ];
    for (kind, body, media, reason) in cases {
        assert_eq!(check_send(kind, "a", body, media), Err(reason));
    }
    let long_caption = "x".repeat(MAX_CAPTION_BYTES + 1);
    assert!(check_send(SendKind::Audio, "a", &long_caption, Some(&id)).is_err());
    assert_eq!(
        check_send(SendKind::Audio, "a", "listen", Some(&id)),
        Ok(())
    );
}

#[test]
fn invalid_utf8_is_a_bad_frame() {
    let err = decode(b"{\"type\":\"ping\xff\"}").unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadFrame);
}

#[test]
fn server_frames_round_trip() {
    let f = ServerFrame::error(ErrorCode::NotMember, "you are not a member of this chat");
    let text = encode(&f);
    assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), f);
    assert!(text.contains(r#""code":"not_member""#));
}

mod fuzz {
    //! Property-based fuzzing of the decoder: arbitrary bytes, and valid
    //! frames with random bytes flipped, never panic and always classify.
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Err(e) = decode(&bytes) {
                let _ = e.code();
            }
        }

        #[test]
        fn mutated_frames_decode_or_classify(pos in 0usize..SEND.len(), byte in any::<u8>()) {
            let mut bytes = SEND.as_bytes().to_vec();
            bytes[pos] = byte;
            match decode(&bytes) {
                Ok(ClientFrame::Send { .. }) => {}
                Ok(other) => prop_assert!(false, "a mutated send decoded as {other:?}"),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
