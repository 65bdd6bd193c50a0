//! Push notifications (DESIGN §2, invariant 8): a member with no live
//! session gets a notification on each registered device; failures are
//! retried with backoff and, when they never succeed, dead-lettered — never
//! silently dropped.
//!
//! The flow: the shard that sequenced a message queues one [`PushJob`] per
//! offline recipient (the `PushQueue` seam in [`crate::bus::queue`]); a
//! notifier takes it, splits it into one job per device, and sends each
//! through its platform's [`providers::Provider`].
//!
//! - this module: the jobs and notifications — plain data and pure functions;
//! - [`policy`]: what a provider's answer means (done, retry when, give up);
//! - [`providers`]: FCM, APNs and webhook (UnifiedPush) clients;
//! - [`notifier`]: the worker loop around them.

pub mod notifier;
pub mod policy;
pub mod providers;

use serde::{Deserialize, Serialize};

use crate::bus::BusError;
use crate::model::{ChatId, Content, Device, Message, Platform, Seq, UserId};
use crate::store::StoreError;

/// Why the notifier could not start, or could not settle a job (which then
/// stays queued and comes again).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] BusError),
    /// Credentials missing or unreadable: the process does not start.
    #[error("push configuration: {0}")]
    Config(String),
}

/// Longest text preview, in characters.
pub const PREVIEW_CHARS: usize = 120;

/// "Tell `user` about message `seq` of `chat`". Serializable: in clusters it
/// travels through a JetStream work queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushJob {
    pub user: UserId,
    pub chat: ChatId,
    pub seq: Seq,
    pub sender: UserId,
    /// What the notification says (see [`preview`]).
    pub preview: String,
    pub sent_at: i64,
    /// `None`: every device of the user (a notifier splits the job);
    /// `Some`: only this device (the unit that is retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl PushJob {
    /// Unique per (recipient, message, device): the queue drops a job it has
    /// already taken with the same key (a retried send enqueues twice).
    pub fn key(&self) -> String {
        let base = format!("{}.{}.{}", self.chat.simple(), self.seq, self.user.simple());
        match &self.device {
            Some(d) => format!("{base}.{d}"),
            None => base,
        }
    }

    /// The same job for one device.
    pub fn for_device(&self, device_id: &str) -> Self {
        Self {
            device: Some(device_id.to_owned()),
            ..self.clone()
        }
    }
}

/// What a notification for `content` says; `None` for what deserves none
/// (membership changes).
pub fn preview(content: &Content) -> Option<String> {
    let (label, caption) = match content {
        Content::Text { body } => return Some(truncate(body)),
        Content::System { .. } => return None,
        Content::Image(a) => ("📷 Photo", &a.caption),
        Content::Video(a) => ("🎥 Video", &a.caption),
        Content::Audio(a) => ("🎤 Audio", &a.caption),
        Content::File(a) => (a.facts.name.as_deref().unwrap_or("📄 File"), &a.caption),
    };
    Some(if caption.is_empty() {
        truncate(label)
    } else {
        truncate(&format!("{label}: {caption}"))
    })
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The jobs for `msg`: one per member of `audience` other than the sender
/// for whom `online` is false.
pub fn jobs_for(
    msg: &Message,
    audience: &[UserId],
    online: impl Fn(UserId) -> bool,
) -> Vec<PushJob> {
    let Some(preview) = preview(&msg.content) else {
        return Vec::new();
    };
    audience
        .iter()
        .filter(|u| **u != msg.sender && !online(**u))
        .map(|&user| PushJob {
            user,
            chat: msg.chat_id,
            seq: msg.seq,
            sender: msg.sender,
            preview: preview.clone(),
            sent_at: msg.sent_at,
            device: None,
        })
        .collect()
}

/// Most devices one user may register.
pub const MAX_DEVICES: usize = 10;
/// Longest device id and push token.
pub const MAX_DEVICE_ID: usize = 64;
pub const MAX_TOKEN: usize = 4096;

/// Which devices may register: the platforms this deployment has credentials
/// for, and how webhook endpoints are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePolicy {
    pub platforms: Vec<Platform>,
    pub allow_http_webhooks: bool,
}

impl DevicePolicy {
    pub fn from_config(c: &confab_api::config::PushConfig) -> Self {
        let mut platforms = Vec::new();
        if c.fcm_credentials_file.is_some() {
            platforms.push(Platform::Fcm);
        }
        if c.apns.is_some() {
            platforms.push(Platform::Apns);
        }
        if c.webhooks {
            platforms.push(Platform::Webhook);
        }
        Self {
            platforms,
            allow_http_webhooks: c.allow_http_webhooks,
        }
    }

    /// Why `device` may not register, if it may not.
    pub fn check(&self, device: &Device) -> Result<(), String> {
        let id = &device.device_id;
        let id_ok = !id.is_empty()
            && id.len() <= MAX_DEVICE_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            return Err(format!(
                "a device id is 1 to {MAX_DEVICE_ID} letters, digits, '-', '_' or '.'"
            ));
        }
        if !self.platforms.contains(&device.platform) {
            return Err(format!(
                "this server sends no {} notifications",
                device.platform.as_str()
            ));
        }
        let token = &device.token;
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Err(format!("a push token has 1 to {MAX_TOKEN} bytes"));
        }
        match device.platform {
            Platform::Webhook => {
                providers::webhook::check_endpoint(token, self.allow_http_webhooks).map(|_| ())
            }
            Platform::Apns if !token.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Err("an APNs device token is hexadecimal".into())
            }
            Platform::Fcm if token.bytes().any(|b| b.is_ascii_whitespace()) => {
                Err("an FCM token has no spaces".into())
            }
            _ => Ok(()),
        }
    }
}

/// What a provider delivers to a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "PushNotification")]
pub struct Notification {
    /// The sender's name; in groups "name @ group".
    pub title: String,
    pub body: String,
    pub chat_id: ChatId,
    pub seq: Seq,
    pub sent_at: i64,
}

impl Notification {
    /// The notification for `job`, from `sender` in a chat titled `group`
    /// (`None` for 1:1 chats).
    pub fn new(job: &PushJob, sender: &str, group: Option<&str>) -> Self {
        let title = match group {
            Some(g) if !g.is_empty() => format!("{sender} @ {g}"),
            _ => sender.to_owned(),
        };
        Self {
            title,
            body: job.preview.clone(),
            chat_id: job.chat,
            seq: job.seq,
            sent_at: job.sent_at,
        }
    }
}

#[cfg(test)]
mod tests;
