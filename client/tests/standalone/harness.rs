//! A real `chat-runtime standalone` on a free loopback port with a fresh
//! data folder: the binary next to this test's build (`target/<profile>/`)
//! or the one `CONFAB_RUNTIME_BIN` names. A missing binary fails the test.
//! `kill` is kill -9; `start` again brings it back on the same port and data.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confab_client::protocol::rest::Session;
use confab_client::{Client, Event, Events, Options, Rest};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Server {
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// What trusts its certificate, when it serves TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server; `args` are extra `standalone` flags.
    pub async fn start(args: &[&str]) -> Result<Self> {
        let port = portpicker::pick_unused_port().context("no free port")?;
        let mut s = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir()?,
            args: args.iter().map(|a| a.to_string()).collect(),
            tls: None,
            child: None,
        };
        s.restart().await?;
        Ok(s)
    }

    /// Starts a server that serves HTTPS and `wss` with a self-signed
    /// certificate for 127.0.0.1; `tls` trusts it.
    pub async fn start_tls() -> Result<Self> {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
        let dir = tempfile::tempdir()?;
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, made.cert.pem())?;
        std::fs::write(&key, made.signing_key.serialize_pem())?;
        confab_client::install_crypto();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone())?;
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let port = portpicker::pick_unused_port().context("no free port")?;
        let mut s = Self {
            url: format!("https://127.0.0.1:{port}"),
            port,
            args: vec![
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ],
            dir,
            tls: Some(Arc::new(config)),
            child: None,
        };
        s.restart().await?;
        Ok(s)
    }

    /// Starts the process (again) and waits until it is ready.
    pub async fn restart(&mut self) -> Result<()> {
        let child = Command::new(binary()?)
            .arg("standalone")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting chat-runtime")?;
        self.child = Some(child);
        confab_client::install_crypto();
        let http = match &self.tls {
            Some(tls) => reqwest::Client::builder()
                .tls_backend_preconfigured((**tls).clone())
                .build()?,
            None => reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("chat-runtime exited at start: {status}");
            }
            let ready = http.get(format!("{}/readyz", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("chat-runtime was not ready within {WAIT:?}")
    }

    /// kill -9, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn rest(&self) -> Rest {
        match &self.tls {
            Some(tls) => Rest::with_tls(&self.url, tls.clone()).expect("a TLS client"),
            None => Rest::new(&self.url),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `chat-runtime` binary to run.
fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("CONFAB_RUNTIME_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary outside target/<profile>/deps")?;
    let bin = profile_dir.join("chat-runtime");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (cargo build -p chat-runtime --bin chat-runtime) \
             or set CONFAB_RUNTIME_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A registered, logged-in user.
pub struct User {
    pub id: Uuid,
    pub phone: String,
    pub session: Session,
    pub rest: Rest,
}

pub async fn user(server: &Server, name: &str) -> Result<User> {
    let phone = format!("+1{:010}", Uuid::new_v4().as_u128() % 10_000_000_000);
    let rest = server.rest();
    let view = rest.register(&phone, name, "s3cret-pass").await?;
    let session = rest.login(&phone, "s3cret-pass").await?;
    assert_eq!(view.id, session.user_id);
    Ok(User {
        id: view.id,
        phone,
        rest: rest.with_token(&session.token),
        session,
    })
}

/// Ann and Bob, registered, and the 1:1 chat between them.
pub async fn ann_and_bob(server: &Server) -> Result<(User, User, Uuid)> {
    let (ann, bob) = (user(server, "Ann").await?, user(server, "Bob").await?);
    let chat = ann.rest.direct(&bob.phone).await?.chat_id;
    Ok((ann, bob, chat))
}

/// Options for `user` on `server` that reconnect quickly.
pub fn options(server: &Server, user: &User) -> Options {
    let mut o = Options::new(&server.url, &user.session.token);
    o.tls = server.tls.clone();
    o.reconnect = (Duration::from_millis(50), Duration::from_millis(500));
    o
}

pub async fn connect(server: &Server, user: &User) -> Result<(Client, Events)> {
    Ok(Client::connect(options(server, user)).await?)
}

/// Reads events until `take` returns `Some`; fails after `WAIT` of silence.
pub async fn until<T>(events: &mut Events, mut take: impl FnMut(Event) -> Option<T>) -> Result<T> {
    loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .context("no event in time")?
            .context("the session ended")?;
        if let Some(t) = take(event) {
            return Ok(t);
        }
    }
}
