//! The pod anti-affinity a new revision's ReplicaSet gets (`antiAffinity`, as Argo Rollouts
//! injects it): a term on the stable revision's `rollouts-pod-template-hash`, per node, added to
//! the affinity the template already has. Only on the ReplicaSet fledge creates, never on the
//! Rollout's template, so the revision's hash does not change; a ReplicaSet keeps the term it was
//! created with.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodTemplateSpec, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::api::anti_affinity::ANTI_AFFINITY_TOPOLOGY_KEY;
use crate::api::{AntiAffinity, HASH_LABEL, RolloutSpec};

fn configured(spec: &RolloutSpec) -> Option<&AntiAffinity> {
    match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(c), _) => c.anti_affinity.as_ref(),
        (None, Some(b)) => b.anti_affinity.as_ref(),
        (None, None) => None,
    }
}

/// Adds the term to each template of `templates` (new ReplicaSets, by hash) but the stable's own:
/// the first revision, or a revert to the stable, has no other revision to keep away from.
pub(super) fn add_to_new_replica_sets(
    templates: &mut BTreeMap<String, PodTemplateSpec>,
    spec: &RolloutSpec,
    stable: Option<&str>,
    namespace: &str,
) {
    let (Some(anti), Some(stable)) = (configured(spec), stable) else {
        return;
    };
    for (hash, template) in templates.iter_mut() {
        if hash != stable {
            add(template, anti, stable, namespace);
        }
    }
}

fn add(template: &mut PodTemplateSpec, anti: &AntiAffinity, stable: &str, namespace: &str) {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: HASH_LABEL.to_string(),
                operator: "In".to_string(),
                values: Some(vec![stable.to_string()]),
            }]),
            ..Default::default()
        }),
        namespaces: Some(vec![namespace.to_string()]),
        topology_key: ANTI_AFFINITY_TOPOLOGY_KEY.to_string(),
        ..Default::default()
    };
    let pod = template.spec.get_or_insert_with(Default::default);
    let anti_affinity = pod
        .affinity
        .get_or_insert_with(Affinity::default)
        .pod_anti_affinity
        .get_or_insert_with(PodAntiAffinity::default);
    match &anti.preferred_during_scheduling_ignored_during_execution {
        Some(p) => anti_affinity
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight: p.weight,
                pod_affinity_term: term,
            }),
        None => anti_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term),
    }
}
