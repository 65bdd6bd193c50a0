//! Smoke tests for helm (built by `e2e/scripts/helm.sh`) against the
//! repository's chart, `charts/confab-operator`, and the chart applied to
//! the real control plane of `e2e/scripts/kube.sh`.
//!
//! They read the helm binary's path from `CONFAB_HELM` and fail when it is
//! unset or helm does not run. One reads no service: the chart README's
//! values table must list every value in values.yaml. [`render`] and [`apply`] are shared with the
//! operator scenarios that run under the chart's RBAC.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, Result, bail};
use confab_e2e::service_env;
use confab_operator::core::names::{Names, Role};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, ResourceExt};
use std::panic::AssertUnwindSafe;
use tokio::process::Command;

use crate::operator::{cleanup_namespace, client, install_crd, namespace, unique, until};

pub(crate) fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/confab-operator")
}

/// `helm template` of the chart as `release` in `namespace`, CRDs included,
/// as objects (empty documents dropped).
pub(crate) async fn render(release: &str, namespace: &str) -> Result<Vec<DynamicObject>> {
    render_with(release, namespace, &[]).await
}

/// [`render`] with extra helm arguments (`--set`, `-f`...).
pub(crate) async fn render_with(
    release: &str,
    namespace: &str,
    values: &[&str],
) -> Result<Vec<DynamicObject>> {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(values);
    let out = helm(&args).await?;
    if !out.status.success() {
        bail!("helm template failed: {}", text(&out));
    }
    let rendered = String::from_utf8(out.stdout)?;
    documents(&rendered)
}

/// The objects in a multi-document YAML stream.
pub(crate) fn documents(yaml: &str) -> Result<Vec<DynamicObject>> {
    let docs: Vec<Option<serde_json::Value>> =
        serde_saphyr::from_multiple(yaml).context("rendered YAML does not parse")?;
    docs.into_iter()
        .flatten()
        .map(|doc| serde_json::from_value(doc).context("a rendered document is not an object"))
        .collect()
}

/// Server-side applies every object in order (namespaced ones in their own
/// namespace, else in `namespace`), each kind resolved through API discovery.
pub(crate) async fn apply(
    client: &Client,
    namespace: &str,
    objects: &[DynamicObject],
) -> Result<()> {
    let params = PatchParams::apply("confab-e2e-helm").force();
    for obj in objects {
        let types = obj
            .types
            .as_ref()
            .context("a rendered object without kind")?;
        let gvk = kube::api::GroupVersionKind::try_from(types)?;
        let (resource, caps) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or(namespace);
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name = obj
            .metadata
            .name
            .clone()
            .context("a rendered object without name")?;
        api.patch(&name, &params, &Patch::Apply(obj))
            .await
            .with_context(|| format!("the API server refused {} {name}", types.kind))?;
    }
    Ok(())
}

/// Deletes the cluster-scoped objects among `objects` but the CRD, which
/// other tests share.
pub(crate) async fn delete_cluster_scoped(client: &Client, objects: &[DynamicObject]) {
    for obj in objects {
        let Some(types) = obj.types.as_ref() else {
            continue;
        };
        if types.kind == "CustomResourceDefinition" {
            continue;
        }
        let Ok(gvk) = kube::api::GroupVersionKind::try_from(types) else {
            continue;
        };
        let Ok((resource, caps)) = pinned_kind(client, &gvk).await else {
            continue;
        };
        if caps.scope == Scope::Cluster {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let _ = api.delete(&obj.name_any(), &DeleteParams::default()).await;
        }
    }
}

/// Runs helm with `args`, returning its output whether or not it succeeded.
async fn helm(args: &[&str]) -> Result<Output> {
    let bin = service_env("CONFAB_HELM");
    Command::new(&bin)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {bin} {}", args.join(" ")))
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn chart_lints_strictly() -> Result<()> {
    let chart = chart();
    let out = helm(&["lint", "--strict", chart.to_str().unwrap()]).await?;
    assert!(out.status.success(), "helm lint failed: {}", text(&out));
    Ok(())
}

#[tokio::test]
async fn chart_renders_operator_objects_and_crd() -> Result<()> {
    let chart = chart();
    let out = helm(&[
        "template",
        "confab",
        chart.to_str().unwrap(),
        "--namespace",
        "confab-system",
        "--include-crds",
    ])
    .await?;
    assert!(out.status.success(), "helm template failed: {}", text(&out));
    let rendered = String::from_utf8(out.stdout)?;
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: ServiceAccount",
        "kind: ClusterRole",
        "kind: ClusterRoleBinding",
        "kind: Deployment",
    ] {
        assert!(rendered.contains(kind), "no `{kind}` in:\n{rendered}");
    }
    for needle in [
        "name: chatclusters.confab.dev",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "path: /healthz",
        "path: /readyz",
        "containerPort: 8080",
    ] {
        assert!(rendered.contains(needle), "no `{needle}` in:\n{rendered}");
    }
    Ok(())
}

/// values.schema.json closes every level, so a misspelt value fails
/// `helm template` (hence `helm install`) and `helm lint --strict` instead
/// of being silently ignored.
#[tokio::test]
async fn chart_refuses_misspelt_values() -> Result<()> {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for (value, complaint) in [
        ("imagee.tag=1", "additional properties 'imagee' not allowed"),
        ("image.tagg=1", "additional properties 'tagg' not allowed"),
        (
            "securityContext.readOnlyRootFilesytem=false",
            "additional properties 'readOnlyRootFilesytem' not allowed",
        ),
        (
            "metrics.serviceMonitor.enabeld=true",
            "additional properties 'enabeld' not allowed",
        ),
        ("image.pullPolicy=Sometimes", "value must be one of"),
    ] {
        for command in [
            vec!["template", "confab", chart, "--set", value],
            vec!["lint", "--strict", chart, "--set", value],
        ] {
            let out = helm(&command).await?;
            assert!(!out.status.success(), "accepted {value}: {}", text(&out));
            let said = text(&out);
            assert!(said.contains(complaint), "{value}: {said}");
        }
    }
    Ok(())
}

/// The metrics Service sends to the operator pods' `http` port (where
/// /metrics is served); it can be turned off, and a ServiceMonitor for it
/// turned on.
#[tokio::test]
async fn metrics_service_selects_the_operator_pods() -> Result<()> {
    let objects = render("confab", "confab-system").await?;
    let service = of_kind(&objects, "Service").context("no metrics Service")?;
    let deployment = of_kind(&objects, "Deployment").context("no Deployment")?;
    assert_eq!(service.name_any(), "confab-operator-metrics");
    assert_eq!(
        service.data["spec"]["selector"],
        deployment.data["spec"]["selector"]["matchLabels"]
    );
    let port = &service.data["spec"]["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["targetPort"].as_str()),
        (Some("http-metrics"), Some("http"))
    );
    let container = &deployment.data["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["name"], "http");

    let off = ["--set", "metrics.service.enabled=false"];
    let objects = render_with("confab", "confab-system", &off).await?;
    assert!(of_kind(&objects, "Service").is_none());

    let on = ["--set", "metrics.serviceMonitor.enabled=true"];
    let objects = render_with("confab", "confab-system", &on).await?;
    let monitor = of_kind(&objects, "ServiceMonitor").context("no ServiceMonitor")?;
    let endpoint = &monitor.data["spec"]["endpoints"][0];
    assert_eq!(
        (endpoint["port"].as_str(), endpoint["path"].as_str()),
        (Some("http-metrics"), Some("/metrics"))
    );
    let labels = &monitor.data["spec"]["selector"]["matchLabels"];
    assert_eq!(labels["app.kubernetes.io/component"], "metrics");
    Ok(())
}

/// With the monitoring values on, the chart renders a PodMonitor that
/// selects exactly the runtime pods the operator labels (gateway, shard,
/// notifier; not the managed NATS or ScyllaDB) at /metrics on their `http`
/// port, a PrometheusRule, and the dashboard in a ConfigMap for Grafana's
/// sidecar. None of them is rendered by default.
#[tokio::test]
async fn monitoring_objects_select_the_runtime_pods_and_ship_the_dashboard() -> Result<()> {
    let defaults = render("confab", "confab-system").await?;
    for kind in ["PodMonitor", "PrometheusRule", "ConfigMap"] {
        assert!(
            of_kind(&defaults, kind).is_none(),
            "{kind} rendered by default"
        );
    }
    let on = [
        "--set",
        "monitoring.podMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
    ];
    let objects = render_with("confab", "confab-system", &on).await?;

    let monitor = of_kind(&objects, "PodMonitor").context("no PodMonitor")?;
    let selector = &monitor.data["spec"]["selector"];
    let mut cc =
        crate::operator::cluster("chat", serde_json::json!({ "image": "chat-runtime:1" }))?;
    cc.metadata.namespace = Some("prod".into());
    cc.metadata.uid = Some("uid-1".into());
    let names = Names::new(&cc);
    for role in [Role::Gateway, Role::Shard, Role::Notifier] {
        assert!(selects(selector, &names.role_labels(role)), "{role:?} pods");
    }
    for role in [Role::Nats, Role::Scylla] {
        assert!(
            !selects(selector, &names.role_labels(role)),
            "{role:?} pods"
        );
    }
    assert_eq!(monitor.data["spec"]["namespaceSelector"]["any"], true);
    for endpoint in monitor.data["spec"]["podMetricsEndpoints"]
        .as_array()
        .context("no endpoints")?
    {
        assert_eq!(
            (endpoint["port"].as_str(), endpoint["path"].as_str()),
            (Some("http"), Some("/metrics"))
        );
    }

    let rules = of_kind(&objects, "PrometheusRule").context("no PrometheusRule")?;
    let groups = rules.data["spec"]["groups"]
        .as_array()
        .context("no groups")?;
    let alerts: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.contains(&"ConfabShardFailedOver"), "{alerts:?}");

    let config_map = of_kind(&objects, "ConfigMap").context("no dashboard ConfigMap")?;
    assert_eq!(config_map.labels()["grafana_dashboard"], "1");
    let shipped: serde_json::Value = serde_json::from_str(
        config_map.data["data"]["confab.json"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        chart().join("dashboards/confab.json"),
    )?)?;
    assert_eq!(shipped, file);
    Ok(())
}

/// Whether a Kubernetes label selector (matchLabels, and matchExpressions
/// with `In`) selects an object with `labels`.
fn selects(selector: &serde_json::Value, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let sets = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            assert_eq!(e["operator"], "In", "only In is evaluated here");
            let values = e["values"].as_array().cloned().unwrap_or_default();
            let key = e["key"].as_str().unwrap_or_default();
            labels
                .get(key)
                .is_some_and(|l| values.iter().any(|v| v.as_str() == Some(l.as_str())))
        });
    exact && sets
}

/// The first of `objects` of `kind`.
pub(crate) fn of_kind<'a>(objects: &'a [DynamicObject], kind: &str) -> Option<&'a DynamicObject> {
    objects
        .iter()
        .find(|o| o.types.as_ref().is_some_and(|t| t.kind == kind))
}

/// The keys in the README's "Values" table (the first column).
fn documented_values(readme: &str) -> Vec<String> {
    readme
        .split("\n## ")
        .find(|section| section.starts_with("Values\n"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split_once('`').map(|(key, _)| key.to_owned()))
        .collect()
}

/// Every path in `value`, parents before children (`image`, `image.tag`),
/// each with whether it is a leaf (anything but a non-empty map).
fn value_paths(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, bool)>) {
    let Some(map) = value.as_object() else {
        return;
    };
    for (key, child) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let leaf = child.as_object().is_none_or(|m| m.is_empty());
        out.push((path.clone(), leaf));
        value_paths(&path, child, out);
    }
}

/// The chart README's values table covers every value in values.yaml (a
/// row for the value or for a map holding it) and names no value that does
/// not exist.
#[test]
fn readme_values_table_lists_every_value() -> Result<()> {
    let values: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("values.yaml"))?)?;
    let readme = std::fs::read_to_string(chart().join("README.md"))?;
    let documented = documented_values(&readme);
    assert!(
        documented.len() > 10,
        "no values table found: {documented:?}"
    );
    let mut paths = Vec::new();
    value_paths("", &values, &mut paths);
    let covered = |path: &str| {
        documented
            .iter()
            .any(|d| path == d || path.starts_with(&format!("{d}.")))
    };
    let missing: Vec<&str> = paths
        .iter()
        .filter(|(path, leaf)| *leaf && !covered(path))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "values not in the README's table: {missing:?}"
    );
    let stale: Vec<&String> = documented
        .iter()
        .filter(|d| !paths.iter().any(|(path, _)| path == *d))
        .collect();
    assert!(
        stale.is_empty(),
        "the README's table names unknown values: {stale:?}"
    );
    Ok(())
}

#[tokio::test]
async fn full_name_never_repeats_the_release_name() -> Result<()> {
    for (release, name) in [
        ("confab", "confab-operator"),
        ("confab-operator", "confab-operator"),
        ("prod-confab-operator", "prod-confab-operator"),
        ("chat", "chat-confab-operator"),
    ] {
        let objects = render(release, "confab-system").await?;
        let deployment = objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "Deployment"))
            .context("no Deployment rendered")?;
        assert_eq!(deployment.name_any(), name, "release {release}");
    }
    Ok(())
}

#[tokio::test]
async fn chart_refuses_replicas_without_leader_election() -> Result<()> {
    let chart = chart();
    let out = helm(&[
        "template",
        "confab",
        chart.to_str().unwrap(),
        "--set",
        "replicaCount=2",
    ])
    .await?;
    assert!(!out.status.success(), "expected a failure: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leaderElection.enabled"));

    let out = helm(&[
        "template",
        "confab",
        chart.to_str().unwrap(),
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=true",
    ])
    .await?;
    assert!(out.status.success(), "helm template failed: {}", text(&out));
    Ok(())
}

#[tokio::test]
async fn rendered_chart_applies_to_the_apiserver_and_the_operator_rolls_out() -> Result<()> {
    let client = client().await?;
    // The CRD is shared with the operator tests: install it the usual way
    // first, so that the chart's copy (the same YAML) is applied over it.
    install_crd(&client).await?;
    let ns = namespace(&client, "helm").await?;
    let release = unique("confab");
    let objects = render(&release, &ns).await?;
    let result = AssertUnwindSafe(async {
        let kinds: Vec<String> = objects
            .iter()
            .filter_map(|o| o.types.as_ref().map(|t| t.kind.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Service",
                "Deployment"
            ]
        );
        apply(&client, &ns, &objects).await?;
        // kwok runs the pod (nothing executes): the Deployment, its pod
        // template and the hardened security context were all accepted.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let name = objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "Deployment"))
            .map(|o| o.name_any())
            .context("no Deployment rendered")?;
        until("operator Deployment Available", || async {
            let d = deployments.get(&name).await?;
            let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            Ok(if ready == 1 {
                Ok(())
            } else {
                Err(format!("{ready} ready"))
            })
        })
        .await?;
        // The metrics Service has the (kwok-run) operator pod behind it.
        let service = of_kind(&objects, "Service").context("no metrics Service")?;
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let selector = format!("kubernetes.io/service-name={}", service.name_any());
        until("metrics Service has a ready endpoint", || async {
            let list = slices
                .list(&ListParams::default().labels(&selector))
                .await?;
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count();
            Ok(if ready == 1 {
                Ok(())
            } else {
                Err(format!("{ready} ready endpoints"))
            })
        })
        .await?;
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;
    delete_cluster_scoped(&client, &objects).await;
    cleanup_namespace(&client, &ns).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
