//! Istio as Argo Rollouts users bring it: a DestinationRule's subsets alone separating the
//! revisions (one Service, no stableService/canaryService), several VirtualServices, TLS and TCP
//! routes. Minimal Istio CRDs (any fields kept): no mesh runs, the operator only needs the API.

use fledge::api::{Phase, RequestAction, Rollout};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};
use crate::replica_fields::try_apply;
use crate::traffic::{apply_dynamic, ar, get_doc, install_crd, wait_doc, with_routing};

fn vs() -> ApiResource {
    ar(
        "networking.istio.io/v1beta1",
        "VirtualService",
        "virtualservices",
    )
}

fn dr() -> ApiResource {
    ar(
        "networking.istio.io/v1beta1",
        "DestinationRule",
        "destinationrules",
    )
}

/// A namespace with one Service, `web`, the Istio APIs and DestinationRule `web` (subsets
/// `stable` and `canary` of host `web`), and the operator.
async fn istio_env(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name).await;
    env.service("web", "web").await;
    for (kind, plural) in [
        ("VirtualService", "virtualservices"),
        ("DestinationRule", "destinationrules"),
    ] {
        install_crd(&env, "networking.istio.io", "v1beta1", kind, plural).await;
    }
    apply_dynamic(&env, &dr(), json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "web"},
        "spec": {"host": "web", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                 "subsets": [{"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}]}})).await;
    env.start_operator();
    env
}

/// A canary of `web` without stableService and canaryService, routed by `routing`.
fn one_service_rollout(version: &str, steps: Value, routing: Value) -> Value {
    let mut r = with_routing(canary_rollout("web", 2, version, steps), routing);
    let canary = r["spec"]["strategy"]["canary"].as_object_mut().unwrap();
    canary.remove("stableService");
    canary.remove("canaryService");
    r
}

fn subset_routing(virtual_services: Value) -> Value {
    let mut istio = json!({"destinationRule": {"name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary"}});
    for (k, v) in virtual_services.as_object().unwrap() {
        istio[k] = v.clone();
    }
    json!({"istio": istio})
}

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// The (stable, canary) weights of a route's destinations, by subset.
fn subset_weights(route: &Value) -> (Option<i64>, Option<i64>) {
    let w = |s: &str| {
        route["route"]
            .as_array()?
            .iter()
            .find(|d| d["destination"]["subset"] == s)?["weight"]
            .as_i64()
    };
    (w("stable"), w("canary"))
}

/// The revisions the DestinationRule's (stable, canary) subsets are pinned to.
async fn pins(env: &TestEnv) -> (Value, Value) {
    let doc = get_doc(env, &dr(), "web").await.unwrap();
    let s = &doc["spec"]["subsets"];
    assert_eq!(
        doc["spec"]["trafficPolicy"],
        json!({"tls": {"mode": "ISTIO_MUTUAL"}}),
        "the user's fields stay: {doc}"
    );
    (
        s[0]["labels"]["rollouts-pod-template-hash"].clone(),
        s[1]["labels"]["rollouts-pod-template-hash"].clone(),
    )
}

/// Scenario: one Service, no stableService/canaryService: the VirtualService's subsets carry
/// 20% then 50%, the DestinationRule's subsets follow each revision, a promotion moves both to the
/// new one; then revision 3 at 20% is aborted and the stable subset gets everything back. No
/// Service selector is ever touched. Admission refuses the same rollout through a Gateway API
/// route (which needs the Services), and an Istio routing naming both virtualService and
/// virtualServices.
#[tokio::test]
async fn istio_subsets_alone_split_a_rollout_with_one_service() {
    let env = istio_env("istio-subsets").await;
    apply_dynamic(
        &env,
        &vs(),
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"name": "primary", "retries": {"attempts": 2},
                 "route": [{"destination": {"host": "web", "subset": "stable"}}]}]}}),
    )
    .await;
    let routing = subset_routing(json!({"virtualService": {"name": "web"}}));
    let steps = json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    let rollout = |v: &str| one_service_rollout(v, steps.clone(), routing.clone());

    let refused = try_apply(
        &env,
        one_service_rollout(
            "1",
            steps.clone(),
            json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}}),
        ),
    )
    .await
    .expect_err("a Gateway API route needs the Services");
    assert!(
        refused
            .contains("strategy.canary.trafficRouting needs both stableService and canaryService"),
        "{refused}"
    );
    let both = subset_routing(
        json!({"virtualService": {"name": "web"}, "virtualServices": [{"name": "web"}]}),
    );
    let refused = try_apply(&env, one_service_rollout("1", steps.clone(), both))
        .await
        .expect_err("virtualService and virtualServices");
    assert!(
        refused.contains("istio: set exactly one of virtualService or virtualServices"),
        "{refused}"
    );

    let v1 = deploy_v1(&env, rollout("1")).await;
    assert_eq!(pins(&env).await, (json!(v1), json!(v1)));
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    let doc = get_doc(&env, &vs(), "web").await.unwrap();
    let route = &doc["spec"]["http"][0];
    assert_eq!(subset_weights(route), (Some(80), Some(20)), "{doc}");
    assert_eq!(
        route["route"][1]["destination"],
        json!({"host": "web", "subset": "canary"})
    );
    assert_eq!(route["retries"], json!({"attempts": 2}));
    assert_eq!(pins(&env).await, (json!(v1), json!(v2)));

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "paused at step 3", MINUTE, |r| {
        step(r) == Some(3) && phase(r) == Some(Phase::Paused)
    })
    .await;
    let doc = get_doc(&env, &vs(), "web").await.unwrap();
    assert_eq!(
        subset_weights(&doc["spec"]["http"][0]),
        (Some(50), Some(50)),
        "{doc}"
    );
    assert_eq!(pins(&env).await, (json!(v1), json!(v2)));

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "v2 Healthy", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
            && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(&v2)
    })
    .await;
    wait_doc(&env, &vs(), "web", "stable subset 100", |d| {
        subset_weights(&d["spec"]["http"][0]) == (Some(100), Some(0))
    })
    .await;
    assert_eq!(pins(&env).await, (json!(v2), json!(v2)));

    env.apply::<Rollout>(rollout("3")).await;
    let r = env
        .wait_rollout("web", "v3 paused at step 1", MINUTE, |r| {
            step(r) == Some(1)
                && phase(r) == Some(Phase::Paused)
                && r.status.as_ref().unwrap().current_revision.as_deref() != Some(&v2)
        })
        .await;
    let v3 = r.status.unwrap().current_revision.unwrap();
    let doc = get_doc(&env, &vs(), "web").await.unwrap();
    assert_eq!(
        subset_weights(&doc["spec"]["http"][0]),
        (Some(80), Some(20)),
        "{doc}"
    );
    assert_eq!(pins(&env).await, (json!(v2), json!(v3)));
    env.request("web", RequestAction::Abort).await;
    wait_doc(&env, &vs(), "web", "abort: stable subset 100", |d| {
        subset_weights(&d["spec"]["http"][0]) == (Some(100), Some(0))
    })
    .await;
    let svc = env
        .api::<k8s_openapi::api::core::v1::Service>()
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        svc.spec.unwrap().selector,
        Some([("app".to_string(), "web".to_string())].into()),
        "the one Service is left as the user wrote it"
    );
}

/// Scenario: two VirtualServices, one with a TLS route (chosen by port and SNI hosts among two)
/// and one with a TCP route (chosen by port), both weighed at 30%, and both back to the stable
/// subset on abort.
#[tokio::test]
async fn istio_several_virtual_services_with_tls_and_tcp_routes_are_all_weighed() {
    let env = istio_env("istio-l4").await;
    let stable =
        json!({"destination": {"host": "web", "subset": "stable", "port": {"number": 443}}});
    apply_dynamic(&env, &vs(), json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web-tls"},
        "spec": {"hosts": ["web.example.com", "api.example.com"], "tls": [
            {"match": [{"port": 443, "sniHosts": ["web.example.com"]}], "route": [stable.clone()]},
            {"match": [{"port": 443, "sniHosts": ["api.example.com"]}], "route": [{"destination": {"host": "api"}}]}]}})).await;
    apply_dynamic(&env, &vs(), json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web-tcp"},
        "spec": {"hosts": ["web"], "tcp": [{"match": [{"port": 5432}], "route": [stable.clone()]}]}})).await;
    let routing = subset_routing(json!({"virtualServices": [
        {"name": "web-tls", "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}]},
        {"name": "web-tcp", "tcpRoutes": [{"port": 5432}]}]}));
    let steps = json!([{"setWeight": 30}, {"pause": {}}]);
    let rollout = |v: &str| one_service_rollout(v, steps.clone(), routing.clone());
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    let tls = get_doc(&env, &vs(), "web-tls").await.unwrap();
    assert_eq!(
        subset_weights(&tls["spec"]["tls"][0]),
        (Some(70), Some(30)),
        "{tls}"
    );
    assert_eq!(
        tls["spec"]["tls"][0]["route"][1]["destination"],
        json!({"host": "web", "subset": "canary", "port": {"number": 443}})
    );
    assert_eq!(
        tls["spec"]["tls"][1]["route"],
        json!([{"destination": {"host": "api"}}]),
        "the other TLS route is left alone"
    );
    assert!(tls["spec"].get("http").is_none(), "{tls}");
    let tcp = get_doc(&env, &vs(), "web-tcp").await.unwrap();
    assert_eq!(
        subset_weights(&tcp["spec"]["tcp"][0]),
        (Some(70), Some(30)),
        "{tcp}"
    );
    assert_eq!(pins(&env).await, (json!(v1), json!(v2)));

    env.request("web", RequestAction::Abort).await;
    for (name, list) in [("web-tls", "tls"), ("web-tcp", "tcp")] {
        wait_doc(
            &env,
            &vs(),
            name,
            &format!("abort: {name} stable 100"),
            |d| subset_weights(&d["spec"][list][0]) == (Some(100), Some(0)),
        )
        .await;
    }
}
