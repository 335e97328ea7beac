//! Real requests through a real gateway: Traefik's Gateway API provider routes to pods that the
//! pod agent makes answer (docs/dataplane.md). Each test sends a fixed rate of requests through
//! the Gateway while fledge walks a rollout, and checks what the clients saw: which revision
//! answered, and that no request failed.
//!
//! The gateway is the one `hack/cluster.sh up` starts (`FLEDGE_GATEWAY_URL`, the Gateway
//! `FLEDGE_GATEWAY_NAMESPACE`/`FLEDGE_GATEWAY_NAME`). Against a real cluster, set those to its
//! gateway's address and Gateway, and run pods that answer as the agent does (see the doc).

use std::time::Duration;

use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};
use crate::load::{self, Load, Sample, Target};
use crate::traffic::{apply_dynamic, get_doc, http_route, with_routing};

/// Requests per second the load generator sends.
const RATE: u32 = 200;
/// Requests measured at each weight.
const PER_STEP: usize = 1000;
/// How far the share clients see may be from the weight, in percentage points.
const TOLERANCE: f64 = 3.0;
/// The controller name the local gateway (Traefik) writes into route status.
const TRAEFIK: &str = "traefik.io/gateway-controller";

/// Whose route status counts: `FLEDGE_GATEWAY_CONTROLLER` for another gateway implementation.
fn controller() -> String {
    std::env::var("FLEDGE_GATEWAY_CONTROLLER").unwrap_or_else(|_| TRAEFIK.into())
}

struct Gateway {
    url: String,
    namespace: String,
    name: String,
}

fn gateway() -> Gateway {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: these tests need a gateway. `hack/cluster.sh up` (as root) starts \
                 one; then eval \"$(hack/cluster.sh env)\""
            )
        })
    };
    Gateway {
        url: var("FLEDGE_GATEWAY_URL"),
        namespace: var("FLEDGE_GATEWAY_NAMESPACE"),
        name: var("FLEDGE_GATEWAY_NAME"),
    }
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

fn weight(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.canary_weight)
}

fn routed(rollout: Value) -> Value {
    with_routing(
        rollout,
        json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}}),
    )
}

/// HTTPRoute `web` on the gateway, for a hostname of this test's own, all to `web-stable`.
/// Returns the hostname.
async fn attach_route(env: &TestEnv, gw: &Gateway) -> String {
    let host = format!("{}.fledge.test", env.ns);
    apply_dynamic(
        env,
        &http_route(),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {
                "parentRefs": [{"name": gw.name, "namespace": gw.namespace}],
                "hostnames": [host],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                           "backendRefs": [{"name": "web-stable", "port": 80}]}],
            },
        }),
    )
    .await;
    host
}

/// Waits until the gateway has accepted the route's current generation with all references
/// resolved.
async fn route_programmed(env: &TestEnv, what: &str) -> Value {
    let controller = controller();
    env.wait_for(what, MINUTE, || async {
        let doc = get_doc(env, &http_route(), "web").await.ok_or("no route")?;
        let generation = doc["metadata"]["generation"].clone();
        let parents = doc["status"]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ours = parents
            .iter()
            .find(|p| p["controllerName"] == controller.as_str())
            .ok_or_else(|| format!("{controller} has not reported: {}", doc["status"]))?;
        let conds = ours["conditions"].as_array().cloned().unwrap_or_default();
        let current = |t: &str| {
            conds.iter().any(|c| {
                c["type"] == t && c["status"] == "True" && c["observedGeneration"] == generation
            })
        };
        if current("Accepted") && current("ResolvedRefs") {
            Ok(doc)
        } else {
            Err(format!("generation {generation}: {}", ours["conditions"]))
        }
    })
    .await
}

fn target(gw: &Gateway, host: &str) -> Target {
    Target {
        url: gw.url.clone(),
        host: host.into(),
        path: "/".into(),
        headers: Vec::new(),
    }
}

/// Waits until a request through the gateway is answered 200 by `revision`, so the load that
/// follows measures a route in effect rather than the gateway's start-up.
async fn answers(env: &TestEnv, target: &Target, revision: &str) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    env.wait_for(
        &format!("the gateway to answer from {revision}"),
        MINUTE,
        || async {
            let r = http
                .get(format!("{}{}", target.url, target.path))
                .header("host", &target.host)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let got = r
                .headers()
                .get("x-fledge-revision")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if r.status() == 200 && got == revision {
                Ok(())
            } else {
                Err(format!("status {} from {got:?}", r.status()))
            }
        },
    )
    .await
}

/// Gives the gateway a moment to swap in the configuration it just reported on (its status
/// write and its router swap are not one step). Only ever followed by a measurement that can
/// fail, never by a check that something did not happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn assert_no_failures(what: &str, samples: &[Sample]) {
    let failed = load::failures(samples, 10);
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed; first ones:\n{}",
        samples.iter().filter(|s| !s.ok()).count(),
        samples.len(),
        failed.join("\n")
    );
}

/// Issue 14, tests 1 and 2 (a canary walked to promotion): at every setWeight (10, 25, 50, 75)
/// the share of 1,000 consecutive client requests the canary answers is within 3 points of the
/// weight, and not one request of the whole rollout, promotion and old revision's scale-down
/// included, fails.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn canary_share_follows_every_weight_and_no_request_fails_through_promotion() {
    let gw = gateway();
    let env = TestEnv::canary("dp-weights").await;
    let host = attach_route(&env, &gw).await;
    let weights = [10, 25, 50, 75];
    let steps: Vec<Value> = weights
        .iter()
        .flat_map(|w| [json!({"setWeight": w}), json!({"pause": {}})])
        .collect();
    let rollout = |v: &str| routed(canary_rollout("web", 4, v, json!(steps)));
    let v1 = deploy_v1(&env, rollout("1")).await;
    route_programmed(&env, "Traefik to accept the route").await;
    let target = target(&gw, &host);
    answers(&env, &target, &v1).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let mut report = Vec::new();
    let mut v2 = String::new();
    for (i, &w) in weights.iter().enumerate() {
        let pause = 2 * i as i32 + 1;
        let r = env
            .wait_rollout("web", &format!("paused at weight {w}"), MINUTE, |r| {
                step(r) == Some(pause) && phase(r) == Some(Phase::Paused)
            })
            .await;
        assert_eq!(weight(&r), Some(w));
        v2 = r.status.unwrap().current_revision.unwrap();
        route_programmed(&env, &format!("Traefik to take weight {w}")).await;
        settle().await;
        let window = load.window(load.now(), PER_STEP).await;
        let seen = load::share(&window, &v2);
        let others = window
            .iter()
            .filter(|s| s.revision != v2 && s.revision != v1)
            .count();
        report.push(format!(
            "weight {w}: canary answered {seen:.1}% of {}",
            window.len()
        ));
        assert_no_failures(&format!("at weight {w}"), &window);
        assert_eq!(others, 0, "answers from neither revision at weight {w}");
        let (first, second) = window.split_at(window.len() / 2);
        assert!(
            (seen - f64::from(w)).abs() <= TOLERANCE,
            "weight {w}: the canary answered {seen:.1}% of {} requests ({:.1}% of the first \
             half, {:.1}% of the second)",
            window.len(),
            load::share(first, &v2),
            load::share(second, &v2),
        );
        env.request("web", RequestAction::Promote).await;
    }

    env.wait_rollout("web", "v2 Healthy", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
            && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    env.wait_replica_sets(
        "v1 scaled to 0",
        vec![(v1.clone(), 0, 0), (v2.clone(), 4, 4)],
    )
    .await;
    route_programmed(&env, "Traefik to take the promoted route").await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    assert_eq!(
        load::share(&after, &v2),
        100.0,
        "after promotion only v2 answers"
    );
    let all = load.stop().await;
    assert_no_failures("the whole rollout", &all);
    eprintln!(
        "canary walk: {} requests, 0 failed, p99 {:?}; {}",
        all.len(),
        load::quantile(&all, 0.99),
        report.join("; ")
    );
}

/// Issue 14, test 2: an abort at 50% sends everything back to the stable and scales the canary
/// away without one failed request.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn abort_at_half_drops_no_request() {
    let gw = gateway();
    let env = TestEnv::canary("dp-abort").await;
    let host = attach_route(&env, &gw).await;
    let rollout = |v: &str| {
        let mut r = routed(canary_rollout(
            "web",
            4,
            v,
            json!([{"setWeight": 50}, {"pause": {}}]),
        ));
        r["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = json!(2);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    route_programmed(&env, "Traefik to accept the route").await;
    let target = target(&gw, &host);
    answers(&env, &target, &v1).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at 50%", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    route_programmed(&env, "Traefik to take weight 50").await;
    settle().await;
    let half = load.window(load.now(), PER_STEP).await;
    let seen = load::share(&half, &v2);
    assert!(
        (seen - 50.0).abs() <= TOLERANCE,
        "at 50% the canary answered {seen:.1}%"
    );

    env.request("web", RequestAction::Abort).await;
    env.wait_rollout("web", "Degraded, weight 0", MINUTE, |r| {
        phase(r) == Some(Phase::Degraded) && weight(r) == Some(0)
    })
    .await;
    env.wait_replica_sets(
        "the canary scaled to 0",
        vec![(v1.clone(), 4, 4), (v2.clone(), 0, 0)],
    )
    .await;
    route_programmed(&env, "Traefik to take weight 0").await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    assert_eq!(
        load::share(&after, &v1),
        100.0,
        "after the abort only v1 answers"
    );
    let all = load.stop().await;
    assert_no_failures("the abort", &all);
    eprintln!(
        "abort at 50%: {} requests, 0 failed; canary answered {seen:.1}% at 50%",
        all.len()
    );
}

/// Issue 14, test 3: with a header route and no weight, requests carrying the header reach only
/// the canary, and the others only the stable.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn header_route_sends_only_matching_requests_to_the_canary() {
    let gw = gateway();
    let env = TestEnv::canary("dp-header").await;
    let host = attach_route(&env, &gw).await;
    let rollout = |v: &str| {
        routed(canary_rollout(
            "web",
            2,
            v,
            json!([
                {"setCanaryScale": {"replicas": 1}},
                {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
                {"pause": {}},
            ]),
        ))
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    route_programmed(&env, "Traefik to accept the route").await;
    let plain = target(&gw, &host);
    answers(&env, &plain, &v1).await;

    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused with the header route", MINUTE, |r| {
            step(r) == Some(2) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    route_programmed(&env, "Traefik to take the header route").await;
    settle().await;
    let mut beta = plain.clone();
    beta.headers.push(("x-beta".into(), "1".into()));
    let (with, without) = (Load::start(beta, RATE / 2), Load::start(plain, RATE / 2));
    let (w, wo) = tokio::join!(
        with.window(with.now(), PER_STEP / 2),
        without.window(without.now(), PER_STEP / 2)
    );
    let (w_all, wo_all) = (with.stop().await, without.stop().await);
    assert_no_failures("with the header", &w_all);
    assert_no_failures("without the header", &wo_all);
    assert_eq!(
        load::share(&w, &v2),
        100.0,
        "requests with x-beta: 1 reach only the canary"
    );
    assert_eq!(
        load::share(&wo, &v1),
        100.0,
        "requests without it reach only the stable"
    );
    eprintln!(
        "header route: {} requests with the header all to {v2}, {} without all to {v1}",
        w_all.len(),
        wo_all.len()
    );
}

/// The first metric of `analysis-templates/<file>`, as a namespaced AnalysisTemplate that
/// measures every second (the file's minute would make a test of many minutes); its query, the
/// part under test, is the file's.
async fn template_from_file(env: &TestEnv, file: &str, name: &str, count: i64) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("analysis-templates")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = serde_yaml::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{} has no template {name}", path.display()));
    let mut spec = doc["spec"].clone();
    spec["metrics"][0]["interval"] = json!("1s");
    spec["metrics"][0]["count"] = json!(count);
    env.apply::<fledge::api::analysis::AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .await;
}

/// Issue 14, test 5: a canary that answers 500 to 20% of its requests is aborted by a step
/// analysis on Traefik's own metrics (analysis-templates/traefik.yaml, success rate of the canary
/// Service's backend), and once the gateway has the abort no client request fails.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn a_canary_failing_a_fifth_of_requests_is_aborted_by_analysis_on_traefik_metrics() {
    let gw = gateway();
    let env = TestEnv::canary("dp-analysis").await;
    let host = attach_route(&env, &gw).await;
    template_from_file(&env, "traefik.yaml", "traefik-success-rate", 60).await;
    let prometheus = crate::exporter::prometheus_url();
    let steps = json!([
        {"setWeight": 50},
        // Traffic on the canary long enough for a rate over the window.
        {"pause": {"duration": "8s"}},
        {"analysis": {"templates": [{"templateName": "traefik-success-rate"}], "args": [
            {"name": "namespace", "value": env.ns}, {"name": "service", "value": "web-canary"},
            {"name": "threshold", "value": "0.95"}, {"name": "window", "value": "5s"},
            {"name": "prometheus", "value": prometheus},
        ]}},
        {"pause": {}},
    ]);
    let rollout = |v: &str, error_rate: &str| {
        let mut r = routed(canary_rollout("web", 2, v, steps.clone()));
        r["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "ERROR_RATE", "value": error_rate}]);
        r["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = json!(2);
        r
    };
    let v1 = deploy_v1(&env, rollout("1", "0")).await;
    route_programmed(&env, "Traefik to accept the route").await;
    let target = target(&gw, &host);
    answers(&env, &target, &v1).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2", "0.2")).await;
    let aborted = env
        .wait_rollout(
            "web",
            "aborted by the analysis",
            Duration::from_secs(120),
            |r| r.status.as_ref().is_some_and(|s| s.abort) && weight(r) == Some(0),
        )
        .await;
    let aborted_at = load.now();
    let s = aborted.status.unwrap();
    assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
    let v2 = s.current_revision.unwrap();
    route_programmed(&env, "Traefik to take weight 0").await;
    env.wait_replica_sets(
        "the canary scaled to 0",
        vec![(v1.clone(), 2, 2), (v2.clone(), 0, 0)],
    )
    .await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    let all = load.stop().await;
    assert_no_failures("after the abort reached the gateway", &after);
    assert_eq!(load::share(&after, &v1), 100.0);

    let failed: Vec<&Sample> = all.iter().filter(|s| !s.ok()).collect();
    let first = failed.first().expect("the bad canary failed requests").sent;
    let last = failed.last().unwrap().sent;
    assert!(
        failed.iter().all(|s| s.status == 500 && s.revision == v2),
        "only the canary's own 500s: {:?}",
        load::failures(&all, 10)
    );
    eprintln!(
        "analysis abort: first failed request at {first:?}, rollout at weight 0 {:?} later, last \
         failed request {:?} after the first; {} of {} client requests failed, all 500s from the canary",
        aborted_at.saturating_sub(first),
        last - first,
        failed.len(),
        all.len()
    );
}

/// Issue 14, test 2 (blue-green): clients of the active Service move from blue to green at the
/// switch, and not one request fails through the switch and the old revision's scale-down.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn blue_green_switch_and_scale_down_drop_no_request() {
    let gw = gateway();
    let mut env = TestEnv::new("dp-bg").await;
    env.service("web-active", "web").await;
    env.service("web-preview", "web").await;
    env.start_operator();
    let host = format!("{}.fledge.test", env.ns);
    apply_dynamic(
        &env,
        &http_route(),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {
                "parentRefs": [{"name": gw.name, "namespace": gw.namespace}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": "web-active", "port": 80}]}],
            },
        }),
    )
    .await;
    let rollout = |v: &str| {
        json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": crate::harness::pod_template("web", v),
                "strategy": {"blueGreen": {
                    "activeService": "web-active", "previewService": "web-preview",
                    "autoPromotionSeconds": 3, "scaleDownDelaySeconds": 2,
                }},
            },
        })
    };
    let healthy_on = |r: &Rollout, not: Option<&str>| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Healthy)
            && s.stable_revision.is_some()
            && s.stable_revision.as_deref() != not
    };
    env.apply::<Rollout>(rollout("1")).await;
    let r = env
        .wait_rollout("web", "blue Healthy", MINUTE, |r| healthy_on(r, None))
        .await;
    let v1 = r.status.unwrap().stable_revision.unwrap();
    route_programmed(&env, "Traefik to accept the route").await;
    let target = target(&gw, &host);
    answers(&env, &target, &v1).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "green Healthy", MINUTE, |r| {
            healthy_on(r, Some(v1.as_str()))
        })
        .await;
    let v2 = r.status.unwrap().stable_revision.unwrap();
    env.wait_replica_sets(
        "blue scaled to 0",
        vec![(v1.clone(), 0, 0), (v2.clone(), 3, 3)],
    )
    .await;
    // The blue pods answer for their grace period after deletion; measure after it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = load.window(load.now(), 400).await;
    let all = load.stop().await;
    assert_eq!(
        load::share(&after, &v2),
        100.0,
        "after the switch only green answers"
    );
    let blue = all.iter().filter(|s| s.revision == v1).count();
    assert!(blue > 0, "blue answered before the switch");
    assert_no_failures("the blue-green switch", &all);
    eprintln!(
        "blue-green: {} requests, 0 failed ({blue} answered by blue, the rest by green)",
        all.len()
    );
}

/// Issue 14, test 2 (controller killed): the controller is SIGKILLed mid-rollout with the canary
/// at 25% and a new one started; the walk goes on to promotion and not one request fails.
#[tokio::test]
#[ignore = "needs the local data plane: FLEDGE_DATAPLANE=on hack/cluster.sh up, then cargo test --test e2e -- --ignored dataplane::"]
async fn controller_killed_mid_rollout_drops_no_request() {
    let gw = gateway();
    let mut env = TestEnv::canary("dp-kill").await;
    let host = attach_route(&env, &gw).await;
    let steps =
        json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]);
    let rollout = |v: &str| routed(canary_rollout("web", 4, v, steps.clone()));
    let v1 = deploy_v1(&env, rollout("1")).await;
    route_programmed(&env, "Traefik to accept the route").await;
    let target = target(&gw, &host);
    answers(&env, &target, &v1).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at 25%", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    env.operator(0).kill();
    let killed_at = load.now();
    env.start_operator();
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "v2 Healthy after the restart", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
            && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    env.wait_replica_sets(
        "v1 scaled to 0",
        vec![(v1.clone(), 0, 0), (v2.clone(), 4, 4)],
    )
    .await;
    route_programmed(&env, "Traefik to take the promoted route").await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    let all = load.stop().await;
    assert_eq!(
        load::share(&after, &v2),
        100.0,
        "after promotion only v2 answers"
    );
    assert_no_failures("the rollout with a SIGKILLed controller", &all);
    eprintln!(
        "controller SIGKILL at {killed_at:?}: {} requests, 0 failed",
        all.len()
    );
}
