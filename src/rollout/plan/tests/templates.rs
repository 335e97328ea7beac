//! Which template a ReplicaSet fledge creates runs (`plan/templates.rs`).

use super::*;

fn scales(plan: &Plan, hash: &str) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::ApplyReplicaSet { hash: h, .. } if h == hash))
}

#[test]
fn a_new_revisions_replica_set_is_created_from_the_specs_template() {
    let mut sim = updating(
        RolloutBuilder::canary()
            .replicas(4)
            .steps([w(50), pause_forever()])
            .build(),
    );
    let p = sim.reconcile();
    let v2 = hash_of("web:2");
    assert!(scales(&p, &v2), "{:?}", p.actions);
    assert_eq!(p.templates.len(), 1, "{:?}", p.templates.keys());
    assert_eq!(p.templates.get(&v2), Some(&template("web:2")));
}

/// Scenario: the stable's ReplicaSet is gone from the cache when an abort scales it back up. The
/// plan still scales it, but gives it no template: created from the spec's, it would run web:2
/// under web:1's name and hash label.
#[test]
fn an_old_revision_missing_from_the_cache_gets_no_template() {
    let mut sim = updating(
        RolloutBuilder::canary()
            .replicas(4)
            .steps([w(50), pause_forever()])
            .build(),
    );
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.world.replica_sets.retain(|rs| rs.hash != v1);
    sim.request(RequestAction::Abort);
    let p = plan(&sim.rollout, &sim.world, sim.now);
    assert!(scales(&p, &v1), "{:?}", p.actions);
    assert!(!p.templates.contains_key(&v1), "{:?}", p.templates.keys());
    assert!(p.templates.keys().all(|h| *h == v2));
}

#[test]
fn a_plan_that_creates_nothing_carries_no_template() {
    let mut sim = Sim::healthy(RolloutBuilder::canary().replicas(2).steps([w(50)]).build());
    let p = sim.reconcile();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p.templates.is_empty());
}
