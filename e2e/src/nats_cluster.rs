//! A clustered nats-server on loopback: `n` servers of the binary the service
//! script installed (`CONFAB_NATS_BIN`), routed to each other with JetStream
//! on, for scenarios about replicated streams and buckets. Each server keeps
//! its store in a temporary folder; dropping the cluster stops them all.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::service_env;

/// Servers of one JetStream cluster.
pub struct NatsCluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    /// The servers' stores; removed with the cluster.
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `n` servers and waits until the cluster can place a stream
    /// on all of them.
    pub async fn start(n: usize) -> Result<Self> {
        let bin = service_env("CONFAB_NATS_BIN");
        let dir = tempfile::tempdir()?;
        let mut ports = Vec::new();
        while ports.len() < 2 * n {
            let port = portpicker::pick_unused_port().context("no free port")?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let (client_ports, route_ports) = ports.split_at(n);
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            children: Vec::new(),
            client_ports: client_ports.to_vec(),
            dir,
        };
        for (i, (client, route)) in client_ports.iter().zip(route_ports).enumerate() {
            let store = cluster.dir.path().join(format!("n{i}"));
            let child = Command::new(&bin)
                .args(["-js", "-a", "127.0.0.1", "-p", &client.to_string()])
                .args(["--server_name", &format!("n{i}")])
                .args(["--cluster_name", "confab-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
                .args(["--routes", &routes])
                .arg("-sd")
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {bin}"))?;
            cluster.children.push(child);
        }
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// The client URL of every server.
    pub fn urls(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }

    /// Waits until a probe stream with a copy on every server can be made.
    async fn wait_for_jetstream(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self.probe().await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("the NATS cluster's JetStream did not come up within 60 s: {last}")
    }

    async fn probe(&self) -> Result<()> {
        let js = async_nats::jetstream::new(async_nats::connect(self.urls()).await?);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "probe".into(),
            num_replicas: self.children.len(),
            ..Default::default()
        })
        .await?;
        js.delete_stream("probe").await?;
        Ok(())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
