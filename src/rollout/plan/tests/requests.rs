//! Runtime requests (`status.request`) and `spec.paused`.

use super::*;

// 9. Runtime requests.

/// Without a router the canary's pods carry traffic: an abort brings the stable back within
/// maxSurge (25% of 4: one pod) before the canary's available pods go.
#[test]
fn abort_puts_all_traffic_back_on_stable_as_a_deployment_rolls_back() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["AbortRequested"]);
    assert_eq!(p.status.request, None);
    assert_eq!(p.actions, vec![apply_rs(&h1, 3)]);
    assert_eq!(p.status.canary_weight, Some(50));
    assert!(p.status.abort);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(
        condition(&p.status, cond::STALLED),
        ("True", cond::REASON_ABORTED)
    );
    assert_eq!(
        condition(&p.status, cond::PROGRESSING),
        ("False", cond::REASON_ABORTED)
    );
    assert_eq!(condition(&p.status, cond::READY).0, "False");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded), "stays aborted");
    assert_eq!(sim.sizes(&h2, &h1), (0, 4));
    assert_eq!(sim.status().canary_weight, Some(0));
}

#[test]
fn retry_restarts_the_steps_at_0() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    sim.request(RequestAction::Abort);
    sim.settle();
    sim.request(RequestAction::Retry);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["RetryRequested"]);
    assert!(!p.status.abort);
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2));
}

#[test]
fn retry_after_an_aborted_full_promotion_starts_over() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.reconcile();
    sim.request(RequestAction::PromoteFull);
    sim.reconcile();
    sim.request(RequestAction::Abort);
    sim.settle();
    sim.request(RequestAction::Retry);
    sim.settle();
    assert_eq!(
        sim.status().current_step_index,
        Some(1),
        "the steps run again"
    );
    assert_eq!(sim.status().phase, Some(Phase::Paused));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), pause_forever(), w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    sim.request(RequestAction::PromoteFull);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["PromoteFullRequested"]);
    assert!(p.status.promote_full);
    assert_eq!(p.status.current_step_index, Some(4));
    sim.settle();
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
    assert!(!sim.status().promote_full);
}

#[test]
fn pause_and_resume_requests_stop_and_continue_progress() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), w(50), w(75)])
        .build();
    let mut sim = updating(rollout);
    sim.reconcile();
    sim.request(RequestAction::Pause);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["PauseRequested"]);
    assert!(has_pause(&p.status, PauseReason::UserPaused));
    assert_eq!(p.status.phase, Some(Phase::Paused));
    sim.settle();
    sim.advance(3600);
    sim.settle();
    assert_eq!(
        sim.status().current_step_index,
        Some(0),
        "no step while paused"
    );
    assert_eq!(sim.status().phase, Some(Phase::Paused));

    sim.request(RequestAction::Resume);
    let p = sim.reconcile();
    assert_eq!(reasons(&p)[0], "ResumeRequested");
    assert!(p.status.pause_conditions.is_empty());
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
}

#[test]
fn spec_paused_stops_and_continues_progress() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), w(50)])
        .build();
    let mut sim = updating(rollout);
    sim.set_paused(true);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(0));
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    assert_eq!(
        sim.status().message.as_deref(),
        Some("paused by spec.paused")
    );
    sim.set_paused(false);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
}

#[test]
fn senseless_requests_are_ignored_with_a_warning() {
    let check = |sim: &mut Sim, action: RequestAction, why: &str| {
        let before = sim.status().clone();
        sim.request(action);
        let p = sim.reconcile();
        assert_eq!(p.events.len(), 1, "{action:?}");
        let e = &p.events[0];
        assert!(e.warning, "{action:?}");
        assert_eq!(e.reason, "RequestIgnored");
        assert!(e.message.contains(why), "{action:?}: {}", e.message);
        assert!(e.message.contains("alice"), "{}", e.message);
        assert_eq!(p.actions, vec![]);
        assert_eq!(p.status, before, "{action:?} changed the status");
    };
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), pause_forever()])
            .build(),
    );
    for action in [
        RequestAction::Promote,
        RequestAction::PromoteFull,
        RequestAction::Abort,
    ] {
        check(&mut sim, action, "no rollout is in progress");
    }
    check(&mut sim, RequestAction::Retry, "not aborted");
    check(&mut sim, RequestAction::Resume, "not paused");

    sim.set_image("web:2");
    sim.settle();
    check(&mut sim, RequestAction::Retry, "not aborted");
    sim.request(RequestAction::Abort);
    sim.settle();
    for action in [
        RequestAction::Promote,
        RequestAction::PromoteFull,
        RequestAction::Abort,
    ] {
        check(&mut sim, action, "aborted");
    }
}

/// Once an aborted canary's pods are going, the canary Service selects the stable's pods again,
/// as when nothing is in flight: it never selects a revision asked for no pods (before, it kept
/// selecting the aborted revision, with no pod behind it).
#[test]
fn an_aborted_canary_hands_the_canary_service_back_to_the_stable() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.service(CANARY_SVC), Some(h2.clone()));
    sim.request(RequestAction::Abort);
    for _ in 0..20 {
        sim.tick();
        if sim.size(&h2) > 0 {
            assert_eq!(
                sim.service(CANARY_SVC),
                Some(h2.clone()),
                "while it has pods"
            );
        }
    }
    assert_eq!(sim.sizes(&h2, &h1), (0, 4));
    assert_eq!(sim.service(CANARY_SVC), Some(h1.clone()));
    // A retry starts the steps again on the canary Service.
    sim.request(RequestAction::Retry);
    sim.settle();
    assert_eq!(sim.service(CANARY_SVC), Some(h2));
}
