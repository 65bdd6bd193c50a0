//! Opening a session: admission (connection, address and user caps; none
//! while the gateway drains), the `hello` frame within its timeout, the
//! token, the bus subscription. A refusal is an error frame and a close
//! code, or a close code alone; [`hello`] and [`refusal`] decide them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Inbound, Link, Outbound, error_frame, out, write};
use crate::bus::Subscription;
use crate::client::{ClientAddr, Held};
use crate::error::ApiError;
use crate::model::{ChatId, Seq, UserId};
use crate::node::{ConnectionSlot, Node};
use crate::protocol::{self, ClientFrame, CloseCode, ErrorCode};

/// What the device said in its `hello`.
#[derive(Debug, PartialEq)]
pub struct Hello {
    pub token: String,
    /// Highest seq the device holds per chat.
    pub watermarks: BTreeMap<ChatId, Seq>,
}

/// An admitted, authenticated session, ready to resume.
pub struct Opened {
    pub user: UserId,
    pub watermarks: BTreeMap<ChatId, Seq>,
    pub subscription: Subscription,
    /// The slots the session holds until it ends; given back on drop.
    pub _slots: (ConnectionSlot, Held<ClientAddr>, Held<UserId>),
}

/// The first frame's meaning: `Ok(None)` when the socket gave nothing to
/// answer (it closed, or sent a binary or oversized message).
pub fn hello(first: Inbound) -> Result<Option<Hello>, ApiError> {
    let Inbound::Text(bytes) = first else {
        return Ok(None);
    };
    match protocol::decode(&bytes) {
        Ok(ClientFrame::Hello { token, watermarks }) => Ok(Some(Hello { token, watermarks })),
        Ok(_) => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "the first frame must be hello",
        )),
        // A hello without a usable token is a missing token, like any
        // other first frame that does not authenticate.
        Err(e @ protocol::ProtocolError::Invalid { .. }) => {
            Err(ApiError::new(ErrorCode::Unauthenticated, e.to_string()))
        }
        Err(e) => Err(ApiError::new(e.code(), e.to_string())),
    }
}

/// The close code that follows a refused `hello`.
pub fn refusal(code: ErrorCode) -> CloseCode {
    match code {
        ErrorCode::TokenRevoked => CloseCode::TokenRevoked,
        ErrorCode::Unauthenticated | ErrorCode::TokenExpired => CloseCode::Unauthenticated,
        _ => CloseCode::ProtocolViolation,
    }
}

/// Admits, authenticates and subscribes; `None` when the session was refused
/// (the refusal is already written) or the socket went away.
pub async fn open(node: &Arc<Node>, client: ClientAddr, link: &mut impl Link) -> Option<Opened> {
    let admitted = node.admit().filter(|_| !node.draining());
    let Some(slot) = admitted else {
        return close(link, CloseCode::TryAgainLater).await;
    };
    let Some(address_slot) = node.admit_address(client) else {
        return close(link, CloseCode::TooManySessions).await;
    };
    let hello_timeout = Duration::from_millis(node.limits.hello_timeout_ms);
    let first = match tokio::time::timeout(hello_timeout, link.recv()).await {
        Ok(first) => hello(first?),
        Err(_) => return close(link, CloseCode::AuthTimeout).await,
    };
    let Hello { token, watermarks } = match first {
        Ok(hello) => hello?,
        Err(e) => return refuse(node, link, &e).await,
    };
    let user = match node.authenticate(&token).await {
        Ok(claims) => claims.sub,
        Err(e) => return refuse(node, link, &e).await,
    };
    let Some(user_slot) = node.admit_user(user) else {
        return close(link, CloseCode::TooManySessions).await;
    };
    let subscription = match node.bus.subscribe(user, node.limits.session_queue).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "bus subscribe failed");
            return close(link, CloseCode::TryAgainLater).await;
        }
    };
    Some(Opened {
        user,
        watermarks,
        subscription,
        _slots: (slot, address_slot, user_slot),
    })
}

async fn close(link: &mut impl Link, code: CloseCode) -> Option<Opened> {
    let _ = write(link, Outbound::Close(code)).await;
    None
}

async fn refuse(node: &Node, link: &mut impl Link, e: &ApiError) -> Option<Opened> {
    node.metrics.error(e.code);
    let _ = link.feed(out(&error_frame(e, None, None))).await;
    close(link, refusal(e.code)).await
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn text(s: &str) -> Inbound {
        Inbound::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn hello_gives_token_and_watermarks() {
        let chat = ChatId::nil();
        let frame = format!(r#"{{"type":"hello","token":"t","watermarks":{{"{chat}":7}}}}"#);
        let hello = hello(text(&frame)).unwrap().unwrap();
        assert_eq!(hello.token, "t");
        assert_eq!(hello.watermarks, BTreeMap::from([(chat, 7)]));
    }

    #[test]
    fn another_first_frame_is_unauthenticated() {
        let e = hello(text(r#"{"type":"ping"}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        assert_eq!(refusal(e.code), CloseCode::Unauthenticated);
    }

    #[test]
    fn a_hello_without_a_usable_token_is_unauthenticated() {
        for frame in [
            r#"{"type":"hello"}"#,
            r#"{"type":"hello","token":7}"#,
            r#"{"type":"ping","token":"t","extra":1}"#,
        ] {
            let e = hello(text(frame)).unwrap_err();
            assert_eq!(refusal(e.code), CloseCode::Unauthenticated, "{frame}");
        }
    }

    #[test]
    fn an_undecodable_first_frame_is_a_protocol_violation() {
        let e = hello(text("{")).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert_eq!(refusal(e.code), CloseCode::ProtocolViolation);
    }

    #[test]
    fn binary_or_oversized_first_frames_end_quietly() {
        assert_eq!(hello(Inbound::Binary), Ok(None));
        assert_eq!(hello(Inbound::TooBig), Ok(None));
    }

    #[test]
    fn token_refusals_close_with_their_own_codes() {
        assert_eq!(refusal(ErrorCode::TokenRevoked), CloseCode::TokenRevoked);
        assert_eq!(refusal(ErrorCode::TokenExpired), CloseCode::Unauthenticated);
    }
}
