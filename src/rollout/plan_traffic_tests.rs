//! The canary machine with a traffic router (Gateway API here; the routers themselves are tested
//! on their documents in `src/traffic`).

use serde_json::Value;

use super::fixtures::*;
use super::plan::{Action, FINALIZER, cleanup};
use crate::api::{PauseReason, Phase, RequestAction, SetHeaderRoute};
use crate::traffic::{Found, ObjectKey};

fn route_key() -> ObjectKey {
    http_route("web").0
}

fn with_route(rollout: crate::api::Rollout) -> Sim {
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.plans.clear();
    sim
}

fn route(sim: &Sim) -> Value {
    match sim.world.traffic.get(&route_key()) {
        Some(Found::Object(v)) => v.clone(),
        other => panic!("no route: {other:?}"),
    }
}

/// (stable, canary) weights of the route's last rule.
fn weights(sim: &Sim) -> (i64, i64) {
    let r = route(sim);
    let rules = r["spec"]["rules"].as_array().unwrap();
    let refs = rules.last().unwrap()["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    let w = |n: &str| {
        refs.iter()
            .find(|b| b["name"] == n)
            .map_or(-1, |b| b["weight"].as_i64().unwrap_or(1))
    };
    (w(STABLE_SVC), w(CANARY_SVC))
}

fn header(name: &str) -> crate::api::CanaryStep {
    crate::api::CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: name.into(),
            matches: vec![crate::api::HeaderRouteMatch {
                header_name: "x-beta".into(),
                header_value: crate::api::HeaderValueMatch {
                    exact: Some("1".into()),
                    ..Default::default()
                },
            }],
        }),
        ..Default::default()
    }
}

/// Revision 2 of 2 replicas at 50% with a header route, paused for a promote.
fn paused_with_a_header_route() -> Sim {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(50), header("beta"), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    sim.settle();
    sim
}

#[test]
fn the_first_revision_adds_the_finalizer_and_routes_everything_to_stable() {
    let sim = with_route(
        RolloutBuilder::canary()
            .replicas(4)
            .gateway("web")
            .steps([w(25)])
            .build(),
    );
    assert!(
        sim.rollout
            .metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&FINALIZER.to_string())
    );
    assert_eq!(weights(&sim), (100, 0));
}

#[test]
fn traffic_moves_only_once_canary_pods_are_available_and_the_step_waits_for_the_route() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(4)
            .gateway("web")
            .steps([w(25), pause_forever(), w(50), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    let v1 = hash_of("web:1");
    let v2 = hash_of("web:2");
    // The canary gets its pods; the stable keeps all of its own; no traffic yet.
    sim.reconcile();
    assert_eq!(sim.sizes(&v2, &v1), (1, 4));
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(sim.status().current_step_index, Some(0));
    sim.sync_pods();
    sim.reconcile();
    assert_eq!(
        weights(&sim),
        (100, 0),
        "no weight for a pod that is not available"
    );
    sim.pods_ready();
    let plan = sim.reconcile();
    assert!(
        matches!(plan.actions[0], Action::ApplyRoute { .. }),
        "{:?}",
        plan.actions
    );
    assert_eq!(weights(&sim), (75, 25));
    // The route holds the weight: the step is done, and the pause holds.
    sim.reconcile();
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().canary_weight, Some(25));
    assert_eq!(sim.status().phase, Some(Phase::Paused));

    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!(weights(&sim), (50, 50));
    assert_eq!(sim.sizes(&v2, &v1), (2, 4));

    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(sim.service(STABLE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(weights(&sim), (100, 0));
}

#[test]
fn the_weight_never_exceeds_what_set_canary_scale_provisions() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(4)
            .gateway("web")
            .steps([scale_replicas(1), w(60), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2));
    assert_eq!(weights(&sim), (75, 25));
    assert_eq!(sim.status().canary_weight, Some(25));
}

#[test]
fn abort_zeroes_the_weight_before_any_scaling_and_keeps_canary_pods_a_while() {
    let mut sim = paused_with_a_header_route();
    assert_eq!(route(&sim)["spec"]["rules"].as_array().unwrap().len(), 2);
    sim.request(RequestAction::Abort);
    let plan = sim.reconcile();
    assert!(
        matches!(plan.actions[0], Action::ApplyRoute { .. }),
        "{:?}",
        plan.actions
    );
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(route(&sim)["spec"]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    let v2 = hash_of("web:2");
    assert_eq!(
        sim.size(&v2),
        1,
        "canary pods stay for abortScaleDownDelaySeconds"
    );
    assert_eq!(plan.requeue_after, after(30));
    sim.advance(30);
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
}

#[test]
fn a_rejected_route_holds_traffic_with_the_gateways_message() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(50), pause_forever()])
            .build(),
    );
    let mut doc = route(&sim);
    doc["status"] = serde_json::json!({"parents": [{"parentRef": {"name": "eg"}, "conditions": [
        {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no listener allows this route"}]}]});
    sim.world
        .traffic
        .insert(route_key(), Found::Object(doc.clone()));
    sim.set_image("web:2");
    sim.settle();
    let s = sim.status();
    assert_eq!(s.phase, Some(Phase::Paused));
    assert!(
        s.pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::TrafficRouteNotAccepted)
    );
    assert_eq!(
        s.message.as_deref(),
        Some(
            "traffic held: HTTPRoute \"web\" on parent \"eg\": Accepted=False (NotAllowedByListeners): no listener allows this route"
        )
    );
    assert_eq!(weights(&sim), (100, 0));
    // Accepted again: the steps go on.
    let mut doc = route(&sim);
    doc.as_object_mut().unwrap().remove("status");
    sim.world.traffic.insert(route_key(), Found::Object(doc));
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(weights(&sim), (50, 50));
}

#[test]
fn a_missing_route_or_api_is_invalid_spec() {
    let rollout = RolloutBuilder::canary()
        .gateway("web")
        .steps([w(50)])
        .build();
    let mut sim = Sim::new(rollout.clone());
    sim.reconcile();
    assert_eq!(
        sim.status().message.as_deref(),
        Some(
            "InvalidSpec: strategy.canary.trafficRouting.gatewayAPI.httpRoutes[0]: HTTPRoute \"web\" not found in namespace \"shop\""
        )
    );
    assert!(
        sim.world.replica_sets.is_empty(),
        "an invalid spec changes nothing"
    );
    let mut sim = Sim::new(rollout);
    sim.world.traffic.insert(
        route_key(),
        Found::NoApi("the HTTPRoute API (gateway.networking.k8s.io/v1) is not served by this cluster: install its CRD".into()),
    );
    sim.reconcile();
    assert!(
        sim.status()
            .message
            .as_deref()
            .unwrap()
            .contains("install its CRD")
    );
}

#[test]
fn cleanup_restores_the_route_unpins_services_and_drops_the_finalizer() {
    let mut sim = paused_with_a_header_route();
    let actions = cleanup(&sim.rollout, &sim.world);
    assert!(matches!(actions[0], Action::ApplyRoute { .. }));
    assert!(actions.contains(&Action::UnpinService {
        name: STABLE_SVC.into()
    }));
    assert_eq!(actions.last(), Some(&Action::RemoveFinalizer));
    apply_writes(&mut sim.world, &actions, sim.now);
    let (_, original) = http_route("web");
    assert_eq!(
        route(&sim)["spec"]["rules"][0]["backendRefs"],
        serde_json::json!([{"name": STABLE_SVC, "port": 80, "weight": 100}])
    );
    assert_eq!(
        route(&sim)["spec"]["parentRefs"],
        original["spec"]["parentRefs"]
    );
    // Without the finalizer there is nothing to do.
    sim.rollout.metadata.finalizers = None;
    assert!(cleanup(&sim.rollout, &sim.world).is_empty());
}

#[test]
fn routing_removed_mid_rollout_gives_the_route_back_to_stable_first() {
    let mut sim = paused_with_a_header_route();
    assert_eq!(weights(&sim), (50, 50));
    assert!(sim.status().applied_traffic_routing.is_some());

    // Git drops trafficRouting: the canary goes on by pod counts, and the route it no longer
    // names stops sending anything to the canary, in the first write.
    sim.rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing = None;
    let p = sim.reconcile();
    assert!(
        matches!(&p.actions[0], Action::ApplyRoute { key, .. } if *key == route_key()),
        "{:?}",
        p.actions
    );
    sim.settle();
    let rules = route(&sim)["spec"]["rules"].clone();
    assert_eq!(
        rules,
        serde_json::json!([{"backendRefs": [{"name": STABLE_SVC, "port": 80, "weight": 100}]}]),
        "no canary backend, no header rule"
    );
    assert_eq!(sim.status().applied_traffic_routing, None);
    // Deleting the Rollout later has no route left to clean.
    assert!(
        !cleanup(&sim.rollout, &sim.world)
            .iter()
            .any(|a| matches!(a, Action::ApplyRoute { .. }))
    );
}

#[test]
fn header_steps_on_smi_are_invalid_spec() {
    let mut rollout = RolloutBuilder::canary().steps([header("beta")]).build();
    rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing = Some(crate::api::TrafficRouting {
        smi: Some(Default::default()),
        ..Default::default()
    });
    let mut sim = Sim::new(rollout);
    sim.reconcile();
    assert_eq!(
        sim.status().message.as_deref(),
        Some(
            "InvalidSpec: strategy.canary.steps[0].setHeaderRoute: header routes are not supported by strategy.canary.trafficRouting.smi (TrafficSplit has only weights)"
        )
    );
}

#[test]
fn a_failed_step_analysis_zeroes_the_route_before_scaling() {
    use super::analysis::{RunKind, run_name};
    use crate::api::analysis::AnalysisPhase;
    let step = crate::api::CanaryStep {
        analysis: Some(crate::api::RolloutAnalysis {
            templates: vec![crate::api::AnalysisTemplateRef {
                template_name: "errors".into(),
                cluster_scope: None,
            }],
            args: vec![],
        }),
        ..Default::default()
    };
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .gateway("web")
        .steps([w(50), step, w(100)])
        .build();
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.world.analysis.templates.insert(
        (false, "errors".into()),
        serde_yaml::from_str(
            "metrics: [{name: errors, provider: {prometheus: {address: 'http://p:9090', query: up}}}]",
        )
        .unwrap(),
    );
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    let v2 = hash_of("web:2");
    // The analysis step holds the rollout at 50%, whatever time passes.
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(weights(&sim), (50, 50));
    let attempt = sim.status().analysis_attempt.unwrap_or(0);
    let name = run_name(NAME, &v2, RunKind::Step(1), attempt);
    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let plan = sim.reconcile();
    assert!(plan.status.abort);
    assert!(
        matches!(plan.actions[0], Action::ApplyRoute { .. }),
        "{:?}",
        plan.actions
    );
    assert_eq!(weights(&sim), (100, 0));
}
