//! `minPodsPerReplicaSet`: with a traffic router, a ReplicaSet asked for any pods is asked for at
//! least that many while it carries traffic.

use super::traffic::{weights, with_route};
use crate::api::{RequestAction, Rollout};
use crate::rollout::fixtures::*;

fn min_pods(mut rollout: Rollout, n: i32, dynamic: bool) -> Rollout {
    let c = rollout.spec.strategy.canary.as_mut().unwrap();
    c.min_pods_per_replica_set = Some(n);
    c.dynamic_stable_scale = dynamic.then_some(true);
    rollout
}

fn routed(replicas: i32, steps: Vec<crate::api::CanaryStep>) -> Rollout {
    RolloutBuilder::canary()
        .replicas(replicas)
        .gateway("web")
        .steps(steps)
        .build()
}

#[test]
fn a_small_weight_gets_the_minimum_of_canary_pods() {
    let mut sim = with_route(min_pods(routed(10, vec![w(5), pause_forever()]), 3, false));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(
        sim.sizes(&v2, &v1),
        (3, 10),
        "5% of 10 is 1 pod; the floor is 3"
    );
    assert_eq!(weights(&sim), (95, 5));
}

#[test]
fn without_the_field_a_small_weight_gets_one_pod() {
    let mut sim = with_route(routed(10, vec![w(5), pause_forever()]));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (1, 10));
}

#[test]
fn the_weight_waits_for_the_minimum_to_be_available() {
    let mut sim = with_route(min_pods(routed(10, vec![w(5), pause_forever()]), 3, false));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.reconcile();
    sim.sync_pods();
    // One of the three canary pods available: the step is not done, and the weight it carries
    // is what one pod of ten carries at most.
    sim.world
        .replica_sets
        .iter_mut()
        .find(|rs| rs.hash == v2)
        .unwrap()
        .available = 1;
    let p = sim.reconcile();
    assert_eq!(p.status.current_step_index, Some(0));
    sim.pods_ready();
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn dynamic_stable_scale_keeps_the_minimum_of_stable_pods() {
    let mut sim = with_route(min_pods(routed(10, vec![w(95), pause_forever()]), 3, true));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(weights(&sim), (5, 95));
    assert_eq!(
        sim.sizes(&v2, &v1),
        (10, 3),
        "5% of the traffic is 1 stable pod; the floor is 3"
    );
    // At 100% the stable carries nothing: it may go to 0.
    sim.request(RequestAction::PromoteFull);
    sim.settle();
    assert_eq!(sim.status().stable_revision, Some(v2.clone()));
    assert_eq!(sim.size(&v2), 10);
}

#[test]
fn dynamic_stable_scale_without_the_field_keeps_one_stable_pod() {
    let mut sim = with_route(min_pods(routed(10, vec![w(95), pause_forever()]), 1, true));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (10, 1));
}

#[test]
fn the_minimum_is_capped_at_replicas() {
    let mut sim = with_route(min_pods(routed(2, vec![w(10), pause_forever()]), 5, false));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));
}

#[test]
fn a_weight_of_zero_asks_for_no_canary_pod() {
    let mut sim = with_route(min_pods(
        routed(10, vec![w(0), pause_forever(), w(10), pause_forever()]),
        3,
        false,
    ));
    sim.set_image("web:2");
    sim.settle();
    let v2 = hash_of("web:2");
    assert_eq!(sim.size(&v2), 0);
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.size(&v2), 3);
}
