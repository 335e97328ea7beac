//! A weight between 0 and 100 without a traffic router leaves the stable at least one pod, as
//! Argo Rollouts does: with few replicas, rounding the canary's share up must not move every pod
//! (and so all traffic) to the canary at a 20% step, nor leave an abort with no stable pod to
//! fall back on.

use super::canary::targets;
use super::fixtures::*;

#[test]
fn a_partial_weight_keeps_a_stable_pod_at_any_replica_count() {
    let canary = crate::api::CanaryStrategy {
        steps: vec![w(20), w(90), w(100)],
        ..Default::default()
    };
    assert_eq!(targets(&canary, 0, 1), (1, 1), "20% of 1 replica");
    assert_eq!(targets(&canary, 1, 3), (3, 1), "90% of 3 replicas");
    assert_eq!(targets(&canary, 2, 1), (1, 0), "100%: the stable may go");
    assert_eq!(
        targets(&canary, 0, 10),
        (2, 8),
        "enough replicas: unchanged"
    );
    assert_eq!(targets(&canary, 0, 0), (0, 0));
}

#[test]
fn one_replica_at_a_20_percent_step_runs_canary_and_stable_side_by_side() {
    let rollout = RolloutBuilder::canary()
        .replicas(1)
        .steps([w(20), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.sizes(&hash_of("web:2"), &hash_of("web:1")), (1, 1));
    assert_eq!(sim.status().canary_weight, Some(50));
}
