//! The canary without a traffic router: step sizes, surge bounds, pauses.

use super::*;

// 3. Canary without a traffic router.

fn check_step_sizes(replicas: i32, expected: [(i32, i32, i32); 3]) {
    let rollout = RolloutBuilder::canary()
        .replicas(replicas)
        .steps([
            w(25),
            pause_forever(),
            w(50),
            pause_forever(),
            w(75),
            pause_forever(),
        ])
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    for (i, (canary, stable, weight)) in expected.into_iter().enumerate() {
        sim.settle();
        let s = sim.status();
        assert_eq!(
            s.current_step_index,
            Some(2 * i as i32 + 1),
            "replicas {replicas}"
        );
        assert_eq!(s.phase, Some(Phase::Paused));
        assert_eq!(
            sim.sizes(&h2, &h1),
            (canary, stable),
            "replicas {replicas} step {}",
            2 * i
        );
        assert_eq!(
            s.canary_weight,
            Some(weight),
            "replicas {replicas} step {}",
            2 * i
        );
        sim.request(RequestAction::Promote);
    }
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(h2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.size(&h2), replicas);
}

#[test]
fn set_weight_steps_reach_their_sizes_with_4_replicas() {
    check_step_sizes(4, [(1, 3, 25), (2, 2, 50), (3, 1, 75)]);
}

#[test]
fn set_weight_steps_reach_their_sizes_with_10_replicas() {
    // Canary pods are rounded up, the weight is the canary's share of available pods.
    check_step_sizes(10, [(3, 7, 30), (5, 5, 50), (8, 2, 80)]);
}

/// Drives a rollout with slow pods, checking the surge and availability bounds at each reconcile.
fn check_bounds(replicas: i32, surge: Option<IntOrString>, unavailable: Option<IntOrString>) {
    let mut b = RolloutBuilder::canary()
        .replicas(replicas)
        .steps([w(25), w(50), w(75)]);
    if let Some(s) = surge.clone() {
        b = b.max_surge(s);
    }
    if let Some(u) = unavailable.clone() {
        b = b.max_unavailable(u);
    }
    let mut sim = updating(b.build());
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    let max_surge = scaled_value(surge.as_ref(), replicas, Limit::MaxSurge).unwrap();
    let max_unavailable =
        scaled_value(unavailable.as_ref(), replicas, Limit::MaxUnavailable).unwrap();
    let max_surge = if max_surge == 0 && max_unavailable == 0 {
        1
    } else {
        max_surge
    };
    let reconcile = |sim: &mut Sim| {
        let before = sim.world.clone();
        let p = sim.reconcile();
        let label =
            format!("replicas {replicas} surge {surge:?} unavailable {unavailable:?}: {p:#?}");
        if p.status.current_step_index < Some(3) {
            assert!(
                sim.size(&h1) + sim.size(&h2) <= replicas + max_surge,
                "{label}"
            );
        }
        let old = |h: &str| {
            before
                .replica_sets
                .iter()
                .find(|rs| rs.hash == h)
                .cloned()
                .unwrap_or_default()
        };
        if sim.size(&h1) < old(&h1).replicas && p.status.stable_revision.as_deref() == Some(&h1) {
            let available =
                old(&h1).available.min(sim.size(&h1)) + old(&h2).available.min(sim.size(&h2));
            assert!(available >= replicas - max_unavailable, "{label}");
        }
        p.status.phase == Some(Phase::Healthy) && p.status.stable_revision.as_deref() == Some(&h2)
    };
    for _ in 0..200 {
        if reconcile(&mut sim) {
            return;
        }
        // Removed pods go before new ones are ready: plan in between too.
        sim.sync_pods();
        reconcile(&mut sim);
        ready_one(&mut sim);
    }
    panic!("rollout did not finish: {:#?}", sim.status());
}

#[test]
fn max_surge_and_max_unavailable_hold_at_every_reconcile() {
    check_bounds(4, None, None);
    check_bounds(10, Some(pct(25)), Some(int(0)));
    check_bounds(10, Some(int(0)), Some(pct(25)));
    check_bounds(10, Some(int(3)), Some(int(2)));
    check_bounds(5, Some(int(0)), Some(int(0)));
    check_bounds(1, None, None);
    check_bounds(7, Some(pct(100)), Some(pct(50)));
}

#[test]
fn stable_scale_down_ignores_pods_that_are_already_going() {
    // The stable asks for 3 of its 4 available pods: the fourth is going, and must not count as
    // room for removing one more.
    let bounds = Bounds {
        replicas: 4,
        surge: 1,
        unavailable: 0,
    };
    assert_eq!(next_sizes(bounds, (1, 1), (3, 4), (2, 2)), (2, 3));
    // The stable shrinks first, and the canary grows into the room that leaves, in one plan.
    assert_eq!(next_sizes(bounds, (1, 1), (4, 4), (2, 2)), (2, 3));
}

#[test]
fn timed_pause_requeues_at_its_deadline_and_ends_after_it() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause("1m"), w(100)])
        .build();
    let mut sim = updating(rollout);
    let plans = sim.settle();
    let last = plans.last().unwrap();
    assert_eq!(last.status.current_step_index, Some(1));
    assert_eq!(last.status.phase, Some(Phase::Paused));
    assert!(has_pause(&last.status, PauseReason::CanaryPauseStep));
    assert_eq!(
        last.requeue_after,
        after(60),
        "requeue exactly at the end of the pause"
    );

    sim.advance(59);
    let p = sim.reconcile();
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "never before the deadline"
    );
    assert_eq!(p.requeue_after, after(1));

    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(p.status.current_step_index, Some(2));
    assert!(reasons(&p).contains(&"StepCompleted"));
    assert!(p.status.pause_conditions.is_empty());
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
}

#[test]
fn indefinite_pause_waits_for_a_promote_request() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever(), w(100)])
        .build();
    let mut sim = updating(rollout);
    let plans = sim.settle();
    assert_eq!(
        plans.last().unwrap().requeue_after,
        None,
        "nothing to wait for but a person"
    );
    sim.advance(24 * 3600);
    let p = sim.reconcile();
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert_eq!(p.actions, vec![]);

    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert_eq!(reasons(&p), ["PromoteRequested"]);
    assert_eq!(p.status.request, None);
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn set_canary_scale_replicas_weight_and_match_traffic_weight() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([
            w(25),
            scale_replicas(3),
            pause_forever(),
            scale_weight(50),
            pause_forever(),
            match_traffic(),
            pause_forever(),
        ])
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    // (canary, stable) at each pause: the stable keeps what the 25% weight leaves it.
    for (step, sizes) in [(2, (3, 3)), (4, (2, 3)), (6, (1, 3))] {
        sim.settle();
        assert_eq!(sim.status().current_step_index, Some(step));
        assert_eq!(sim.sizes(&h2, &h1), sizes, "at step {step}");
        sim.request(RequestAction::Promote);
    }
    sim.settle();
    assert_eq!(sim.status().stable_revision, Some(h2));
}

#[test]
fn set_canary_scale_below_the_weight_does_not_shrink_the_rollout() {
    // One canary pod at a 50% weight: the stable keeps the other 3, never fewer than replicas.
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), scale_replicas(1), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2));
    assert_eq!(sim.sizes(&hash_of("web:2"), &hash_of("web:1")), (1, 3));
    assert_eq!(sim.status().canary_weight, Some(25));
}

#[test]
fn canary_targets_per_step() {
    let canary = crate::api::CanaryStrategy {
        steps: vec![
            w(10),
            scale_replicas(30),
            scale_weight(40),
            match_traffic(),
            w(100),
        ],
        ..Default::default()
    };
    assert_eq!(targets(&canary, 0, 10), (1, 9));
    assert_eq!(targets(&canary, 1, 10), (10, 9), "capped at replicas");
    assert_eq!(targets(&canary, 2, 10), (4, 9));
    assert_eq!(targets(&canary, 3, 10), (1, 9));
    assert_eq!(targets(&canary, 4, 10), (10, 0));
    assert_eq!(targets(&canary, 0, 0), (0, 0));
}
