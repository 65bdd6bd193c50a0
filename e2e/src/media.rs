//! Media scenarios, run against every bucket backend (a local folder, and an
//! S3-compatible server): a real standalone server on port 0, real HTTP, and
//! a look into the bucket itself through `object_store` to check what was
//! (and was not) left behind.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chat_runtime::media::buckets;
use chat_runtime::media::fixtures;
use chat_runtime::standalone;
use confab_api::config::BucketConfig;
use futures::TryStreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, User};
use crate::eventually;

/// Makes buckets for scenarios; every call returns a bucket no other
/// scenario uses.
pub trait Backend: Sync {
    fn bucket(
        &self,
        max_bytes: u64,
        retention_days: Option<u32>,
        after_download: bool,
    ) -> BucketConfig;
    /// What an interrupted upload may have left in the backend's own storage
    /// (multipart parts, staging files) for `bucket`.
    fn leftovers(&self, bucket: &BucketConfig) -> Result<Vec<String>>;
}

/// Every file under `dir` whose name passes `keep`, recursively.
pub fn files_under(dir: &std::path::Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            out.extend(files_under(&path, keep)?);
        } else if keep(&entry.file_name().to_string_lossy()) {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

/// Filesystem buckets under one temporary folder.
pub struct LocalFolders {
    root: tempfile::TempDir,
}

impl LocalFolders {
    pub fn new() -> Result<Self> {
        Ok(Self {
            root: tempfile::tempdir()?,
        })
    }
}

impl Backend for LocalFolders {
    fn leftovers(&self, bucket: &BucketConfig) -> Result<Vec<String>> {
        let dir = bucket.credentials_dir.as_deref().context("folder")?;
        files_under(&std::path::Path::new(dir).join(buckets::UPLOADS), &|_| true)
    }

    fn bucket(&self, max: u64, days: Option<u32>, after_download: bool) -> BucketConfig {
        let id = Uuid::new_v4().simple().to_string();
        let dir = self.root.path().join(&id);
        BucketConfig {
            name: format!("local-{}", &id[..8]),
            credentials_dir: Some(dir.to_string_lossy().into_owned()),
            retention_days: days,
            delete_after_download: after_download,
            ..standalone::local_bucket(self.root.path(), max)
        }
    }
}

/// How long to wait for an eventual outcome (a sweep) before failing.
const WAIT: Duration = Duration::from_secs(15);

/// A standalone server with the given buckets; its REST calls through
/// [`Api`].
pub struct App {
    api: Api,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for App {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl App {
    /// Serves `data_dir` with `buckets`, sweeping retention every 100 ms.
    pub async fn start(data_dir: &std::path::Path, buckets: Vec<BucketConfig>) -> Result<Self> {
        Self::serve(standalone::Config {
            media: buckets,
            sweep_every: Duration::from_millis(100),
            ..standalone::Config::new(data_dir.to_path_buf())
        })
        .await
    }

    /// Serves `config` on a free loopback port.
    pub async fn serve(config: standalone::Config) -> Result<Self> {
        crate::install_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = standalone::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await;
            served.expect("standalone server failed");
        });
        Ok(Self {
            api: Api::new(url),
            stop: Some(stop),
            task,
        })
    }

    /// Graceful shutdown; waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }
}

/// The media calls of the REST API.
impl Api {
    /// `POST /v1/media` with `body` as `content_type`.
    pub async fn upload(
        &self,
        u: &User,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<(u16, Value)> {
        let req = self
            .http
            .post(format!("{}/v1/media?name=report.bin", self.url))
            .bearer_auth(&u.token)
            .header("content-type", content_type)
            .body(body);
        self.json(req).await
    }

    /// Uploads `bytes` and returns the media id.
    pub async fn uploaded(&self, u: &User, content_type: &str, bytes: Vec<u8>) -> Result<String> {
        let (s, b) = self.upload(u, content_type, bytes).await?;
        ensure!(s == 201, "upload: {s} {b}");
        Ok(b["media_id"].as_str().context("media_id")?.to_owned())
    }

    /// Sends a media message through REST; returns (status, body).
    pub async fn send_media(
        &self,
        u: &User,
        chat: Uuid,
        kind: &str,
        media_id: &str,
    ) -> Result<(u16, Value)> {
        let body = json!({"client_msg_id": Uuid::new_v4().to_string(), "kind": kind,
                          "media_id": media_id, "body": "look at this"});
        self.post(&format!("/v1/chats/{chat}/messages"), &u.token, body)
            .await
    }

    /// The newest message of `chat` as `u` sees it.
    pub async fn last_message(&self, u: &User, chat: Uuid) -> Result<Value> {
        let resp = self
            .get(
                &format!("/v1/chats/{chat}/messages?limit=1"),
                Some(&u.token),
                &[],
            )
            .await?;
        let b: Value = resp.json().await?;
        Ok(b["messages"][0].clone())
    }
}

/// Names of the objects under `prefix` in `bucket`.
pub async fn objects(bucket: &BucketConfig, prefix: &str) -> Result<Vec<String>> {
    crate::install_crypto();
    let b = buckets::open(bucket)?;
    let prefix = object_store::path::Path::from(prefix);
    let metas: Vec<_> = b.store.list(Some(&prefix)).try_collect().await?;
    Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
}

/// Fails when `bucket` holds any object under one of `prefixes`.
async fn nothing_under(bucket: &BucketConfig, prefixes: &[&str]) -> Result<()> {
    for prefix in prefixes {
        let left = objects(bucket, prefix).await?;
        ensure!(left.is_empty(), "left behind under {prefix}: {left:?}");
    }
    Ok(())
}

fn code(b: &Value) -> &str {
    b["code"].as_str().unwrap_or("")
}

/// Random bytes that no sniffer recognizes, `n` long.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    out[0] = b'#'; // never a magic number
    out.truncate(n);
    out
}

/// A PNG unique to this call.
pub fn unique_png() -> Vec<u8> {
    let side = 200 + (Uuid::new_v4().as_u128() % 400) as u32;
    fixtures::png(side, side / 2 + 1)
}

/// Upload → image message → the recipient downloads it whole and in ranges,
/// with the right headers, and fetches its thumbnail.
pub async fn photo_round_trip(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), vec![backend.bucket(8 << 20, None, false)]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let png = fixtures::png(640, 480);
    let (s, up) = app.upload(&alice, "image/png", png.clone()).await?;
    ensure!(s == 201, "upload: {s} {up}");
    ensure!(
        up["kind"] == "image" && up["content_type"] == "image/png",
        "{up}"
    );
    ensure!(
        up["width"] == 640 && up["height"] == 480 && up["thumbnail"] == true,
        "{up}"
    );
    ensure!(up["blurhash"].as_str().is_some_and(|h| h.len() > 6), "{up}");
    let id = up["media_id"].as_str().context("media_id")?.to_owned();
    let (s, sent) = app.send_media(&alice, chat, "image", &id).await?;
    ensure!(s == 201, "send: {s} {sent}");

    let m = app.last_message(&bob, chat).await?;
    ensure!(m["kind"] == "image" && m["media_id"] == id.as_str(), "{m}");
    ensure!(
        m["size"] == png.len() && m["width"] == 640 && m["caption"] == "look at this",
        "{m}"
    );

    let path = format!("/v1/media/{id}");
    let full = app.get(&path, Some(&bob.token), &[]).await?;
    ensure!(full.status() == 200, "download: {}", full.status());
    let h = full.headers().clone();
    ensure!(h["content-type"] == "image/png" && h["accept-ranges"] == "bytes");
    ensure!(h["content-length"] == png.len().to_string().as_str());
    let etag = h["etag"].to_str()?.to_owned();
    ensure!(etag == format!("\"{id}\""), "etag {etag}");
    ensure!(
        full.bytes().await?.as_ref() == png.as_slice(),
        "downloaded bytes differ"
    );

    let part = app
        .get(&path, Some(&bob.token), &[("range", "bytes=100-199")])
        .await?;
    ensure!(part.status() == 206, "range: {}", part.status());
    let cr = part.headers()["content-range"].to_str()?.to_owned();
    ensure!(cr == format!("bytes 100-199/{}", png.len()), "{cr}");
    ensure!(part.bytes().await?.as_ref() == &png[100..200]);
    let tail = app
        .get(&path, Some(&bob.token), &[("range", "bytes=-10")])
        .await?;
    ensure!(tail.status() == 206 && tail.bytes().await?.as_ref() == &png[png.len() - 10..]);
    let beyond = format!("bytes={}-", png.len() + 5);
    let bad = app
        .get(&path, Some(&bob.token), &[("range", &beyond)])
        .await?;
    ensure!(bad.status() == 416, "unsatisfiable range: {}", bad.status());
    ensure!(bad.headers()["content-range"] == format!("bytes */{}", png.len()).as_str());
    let cached = app
        .get(&path, Some(&bob.token), &[("if-none-match", &etag)])
        .await?;
    ensure!(cached.status() == 304, "if-none-match: {}", cached.status());

    let thumb = app
        .get(&format!("{path}/thumbnail"), Some(&bob.token), &[])
        .await?;
    ensure!(thumb.status() == 200 && thumb.headers()["content-type"] == "image/jpeg");
    let img = image::load_from_memory(&thumb.bytes().await?)?;
    ensure!(
        (img.width(), img.height()) == (320, 240),
        "thumbnail {}x{}",
        img.width(),
        img.height()
    );
    app.stop().await;
    Ok(())
}

/// The same bytes uploaded by two users are stored once; nothing is left in
/// the uploads area.
pub async fn duplicate_stored_once(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(8 << 20, None, false);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let bytes = random_bytes(300_000);
    let (s, first) = app
        .upload(&alice, "application/octet-stream", bytes.clone())
        .await?;
    ensure!(s == 201 && first["duplicate"] == false, "{s} {first}");
    let (s, second) = app
        .upload(&bob, "application/octet-stream", bytes.clone())
        .await?;
    ensure!(s == 201 && second["duplicate"] == true, "{s} {second}");
    ensure!(first["media_id"] == second["media_id"]);
    ensure!(first["kind"] == "file" && first["content_type"] == "application/octet-stream");
    let stored = objects(&bucket, "media").await?;
    ensure!(stored.len() == 1, "stored objects: {stored:?}");
    let leftovers = objects(&bucket, buckets::UPLOADS).await?;
    ensure!(leftovers.is_empty(), "uploads left behind: {leftovers:?}");
    // Bob proved he holds the bytes, so he may read and share them.
    let id = second["media_id"].as_str().context("id")?;
    let got = app
        .get(&format!("/v1/media/{id}"), Some(&bob.token), &[])
        .await?;
    ensure!(got.status() == 200, "uploader download: {}", got.status());
    ensure!(got.headers()["content-disposition"] == "attachment; filename=\"report.bin\"");
    app.stop().await;
    Ok(())
}

/// A page uploaded as a file is served as opaque bytes under a sandbox
/// policy: opening its link runs no script on the server's origin.
pub async fn active_content_served_inert(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), vec![backend.bucket(8 << 20, None, false)]).await?;
    let alice = app.user("alice").await?;
    let page = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let (s, up) = app.upload(&alice, "text/html", page.to_vec()).await?;
    ensure!(s == 201 && up["kind"] == "file", "{s} {up}");
    ensure!(up["content_type"] == "text/html", "sniffed as a page: {up}");
    let id = up["media_id"].as_str().context("id")?;
    let got = app
        .get(&format!("/v1/media/{id}"), Some(&alice.token), &[])
        .await?;
    ensure!(got.status() == 200, "download: {}", got.status());
    let headers = got.headers();
    ensure!(
        headers["content-type"] == "application/octet-stream",
        "{headers:?}"
    );
    ensure!(
        headers["content-security-policy"] == "sandbox",
        "{headers:?}"
    );
    ensure!(headers["referrer-policy"] == "no-referrer", "{headers:?}");
    ensure!(
        headers["x-content-type-options"] == "nosniff",
        "{headers:?}"
    );
    app.stop().await;
    Ok(())
}

/// `n` bytes of "video" (an MP4 signature, then random bytes) in 64 KiB
/// chunks, streamed with chunked transfer encoding (no Content-Length).
fn streamed_video(n: usize) -> (reqwest::Body, Vec<u8>) {
    let mut bytes = random_bytes(n);
    bytes[..12].copy_from_slice(b"\x00\x00\x00\x18ftypmp42");
    let chunks: Vec<_> = bytes
        .chunks(64 << 10)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    (body, bytes)
}

/// A video larger than one multipart part streams through in parts and
/// comes back byte for byte.
pub async fn large_upload_in_parts(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(32 << 20, None, false);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let (body, bytes) = streamed_video(12 << 20);
    let (s, up) = app.upload(&alice, "video/mp4", body).await?;
    ensure!(
        s == 201 && up["kind"] == "video" && up["size"] == bytes.len(),
        "{s} {up}"
    );
    let id = up["media_id"].as_str().context("media_id")?.to_owned();
    let (s, b) = app.send_media(&alice, chat, "video", &id).await?;
    ensure!(s == 201, "send: {s} {b}");
    let got = app
        .get(&format!("/v1/media/{id}"), Some(&bob.token), &[])
        .await?;
    ensure!(got.status() == 200 && got.headers()["content-type"] == "video/mp4");
    ensure!(
        got.bytes().await?.as_ref() == bytes.as_slice(),
        "video bytes differ"
    );
    let left = backend.leftovers(&bucket)?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    app.stop().await;
    Ok(())
}

/// An upload over the bucket's limit is cut off while streaming — after a
/// multipart part was already sent — and leaves nothing behind; with a
/// Content-Length it is refused before any byte is read.
pub async fn oversize_rejected_mid_stream(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(7 << 20, None, false);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let alice = app.user("alice").await?;
    let (body, _) = streamed_video(12 << 20);
    // The server answers 413 and stops reading; the client may see the
    // answer or a connection closed under it. Either way the metrics below
    // must show the refusal was for size.
    if let Ok((s, b)) = app.upload(&alice, "video/mp4", body).await {
        ensure!(s == 413 && code(&b) == "too_large", "oversize: {s} {b}");
    }
    let (s, b) = app.upload(&alice, "video/mp4", vec![0u8; 8 << 20]).await?;
    ensure!(s == 413 && code(&b) == "too_large", "with length: {s} {b}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    nothing_under(&bucket, &["media", buckets::UPLOADS]).await?;
    let parts = backend.leftovers(&bucket)?;
    ensure!(parts.is_empty(), "upload parts left behind: {parts:?}");
    let metrics = app.get("/metrics", None, &[]).await?.text().await?;
    let line = "confab_media_upload_rejects_total{reason=\"too_large\"} 2";
    ensure!(
        metrics.lines().any(|l| l == line),
        "expected {line} in {metrics}"
    );
    app.stop().await;
    Ok(())
}

/// A zip archive's magic bytes and `n` random bytes: a **file** upload.
fn zip(n: usize) -> Vec<u8> {
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.extend(random_bytes(n));
    zip
}

/// A new upload goes to the first bucket that takes its kind (photos to one,
/// everything else to another); an upload of a kind no bucket takes is
/// refused, leaving nothing behind.
pub async fn uploads_go_to_the_bucket_of_their_kind(backend: &dyn Backend) -> Result<()> {
    let photos_only = |b: BucketConfig| BucketConfig {
        kinds: vec!["image".into()],
        ..b
    };
    let dir = tempfile::tempdir()?;
    let photos = photos_only(backend.bucket(8 << 20, None, false));
    let rest = backend.bucket(8 << 20, None, false);
    let app = App::start(dir.path(), vec![photos.clone(), rest.clone()]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let photo = app.uploaded(&alice, "image/png", unique_png()).await?;
    let file = app.uploaded(&alice, "application/zip", zip(10_000)).await?;
    let held = |ids: &[&String]| {
        ids.iter()
            .map(|id| format!("media/{id}"))
            .collect::<Vec<_>>()
    };
    ensure!(
        objects(&photos, "media").await? == held(&[&photo]),
        "the photo bucket"
    );
    ensure!(
        objects(&rest, "media").await? == held(&[&file]),
        "the other bucket"
    );
    // Both are served from where they are.
    for (id, kind) in [(&photo, "image"), (&file, "file")] {
        let (s, b) = app.send_media(&alice, chat, kind, id).await?;
        ensure!(s == 201, "send {kind}: {s} {b}");
        let got = app
            .get(&format!("/v1/media/{id}"), Some(&bob.token), &[])
            .await?;
        ensure!(got.status() == 200, "download {kind}: {}", got.status());
    }
    app.stop().await;

    let dir = tempfile::tempdir()?;
    let only = photos_only(backend.bucket(8 << 20, None, false));
    let app = App::start(dir.path(), vec![only.clone()]).await?;
    let alice = app.user("alice").await?;
    let (s, b) = app.upload(&alice, "application/zip", zip(10_000)).await?;
    ensure!(
        s == 415 && code(&b) == "unsupported_media_type",
        "a file with only a photo bucket: {s} {b}"
    );
    nothing_under(&only, &["media", buckets::UPLOADS]).await?;
    app.stop().await;
    Ok(())
}

/// A header that lies about the bytes is refused, and nothing is stored.
pub async fn lying_header_rejected(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(8 << 20, None, false);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let alice = app.user("alice").await?;
    let (s, b) = app.upload(&alice, "image/png", zip(50_000)).await?;
    ensure!(
        s == 415 && code(&b) == "unsupported_media_type",
        "zip as png: {s} {b}"
    );
    // Magic bytes of a PNG but not an image: refused when decoding.
    let mut fake = unique_png();
    fake.truncate(fake.len() / 3);
    let (s, b) = app.upload(&alice, "image/png", fake).await?;
    ensure!(
        s == 415 && code(&b) == "unsupported_media_type",
        "broken png: {s} {b}"
    );
    let (s, b) = app.upload(&alice, "image/png", Vec::new()).await?;
    ensure!(s == 400 && code(&b) == "invalid", "empty: {s} {b}");
    nothing_under(&bucket, &["media", "thumbs", buckets::UPLOADS]).await?;
    app.stop().await;
    Ok(())
}

/// Only uploaders and members of a chat where the media was shared may read
/// or share it; tokens are required.
pub async fn non_member_denied(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), vec![backend.bucket(8 << 20, None, false)]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let (carol, dave) = (app.user("carol").await?, app.user("dave").await?);
    let chat = app.direct(&alice, &bob).await?;
    let id = app.uploaded(&alice, "image/png", unique_png()).await?;
    let path = format!("/v1/media/{id}");
    // Not yet shared: even Bob may not read it.
    let early = app.get(&path, Some(&bob.token), &[]).await?;
    ensure!(early.status() == 404, "before sharing: {}", early.status());
    let (s, b) = app.send_media(&alice, chat, "image", &id).await?;
    ensure!(s == 201, "send: {s} {b}");
    ensure!(app.get(&path, Some(&bob.token), &[]).await?.status() == 200);
    // A stranger learns nothing: the answer is that of an id that does not
    // exist.
    let denied = app.get(&path, Some(&carol.token), &[]).await?;
    ensure!(denied.status() == 404, "stranger: {}", denied.status());
    let b: Value = denied.json().await?;
    let missing = format!("/v1/media/{}", "0".repeat(64));
    let absent: Value = app
        .get(&missing, Some(&carol.token), &[])
        .await?
        .json()
        .await?;
    ensure!(b == absent, "stranger {b} vs absent {absent}");
    let (s, b) = app
        .post(&format!("{path}/link"), &carol.token, json!({}))
        .await?;
    ensure!(
        s == 404 && code(&b) == "not_found",
        "stranger's link: {s} {b}"
    );
    // Carol cannot forward what she cannot read (nor tell that it exists).
    let other = app.direct(&carol, &dave).await?;
    let (s, b) = app.send_media(&carol, other, "image", &id).await?;
    ensure!(
        s == 404 && code(&b) == "not_found",
        "forward by stranger: {s} {b}"
    );
    // Alice cannot share into a chat she is not in.
    let (s, b) = app.send_media(&alice, other, "image", &id).await?;
    ensure!(
        s == 403 && code(&b) == "not_member",
        "share into a foreign chat: {s} {b}"
    );
    // A media message must be of the upload's kind (or a file).
    let (s, b) = app.send_media(&alice, chat, "video", &id).await?;
    ensure!(s == 400 && code(&b) == "invalid", "kind mismatch: {s} {b}");
    let (s, b) = app.send_media(&alice, chat, "file", &id).await?;
    ensure!(s == 201, "as a document: {s} {b}");
    let anonymous = app.get(&path, None, &[]).await?;
    ensure!(
        anonymous.status() == 401,
        "no token: {}",
        anonymous.status()
    );
    let missing = format!("/v1/media/{}", "0".repeat(64));
    ensure!(app.get(&missing, Some(&bob.token), &[]).await?.status() == 404);
    app.stop().await;
    Ok(())
}

/// A signed link works without a token until it expires; a tampered one never.
pub async fn signed_link_expires(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), vec![backend.bucket(8 << 20, None, false)]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let bytes = random_bytes(20_000);
    let id = app
        .uploaded(&alice, "application/octet-stream", bytes.clone())
        .await?;
    let (s, b) = app.send_media(&alice, chat, "file", &id).await?;
    ensure!(s == 201, "send: {s} {b}");
    let (s, link) = app
        .post(&format!("/v1/media/{id}/link?ttl=2"), &bob.token, json!({}))
        .await?;
    ensure!(s == 200, "link: {s} {link}");
    let url = link["url"].as_str().context("url")?.to_owned();
    let got = app.get(&url, None, &[]).await?;
    ensure!(got.status() == 200, "signed download: {}", got.status());
    let cache = got.headers()["cache-control"].to_str()?.to_owned();
    ensure!(cache.starts_with("public, max-age="), "{cache}");
    ensure!(got.bytes().await?.as_ref() == bytes.as_slice());
    let tampered = url.replace("exp=", "exp=9");
    let forged = app.get(&tampered, None, &[]).await?;
    ensure!(forged.status() == 403, "tampered: {}", forged.status());
    let b: Value = forged.json().await?;
    ensure!(code(&b) == "forbidden", "{b}");
    let deadline = link["expires_at"].as_i64().context("expires_at")?;
    while chat_runtime::model::now_ms() / 1000 < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired = app.get(&url, None, &[]).await?;
    ensure!(expired.status() == 403, "expired: {}", expired.status());
    let b: Value = expired.json().await?;
    ensure!(code(&b) == "link_expired", "{b}");
    app.stop().await;
    Ok(())
}

/// Under delete-after-download the object stays until the last recipient
/// has downloaded it, then goes (and downloads answer `gone`).
pub async fn deleted_after_last_download(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(8 << 20, None, true);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    let chat = app.group(&alice, "media", &[&bob, &carol]).await?;
    let bytes = random_bytes(100_000);
    let id = app
        .uploaded(&alice, "application/octet-stream", bytes.clone())
        .await?;
    let (s, b) = app.send_media(&alice, chat, "file", &id).await?;
    ensure!(s == 201, "send: {s} {b}");
    let object = format!("media/{id}");
    let path = format!("/v1/media/{id}");
    // Bob fetches it in two ranges: only the one reaching the end counts.
    let head = app
        .get(&path, Some(&bob.token), &[("range", "bytes=0-999")])
        .await?;
    ensure!(head.status() == 206);
    let _ = head.bytes().await?;
    let rest = app
        .get(&path, Some(&bob.token), &[("range", "bytes=1000-")])
        .await?;
    ensure!(rest.status() == 206 && rest.bytes().await?.as_ref() == &bytes[1000..]);
    // Several sweeps run (every 100 ms); Carol has not downloaded it yet.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ensure!(
        objects(&bucket, "media").await?.contains(&object),
        "deleted too early"
    );
    ensure!(
        app.get(&path, Some(&carol.token), &[])
            .await?
            .bytes()
            .await?
            .len()
            == bytes.len()
    );
    eventually("deletion after the last download", WAIT, async || {
        Ok(!objects(&bucket, "media").await?.contains(&object))
    })
    .await?;
    let gone = app.get(&path, Some(&bob.token), &[]).await?;
    ensure!(gone.status() == 410, "after deletion: {}", gone.status());
    // The message stays in history, its attachment now unavailable.
    ensure!(app.last_message(&carol, chat).await?["media_id"] == id.as_str());
    app.stop().await;
    Ok(())
}

/// Expiry never deletes media whose message a recipient has not received.
pub async fn expiry_waits_for_delivery(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Zero days: due as soon as everyone has the message.
    let bucket = BucketConfig {
        retention_days: Some(0),
        ..backend.bucket(8 << 20, None, false)
    };
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let id = app
        .uploaded(&alice, "application/octet-stream", random_bytes(5000))
        .await?;
    let (s, sent) = app.send_media(&alice, chat, "file", &id).await?;
    ensure!(s == 201, "send: {s} {sent}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let object = format!("media/{id}");
    ensure!(
        objects(&bucket, "media").await?.contains(&object),
        "deleted before delivery"
    );
    let seq = sent["seq"].as_u64().context("seq")?;
    let (s, b) = app
        .post(
            &format!("/v1/chats/{chat}/receipts"),
            &bob.token,
            json!({"delivered": seq}),
        )
        .await?;
    ensure!(s == 200, "receipt: {s} {b}");
    eventually("expiry after delivery", WAIT, async || {
        Ok(!objects(&bucket, "media").await?.contains(&object))
    })
    .await
}

/// Everything survives a restart: the message, the object, its record.
pub async fn restart_keeps_everything(backend: &dyn Backend) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = backend.bucket(8 << 20, None, false);
    let app = App::start(dir.path(), vec![bucket.clone()]).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let chat = app.direct(&alice, &bob).await?;
    let png = unique_png();
    let id = app.uploaded(&alice, "image/png", png.clone()).await?;
    let (s, b) = app.send_media(&alice, chat, "image", &id).await?;
    ensure!(s == 201, "send: {s} {b}");
    app.stop().await;

    let app = App::start(dir.path(), vec![bucket]).await?;
    let m = app.last_message(&bob, chat).await?;
    ensure!(
        m["media_id"] == id.as_str() && m["thumbnail"] == true,
        "{m}"
    );
    let got = app
        .get(&format!("/v1/media/{id}"), Some(&bob.token), &[])
        .await?;
    ensure!(got.status() == 200 && got.bytes().await?.as_ref() == png.as_slice());
    let (s, again) = app.upload(&alice, "image/png", png).await?;
    ensure!(s == 201 && again["duplicate"] == true, "{s} {again}");
    app.stop().await;
    Ok(())
}
