//! Slim forms of the Kubernetes objects fledge caches in bulk: one or more of each per Rollout.
//! They parse only the fields fledge reads and skip the rest of the JSON. k8s-openapi's types
//! have room for every field of the API inline, set or not, so the cache held mostly empty
//! fields and parsed specs nobody read.

mod pod;
mod replica_set;

pub use pod::CachedPod;
pub use replica_set::CachedReplicaSet;

/// `kube::Resource` for a slim type that stands for the built-in kind `$kind` of API group
/// `$group` (empty for the core group), version v1, namespaced, with its metadata in field
/// `metadata`.
macro_rules! namespaced_v1 {
    ($ty:ty, $kind:literal, $group:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
use namespaced_v1;
