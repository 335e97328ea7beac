//! An invalid spec.

use super::*;

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
    let caches = crate::rollout::observe::Caches {
        replica_sets: kube::runtime::reflector::store().0,
        replica_set_owners: Default::default(),
        services: kube::runtime::reflector::store().0,
        deployments: kube::runtime::reflector::store().0,
        pods: kube::runtime::reflector::store().0,
        analysis: Default::default(),
    };
    let observed: Observed = crate::rollout::observe::observe(&rollout, &caches);
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
    sim.canary_mut().steps[1] = pause("5 minutes");
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
    sim.canary_mut().steps[1] = pause("5 minutes");
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
