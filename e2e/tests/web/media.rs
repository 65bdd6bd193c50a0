//! Media in the web client: a photo and a file go from Alice's page to Bob's,
//! and the server's typed upload errors reach the user.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat_runtime::media::fixtures;
use chat_runtime::standalone;

use crate::App;
use crate::browser::Browser;

/// Writes `bytes` to `name` in `dir`; returns the file's path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn photo_and_file_reach_the_contact() {
    let app = App::start().await;
    let files = tempfile::tempdir().unwrap();
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15556660001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15556660002", "Bob").await;
    a.start_direct("+15556660002").await;
    a.send("look at this").await;
    b.open_chat("Alice").await;
    b.wait_messages(&["look at this"]).await;

    // A photo with a caption: Bob sees the thumbnail (a preview, not the
    // 640×480 original) and the caption, and the full image on click.
    let photo = write(files.path(), "pier.png", &fixtures::png(640, 480));
    a.type_text("Sunset at the pier").await;
    a.attach(&photo).await;
    let (w, h) = b.wait_photo("Sunset at the pier").await;
    assert!(
        w <= 320 && h <= 320,
        "a thumbnail of at most 320 px, got {w}×{h}"
    );
    assert!(w * 3 == h * 4, "the thumbnail keeps 4:3, got {w}×{h}");
    b.wait_chat_listed("Alice", "📷 Photo").await;
    assert_eq!(b.open_last_photo().await, (640, 480));
    a.wait_photo("Sunset at the pier").await;
    a.wait_tick(2, "read").await;

    // A file: Bob gets a download link with its name and size, and the link
    // works without a token (it is signed).
    let notes = b"agenda: ropes, chalk, snacks\n";
    let file = write(files.path(), "notes.txt", notes);
    a.attach(&file).await;
    let href = b.wait_file("notes.txt", "29 B").await;
    b.wait_chat_listed("Alice", "📄 notes.txt").await;
    let got = reqwest::get(format!("{}{href}", app.url)).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], notes);
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_errors_are_shown() {
    let app = App::start_with(|c| {
        c.media = vec![standalone::local_bucket(&c.data_dir, 64 * 1024)];
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let alice = Browser::open("alice").await;
    let a = alice.page(&app.url).await;
    a.register("+15557770001", "Alice").await;
    let bob = Browser::open("bob").await;
    let b = bob.page(&app.url).await;
    b.register("+15557770002", "Bob").await;
    a.start_direct("+15557770002").await;

    // Named .png, so the browser declares a photo; the bytes are text.
    let fake = write(files.path(), "fake.png", b"this is not a picture");
    a.attach(&fake).await;
    a.wait_error("“fake.png” cannot be sent as a photo").await;

    let big = write(files.path(), "big.bin", &vec![7u8; 200 * 1024]);
    a.attach(&big).await;
    a.wait_error("“big.bin” (200 KB) is too large to send")
        .await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_media_is_no_longer_available() {
    // WhatsApp-style retention: the object goes once every recipient has it.
    let app = App::start_with(|c| {
        let mut bucket = standalone::local_bucket(&c.data_dir, standalone::DEFAULT_MAX_MEDIA_BYTES);
        bucket.delete_after_download = true;
        c.media = vec![bucket];
        c.sweep_every = Duration::from_millis(200);
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let alice = Browser::open("alice").await;
    let bob = Browser::open("bob").await;
    let a = alice.page(&app.url).await;
    a.register("+15558880001", "Alice").await;
    let b = bob.page(&app.url).await;
    b.register("+15558880002", "Bob").await;
    a.start_direct("+15558880002").await;
    a.send("the tickets").await;
    b.open_chat("Alice").await;
    let file = write(files.path(), "tickets.txt", b"row 7, seats 12-13\n");
    a.attach(&file).await;
    let href = b.wait_file("tickets.txt", "19 B").await;

    // Bob downloads it; the sweeper then deletes it.
    let url = format!("{}{href}", app.url);
    // Reading the body is the download: a response dropped after its
    // headers fetched nothing.
    let got = reqwest::get(&url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"row 7, seats 12-13\n");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.head(&url).send().await.unwrap().status() != 410 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the media was not deleted after its download"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bob's page, loaded afresh, says so instead of offering a dead link.
    b.leave().await;
    let b = bob.page(&app.url).await;
    b.open_chat("Alice").await;
    b.wait_media_unavailable("Media no longer available").await;
    alice.close().await;
    bob.close().await;
}
