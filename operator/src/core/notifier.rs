//! The notifier Deployment (push queue consumers) and the ServiceAccount
//! every runtime pod runs as.

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ServiceAccount};

use super::config::secret_volumes;
use super::names::{Names, Role};
use super::pod::{pod_spec, runtime_container, runtime_template_meta, runtime_volumes};

/// The notifier Deployment; it mounts only the push credentials.
pub fn build_notifier_deployment(cc: &ChatCluster, names: &Names) -> Deployment {
    let labels = names.role_labels(Role::Notifier);
    let (volumes, mounts) = runtime_volumes(names, &secret_volumes(cc, names, Role::Notifier));
    let container = runtime_container(cc, Role::Notifier, mounts);
    Deployment {
        metadata: names.meta(names.workload(Role::Notifier), labels.clone()),
        spec: DeploymentSpec {
            replicas: Some(cc.spec.notifier.replicas),
            selector: names.label_selector(Role::Notifier),
            template: PodTemplateSpec {
                metadata: Some(runtime_template_meta(cc, names, labels)),
                spec: Some(pod_spec(cc, names, vec![container], volumes)),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

/// The runtime pods' ServiceAccount. It has no RBAC: the runtime never calls
/// the Kubernetes API, and pods do not even mount its token.
pub fn build_service_account(names: &Names) -> ServiceAccount {
    ServiceAccount {
        metadata: names.meta(names.service_account(), names.labels()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::cluster;
    use confab_api::cluster::{ApnsSpec, SecretKeyRef};

    #[test]
    fn notifier_mounts_push_credentials_only() {
        let mut cc = cluster();
        cc.spec.notifier.replicas = 2;
        cc.spec.push.apns = Some(ApnsSpec {
            key: SecretKeyRef {
                name: "apns".into(),
                key: "key.p8".into(),
            },
            key_id: "ABC123DEFG".into(),
            team_id: "TEAM123456".into(),
            topic: "dev.confab.app".into(),
            sandbox: false,
        });
        let names = Names::new(&cc);
        let spec = build_notifier_deployment(&cc, &names).spec;
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].args, Some(vec!["notifier".to_string()]));
        let paths: Vec<String> = pod.containers[0]
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .map(|m| m.mount_path)
            .collect();
        assert!(paths.contains(&"/var/run/confab/apns".to_string()));
        assert!(!paths.contains(&"/var/run/confab/auth".to_string()));
    }

    #[test]
    fn service_account_mounts_no_token() {
        let sa = build_service_account(&Names::new(&cluster()));
        assert_eq!(sa.metadata.name.as_deref(), Some("chat-runtime"));
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
