//! The web client in real headless Chromium against a real standalone server.
//!
//! Needs `e2e/scripts/chromium.sh start` (ChromeDriver); run through
//! `e2e/scripts/test-all.sh`. Each browser session is a separate profile, so
//! two sessions are two users (or two devices).

mod browser;
mod media;

use std::time::Duration;

use browser::Browser;
use chat_runtime::standalone;

/// A standalone server on port 0 for one test.
struct App {
    url: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl App {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose configuration `tune` adjusts first.
    async fn start_with(tune: impl FnOnce(&mut standalone::Config)) -> Self {
        chat_runtime::install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut config = standalone::Config {
            token_ttl_secs: 3600,
            ..standalone::Config::new(dir.path().to_path_buf())
        };
        tune(&mut config);
        tokio::spawn(async move {
            standalone::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            _dir: dir,
            stop: Some(stop),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ticks_go_sent_delivered_read() {
    let app = App::start().await;
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15551110001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15551110002", "Bob").await;
    b.leave().await; // Bob closes the page.

    a.start_direct("+15551110002").await;
    a.send("hello bob").await;
    a.wait_tick(1, "sent").await;

    let b = bob.page(&app.url).await; // Bob comes back: resume delivers it.
    b.wait_chat_listed("Alice", "hello bob").await;
    a.wait_tick(1, "delivered").await;
    b.open_chat("Alice").await;
    b.wait_messages(&["hello bob"]).await;
    a.wait_tick(1, "read").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_contact_gets_all_twenty_once_in_order() {
    let app = App::start().await;
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15552220001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15552220002", "Bob").await;
    a.start_direct("+15552220002").await;
    a.send("before").await;
    b.open_chat("Alice").await;
    b.wait_messages(&["before"]).await;
    b.leave().await;

    let texts: Vec<String> = (1..=20).map(|i| format!("message {i}")).collect();
    for t in &texts {
        a.send(t).await;
    }
    a.wait_tick(21, "sent").await;

    let b = bob.page(&app.url).await;
    b.open_chat("Alice").await;
    let mut expected = vec!["before".to_owned()];
    expected.extend(texts);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    b.wait_messages(&expected).await;
    // Nothing shown twice, even after a moment for stragglers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.message_texts().await, expected);
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_of_three_and_a_non_member() {
    let app = App::start().await;
    let browsers = [
        Browser::open("alice").await,
        Browser::open("bob").await,
        Browser::open("carol").await,
        Browser::open("dave").await,
    ];
    let names = ["Alice", "Bob", "Carol", "Dave"];
    let mut pages = Vec::new();
    for (i, br) in browsers.iter().enumerate() {
        let p = br.page(&app.url).await;
        p.register(&format!("+1555333000{i}"), names[i]).await;
        pages.push(p);
    }
    let group = pages[0]
        .create_group("Trip", &["+15553330001", "+15553330002"])
        .await;
    pages[0].send("who's in?").await;
    for p in &pages[1..3] {
        p.open_chat("Trip").await;
        // The `created` message names the title and who it was made with.
        p.wait_messages(&[
            "Alice created \u{201c}Trip\u{201d} with Bob, Carol",
            "who's in?",
        ])
        .await;
    }
    pages[1].send("me!").await;
    for p in &pages[0..3] {
        p.wait_last_message("me!").await;
    }
    // A member change appears for everyone still in the group, and for Carol.
    pages[0].remove_member("Carol").await;
    for p in &pages[0..3] {
        p.wait_last_message("Alice removed Carol").await;
    }
    // Dave is not a member: the chat does not open for him.
    pages[3].open_by_id(&group).await;
    pages[3]
        .wait_error("you are not a member of this chat")
        .await;
    for b in browsers {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_indicator_and_last_seen() {
    let app = App::start().await;
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15554440001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15554440002", "Bob").await;
    a.start_direct("+15554440002").await;
    a.send("hi").await;
    b.open_chat("Alice").await;
    a.wait_status("online").await;
    b.type_text("typing something").await;
    a.wait_status("typing…").await;
    b.leave().await;
    a.wait_status("last seen").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_at_phone_and_desktop_widths() {
    let app = App::start().await;
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15555550001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15555550002", "Bob").await;
    a.start_direct("+15555550002").await;
    for t in [
        "Hi Bob! Are we still on for climbing tonight?",
        "The gym opens at 6.",
    ] {
        a.send(t).await;
    }
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("route.png");
    std::fs::write(&photo, chat_runtime::media::fixtures::png(480, 320)).unwrap();
    a.type_text("The new route").await;
    a.attach(&photo).await;
    b.open_chat("Alice").await;
    b.wait_messages(&[
        "Hi Bob! Are we still on for climbing tonight?",
        "The gym opens at 6.",
        "The new route",
    ])
    .await;
    b.wait_photo("The new route").await;
    b.send("Yes! See you there at 6").await;
    a.wait_last_message("Yes! See you there at 6").await;
    a.wait_tick(3, "read").await;
    let dir = std::path::Path::new(&confab_e2e::service_env("CONFAB_RUN")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, w, h) in [("desktop", 1280, 800), ("phone", 390, 844)] {
        alice.resize(w, h).await;
        a.open_chat("Bob").await;
        a.wait_last_message("Yes! See you there at 6").await;
        alice
            .screenshot(&dir.join(format!("chat-{name}.png")))
            .await;
        a.back_to_list().await;
        alice
            .screenshot(&dir.join(format!("list-{name}.png")))
            .await;
    }
    alice.close().await;
    bob.close().await;
}
