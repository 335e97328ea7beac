//! Promotion, old revisions and their history, and the `workloadRef` Deployment.

use super::*;

// 5. Promotion and old revisions.

#[test]
fn after_the_last_step_the_canary_becomes_stable_and_the_old_stable_goes_after_the_delay() {
    let rollout = RolloutBuilder::canary().replicas(4).steps([w(50)]).build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    let plans = sim.settle();
    // The canary goes to full size first; the stable Service moves once it is available.
    let full = plans
        .iter()
        .position(|p| p.actions.contains(&apply_rs(&h2, 4)))
        .unwrap();
    assert_eq!(plans[full].status.stable_revision, Some(h1.clone()));
    assert!(!plans[full].actions.contains(&pin(STABLE_SVC, &h2)));
    let promoted = promotion(&plans);
    let at = sim.now + secs(30);
    assert!(promoted.actions.contains(&pin(STABLE_SVC, &h2)));
    assert!(
        !promoted
            .actions
            .iter()
            .any(|a| matches!(a, Action::ApplyReplicaSet { hash, .. } if *hash == h1)),
        "the old stable keeps its pods: {promoted:#?}"
    );
    assert_eq!(promoted.status.scale_down_at, Some(Time(at)));
    assert_eq!(promoted.status.stable_revision, Some(h2.clone()));
    assert_eq!(promoted.status.canary_weight, Some(100));
    assert_eq!(promoted.status.current_step_index, Some(1));
    assert_eq!(promoted.status.phase, Some(Phase::Healthy));
    assert_eq!(promoted.requeue_after, after(30));

    sim.advance(29);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, after(1));
    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![apply_rs(&h1, 0)]);
    assert_eq!(p.requeue_after, None);
    sim.settle();
    assert_eq!(sim.size(&h1), 0);
}

#[test]
fn scale_down_delay_zero_scales_the_old_stable_down_at_promotion() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .scale_down_delay(0)
        .steps([w(50)])
        .build();
    let mut sim = updating(rollout);
    let plans = sim.settle();
    let promoted = promotion(&plans);
    assert!(promoted.actions.contains(&apply_rs(&hash_of("web:1"), 0)));
    assert_eq!(promoted.requeue_after, None);
}

#[test]
fn a_replica_set_is_deleted_only_once_its_pods_are_gone() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(1)
            .revision_history_limit(0)
            .build(),
    );
    let mut going = old_rs("a", 10);
    going.current = 1;
    sim.world.replica_sets.push(going);
    assert_eq!(sim.reconcile().actions, vec![]);
    sim.sync_pods();
    assert_eq!(
        sim.reconcile().actions,
        vec![Action::DeleteReplicaSet {
            name: "web-a".into()
        }]
    );
}

fn old_rs(hash: &str, seconds_ago: i64) -> ObservedReplicaSet {
    ObservedReplicaSet {
        name: format!("{NAME}-{hash}"),
        hash: hash.into(),
        created: Some(t0() - secs(seconds_ago)),
        ..Default::default()
    }
}

#[test]
fn at_most_revision_history_limit_old_replica_sets_are_kept() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(1)
            .revision_history_limit(2)
            .build(),
    );
    for (i, h) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        sim.world.replica_sets.push(old_rs(h, 100 * (i as i64 + 1)));
    }
    let p = sim.reconcile();
    let deleted: Vec<_> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::DeleteReplicaSet { name } => name.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(deleted, ["web-c", "web-d", "web-e"], "the oldest go");
}

#[test]
fn revision_history_limit_defaults_to_10() {
    let mut sim = Sim::healthy(RolloutBuilder::canary().build());
    for i in 0..12 {
        sim.world
            .replica_sets
            .push(old_rs(&format!("old{i:02}"), 10 + i));
    }
    let p = sim.reconcile();
    assert_eq!(
        p.actions,
        vec![
            Action::DeleteReplicaSet {
                name: "web-old10".into()
            },
            Action::DeleteReplicaSet {
                name: "web-old11".into()
            },
        ]
    );
}

#[test]
fn with_no_history_the_old_stable_is_deleted_once_its_pods_are_gone() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .revision_history_limit(0)
        .scale_down_delay(0)
        .steps([w(50)])
        .build();
    let mut sim = updating(rollout);
    let plans = sim.settle();
    let promoted = plans
        .iter()
        .position(|p| std::ptr::eq(p, promotion(&plans)))
        .unwrap();
    let h1 = hash_of("web:1");
    assert!(plans[promoted].actions.contains(&apply_rs(&h1, 0)));
    // Deleted once its pods are gone, not before.
    assert_eq!(
        plans[promoted + 1].actions,
        vec![Action::DeleteReplicaSet {
            name: format!("web-{h1}")
        }]
    );
    assert!(sim.rs(&h1).is_none());
}

#[test]
fn workload_ref_scale_down_onsuccess_scales_the_deployment_once_healthy() {
    let mut rollout = RolloutBuilder::canary()
        .replicas(2)
        .workload_ref("web-deploy")
        .build();
    rollout.spec.workload_ref.as_mut().unwrap().scale_down = Some(crate::api::ScaleDown::Onsuccess);
    let world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    let mut sim = Sim::new(rollout);
    sim.world = world;
    // While the Rollout's own pods are not yet available, the Deployment keeps its pods.
    let first = sim.reconcile();
    assert!(
        !first
            .actions
            .iter()
            .any(|a| matches!(a, Action::ScaleWorkload { .. })),
        "{first:#?}"
    );
    let plans = sim.settle();
    let scaled: Vec<_> = plans
        .iter()
        .filter(|p| {
            p.actions.contains(&Action::ScaleWorkload {
                name: "web-deploy".into(),
                replicas: 0,
            })
        })
        .collect();
    assert_eq!(scaled.len(), 1, "scaled down once: {plans:#?}");
    assert_eq!(scaled[0].status.phase, Some(Phase::Healthy));
}

#[test]
fn workload_ref_scale_down_never_leaves_the_deployment() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .workload_ref("web-deploy")
        .build();
    let world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    let mut sim = Sim::new(rollout);
    sim.world = world;
    let plans = sim.settle();
    assert!(!plans.iter().any(|p| {
        p.actions
            .iter()
            .any(|a| matches!(a, Action::ScaleWorkload { .. }))
    }));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}
