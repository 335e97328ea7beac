//! Which pod template a ReplicaSet fledge creates runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::Action;

/// The template each ReplicaSet that `actions` scale may be created from, by revision hash: the
/// spec's template, for the spec's own revision only. A ReplicaSet that exists keeps the template
/// it has. One of an old revision that is gone from the cache gets none: created from the spec's
/// template, it would run the new template under the old revision's name and hash label.
pub(super) fn for_new_replica_sets(
    actions: &[Action],
    template: &PodTemplateSpec,
    hash: &str,
) -> BTreeMap<String, PodTemplateSpec> {
    let scaled = actions
        .iter()
        .any(|a| matches!(a, Action::ApplyReplicaSet { hash: h, .. } if h == hash));
    scaled
        .then(|| (hash.to_string(), template.clone()))
        .into_iter()
        .collect()
}
