//! Mirror routes matched by method and path (issue 17): what fledge writes into a real API
//! server's HTTPRoute and VirtualService at the mirror step, and takes out after.

use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};
use crate::traffic::{
    apply_dynamic, ar, get_doc, http_route, install_crd, user_http_route, wait_doc, with_routing,
};

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

/// The rules or HTTP routes that carry a mirror.
fn mirrors<'a>(list: &'a Value, key: &str) -> Vec<&'a Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|r| match key {
            "filters" => r["filters"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["type"] == "RequestMirror")),
            _ => r.get("mirror").is_some(),
        })
        .collect()
}

#[tokio::test]
async fn httproute_mirror_carries_method_and_path_matches_at_the_step_and_loses_them_after() {
    let env = TestEnv::canary("mirror-gw").await;
    apply_dynamic(&env, &http_route(), user_http_route()).await;
    let steps = json!([
        {"setWeight": 20},
        {"setMirrorRoute": {"name": "shadow", "percentage": 50,
                            "method": {"exact": "POST"}, "path": {"prefix": "/api/orders"},
                            "match": [{"headerName": "x-shadow", "headerValue": {"exact": "1"}}]}},
        {"pause": {}},
        {"setMirrorRoute": {"name": "shadow", "anyOf": [
            {"method": {"exact": "GET"}, "path": {"exact": "/health"}},
            {"path": {"prefix": "/v2"}}]}},
        {"pause": {}},
        {"setWeight": 60},
    ]);
    let routing = json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}});
    let rollout =
        |v: &str| with_routing(canary_rollout("web", 2, v, steps.clone()), routing.clone());
    deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    let rules = &route["spec"]["rules"];
    let found = mirrors(rules, "filters");
    assert_eq!(found.len(), 1, "{route}");
    assert_eq!(
        found[0]["matches"],
        json!([{"method": "POST", "path": {"type": "PathPrefix", "value": "/api/orders"},
                "headers": [{"type": "Exact", "name": "x-shadow", "value": "1"}]}]),
        "{route}"
    );
    // The user's weighed rule is still there, matching every path.
    assert_eq!(
        rules[2]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}]),
        "{route}"
    );

    // The next mirror step replaces it: alternatives, each a match of the rule (OR).
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "paused at step 4", MINUTE, |r| step(r) == Some(4))
        .await;
    let route = wait_doc(&env, &http_route(), "web", "the anyOf mirror", |d| {
        mirrors(&d["spec"]["rules"], "filters")
            .first()
            .is_some_and(|m| m["matches"].as_array().is_some_and(|a| a.len() == 2))
    })
    .await;
    let found = mirrors(&route["spec"]["rules"], "filters");
    assert_eq!(
        found[0]["matches"],
        json!([{"method": "GET", "path": {"type": "Exact", "value": "/health"}},
               {"path": {"type": "PathPrefix", "value": "/v2"}}]),
        "{route}"
    );

    // After the rollout the mirror and its matches are gone.
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "Healthy", MINUTE, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy)
    })
    .await;
    let route = wait_doc(&env, &http_route(), "web", "mirror gone", |d| {
        d["spec"]["rules"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert!(
        mirrors(&route["spec"]["rules"], "filters").is_empty(),
        "{route}"
    );
    assert!(!route.to_string().contains("/api/orders"), "{route}");
}

#[tokio::test]
async fn virtual_service_mirror_carries_method_and_uri_matches_and_a_grpc_path_is_invalid() {
    let env = TestEnv::canary("mirror-istio").await;
    install_crd(
        &env,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    )
    .await;
    let vs = ar(
        "networking.istio.io/v1beta1",
        "VirtualService",
        "virtualservices",
    );
    apply_dynamic(
        &env,
        &vs,
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"name": "primary",
            "match": [{"uri": {"prefix": "/shop"}}],
            "route": [{"destination": {"host": "web-stable"}}]}]}}),
    )
    .await;
    let steps = json!([
        {"setWeight": 10},
        {"setMirrorRoute": {"name": "shadow", "method": {"regex": "GET|HEAD"},
                            "path": {"prefix": "/shop/cart"}}},
        {"pause": {}},
        {"setWeight": 50},
    ]);
    let routing = json!({"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}});
    let rollout =
        |v: &str| with_routing(canary_rollout("web", 2, v, steps.clone()), routing.clone());
    deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "paused at step 2", MINUTE, |r| step(r) == Some(2))
        .await;
    let doc = get_doc(&env, &vs, "web").await.unwrap();
    let found = mirrors(&doc["spec"]["http"], "mirror");
    assert_eq!(found.len(), 1, "{doc}");
    assert_eq!(
        found[0]["match"],
        json!([{"method": {"regex": "GET|HEAD"}, "uri": {"prefix": "/shop/cart"}}]),
        "{doc}"
    );
    assert_eq!(found[0]["mirror"]["host"], "web-canary", "{doc}");

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "Healthy", MINUTE, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy)
    })
    .await;
    let doc = wait_doc(&env, &vs, "web", "mirror gone", |d| {
        d["spec"]["http"].as_array().is_some_and(|h| h.len() == 1)
    })
    .await;
    assert!(mirrors(&doc["spec"]["http"], "mirror").is_empty(), "{doc}");
    assert_eq!(
        doc["spec"]["http"][0]["match"],
        json!([{"uri": {"prefix": "/shop"}}])
    );

    // A mirror path on a GRPCRoute: InvalidSpec naming the field, never a wider mirror.
    let grpc = json!({"gatewayAPI": {"grpcRoutes": [{"name": "api"}]}});
    apply_dynamic(
        &env,
        &crate::traffic::grpc_route(),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
               "metadata": {"name": "api"},
               "spec": {"parentRefs": [{"name": "eg"}],
                        "rules": [{"backendRefs": [{"name": "web-stable", "port": 80}]}]}}),
    )
    .await;
    let bad =
        json!([{"setMirrorRoute": {"name": "shadow", "path": {"prefix": "/x"}}}, {"pause": {}}]);
    env.apply::<Rollout>(with_routing(canary_rollout("web", 2, "3", bad), grpc))
        .await;
    env.wait_rollout("web", "InvalidSpec naming the field", MINUTE, |r| {
        r.status.as_ref().is_some_and(|s| {
            fledge::api::conditions::is_true(&s.conditions, fledge::api::conditions::INVALID_SPEC)
                && s.message.as_deref().is_some_and(|m| {
                    m.contains("strategy.canary.steps[0].setMirrorRoute.path: a GRPCRoute")
                })
        })
    })
    .await;
    let grpc_doc = get_doc(&env, &crate::traffic::grpc_route(), "api")
        .await
        .unwrap();
    assert!(
        mirrors(&grpc_doc["spec"]["rules"], "filters").is_empty(),
        "{grpc_doc}"
    );
}
