//! A thin driver over ChromeDriver (fantoccini) that speaks in the web
//! client's terms: register, start a chat, send, wait for a tick.

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
}

pub struct Page<'a> {
    c: &'a Client,
}

impl Browser {
    /// A new headless Chromium with its own profile (its own user).
    pub async fn open(_who: &str) -> Self {
        let webdriver = confab_e2e::service_env("CONFAB_WEBDRIVER");
        let binary = confab_e2e::service_env("CONFAB_CHROMIUM");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--no-first-run",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("cannot start Chromium through {webdriver}: {e}"));
        Self {
            client,
            _profile: profile,
        }
    }

    /// Loads the app at `url`.
    pub async fn page(&self, url: &str) -> Page<'_> {
        self.client.goto(url).await.unwrap();
        Page { c: &self.client }
    }

    pub async fn resize(&self, w: u32, h: u32) {
        self.client.set_window_size(w, h).await.unwrap();
    }

    pub async fn screenshot(&self, path: &Path) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

impl Page<'_> {
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c.execute(script, args).await.unwrap()
    }

    /// Polls a JavaScript expression until it is truthy.
    async fn wait_js(&self, what: &str, expr: &str, args: Vec<Value>) {
        let script = format!("return !!({expr});");
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if self.js(&script, args.clone()).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self.js("return document.body.innerText;", vec![]).await;
        panic!(
            "timed out waiting for {what}; page shows:\n{}",
            text.as_str().unwrap_or("")
        );
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn register(&self, phone: &str, name: &str) {
        self.fill("#register-form input[name=phone]", phone).await;
        self.fill("#register-form input[name=display_name]", name)
            .await;
        self.fill("#register-form input[name=password]", "web-pass-123")
            .await;
        self.click("#register-form button").await;
        self.wait_js("the app", "!document.getElementById('app').hidden", vec![])
            .await;
    }

    /// Closes the tab (this device goes offline) and continues in a new,
    /// empty one.
    pub async fn leave(&self) {
        let fresh = self.c.new_window(true).await.unwrap();
        self.c.close_window().await.unwrap();
        self.c.switch_to_window(fresh.handle).await.unwrap();
    }

    pub async fn start_direct(&self, phone: &str) {
        self.fill("#direct-phone", phone).await;
        self.click("#new-direct button").await;
        self.wait_js(
            "the chat to open",
            "document.getElementById('chat-title').textContent.length > 0",
            vec![],
        )
        .await;
    }

    /// Types into the composer and presses Enter (the keyboard path).
    pub async fn send(&self, text: &str) {
        let e = self.c.find(Locator::Css("#text")).await.unwrap();
        e.send_keys(&format!("{text}\u{E007}")).await.unwrap();
    }

    pub async fn type_text(&self, text: &str) {
        self.c
            .find(Locator::Css("#text"))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }

    pub async fn wait_tick(&self, seq: u64, status: &str) {
        self.wait_js(
            &format!("tick of {seq} to be {status}"),
            "document.querySelector(`#messages li[data-seq=\"${arguments[0]}\"] .tick[data-status=\"${arguments[1]}\"]`)",
            vec![json!(seq), json!(status)],
        )
        .await;
    }

    pub async fn wait_chat_listed(&self, name: &str, last: &str) {
        self.wait_js(
            &format!("chat {name} listed with {last}"),
            "[...document.querySelectorAll('#chat-list li')].some(li => li.querySelector('.name').textContent === arguments[0] && li.querySelector('.last').textContent === arguments[1])",
            vec![json!(name), json!(last)],
        )
        .await;
    }

    pub async fn open_chat(&self, name: &str) {
        self.wait_js(
            &format!("chat {name} in the list"),
            "[...document.querySelectorAll('#chat-list li .name')].some(n => n.textContent === arguments[0])",
            vec![json!(name)],
        )
        .await;
        // The list re-renders on every event; retry if an element went stale.
        for _ in 0..20 {
            if self.click_chat(name).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_js(
            &format!("chat {name} open"),
            "document.getElementById('chat-title').textContent === arguments[0]",
            vec![json!(name)],
        )
        .await;
    }

    async fn click_chat(&self, name: &str) -> Result<(), fantoccini::error::CmdError> {
        for li in self.c.find_all(Locator::Css("#chat-list li")).await? {
            if li.find(Locator::Css(".name")).await?.text().await? == name {
                return li.click().await;
            }
        }
        Ok(())
    }

    pub async fn open_by_id(&self, chat: &str) {
        self.js("location.hash = 'chat=' + arguments[0];", vec![json!(chat)])
            .await;
    }

    pub async fn back_to_list(&self) {
        self.js("location.hash = '';", vec![]).await;
    }

    /// Texts of the shown messages (system messages as their sentence), oldest first.
    pub async fn message_texts(&self) -> Vec<String> {
        let v = self
            .js(
                "return [...document.querySelectorAll('#messages li')].filter(li => !li.dataset.pending).map(li => li.classList.contains('system') ? li.textContent : li.querySelector('.body').textContent);",
                vec![],
            )
            .await;
        serde_json::from_value(v).unwrap()
    }

    pub async fn wait_messages(&self, expected: &[&str]) {
        let started = Instant::now();
        loop {
            let got = self.message_texts().await;
            if got == expected {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "messages: expected {expected:?}, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_last_message(&self, text: &str) {
        self.wait_js(
            &format!("last message {text}"),
            "(() => { const l = [...document.querySelectorAll('#messages li')].pop(); return l && (l.classList.contains('system') ? l.textContent : l.querySelector('.body').textContent) === arguments[0]; })()",
            vec![json!(text)],
        )
        .await;
    }

    /// Creates a group through the form; returns its id.
    pub async fn create_group(&self, title: &str, phones: &[&str]) -> String {
        self.fill("#group-title", title).await;
        self.fill("#group-phones", &phones.join(", ")).await;
        self.click("#new-group button").await;
        self.wait_js(
            "the group to open",
            "document.getElementById('chat-title').textContent === arguments[0]",
            vec![json!(title)],
        )
        .await;
        let hash = self.js("return location.hash;", vec![]).await;
        hash.as_str()
            .unwrap()
            .trim_start_matches("#chat=")
            .to_owned()
    }

    pub async fn remove_member(&self, name: &str) {
        self.click("#members-toggle").await;
        self.click(&format!(
            "#member-list button[aria-label=\"Remove {name}\"]"
        ))
        .await;
    }

    pub async fn wait_error(&self, text: &str) {
        self.wait_js(
            &format!("error {text}"),
            "document.getElementById('chat-error').textContent.includes(arguments[0])",
            vec![json!(text)],
        )
        .await;
    }

    pub async fn wait_status(&self, text: &str) {
        self.wait_js(
            &format!("header status {text}"),
            "document.getElementById('chat-status').textContent.includes(arguments[0])",
            vec![json!(text)],
        )
        .await;
    }

    /// Picks `file` with the composer's attach button (the composer's text
    /// becomes its caption).
    pub async fn attach(&self, file: &Path) {
        let input = self.c.find(Locator::Css("#attach-input")).await.unwrap();
        input.send_keys(file.to_str().unwrap()).await.unwrap();
    }

    /// Waits until the last message is a photo whose thumbnail has loaded,
    /// with `caption` under it; returns the thumbnail's natural size.
    pub async fn wait_photo(&self, caption: &str) -> (u64, u64) {
        const LAST_PHOTO: &str = "[...document.querySelectorAll('#messages li')].pop()?.querySelector('.attachment.image img')";
        self.wait_js(
            &format!("a loaded photo captioned {caption}"),
            &format!(
                "(() => {{ const img = {LAST_PHOTO}; return img && img.complete && img.naturalWidth > 0 && img.closest('li').querySelector('.body').textContent === arguments[0]; }})()"
            ),
            vec![json!(caption)],
        )
        .await;
        let size = self
            .js(
                &format!("const img = {LAST_PHOTO}; return [img.naturalWidth, img.naturalHeight];"),
                vec![],
            )
            .await;
        serde_json::from_value(size).unwrap()
    }

    /// Clicks the last photo and waits for the viewer to show the full image;
    /// returns its natural size.
    pub async fn open_last_photo(&self) -> (u64, u64) {
        self.click("#messages li:last-child .attachment.image button")
            .await;
        self.wait_js(
            "the full image in the viewer",
            "(() => { const v = document.getElementById('viewer'); const img = document.getElementById('viewer-img'); return v.open && img.complete && img.naturalWidth > 0; })()",
            vec![],
        )
        .await;
        let size = self
            .js(
                "const img = document.getElementById('viewer-img'); return [img.naturalWidth, img.naturalHeight];",
                vec![],
            )
            .await;
        serde_json::from_value(size).unwrap()
    }

    /// Waits until the last message is a file offered for download as `name`
    /// with `size` shown; returns the link's address (path and query).
    pub async fn wait_file(&self, name: &str, size: &str) -> String {
        const LAST_FILE: &str = "[...document.querySelectorAll('#messages li')].pop()?.querySelector('.attachment.file a.file')";
        self.wait_js(
            &format!("a download link for {name}"),
            &format!(
                "(() => {{ const a = {LAST_FILE}; return a && a.download === arguments[0] && a.querySelector('.file-name').textContent === '📄 ' + arguments[0] && a.querySelector('.file-size').textContent === arguments[1] && a.getAttribute('href').startsWith('/v1/media/'); }})()"
            ),
            vec![json!(name), json!(size)],
        )
        .await;
        let href = self
            .js(&format!("return {LAST_FILE}.getAttribute('href');"), vec![])
            .await;
        href.as_str().unwrap().to_owned()
    }

    /// Waits until the last message's attachment says why it cannot be shown.
    pub async fn wait_media_unavailable(&self, text: &str) {
        self.wait_js(
            &format!("the attachment to say {text}"),
            "[...document.querySelectorAll('#messages li')].pop()?.querySelector('.attachment .unavailable')?.textContent === arguments[0]",
            vec![json!(text)],
        )
        .await;
    }
}
