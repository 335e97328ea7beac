//! Blue-green `abortScaleDownDelaySeconds` (the aborted preview's pods stay a while, behind the
//! preview Service) and `maxUnavailable` (how many pods a restart takes down at once).

use super::*;
use crate::rollout::observe::ObservedPod;

/// Revision 2 previewed (not promoted) at 2 replicas, with `abortScaleDownDelaySeconds`, aborted.
fn aborted(delay: Option<i32>) -> Sim {
    let rollout = RolloutBuilder::blue_green()
        .replicas(2)
        .auto_promotion(false)
        .blue_green_with(|b| b.abort_scale_down_delay_seconds = delay)
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    assert_eq!(sim.size(&hash_of("web:2")), 2);
    sim.request(RequestAction::Abort);
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    assert_eq!(sim.service(ACTIVE_SVC), Some(hash_of("web:1")));
    sim
}

#[test]
fn the_aborted_preview_stays_behind_the_preview_service_for_the_delay() {
    let mut sim = aborted(Some(10));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));
    assert_eq!(sim.service(PREVIEW_SVC), Some(v2.clone()));
    sim.advance(9);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, after(1));
    sim.advance(1);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![pin(PREVIEW_SVC, &v1), apply_rs(&v2, 0)]);
    assert_eq!(p.requeue_after, None);
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
}

#[test]
fn a_delay_of_zero_keeps_the_preview_until_the_next_revision() {
    let mut sim = aborted(Some(0));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.advance(24 * 3600);
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, None, "nothing to wait for");
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));
    assert_eq!(sim.service(PREVIEW_SVC), Some(v2.clone()));
    // The next revision replaces the kept preview.
    sim.set_image("web:3");
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
    assert_eq!(sim.service(PREVIEW_SVC), Some(hash_of("web:3")));
}

#[test]
fn a_retry_goes_on_with_the_kept_preview() {
    let mut sim = aborted(Some(0));
    let v2 = hash_of("web:2");
    sim.request(RequestAction::Retry);
    let p = sim.reconcile();
    assert!(!p.status.abort);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyReplicaSet { hash, .. } if *hash == v2)),
        "the preview is already there: {p:#?}"
    );
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC), Some(v2.clone()));
    assert_eq!(sim.status().stable_revision, Some(v2));
}

#[test]
fn the_default_delay_is_thirty_seconds() {
    let mut sim = aborted(None);
    let v2 = hash_of("web:2");
    sim.advance(29);
    sim.settle();
    assert_eq!(sim.size(&v2), 2);
    sim.advance(1);
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
}

fn old_pods(sim: &mut Sim, n: i32) {
    let stable = hash_of("web:1");
    sim.world.pods = (0..n)
        .map(|i| ObservedPod {
            name: format!("old-{i}"),
            hash: stable.clone(),
            created: Some(sim.now - secs(100 - i64::from(i))),
            ready: true,
            terminating: false,
        })
        .collect();
}

fn evicted(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::EvictPod { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn blue_green_max_unavailable_sets_how_many_pods_a_restart_takes_at_once() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(4)
        .blue_green_with(|b| b.max_unavailable = Some(pct(50)))
        .build();
    let mut sim = Sim::healthy(rollout);
    old_pods(&mut sim, 4);
    sim.rollout.spec.restart_at = Some(Time(sim.now));
    sim.advance(1);
    assert_eq!(evicted(&sim.reconcile()), ["old-0", "old-1"]);
}

#[test]
fn blue_green_restarts_one_pod_at_a_time_by_default() {
    let mut sim = Sim::healthy(RolloutBuilder::blue_green().replicas(4).build());
    old_pods(&mut sim, 4);
    sim.rollout.spec.restart_at = Some(Time(sim.now));
    sim.advance(1);
    assert_eq!(evicted(&sim.reconcile()), ["old-0"]);
}

#[test]
fn a_bad_blue_green_max_unavailable_is_an_invalid_spec_naming_the_field() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(4)
        .blue_green_with(|b| b.max_unavailable = Some(IntOrString::String("lots".into())))
        .build();
    let world = ObservedBuilder::for_rollout(&rollout).build();
    let p = plan(&rollout, &world, t0());
    let c = cond::find(&p.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert!(
        c.message.contains("strategy.blueGreen.maxUnavailable"),
        "{}",
        c.message
    );
}
