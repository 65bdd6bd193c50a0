//! The REST API's request bodies (JSON) and queries, and the checks on them
//! that need no state. [`decode`] runs one of them on raw bytes exactly as
//! its route would, without a server: the REST fuzz target's way in.
//!
//! Owns only shapes and stateless checks; what needs the store stays in
//! [`crate::node::Node`].

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{Device, MediaId, Platform, Seq};
use crate::ops::send::Outgoing;
use crate::protocol::SendKind;
use crate::push::DevicePolicy;

/// `POST /v1/register`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RegisterBody")]
pub(super) struct Register {
    pub phone: String,
    pub display_name: String,
    pub password: String,
}

/// `POST /v1/login`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LoginBody")]
pub(super) struct Login {
    pub phone: String,
    pub password: String,
}

/// `POST /v1/chats/{chat}/messages`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SendBody {
    pub client_msg_id: String,
    #[serde(default)]
    pub kind: SendKind,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub media_id: Option<MediaId>,
}

impl SendBody {
    /// The send this body asks for in `chat` (the route's path).
    pub fn outgoing(self, chat: Uuid) -> Outgoing {
        Outgoing {
            chat,
            client_msg_id: self.client_msg_id,
            kind: self.kind,
            body: self.body,
            media_id: self.media_id,
        }
    }
}

/// `POST /v1/chats/{chat}/receipts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ReceiptsBody")]
pub(super) struct Watermark {
    #[serde(default)]
    pub delivered: Option<Seq>,
    #[serde(default)]
    pub read: Option<Seq>,
}

/// `POST /v1/direct`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DirectBody")]
pub(super) struct Direct {
    pub phone: String,
}

/// `POST /v1/groups`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "GroupBody")]
pub(super) struct Group {
    pub title: String,
    #[serde(default)]
    pub members: Vec<Uuid>,
}

/// `POST /v1/groups/{chat}/join`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "JoinBody")]
pub(super) struct Join {
    pub invite: String,
}

/// `POST /v1/groups/{chat}/members`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AddMemberBody")]
pub(super) struct AddMember {
    pub user_id: Uuid,
}

/// The query of `GET /v1/chats/{chat}/messages`.
#[derive(Deserialize)]
pub(super) struct Page {
    pub before: Option<Seq>,
    pub limit: Option<u32>,
}

/// `PUT /v1/devices/{device_id}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceBody {
    pub platform: Platform,
    pub token: String,
}

impl DeviceBody {
    /// The device registered under the path's `device_id`.
    pub fn device(self, device_id: String) -> Device {
        Device {
            device_id,
            platform: self.platform,
            token: self.token,
        }
    }
}

/// The query of `GET /v1/users`.
#[derive(Deserialize)]
pub(super) struct PhoneQuery {
    pub phone: String,
}

/// Which body or query [`decode`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Register,
    Login,
    Send,
    Receipts,
    Direct,
    Group,
    Join,
    AddMember,
    Device,
    Page,
    Phone,
}

impl Input {
    pub const ALL: [Input; 11] = [
        Input::Register,
        Input::Login,
        Input::Send,
        Input::Receipts,
        Input::Direct,
        Input::Group,
        Input::AddMember,
        Input::Device,
        Input::Page,
        Input::Phone,
        // Last: a seed's first byte picks its input by position.
        Input::Join,
    ];
}

/// A JSON body, as the REST routes decode it.
pub(super) fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(e.to_string()))
}

/// A URL query, as the REST routes decode it.
pub(super) fn query<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::invalid(e.to_string()))?;
    serde_urlencoded::from_str(text).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Decodes `bytes` as `input` and applies every check on it that needs no
/// state: the route's own, and the node's stateless ones (display names,
/// devices under a policy that takes every platform). A typed refusal,
/// never a panic.
pub fn decode(input: Input, bytes: &[u8]) -> Result<(), ApiError> {
    match input {
        Input::Register => {
            let b: Register = json(bytes)?;
            crate::text::display_name(&b.display_name).map_err(ApiError::invalid)?;
        }
        Input::Login => {
            let _: Login = json(bytes)?;
        }
        Input::Send => json::<SendBody>(bytes)?.outgoing(Uuid::nil()).check()?,
        Input::Receipts => {
            let _: Watermark = json(bytes)?;
        }
        Input::Direct => {
            let _: Direct = json(bytes)?;
        }
        Input::Group => {
            let b: Group = json(bytes)?;
            crate::text::group_title(&b.title).map_err(ApiError::invalid)?;
        }
        Input::Join => {
            let _: Join = json(bytes)?;
        }
        Input::AddMember => {
            let _: AddMember = json(bytes)?;
        }
        Input::Device => {
            let every = DevicePolicy {
                platforms: vec![Platform::Fcm, Platform::Apns, Platform::Webhook],
                allow_http_webhooks: false,
            };
            let device = json::<DeviceBody>(bytes)?.device("device-1".into());
            every.check(&device).map_err(ApiError::invalid)?;
        }
        Input::Page => {
            let _: Page = query(bytes)?;
        }
        Input::Phone => {
            let _: PhoneQuery = query(bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_input_takes_a_documented_example_and_refuses_junk() {
        let examples: [(Input, &str); 11] = [
            (
                Input::Register,
                r#"{"phone":"+15550001","display_name":"Ann","password":"correct horse"}"#,
            ),
            (
                Input::Login,
                r#"{"phone":"+15550001","password":"pw123456"}"#,
            ),
            (Input::Send, r#"{"client_msg_id":"c1","body":"hi"}"#),
            (Input::Receipts, r#"{"delivered":4,"read":3}"#),
            (Input::Direct, r#"{"phone":"+15550002"}"#),
            (Input::Group, r#"{"title":"Team","members":[]}"#),
            (Input::Join, r#"{"invite":"Zm9vYmFyYmF6cXV4cXV1eA"}"#),
            (
                Input::AddMember,
                r#"{"user_id":"0190c6a8-7d51-7cc2-9a0e-56e1e1bd7f3a"}"#,
            ),
            (
                Input::Device,
                r#"{"platform":"webhook","token":"https://push.example/up/1"}"#,
            ),
            (Input::Page, "before=40&limit=20"),
            (Input::Phone, "phone=%2B15550002"),
        ];
        for (input, example) in examples {
            assert_eq!(decode(input, example.as_bytes()), Ok(()), "{input:?}");
            assert!(decode(input, b"\xff{").is_err(), "{input:?}");
        }
        let private = br#"{"platform":"webhook","token":"https://169.254.169.254/"}"#;
        assert!(decode(Input::Device, private).is_err());
        // Like every other body, a device refuses fields it does not know.
        let extra = br#"{"platform":"webhook","token":"https://push.example/up/1","name":"x"}"#;
        assert!(decode(Input::Device, extra).is_err());
    }
}
