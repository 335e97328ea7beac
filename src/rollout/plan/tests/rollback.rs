//! Aborts and reverts without a router keep pods available, as a Deployment rolls back.

use super::*;

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
