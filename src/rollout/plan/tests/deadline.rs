//! The progress deadline.

use super::*;

// 10. Progress deadline.

#[test]
fn no_progress_within_the_deadline_is_reported() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .progress_deadline(60)
        .build();
    let mut sim = updating(rollout);
    let p = sim.reconcile();
    assert_eq!(p.requeue_after, after(60));
    sim.sync_pods(); // the canary's pod never becomes available
    assert_eq!(sim.reconcile().requeue_after, after(60));
    sim.advance(59);
    let p = sim.reconcile();
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert_eq!(p.requeue_after, after(1), "requeue at the deadline");
    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(
        condition(&p.status, cond::PROGRESSING),
        ("False", cond::REASON_DEADLINE)
    );
    assert_eq!(
        condition(&p.status, cond::STALLED),
        ("True", cond::REASON_DEADLINE)
    );
    assert_eq!(reasons(&p), [cond::REASON_DEADLINE]);
    assert!(p.events[0].warning);
    assert!(!p.status.abort);
    assert_eq!(p.requeue_after, None);
    sim.advance(600);
    assert_eq!(
        sim.reconcile().status.phase,
        Some(Phase::Degraded),
        "and stays so"
    );
}

#[test]
fn progress_after_the_deadline_clears_it() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .progress_deadline(60)
        .build();
    let mut sim = updating(rollout);
    sim.reconcile();
    sim.sync_pods();
    sim.reconcile();
    sim.advance(60);
    assert_eq!(sim.reconcile().status.phase, Some(Phase::Degraded));
    sim.advance(10);
    sim.pods_ready(); // a slow image pull, finally done
    let p = sim.reconcile();
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert_eq!(
        condition(&p.status, cond::PROGRESSING),
        ("True", cond::REASON_PROGRESSING)
    );
    assert_eq!(p.requeue_after, after(60));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
}

#[test]
fn progress_deadline_abort_aborts() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .progress_deadline(60)
        .progress_deadline_abort()
        .build();
    let mut sim = updating(rollout);
    sim.reconcile();
    sim.sync_pods();
    sim.reconcile();
    sim.advance(60);
    let p = sim.reconcile();
    assert!(p.status.abort);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(p.status.canary_weight, Some(0));
    // The canary's pod never became available: it goes at once.
    assert!(p.actions.contains(&apply_rs(&hash_of("web:2"), 0)));
    assert_eq!(
        condition(&p.status, cond::PROGRESSING),
        ("False", cond::REASON_ABORTED)
    );
    assert_eq!(reasons(&p), [cond::REASON_DEADLINE]);
}

fn deadline_rollout(steps: Vec<crate::api::CanaryStep>) -> Rollout {
    RolloutBuilder::canary()
        .replicas(2)
        .steps(steps)
        .progress_deadline(60)
        .progress_deadline_abort()
        .build()
}

#[test]
fn an_indefinite_pause_does_not_count_against_the_deadline() {
    let mut sim = updating(deadline_rollout(vec![w(50), pause_forever(), w(100)]));
    sim.settle();
    sim.advance(3600);
    assert_eq!(sim.reconcile().requeue_after, None);
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert!(!p.status.abort, "{:#?}", p.status);
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert_eq!(p.requeue_after, after(60));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_timed_pause_longer_than_the_deadline_does_not_count() {
    let mut sim = updating(deadline_rollout(vec![w(50), pause("1h"), w(100)]));
    let plans = sim.settle();
    sim.advance_to_requeue(plans.last().unwrap());
    let p = sim.reconcile();
    assert!(!p.status.abort);
    assert_eq!(p.status.current_step_index, Some(2));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn user_pauses_do_not_count_against_the_deadline() {
    let mut sim = updating(deadline_rollout(vec![w(50), w(100)]));
    sim.reconcile();
    sim.set_paused(true);
    sim.settle();
    sim.advance(3600);
    sim.set_paused(false);
    let p = sim.reconcile();
    assert!(!p.status.abort, "spec.paused");

    sim.request(RequestAction::Pause);
    sim.settle();
    sim.advance(3600);
    sim.request(RequestAction::Resume);
    let p = sim.reconcile();
    assert!(!p.status.abort, "pause request");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_blue_green_pause_does_not_count_against_the_deadline() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(2)
        .auto_promotion(false)
        .progress_deadline(60)
        .progress_deadline_abort()
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    sim.advance(3600);
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert!(!p.status.abort);
    assert!(reasons(&p).contains(&"Promoted"));
}
