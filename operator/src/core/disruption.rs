//! PodDisruptionBudgets: how many pods of a role a voluntary disruption (a
//! node drain, a cluster-autoscaler scale-down) may take at once.
//!
//! | role | budget | why |
//! |---|---|---|
//! | gateway | maxUnavailable 1, with more than one replica | clients of a drained gateway reconnect to the others and resume |
//! | shard | maxUnavailable 1, always | a drained shard's chats wait until it is back or failed over; one at a time keeps that to 1/N of the chats, and a NotReady shard uses up the budget so a drain does not take a second one |
//! | nats | maxUnavailable (replicas−1)/2, with 3 or more servers | a JetStream cluster keeps its quorum (a majority) through the drain: 1 of 3, 2 of 5 |
//! | notifier, scylla | none | notifiers are stateless queue consumers; see below for ScyllaDB |
//!
//! A budget that allows nothing (`maxUnavailable: 0`) blocks every drain of
//! the node its pod runs on until someone deletes it, so none is written for
//! a single gateway, one or two NATS servers (a quorum of one or two cannot
//! survive losing a server anyway) or the single dev ScyllaDB node: draining
//! takes them down for the time a new pod needs to start (with an emptyDir
//! the data goes too: set `storage`, and use an external ScyllaDB in
//! production). Every budget lets a drain evict pods that are not Ready
//! (`unhealthyPodEvictionPolicy: AlwaysAllow`): a crashing pod never holds a
//! node hostage.

use confab_api::cluster::ChatCluster;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{Names, Role};

/// The budget's `maxUnavailable` for `role`, or `None` for no budget.
pub fn max_unavailable(cc: &ChatCluster, role: Role) -> Option<i32> {
    let allowed = match role {
        Role::Gateway => i32::from(cc.spec.gateway.replicas > 1),
        Role::Shard => 1,
        Role::Nats => cc
            .spec
            .nats
            .managed
            .as_ref()
            .map_or(0, |m| (m.replicas - 1) / 2),
        Role::Notifier | Role::Scylla => 0,
    };
    (allowed > 0).then_some(allowed)
}

/// The PodDisruptionBudget of `role` (named like its workload), or `None`.
pub fn build_pdb(cc: &ChatCluster, names: &Names, role: Role) -> Option<PodDisruptionBudget> {
    let allowed = max_unavailable(cc, role)?;
    Some(PodDisruptionBudget {
        metadata: names.meta(names.workload(role), names.role_labels(role)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(allowed)),
            selector: Some(names.label_selector(role)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{cluster, with_shards};
    use confab_api::cluster::{ExternalNats, ManagedNats};

    fn allowed(pdb: Option<PodDisruptionBudget>) -> Option<IntOrString> {
        pdb.and_then(|p| p.spec?.max_unavailable)
    }

    #[test]
    fn gateway_budget_only_with_more_than_one_replica() {
        let mut cc = cluster();
        assert!(build_pdb(&cc, &Names::new(&cc), Role::Gateway).is_none());
        cc.spec.gateway.replicas = 2;
        let pdb = build_pdb(&cc, &Names::new(&cc), Role::Gateway);
        assert_eq!(allowed(pdb), Some(IntOrString::Int(1)));
    }

    #[test]
    fn shards_lose_one_at_a_time_whatever_their_count() {
        for count in [1, 3, 256] {
            let cc = with_shards(count);
            let names = Names::new(&cc);
            let pdb = build_pdb(&cc, &names, Role::Shard).unwrap();
            assert_eq!(pdb.metadata.name.as_deref(), Some("chat-shard"));
            assert!(pdb.metadata.owner_references.is_some());
            let spec = pdb.spec.unwrap();
            assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
            assert_eq!(spec.selector, Some(names.label_selector(Role::Shard)));
            assert_eq!(
                spec.unhealthy_pod_eviction_policy.as_deref(),
                Some("AlwaysAllow")
            );
        }
    }

    #[test]
    fn nats_keeps_its_jetstream_quorum_and_never_blocks_a_drain() {
        let mut cc = cluster();
        let by_size: Vec<(i32, Option<IntOrString>)> = (1..=5)
            .map(|replicas| {
                cc.spec.nats.managed = Some(ManagedNats {
                    replicas,
                    storage: None,
                });
                (
                    replicas,
                    allowed(build_pdb(&cc, &Names::new(&cc), Role::Nats)),
                )
            })
            .collect();
        let int = |n| Some(IntOrString::Int(n));
        assert_eq!(
            by_size,
            [(1, None), (2, None), (3, int(1)), (4, int(1)), (5, int(2))]
        );
        cc.spec.nats.managed = None;
        cc.spec.nats.external = Some(ExternalNats {
            url: "nats://x:4222".into(),
            credentials_secret: None,
            tls: None,
        });
        assert!(build_pdb(&cc, &Names::new(&cc), Role::Nats).is_none());
    }

    #[test]
    fn single_dev_scylla_and_notifiers_get_no_budget() {
        let mut cc = cluster();
        cc.spec.notifier.replicas = 3;
        let names = Names::new(&cc);
        assert!(build_pdb(&cc, &names, Role::Scylla).is_none());
        assert!(build_pdb(&cc, &names, Role::Notifier).is_none());
    }
}
