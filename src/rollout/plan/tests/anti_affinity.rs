//! `antiAffinity` (`plan/anti_affinity.rs`): the template of a new revision's ReplicaSet keeps
//! its pods off the stable's nodes, as Argo Rollouts injects it; the first revision and a revert
//! to the stable get the Rollout's template as it is.

use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, PodAntiAffinity, PodTemplateSpec};
use serde_json::json;

use super::*;
use crate::api::AntiAffinity;

fn preferred(weight: i32) -> AntiAffinity {
    serde_json::from_value(json!({
        "preferredDuringSchedulingIgnoredDuringExecution": {"weight": weight},
    }))
    .unwrap()
}

fn required() -> AntiAffinity {
    serde_json::from_value(json!({"requiredDuringSchedulingIgnoredDuringExecution": {}})).unwrap()
}

fn canary(anti: AntiAffinity) -> Rollout {
    let mut r = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever()])
        .build();
    r.spec.strategy.canary.as_mut().unwrap().anti_affinity = Some(anti);
    r
}

/// The term Argo Rollouts injects for stable revision `stable`.
fn term(stable: &str) -> PodAffinityTerm {
    serde_json::from_value(json!({
        "labelSelector": {"matchExpressions": [
            {"key": "rollouts-pod-template-hash", "operator": "In", "values": [stable]},
        ]},
        "namespaces": [NAMESPACE],
        "topologyKey": "kubernetes.io/hostname",
    }))
    .unwrap()
}

fn anti_affinity(t: &PodTemplateSpec) -> Option<&PodAntiAffinity> {
    t.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .pod_anti_affinity
        .as_ref()
}

#[test]
fn a_new_canary_prefers_nodes_without_the_stables_pods() {
    let mut sim = updating(canary(preferred(40)));
    let p = sim.reconcile();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    let t = p.templates.get(&v2).expect("the canary's template");
    let anti = anti_affinity(t).expect("an anti-affinity");
    let terms = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].weight, 40);
    assert_eq!(terms[0].pod_affinity_term, term(&v1));
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    // Only the ReplicaSet's template: the revision's hash is the spec template's.
    let mut plain = t.clone();
    plain.spec.as_mut().unwrap().affinity = None;
    assert_eq!(plain, template("web:2"));
}

#[test]
fn a_required_anti_affinity_is_added_to_the_templates_own_affinity() {
    let own: Affinity = serde_json::from_value(json!({
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"},
        ]},
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["web"]}]},
        ]}},
    }))
    .unwrap();
    let mut sim = Sim::healthy(canary(required()));
    let v1 = sim.status().stable_revision.clone().unwrap();
    sim.set_image("web:2");
    let mut with_own = template("web:2");
    with_own.spec.as_mut().unwrap().affinity = Some(own.clone());
    sim.rollout.spec.template = Some(with_own.clone());
    sim.world.template = Ok(with_own);
    let p = sim.reconcile();
    let v2 = sim.status().current_revision.clone().unwrap();
    assert_ne!(v1, v2);
    let affinity = p.templates[&v2].spec.as_ref().unwrap().affinity.clone();
    let affinity = affinity.unwrap();
    assert_eq!(affinity.node_affinity, own.node_affinity);
    let required = affinity
        .pod_anti_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap();
    let mut expected = own
        .pod_anti_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap();
    expected.push(term(&v1));
    assert_eq!(required, expected);
}

#[test]
fn the_first_revision_and_a_revert_to_the_stable_run_the_template_as_it_is() {
    let mut sim = Sim::new(canary(required()));
    let p = sim.reconcile();
    let v1 = hash_of("web:1");
    assert_eq!(p.templates.get(&v1), Some(&template("web:1")));

    // A revert to the stable whose ReplicaSet is gone from the cache: recreated as it was.
    let mut sim = updating(canary(required()));
    sim.settle();
    sim.world.replica_sets.retain(|rs| rs.hash != v1);
    sim.set_image("web:1");
    let p = plan(&sim.rollout, &sim.world, sim.now);
    assert_eq!(
        p.templates.get(&v1),
        Some(&template("web:1")),
        "{:?}",
        p.actions
    );
}

#[test]
fn blue_green_keeps_the_preview_off_the_active_revisions_nodes() {
    let mut r = RolloutBuilder::blue_green().replicas(2).build();
    r.spec.strategy.blue_green.as_mut().unwrap().anti_affinity = Some(preferred(100));
    let mut sim = updating(r);
    let p = sim.reconcile();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    let terms = anti_affinity(&p.templates[&v2])
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .clone()
        .unwrap();
    assert_eq!(terms[0].pod_affinity_term, term(&v1));
    assert_eq!(terms[0].weight, 100);
}
