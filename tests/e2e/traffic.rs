//! Traffic routers on the local control plane: Gateway API routes (the CRDs `hack/cluster.sh`
//! installs), and Istio, SMI and NGINX objects (minimal CRDs installed here: the operator only
//! needs their API, no mesh or ingress controller runs).

use fledge::api::{Phase, RequestAction, Rollout};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};

pub(crate) fn ar(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub(crate) fn http_route() -> ApiResource {
    ar("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
}

pub(crate) fn grpc_route() -> ApiResource {
    ar("gateway.networking.k8s.io/v1", "GRPCRoute", "grpcroutes")
}

fn dynamic(env: &TestEnv, r: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(env.client.clone(), &env.ns, r)
}

pub(crate) async fn apply_dynamic(env: &TestEnv, r: &ApiResource, doc: Value) {
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let obj: DynamicObject = serde_json::from_value(doc).unwrap();
    dynamic(env, r)
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", r.kind));
}

pub(crate) async fn get_doc(env: &TestEnv, r: &ApiResource, name: &str) -> Option<Value> {
    let obj = dynamic(env, r).get_opt(name).await.expect("reading")?;
    Some(serde_json::to_value(obj).unwrap())
}

/// Waits until object `name` satisfies `check`; the failure shows the object.
pub(crate) async fn wait_doc(
    env: &TestEnv,
    r: &ApiResource,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    env.wait_for(what, MINUTE, || async {
        match get_doc(env, r, name).await {
            Some(doc) if check(&doc) => Ok(doc),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// (stable, canary) weights of rule `i`'s backendRefs to the two Services.
pub(crate) fn weights(route: &Value, i: usize) -> (Option<i64>, Option<i64>) {
    let refs = route["spec"]["rules"][i]["backendRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let w = |name: &str| {
        refs.iter()
            .find(|b| b["name"] == name)
            .map(|b| b["weight"].as_i64().unwrap_or(1))
    };
    (w("web-stable"), w("web-canary"))
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

pub(crate) fn with_routing(mut rollout: Value, routing: Value) -> Value {
    rollout["spec"]["strategy"]["canary"]["trafficRouting"] = routing;
    rollout
}

/// The user's route: a foreign rule, a weighed rule with a filter and a foreign backend.
pub(crate) fn user_http_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "parentRefs": [{"name": "eg"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                 "backendRefs": [{"name": "cdn", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"add": [{"name": "x-team", "value": "shop"}]}}],
                 "backendRefs": [{"name": "web-stable", "port": 80, "weight": 90},
                                 {"name": "legacy", "port": 80, "weight": 10}]}
            ]
        }
    })
}

fn gateway_routing() -> Value {
    json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}], "grpcRoutes": [{"name": "api"}]}})
}

async fn gateway_env(name: &str) -> TestEnv {
    let env = TestEnv::canary(name).await;
    apply_dynamic(&env, &http_route(), user_http_route()).await;
    apply_dynamic(
        &env,
        &grpc_route(),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
               "metadata": {"name": "api"},
               "spec": {"parentRefs": [{"name": "eg"}],
                        "rules": [{"backendRefs": [{"name": "web-stable", "port": 80}]}]}}),
    )
    .await;
    env
}

#[tokio::test]
async fn gateway_routes_follow_every_step_and_keep_what_the_user_wrote() {
    let env = gateway_env("gw-steps").await;
    let steps = json!([
        {"setWeight": 25}, {"pause": {}},
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 50}},
        {"pause": {}},
        {"setWeight": 50}, {"pause": {"duration": "2s"}},
    ]);
    let rollout = |v: &str| {
        with_routing(
            canary_rollout("web", 4, v, steps.clone()),
            gateway_routing(),
        )
    };
    // The route as the API server keeps it, defaults filled in, before fledge touches it.
    let user = get_doc(&env, &http_route(), "web").await.unwrap();
    let v1 = deploy_v1(&env, rollout("1")).await;
    let route = wait_doc(&env, &http_route(), "web", "v1: stable 100", |r| {
        weights(r, 1) == (Some(100), Some(0))
    })
    .await;
    assert_eq!(route["spec"]["rules"][0], user["spec"]["rules"][0]);
    assert_eq!(route["spec"]["hostnames"], user["spec"]["hostnames"]);
    assert_eq!(route["spec"]["parentRefs"], user["spec"]["parentRefs"]);

    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| {
        step(r) == Some(1) && phase(r) == Some(Phase::Paused)
    })
    .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(weights(&route, 1), (Some(75), Some(25)), "{route}");
    assert_eq!(
        route["spec"]["rules"][1]["backendRefs"][1],
        user["spec"]["rules"][1]["backendRefs"][1]
    );
    assert_eq!(
        route["spec"]["rules"][1]["filters"],
        user["spec"]["rules"][1]["filters"]
    );
    let grpc = get_doc(&env, &grpc_route(), "api").await.unwrap();
    assert_eq!(weights(&grpc, 0), (Some(75), Some(25)), "{grpc}");
    let r = env.rollout("web").await;
    assert_eq!(r.status.unwrap().canary_weight, Some(25));

    // No gateway controller reports on the route here: allowed, with a Warning event.
    env.wait_for("a RouteNotReported event", MINUTE, || async {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(env.client.clone(), &env.ns);
        let list = events
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("RouteNotReported")
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|_| ())
            .ok_or_else(|| {
                format!(
                    "{:?}",
                    list.items
                        .iter()
                        .map(|e| e.reason.clone())
                        .collect::<Vec<_>>()
                )
            })
    })
    .await;

    // The header and mirror routes appear ahead of the weighed rule.
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "paused at step 4", MINUTE, |r| step(r) == Some(4))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{route}");
    assert_eq!(rules[0], user["spec"]["rules"][0]);
    assert_eq!(
        rules[1]["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-beta", "value": "1"}])
    );
    assert_eq!(rules[1]["backendRefs"].as_array().unwrap().len(), 1);
    assert_eq!(rules[1]["backendRefs"][0]["name"], "web-canary");
    assert_eq!(rules[2]["filters"][1]["type"], "RequestMirror");
    assert_eq!(rules[2]["filters"][1]["requestMirror"]["percent"], 50);
    assert_eq!(
        rules[2]["filters"][1]["requestMirror"]["backendRef"]["name"],
        "web-canary"
    );

    // On to the end: promoted, then the routes go back to the stable alone.
    env.request("web", RequestAction::Promote).await;
    let r = env
        .wait_rollout("web", "v2 Healthy", MINUTE, |r| {
            phase(r) == Some(Phase::Healthy)
                && r.status.as_ref().unwrap().stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    let v2 = r.status.unwrap().stable_revision.unwrap();
    let route = wait_doc(&env, &http_route(), "web", "routes back to stable", |r| {
        r["spec"]["rules"].as_array().unwrap().len() == 2 && weights(r, 1) == (Some(100), Some(0))
    })
    .await;
    assert_eq!(route["spec"]["rules"][0], user["spec"]["rules"][0]);
    assert_eq!(env.service_hash("web-stable").await, Some(v2));
}

#[tokio::test]
async fn removing_traffic_routing_mid_rollout_gives_the_route_back_to_stable() {
    let env = gateway_env("gw-removed").await;
    let steps = json!([
        {"setWeight": 40},
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"pause": {}},
    ]);
    let routed = |v: &str| {
        with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        )
    };
    deploy_v1(&env, routed("1")).await;
    env.apply::<Rollout>(routed("2")).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    // Rule 1 is the header route now; the weighed rule follows it.
    assert_eq!(weights(&route, 2).1, Some(40), "{route}");

    // Git drops trafficRouting in the middle of the rollout, and with it the header step
    // (admission refuses header steps without a router).
    let unrouted = json!([{"setWeight": 40}, {"setWeight": 40}, {"pause": {}}]);
    env.apply::<Rollout>(canary_rollout("web", 2, "2", unrouted))
        .await;
    let route = wait_doc(
        &env,
        &http_route(),
        "web",
        "the route back on stable",
        |r| weights(r, 1) == (Some(100), None),
    )
    .await;
    assert_eq!(
        route["spec"]["rules"].as_array().unwrap().len(),
        2,
        "the header rule is gone too: {route}"
    );
    assert!(
        route["metadata"]["annotations"]
            .get("fledge.dev/routes.web")
            .is_none(),
        "{route}"
    );
    let r = env
        .wait_rollout("web", "routing forgotten", MINUTE, |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.applied_traffic_routing.is_none())
        })
        .await;
    assert_eq!(phase(&r), Some(Phase::Paused), "the canary goes on by pods");
}

#[tokio::test]
async fn abort_zeroes_the_weight_and_removes_header_routes_at_once() {
    let env = gateway_env("gw-abort").await;
    let steps = json!([
        {"setWeight": 40},
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"prefix": "yes"}}]}},
        {"pause": {}},
    ]);
    let rollout = |v: &str| {
        let mut r = with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        );
        r["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = json!(3);
        r
    };
    deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(
        route["spec"]["rules"].as_array().unwrap().len(),
        3,
        "{route}"
    );
    assert_eq!(
        route["spec"]["rules"][1]["matches"][0]["headers"][0],
        json!({"type": "RegularExpression", "name": "x-beta", "value": "^yes.*"})
    );

    env.request("web", RequestAction::Abort).await;
    let route = wait_doc(&env, &http_route(), "web", "weight 0 after abort", |r| {
        weights(r, 1) == (Some(100), Some(0))
    })
    .await;
    assert_eq!(
        route["spec"]["rules"].as_array().unwrap().len(),
        2,
        "{route}"
    );
    let r = env
        .wait_rollout("web", "Degraded", MINUTE, |r| {
            phase(r) == Some(Phase::Degraded)
        })
        .await;
    let status = r.status.unwrap();
    assert_eq!(status.canary_weight, Some(0));
    // The canary's pods stay for abortScaleDownDelaySeconds, then go.
    let canary = status.current_revision.unwrap();
    let stable = status.stable_revision.unwrap();
    env.wait_replica_sets(
        "canary scaled down after the delay",
        vec![(stable.clone(), 2, 2), (canary, 0, 0)],
    )
    .await;
    env.wait_for("web-canary back on the stable", MINUTE, || async {
        match env.service_hash("web-canary").await {
            Some(h) if h == stable => Ok(()),
            other => Err(format!("web-canary selects {other:?}")),
        }
    })
    .await;
}

/// Scenario: `abortScaleDownDelaySeconds: 0` keeps the aborted canary's pods (proved after the
/// operator has looked again) until the next revision replaces them, as Argo Rollouts does.
#[tokio::test]
async fn an_abort_scale_down_delay_of_0_keeps_the_canary_until_the_next_revision() {
    let env = gateway_env("gw-abort-keep").await;
    let rollout = |v: &str| {
        let mut r = with_routing(
            canary_rollout("web", 2, v, json!([{"setWeight": 50}, {"pause": {}}])),
            gateway_routing(),
        );
        r["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = json!(0);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| step(r) == Some(1))
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    env.request("web", RequestAction::Abort).await;
    env.wait_rollout("web", "Degraded, weight 0", MINUTE, |r| {
        phase(r) == Some(Phase::Degraded)
            && r.status.as_ref().and_then(|s| s.canary_weight) == Some(0)
    })
    .await;
    env.reconciled("web").await;
    let mut want = vec![(v1.clone(), 2, 2), (v2.clone(), 1, 1)];
    want.sort();
    assert_eq!(env.replica_sets().await, want, "the canary keeps its pod");

    env.apply::<Rollout>(rollout("3")).await;
    let r = env
        .wait_rollout("web", "v3 paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v3 = r.status.unwrap().current_revision.unwrap();
    env.wait_replica_sets(
        "the aborted canary replaced by the next revision",
        vec![(v1, 2, 2), (v2, 0, 0), (v3, 1, 1)],
    )
    .await;
}

#[tokio::test]
async fn a_rejected_route_holds_the_rollout_with_the_gateway_message() {
    let env = gateway_env("gw-rejected").await;
    let steps =
        json!([{"setWeight": 20}, {"pause": {"duration": "1s"}}, {"setWeight": 60}, {"pause": {}}]);
    let rollout = |v: &str| {
        with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        )
    };
    deploy_v1(&env, rollout("1")).await;

    // A gateway controller reports that it cannot resolve a backend.
    let generation =
        get_doc(&env, &http_route(), "web").await.unwrap()["metadata"]["generation"].clone();
    let status = json!({"status": {"parents": [{
        "parentRef": {"name": "eg"}, "controllerName": "example.com/gateway",
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
             "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
             "message": "service legacy not found", "observedGeneration": generation,
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}});
    dynamic(&env, &http_route())
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("route status");

    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused on the rejected route", MINUTE, |r| {
            r.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|m| m.contains("service legacy not found"))
        })
        .await;
    assert_eq!(phase(&r), Some(Phase::Paused));
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(
        weights(&route, 1),
        (Some(100), Some(0)),
        "no traffic moved: {route}"
    );

    // Once the gateway accepts the route again, the steps go on.
    dynamic(&env, &http_route())
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": []}})),
        )
        .await
        .expect("route status");
    env.wait_rollout("web", "paused at step 3", MINUTE, |r| step(r) == Some(3))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(weights(&route, 1), (Some(40), Some(60)), "{route}");
}

#[tokio::test]
async fn deleting_the_rollout_gives_the_stable_all_traffic() {
    let env = gateway_env("gw-delete").await;
    let steps = json!([{"setWeight": 30}, {"pause": {}}]);
    let rollout = |v: &str| {
        with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        )
    };
    // The route as the API server keeps it, defaults filled in, before fledge touches it.
    let user = get_doc(&env, &http_route(), "web").await.unwrap();
    deploy_v1(&env, rollout("1")).await;
    let r = env.rollout("web").await;
    assert!(
        r.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"fledge.dev/traffic-cleanup".to_string())
    );
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| step(r) == Some(1))
        .await;
    wait_doc(&env, &http_route(), "web", "30% canary", |r| {
        weights(r, 1) == (Some(70), Some(30))
    })
    .await;

    env.rollouts()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for("rollout gone", MINUTE, || async {
        match env.rollouts().get_opt("web").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    // Back to what the user wrote, the stable at full weight, fledge's canary ref and record gone.
    let mut want = user["spec"]["rules"].clone();
    want[1]["backendRefs"][0]["weight"] = json!(100);
    assert_eq!(route["spec"]["rules"], want, "{route}");
    assert_eq!(route["spec"]["hostnames"], user["spec"]["hostnames"]);
    assert!(
        route["metadata"]["annotations"]
            .get("fledge.dev/routes.web")
            .is_none(),
        "{route}"
    );
    assert_eq!(env.service_hash("web-stable").await, None);
    assert_eq!(env.service_hash("web-canary").await, None);
}

#[tokio::test]
async fn a_missing_route_is_an_invalid_spec_not_a_crash() {
    let env = TestEnv::canary("gw-missing").await;
    let rollout = with_routing(
        canary_rollout("web", 1, "1", json!([{"setWeight": 50}])),
        json!({"gatewayAPI": {"httpRoutes": [{"name": "nope"}]}}),
    );
    env.apply::<Rollout>(rollout).await;
    let r = env
        .wait_rollout("web", "InvalidSpec", MINUTE, |r| {
            phase(r) == Some(Phase::Degraded)
        })
        .await;
    assert_eq!(
        r.status.unwrap().message.as_deref(),
        Some(format!("InvalidSpec: strategy.canary.trafficRouting.gatewayAPI.httpRoutes[0]: HTTPRoute \"nope\" not found in namespace {:?}", env.ns).as_str())
    );
    // Creating the route is enough: the route's watch wakes the Rollout.
    let mut route = user_http_route();
    route["metadata"]["name"] = json!("nope");
    apply_dynamic(&env, &http_route(), route).await;
    env.wait_rollout("web", "Healthy once the route exists", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
}

/// Installs a minimal CRD (any fields kept) for a kind the operator only needs the API of.
pub(crate) async fn install_crd(
    env: &TestEnv,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(env.client.clone());
    let name = format!("{plural}.{group}");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                 "versions": [{"name": version, "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    crds.patch(
        &name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("installing CRD");
    let r = ar(&format!("{group}/{version}"), kind, plural);
    env.wait_for(&format!("{kind} API served"), MINUTE, || async {
        dynamic(env, &r)
            .list(&Default::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
}

#[tokio::test]
async fn istio_virtual_service_and_destination_rule_follow_the_steps() {
    let env = TestEnv::canary("istio").await;
    install_crd(
        &env,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    )
    .await;
    install_crd(
        &env,
        "networking.istio.io",
        "v1beta1",
        "DestinationRule",
        "destinationrules",
    )
    .await;
    let vs = ar(
        "networking.istio.io/v1beta1",
        "VirtualService",
        "virtualservices",
    );
    let dr = ar(
        "networking.istio.io/v1beta1",
        "DestinationRule",
        "destinationrules",
    );
    apply_dynamic(&env, &vs, json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [{"destination": {"host": "web", "subset": "stable"}}]}]}})).await;
    apply_dynamic(&env, &dr, json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "web"},
        "spec": {"host": "web", "subsets": [{"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}]}})).await;
    let routing = json!({"istio": {"virtualService": {"name": "web", "routes": ["primary"]},
                                   "destinationRule": {"name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary"}}});
    let steps = json!([{"setWeight": 20},
                       {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
                       {"pause": {}}]);
    let rollout =
        |v: &str| with_routing(canary_rollout("web", 2, v, steps.clone()), routing.clone());
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    let doc = get_doc(&env, &vs, "web").await.unwrap();
    let http = doc["spec"]["http"].as_array().unwrap();
    assert_eq!(http[0]["name"], "beta", "{doc}");
    assert_eq!(
        http[0]["route"],
        json!([{"destination": {"host": "web", "subset": "canary"}}])
    );
    assert_eq!(
        http[1]["route"],
        json!([{"destination": {"host": "web", "subset": "stable"}, "weight": 80},
                                       {"destination": {"host": "web", "subset": "canary"}, "weight": 20}])
    );
    let doc = get_doc(&env, &dr, "web").await.unwrap();
    assert_eq!(
        doc["spec"]["subsets"][0]["labels"]["rollouts-pod-template-hash"],
        json!(v1)
    );
    assert_eq!(
        doc["spec"]["subsets"][1]["labels"]["rollouts-pod-template-hash"],
        json!(v2)
    );

    env.request("web", RequestAction::Abort).await;
    let doc = wait_doc(
        &env,
        &vs,
        "web",
        "abort: stable 100, header route gone",
        |d| {
            d["spec"]["http"].as_array().unwrap().len() == 1
                && d["spec"]["http"][0]["route"][0]["weight"] == 100
        },
    )
    .await;
    assert_eq!(doc["spec"]["http"][0]["route"][1]["weight"], 0);
}

#[tokio::test]
async fn smi_traffic_split_is_created_weighed_and_deleted_with_the_rollout() {
    let env = TestEnv::canary("smi").await;
    install_crd(
        &env,
        "split.smi-spec.io",
        "v1alpha2",
        "TrafficSplit",
        "trafficsplits",
    )
    .await;
    let ts = ar(
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "trafficsplits",
    );
    let routing = json!({"smi": {"rootService": "web"}});
    let steps = json!([{"setWeight": 30}, {"pause": {}}]);
    let rollout =
        |v: &str| with_routing(canary_rollout("web", 2, v, steps.clone()), routing.clone());
    deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| step(r) == Some(1))
        .await;
    let split = wait_doc(&env, &ts, "web", "30% on the canary", |d| {
        d["spec"]["backends"][1]["weight"] == 30
    })
    .await;
    assert_eq!(split["spec"]["service"], "web");
    assert_eq!(
        split["spec"]["backends"],
        json!([{"service": "web-stable", "weight": 70}, {"service": "web-canary", "weight": 30}])
    );
    env.rollouts()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for("split deleted", MINUTE, || async {
        match get_doc(&env, &ts, "web").await {
            None => Ok(()),
            Some(d) => Err(d.to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn nginx_canary_ingress_carries_weight_and_header() {
    let env = TestEnv::canary("nginx").await;
    let ing = ar("networking.k8s.io/v1", "Ingress", "ingresses");
    apply_dynamic(&env, &ing, json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}}]}}]}})).await;
    let routing = json!({"nginx": {"stableIngress": "web"}});
    let steps = json!([{"setWeight": 50},
                       {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "on"}}]}},
                       {"pause": {}}]);
    let rollout =
        |v: &str| with_routing(canary_rollout("web", 2, v, steps.clone()), routing.clone());
    deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let canary = get_doc(&env, &ing, "web-web-canary")
        .await
        .expect("canary ingress");
    let a = &canary["metadata"]["annotations"];
    assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true", "{canary}");
    assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "50");
    assert_eq!(a["nginx.ingress.kubernetes.io/canary-by-header"], "x-beta");
    assert_eq!(
        a["nginx.ingress.kubernetes.io/canary-by-header-value"],
        "on"
    );
    assert_eq!(
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    env.request("web", RequestAction::PromoteFull).await;
    env.wait_rollout("web", "Healthy", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
    })
    .await;
    let canary = wait_doc(
        &env,
        &ing,
        "web-web-canary",
        "weight 0 after promotion",
        |d| d["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "0",
    )
    .await;
    assert!(
        canary["metadata"]["annotations"]
            .get("nginx.ingress.kubernetes.io/canary-by-header")
            .is_none()
    );
}

fn header_step() -> Value {
    json!({"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}})
}

/// Scenario: mid-rollout (40%), Git takes the HTTPRoute out of trafficRouting and keeps the
/// GRPCRoute. The HTTPRoute gives the stable all traffic again, though another route is still
/// routed (and written) by the same Rollout.
#[tokio::test]
async fn dropping_one_of_two_routes_mid_rollout_gives_its_share_back_to_stable() {
    let env = gateway_env("gw-drop-one").await;
    let steps = json!([{"setWeight": 40}, {"pause": {}}]);
    let rollout =
        |v: &str, routing: Value| with_routing(canary_rollout("web", 2, v, steps.clone()), routing);
    deploy_v1(&env, rollout("1", gateway_routing())).await;
    env.apply::<Rollout>(rollout("2", gateway_routing())).await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| step(r) == Some(1))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(weights(&route, 1), (Some(60), Some(40)), "{route}");

    let grpc_only = json!({"gatewayAPI": {"grpcRoutes": [{"name": "api"}]}});
    env.apply::<Rollout>(rollout("2", grpc_only)).await;
    wait_doc(
        &env,
        &http_route(),
        "web",
        "the dropped route back on stable",
        |r| weights(r, 1) == (Some(100), None),
    )
    .await;
    let r = env
        .wait_rollout(
            "web",
            "the routing in status follows the spec",
            MINUTE,
            |r| {
                let spec = r
                    .spec
                    .strategy
                    .canary
                    .as_ref()
                    .unwrap()
                    .traffic_routing
                    .clone();
                r.status
                    .as_ref()
                    .is_some_and(|s| spec.is_some() && s.applied_traffic_routing == spec)
            },
        )
        .await;
    assert_eq!(step(&r), Some(1));
    let grpc = get_doc(&env, &grpc_route(), "api").await.unwrap();
    assert_eq!(
        weights(&grpc, 0),
        (Some(60), Some(40)),
        "the kept route keeps the canary's share: {grpc}"
    );
}

/// Scenario: mid-rollout (40% and a header route), Git renames the HTTPRoute in trafficRouting to
/// one that does not exist, so the spec is invalid; then someone aborts. The stable gets all
/// traffic through the routes fledge last applied, while the spec is still invalid.
#[tokio::test]
async fn an_abort_while_the_spec_is_invalid_gives_the_stable_all_traffic() {
    let env = gateway_env("gw-abort-invalid").await;
    let steps = json!([{"setWeight": 40}, header_step(), {"pause": {}}]);
    let rollout =
        |v: &str, routing: Value| with_routing(canary_rollout("web", 2, v, steps.clone()), routing);
    deploy_v1(&env, rollout("1", gateway_routing())).await;
    env.apply::<Rollout>(rollout("2", gateway_routing())).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(
        route["spec"]["rules"].as_array().unwrap().len(),
        3,
        "{route}"
    );

    let renamed = json!({"gatewayAPI": {"httpRoutes": [{"name": "web-renamed"}], "grpcRoutes": [{"name": "api"}]}});
    env.apply::<Rollout>(rollout("2", renamed)).await;
    env.wait_rollout("web", "InvalidSpec", MINUTE, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .is_some_and(|m| m.starts_with("InvalidSpec") && m.contains("web-renamed"))
    })
    .await;
    env.request("web", RequestAction::Abort).await;
    let route = wait_doc(
        &env,
        &http_route(),
        "web",
        "the route back on stable",
        |r| {
            r["spec"]["rules"].as_array().unwrap().len() == 2
                && weights(r, 1) == (Some(100), Some(0))
        },
    )
    .await;
    assert_eq!(weights(&route, 1), (Some(100), Some(0)));
    wait_doc(
        &env,
        &grpc_route(),
        "api",
        "the GRPCRoute back on stable",
        |r| weights(r, 0) == (Some(100), Some(0)),
    )
    .await;
    // The routes are written before the status, in the same reconcile: wait for it too.
    env.wait_rollout("web", "the abort in the status", MINUTE, |r| {
        r.status.as_ref().is_some_and(|s| s.abort)
    })
    .await;
}

/// Scenario: `[setHeaderRoute, pause {}]` before any weight, with pods that take 2 s to become
/// available. The header rule appears only once a canary pod is available (watching the route
/// and the ReplicaSets), and the rollout pauses with it in place.
#[tokio::test]
async fn a_header_route_before_any_weight_waits_for_an_available_canary_pod() {
    let env = gateway_env("gw-header-first").await;
    let steps = json!([header_step(), {"pause": {}}]);
    let rollout = |v: &str| {
        let mut r = with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        );
        r["spec"]["minReadySeconds"] = json!(2);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let start = std::time::Instant::now();
    loop {
        let route = get_doc(&env, &http_route(), "web").await.unwrap();
        let headed = route["spec"]["rules"].as_array().unwrap().len() == 3;
        let canary_available: i32 = env
            .replica_sets()
            .await
            .iter()
            .filter(|s| s.0 != v1)
            .map(|s| s.2)
            .sum();
        assert!(
            !headed || canary_available > 0,
            "a header route to a canary without available pods: {route}"
        );
        let r = env.rollout("web").await;
        if step(&r) == Some(1) && phase(&r) == Some(Phase::Paused) {
            assert!(headed, "paused with the header route in place: {route}");
            break;
        }
        assert!(
            start.elapsed() < MINUTE,
            "never paused at step 1: {:?}",
            r.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Scenario: dynamicStableScale at setWeight 100 has scaled the stable to 0; an abort. Watching
/// the route and the ReplicaSets: the route gives the stable traffic only while the stable has
/// available pods (they take 2 s), and ends with the stable holding all of it.
#[tokio::test]
async fn dynamic_stable_scale_abort_moves_traffic_back_only_onto_available_stable_pods() {
    let env = gateway_env("gw-dynamic-abort").await;
    let steps = json!([{"setWeight": 100}, {"pause": {}}]);
    let rollout = |v: &str| {
        let mut r = with_routing(
            canary_rollout("web", 2, v, steps.clone()),
            gateway_routing(),
        );
        r["spec"]["minReadySeconds"] = json!(2);
        r["spec"]["strategy"]["canary"]["dynamicStableScale"] = json!(true);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| {
        step(r) == Some(1) && phase(r) == Some(Phase::Paused)
    })
    .await;
    env.wait_for("the stable scaled to 0", MINUTE, || async {
        let sets = env.replica_sets().await;
        match sets.iter().find(|s| s.0 == v1) {
            Some((_, 0, 0)) => Ok(()),
            _ => Err(format!("{sets:?}")),
        }
    })
    .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(weights(&route, 1), (Some(0), Some(100)), "{route}");

    env.request("web", RequestAction::Abort).await;
    let start = std::time::Instant::now();
    loop {
        let route = get_doc(&env, &http_route(), "web").await.unwrap();
        let (stable, _) = weights(&route, 1);
        let sets = env.replica_sets().await;
        let stable_available = sets.iter().find(|s| s.0 == v1).map_or(0, |s| s.2);
        assert!(
            stable.unwrap_or(0) == 0 || stable_available > 0,
            "weight {stable:?} to a stable without available pods: {sets:?}"
        );
        if weights(&route, 1) == (Some(100), Some(0)) {
            break;
        }
        assert!(start.elapsed() < MINUTE, "never back on stable: {route}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
