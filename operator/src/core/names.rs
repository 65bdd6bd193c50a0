//! Names, labels and owner references of everything a `ChatCluster` owns.
//!
//! One place decides what each child is called and how it is selected, so
//! builders, the observer and the finalizer agree. Pure: no I/O.

use std::collections::BTreeMap;

use confab_api::cluster::ChatCluster;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// Label naming the `ChatCluster` a child belongs to.
pub const CLUSTER_LABEL: &str = "confab.dev/cluster";
/// Label naming a pod's role.
pub const ROLE_LABEL: &str = "app.kubernetes.io/component";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "confab-operator";

/// A pod role, and the name suffix of its workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Shard,
    Notifier,
    Nats,
    Scylla,
}

impl Role {
    /// The role as chat-runtime's subcommand and as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Shard => "shard",
            Role::Notifier => "notifier",
            Role::Nats => "nats",
            Role::Scylla => "scylla",
        }
    }
}

/// Naming for one cluster's children.
#[derive(Clone, Debug)]
pub struct Names {
    /// The ChatCluster's name.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    owner: OwnerReference,
}

impl Names {
    /// Names for `cc`. A `ChatCluster` read from the API always has a name,
    /// namespace and uid; test fixtures set them too.
    pub fn new(cc: &ChatCluster) -> Self {
        let owner = cc
            .controller_owner_ref(&())
            .expect("a ChatCluster from the API has a name and uid");
        Self {
            cluster: cc.name_any(),
            namespace: cc.namespace().unwrap_or_default(),
            owner,
        }
    }

    /// `<cluster>-<suffix>`.
    pub fn child(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cluster)
    }

    /// Workload (and Service) name of a role.
    pub fn workload(&self, role: Role) -> String {
        self.child(role.as_str())
    }

    /// The runtime ConfigMap.
    pub fn config_map(&self) -> String {
        self.child("config")
    }

    /// The Secret holding the control API's bearer token.
    pub fn control_token_secret(&self) -> String {
        self.child("control-token")
    }

    /// The Secret holding the managed NATS's client token.
    pub fn nats_auth_secret(&self) -> String {
        self.child("nats-auth")
    }

    /// The ServiceAccount runtime pods use.
    pub fn service_account(&self) -> String {
        self.child("runtime")
    }

    /// Pod name of shard `ordinal`.
    pub fn shard_pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.workload(Role::Shard))
    }

    /// Control API address of shard `ordinal` (through the headless Service).
    pub fn shard_control_address(&self, ordinal: u32) -> String {
        self.shard_address_template()
            .replace("{ordinal}", &ordinal.to_string())
    }

    /// Address template with `{ordinal}`, as written into the runtime config.
    pub fn shard_address_template(&self) -> String {
        let sts = self.workload(Role::Shard);
        format!(
            "{sts}-{{ordinal}}.{sts}.{}.svc:{}",
            self.namespace,
            confab_api::config::CONTROL_PORT
        )
    }

    /// Labels every child carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CLUSTER_LABEL.into(), self.cluster.clone()),
            ("app.kubernetes.io/name".into(), "confab".into()),
            ("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into()),
        ])
    }

    /// Labels that select a role's pods (a subset of [`Names::role_labels`]).
    pub fn selector(&self, role: Role) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CLUSTER_LABEL.into(), self.cluster.clone()),
            (ROLE_LABEL.into(), role.as_str().into()),
        ])
    }

    /// The selector as a `LabelSelector`.
    pub fn label_selector(&self, role: Role) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector(role)),
            ..LabelSelector::default()
        }
    }

    /// The selector as a string, e.g. for list calls and the scale subresource.
    pub fn selector_string(&self, role: Role) -> String {
        self.selector(role)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Labels of a role's objects and pods.
    pub fn role_labels(&self, role: Role) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.extend(self.selector(role));
        labels
    }

    /// Metadata of a child called `name`: namespace, labels, owner reference.
    pub fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;

    #[test]
    fn children_are_prefixed_and_owned() {
        let names = Names::new(&cluster());
        assert_eq!(names.workload(Role::Shard), "chat-shard");
        assert_eq!(names.shard_pod(2), "chat-shard-2");
        assert_eq!(
            names.shard_control_address(2),
            "chat-shard-2.chat-shard.prod.svc:9090"
        );
        let meta = names.meta("chat-x".into(), names.labels());
        let owner = &meta.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "ChatCluster");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.uid, "uid-1");
    }

    #[test]
    fn selector_is_stable_and_a_subset_of_labels() {
        let names = Names::new(&cluster());
        assert_eq!(
            names.selector_string(Role::Shard),
            "app.kubernetes.io/component=shard,confab.dev/cluster=chat"
        );
        let labels = names.role_labels(Role::Shard);
        for (k, v) in names.selector(Role::Shard) {
            assert_eq!(labels.get(&k), Some(&v));
        }
    }
}
