//! `scaleDownDelayRevisionLimit`: how many old revisions wait out the scale-down delay at once.

use super::*;

/// Revisions 1, 2 and 3 promoted in turn, within one scale-down delay of 60 s; returns the sizes
/// of revisions 1 and 2 once 3 is promoted, and the plan that promoted it.
fn three_promotions(mut rollout: Rollout, limit: Option<i32>) -> ((i32, i32), Plan) {
    if let Some(c) = rollout.spec.strategy.canary.as_mut() {
        c.scale_down_delay_revision_limit = limit;
    }
    if let Some(b) = rollout.spec.strategy.blue_green.as_mut() {
        b.scale_down_delay_revision_limit = limit;
    }
    let mut sim = Sim::healthy(rollout);
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
    sim.advance(10);
    sim.set_image("web:3");
    let plans = sim.settle();
    let promoted = promotion(&plans).clone();
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:3")));
    assert_eq!(sim.size(&hash_of("web:3")), 2);
    (sim.sizes(&hash_of("web:1"), &hash_of("web:2")), promoted)
}

fn canary() -> Rollout {
    RolloutBuilder::canary()
        .replicas(2)
        .scale_down_delay(60)
        .build()
}

fn blue_green() -> Rollout {
    RolloutBuilder::blue_green()
        .replicas(2)
        .scale_down_delay(60)
        .build()
}

#[test]
fn without_a_limit_every_old_revision_waits_out_the_delay() {
    let ((v1, v2), _) = three_promotions(canary(), None);
    assert_eq!((v1, v2), (2, 2));
}

#[test]
fn a_limit_of_one_scales_the_older_revision_down_at_once() {
    let ((v1, v2), promoted) = three_promotions(canary(), Some(1));
    assert_eq!((v1, v2), (0, 2), "revision 2 waits, revision 1 does not");
    assert!(
        promoted.actions.contains(&apply_rs(&hash_of("web:1"), 0)),
        "{promoted:#?}"
    );
    assert_eq!(promoted.requeue_after, after(60));
}

#[test]
fn a_limit_of_zero_scales_every_old_revision_down_at_promotion() {
    let ((v1, v2), promoted) = three_promotions(canary(), Some(0));
    assert_eq!((v1, v2), (0, 0));
    assert_eq!(promoted.status.scale_down_at, None);
}

#[test]
fn blue_green_counts_its_old_revisions_the_same_way() {
    assert_eq!(three_promotions(blue_green(), None).0, (2, 2));
    assert_eq!(three_promotions(blue_green(), Some(1)).0, (0, 2));
}

#[test]
fn the_newest_by_revision_number_waits_even_when_created_earlier() {
    // Revision "a" was created first but rolled out again later (a higher revision number).
    let rollout = RolloutBuilder::canary()
        .replicas(1)
        .scale_down_delay(60)
        .build();
    let mut sim = Sim::healthy(rollout);
    let a = ObservedReplicaSet {
        name: "web-a".into(),
        hash: "a".into(),
        replicas: 1,
        current: 1,
        ready: 1,
        available: 1,
        created: Some(t0() - secs(100)),
        revision: Some(5),
        ..Default::default()
    };
    let mut b = a.clone();
    (b.name, b.hash, b.created, b.revision) = ("web-b".into(), "b".into(), Some(t0()), Some(4));
    sim.world.replica_sets.extend([a, b]);
    sim.canary_mut().scale_down_delay_revision_limit = Some(1);
    sim.rollout.status.as_mut().unwrap().scale_down_at = Some(Time(sim.now + secs(30)));
    let p = sim.reconcile();
    assert_eq!(p.actions, vec![apply_rs("b", 0)]);
    assert_eq!(p.requeue_after, after(30));
}
