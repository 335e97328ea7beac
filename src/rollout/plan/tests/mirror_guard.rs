//! The mirror guard (issue 14): a `setMirrorRoute` step never writes a RequestMirror filter that a
//! parent Gateway's class says its gateway does not implement (Traefik answers 500 to every
//! request such a rule matches); the rollout is held there, traffic unchanged, until a person
//! promotes past the step or aborts.

use super::traffic::{route, weights, with_route};
use crate::api::{CanaryStep, PauseReason, Phase, RequestAction, SetMirrorRoute};
use crate::rollout::fixtures::*;
use crate::traffic::features::ParentClass;
use crate::traffic::{Kind, ObjectKey};

fn mirror(name: &str, percentage: Option<i32>) -> CanaryStep {
    CanaryStep {
        set_mirror_route: Some(SetMirrorRoute {
            name: name.into(),
            percentage,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The class of the route's parent Gateway, listing `features`.
fn class(features: &[&str]) -> Vec<ParentClass> {
    vec![ParentClass {
        route: ObjectKey {
            kind: Kind::HttpRoute,
            name: "web".into(),
        },
        gateway: format!("{NAMESPACE}/eg"),
        class: "traefik".into(),
        supported: features.iter().map(|f| f.to_string()).collect(),
    }]
}

fn mirrors_written(sim: &Sim) -> usize {
    route(sim)["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["filters"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["type"] == "RequestMirror")
        .count()
}

/// Revision 2 walked up to the mirror step, on a gateway whose class lists `features`.
fn at_the_mirror_step(features: &[&str]) -> Sim {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(20), mirror("shadow", Some(50)), w(50), pause_forever()])
            .build(),
    );
    sim.world.gateway_classes = class(features);
    sim.set_image("web:2");
    sim.settle();
    sim
}

#[test]
fn a_mirror_the_gateway_does_not_implement_is_never_written_and_holds_the_step() {
    let sim = at_the_mirror_step(&["Gateway", "HTTPRoute", "GRPCRoute"]);
    let s = sim.status();
    assert_eq!(s.current_step_index, Some(1));
    assert_eq!(s.phase, Some(Phase::Paused));
    assert!(
        s.pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::MirrorNotSupported)
    );
    let message = s.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("GatewayClass \"traefik\"") && message.contains("HTTPRouteRequestMirror"),
        "{message}"
    );
    assert_eq!(mirrors_written(&sim), 0);
    assert_eq!(
        weights(&sim),
        (80, 20),
        "traffic stays as the last step left it"
    );
    let warnings: Vec<_> = sim
        .plans
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| e.warning && e.reason == "MirrorNotSupported")
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning, not one per reconcile");
}

#[test]
fn promote_skips_the_held_mirror_step_and_the_mirror_stays_out() {
    let mut sim = at_the_mirror_step(&["HTTPRoute"]);
    sim.request(RequestAction::Promote);
    sim.settle();
    let s = sim.status();
    assert_eq!(s.current_step_index, Some(3));
    assert!(
        !s.pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::MirrorNotSupported)
    );
    assert_eq!(weights(&sim), (50, 50));
    assert_eq!(mirrors_written(&sim), 0);
}

#[test]
fn abort_at_a_held_mirror_step_gives_the_stable_all_traffic() {
    let mut sim = at_the_mirror_step(&["HTTPRoute"]);
    sim.request(RequestAction::Abort);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    assert_eq!(weights(&sim).1, 0);
    assert_eq!(mirrors_written(&sim), 0);
}

#[test]
fn a_class_that_lists_no_features_or_the_mirror_gets_it_as_before() {
    for features in [
        &[][..],
        &[
            "HTTPRoute",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestPercentageMirror",
        ][..],
    ] {
        let sim = at_the_mirror_step(features);
        let s = sim.status();
        assert_eq!(s.current_step_index, Some(3), "{features:?}");
        assert_eq!(mirrors_written(&sim), 1, "{features:?}");
    }
}

#[test]
fn a_class_that_lists_the_mirror_later_lets_the_held_step_go_on() {
    let mut sim = at_the_mirror_step(&["HTTPRoute"]);
    sim.world.gateway_classes = class(&[
        "HTTPRoute",
        "HTTPRouteRequestMirror",
        "HTTPRouteRequestPercentageMirror",
    ]);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!(mirrors_written(&sim), 1);
}
