//! Restart safety: a plan made again from the status and a stale cache.

use super::*;

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
