use uuid::Uuid;

use super::*;
use crate::model::{Attachment, MediaFacts, SystemEvent};

fn message(content: Content) -> Message {
    Message {
        chat_id: Uuid::new_v4(),
        seq: 7,
        sender: Uuid::new_v4(),
        client_msg_id: "c1".into(),
        content,
        sent_at: 1_000,
    }
}

fn attachment(name: Option<&str>, caption: &str) -> Attachment {
    Attachment {
        media_id: "ab".into(),
        facts: MediaFacts {
            content_type: "image/png".into(),
            size: 10,
            width: None,
            height: None,
            blurhash: None,
            thumbnail: false,
            name: name.map(str::to_owned),
        },
        caption: caption.into(),
    }
}

#[test]
fn previews_say_what_arrived_and_membership_changes_push_nothing() {
    let text = Content::Text { body: "hi".into() };
    assert_eq!(preview(&text).as_deref(), Some("hi"));
    let photo = Content::Image(attachment(None, "beach"));
    assert_eq!(preview(&photo).as_deref(), Some("📷 Photo: beach"));
    let file = Content::File(attachment(Some("report.pdf"), ""));
    assert_eq!(preview(&file).as_deref(), Some("report.pdf"));
    let joined = Content::system(SystemEvent::Joined, Uuid::new_v4());
    assert_eq!(preview(&joined), None);
}

#[test]
fn long_text_is_cut_on_a_character_boundary() {
    let body = "é".repeat(PREVIEW_CHARS + 5);
    let p = preview(&Content::Text { body }).unwrap();
    assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
    assert!(p.ends_with('…'));
}

#[test]
fn jobs_go_to_offline_recipients_only_never_the_sender() {
    let msg = message(Content::Text { body: "hi".into() });
    let (online, offline) = (Uuid::new_v4(), Uuid::new_v4());
    let audience = [msg.sender, online, offline];
    let jobs = jobs_for(&msg, &audience, |u| u == online);
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].user, jobs[0].seq), (offline, 7));
    assert_eq!(jobs[0].device, None);
    // Even when the sender looks offline (a REST send), they get no push.
    assert_eq!(jobs_for(&msg, &audience, |_| false).len(), 2);
}

#[test]
fn keys_tell_devices_and_messages_apart() {
    let msg = message(Content::Text { body: "hi".into() });
    let job = jobs_for(&msg, &[Uuid::new_v4()], |_| false).remove(0);
    let phone = job.for_device("phone");
    assert_ne!(job.key(), phone.key());
    assert_eq!(phone.key(), job.for_device("phone").key());
    assert_ne!(phone.key(), job.for_device("tablet").key());
    let next = PushJob {
        seq: 8,
        ..job.clone()
    };
    assert_ne!(job.key(), next.key());
}

#[test]
fn group_notifications_name_the_group() {
    let msg = message(Content::Text { body: "hi".into() });
    let job = jobs_for(&msg, &[Uuid::new_v4()], |_| false).remove(0);
    assert_eq!(Notification::new(&job, "Ann", None).title, "Ann");
    assert_eq!(
        Notification::new(&job, "Ann", Some("Team")).title,
        "Ann @ Team"
    );
}

#[test]
fn devices_register_only_for_configured_platforms_with_sane_tokens() {
    use crate::model::{Device, Platform};
    let policy = DevicePolicy {
        platforms: vec![Platform::Apns, Platform::Webhook],
        allow_http_webhooks: false,
    };
    let device = |id: &str, platform, token: &str| Device {
        device_id: id.into(),
        platform,
        token: token.into(),
    };
    assert!(
        policy
            .check(&device("phone-1", Platform::Apns, "a0b1"))
            .is_ok()
    );
    let https = device("laptop", Platform::Webhook, "https://up.example/x");
    assert!(policy.check(&https).is_ok());
    let refused = [
        device("phone", Platform::Fcm, "tok"),
        device("", Platform::Apns, "a0"),
        device("a/b", Platform::Apns, "a0"),
        device(&"x".repeat(65), Platform::Apns, "a0"),
        device("phone", Platform::Apns, "not hex"),
        device("phone", Platform::Apns, ""),
        device("laptop", Platform::Webhook, "http://up.example/x"),
    ];
    for d in refused {
        assert!(policy.check(&d).is_err(), "{d:?} must be refused");
    }
    let open = DevicePolicy {
        allow_http_webhooks: true,
        ..policy
    };
    assert!(
        open.check(&device("laptop", Platform::Webhook, "http://127.0.0.1:1/x"))
            .is_ok()
    );
}
