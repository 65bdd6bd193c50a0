//! Installing and removing the product on the real node: the chart with
//! helm, the ChatCluster and its bucket Secret, the gateway's NodePort
//! address; and what to print when a phase fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use confab_api::cluster::ChatCluster;
use confab_e2e::kube::{client, unique};
use confab_e2e::service_env;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::process::Command;

use crate::took;

/// The ChatCluster's name.
pub const NAME: &str = "chat";
/// How long the cluster may take to reach a state the scenario waits for.
pub const TIMEOUT: Duration = Duration::from_secs(240);
/// The taint (and label) of the real node; pods that should run there say so.
fn node_taint() -> String {
    service_env("CONFAB_NODE_TAINT")
}

/// The chart installed and a ChatCluster Available, as a platform team has them.
pub struct Product {
    pub client: Client,
    /// Namespace of the chart (the operator).
    pub system: String,
    /// Helm release name.
    pub release: String,
    /// Namespace of the ChatCluster.
    pub ns: String,
    /// `http://<node ip>:<node port>` of the gateway Service.
    pub url: String,
    /// The ChatCluster as first applied.
    pub spec: ChatCluster,
}

impl Product {
    pub async fn install() -> Result<Self> {
        let client = client().await?;
        let system = unique("confab-system");
        let release = unique("confab");
        let ns = unique("chat");
        let mut product = Self {
            client,
            system,
            release,
            ns,
            url: String::new(),
            spec: spec()?,
        };
        if let Err(e) = product.bring_up().await {
            eprintln!("install failed: {e:#}");
            product.diagnose().await;
            product.uninstall().await;
            return Err(e);
        }
        Ok(product)
    }

    async fn bring_up(&mut self) -> Result<()> {
        let t = Instant::now();
        self.helm_install().await?;
        took("helm install --wait (operator pod Ready)", t);
        Api::<Namespace>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": self.ns}}))?,
            )
            .await?;
        self.bucket_secret().await?;
        let t = Instant::now();
        self.apply(&self.spec).await?;
        crate::phases::available(self).await?;
        took("ChatCluster applied → Available", t);
        self.url = self.gateway_url().await?;
        let http = reqwest::Client::new();
        confab_e2e::eventually("the gateway NodePort answers", TIMEOUT, async || {
            let r = http.get(format!("{}/readyz", self.url)).send().await;
            Ok(r.is_ok_and(|r| r.status().is_success()))
        })
        .await
    }

    async fn helm_install(&self) -> Result<()> {
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/confab-operator");
        let taint = node_taint();
        let node_selector = json!({ taint.clone(): "true" }).to_string();
        let tolerations = json!([{"key": taint, "operator": "Exists", "effect": "NoSchedule"}]);
        helm(&[
            "install",
            &self.release,
            chart.to_str().context("chart path")?,
            "--namespace",
            &self.system,
            "--create-namespace",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            "leaderElection.enabled=true",
            "--set-json",
            &format!("nodeSelector={node_selector}"),
            "--set-json",
            &format!("tolerations={tolerations}"),
            "--wait",
            "--timeout",
            "5m",
        ])
        .await
        .map(drop)
    }

    /// The S3 credentials the bucket names (`credentialsSecret`).
    async fn bucket_secret(&self) -> Result<()> {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "media-s3"},
            "stringData": {
                "accessKeyId": service_env("CONFAB_S3_ACCESS_KEY"),
                "secretAccessKey": service_env("CONFAB_S3_SECRET_KEY"),
            }
        }))?;
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    pub fn clusters(&self) -> Api<ChatCluster> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Server-side applies `cc` as kubectl would.
    pub async fn apply(&self, cc: &ChatCluster) -> Result<()> {
        let params = PatchParams::apply("kubectl").force();
        self.clusters()
            .patch(NAME, &params, &Patch::Apply(cc))
            .await?;
        Ok(())
    }

    async fn gateway_url(&self) -> Result<String> {
        let svc = Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .get(&format!("{NAME}-gateway"))
            .await?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.into_iter().next())
            .and_then(|p| p.node_port)
            .context("the gateway Service has no node port")?;
        Ok(format!("http://{}:{port}", service_env("CONFAB_NODE_IP")))
    }

    /// What a platform team would look at: pods, events, the operator's log.
    pub async fn diagnose(&self) {
        for ns in [&self.ns, &self.system] {
            let pods = Api::<Pod>::namespaced(self.client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let status = p.status.clone().unwrap_or_default();
                    eprintln!(
                        "pod {ns}/{}: {:?} on {:?}, containers {}",
                        p.name_any(),
                        status.phase,
                        p.spec.as_ref().and_then(|s| s.node_name.clone()),
                        serde_json::to_string(&status.container_statuses).unwrap_or_default()
                    );
                }
            }
            let events = Api::<Event>::namespaced(self.client.clone(), ns);
            if let Ok(list) = events.list(&ListParams::default()).await {
                for e in list.items.iter().rev().take(40).rev() {
                    eprintln!(
                        "event {ns}: {} {} {}: {}",
                        e.type_.as_deref().unwrap_or("-"),
                        e.involved_object.name.as_deref().unwrap_or("-"),
                        e.reason.as_deref().unwrap_or("-"),
                        e.message.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        if let Ok(cc) = self.clusters().get(NAME).await {
            eprintln!(
                "ChatCluster status: {}",
                serde_json::to_string_pretty(&cc.status).unwrap_or_default()
            );
        }
        for ns in [&self.system, &self.ns] {
            print_logs(&Api::<Pod>::namespaced(self.client.clone(), ns)).await;
        }
    }

    /// Best-effort removal of everything the scenario made.
    pub async fn uninstall(&self) {
        let _ = self.clusters().delete(NAME, &DeleteParams::default()).await;
        let gone = confab_e2e::eventually("the ChatCluster is gone", TIMEOUT, async || {
            Ok(self.clusters().get_opt(NAME).await?.is_none())
        })
        .await;
        if let Err(e) = gone {
            eprintln!("cleanup: {e:#}");
        }
        if let Err(e) = helm(&["uninstall", &self.release, "-n", &self.system, "--wait"]).await {
            eprintln!("cleanup: {e:#}");
        }
        let namespaces = Api::<Namespace>::all(self.client.clone());
        for ns in [&self.ns, &self.system] {
            let _ = namespaces.delete(ns, &DeleteParams::default()).await;
        }
    }
}

/// The end of each pod's log, and of its previous container's if it restarted.
async fn print_logs(pods: &Api<Pod>) {
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return;
    };
    for p in list.items {
        let restarted = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.restart_count > 0));
        let params = LogParams {
            tail_lines: Some(40),
            previous: restarted,
            ..LogParams::default()
        };
        if let Ok(log) = pods.logs(&p.name_any(), &params).await {
            eprintln!(
                "--- log of {} (previous: {restarted}) ---\n{log}",
                p.name_any()
            );
        }
    }
}

/// The ChatCluster: 2 shards, 2 gateways behind a NodePort, 1 notifier, on
/// the real node; NATS, CQL and S3 are the host's, at the node address.
fn spec() -> Result<ChatCluster> {
    let node_ip = service_env("CONFAB_NODE_IP");
    let port = |url: &str| -> Result<String> {
        let port = url.rsplit(':').next().context("no port")?;
        Ok(port.trim_end_matches('/').to_owned())
    };
    let nats = port(&service_env("CONFAB_NATS_URL"))?;
    let cql = port(&service_env("CONFAB_CQL_NODE"))?;
    let s3 = port(&service_env("CONFAB_S3_ENDPOINT"))?;
    let buckets: u32 = service_env("CONFAB_S3_BUCKETS").parse()?;
    let taint = node_taint();
    let image = format!("confab/chat-runtime:{}", app_version()?);
    let keyspace = unique("confab_node").replace('-', "_");
    Ok(serde_json::from_value(json!({
        "apiVersion": "confab.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": NAME},
        "spec": {
            "image": image,
            "shards": {"count": 2, "failoverDelaySeconds": 5},
            "gateway": {"replicas": 2, "service": {"type": "NodePort", "port": 80}},
            "notifier": {"replicas": 1},
            "nats": {"external": {"url": format!("nats://{node_ip}:{nats}")}},
            "scylla": {"external": {
                "contactPoints": [format!("{node_ip}:{cql}")],
                "keyspace": keyspace,
                "replicationFactor": 1
            }},
            "media": {"buckets": [{
                "name": format!("confab-media-{buckets:02}"),
                "provider": "s3",
                "endpoint": format!("http://{node_ip}:{s3}"),
                "credentialsSecret": "media-s3"
            }]},
            "scheduling": {
                "nodeSelector": {taint.clone(): "true"},
                "tolerations": [{"key": taint, "operator": "Exists", "effect": "NoSchedule"}]
            }
        }
    }))?)
}

/// The chart's appVersion: the tag of both images.
fn app_version() -> Result<String> {
    let chart =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/confab-operator/Chart.yaml");
    let text = std::fs::read_to_string(&chart)?;
    text.lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .context("Chart.yaml has no appVersion")
}

/// Runs helm (`CONFAB_HELM`) with the admin kubeconfig; its stdout.
async fn helm(args: &[&str]) -> Result<String> {
    let out = Command::new(service_env("CONFAB_HELM"))
        .args(args)
        .args(["--kubeconfig", &service_env("CONFAB_KUBECONFIG")])
        .output()
        .await
        .context("running helm")?;
    if !out.status.success() {
        bail!(
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
