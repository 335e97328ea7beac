//! Role metadata: the labels and annotations of `stableMetadata`/`canaryMetadata` (and blue-green's
//! `activeMetadata`/`previewMetadata`) follow the role each revision holds.

use std::collections::BTreeMap;

use super::*;
use crate::api::PodMetadata;

fn role(value: &str) -> Option<PodMetadata> {
    Some(PodMetadata {
        labels: BTreeMap::from([("role".into(), value.into())]),
        annotations: BTreeMap::from([("example.com/role".into(), value.into())]),
    })
}

fn role_of(sim: &Sim, hash: &str) -> Option<String> {
    sim.rs(hash)
        .expect("the ReplicaSet exists")
        .role_metadata
        .labels
        .get("role")
        .cloned()
}

fn canary_with_roles(steps: Vec<crate::api::CanaryStep>) -> Rollout {
    let mut rollout = RolloutBuilder::canary().replicas(4).steps(steps).build();
    let c = rollout.spec.strategy.canary.as_mut().unwrap();
    c.stable_metadata = role("stable");
    c.canary_metadata = role("canary");
    rollout
}

#[test]
fn the_first_revision_carries_the_stable_metadata() {
    let sim = Sim::healthy(canary_with_roles(vec![w(50), pause_forever()]));
    assert_eq!(role_of(&sim, &hash_of("web:1")).as_deref(), Some("stable"));
}

#[test]
fn promotion_moves_the_stable_metadata_to_the_canary_and_takes_it_off_the_old_stable() {
    let mut sim = updating(canary_with_roles(vec![w(50), pause_forever()]));
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    assert_eq!(role_of(&sim, &h2).as_deref(), Some("canary"));
    assert_eq!(role_of(&sim, &h1).as_deref(), Some("stable"));

    sim.request(RequestAction::Promote);
    let plans = sim.settle();
    // The plan that promotes also moves the metadata: no pod of the new stable keeps the canary's.
    let promoting = promotion(&plans);
    let moved: Vec<(&str, Option<&str>, Option<&str>)> = promoting
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetRoleMetadata {
                hash,
                previous,
                metadata,
            } => Some((
                hash.as_str(),
                previous.labels.get("role").map(String::as_str),
                metadata.labels.get("role").map(String::as_str),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        [
            (h1.as_str(), Some("stable"), None),
            (h2.as_str(), Some("canary"), Some("stable")),
        ]
    );
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(role_of(&sim, &h2).as_deref(), Some("stable"));
    assert_eq!(sim.rs(&h1).unwrap().role_metadata, PodMetadata::default());
}

#[test]
fn an_abort_leaves_each_revision_its_role() {
    let mut sim = updating(canary_with_roles(vec![w(50), pause_forever()]));
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    sim.request(RequestAction::Abort);
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(role_of(&sim, &h1).as_deref(), Some("stable"));
    assert_eq!(role_of(&sim, &h2).as_deref(), Some("canary"));
}

#[test]
fn blue_green_preview_metadata_becomes_active_metadata_at_the_switch() {
    let mut rollout = RolloutBuilder::blue_green()
        .replicas(2)
        .auto_promotion(false)
        .build();
    let b = rollout.spec.strategy.blue_green.as_mut().unwrap();
    b.active_metadata = role("active");
    b.preview_metadata = role("preview");
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(role_of(&sim, &h1).as_deref(), Some("active"));
    assert_eq!(role_of(&sim, &h2).as_deref(), Some("preview"));
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(h2.as_str()));
    assert_eq!(role_of(&sim, &h2).as_deref(), Some("active"));
    assert_eq!(role_of(&sim, &h1), None);
}

#[test]
fn without_role_metadata_nothing_is_written() {
    let mut sim = updating(RolloutBuilder::canary().steps([w(50)]).build());
    let plans = sim.settle();
    assert!(
        !plans
            .iter()
            .flat_map(|p| &p.actions)
            .any(|a| matches!(a, Action::SetRoleMetadata { .. }))
    );
}

#[test]
fn a_bad_role_label_is_an_invalid_spec_naming_the_field() {
    let mut rollout = canary_with_roles(vec![w(50)]);
    let c = rollout.spec.strategy.canary.as_mut().unwrap();
    c.canary_metadata
        .as_mut()
        .unwrap()
        .labels
        .insert("app".into(), "x".into());
    let sim_plan = plan(
        &rollout,
        &ObservedBuilder::for_rollout(&rollout).build(),
        t0(),
    );
    let c = cond::find(&sim_plan.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert!(
        c.message
            .contains("strategy.canary.canaryMetadata.labels[\"app\"]"),
        "{}",
        c.message
    );
}

/// One reconcile after observe found a pod of `hash` that is not as its role wants.
fn reconcile_with_a_stray_pod(sim: &mut Sim, hash: &str) -> Plan {
    sim.world
        .replica_sets
        .iter_mut()
        .find(|rs| rs.hash == hash)
        .unwrap()
        .pods_out_of_role = true;
    sim.reconcile()
}

#[test]
fn a_pod_created_from_a_template_read_before_the_change_is_written_again() {
    let mut sim = Sim::healthy(canary_with_roles(vec![w(50)]));
    let h1 = hash_of("web:1");
    assert_eq!(
        reconcile_with_a_stray_pod(&mut sim, &h1).actions,
        [Action::SetRoleMetadata {
            hash: h1.clone(),
            previous: role("stable").unwrap(),
            metadata: role("stable").unwrap(),
        }]
    );
    assert!(sim.reconcile().actions.is_empty());
}

#[test]
fn a_stray_pod_that_keeps_a_role_key_its_record_no_longer_names_loses_it() {
    // Only the canary has role metadata: the stable's record is empty, so after a promotion
    // the record alone no longer says which key a stray pod of the new stable must lose.
    let mut rollout = RolloutBuilder::canary().replicas(4).steps([w(50)]).build();
    let track = PodMetadata {
        labels: BTreeMap::from([("track".into(), "canary".into())]),
        annotations: BTreeMap::new(),
    };
    rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .canary_metadata = Some(track);
    let mut sim = Sim::healthy(rollout);
    let h1 = hash_of("web:1");
    assert_eq!(
        reconcile_with_a_stray_pod(&mut sim, &h1).actions,
        [Action::SetRoleMetadata {
            hash: h1.clone(),
            previous: PodMetadata {
                labels: BTreeMap::from([("track".into(), String::new())]),
                annotations: BTreeMap::new(),
            },
            metadata: PodMetadata::default(),
        }]
    );
    assert!(sim.reconcile().actions.is_empty());
}
