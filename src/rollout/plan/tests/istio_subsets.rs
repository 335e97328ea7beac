//! Istio with a DestinationRule: the subsets follow the planner's decisions as the Services do,
//! and with no Services at all (Argo Rollouts' subset-level split) they are what separates the
//! revisions. Traffic never goes to a subset whose revision has no available pods.

use serde_json::{Value, json};

use crate::api::{
    IstioDestinationRule, IstioRouting, IstioVirtualService, Phase, RequestAction, TrafficRouting,
};
use crate::rollout::fixtures::*;
use crate::rollout::plan::Action;
use crate::traffic::{Found, Kind, ObjectKey};

fn vs_key() -> ObjectKey {
    ObjectKey {
        kind: Kind::VirtualService,
        name: "web".into(),
    }
}

fn dr_key() -> ObjectKey {
    ObjectKey {
        kind: Kind::DestinationRule,
        name: "web".into(),
    }
}

/// A canary over one host's subsets; `services`: with stable and canary Services too.
fn rollout(
    services: bool,
    dynamic: bool,
    steps: Vec<crate::api::CanaryStep>,
) -> crate::api::Rollout {
    let mut r = RolloutBuilder::canary().replicas(2).steps(steps).build();
    let c = r.spec.strategy.canary.as_mut().unwrap();
    if !services {
        c.stable_service = None;
        c.canary_service = None;
    }
    c.dynamic_stable_scale = dynamic.then_some(true);
    c.traffic_routing = Some(TrafficRouting {
        istio: Some(IstioRouting {
            virtual_service: Some(IstioVirtualService {
                name: "web".into(),
                ..Default::default()
            }),
            destination_rule: Some(IstioDestinationRule {
                name: "web".into(),
                canary_subset_name: "canary".into(),
                stable_subset_name: "stable".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    r
}

fn healthy(rollout: crate::api::Rollout) -> Sim {
    let routes =
        json!({"http": [{"route": [{"destination": {"host": "web", "subset": "stable"}}]}]});
    let mut sim = with_objects(rollout, routes);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.plans.clear();
    sim
}

/// The Rollout just applied, with VirtualService `web` holding `routes` (its `http`, `tls` or
/// `tcp` lists) and DestinationRule `web` with both subsets.
fn with_objects(rollout: crate::api::Rollout, routes: Value) -> Sim {
    let mut sim = Sim::new(rollout);
    let mut spec = json!({"hosts": ["web"]});
    spec.as_object_mut()
        .unwrap()
        .extend(routes.as_object().unwrap().clone());
    sim.world.traffic.insert(
        vs_key(),
        Found::Object(
            json!({"metadata": {"name": "web", "namespace": NAMESPACE, "resourceVersion": "1"},
            "spec": spec}),
        ),
    );
    sim.world.traffic.insert(
        dr_key(),
        Found::Object(
            json!({"metadata": {"name": "web", "namespace": NAMESPACE, "resourceVersion": "1"},
            "spec": {"host": "web", "subsets": [{"name": "stable", "labels": {"app": "web"}},
                                                 {"name": "canary", "labels": {"app": "web"}}]}}),
        ),
    );
    sim
}

fn doc(sim: &Sim, key: &ObjectKey) -> Value {
    match sim.world.traffic.get(key) {
        Some(Found::Object(v)) => v.clone(),
        other => panic!("no {key}: {other:?}"),
    }
}

/// (stable, canary) weights of the VirtualService's weighed route.
fn weights(sim: &Sim) -> (i64, i64) {
    let vs = doc(sim, &vs_key());
    let http = vs["spec"]["http"].as_array().unwrap();
    let route = http.last().unwrap()["route"].as_array().unwrap().clone();
    let w = |s: &str| {
        route
            .iter()
            .find(|d| d["destination"]["subset"] == s)
            .map_or(if s == "stable" { 100 } else { 0 }, |d| {
                d["weight"].as_i64().unwrap_or(0)
            })
    };
    (w("stable"), w("canary"))
}

/// The revision subset `name` is pinned to.
fn pinned(sim: &Sim, name: &str) -> Option<String> {
    doc(sim, &dr_key())["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)?["labels"]["rollouts-pod-template-hash"]
        .as_str()
        .map(String::from)
}

fn available(sim: &Sim, subset: &str) -> i32 {
    pinned(sim, subset)
        .and_then(|h| sim.rs(&h).map(|rs| rs.available))
        .unwrap_or(0)
}

/// No weight (and no header route) to a subset whose revision has no available pods.
fn assert_subsets_on_available_pods(sim: &Sim, what: &str) {
    let (stable, canary) = weights(sim);
    let extra = doc(sim, &vs_key())["spec"]["http"]
        .as_array()
        .unwrap()
        .len()
        - 1;
    if stable > 0 {
        assert!(
            available(sim, "stable") > 0,
            "{what}: weight {stable} to a stable subset without available pods: {:?}",
            sim.world.replica_sets
        );
    }
    if canary > 0 || extra > 0 {
        assert!(
            available(sim, "canary") > 0,
            "{what}: weight {canary} ({extra} header routes) to a canary subset without \
             available pods: {:?}",
            sim.world.replica_sets
        );
    }
}

/// Ticks until the rollout pauses, checking the subsets at every reconcile.
fn run_to_pause(sim: &mut Sim, what: &str) {
    for i in 0..40 {
        let p = sim.tick();
        assert_subsets_on_available_pods(sim, &format!("{what}, tick {i}"));
        if p.status.phase == Some(Phase::Paused) {
            return;
        }
    }
    panic!("{what}: never paused: {:#?}", sim.status());
}

/// Scenario: one Service-less rollout steps to 20% then 50%, the DestinationRule's subsets pinned
/// to each revision; a promotion moves both subsets to the new revision.
#[test]
fn without_services_the_subsets_carry_the_steps_and_the_promotion() {
    let mut sim = healthy(rollout(
        false,
        false,
        vec![w(20), pause_forever(), w(50), pause_forever()],
    ));
    let v1 = hash_of("web:1");
    assert_eq!(pinned(&sim, "stable").as_deref(), Some(v1.as_str()));
    assert_eq!(pinned(&sim, "canary").as_deref(), Some(v1.as_str()));
    assert_eq!(weights(&sim), (100, 0));
    assert!(sim.world.services.is_empty(), "no Service to pin");

    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    run_to_pause(&mut sim, "to 20%");
    assert_eq!(weights(&sim), (80, 20));
    assert_eq!(pinned(&sim, "stable"), Some(v1.clone()));
    assert_eq!(pinned(&sim, "canary"), Some(v2.clone()));
    sim.request(RequestAction::Promote);
    run_to_pause(&mut sim, "to 50%");
    assert_eq!(weights(&sim), (50, 50));

    sim.request(RequestAction::Promote);
    for i in 0..40 {
        sim.tick();
        assert_subsets_on_available_pods(&sim, &format!("promotion, tick {i}"));
    }
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision, Some(v2.clone()));
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(pinned(&sim, "stable"), Some(v2.clone()));
    assert_eq!(pinned(&sim, "canary"), Some(v2));
    assert!(sim.world.services.is_empty(), "no Service to pin");
}

/// Scenario: revision 2 carries 50%; revision 3 replaces it. The canary subset stays on revision 2
/// while the route sends it anything (its pods stay too), and moves to revision 3 only after. With
/// the Services as well, the subset follows the canary Service's decisions.
#[test]
fn a_replaced_canary_keeps_its_subset_until_the_routes_send_it_nothing() {
    for services in [false, true] {
        let mut sim = healthy(rollout(services, false, vec![w(50), pause_forever()]));
        sim.set_image("web:2");
        run_to_pause(&mut sim, "to 50%");
        let (v2, v3) = (hash_of("web:2"), hash_of("web:3"));
        assert_eq!(weights(&sim), (50, 50));

        sim.set_image("web:3");
        let p = sim.reconcile();
        assert_subsets_on_available_pods(&sim, "replaced");
        assert_eq!(
            weights(&sim),
            (100, 0),
            "services {services}: {:?}",
            p.actions
        );
        assert_eq!(
            pinned(&sim, "canary"),
            Some(v2.clone()),
            "services {services}: the canary subset keeps revision 2 while the route still sent it traffic: {:?}",
            p.actions
        );
        assert!(sim.size(&v2) > 0, "revision 2's pods stay until then");
        sim.reconcile();
        assert_subsets_on_available_pods(&sim, "replaced, next");
        assert_eq!(pinned(&sim, "canary"), Some(v3.clone()));
        run_to_pause(&mut sim, "revision 3 to 50%");
        assert_eq!(weights(&sim), (50, 50));
        assert_eq!(pinned(&sim, "canary"), Some(v3));
    }
}

/// Scenario: dynamicStableScale at 100% has scaled the stable to 0; the promotion moves the stable
/// subset to the new revision before the route gives the stable subset all traffic.
#[test]
fn a_promotion_moves_the_stable_subset_before_the_route_gives_it_everything() {
    let mut sim = healthy(rollout(false, true, vec![w(50), w(100), pause_forever()]));
    sim.set_image("web:2");
    run_to_pause(&mut sim, "to 100%");
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(weights(&sim), (0, 100));
    assert_eq!(sim.size(&v1), 0);
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    let at = |key: ObjectKey| {
        p.actions
            .iter()
            .position(|a| matches!(a, Action::ApplyRoute { key: k, .. } if *k == key))
    };
    assert!(
        at(dr_key()).is_some() && at(dr_key()) < at(vs_key()),
        "{:?}",
        p.actions
    );
    assert_subsets_on_available_pods(&sim, "promotion");
    assert_eq!(pinned(&sim, "stable"), Some(v2));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(weights(&sim), (100, 0));
}

/// Scenario: an abort at 50% gives the stable subset all traffic at once, before any scaling.
#[test]
fn an_abort_gives_the_stable_subset_all_traffic_first() {
    let mut sim = healthy(rollout(false, false, vec![w(50), pause_forever()]));
    sim.set_image("web:2");
    run_to_pause(&mut sim, "to 50%");
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.request(RequestAction::Abort);
    let p = sim.reconcile();
    assert!(
        matches!(p.actions.first(), Some(Action::ApplyRoute { key, .. }) if *key == vs_key()),
        "{:?}",
        p.actions
    );
    assert_eq!(weights(&sim), (100, 0));
    assert_eq!(pinned(&sim, "stable"), Some(v1));
    assert_eq!(pinned(&sim, "canary"), Some(v2));
    sim.advance(60);
    sim.settle();
    assert_eq!(weights(&sim), (100, 0));
    assert_subsets_on_available_pods(&sim, "after the abort");
}

/// A header route step when the VirtualService has TLS routes only: there is no HTTP route to
/// put it beside, so the step could never be done. `InvalidSpec` names the step's field instead
/// of a rollout that waits at it for ever.
#[test]
fn a_header_route_without_an_http_route_to_carry_it_is_invalid() {
    let mut r = rollout(false, false, vec![w(20), header("beta"), pause_forever()]);
    r.spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing
        .as_mut()
        .unwrap()
        .istio
        .as_mut()
        .unwrap()
        .virtual_service
        .as_mut()
        .unwrap()
        .tls_routes = vec![crate::api::IstioTlsRoute {
        port: Some(443),
        sni_hosts: vec!["web.example.com".into()],
    }];
    let routes = json!({"tls": [{"match": [{"port": 443, "sniHosts": ["web.example.com"]}],
        "route": [{"destination": {"host": "web", "subset": "stable"}}]}]});
    let mut sim = with_objects(r, routes);
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    let invalid = crate::api::conditions::find(
        &sim.status().conditions,
        crate::api::conditions::INVALID_SPEC,
    )
    .expect("an InvalidSpec condition");
    assert!(
        invalid
            .message
            .contains("strategy.canary.steps[1].setHeaderRoute"),
        "{}",
        invalid.message
    );
}
