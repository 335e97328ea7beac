//! Blue-green.

use super::*;

// 8. Blue-green.

#[test]
fn blue_green_previews_then_promotes_after_auto_promotion_seconds() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(4)
        .preview_replicas(2)
        .auto_promotion_seconds(60)
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![pin(PREVIEW_SVC, &h2), apply_rs(&h2, 2)]);
    assert_eq!(sim.service(ACTIVE_SVC), Some(h1.clone()));

    let plans = sim.settle();
    let last = plans.last().unwrap();
    assert_eq!(last.status.phase, Some(Phase::Paused));
    assert!(has_pause(&last.status, PauseReason::BlueGreenPause));
    assert_eq!(last.requeue_after, after(60));
    assert_eq!(sim.sizes(&h2, &h1), (2, 4));

    sim.advance(59);
    assert_eq!(sim.reconcile().requeue_after, after(1));
    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(
        p.actions,
        vec![apply_rs(&h2, 4)],
        "full size before the switch"
    );
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert_eq!(sim.service(ACTIVE_SVC), Some(h1.clone()));

    let plans = sim.settle();
    let switched = promotion(&plans);
    let at = sim.now + secs(30);
    assert_eq!(switched.actions, vec![pin(ACTIVE_SVC, &h2)]);
    assert_eq!(switched.status.scale_down_at, Some(Time(at)));
    assert_eq!(switched.status.stable_revision, Some(h2.clone()));
    assert_eq!(switched.requeue_after, after(30));
    sim.advance(30);
    assert_eq!(sim.reconcile().actions, vec![apply_rs(&h1, 0)]);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn blue_green_without_auto_promotion_waits_for_promote() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(3)
        .auto_promotion(false)
        .build();
    let mut sim = updating(rollout);
    let plans = sim.settle();
    let last = plans.last().unwrap();
    assert_eq!(last.status.phase, Some(Phase::Paused));
    assert_eq!(last.requeue_after, None);
    sim.advance(24 * 3600);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(sim.service(ACTIVE_SVC), Some(hash_of("web:1")));

    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["PromoteRequested", "Promoted"]);
    assert!(p.actions.contains(&pin(ACTIVE_SVC, &hash_of("web:2"))));
}

#[test]
fn blue_green_switches_only_once_the_new_revision_is_fully_available() {
    let rollout = RolloutBuilder::blue_green().replicas(4).build();
    let mut sim = updating(rollout);
    let h2 = hash_of("web:2");
    sim.reconcile();
    sim.sync_pods();
    for _ in 0..3 {
        ready_one(&mut sim);
        let p = sim.reconcile();
        assert_eq!(p.actions, vec![]);
        assert_eq!(p.status.phase, Some(Phase::Progressing));
    }
    ready_one(&mut sim);
    let p = sim.reconcile();
    assert!(
        p.actions.contains(&pin(ACTIVE_SVC, &h2)),
        "auto promotion without delay"
    );
}

#[test]
fn blue_green_abort_goes_back_to_the_stable_revision() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(2)
        .auto_promotion(false)
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    // The preview keeps its pods for abortScaleDownDelaySeconds (30 by default).
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, after(30));
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(sim.service(ACTIVE_SVC), Some(h1.clone()));
    assert_eq!(sim.service(PREVIEW_SVC), Some(h2.clone()));
    sim.advance(30);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![pin(PREVIEW_SVC, &h1), apply_rs(&h2, 0)]);
    assert_eq!(p.requeue_after, None);
}
