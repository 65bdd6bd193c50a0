//! The cluster's NetworkPolicies (ingress only), built purely.
//!
//! - `<cluster>-runtime`: shards, gateways and notifiers take HTTP (8080:
//!   WebSocket, REST, probes, metrics) from anywhere, and the control API
//!   (9090) only from the operator's pods, in any namespace.
//! - `<cluster>-nats` (managed NATS): clients (4222) only from the cluster's
//!   runtime pods, routes from the other NATS pods, monitoring (8222) open.
//! - `<cluster>-scylla` (managed ScyllaDB): CQL (9042) only from the
//!   cluster's runtime pods, everything between ScyllaDB pods.

use std::collections::BTreeMap;

use confab_api::cluster::ChatCluster;
use confab_api::config::{CONTROL_PORT, HTTP_PORT};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{CQL_PORT, NATS_PORT};
use super::names::{CLUSTER_LABEL, Names, ROLE_LABEL, Role};

/// Label the operator's pods carry (the chart's `app.kubernetes.io/name`).
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/name", "confab-operator");

const RUNTIME_ROLES: [Role; 3] = [Role::Shard, Role::Gateway, Role::Notifier];

fn ports(ports: &[u16]) -> Option<Vec<NetworkPolicyPort>> {
    Some(
        ports
            .iter()
            .map(|p| NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(*p))),
                protocol: Some("TCP".into()),
                ..NetworkPolicyPort::default()
            })
            .collect(),
    )
}

/// The cluster's pods of `roles`.
fn pods_of(names: &Names, roles: &[Role]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            CLUSTER_LABEL.to_string(),
            names.cluster.clone(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: ROLE_LABEL.into(),
            operator: "In".into(),
            values: Some(roles.iter().map(|r| r.as_str().to_string()).collect()),
        }]),
    }
}

fn from_pods(selector: LabelSelector) -> Option<Vec<NetworkPolicyPeer>> {
    Some(vec![NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }])
}

fn rule(
    from: Option<Vec<NetworkPolicyPeer>>,
    ports: Option<Vec<NetworkPolicyPort>>,
) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule { from, ports }
}

fn policy(
    names: &Names,
    role: &str,
    selector: LabelSelector,
    ingress: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: names.meta(names.child(role), names.labels()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// The policies `cc` calls for: `(wanted, unwanted names)`.
pub fn build_network_policies(
    cc: &ChatCluster,
    names: &Names,
) -> (Vec<NetworkPolicy>, Vec<String>) {
    let all = ["runtime", "nats", "scylla"].map(|r| names.child(r));
    if !cc.spec.network_policy.enabled {
        return (Vec::new(), all.to_vec());
    }
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                OPERATOR_LABEL.0.to_string(),
                OPERATOR_LABEL.1.to_string(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let runtime = pods_of(names, &RUNTIME_ROLES);
    let mut wanted = vec![policy(
        names,
        "runtime",
        runtime.clone(),
        vec![
            rule(None, ports(&[HTTP_PORT])),
            rule(Some(vec![operator]), ports(&[CONTROL_PORT])),
        ],
    )];
    let mut unwanted = Vec::new();
    if cc.spec.nats.managed.is_some() {
        let nats = pods_of(names, &[Role::Nats]);
        wanted.push(policy(
            names,
            "nats",
            nats.clone(),
            vec![
                rule(from_pods(runtime.clone()), ports(&[NATS_PORT])),
                rule(from_pods(nats), None),
                rule(None, ports(&[super::nats::MONITOR_PORT])),
            ],
        ));
    } else {
        unwanted.push(all[1].clone());
    }
    if cc.spec.scylla.managed.is_some() {
        let scylla = pods_of(names, &[Role::Scylla]);
        wanted.push(policy(
            names,
            "scylla",
            scylla.clone(),
            vec![
                rule(from_pods(runtime), ports(&[CQL_PORT])),
                rule(from_pods(scylla), None),
            ],
        ));
    } else {
        unwanted.push(all[2].clone());
    }
    (wanted, unwanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;

    fn ingress(p: &NetworkPolicy) -> Vec<NetworkPolicyIngressRule> {
        p.spec.clone().unwrap().ingress.unwrap()
    }

    fn port_numbers(r: &NetworkPolicyIngressRule) -> Vec<i32> {
        r.ports
            .iter()
            .flatten()
            .map(|p| match p.port {
                Some(IntOrString::Int(n)) => n,
                _ => panic!("numeric ports only"),
            })
            .collect()
    }

    #[test]
    fn only_the_operator_reaches_the_control_api_and_http_stays_open() {
        let cc = cluster();
        let (wanted, _) = build_network_policies(&cc, &Names::new(&cc));
        let runtime = &wanted[0];
        assert_eq!(runtime.metadata.name.as_deref(), Some("chat-runtime"));
        let selector = runtime.spec.clone().unwrap().pod_selector.unwrap();
        let roles = selector.match_expressions.unwrap()[0]
            .values
            .clone()
            .unwrap();
        assert_eq!(roles, ["shard", "gateway", "notifier"]);
        let rules = ingress(runtime);
        assert_eq!(port_numbers(&rules[0]), [8080]);
        assert_eq!(rules[0].from, None, "HTTP from anywhere");
        assert_eq!(port_numbers(&rules[1]), [9090]);
        let peer = &rules[1].from.as_ref().unwrap()[0];
        let labels = peer.pod_selector.clone().unwrap().match_labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "confab-operator");
        assert_eq!(rules.len(), 2, "nothing else reaches the runtime pods");
    }

    #[test]
    fn managed_backing_services_take_clients_only_from_the_runtime_pods() {
        let cc = cluster();
        let (wanted, unwanted) = build_network_policies(&cc, &Names::new(&cc));
        let names: Vec<_> = wanted
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["chat-runtime", "chat-nats", "chat-scylla"]);
        assert!(unwanted.is_empty());
        let nats = ingress(&wanted[1]);
        assert_eq!(port_numbers(&nats[0]), [4222]);
        let from = nats[0].from.as_ref().unwrap()[0]
            .pod_selector
            .clone()
            .unwrap();
        assert_eq!(from.match_labels.unwrap()[CLUSTER_LABEL], "chat");
        let scylla = ingress(&wanted[2]);
        assert_eq!(port_numbers(&scylla[0]), [9042]);
    }

    #[test]
    fn opting_out_deletes_every_policy() {
        let mut cc = cluster();
        cc.spec.network_policy.enabled = false;
        let (wanted, unwanted) = build_network_policies(&cc, &Names::new(&cc));
        assert!(wanted.is_empty());
        assert_eq!(unwanted, ["chat-runtime", "chat-nats", "chat-scylla"]);
    }
}
