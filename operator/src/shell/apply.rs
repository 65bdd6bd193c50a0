//! Server-side apply of the core's desired objects, with one field manager,
//! and deletion of children the spec no longer calls for.
//!
//! A child the API server refuses (invalid, forbidden: a 4xx other than a
//! conflict or throttling) is answered as a [`Refusal`] and the next child is
//! applied anyway; only failures worth retrying as they are end the pass.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::names::FIELD_MANAGER;
use crate::core::{Kind, Object};

/// Applies `obj` (namespaced) with the operator's field manager, taking over
/// fields another manager set (the operator owns its children's spec).
async fn apply_one<K>(client: &Client, ns: &str, obj: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(obj)).await?;
    Ok(())
}

/// A child the API server refused, and its message (which names the field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `"StatefulSet chat-shard"`.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// A refusal that retrying the same object cannot fix: any 4xx but 409
/// (conflict) and 429 (throttled).
fn refused(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if (400..500).contains(&s.code) && ![409, 429].contains(&s.code) => {
            Some(s.message.clone())
        }
        _ => None,
    }
}

/// Applies every object, in order; answers the ones refused.
pub async fn apply_all(
    client: &Client,
    ns: &str,
    objects: &[Object],
) -> Result<Vec<Refusal>, kube::Error> {
    let mut refusals = Vec::new();
    for object in objects {
        let result = match object {
            Object::ServiceAccount(o) => apply_one(client, ns, o).await,
            Object::ConfigMap(o) => apply_one(client, ns, o).await,
            Object::Secret(o) => apply_one(client, ns, o).await,
            Object::Service(o) => apply_one(client, ns, o).await,
            Object::StatefulSet(o) => apply_one(client, ns, o).await,
            Object::Deployment(o) => apply_one(client, ns, o).await,
            Object::PodDisruptionBudget(o) => apply_one(client, ns, o).await,
            Object::NetworkPolicy(o) => apply_one(client, ns, o).await,
        };
        match result {
            Ok(()) => {}
            Err(e) => match refused(&e) {
                Some(message) => refusals.push(Refusal {
                    object: format!("{} {}", object.kind(), object.name()),
                    message,
                }),
                None => return Err(e),
            },
        }
    }
    Ok(refusals)
}

/// Deletes `K` `name` in `ns`; answers whether it existed.
pub async fn delete_one<K>(client: &Client, ns: &str, name: &str) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes each absent child that exists; answers those it deleted.
pub async fn delete_absent(
    client: &Client,
    ns: &str,
    absent: &[(Kind, String)],
) -> Result<Vec<String>, kube::Error> {
    let mut deleted = Vec::new();
    for (kind, name) in absent {
        let gone = match kind {
            Kind::Service => delete_one::<Service>(client, ns, name).await?,
            Kind::StatefulSet => delete_one::<StatefulSet>(client, ns, name).await?,
            Kind::PodDisruptionBudget => {
                delete_one::<PodDisruptionBudget>(client, ns, name).await?
            }
            Kind::NetworkPolicy => delete_one::<NetworkPolicy>(client, ns, name).await?,
        };
        if gone {
            deleted.push(format!("{kind:?}/{name}"));
        }
    }
    Ok(deleted)
}
