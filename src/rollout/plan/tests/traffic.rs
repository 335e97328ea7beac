//! The canary machine with a traffic router (Gateway API here; the routers themselves are tested
//! on their documents in `src/traffic`).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::api::{PauseReason, Phase, RequestAction};
use crate::rollout::fixtures::*;
use crate::rollout::observe::ListedPod;
use crate::rollout::plan::draft::ENDPOINT_SETTLE;
use crate::rollout::plan::{Action, FINALIZER, cleanup};
use crate::traffic::{Found, ObjectKey};

fn route_key() -> ObjectKey {
    http_route("web").0
}

pub(super) fn with_route(rollout: crate::api::Rollout) -> Sim {
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.plans.clear();
    sim
}

pub(super) fn route(sim: &Sim) -> Value {
    match sim.world.traffic.get(&route_key()) {
        Some(Found::Object(v)) => v.clone(),
        other => panic!("no route: {other:?}"),
    }
}

/// (stable, canary) weights of the route's last rule.
pub(super) fn weights(sim: &Sim) -> (i64, i64) {
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
    assert_eq!(sim.service(CANARY_SVC), Some(v2.clone()), "for debugging");
    sim.advance(30);
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
    assert_eq!(
        sim.service(CANARY_SVC),
        Some(hash_of("web:1")),
        "the canary Service selects the stable's pods once the canary's go"
    );
}

/// Sets the route's generation and one gateway's report of the generation it has read.
fn gateway_read(sim: &mut Sim, generation: i64, seen: i64) {
    let Some(Found::Object(doc)) = sim.world.traffic.get_mut(&route_key()) else {
        panic!("no route")
    };
    doc["metadata"]["generation"] = generation.into();
    doc["status"] = serde_json::json!({"parents": [{
        "parentRef": {"name": "eg"}, "controllerName": "traefik.io/gateway-controller",
        "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": seen,
                        "reason": "Accepted", "message": ""}]}]});
}

/// The route at weight 0 is only what fledge wrote: the gateway routes by it once it has read it,
/// which its status says (`observedGeneration`). An aborted canary's pods stay until then, however
/// short `abortScaleDownDelaySeconds` is: a loaded Traefik still sent requests to the canary after
/// a delay of 2 s, and they failed once the pods were gone
/// (`dataplane::abort_at_half_drops_no_request`).
#[test]
fn an_aborted_canary_keeps_its_pods_until_the_gateway_has_read_the_route() {
    let mut sim = paused_with_a_header_route();
    sim.canary_mut().abort_scale_down_delay_seconds = Some(2);
    gateway_read(&mut sim, 3, 3);
    sim.request(RequestAction::Abort);
    sim.reconcile();
    assert_eq!(weights(&sim), (100, 0));
    // The API server took the write as generation 4; the gateway has not read it yet.
    gateway_read(&mut sim, 4, 3);
    let v2 = hash_of("web:2");
    sim.advance(10);
    sim.settle();
    assert_eq!(
        sim.size(&v2),
        1,
        "the gateway may still send the canary its old share"
    );
    gateway_read(&mut sim, 4, 4);
    sim.settle();
    assert_eq!(sim.size(&v2), 0, "the gateway routes by weight 0 now");
}

/// A gateway whose report never catches up holds an aborted canary's pods for a minute past
/// `abortScaleDownDelaySeconds`, not for ever.
#[test]
fn a_gateway_that_never_reads_the_route_holds_the_canary_pods_a_minute_at_most() {
    let mut sim = paused_with_a_header_route();
    sim.canary_mut().abort_scale_down_delay_seconds = Some(2);
    sim.request(RequestAction::Abort);
    sim.reconcile();
    gateway_read(&mut sim, 4, 3);
    let v2 = hash_of("web:2");
    sim.advance(2);
    let plan = sim.tick();
    assert_eq!(sim.size(&v2), 1);
    assert_eq!(
        plan.requeue_after,
        after(60),
        "looks again when the wait ends"
    );
    sim.advance(60);
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
}

/// A Git revert mid-rollout gives the canary's share back to the stable as an abort does, and
/// its pods (and the canary Service on them) stay until the gateway has read the route: before,
/// they went as soon as fledge read its own write back.
#[test]
fn a_reverted_canary_keeps_its_pods_until_the_gateway_has_read_the_route() {
    let mut sim = paused_with_a_header_route();
    gateway_read(&mut sim, 3, 3);
    let v2 = hash_of("web:2");
    sim.set_image("web:1");
    sim.reconcile();
    assert_eq!(weights(&sim), (100, 0));
    gateway_read(&mut sim, 4, 3);
    sim.advance(10);
    sim.settle();
    assert_eq!(
        sim.size(&v2),
        1,
        "the gateway may still send the canary its old share"
    );
    assert_eq!(sim.service(CANARY_SVC), Some(v2.clone()));
    gateway_read(&mut sim, 4, 4);
    sim.settle();
    assert_eq!(sim.size(&v2), 0, "the gateway routes by weight 0 now");
    assert_eq!(sim.service(CANARY_SVC), Some(hash_of("web:1")));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

/// The same for a canary replaced by a newer revision: the canary Service moves to the new
/// revision (which has no pods yet) only once the gateway routes nothing to it.
#[test]
fn a_replaced_canary_keeps_its_pods_until_the_gateway_has_read_the_route() {
    let mut sim = paused_with_a_header_route();
    gateway_read(&mut sim, 3, 3);
    let (v2, v3) = (hash_of("web:2"), hash_of("web:3"));
    sim.set_image("web:3");
    sim.reconcile();
    assert_eq!(weights(&sim), (100, 0));
    gateway_read(&mut sim, 4, 3);
    sim.advance(10);
    for _ in 0..5 {
        sim.tick();
    }
    assert_eq!(sim.size(&v2), 1);
    assert_eq!(sim.service(CANARY_SVC), Some(v2.clone()));
    gateway_read(&mut sim, 4, 4);
    sim.tick();
    assert_eq!(sim.size(&v2), 0);
    assert_eq!(sim.service(CANARY_SVC), Some(v3));
}

/// Without an anchor such as an abort's time, the wait for a gateway that never reads the route
/// starts when fledge first finds it lagging (`status.gatewayWaitSince`), and lasts a minute.
#[test]
fn a_gateway_that_never_reads_the_route_holds_a_reverted_canary_a_minute_at_most() {
    let mut sim = paused_with_a_header_route();
    let v2 = hash_of("web:2");
    sim.set_image("web:1");
    sim.reconcile();
    gateway_read(&mut sim, 4, 3);
    let plan = sim.tick();
    assert_eq!(sim.size(&v2), 1);
    assert_eq!(plan.requeue_after, after(60));
    assert!(sim.status().gateway_wait_since.is_some());
    sim.advance(60);
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
    assert_eq!(
        sim.status().gateway_wait_since,
        None,
        "nothing waits any more"
    );
}

/// `abortScaleDownDelaySeconds: 0` keeps the aborted canary's pods (for debugging) until the next
/// revision, as in Argo Rollouts with a traffic router and as fledge's blue-green does; before,
/// fledge scaled them down at once.
#[test]
fn an_abort_scale_down_delay_of_0_keeps_the_canary_pods() {
    let mut sim = to_half(2);
    sim.canary_mut().abort_scale_down_delay_seconds = Some(0);
    sim.set_image("web:2");
    sim.settle();
    let v2 = hash_of("web:2");
    assert_eq!(sim.size(&v2), 1);
    sim.request(RequestAction::Abort);
    let plan = sim.reconcile();
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(plan.requeue_after, None, "nothing left to wait for");
    sim.advance(3600);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    assert_eq!(sim.size(&v2), 1, "the canary keeps its pod");
    // The next revision replaces it as any abandoned canary.
    sim.set_image("web:3");
    sim.settle();
    assert_eq!(sim.size(&v2), 0);
}

#[test]
fn a_rejected_route_holds_traffic_with_the_gateways_message() {
    let mut sim = to_half(2);
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
    sim.canary_mut().traffic_routing = None;
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
    use crate::api::analysis::AnalysisPhase;
    use crate::rollout::gates::{RunKind, run_name};
    let step = crate::api::CanaryStep {
        analysis: Some(crate::api::RolloutAnalysis {
            templates: vec![crate::api::AnalysisTemplateRef {
                template_name: "errors".into(),
                cluster_scope: None,
            }],
            args: vec![],
            ..Default::default()
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

/// Two HTTPRoutes, `web` and `api`, each with one rule to the stable Service.
fn with_two_routes(steps: Vec<crate::api::CanaryStep>) -> Sim {
    let mut rollout = RolloutBuilder::canary()
        .replicas(2)
        .gateway("web")
        .steps(steps)
        .build();
    let routing = rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing
        .as_mut()
        .unwrap();
    routing
        .gateway_api
        .as_mut()
        .unwrap()
        .http_routes
        .push(crate::api::RouteRef { name: "api".into() });
    let mut sim = Sim::new(rollout);
    for name in ["web", "api"] {
        let (key, doc) = http_route(name);
        sim.world.traffic.insert(key, Found::Object(doc));
    }
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.plans.clear();
    sim
}

fn keep_only_route(sim: &mut Sim, name: &str) {
    let routing = sim
        .rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing
        .as_mut()
        .unwrap();
    routing
        .gateway_api
        .as_mut()
        .unwrap()
        .http_routes
        .retain(|r| r.name == name);
}

fn route_named(sim: &Sim, name: &str) -> Value {
    match sim.world.traffic.get(&http_route(name).0) {
        Some(Found::Object(v)) => v.clone(),
        other => panic!("no route {name}: {other:?}"),
    }
}

/// Scenario: mid-rollout (50% and a header route on both `web` and `api`), Git takes `web` out
/// of trafficRouting and keeps `api`. `web` must give the stable all traffic again (and lose the
/// header rule), even though `api` is still routed and written in the same plan.
#[test]
fn a_route_dropped_while_another_stays_gives_its_share_back_to_stable() {
    let mut sim = with_two_routes(vec![w(50), header("beta"), pause_forever()]);
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(weights(&sim), (50, 50));
    assert_eq!(
        route_named(&sim, "api")["spec"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    keep_only_route(&mut sim, "api");
    let p = sim.reconcile();
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyRoute { key, .. } if *key == route_key())),
        "the dropped route is given back in the first plan: {:?}",
        p.actions
    );
    sim.settle();
    assert_eq!(
        route(&sim)["spec"]["rules"],
        serde_json::json!([{"backendRefs": [{"name": STABLE_SVC, "port": 80, "weight": 100}]}]),
        "no canary backend, no header rule on the dropped route"
    );
    assert_eq!(
        route_named(&sim, "api")["spec"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the route still named keeps the canary's traffic"
    );
    assert_eq!(
        sim.status().applied_traffic_routing,
        sim.rollout
            .spec
            .strategy
            .canary
            .as_ref()
            .unwrap()
            .traffic_routing
    );
}

/// Scenario: `web` is dropped from trafficRouting while fledge cannot read it (its cache or API
/// is unavailable, or the object is gone). The old routing is not forgotten: it stays in
/// status.appliedTrafficRouting with a condition and one warning, the controller comes back, and
/// once the route can be read it is given back to the stable.
#[test]
fn an_unreadable_dropped_route_is_kept_in_status_and_retried() {
    let mut sim = with_two_routes(vec![w(50), header("beta"), pause_forever()]);
    sim.set_image("web:2");
    sim.settle();
    let applied = sim.status().applied_traffic_routing.clone();
    assert!(applied.is_some());
    let doc = route(&sim);

    keep_only_route(&mut sim, "api");
    for unreadable in [
        Found::NoApi("the HTTPRoute cache has not synced yet".into()),
        Found::Missing,
    ] {
        sim.world.traffic.insert(route_key(), unreadable);
        let p = sim.reconcile();
        assert_eq!(
            p.status.applied_traffic_routing, applied,
            "the old routing is kept while its route cannot be read"
        );
        let c = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == crate::api::conditions::RETIRED_ROUTING_PENDING)
            .expect("a condition says why");
        assert!(c.message.contains("HTTPRoute \"web\""), "{}", c.message);
        assert!(p.requeue_after.is_some(), "retried");
        // The same problem is reported once, not at every reconcile.
        let again = sim.reconcile();
        assert!(again.events.is_empty(), "{:?}", again.events);
    }
    assert!(
        sim.plans
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.warning && e.reason == "RoutingNotRetired")
    );

    sim.world.traffic.insert(route_key(), Found::Object(doc));
    sim.settle();
    assert_eq!(
        route(&sim)["spec"]["rules"],
        serde_json::json!([{"backendRefs": [{"name": STABLE_SVC, "port": 80, "weight": 100}]}]),
    );
    assert_eq!(
        sim.status().applied_traffic_routing,
        sim.rollout
            .spec
            .strategy
            .canary
            .as_ref()
            .unwrap()
            .traffic_routing
    );
    assert!(
        !sim.status()
            .conditions
            .iter()
            .any(|c| c.type_ == crate::api::conditions::RETIRED_ROUTING_PENDING)
    );
}

/// Scenario: mid-rollout with a router (50% and a header route), the spec becomes invalid (the
/// pod template is gone) and someone aborts. The abort must give the stable all traffic through
/// the routing fledge last applied, in that very plan, though the spec cannot be planned.
#[test]
fn an_abort_while_the_spec_is_invalid_gives_the_stable_all_traffic() {
    let mut sim = paused_with_a_header_route();
    assert_eq!(weights(&sim), (50, 50));
    sim.world.template = Err("workloadRef: Deployment \"web\" not found".into());
    let p = sim.reconcile();
    assert!(
        p.status
            .message
            .as_deref()
            .unwrap()
            .starts_with("InvalidSpec")
    );
    assert_eq!(
        weights(&sim),
        (50, 50),
        "an invalid spec alone moves nothing"
    );

    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    assert!(p.status.abort);
    assert!(
        matches!(&p.actions[..], [Action::ApplyRoute { .. }]),
        "only the route is written: {:?}",
        p.actions
    );
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(
        route(&sim)["spec"]["rules"].as_array().unwrap().len(),
        1,
        "no header rule"
    );
    assert_eq!(sim.status().canary_weight, Some(0));
}

/// Scenario: a step analysis is running at 50% when the spec becomes invalid (a renamed route:
/// trafficRouting names an HTTPRoute that does not exist); the analysis then fails. The failure
/// aborts, and the stable gets all traffic through the route fledge last applied.
#[test]
fn a_failed_analysis_while_the_spec_is_invalid_gives_the_stable_all_traffic() {
    use crate::api::analysis::AnalysisPhase;
    use crate::rollout::gates::{RunKind, run_name};
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .gateway("web")
        .steps([w(50), analysis_step(), w(100)])
        .build();
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), errors_template());
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(weights(&sim), (50, 50));
    let v2 = hash_of("web:2");
    let attempt = sim.status().analysis_attempt.unwrap_or(0);
    let name = run_name(NAME, &v2, RunKind::Step(1), attempt);

    // The route is renamed in Git, to one that does not exist.
    let routing = sim.canary_mut();
    routing
        .traffic_routing
        .as_mut()
        .unwrap()
        .gateway_api
        .as_mut()
        .unwrap()
        .http_routes[0]
        .name = "web-renamed".into();
    let p = sim.reconcile();
    assert!(p.status.message.as_deref().unwrap().contains("web-renamed"));
    assert!(!p.status.abort);

    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let p = sim.reconcile();
    assert!(p.status.abort, "a failed analysis aborts");
    assert!(
        p.events.iter().any(|e| e.reason == "AnalysisFailed"),
        "{:?}",
        p.events
    );
    assert_eq!(weights(&sim), (100, 0));
}

fn header_rules(sim: &Sim) -> usize {
    route(sim)["spec"]["rules"].as_array().unwrap().len() - 1
}

/// Available pods of the revision Service `name` selects.
fn served_by(sim: &Sim, name: &str) -> i32 {
    sim.service(name)
        .and_then(|h| sim.rs(&h).map(|rs| rs.available))
        .unwrap_or(0)
}

/// The route sends traffic only to Services whose revision has available pods: the weight of
/// each backend, and the header rules (to the canary Service).
fn assert_traffic_on_available_pods(sim: &Sim, what: &str) {
    let (stable, canary) = weights(sim);
    if stable > 0 {
        assert!(
            served_by(sim, STABLE_SVC) > 0,
            "{what}: weight {stable} to a stable Service without available pods: {:?}",
            sim.world.replica_sets
        );
    }
    if canary > 0 || header_rules(sim) > 0 {
        assert!(
            served_by(sim, CANARY_SVC) > 0,
            "{what}: weight {canary} or {} header rules to a canary Service without available \
             pods: {:?}",
            header_rules(sim),
            sim.world.replica_sets
        );
    }
}

/// Scenario: `[setHeaderRoute, pause {}]` before any weight. The canary gets a pod for the header
/// route, and the route is applied only once that pod is available; when the pod stops being
/// available, the header route is taken out first.
#[test]
fn a_header_route_waits_for_an_available_canary_pod_and_goes_when_it_goes() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([header("beta"), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.reconcile();
    assert_eq!(
        header_rules(&sim),
        0,
        "no header route to a canary without pods"
    );
    assert_eq!(sim.size(&v2), 1, "the header route's canary gets a pod");
    sim.sync_pods();
    sim.reconcile();
    assert_eq!(
        header_rules(&sim),
        0,
        "no header route to a pod not yet available"
    );
    assert_eq!(sim.status().current_step_index, Some(0), "the step waits");
    sim.pods_ready();
    sim.settle();
    assert_eq!(header_rules(&sim), 1);
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(weights(&sim), (100, 0));

    // The canary's pod stops being available: the header route goes.
    sim.world
        .replica_sets
        .iter_mut()
        .find(|rs| rs.hash == v2)
        .unwrap()
        .available = 0;
    sim.reconcile();
    assert_eq!(header_rules(&sim), 0);
}

/// Scenario: revision 2 has a header route (its only pod available); revision 3 replaces it. The
/// header route leaves the canary Service before that Service moves to revision 3 (no pods yet)
/// and before revision 2's pod goes.
#[test]
fn replacing_a_canary_moves_its_header_route_away_before_its_pods_go() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([header("beta"), pause_forever()])
            .build(),
    );
    sim.set_image("web:2");
    sim.settle();
    let (v2, v3) = (hash_of("web:2"), hash_of("web:3"));
    assert_eq!(header_rules(&sim), 1);
    assert_eq!(sim.service(CANARY_SVC), Some(v2.clone()));

    sim.set_image("web:3");
    let p = sim.reconcile();
    assert_eq!(header_rules(&sim), 0, "{:?}", p.actions);
    assert_eq!(
        sim.service(CANARY_SVC),
        Some(v2.clone()),
        "the canary Service keeps revision 2 until the route sends it nothing"
    );
    assert_eq!(sim.size(&v2), 1, "revision 2's pod stays until then");
    let p = sim.reconcile();
    assert!(
        p.actions.contains(&Action::ApplyReplicaSet {
            hash: v2.clone(),
            replicas: 0
        }),
        "{:?}",
        p.actions
    );
    assert_eq!(sim.service(CANARY_SVC), Some(v3.clone()));
    sim.sync_pods();
    sim.pods_ready();
    sim.settle();
    assert_eq!(
        header_rules(&sim),
        1,
        "the header route again, once revision 3 has a pod"
    );
    assert_eq!(sim.service(CANARY_SVC), Some(v3));
}

fn dynamic(mut rollout: crate::api::Rollout) -> crate::api::Rollout {
    rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .dynamic_stable_scale = Some(true);
    rollout
}

/// Scenario: dynamicStableScale at setWeight 100 has scaled the stable to 0. An abort brings the
/// stable's pods back first, and moves the weight back only as they become available.
#[test]
fn dynamic_stable_scale_abort_moves_traffic_back_only_onto_available_stable_pods() {
    let mut sim = with_route(dynamic(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(100), pause_forever()])
            .build(),
    ));
    sim.set_image("web:2");
    sim.settle();
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(weights(&sim), (0, 100));
    assert_eq!(sim.sizes(&v2, &v1), (2, 0));

    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    assert!(p.status.abort);
    assert_traffic_on_available_pods(&sim, "abort");
    assert_eq!(sim.size(&v1), 2, "the stable comes back first");
    sim.sync_pods();
    sim.reconcile();
    assert_traffic_on_available_pods(&sim, "stable pods starting");
    assert_eq!(weights(&sim), (0, 100));
    // One stable pod of two: half the traffic.
    sim.world
        .replica_sets
        .iter_mut()
        .find(|rs| rs.hash == v1)
        .unwrap()
        .available = 1;
    sim.reconcile();
    assert_eq!(weights(&sim), (50, 50));
    assert_eq!(
        sim.size(&v2),
        2,
        "the canary keeps its pods while it has traffic"
    );
    sim.pods_ready();
    sim.reconcile();
    assert_eq!(weights(&sim), (100, 0));
    sim.advance(30);
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
}

/// Scenario: dynamicStableScale promotes from setWeight 100 with the stable at 0 pods: the stable
/// Service moves to the new pods before the routes send it everything.
#[test]
fn dynamic_stable_scale_promotion_never_routes_to_a_stable_without_pods() {
    let mut sim = with_route(dynamic(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(50), w(100), pause_forever()])
            .build(),
    ));
    sim.set_image("web:2");
    for i in 0..30 {
        let p = sim.tick();
        assert_traffic_on_available_pods(&sim, &format!("tick {i}"));
        if p.status.phase == Some(Phase::Paused) {
            break;
        }
    }
    assert_eq!(weights(&sim), (0, 100));
    assert_eq!(sim.size(&hash_of("web:1")), 0);
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    let pin = p
        .actions
        .iter()
        .position(|a| matches!(a, Action::PinService { name, .. } if name == STABLE_SVC));
    let route = p
        .actions
        .iter()
        .position(|a| matches!(a, Action::ApplyRoute { .. }));
    assert!(
        pin.is_some() && pin < route,
        "the stable Service moves before the route: {:?}",
        p.actions
    );
    assert_traffic_on_available_pods(&sim, "promotion");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(weights(&sim), (100, 0));
}

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::api::{CanaryStep, SetMirrorRoute};

    fn mirror(name: &str) -> CanaryStep {
        CanaryStep {
            set_mirror_route: Some(SetMirrorRoute {
                name: name.into(),
                percentage: Some(50),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn step() -> impl Strategy<Value = CanaryStep> {
        prop_oneof![
            4 => (0..=100i32).prop_map(w),
            1 => Just(pause_forever()),
            1 => (0..60u32).prop_map(|s| pause(&format!("{s}s"))),
            1 => (0..8i32).prop_map(scale_replicas),
            1 => Just(header("beta")),
            1 => Just(mirror("shadow")),
        ]
    }

    fn request() -> impl Strategy<Value = RequestAction> {
        prop_oneof![
            Just(RequestAction::Abort),
            Just(RequestAction::Promote),
            Just(RequestAction::PromoteFull),
        ]
    }

    /// Every rule fledge added (header and mirror routes) sends to the canary Service.
    fn violations(sim: &Sim) -> Option<String> {
        let (stable, canary) = weights(sim);
        let added = header_rules(sim);
        if stable > 0 && served_by(sim, STABLE_SVC) == 0 {
            return Some(format!(
                "weight {stable} to a stable Service without available pods"
            ));
        }
        if (canary > 0 || added > 0) && served_by(sim, CANARY_SVC) == 0 {
            return Some(format!(
                "weight {canary} and {added} header/mirror rules to a canary Service without \
                 available pods"
            ));
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// With a router (and dynamicStableScale or not), through steps with weights, header and
        /// mirror routes, aborts, promotions and a revision replaced in flight: no route ever
        /// sends traffic to a Service whose revision has no available pod, and an abort ends
        /// with the stable holding all traffic.
        #[test]
        fn routed_canaries_route_only_to_available_pods(
            replicas in 1..6i32,
            steps in proptest::collection::vec(step(), 0..7),
            dynamic_scale in any::<bool>(),
            requests in proptest::collection::vec((0..40usize, request()), 0..3),
            replace_at in proptest::option::of(0..30usize),
            slow_pods in any::<bool>(),
        ) {
            let mut rollout = RolloutBuilder::canary()
                .replicas(replicas)
                .gateway("web")
                .steps(steps)
                .build();
            rollout.spec.strategy.canary.as_mut().unwrap().dynamic_stable_scale = Some(dynamic_scale);
            let mut sim = with_route(rollout);
            sim.set_image("web:2");
            let mut done = false;
            for i in 0..300 {
                for (_, action) in requests.iter().filter(|(at, _)| *at == i) {
                    sim.request(*action);
                }
                if replace_at == Some(i) {
                    sim.set_image("web:3");
                }
                let p = sim.reconcile();
                if let Some(v) = violations(&sim) {
                    return Err(TestCaseError::fail(format!(
                        "reconcile {i}: {v}: {:?}\n{:#?}", sim.world.replica_sets, p
                    )));
                }
                let s = sim.status();
                let settled = sim.world.replica_sets.iter().all(|rs| rs.current == rs.replicas && rs.available == rs.replicas);
                if s.abort && s.phase == Some(Phase::Degraded) && weights(&sim) == (100, 0) && header_rules(&sim) == 0 && settled {
                    done = true;
                    break;
                }
                if s.phase == Some(Phase::Healthy) && s.current_revision == s.stable_revision && replace_at.is_none_or(|at| at < i) && settled {
                    prop_assert_eq!(weights(&sim), (100, 0));
                    done = true;
                    break;
                }
                if p.status.phase == Some(Phase::Paused) {
                    if p.requeue_after.is_some() {
                        sim.advance_to_requeue(&p);
                    } else {
                        sim.request(RequestAction::Promote);
                    }
                } else if p.status.phase == Some(Phase::Degraded) && p.requeue_after.is_some() {
                    // abortScaleDownDelaySeconds passes.
                    sim.advance_to_requeue(&p);
                }
                sim.sync_pods();
                if slow_pods {
                    for rs in &mut sim.world.replica_sets {
                        rs.available = (rs.available + 1).min(rs.current);
                        rs.ready = rs.available;
                    }
                } else {
                    sim.pods_ready();
                }
            }
            prop_assert!(done, "did not finish: {:#?}", sim.status());
        }
    }
}

/// A canary replaced while its header route is in force gets the pods its own steps ask for
/// (none at a `setCanaryScale` of 0), not the pod the old canary's header route needs: that pod
/// was created, removed in the next reconcile once the route was gone, and created again at the
/// header step, and the plan was no fixpoint (found by `routed_canaries_route_only_to_available_pods`).
#[test]
fn a_canary_replaced_under_a_header_route_starts_at_its_own_size() {
    let mut sim = with_route(
        RolloutBuilder::canary()
            .replicas(1)
            .gateway("web")
            .steps([scale_replicas(0), header("beta")])
            .build(),
    );
    sim.set_image("web:2");
    sim.tick();
    sim.tick();
    assert_eq!(
        header_rules(&sim),
        1,
        "the header route of web:2 is in force"
    );
    sim.set_image("web:3");
    let new = hash_of("web:3");
    let mut sizes = Vec::new();
    for _ in 0..20 {
        sim.tick();
        sizes.push(sim.size(&new));
        if sim.status().phase == Some(Phase::Healthy) {
            break;
        }
    }
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(
        sizes[0], 0,
        "web:3 is asked for no pod at its setCanaryScale 0: {sizes:?}"
    );
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "web:3 never loses a pod it was just given: {sizes:?}"
    );
}

/// Pods as the ReplicaSet of revision `hash` names them, listed since before fledge started.
fn pod_names(hash: &str, n: usize) -> Vec<ListedPod> {
    (0..n)
        .map(|i| ListedPod {
            name: format!("{NAME}-{hash}-p{i}"),
            since: None,
        })
        .collect()
}

/// The same pods, first listed at `since`.
fn listed_since(hash: &str, n: usize, since: Timestamp) -> Vec<ListedPod> {
    let mut pods = pod_names(hash, n);
    for p in &mut pods {
        p.since = Some(since);
    }
    pods
}

/// web:1 Healthy on `replicas` pods behind route `web`, with steps `setWeight 50, pause`.
fn to_half(replicas: i32) -> Sim {
    with_route(
        RolloutBuilder::canary()
            .replicas(replicas)
            .gateway("web")
            .steps([w(50), pause_forever()])
            .build(),
    )
}

/// Revision 2 of 4 replicas at step 0 (50%), its 2 pods available, while both Services'
/// EndpointSlices still list only revision 1's 4 pods. Returns revision 2's hash.
fn canary_available_but_not_listed() -> (Sim, String) {
    let mut sim = to_half(4);
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    for svc in [STABLE_SVC, CANARY_SVC] {
        sim.world.endpoints.insert(svc.into(), pod_names(&v1, 4));
    }
    sim.set_image("web:2");
    for _ in 0..10 {
        sim.tick();
    }
    (sim, v2)
}

/// Gateways route by EndpointSlices, which list a pod a moment after its ReplicaSet counts it
/// available (a batch period later on clusters that set one): the canary gets weight only as its
/// pods are listed there. Before, the weight moved on the ReplicaSet's count alone, and the
/// gateway answered 503 until the endpoints caught up (`dataplane::abort_at_half_drops_no_request`).
#[test]
fn weight_waits_for_the_canary_pods_to_be_listed_in_the_services_endpoints() {
    let (mut sim, v2) = canary_available_but_not_listed();
    assert_eq!(sim.rs(&v2).map(|rs| rs.available), Some(2));
    assert_eq!(sim.service(CANARY_SVC), Some(v2.clone()));
    assert_eq!(
        weights(&sim),
        (100, 0),
        "no weight onto pods the gateway has no address for"
    );
    sim.world
        .endpoints
        .insert(CANARY_SVC.into(), pod_names(&v2, 1));
    sim.tick();
    assert_eq!(
        weights(&sim),
        (75, 25),
        "one listed pod of four carries 25%"
    );
    assert_eq!(sim.status().current_step_index, Some(0));
    sim.world
        .endpoints
        .insert(CANARY_SVC.into(), pod_names(&v2, 2));
    sim.tick();
    assert_eq!(weights(&sim), (50, 50));
    sim.tick();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
}

/// A gateway learns of a newly listed pod from its own EndpointSlice watch, which may deliver the
/// slice after the route's new weight reached it (two watches, no order between them): Traefik
/// then routes the share to a backend with no address and answers 503 (seen once in eleven runs
/// of `dataplane::abort_at_half_drops_no_request`). A pod carries weight only once the slices
/// have listed it for [`ENDPOINT_SETTLE`], and the rollout looks again when that has passed.
#[test]
fn weight_moves_onto_newly_listed_pods_only_after_they_settle() {
    let (mut sim, v2) = canary_available_but_not_listed();
    assert_eq!(weights(&sim), (100, 0));
    let listed_at = sim.now;
    sim.world
        .endpoints
        .insert(CANARY_SVC.into(), listed_since(&v2, 2, listed_at));
    let plan = sim.tick();
    assert_eq!(
        weights(&sim),
        (100, 0),
        "pods listed just now carry no weight yet"
    );
    let settled = listed_at + ENDPOINT_SETTLE;
    let wait = plan
        .requeue_after
        .expect("a look again once the pods settle");
    assert!(
        sim.now + k8s_openapi::jiff::SignedDuration::try_from(wait).unwrap() <= settled,
        "requeued after {wait:?}, later than the settle time"
    );
    sim.advance_to_requeue(&plan);
    while sim.now < settled {
        let plan = sim.tick();
        sim.advance_to_requeue(&plan);
    }
    sim.tick();
    assert_eq!(weights(&sim), (50, 50));
}

/// An abort gives the weight back to the stable only as far as the stable Service's listed pods
/// carry it, and a header route stays on the canary while the stable lists none.
#[test]
fn an_abort_moves_weight_back_only_onto_listed_stable_pods() {
    let mut sim = to_half(4);
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.set_image("web:2");
    for _ in 0..10 {
        sim.tick();
    }
    assert_eq!(weights(&sim), (50, 50));
    sim.world
        .endpoints
        .insert(STABLE_SVC.into(), pod_names(&v1, 3));
    sim.world
        .endpoints
        .insert(CANARY_SVC.into(), pod_names(&v2, 2));
    sim.request(RequestAction::Abort);
    sim.tick();
    assert_eq!(
        weights(&sim),
        (75, 25),
        "three listed stable pods of four carry 75%"
    );
    sim.world
        .endpoints
        .insert(STABLE_SVC.into(), pod_names(&v1, 4));
    sim.tick();
    assert_eq!(weights(&sim), (100, 0));
}
