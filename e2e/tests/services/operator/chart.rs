//! The chart's RBAC is enough, and no more. The operator, running in-process
//! as the ServiceAccount the chart creates (through impersonation), takes the
//! chart's example ChatCluster to Available, records events, and deletes it
//! through the finalizer; with leader election on it also wins its Lease. A
//! verb missing from the chart's rules fails these tests; so does one too many
//! where it matters: the ServiceAccount must not be able to list or watch
//! Secrets, and with `watchNamespace` it must reach no other namespace.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confab_api::cluster::ChatCluster;
use confab_e2e::service_env;
use confab_operator::shell::control::Recording;
use confab_operator::shell::leader::{LeaseConfig, elect};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

use super::{
    Operator, available, cleanup_namespace, client, delete_with_an_operator, install_crd,
    namespace, ring_reaches, unique, until,
};
use crate::helm::{apply, chart, delete_cluster_scoped, documents, of_kind, render_with};

/// A client that acts as `system:serviceaccount:<ns>:<name>`.
async fn impersonating(ns: &str, name: &str) -> Result<Client> {
    let path = service_env("CONFAB_KUBECONFIG");
    let kubeconfig = Kubeconfig::read_from(&path)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{name}"));
    Ok(Client::try_from(config)?)
}

/// The chart's example ChatCluster.
fn example() -> Result<ChatCluster> {
    let path = chart().join("examples/chatcluster.yaml");
    let yaml = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let doc = documents(&yaml)?.pop().context("an empty example")?;
    Ok(serde_json::from_value(serde_json::to_value(doc)?)?)
}

fn kinds(objects: &[DynamicObject]) -> Vec<&str> {
    objects
        .iter()
        .filter_map(|o| o.types.as_ref().map(|t| t.kind.as_str()))
        .collect()
}

/// The rendered object of `kind` (the first one).
fn rendered<'a>(objects: &'a [DynamicObject], kind: &str) -> Result<&'a DynamicObject> {
    of_kind(objects, kind).with_context(|| format!("no {kind} rendered"))
}

/// The value of `name` in the operator container's environment.
fn env(deployment: &DynamicObject, name: &str) -> Option<String> {
    let container = &deployment.data["spec"]["template"]["spec"]["containers"][0];
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

/// Whether the API server refused `result` as forbidden (403, not 404).
fn forbidden<T>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(e)) if e.code == 403)
}

/// The chart in a namespace of its own, and the operator's ServiceAccount
/// as a client.
struct Installed {
    system: String,
    objects: Vec<DynamicObject>,
    account: String,
    operator: Client,
}

impl Installed {
    /// The chart rendered with `values` for `system`, not applied yet.
    async fn render(system: String, values: &[&str]) -> Result<Self> {
        let objects = render_with(&unique("confab"), &system, values).await?;
        let account = rendered(&objects, "ServiceAccount")?.name_any();
        let operator = impersonating(&system, &account).await?;
        Ok(Self {
            system,
            objects,
            account,
            operator,
        })
    }

    async fn install(&self, admin: &Client) -> Result<()> {
        apply(admin, &self.system, &self.objects).await
    }

    /// Whether the ServiceAccount may `verb` `resource` (`group/resource`
    /// or `resource`) in `ns` (all namespaces when `None`), asked of the
    /// authorizer through a SubjectAccessReview.
    async fn may(
        &self,
        admin: &Client,
        verb: &str,
        resource: &str,
        ns: Option<&str>,
    ) -> Result<bool> {
        let (group, resource) = resource.split_once('/').unwrap_or(("", resource));
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!(
                    "system:serviceaccount:{}:{}",
                    self.system, self.account
                )),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    namespace: ns.map(String::from),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    /// Fails unless every `(verb, resource, namespace)` is `allowed`.
    async fn expect(
        &self,
        admin: &Client,
        allowed: bool,
        checks: &[(&str, &str, Option<&str>)],
    ) -> Result<()> {
        for &(verb, resource, ns) in checks {
            if self.may(admin, verb, resource, ns).await? != allowed {
                let what = if allowed { "may not" } else { "may" };
                bail!("the operator {what} {verb} {resource} in {ns:?}");
            }
        }
        Ok(())
    }

    async fn remove(&self, admin: &Client) {
        delete_cluster_scoped(admin, &self.objects).await;
        cleanup_namespace(admin, &self.system).await;
    }
}

/// The ServiceAccount cannot enumerate Secrets: a list is refused with 403,
/// and so are watch and delete (get, create and patch of the signing key are
/// all it has).
async fn secrets_are_not_enumerable(admin: &Client, chart: &Installed, ns: &str) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(chart.operator.clone(), ns);
    let listed = secrets.list(&ListParams::default()).await;
    if !forbidden(listed) {
        bail!("the operator's ServiceAccount was not refused a list of Secrets in {ns}");
    }
    let ns = Some(ns);
    let denied = ["list", "watch", "delete", "deletecollection", "update"];
    let denied: Vec<_> = denied.iter().map(|&verb| (verb, "secrets", ns)).collect();
    chart.expect(admin, false, &denied).await?;
    chart
        .expect(
            admin,
            true,
            &[("get", "secrets", ns), ("create", "secrets", ns)],
        )
        .await
}

/// What the operator never does: create or delete ChatClusters, read or
/// change pods beyond listing them (and deleting one when asked to by a
/// request annotation), or grant itself more (RBAC objects).
async fn nothing_beyond_its_calls(admin: &Client, chart: &Installed, ns: &str) -> Result<()> {
    let ns = Some(ns);
    chart
        .expect(
            admin,
            false,
            &[
                ("create", "confab.dev/chatclusters", ns),
                ("delete", "confab.dev/chatclusters", ns),
                ("get", "pods", ns),
                ("patch", "pods", ns),
                ("deletecollection", "pods", ns),
                ("list", "persistentvolumeclaims", ns),
                ("delete", "apps/deployments", ns),
                ("create", "rbac.authorization.k8s.io/rolebindings", ns),
                ("create", "coordination.k8s.io/leases", ns),
            ],
        )
        .await
}

/// Renders the chart with the values `values(workload)` gives into a fresh
/// system namespace, installs it, runs `scenario` with a fresh workload
/// namespace, and removes everything afterwards — also when it panicked.
async fn with_chart(
    prefix: &str,
    values: impl FnOnce(&str) -> Vec<String>,
    scenario: impl AsyncFnOnce(&Client, &Installed, &str) -> Result<()>,
) -> Result<()> {
    let admin = client().await?;
    install_crd(&admin).await?;
    let system = namespace(&admin, prefix).await?;
    let workload = namespace(&admin, &format!("{prefix}-example")).await?;
    let values = values(&workload);
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let result = AssertUnwindSafe(async {
        let chart = Installed::render(system.clone(), &values).await?;
        let check = async {
            chart.install(&admin).await?;
            scenario(&admin, &chart, &workload).await
        }
        .await;
        // On failure the example may still hold its finalizer.
        delete_with_an_operator(&admin, &workload).await;
        chart.remove(&admin).await;
        check
    })
    .catch_unwind()
    .await;
    for ns in [&workload, &system] {
        cleanup_namespace(&admin, ns).await;
    }
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[tokio::test]
async fn cluster_wide_chart_rbac_runs_the_example_but_cannot_list_secrets() -> Result<()> {
    let values = |_: &str| vec!["--set".into(), "leaderElection.enabled=true".into()];
    with_chart("chart-rbac", values, async |admin, chart, workload| {
        assert_eq!(
            kinds(&chart.objects),
            [
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Service",
                "Deployment"
            ]
        );
        // Every namespace: ChatClusters are watched cluster-wide.
        chart
            .expect(admin, true, &[("watch", "confab.dev/chatclusters", None)])
            .await?;
        leads(chart).await?;
        run_example(admin, &chart.operator, workload).await?;
        secrets_are_not_enumerable(admin, chart, workload).await?;
        nothing_beyond_its_calls(admin, chart, workload).await
    })
    .await
}

#[tokio::test]
async fn watch_namespace_rbac_runs_the_example_and_reaches_no_other_namespace() -> Result<()> {
    let values = |workload: &str| vec!["--set".into(), format!("watchNamespace={workload}")];
    with_chart("chart-ns", values, async |admin, chart, workload| {
        assert_eq!(
            kinds(&chart.objects),
            [
                "CustomResourceDefinition",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Service",
                "Deployment"
            ]
        );
        let deployment = rendered(&chart.objects, "Deployment")?;
        assert_eq!(
            env(deployment, "CONFAB_WATCH_NAMESPACE"),
            Some(workload.to_string())
        );
        run_example(admin, &chart.operator, workload).await?;
        secrets_are_not_enumerable(admin, chart, workload).await?;
        nothing_beyond_its_calls(admin, chart, workload).await?;
        // Nothing outside the watched namespace: not even reads.
        let elsewhere: Api<Secret> = Api::namespaced(chart.operator.clone(), &chart.system);
        if !forbidden(elsewhere.get_metadata_opt("any").await) {
            bail!("the operator may read Secrets outside {workload}");
        }
        for ns in [Some(chart.system.as_str()), Some("default"), None] {
            chart
                .expect(
                    admin,
                    false,
                    &[
                        ("list", "confab.dev/chatclusters", ns),
                        ("get", "secrets", ns),
                        ("patch", "apps/statefulsets", ns),
                    ],
                )
                .await?;
        }
        Ok(())
    })
    .await
}

/// With leader election on, the ServiceAccount wins the Lease the Deployment
/// names (in the release namespace) and releases it.
async fn leads(chart: &Installed) -> Result<()> {
    let deployment = rendered(&chart.objects, "Deployment")?;
    let name = env(deployment, "CONFAB_LEASE_NAME").context("no CONFAB_LEASE_NAME")?;
    let config = LeaseConfig {
        namespace: chart.system.clone(),
        name,
        identity: "e2e".into(),
        duration_secs: 5,
    };
    let mut election = elect(chart.operator.clone(), &config).await?;
    let won = tokio::time::timeout(
        Duration::from_secs(30),
        election.leading.wait_for(|leading| *leading),
    )
    .await
    .map(|r| r.map(|leading| *leading));
    drop(election.leading);
    let released = tokio::time::timeout(Duration::from_secs(10), election.task).await;
    won.context("the operator did not win its Lease in 30 s")??;
    match released {
        Ok(Ok(Ok(_))) => Ok(()),
        other => bail!("releasing the Lease failed: {other:?}"),
    }
}

async fn run_example(admin: &Client, operator_client: &Client, ns: &str) -> Result<()> {
    let operator = Operator::start(operator_client, ns, Arc::new(Recording::default()));
    let api: Api<ChatCluster> = Api::namespaced(admin.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    let cc = example()?;
    let params = PatchParams::apply("kubectl");
    let shards = cc.spec.shards.count;
    api.patch(&cc.name_any(), &params, &Patch::Apply(&cc))
        .await?;
    let done = async {
        available(&api).await?;
        let members: Vec<u32> = (0..shards as u32).collect();
        ring_reaches(&api, &sts, 1, &members, shards).await?;
        // Events are best effort in the operator (a refused one is only
        // logged), so their RBAC is checked here.
        let events: Api<Event> = Api::namespaced(admin.clone(), ns);
        let list = events.list(&ListParams::default()).await?;
        assert!(
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("RingBootstrapped")),
            "no RingBootstrapped event: the chart's RBAC may not allow events"
        );
        // A child the RBAC does not cover is refused (403) and reported.
        // (Only 403s: the cluster-wide test's operator may reconcile this
        // cluster too, and a Secret both generate is refused to the second.)
        let refused: Vec<_> = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ApplyRefused"))
            .filter_map(|e| e.note.clone())
            .filter(|note| note.contains("is forbidden"))
            .collect();
        assert!(refused.is_empty(), "the chart's RBAC refused: {refused:?}");
        api.delete(&cc.name_any(), &DeleteParams::default()).await?;
        until(
            "example ChatCluster deleted through the finalizer",
            || async {
                Ok(match api.get_opt(&cc.name_any()).await? {
                    None => Ok(()),
                    Some(c) => Err(format!("finalizers {:?}", c.finalizers())),
                })
            },
        )
        .await
    }
    .await;
    operator.stop().await;
    done
}
