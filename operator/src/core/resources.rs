//! Compute resources of every pod role: the defaults, and how a role's
//! `spec.resources.<role>` is completed so every container the operator
//! builds has CPU and memory requests and a memory limit.
//!
//! Defaults (a role whose `spec.resources` entry is unset):
//!
//! | role | CPU request | memory request | memory limit |
//! |---|---|---|---|
//! | gateway | 250m | 256Mi | 1Gi |
//! | shard | 250m | 256Mi | 1Gi |
//! | notifier | 50m | 64Mi | 256Mi |
//! | nats | 100m | 128Mi | 1Gi |
//! | scylla | 500m | 1Gi | 1536Mi (the node runs with `--memory=750M`) |
//!
//! Memory gets a limit, CPU does not. Memory cannot be taken back from a
//! process: without a limit a leaking pod grows until the node runs short
//! and the kernel kills whatever it picks, a neighbour included; with one,
//! the leaking pod is the one restarted. CPU can be taken back: a pod without
//! a CPU limit uses idle cores and is pushed back to its request's share only
//! when the node is busy, whereas a CFS quota throttles the message path (a
//! shard sequencing, a gateway fanning out) in 100 ms slices even on an idle
//! node. A CPU limit can still be set per role.
//!
//! Completing a role's resources the user did set:
//! - limits the spec writes are kept as written (`limits: {}` means "no
//!   limits"); when the spec has no `limits`, the default limits apply, with
//!   the memory limit raised to the spec's memory request if that is larger
//!   (a limit below the request is refused by the API server);
//! - each of `cpu` and `memory` the spec does not request is requested at the
//!   limit the spec writes for it (as Kubernetes itself would), else at the
//!   default request — never at a default limit.

use std::collections::BTreeMap;

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::names::Role;

type Amounts = BTreeMap<String, Quantity>;

fn amounts(pairs: &[(&str, &str)]) -> Amounts {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// The resources of a role whose spec sets none.
pub fn default_resources(role: Role) -> ResourceRequirements {
    let (cpu, memory, memory_limit) = match role {
        Role::Gateway | Role::Shard => ("250m", "256Mi", "1Gi"),
        Role::Notifier => ("50m", "64Mi", "256Mi"),
        Role::Nats => ("100m", "128Mi", "1Gi"),
        Role::Scylla => ("500m", "1Gi", "1536Mi"),
    };
    ResourceRequirements {
        requests: Some(amounts(&[("cpu", cpu), ("memory", memory)])),
        limits: Some(amounts(&[("memory", memory_limit)])),
        ..ResourceRequirements::default()
    }
}

/// The spec's resources for `role`, completed (see the module docs), or
/// [`default_resources`].
pub fn resources(cc: &ChatCluster, role: Role) -> ResourceRequirements {
    let r = &cc.spec.resources;
    let set = match role {
        Role::Gateway => &r.gateway,
        Role::Shard => &r.shard,
        Role::Notifier => &r.notifier,
        Role::Nats => &r.nats,
        Role::Scylla => &r.scylla,
    };
    match set {
        None => default_resources(role),
        Some(res) => complete(res.clone(), default_resources(role)),
    }
}

fn complete(mut res: ResourceRequirements, defaults: ResourceRequirements) -> ResourceRequirements {
    let mut requests = res.requests.take().unwrap_or_default();
    let written = res.limits.take();
    for (key, default) in defaults.requests.unwrap_or_default() {
        let limit = written.as_ref().and_then(|l| l.get(&key)).cloned();
        requests.entry(key).or_insert(limit.unwrap_or(default));
    }
    let limits = written.unwrap_or_else(|| {
        let mut limits = defaults.limits.unwrap_or_default();
        if let (Some(asked), Some(limit)) = (requests.get("memory"), limits.get_mut("memory"))
            && larger(asked, limit)
        {
            *limit = asked.clone();
        }
        limits
    });
    res.requests = Some(requests);
    res.limits = Some(limits);
    res
}

/// Whether quantity `a` is larger than `b`; false when either does not parse.
fn larger(a: &Quantity, b: &Quantity) -> bool {
    matches!((value(&a.0), value(&b.0)), (Some(a), Some(b)) if a > b)
}

/// The value of a Kubernetes quantity (`1.5Gi`, `750M`, `250m`, `1e3`).
fn value(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => 10f64.powi(exp.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    const ROLES: [Role; 5] = [
        Role::Gateway,
        Role::Shard,
        Role::Notifier,
        Role::Nats,
        Role::Scylla,
    ];

    #[test]
    fn every_role_defaults_to_requests_and_a_memory_limit_but_no_cpu_limit() {
        let cc = cluster();
        for role in ROLES {
            let r = resources(&cc, role);
            let (requests, limits) = (r.requests.unwrap(), r.limits.unwrap());
            assert!(requests.contains_key("cpu"), "{role:?}");
            let (asked, limit) = (&requests["memory"], &limits["memory"]);
            assert!(larger(limit, asked), "{role:?}: {limit:?} over {asked:?}");
            assert!(!limits.contains_key("cpu"), "{role:?}");
        }
        let shard = resources(&cc, Role::Shard);
        assert_eq!(shard.limits.unwrap()["memory"], q("1Gi"));
        assert_eq!(shard.requests.unwrap()["memory"], q("256Mi"));
        // Above the 750M the dev node is told to use.
        let scylla = resources(&cc, Role::Scylla).limits.unwrap();
        assert_eq!(scylla["memory"], q("1536Mi"));
    }

    #[test]
    fn limits_only_become_requests() {
        let mut cc = cluster();
        cc.spec.resources.gateway = Some(ResourceRequirements {
            limits: Some(amounts(&[("memory", "1Gi")])),
            ..ResourceRequirements::default()
        });
        let r = resources(&cc, Role::Gateway);
        assert_eq!(r.requests.unwrap()["memory"], q("1Gi"));
        assert_eq!(r.limits.unwrap(), amounts(&[("memory", "1Gi")]));
        assert_eq!(resources(&cc, Role::Shard), default_resources(Role::Shard));
    }

    #[test]
    fn requests_only_get_the_default_limit_raised_to_the_request() {
        let mut cc = cluster();
        cc.spec.resources.shard = Some(ResourceRequirements {
            requests: Some(amounts(&[("cpu", "2"), ("memory", "4Gi")])),
            ..ResourceRequirements::default()
        });
        cc.spec.resources.nats = Some(ResourceRequirements {
            requests: Some(amounts(&[("cpu", "1")])),
            ..ResourceRequirements::default()
        });
        let shard = resources(&cc, Role::Shard);
        assert_eq!(
            shard.requests.unwrap(),
            amounts(&[("cpu", "2"), ("memory", "4Gi")])
        );
        assert_eq!(shard.limits.unwrap(), amounts(&[("memory", "4Gi")]));
        // The memory request is not left for Kubernetes to set at the limit.
        let nats = resources(&cc, Role::Nats);
        assert_eq!(
            nats.requests.unwrap(),
            amounts(&[("cpu", "1"), ("memory", "128Mi")])
        );
        assert_eq!(nats.limits.unwrap(), amounts(&[("memory", "1Gi")]));
    }

    #[test]
    fn written_limits_are_kept_and_empty_limits_mean_none() {
        let mut cc = cluster();
        let cpu_limited = ResourceRequirements {
            requests: Some(amounts(&[("cpu", "500m"), ("memory", "512Mi")])),
            limits: Some(amounts(&[("cpu", "1"), ("memory", "2Gi")])),
            ..ResourceRequirements::default()
        };
        cc.spec.resources.gateway = Some(cpu_limited.clone());
        cc.spec.resources.notifier = Some(ResourceRequirements {
            limits: Some(Amounts::new()),
            ..ResourceRequirements::default()
        });
        assert_eq!(resources(&cc, Role::Gateway), cpu_limited);
        let notifier = resources(&cc, Role::Notifier);
        assert_eq!(notifier.limits, Some(Amounts::new()));
        assert_eq!(
            notifier.requests,
            default_resources(Role::Notifier).requests
        );
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(value("1536Mi"), Some(1536.0 * 1024.0 * 1024.0));
        assert_eq!(value("750M"), Some(750e6));
        assert_eq!(value("250m"), Some(0.25));
        assert_eq!(value("1e3"), Some(1000.0));
        assert_eq!(value("2"), Some(2.0));
        assert_eq!(value("lots"), None);
        assert!(larger(&q("1.5Gi"), &q("1G")));
        assert!(!larger(&q("1Gi"), &q("1024Mi")));
        assert!(!larger(&q("huge"), &q("1Gi")));
    }
}
