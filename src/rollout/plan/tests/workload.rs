//! `workloadRef`: the pods' selector taken from the Deployment, and `scaleDown: progressively`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;
use crate::api::ScaleDown;

const DEPLOY: &str = "web-deploy";

fn workload_rollout(replicas: i32, scale_down: Option<ScaleDown>) -> Rollout {
    let mut rollout = RolloutBuilder::canary()
        .replicas(replicas)
        .workload_ref(DEPLOY)
        .without_selector()
        .build();
    rollout.spec.workload_ref.as_mut().unwrap().scale_down = scale_down;
    rollout
}

/// A Sim of `rollout` beside its Deployment with `replicas` pods, selecting `app: web`.
fn beside_deployment(rollout: Rollout, replicas: i32) -> Sim {
    let world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", replicas)
        .build();
    let mut sim = Sim::new(rollout);
    sim.world = world;
    sim
}

fn invalid_message(plan: &Plan) -> &str {
    let c = cond::find(&plan.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert_eq!(c.status, "True");
    &c.message
}

fn workload_scales(plan: &Plan) -> Vec<i32> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::ScaleWorkload { name, replicas } if name == DEPLOY => Some(*replicas),
            _ => None,
        })
        .collect()
}

#[test]
fn without_a_selector_the_replica_sets_get_the_deployments_selector() {
    let mut sim = beside_deployment(workload_rollout(2, None), 2);
    let first = sim.reconcile();
    assert_eq!(first.selector, Some(app_selector()));
    assert!(
        first.actions.contains(&apply_rs(&hash_of("web:1"), 2)),
        "{first:#?}"
    );
    // The `/scale` subresource (an HPA) selects the same pods.
    assert_eq!(first.status.selector.as_deref(), Some("app=web"));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn the_rollouts_own_selector_wins_over_the_deployments() {
    let mut rollout = workload_rollout(2, None);
    rollout.spec.selector = Some(app_selector());
    let mut world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    let mut wider = app_selector();
    wider.match_expressions = Some(Vec::new());
    wider
        .match_labels
        .as_mut()
        .unwrap()
        .insert("team".into(), "shop".into());
    world.workload_selector = Some(wider);
    let p = plan(&rollout, &world, t0());
    assert_eq!(p.selector, Some(app_selector()));
}

#[test]
fn an_own_selector_that_misses_the_deployments_template_is_invalid() {
    let mut rollout = workload_rollout(2, None);
    rollout.spec.selector = Some(LabelSelector {
        match_labels: Some([("app".to_string(), "other".to_string())].into()),
        match_expressions: None,
    });
    let world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    let p = plan(&rollout, &world, t0());
    assert!(p.actions.is_empty(), "{p:#?}");
    assert!(
        invalid_message(&p).starts_with("spec.selector.matchLabels:"),
        "{}",
        invalid_message(&p)
    );
}

#[test]
fn without_a_selector_and_without_the_deployment_the_spec_is_invalid_naming_spec_selector() {
    let rollout = workload_rollout(2, None);
    let world = ObservedBuilder::for_rollout(&rollout)
        .template_error("workloadRef: Deployment \"web-deploy\" not found")
        .build();
    let p = plan(&rollout, &world, t0());
    assert!(p.actions.is_empty(), "nothing is created: {p:#?}");
    assert_eq!(p.selector, None);
    let message = invalid_message(&p);
    assert!(message.starts_with("spec.selector:"), "{message}");
    assert!(message.contains("web-deploy"), "{message}");
    assert_eq!(p.status.phase, Some(Phase::Degraded));
}

#[test]
fn without_a_selector_and_a_deployment_without_one_the_spec_is_invalid_naming_spec_selector() {
    let rollout = workload_rollout(2, None);
    let mut world = ObservedBuilder::for_rollout(&rollout)
        .workload("web:1", 2)
        .build();
    world.workload_selector = Some(LabelSelector::default());
    let p = plan(&rollout, &world, t0());
    assert!(p.actions.is_empty(), "nothing is created: {p:#?}");
    let message = invalid_message(&p);
    assert!(message.starts_with("spec.selector:"), "{message}");
    assert!(message.contains("has no selector"), "{message}");
}

#[test]
fn progressively_scales_the_deployment_down_as_the_rollouts_pods_become_available() {
    let mut sim = beside_deployment(workload_rollout(4, Some(ScaleDown::Progressively)), 4);
    let h1 = hash_of("web:1");
    let mut deployment = Vec::new();
    for available in [0, 1, 2, 4] {
        sim.sync_pods();
        let rs = sim.world.replica_sets.iter_mut().find(|rs| rs.hash == h1);
        if let Some(rs) = rs {
            rs.available = available;
            rs.ready = available;
        }
        let p = sim.reconcile();
        assert!(workload_scales(&p).len() <= 1, "{p:#?}");
        deployment.push(sim.world.workload_replicas.unwrap());
    }
    assert_eq!(deployment, vec![4, 3, 2, 0]);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.world.workload_replicas, Some(0));
}

#[test]
fn progressively_never_scales_the_deployment_down_while_the_rollout_has_no_available_pods() {
    // More pods in the Deployment than the Rollout asks for: none go before a Rollout pod is
    // available to replace them.
    let mut sim = beside_deployment(workload_rollout(4, Some(ScaleDown::Progressively)), 6);
    for _ in 0..3 {
        sim.sync_pods();
        let p = sim.reconcile();
        assert_eq!(workload_scales(&p), Vec::<i32>::new(), "{p:#?}");
    }
    assert_eq!(sim.world.workload_replicas, Some(6));
    // Two available: the Deployment keeps the other two of the Rollout's four.
    sim.world.replica_sets[0].available = 2;
    sim.reconcile();
    assert_eq!(sim.world.workload_replicas, Some(2));
    // The Rollout's pods are lost again: the Deployment keeps what it has (it never grows, and
    // never shrinks with nothing available to replace its pods).
    sim.world.replica_sets[0].available = 0;
    let p = sim.reconcile();
    assert_eq!(workload_scales(&p), Vec::<i32>::new(), "{p:#?}");
    assert_eq!(sim.world.workload_replicas, Some(2));
}

#[test]
fn progressively_keeps_the_available_pods_of_both_at_least_as_before_up_to_replicas() {
    let rollout = workload_rollout(4, Some(ScaleDown::Progressively));
    let h1 = hash_of("web:1");
    let status = RolloutStatus {
        stable_revision: Some(h1.clone()),
        current_revision: Some(h1.clone()),
        ..Default::default()
    };
    let rollout = Rollout {
        status: Some(status),
        ..rollout
    };
    for deployment in 0..=6 {
        for available in 0..=4 {
            let world = ObservedBuilder::for_rollout(&rollout)
                .workload("web:1", deployment)
                .rs(&h1, 4, available)
                .build();
            let p = plan(&rollout, &world, t0());
            let after = workload_scales(&p).last().copied().unwrap_or(deployment);
            assert!(after <= deployment, "never grows: {deployment} -> {after}");
            // The Deployment's pods are all available at worst case for the bound: what goes
            // must be replaced by Rollout pods, up to the Rollout's replicas.
            assert!(
                after + available >= (deployment + available).min(4),
                "{deployment} with {available} available -> {after}"
            );
        }
    }
}

#[test]
fn onsuccess_and_never_do_not_scale_the_deployment_while_the_rollout_comes_up() {
    for mode in [None, Some(ScaleDown::Never), Some(ScaleDown::Onsuccess)] {
        let mut sim = beside_deployment(workload_rollout(4, mode), 4);
        sim.reconcile();
        sim.sync_pods();
        sim.world.replica_sets[0].available = 3;
        let p = sim.reconcile();
        assert_eq!(workload_scales(&p), Vec::<i32>::new(), "{mode:?}: {p:#?}");
    }
}
