//! Services pinned to their revisions.

use super::*;

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
