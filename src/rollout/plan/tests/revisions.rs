//! Revisions: the pod-template hash, the first deployment, a new revision during a rollout, and a
//! revert to the stable revision.

use super::*;

// 1. Revisions.

#[test]
fn revision_is_the_pod_template_hash_and_names_the_replica_set() {
    let rollout = RolloutBuilder::canary().replicas(2).build();
    let world = ObservedBuilder::for_rollout(&rollout).build();
    let p = plan(&rollout, &world, t0());
    let h1 = hash_of("web:1");
    assert_eq!(p.actions[0], apply_rs(&h1, 2));
    assert_eq!(p.status.current_revision.as_deref(), Some(h1.as_str()));
    assert_eq!(
        crate::rollout::act::replica_set_name(&rollout, &h1),
        format!("web-{h1}")
    );

    // Same template, same revision, whatever else changes in the Rollout.
    let other = RolloutBuilder::canary().replicas(7).steps([w(10)]).build();
    let p2 = plan(&other, &ObservedBuilder::for_rollout(&other).build(), t0());
    assert_eq!(p2.status.current_revision, p.status.current_revision);
    assert_ne!(hash_of("web:1"), hash_of("web:2"));
}

#[test]
fn revision_hash_is_pinned_across_releases() {
    // Changing this value orphans the ReplicaSets of every Rollout in every cluster.
    assert_eq!(hash_of("web:1"), "t52mqhjfjq");
}

// 2. First deployment.

#[test]
fn first_canary_deployment_goes_straight_to_full_scale_and_stable() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), pause_forever()])
        .build();
    let mut sim = Sim::new(rollout);
    let h1 = hash_of("web:1");
    let p = sim.reconcile();
    assert_eq!(
        p.actions,
        vec![apply_rs(&h1, 4), pin(STABLE_SVC, &h1), pin(CANARY_SVC, &h1)]
    );
    assert_eq!(reasons(&p), ["Deploying"]);
    assert_eq!(p.status.stable_revision.as_deref(), Some(h1.as_str()));
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert_eq!(
        p.requeue_after, None,
        "no deadline for a revision that is already stable"
    );

    sim.sync_pods();
    sim.pods_ready();
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_eq!(p.status.available_replicas, Some(4));
    assert_eq!(
        condition(&p.status, cond::READY),
        ("True", cond::REASON_HEALTHY)
    );
    assert_eq!(sim.settle().len(), 1, "a healthy rollout is quiet");
}

#[test]
fn first_blue_green_deployment_goes_straight_to_full_scale_and_stable() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(3)
        .preview_replicas(1)
        .build();
    let mut sim = Sim::new(rollout);
    let h1 = hash_of("web:1");
    let p = sim.reconcile();
    assert_eq!(
        p.actions,
        vec![
            apply_rs(&h1, 3),
            pin(ACTIVE_SVC, &h1),
            pin(PREVIEW_SVC, &h1)
        ]
    );
    assert_eq!(p.status.stable_revision.as_deref(), Some(h1.as_str()));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(sim.status().pause_conditions.is_empty());
}

// 6. A new revision during a rollout.

#[test]
fn new_revision_replaces_the_in_flight_canary_and_restarts_the_steps() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    let (h1, h2, h3) = (hash_of("web:1"), hash_of("web:2"), hash_of("web:3"));
    assert_eq!(sim.sizes(&h2, &h1), (2, 2));

    sim.advance(10);
    sim.set_image("web:3");
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["NewRevision"]);
    assert!(
        p.actions.contains(&apply_rs(&h2, 0)),
        "old canary goes at once"
    );
    assert!(p.actions.contains(&pin(CANARY_SVC, &h3)));
    assert_eq!(p.status.current_revision, Some(h3.clone()));
    assert_eq!(p.status.stable_revision, Some(h1.clone()));
    assert_eq!(p.status.current_step_index, Some(0));
    assert!(
        p.status.pause_conditions.is_empty(),
        "the old pause is gone"
    );
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.sizes(&h3, &h1), (2, 2));
    assert_eq!(sim.size(&h2), 0);
    assert_eq!(
        sim.status().pause_conditions[0].start_time.0,
        sim.now,
        "a new pause"
    );
}

// 7. Back to the stable revision.

/// The steps are skipped at once; without a router the pods go back as a Deployment rolls back
/// (the stable grows within maxSurge, the canary's pods go as the stable's become available).
#[test]
fn going_back_to_the_stable_revision_skips_the_steps() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever(), w(75)])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.set_image("web:1");
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["RolledBack"]);
    assert_eq!(p.status.current_step_index, Some(3), "no steps");
    assert!(p.status.pause_conditions.is_empty());
    assert_eq!(p.actions, vec![apply_rs(&h1, 3), pin(CANARY_SVC, &h1)]);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.sizes(&h2, &h1), (0, 4));
}
