//! Smoke tests for helm (built by `e2e/scripts/helm.sh`) against the
//! repository's chart, `charts/confab-operator`.
//!
//! They read the helm binary's path from `CONFAB_HELM` and fail when it is
//! unset or helm does not run.

use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, Result};
use confab_e2e::service_env;
use tokio::process::Command;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/confab-operator")
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
