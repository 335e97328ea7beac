//! Tier 1 of docs/design.md ("Test tiers"): the pure planner, one test per transition, and property tests over whole
//! simulated rollouts. Every reconcile of a [`Sim`] also checks determinism, the status fixpoint
//! and kstatus (see [`super::fixtures`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::canary::{Bounds, next_sizes, targets};
use super::fixtures::*;
use super::observe::{Observed, ObservedReplicaSet};
use super::plan::{Action, Plan, plan};
use crate::api::conditions as cond;
use crate::api::{Limit, scaled_value};
use crate::api::{PauseReason, Phase, RequestAction, Rollout, RolloutStatus};

fn reasons(plan: &Plan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.reason).collect()
}

/// The plan of a settled run that promoted the new revision.
fn promotion(plans: &[Plan]) -> &Plan {
    plans
        .iter()
        .find(|p| reasons(p).contains(&"Promoted"))
        .expect("a plan promoted the new revision")
}

fn condition<'a>(status: &'a RolloutStatus, type_: &str) -> (&'a str, &'a str) {
    let c = cond::find(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_str())
}

fn apply_rs(hash: &str, replicas: i32) -> Action {
    Action::ApplyReplicaSet {
        hash: hash.into(),
        replicas,
    }
}

fn pin(name: &str, hash: &str) -> Action {
    Action::PinService {
        name: name.into(),
        hash: hash.into(),
    }
}

fn has_pause(status: &RolloutStatus, reason: PauseReason) -> bool {
    status.pause_conditions.iter().any(|p| p.reason == reason)
}

/// Makes at most one more pod of each ReplicaSet available: slow pods.
fn ready_one(sim: &mut Sim) {
    for rs in &mut sim.world.replica_sets {
        rs.available = (rs.available + 1).min(rs.current);
        rs.ready = rs.available;
    }
}

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
        super::act::replica_set_name(&rollout, &h1),
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

// 4. Services.

#[test]
fn services_are_pinned_to_their_revisions_once() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    let p = sim.reconcile();
    assert!(p.actions.contains(&pin(CANARY_SVC, &h2)));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::PinService { name, .. } if name == STABLE_SVC))
    );
    assert_eq!(sim.service(STABLE_SVC), Some(h1.clone()));
    assert_eq!(sim.service(CANARY_SVC), Some(h2.clone()));
    for p in sim.settle() {
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::PinService { .. })),
            "pinned already"
        );
    }

    // A Service someone else re-pointed is pinned back.
    sim.world
        .services
        .insert(STABLE_SVC.into(), Some("elsewhere".into()));
    assert_eq!(sim.reconcile().actions, vec![pin(STABLE_SVC, &h1)]);
}

#[test]
fn without_a_canary_service_only_the_stable_one_is_pinned() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .canary_service(None)
        .steps([w(50)])
        .build();
    let mut sim = updating(rollout);
    let p = sim.reconcile();
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::PinService { .. }))
    );
    sim.settle();
    assert_eq!(sim.service(STABLE_SVC), Some(hash_of("web:2")));
}

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
    assert_eq!(p.actions, vec![pin(PREVIEW_SVC, &h1), apply_rs(&h2, 0)]);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(sim.service(ACTIVE_SVC), Some(h1));
}

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

// 11. Restart safety.

#[test]
fn whole_rollouts_are_a_fixpoint_at_every_reconcile() {
    // Sim::reconcile checks determinism and the fixpoint; walk through every kind of state.
    let rollout = RolloutBuilder::canary()
        .replicas(5)
        .steps([
            w(20),
            pause("30s"),
            scale_replicas(4),
            w(40),
            pause_forever(),
            match_traffic(),
            w(80),
        ])
        .revision_history_limit(1)
        .build();
    let mut sim = updating(rollout);
    let mut third = false;
    for _ in 0..300 {
        let p = sim.reconcile();
        sim.sync_pods();
        sim.reconcile();
        ready_one(&mut sim);
        if p.status.phase == Some(Phase::Paused) {
            match p.requeue_after {
                Some(_) => sim.advance_to_requeue(&p),
                None => sim.request(RequestAction::Promote),
            }
        } else if let Some(after) = p.requeue_after.filter(|d| d.as_secs() <= 30) {
            sim.advance(after.as_secs() as i64 + 1);
        }
        if !third
            && sim.status().stable_revision == Some(hash_of("web:2"))
            && sim.size(&hash_of("web:1")) == 0
        {
            sim.set_image("web:3");
            third = true;
        }
        if sim.status().stable_revision == Some(hash_of("web:3")) {
            sim.settle();
            return;
        }
    }
    panic!("did not finish: {:#?}", sim.status());
}

#[test]
fn a_restarted_controller_resumes_from_the_status() {
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    let status = RolloutStatus {
        stable_revision: Some(h1.clone()),
        current_revision: Some(h2.clone()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .image("web:2")
        .steps([w(50), pause_forever(), w(100)])
        .status(status)
        .build();
    let world = ObservedBuilder::for_rollout(&rollout)
        .rs(&h1, 2, 2)
        .rs(&h2, 2, 2)
        .service(STABLE_SVC, Some(&h1))
        .service(CANARY_SVC, Some(&h2))
        .build();
    let p = plan(&rollout, &world, t0());
    assert_eq!(p.actions, vec![]);
    assert_eq!(reasons(&p), Vec::<&str>::new(), "not a new revision");
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert_eq!(p.status.canary_weight, Some(50));
    assert_fixpoint(&rollout, &world, t0(), &p);
}

#[test]
fn an_old_replica_set_scales_down_at_its_deadline_not_before() {
    let mut sim = Sim::healthy(RolloutBuilder::canary().replicas(2).build());
    let h1 = hash_of("web:1");
    sim.world = ObservedBuilder::for_rollout(&sim.rollout)
        .rs(&h1, 2, 2)
        .rs("old", 2, 2)
        .service(STABLE_SVC, Some(&h1))
        .service(CANARY_SVC, Some(&h1))
        .build();
    let at = sim.now + secs(45);
    sim.rollout.status.as_mut().unwrap().scale_down_at = Some(Time(at));
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, after(45));
    sim.advance(44);
    assert_eq!(sim.reconcile().actions, vec![]);
    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![apply_rs("old", 0)]);
    assert_eq!(p.requeue_after, None);
}

#[test]
fn promotion_survives_a_replica_set_cache_older_than_the_status() {
    let rollout = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    let mut sim = updating(rollout);
    for _ in 0..20 {
        let before = sim.world.clone();
        let p = sim.tick();
        if reasons(&p).contains(&"Promoted") {
            let again = plan(&sim.rollout, &before, sim.now);
            assert_eq!(again.actions, p.actions);
            return;
        }
    }
    panic!("never promoted");
}

// 12. Invalid spec.

#[test]
fn a_missing_service_is_an_invalid_spec_until_it_appears() {
    let rollout = RolloutBuilder::canary().replicas(2).build();
    let world = ObservedBuilder::for_rollout(&rollout)
        .without_service(CANARY_SVC)
        .build();
    let mut sim = Sim::new(rollout);
    sim.world = world;
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, None);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).unwrap();
    assert_eq!(invalid.status, "True");
    assert!(
        invalid.message.contains("strategy.canary.canaryService"),
        "{}",
        invalid.message
    );
    assert!(
        invalid.message.contains("web-canary"),
        "{}",
        invalid.message
    );
    assert_eq!(reasons(&p), [cond::REASON_INVALID]);
    assert!(p.events[0].warning);
    assert_eq!(sim.reconcile().events, vec![], "warned once");

    sim.world.services.insert(CANARY_SVC.into(), None);
    let p = sim.reconcile();
    assert!(cond::find(&p.status.conditions, cond::INVALID_SPEC).is_none());
    assert!(!p.actions.is_empty());
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_missing_workload_ref_deployment_is_an_invalid_spec_until_it_appears() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .workload_ref("web-deploy")
        .build();
    let caches = super::observe::Caches {
        replica_sets: kube::runtime::reflector::store().0,
        replica_set_owners: Default::default(),
        services: kube::runtime::reflector::store().0,
        deployments: kube::runtime::reflector::store().0,
        pods: kube::runtime::reflector::store().0,
        analysis: Default::default(),
    };
    let observed: Observed = super::observe::observe(&rollout, &caches);
    let message = observed.template.clone().unwrap_err();
    let world = ObservedBuilder::for_rollout(&rollout)
        .template_error(&message)
        .build();
    let p = plan(&rollout, &world, t0());
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).unwrap();
    assert!(
        invalid.message.contains("workloadRef") && invalid.message.contains("web-deploy"),
        "{}",
        invalid.message
    );
    assert_eq!(
        condition(&p.status, cond::STALLED),
        ("True", cond::REASON_INVALID)
    );
    assert_eq!(
        condition(&p.status, cond::READY),
        ("False", cond::REASON_INVALID)
    );

    let mut fixed = rollout.clone();
    fixed.status = Some(p.status);
    let world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    let p = plan(&fixed, &world, t0());
    assert!(cond::find(&p.status.conditions, cond::INVALID_SPEC).is_none());
    assert_eq!(p.actions[0], apply_rs(&hash_of("web:1"), 2));
}

#[test]
fn a_request_while_the_spec_is_invalid_is_answered_not_kept() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), pause_forever()])
            .build(),
    );
    sim.rollout.spec.strategy.canary.as_mut().unwrap().steps[1] = pause("5 minutes");
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert!(cond::is_true(&p.status.conditions, cond::INVALID_SPEC));
    assert_eq!(
        p.status.request, None,
        "the client waits for it to be cleared"
    );
    assert_eq!(p.actions, vec![]);
    let ignored: Vec<_> = p
        .events
        .iter()
        .filter(|e| e.reason == "RequestIgnored")
        .collect();
    assert_eq!(ignored.len(), 1, "{:?}", p.events);
    assert!(ignored[0].warning);
    assert!(
        ignored[0].message.contains("promote requested by alice")
            && ignored[0].message.contains("spec is invalid"),
        "{}",
        ignored[0].message
    );
}

#[test]
fn an_abort_while_the_spec_is_invalid_is_recorded_and_done_once_it_is_fixed() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (1, 1));
    let good = sim.rollout.spec.clone();
    sim.rollout.spec.strategy.canary.as_mut().unwrap().steps[1] = pause("5 minutes");
    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    assert!(cond::is_true(&p.status.conditions, cond::INVALID_SPEC));
    assert_eq!(p.status.request, None);
    assert!(p.status.abort, "the abort is recorded");
    assert_eq!(
        p.actions,
        vec![],
        "nothing is done while the spec is invalid"
    );
    assert!(
        p.events.iter().any(|e| e.reason == "AbortRequested"),
        "{:?}",
        p.events
    );
    sim.rollout.spec = good;
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    assert_eq!(sim.sizes(&v2, &v1), (0, 2), "back on stable");
}

#[test]
fn invalid_durations_and_surges_name_their_field() {
    let rollout = RolloutBuilder::canary().steps([pause("5 minutes")]).build();
    let p = plan(
        &rollout,
        &ObservedBuilder::for_rollout(&rollout).build(),
        t0(),
    );
    assert!(
        p.status
            .message
            .unwrap()
            .contains("strategy.canary.steps[0].pause.duration")
    );
    let rollout = RolloutBuilder::canary()
        .max_surge(IntOrString::String("lots".into()))
        .build();
    let p = plan(
        &rollout,
        &ObservedBuilder::for_rollout(&rollout).build(),
        t0(),
    );
    assert!(
        p.status
            .message
            .unwrap()
            .contains("strategy.canary.maxSurge")
    );
}

// 13. kstatus (also checked at every reconcile of every Sim).

#[test]
fn kstatus_conditions_follow_the_phase_and_generation() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = Sim::healthy(rollout);
    let s = sim.status();
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(s, cond::READY).0, "True");
    assert_eq!(condition(s, cond::RECONCILING).0, "False");
    assert_eq!(
        condition(s, cond::AVAILABLE),
        ("True", cond::REASON_AVAILABLE)
    );

    sim.set_image("web:2");
    let p = sim.reconcile();
    assert_eq!(p.status.observed_generation, Some(2));
    assert_eq!(condition(&p.status, cond::READY).0, "False");
    assert_eq!(
        condition(&p.status, cond::RECONCILING),
        ("True", cond::REASON_PROGRESSING)
    );
    sim.settle();
    let s = sim.status();
    assert_eq!(s.phase, Some(Phase::Paused));
    assert_eq!(
        condition(s, cond::RECONCILING),
        ("True", cond::REASON_PAUSED)
    );
    assert_eq!(condition(s, cond::PAUSED).0, "True");
    assert_eq!(condition(s, cond::STALLED).0, "False");
}

// Property tests.

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::api::CanaryStep;

    fn step() -> impl Strategy<Value = CanaryStep> {
        prop_oneof![
            4 => (0..=100i32).prop_map(w),
            1 => Just(pause_forever()),
            1 => (0..120u32).prop_map(|s| pause(&format!("{s}s"))),
            1 => (0..25i32).prop_map(scale_replicas),
            1 => (0..=100i32).prop_map(scale_weight),
            1 => Just(match_traffic()),
        ]
    }

    fn bound() -> impl Strategy<Value = Option<IntOrString>> {
        prop_oneof![
            Just(None),
            (0..5i32).prop_map(|n| Some(int(n))),
            (0..=100i32).prop_map(|p| Some(pct(p)))
        ]
    }

    fn request() -> impl Strategy<Value = RequestAction> {
        prop_oneof![
            Just(RequestAction::Abort),
            Just(RequestAction::Promote),
            Just(RequestAction::PromoteFull),
            Just(RequestAction::Pause),
            Just(RequestAction::Resume),
        ]
    }

    fn finished(sim: &Sim) -> bool {
        let s = sim.status();
        let back_on_stable = s.stable_revision.as_deref().is_some_and(|stable| {
            sim.world
                .replica_sets
                .iter()
                .all(|rs| rs.hash == stable || rs.replicas == 0)
        });
        (s.abort && s.phase == Some(Phase::Degraded) && back_on_stable)
            || (s.phase == Some(Phase::Healthy) && s.current_revision == s.stable_revision)
    }

    /// Unblocks a waiting rollout as a person (or the clock) would.
    fn unblock(sim: &mut Sim, p: &Plan) {
        if p.status.phase != Some(Phase::Paused) {
            return;
        }
        if has_pause(&p.status, PauseReason::UserPaused) {
            sim.request(RequestAction::Resume);
        } else if p.requeue_after.is_some() {
            sim.advance_to_requeue(p);
        } else {
            sim.request(RequestAction::Promote);
        }
    }

    /// Reconciles `sim` until it finishes (at most `limit` times), filing each request at its
    /// reconcile and checking `invariant` on (world before, plan, reconcile number) each time;
    /// pods become available one at a time when `slow`.
    fn drive(
        sim: &mut Sim,
        limit: usize,
        requests: &[(usize, RequestAction)],
        slow: bool,
        mut invariant: impl FnMut(&Sim, &Observed, &Plan, usize) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        for i in 0..limit {
            for (_, action) in requests.iter().filter(|(at, _)| *at == i) {
                sim.request(*action);
            }
            let before = sim.world.clone();
            let p = sim.reconcile();
            invariant(sim, &before, &p, i)?;
            if finished(sim) {
                return Ok(());
            }
            unblock(sim, &p);
            sim.sync_pods();
            if slow {
                ready_one(sim)
            } else {
                sim.pods_ready()
            }
        }
        Err(TestCaseError::fail(format!(
            "did not finish: {:#?}",
            sim.status()
        )))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn canary_rollouts_keep_their_invariants_and_finish(
            replicas in 0..20i32,
            steps in proptest::collection::vec(step(), 0..8),
            surge in bound(),
            unavailable in bound(),
            requests in proptest::collection::vec((0..40usize, request()), 0..4),
            slow_pods in any::<bool>(),
        ) {
            let mut b = RolloutBuilder::canary().replicas(replicas).steps(steps.clone());
            if let Some(s) = surge.clone() { b = b.max_surge(s); }
            if let Some(u) = unavailable.clone() { b = b.max_unavailable(u); }
            let rollout = b.build();
            let canary = rollout.spec.strategy.canary.clone().unwrap();
            let n = steps.len() as i32;
            let max_surge = scaled_value(surge.as_ref(), replicas, Limit::MaxSurge).unwrap();
            let max_unavailable = scaled_value(unavailable.as_ref(), replicas, Limit::MaxUnavailable).unwrap();
            let max_surge = if max_surge == 0 && max_unavailable == 0 { 1 } else { max_surge };
            let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));

            let mut sim = updating(rollout);
            drive(&mut sim, 400, &requests, slow_pods, |sim, before, p, i| {
                let s = &p.status;
                let label = format!("reconcile {i}: {p:#?}");

                if let Some(w) = s.canary_weight {
                    prop_assert!((0..=100).contains(&w), "{}", label);
                }
                for a in &p.actions {
                    if let Action::ApplyReplicaSet { replicas, .. } = a {
                        prop_assert!(*replicas >= 0, "{}", label);
                    }
                }
                let in_steps = s.current_revision != s.stable_revision
                    && !s.abort
                    && s.current_step_index.unwrap_or(0) < n;
                let old = |h: &str| before.replica_sets.iter().find(|rs| rs.hash == h).cloned().unwrap_or_default();
                // Surge limits scaling up: a plan that grows a ReplicaSet stays within it. (After an
                // explicit setCanaryScale above it, the total comes down only as fast as
                // availability allows.)
                let grew = sim.world.replica_sets.iter().any(|rs| rs.replicas > old(&rs.hash).replicas);
                if in_steps && grew {
                    let (c, st) = targets(&canary, s.current_step_index.unwrap_or(0), replicas);
                    let total: i32 = sim.world.replica_sets.iter().map(|rs| rs.replicas).sum();
                    prop_assert!(total <= (replicas + max_surge).max(c + st), "total {} {}", total, label);
                }
                if s.stable_revision.as_deref() == Some(h1.as_str()) && sim.size(&h1) < old(&h1).replicas {
                    let available = old(&h1).available.min(sim.size(&h1)) + old(&h2).available.min(sim.size(&h2));
                    prop_assert!(available >= replicas - max_unavailable, "available {} {}", available, label);
                }
                if s.abort && s.current_revision != s.stable_revision {
                    // Back to the stable as a Deployment rolls back: the stable never shrinks,
                    // the canary never grows, and no plan takes the available pods below
                    // maxUnavailable (or below what there was, when it already was).
                    prop_assert!(sim.size(&h1) >= old(&h1).replicas.min(replicas), "{}", label);
                    prop_assert!(sim.size(&h2) <= old(&h2).replicas, "{}", label);
                    let was = old(&h1).available + old(&h2).available;
                    let available = old(&h1).available.min(sim.size(&h1)) + old(&h2).available.min(sim.size(&h2));
                    prop_assert!(available >= was.min(replicas - max_unavailable), "available {} of {} {}", available, was, label);
                    prop_assert_eq!(sim.service(STABLE_SVC), Some(h1.clone()));
                }
                Ok(())
            })?;
        }

        #[test]
        fn blue_green_rollouts_finish(
            replicas in 0..20i32,
            preview in proptest::option::of(0..25i32),
            auto in proptest::option::of(any::<bool>()),
            auto_seconds in 0..120i32,
            requests in proptest::collection::vec((0..30usize, request()), 0..3),
            slow_pods in any::<bool>(),
        ) {
            let mut b = RolloutBuilder::blue_green().replicas(replicas).auto_promotion_seconds(auto_seconds);
            if let Some(p) = preview { b = b.preview_replicas(p); }
            if let Some(a) = auto { b = b.auto_promotion(a); }
            let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
            let mut sim = updating(b.build());
            drive(&mut sim, 300, &requests, slow_pods, |sim, _, p, _| {
                let s = &p.status;
                // The active Service moves only to a fully available revision.
                let active = sim.service(ACTIVE_SVC).unwrap();
                if active == h2 {
                    let rs = sim.rs(&h2).cloned().unwrap_or_default();
                    prop_assert!(rs.available >= replicas && rs.replicas == replicas);
                } else {
                    prop_assert_eq!(&active, &h1);
                }
                if s.abort && s.current_revision != s.stable_revision {
                    prop_assert_eq!(sim.size(&h2), 0);
                    prop_assert_eq!(sim.size(&h1), replicas);
                }
                Ok(())
            })?;
        }
    }
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
            .any(|a| matches!(a, Action::ScaleDownWorkload { .. })),
        "{first:#?}"
    );
    let plans = sim.settle();
    let scaled: Vec<_> = plans
        .iter()
        .filter(|p| {
            p.actions.contains(&Action::ScaleDownWorkload {
                name: "web-deploy".into(),
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
            .any(|a| matches!(a, Action::ScaleDownWorkload { .. }))
    }));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

/// Pods that stay available once `sim`'s latest plan is applied: each ReplicaSet keeps at most
/// its new size of the pods that were available before (removed pods may be available ones).
fn available_after(before: &Observed, sim: &Sim) -> i32 {
    sim.world
        .replica_sets
        .iter()
        .map(|rs| {
            let was = before
                .replica_sets
                .iter()
                .find(|b| b.hash == rs.hash)
                .map_or(0, |b| b.available);
            was.min(rs.replicas)
        })
        .sum()
}

/// Drives `sim` with pods becoming available one at a time, checking after every reconcile that
/// fledge never takes the available pods below `floor`; stops once `done` holds.
fn drive_slowly(sim: &mut Sim, floor: i32, done: impl Fn(&Sim) -> bool) {
    for i in 0..100 {
        let before = sim.world.clone();
        sim.reconcile();
        let available = available_after(&before, sim);
        assert!(
            available >= floor,
            "reconcile {i}: {available} available pods, fewer than {floor}: {:?}",
            sim.world.replica_sets
        );
        if done(sim) {
            return;
        }
        sim.sync_pods();
        ready_one(sim);
    }
    panic!("never done: {:?}", sim.world.replica_sets);
}

/// Scenario (no router): at setWeight 100 the canary has all 4 pods and the stable none; an
/// abort (maxUnavailable 0) must bring the stable's pods up before the canary's go, as a
/// Deployment rolls back, instead of scaling the canary to 0 and the stable up in one go.
#[test]
fn abort_at_weight_100_without_a_router_keeps_pods_available() {
    let mut sim = updating(
        RolloutBuilder::canary()
            .replicas(4)
            .max_unavailable(int(0))
            .steps([w(100), pause_forever()])
            .build(),
    );
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (4, 0));
    sim.request(RequestAction::Abort);
    drive_slowly(&mut sim, 4, |sim| sim.sizes(&v2, &v1) == (0, 4));
    assert!(sim.status().abort);
    sim.settle();
    assert_eq!(sim.status().canary_weight, Some(0));
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
}

/// Scenario (no router): the same, when a failed analysis or the progress deadline aborts: the
/// abort path is shared, so the progress-deadline abort is the one exercised here.
#[test]
fn a_progress_deadline_abort_at_weight_100_keeps_pods_available() {
    let mut sim = updating(
        RolloutBuilder::canary()
            .replicas(4)
            .progress_deadline(60)
            .progress_deadline_abort()
            .steps([w(100), w(100)])
            .build(),
    );
    // Step 0 cannot complete: one new pod never becomes available, so the rollout stays at 3
    // available canary pods and 1 stable.
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    for _ in 0..20 {
        sim.reconcile();
        sim.sync_pods();
        for rs in &mut sim.world.replica_sets {
            rs.available = rs.current.min(if rs.hash == v2 { 3 } else { rs.current });
            rs.ready = rs.available;
        }
    }
    assert_eq!(sim.sizes(&v2, &v1), (4, 1), "{:?}", sim.world.replica_sets);
    sim.advance(61);
    drive_slowly(&mut sim, 4, |sim| sim.sizes(&v2, &v1) == (0, 4));
    assert!(sim.status().abort);
}

/// Scenario (no router): Git reverts to the stable template while the canary has all the pods
/// (setWeight 100): the stable comes back before the abandoned canary's pods go.
#[test]
fn a_revert_at_weight_100_without_a_router_keeps_pods_available() {
    let mut sim = updating(
        RolloutBuilder::canary()
            .replicas(4)
            .steps([w(100), pause_forever()])
            .build(),
    );
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (4, 0));
    sim.set_image("web:1");
    drive_slowly(&mut sim, 4, |sim| sim.sizes(&v2, &v1) == (0, 4));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.service(CANARY_SVC), Some(v1));
}

/// Logs name each write in a few words: a route's whole document never goes to the info log.
#[test]
fn action_summaries_are_short_and_leave_out_bodies() {
    let key = crate::traffic::ObjectKey {
        kind: crate::traffic::Kind::HttpRoute,
        name: "web".into(),
    };
    let actions = vec![
        Action::ApplyRoute {
            key,
            body: serde_json::json!({"spec": {"rules": [{"backendRefs": [{"name": "web-canary", "weight": 20}]}]}}),
        },
        Action::ApplyReplicaSet {
            hash: "abc".into(),
            replicas: 3,
        },
    ];
    assert_eq!(
        super::plan::summary(&actions),
        r#"apply HTTPRoute "web"; scale abc to 3"#
    );
}
