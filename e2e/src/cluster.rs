//! A local cluster on loopback for the cluster-mode scenarios: the real
//! nats-server and Cassandra the service scripts started, plus shard and
//! gateway processes of the `chat-runtime` binary — configured by the
//! operator's own config code (`confab_operator::core::config`), from a
//! `ChatCluster` naming that NATS and that CQL node as external services.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confab_api::cluster::ChatCluster;
use confab_api::config::{BucketConfig, ClusterConfig};
use confab_api::control::control_client::ControlClient;
use confab_api::control::{DrainRequest, StatusReply, StatusRequest};
use confab_api::ring::{Ring, ShardId};
use confab_operator::core::autoscale::Reading;
use confab_operator::core::config::cluster_config;
use confab_operator::core::names::Names;
use confab_operator::shell::control::{ControlApi, GrpcControl, Target};
use uuid::Uuid;

use crate::service_env;

/// One runtime process.
pub struct Proc {
    child: Child,
    pub http: SocketAddr,
    pub control: SocketAddr,
    pub log: PathBuf,
}

impl Proc {
    /// `kill -9`: no goodbye, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as Kubernetes stops a pod; waits up to `wait` for the exit.
    pub async fn terminate(&mut self, wait: Duration) -> Result<()> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
        let deadline = tokio::time::Instant::now() + wait;
        while self.child.try_wait()?.is_none() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "pid {pid} still runs {wait:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server of the cluster's own, for scenarios that restart it.
struct PrivateNats {
    bin: PathBuf,
    port: u16,
    store: PathBuf,
    child: Child,
}

impl PrivateNats {
    fn spawn(bin: &Path, port: u16, store: &Path) -> Result<Child> {
        Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))
    }

    async fn start(dir: &Path) -> Result<Self> {
        let bin = PathBuf::from(service_env("CONFAB_NATS_BIN"));
        let port = free_addr()?.port();
        let store = dir.join("nats");
        let child = Self::spawn(&bin, port, &store)?;
        let nats = Self {
            bin,
            port,
            store,
            child,
        };
        nats.wait().await?;
        Ok(nats)
    }

    async fn wait(&self) -> Result<()> {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("nats-server on port {} did not start", self.port)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster of `chat-runtime` processes on loopback.
pub struct LocalCluster {
    nats: Option<PrivateNats>,
    dir: tempfile::TempDir,
    config: PathBuf,
    bin: PathBuf,
    pub shards: Vec<Option<Proc>>,
    pub gateways: Vec<Option<Proc>>,
    pub notifier: Option<Proc>,
    pub http: reqwest::Client,
    /// Processes (`shard-<n>`, `gateway-<i>`) started as an older build
    /// would run: speaking gateway↔shard wire version 1 only.
    pub older: Vec<String>,
}

/// A loopback address for a child process to listen on. The port comes from
/// outside the kernel's ephemeral range, so none of the many outgoing
/// connections a scenario opens can take it before the child binds it.
fn free_addr() -> Result<SocketAddr> {
    let port = portpicker::pick_unused_port().context("no free port")?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The `chat-runtime` binary next to this test's build (`target/<profile>/`).
fn runtime_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("CONFAB_RUNTIME_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary outside target/<profile>/deps")?;
    let bin = profile_dir.join("chat-runtime");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (cargo build -p chat-runtime --bin chat-runtime)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The `ChatCluster` a platform team would apply for this setup.
fn chat_cluster(
    name: &str,
    shards: u32,
    nats: &str,
    cql: &str,
    keyspace: &str,
) -> Result<ChatCluster> {
    let mut cc: ChatCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "confab.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": name, "namespace": "local", "uid": Uuid::new_v4().to_string()},
        "spec": {
            "image": "chat-runtime:local",
            "shards": {"count": shards},
            "nats": {"external": {"url": nats}},
            "scylla": {"external": {"contactPoints": [cql], "keyspace": keyspace, "replicationFactor": 1}},
            "media": {"buckets": [{"name": "media", "provider": "filesystem"}]},
            "push": {"webhooks": true}
        }
    }))?;
    cc.metadata.generation = Some(1);
    Ok(cc)
}

impl LocalCluster {
    /// Starts `shards` shards and `gateways` gateways and waits until every
    /// shard holds its lease and every gateway answers.
    pub async fn start(shards: u32, gateways: usize) -> Result<Self> {
        Self::start_with(shards, gateways, false).await
    }

    /// As [`LocalCluster::start`]; with `own_nats`, on a nats-server of its
    /// own that [`LocalCluster::restart_nats`] may kill and start again.
    pub async fn start_with(shards: u32, gateways: usize, own_nats: bool) -> Result<Self> {
        Self::start_mixed(shards, gateways, own_nats, &[]).await
    }

    /// As [`LocalCluster::start_with`], the processes named in `older`
    /// (`shard-<n>`, `gateway-<i>`) standing in for an older build: they
    /// speak wire version 1 only, as a build from before version 2 does.
    pub async fn start_mixed(
        shards: u32,
        gateways: usize,
        own_nats: bool,
        older: &[&str],
    ) -> Result<Self> {
        crate::install_crypto();
        let cql = service_env("CONFAB_CQL_NODE");
        let dir = tempfile::tempdir()?;
        let private = match own_nats {
            true => Some(PrivateNats::start(dir.path()).await?),
            false => None,
        };
        let nats = match &private {
            Some(p) => p.url(),
            None => service_env("CONFAB_NATS_URL"),
        };
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("c{}", &id[..10]);
        let keyspace = format!("confab_{}", &id[..12]);
        let cc = chat_cluster(&name, shards, &nats, &cql, &keyspace)?;
        let ids: Vec<ShardId> = (0..shards).map(ShardId).collect();
        let ring = Ring::new(1, &ids, 64)?;
        let mut config: ClusterConfig = cluster_config(&cc, &Names::new(&cc), ring);
        // Files the operator mounts into pods live in the scratch folder here.
        let key = dir.path().join("signing-key");
        std::fs::write(&key, hex_key())?;
        config.auth.signing_key_file = key.to_string_lossy().into_owned();
        let media = dir.path().join("media");
        config.media = vec![BucketConfig {
            credentials_dir: Some(media.to_string_lossy().into_owned()),
            ..config.media[0].clone()
        }];
        // The push receivers of the scenarios listen on plain-http loopback.
        config.push.allow_http_webhooks = true;
        let path = dir.path().join("cluster.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        let mut cluster = Self {
            nats: private,
            dir,
            config: path,
            bin: runtime_binary()?,
            shards: Vec::new(),
            gateways: Vec::new(),
            notifier: None,
            http: reqwest::Client::new(),
            older: older.iter().map(|s| s.to_string()).collect(),
        };
        let started = futures::future::try_join_all((0..shards).map(|n| cluster.launch_shard(n)));
        cluster.shards = started.await?.into_iter().map(Some).collect();
        let started = futures::future::try_join_all(
            (0..gateways).map(|i| cluster.launch(format!("gateway-{i}"), vec!["gateway".into()])),
        );
        cluster.gateways = started.await?.into_iter().map(Some).collect();
        let notifier = cluster.launch("notifier".into(), vec!["notifier".into()]);
        cluster.notifier = Some(notifier.await?);
        Ok(cluster)
    }

    async fn launch_shard(&self, n: u32) -> Result<Proc> {
        let args = ["shard", "--ordinal", &n.to_string(), "--lease-ms", "3000"];
        self.launch(format!("shard-{n}"), args.map(String::from).to_vec())
            .await
    }

    /// Starts a process and waits until its `/readyz` answers (a shard: it
    /// holds its lease). Ports are picked free just before; if another
    /// process took one meanwhile, the start is tried again on new ports.
    async fn launch(&self, name: String, args: Vec<String>) -> Result<Proc> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut p = self.spawn(&name, &args)?;
            match self.wait_ready(&mut p, &name).await {
                Ok(()) => return Ok(p),
                Err(_) if attempt < 3 && p.child.try_wait()?.is_some() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(&self, name: &str, args: &[String]) -> Result<Proc> {
        let (http, control) = (free_addr()?, free_addr()?);
        let log = self.dir.path().join(format!("{name}.log"));
        let wire_max = match self.older.iter().any(|o| o == name) {
            true => "1",
            false => "2",
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .args([
                "--listen",
                &http.to_string(),
                "--control-listen",
                &control.to_string(),
            ])
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .env("CONFAB_WIRE_MAX", wire_max)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        Ok(Proc {
            child,
            http,
            control,
            log,
        })
    }

    async fn wait_ready(&self, p: &mut Proc, what: &str) -> Result<()> {
        let url = format!("http://{}/readyz", p.http);
        for _ in 0..300 {
            if p.child.try_wait()?.is_some() {
                break;
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tail = std::fs::read_to_string(&p.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        bail!(
            "{what} not ready (or exited); its log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Shard `n`'s `/metrics` text.
    pub async fn shard_metrics(&self, n: usize) -> Result<String> {
        let p = self.shards[n].as_ref().context("shard not running")?;
        let url = format!("http://{}/metrics", p.http);
        Ok(self.http.get(url).send().await?.text().await?)
    }

    /// The notifier's `/metrics` URL.
    pub fn notifier_metrics(&self) -> String {
        let p = self.notifier.as_ref().expect("notifier running");
        format!("http://{}/metrics", p.http)
    }

    /// A REST client of gateway `i`.
    pub fn api(&self, i: usize) -> crate::api::Api {
        crate::api::Api {
            url: self.gateway_url(i),
            http: self.http.clone(),
        }
    }

    /// `http://host:port` of gateway `i`.
    pub fn gateway_url(&self, i: usize) -> String {
        let p = self.gateways[i].as_ref().expect("gateway running");
        format!("http://{}", p.http)
    }

    /// `kill -9` the cluster's own nats-server and start it again on the
    /// same port and store after `down`.
    pub async fn restart_nats(&mut self, down: Duration) -> Result<()> {
        let nats = self
            .nats
            .as_mut()
            .context("the cluster runs on a shared NATS")?;
        let _ = nats.child.kill();
        let _ = nats.child.wait();
        tokio::time::sleep(down).await;
        nats.child = PrivateNats::spawn(&nats.bin, nats.port, &nats.store)?;
        nats.wait().await
    }

    /// The index of a running gateway.
    pub fn any_gateway(&self) -> usize {
        self.gateways
            .iter()
            .position(Option::is_some)
            .expect("a gateway is running")
    }

    /// Drains gateway `i` through its control API within `deadline`; the
    /// sessions it still held when it answered.
    pub async fn drain_gateway(&self, i: usize, deadline: Duration) -> Result<u64> {
        let p = self.gateways[i].as_ref().context("gateway not running")?;
        drain(p, deadline).await
    }

    /// Drains shard `n` (as the operator does before removing its pod); the
    /// chats it still held when it answered.
    pub async fn drain_shard(&self, n: usize, deadline: Duration) -> Result<u64> {
        let p = self.shards[n].as_ref().context("shard not running")?;
        drain(p, deadline).await
    }

    /// `kill -9` gateway `i`.
    pub fn kill_gateway(&mut self, i: usize) {
        if let Some(mut p) = self.gateways[i].take() {
            p.kill();
        }
    }

    /// Stops shard `n` as Kubernetes does (SIGTERM) and waits for its exit.
    pub async fn stop_shard(&mut self, n: usize) -> Result<()> {
        let mut p = self.shards[n].take().context("shard not running")?;
        p.terminate(Duration::from_secs(20)).await
    }

    /// The holder written in shard `n`'s lease key, read from NATS (`None`:
    /// nobody holds it).
    pub async fn lease_holder(&self, n: usize) -> Result<Option<String>> {
        let config = ClusterConfig::from_json(&std::fs::read_to_string(&self.config)?)?;
        let client = async_nats::connect(config.nats.url.as_str()).await?;
        let leases = async_nats::jetstream::new(client)
            .get_key_value(format!("confab-{}-leases", config.cluster))
            .await?;
        let holder = leases.get(format!("shard-{n}")).await?;
        Ok(holder.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// `kill -9` shard `n`.
    pub fn kill_shard(&mut self, n: usize) {
        if let Some(mut p) = self.shards[n].take() {
            p.kill();
        }
    }

    /// Moves the cluster from ring `from` to ring `to` the way the operator
    /// does, through the control API with the operator's own client:
    /// prepare on every running shard of either ring, then commit.
    /// Returns the fraction of chats the change moves.
    pub async fn change_ring(&self, from: &Ring, to: &Ring) -> Result<f64> {
        let control = GrpcControl {
            timeout: Duration::from_secs(10),
        };
        let members: BTreeSet<u32> = from
            .shards()
            .iter()
            .chain(to.shards())
            .map(|s| s.0)
            .collect();
        let targets: Vec<Target> = members
            .into_iter()
            .filter_map(|n| {
                let p = self.shards.get(n as usize)?.as_ref()?;
                Some(Target {
                    namespace: "local".into(),
                    cluster: "local".into(),
                    shard: n,
                    address: p.control.to_string(),
                    // Local processes run without a control token.
                    token: String::new(),
                })
            })
            .collect();
        for t in &targets {
            control.prepare_ring(t, to, from.epoch()).await?;
        }
        for t in &targets {
            control.commit_ring(t, to.epoch()).await?;
        }
        Ok(Ring::moved(from, to))
    }

    /// Every running shard's and gateway's `Status`, read with the
    /// operator's own client, as its autoscaler reads them.
    pub async fn reading(&self) -> Result<Reading> {
        let control = GrpcControl {
            timeout: Duration::from_secs(10),
        };
        let target = |shard: u32, p: &Proc| Target {
            namespace: "local".into(),
            cluster: "local".into(),
            shard,
            address: p.control.to_string(),
            token: String::new(),
        };
        let mut reading = Reading {
            at: k8s_openapi::jiff::Timestamp::now(),
            ..Reading::default()
        };
        for (n, p) in self.shards.iter().enumerate() {
            if let Some(p) = p {
                let report = control.status(&target(n as u32, p)).await?;
                reading.shards.insert(n as u32, report);
            }
        }
        for (i, p) in self.gateways.iter().enumerate() {
            if let Some(p) = p {
                let report = control.status(&target(0, p)).await?;
                reading.gateways.insert(format!("gateway-{i}"), report);
            }
        }
        Ok(reading)
    }

    /// Shard `n`'s answer to the control API's `Status`.
    pub async fn status(&self, n: usize) -> Result<StatusReply> {
        let p = self.shards[n].as_ref().context("shard not running")?;
        let mut client = ControlClient::connect(format!("http://{}", p.control)).await?;
        Ok(client.status(StatusRequest {}).await?.into_inner())
    }

    /// Starts shard `n` (new, or again after a kill) and waits for its lease.
    pub async fn add_shard(&mut self, n: usize) -> Result<()> {
        while self.shards.len() <= n {
            self.shards.push(None);
        }
        self.restart_shard(n).await
    }

    /// Starts shard `n` again (after a kill) and waits for its lease.
    pub async fn restart_shard(&mut self, n: usize) -> Result<()> {
        let p = self.launch_shard(n as u32).await?;
        self.shards[n] = Some(p);
        Ok(())
    }
}

async fn drain(p: &Proc, deadline: Duration) -> Result<u64> {
    let mut client = ControlClient::connect(format!("http://{}", p.control)).await?;
    let deadline_ms = u32::try_from(deadline.as_millis())?;
    let reply = client.drain(DrainRequest { deadline_ms }).await?;
    Ok(reply.into_inner().remaining)
}

fn hex_key() -> String {
    let key: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn rand_byte() -> u8 {
    Uuid::new_v4().as_bytes()[0]
}
