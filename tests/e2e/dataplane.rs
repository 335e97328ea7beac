//! Real requests through a real gateway: Traefik's Gateway API provider routes to pods that the
//! pod agent makes answer (docs/dataplane.md). Each test sends a fixed rate of requests through
//! the Gateway while fledge walks a rollout, and checks what the clients saw: which revision
//! answered, and that no request failed.
//!
//! The gateway is the one `hack/cluster.sh up` starts (`FLEDGE_GATEWAY_URL`, the Gateway
//! `FLEDGE_GATEWAY_NAMESPACE`/`FLEDGE_GATEWAY_NAME`). Against a real cluster, set those to its
//! gateway's address and Gateway, and run pods that answer as the agent does (see the doc).
//! The mirror test needs a gateway that mirrors, which Traefik does not: it runs on the Envoy
//! Gateway `hack/cluster.sh up` starts beside Traefik (`FLEDGE_MIRROR_GATEWAY_*`).

use std::collections::BTreeMap;
use std::time::Duration;

use fledge::api::{Phase, RequestAction, Rollout};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::grpc::Channel;
use crate::harness::{MINUTE, TestEnv, canary_rollout};
use crate::load::{self, Load, Sample, Target};
use crate::traffic::{apply_dynamic, get_doc, grpc_route, http_route, with_routing};

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
    /// The controllerName it writes into route status.
    controller: String,
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
        controller: controller(),
    }
}

/// The gateway that implements HTTPRoute's RequestMirror filter: the local Envoy Gateway, or any
/// other one named by `FLEDGE_MIRROR_GATEWAY_*`.
fn mirror_gateway() -> Gateway {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: the mirror test needs a gateway that mirrors. `hack/cluster.sh \
                 up` (as root) starts Envoy Gateway for it unless FLEDGE_MIRROR_GATEWAY=off or its \
                 fixed ports are taken (see its log); then eval \"$(hack/cluster.sh env)\""
            )
        })
    };
    Gateway {
        url: var("FLEDGE_MIRROR_GATEWAY_URL"),
        namespace: var("FLEDGE_MIRROR_GATEWAY_NAMESPACE"),
        name: var("FLEDGE_MIRROR_GATEWAY_NAME"),
        controller: var("FLEDGE_MIRROR_GATEWAY_CONTROLLER"),
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

/// HTTPRoute `web` on the gateway, for a hostname of this test's own, all to Service `backend`.
/// Returns the hostname.
async fn attach_route(env: &TestEnv, gw: &Gateway, backend: &str) -> String {
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
                           "backendRefs": [{"name": backend, "port": 80}]}],
            },
        }),
    )
    .await;
    host
}

/// Waits until the gateway has accepted HTTPRoute `web`'s current generation with all references
/// resolved.
async fn route_programmed(env: &TestEnv, what: &str) -> Value {
    programmed(env, &http_route(), what).await
}

/// Waits until the gateway has accepted route `web` of kind `kind` at its current generation with
/// all references resolved.
async fn programmed(env: &TestEnv, kind: &ApiResource, what: &str) -> Value {
    programmed_by(env, kind, &controller(), what).await
}

/// `programmed`, for the gateway whose controller is `controller`.
async fn programmed_by(env: &TestEnv, kind: &ApiResource, controller: &str, what: &str) -> Value {
    env.wait_for(what, MINUTE, || async {
        let doc = get_doc(env, kind, "web").await.ok_or("no route")?;
        let generation = doc["metadata"]["generation"].clone();
        let parents = doc["status"]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ours = parents
            .iter()
            .find(|p| p["controllerName"] == controller)
            .ok_or_else(|| format!("{controller} has not reported: {}", doc["status"]))?;
        let conds = ours["conditions"].as_array().cloned().unwrap_or_default();
        let current = |t: &str| {
            conds.iter().any(|c| {
                c["type"] == t && c["status"] == "True" && c["observedGeneration"] == generation
            })
        };
        if !(current("Accepted") && current("ResolvedRefs")) {
            return Err(format!("generation {generation}: {}", ours["conditions"]));
        }
        if controller == TRAEFIK {
            traefik_runs(env, kind, &doc).await?;
        }
        Ok(doc)
    })
    .await
}

/// The weights of each rule of `route`: backend Service -> weight.
fn rule_weights(route: &Value) -> Vec<BTreeMap<String, i64>> {
    let mut out: Vec<_> = route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            rule["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let name = b["name"].as_str().unwrap_or_default().to_string();
                    (name, b["weight"].as_i64().unwrap_or(1))
                })
                .collect()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the local Traefik runs `route` as it is now: Traefik writes a route's status before
/// it applies the route (and under load the gap is seconds), so the status alone does not say
/// that requests follow it. Traefik's API lists the weighted services it runs, one per rule of
/// the route; each must carry the weights of a rule, and each rule's weights must be there. Not
/// checked against another gateway (no `FLEDGE_TRAEFIK_URL`).
async fn traefik_runs(env: &TestEnv, kind: &ApiResource, route: &Value) -> Result<(), String> {
    let Ok(traefik) = std::env::var("FLEDGE_TRAEFIK_URL") else {
        return Ok(());
    };
    let services: Vec<Value> = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{traefik}/api/http/services?per_page=10000"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("Traefik's API: {e}"))?
        .json()
        .await
        .map_err(|e| format!("Traefik's API: {e}"))?;
    let prefix = format!("{}-{}-web-gw-", kind.kind.to_lowercase(), env.ns);
    let mut running: Vec<BTreeMap<String, i64>> = services
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .filter_map(|s| s["weighted"]["services"].as_array())
        .map(|children| {
            children
                .iter()
                .filter_map(|c| {
                    // "<namespace>-<service>-<...>@kubernetesgateway"
                    let name = c["name"].as_str()?;
                    let svc = name.strip_prefix(&format!("{}-", env.ns))?;
                    let svc = ["web-stable", "web-canary", "web-active", "web-preview"]
                        .into_iter()
                        .find(|s| svc.starts_with(&format!("{s}-")))?;
                    Some((svc.to_string(), c["weight"].as_i64().unwrap_or(1)))
                })
                .collect()
        })
        .collect();
    running.sort();
    running.dedup();
    let want = rule_weights(route);
    if running == want {
        Ok(())
    } else {
        Err(format!(
            "Traefik runs the weights {running:?}, the route has {want:?}"
        ))
    }
}

fn target(gw: &Gateway, host: &str) -> Target {
    Target {
        url: gw.url.clone(),
        host: host.into(),
        path: "/".into(),
        headers: Vec::new(),
    }
}

/// A client for single requests through the gateway, beside the load generator's.
fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// One request to `target`.
async fn probe(http: &reqwest::Client, target: &Target) -> Result<reqwest::Response, String> {
    http.get(format!("{}{}", target.url, target.path))
        .header("host", &target.host)
        .send()
        .await
        .map_err(|e| e.to_string())
}

/// Waits until a request through the gateway is answered 200 by `revision`, so the load that
/// follows measures a route in effect rather than the gateway's start-up.
async fn answers(env: &TestEnv, target: &Target, revision: &str) {
    let http = probe_client();
    env.wait_for(
        &format!("the gateway to answer from {revision}"),
        MINUTE,
        || async {
            let r = probe(&http, target).await?;
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

/// The start every test here shares: route `web` on the gateway to Service `backend`, the
/// Rollout's first revision Healthy, the gateway's route in effect and answering from it. Returns
/// where to send requests and the first revision's hash.
async fn serving(env: &TestEnv, backend: &str, rollout: Value) -> (Target, String) {
    serving_on(env, &gateway(), backend, rollout).await
}

/// `serving`, on gateway `gw`.
async fn serving_on(
    env: &TestEnv,
    gw: &Gateway,
    backend: &str,
    rollout: Value,
) -> (Target, String) {
    let host = attach_route(env, gw, backend).await;
    let v1 = deploy_v1(env, rollout).await;
    programmed_by(
        env,
        &http_route(),
        &gw.controller,
        "the gateway to accept the route",
    )
    .await;
    let target = target(gw, &host);
    answers(env, &target, &v1).await;
    (target, v1)
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

/// What clients saw at a pause step: the canary's revision and the share of a window of
/// `PER_STEP` requests it answered.
struct Measured {
    canary: String,
    share: f64,
    requests: usize,
}

/// Waits until the rollout is paused at step `at` with canary weight `weight` and the gateway runs
/// route `kind`/`web`, then measures `PER_STEP` requests of `load`: none may fail, each must be
/// answered by `v1` or the canary, and the canary's share must be within `TOLERANCE` of the
/// weight.
async fn measured_at(
    env: &TestEnv,
    kind: &ApiResource,
    load: &Load,
    v1: &str,
    (at, weight_now): (i32, i32),
) -> Measured {
    let r = env
        .wait_rollout(
            "web",
            &format!("paused at weight {weight_now}"),
            MINUTE,
            |r| step(r) == Some(at) && phase(r) == Some(Phase::Paused),
        )
        .await;
    assert_eq!(weight(&r), Some(weight_now));
    let canary = r.status.unwrap().current_revision.unwrap();
    programmed(env, kind, &format!("Traefik to take weight {weight_now}")).await;
    settle().await;
    let window = load.window(load.now(), PER_STEP).await;
    let share = load::share(&window, &canary);
    assert_no_failures(&format!("at weight {weight_now}"), &window);
    let others = window
        .iter()
        .filter(|s| s.revision != canary && s.revision != v1)
        .count();
    assert_eq!(
        others, 0,
        "answers from neither revision at weight {weight_now}"
    );
    let (first, second) = window.split_at(window.len() / 2);
    assert!(
        (share - f64::from(weight_now)).abs() <= TOLERANCE,
        "weight {weight_now}: the canary answered {share:.1}% of {} requests ({:.1}% of the \
         first half, {:.1}% of the second)",
        window.len(),
        load::share(first, &canary),
        load::share(second, &canary),
    );
    Measured {
        canary,
        share,
        requests: window.len(),
    }
}

/// The end of a promoted rollout: `v2` the Healthy stable with `replicas` pods, `v1` scaled to 0,
/// the gateway running the promoted route `kind`/`web`; then the load stops, the last 400
/// requests must all have reached `v2`, and not one of all of them (returned) may have failed.
async fn promoted(
    env: &TestEnv,
    kind: &ApiResource,
    load: Load,
    (v1, v2): (&str, &str),
    replicas: i32,
    what: &str,
) -> Vec<Sample> {
    env.wait_rollout("web", "v2 Healthy", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
            && r.status.as_ref().unwrap().stable_revision.as_deref() == Some(v2)
    })
    .await;
    env.wait_replica_sets(
        "v1 scaled to 0",
        vec![(v1.to_string(), 0, 0), (v2.to_string(), replicas, replicas)],
    )
    .await;
    programmed(env, kind, "Traefik to take the promoted route").await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    let all = load.stop().await;
    assert_eq!(
        load::share(&after, v2),
        100.0,
        "after promotion only v2 answers"
    );
    assert_no_failures(what, &all);
    all
}

/// Issue 14, tests 1 and 2 (a canary walked to promotion): at every setWeight (10, 25, 50, 75)
/// the share of 1,000 consecutive client requests the canary answers is within 3 points of the
/// weight, and not one request of the whole rollout, promotion and old revision's scale-down
/// included, fails.
#[tokio::test]
async fn canary_share_follows_every_weight_and_no_request_fails_through_promotion() {
    let env = TestEnv::canary("dp-weights").await;
    let weights = [10, 25, 50, 75];
    let steps: Vec<Value> = weights
        .iter()
        .flat_map(|w| [json!({"setWeight": w}), json!({"pause": {}})])
        .collect();
    let rollout = |v: &str| routed(canary_rollout("web", 4, v, json!(steps)));
    let (target, v1) = serving(&env, "web-stable", rollout("1")).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let mut report = Vec::new();
    let mut v2 = String::new();
    for (i, &w) in weights.iter().enumerate() {
        let m = measured_at(&env, &http_route(), &load, &v1, (2 * i as i32 + 1, w)).await;
        report.push(format!(
            "weight {w}: canary answered {:.1}% of {}",
            m.share, m.requests
        ));
        v2 = m.canary;
        env.request("web", RequestAction::Promote).await;
    }

    let all = promoted(
        &env,
        &http_route(),
        load,
        (&v1, &v2),
        4,
        "the whole rollout",
    )
    .await;
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
async fn abort_at_half_drops_no_request() {
    let env = TestEnv::canary("dp-abort").await;
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
    let (target, v1) = serving(&env, "web-stable", rollout("1")).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let Measured {
        canary: v2,
        share: seen,
        ..
    } = measured_at(&env, &http_route(), &load, &v1, (1, 50)).await;

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
async fn header_route_sends_only_matching_requests_to_the_canary() {
    let env = TestEnv::canary("dp-header").await;
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
    let (plain, v1) = serving(&env, "web-stable", rollout("1")).await;

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
async fn a_canary_failing_a_fifth_of_requests_is_aborted_by_analysis_on_traefik_metrics() {
    let env = TestEnv::canary("dp-analysis").await;
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
        let env = &mut r["spec"]["template"]["spec"]["containers"][0]["env"];
        if !env.is_array() {
            *env = json!([]);
        }
        env.as_array_mut()
            .unwrap()
            .push(json!({"name": "ERROR_RATE", "value": error_rate}));
        r["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = json!(2);
        r
    };
    let (target, v1) = serving(&env, "web-stable", rollout("1", "0")).await;

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
async fn blue_green_switch_and_scale_down_drop_no_request() {
    let mut env = TestEnv::new("dp-bg").await;
    env.service("web-active", "web").await;
    env.service("web-preview", "web").await;
    env.start_operator();
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
    let (target, v1) = serving(&env, "web-active", rollout("1")).await;
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
async fn controller_killed_mid_rollout_drops_no_request() {
    let mut env = TestEnv::canary("dp-kill").await;
    let steps =
        json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]);
    let rollout = |v: &str| routed(canary_rollout("web", 4, v, steps.clone()));
    let (target, v1) = serving(&env, "web-stable", rollout("1")).await;

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
    let what = "the rollout with a SIGKILLed controller";
    let all = promoted(&env, &http_route(), load, (&v1, &v2), 4, what).await;
    eprintln!(
        "controller SIGKILL at {killed_at:?}: {} requests, 0 failed",
        all.len()
    );
}

/// Issue 14, test 2 (a Git revert): with the canary at 25%, the spec's template goes back to the
/// stable's (a revert in Git); the rollout goes back to the stable without the steps, the canary
/// leaves the route before it is scaled away, and not one request fails.
#[tokio::test]
async fn git_revert_mid_rollout_drops_no_request() {
    let env = TestEnv::canary("dp-revert").await;
    let steps = json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    let rollout = |v: &str| routed(canary_rollout("web", 4, v, steps.clone()));
    let (target, v1) = serving(&env, "web-stable", rollout("1")).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2")).await;
    let Measured {
        canary: v2,
        share: seen,
        ..
    } = measured_at(&env, &http_route(), &load, &v1, (1, 25)).await;

    env.apply::<Rollout>(rollout("1")).await;
    env.wait_rollout("web", "back on v1, Healthy", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        phase(r) == Some(Phase::Healthy)
            && s.current_revision.as_deref() == Some(v1.as_str())
            && s.stable_revision.as_deref() == Some(v1.as_str())
    })
    .await;
    env.wait_replica_sets(
        "the canary scaled to 0",
        vec![(v1.clone(), 4, 4), (v2.clone(), 0, 0)],
    )
    .await;
    route_programmed(&env, "Traefik to take the reverted route").await;
    settle().await;
    let after = load.window(load.now(), 400).await;
    let all = load.stop().await;
    assert_eq!(
        load::share(&after, &v1),
        100.0,
        "after the revert only v1 answers"
    );
    assert_no_failures("the revert", &all);
    let canary = all.iter().filter(|s| s.revision == v2).count();
    eprintln!(
        "git revert at 25%: {} requests, 0 failed ({canary} answered by the canary; {seen:.1}% at 25%)",
        all.len()
    );
}

/// Issue 14, test 2 (`replicas` changed): with the canary at 50%, `replicas` goes from 4 to 8 and
/// then to 2; the canary's share follows the weight at each size and not one request fails,
/// through the promotion that follows.
#[tokio::test]
async fn replicas_changed_mid_rollout_drops_no_request() {
    let env = TestEnv::canary("dp-replicas").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let rollout =
        |v: &str, replicas: i32| routed(canary_rollout("web", replicas, v, steps.clone()));
    let (target, v1) = serving(&env, "web-stable", rollout("1", 4)).await;

    let load = Load::start(target, RATE);
    env.apply::<Rollout>(rollout("2", 4)).await;
    let r = env
        .wait_rollout("web", "paused at 50%", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    let mut report = Vec::new();
    // (replicas, canary pods, stable pods): the canary half the replicas, the stable at full size.
    for (replicas, canary, stable) in [(4, 2, 4), (8, 4, 8), (2, 1, 2)] {
        env.apply::<Rollout>(rollout("2", replicas)).await;
        env.wait_replica_sets(
            &format!("{replicas} replicas at 50%"),
            vec![(v1.clone(), stable, stable), (v2.clone(), canary, canary)],
        )
        .await;
        env.wait_rollout("web", "still paused at 50%", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused) && weight(r) == Some(50)
        })
        .await;
        // Pods scaled away answer for their grace period; measure once it is over.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let window = load.window(load.now(), PER_STEP).await;
        let seen = load::share(&window, &v2);
        report.push(format!("{replicas} replicas: canary {seen:.1}%"));
        assert_no_failures(&format!("at {replicas} replicas"), &window);
        assert!(
            (seen - 50.0).abs() <= TOLERANCE,
            "at {replicas} replicas and weight 50 the canary answered {seen:.1}%"
        );
    }
    env.request("web", RequestAction::Promote).await;
    let all = promoted(
        &env,
        &http_route(),
        load,
        (&v1, &v2),
        2,
        "the replica changes",
    )
    .await;
    eprintln!(
        "replicas 4 -> 8 -> 2 at 50%: {} requests, 0 failed; {}",
        all.len(),
        report.join("; ")
    );
}

/// Requests the pod agent answered for pods of `revision` in this test's namespace, mirrored
/// ones included (the agent counts what reaches a pod; clients never see a mirror's answer).
async fn agent_requests(env: &TestEnv, revision: &str) -> u64 {
    let url = std::env::var("FLEDGE_POD_AGENT_URL").expect(
        "FLEDGE_POD_AGENT_URL is not set: the mirror test counts at the local pod agent \
         (hack/cluster.sh up with the data plane)",
    );
    let pods: Vec<Value> = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/pods"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the pod agent's /pods")
        .json()
        .await
        .expect("JSON from /pods");
    pods.iter()
        .filter(|p| p["namespace"] == env.ns.as_str() && p["revision"] == revision)
        .map(|p| p["requests"].as_u64().unwrap_or(0))
        .sum()
}

/// A canary at 1 of 2 pods, then a mirror route of half the requests, then a pause.
fn mirrored(v: &str) -> Value {
    routed(canary_rollout(
        "web",
        2,
        v,
        json!([
            {"setCanaryScale": {"replicas": 1}},
            {"setMirrorRoute": {"name": "shadow", "percentage": 50}},
            {"pause": {}},
        ]),
    ))
}

/// The RequestMirror filters in route `web`.
fn mirror_filters(route: &Value) -> usize {
    route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["filters"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["type"] == "RequestMirror")
        .count()
}

/// The class of the test gateway, once it lists what it implements (Traefik does with its
/// experimental channel on, as hack/cluster.sh runs it), and that list.
async fn gateway_class(env: &TestEnv, gw: &Gateway) -> (String, Vec<String>) {
    env.wait_for("the GatewayClass to list its features", MINUTE, || async {
        let (class, doc) = class_of(env, gw).await?;
        let features = features_of(&doc);
        if features.is_empty() {
            return Err(format!("GatewayClass {class} lists no supportedFeatures"));
        }
        Ok((class, features))
    })
    .await
}

/// The name and the document of `gw`'s GatewayClass.
async fn class_of(env: &TestEnv, gw: &Gateway) -> Result<(String, Value), String> {
    let gateways = ar_of("Gateway", "gateways");
    let classes = ar_of("GatewayClass", "gatewayclasses");
    let gateway = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        env.client.clone(),
        &gw.namespace,
        &gateways,
    )
    .get(&gw.name)
    .await
    .map_err(|e| e.to_string())?;
    let class = gateway.data["spec"]["gatewayClassName"]
        .as_str()
        .ok_or("no gatewayClassName")?
        .to_string();
    let doc = kube::Api::<kube::api::DynamicObject>::all_with(env.client.clone(), &classes)
        .get(&class)
        .await
        .map_err(|e| e.to_string())?;
    Ok((class, doc.data))
}

/// The names in a GatewayClass's `status.supportedFeatures`.
fn features_of(class: &Value) -> Vec<String> {
    class["status"]["supportedFeatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect()
}

fn ar_of(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Issue 14, test 4, on a gateway that does not mirror (Traefik v3.5: it answers 500 to every
/// request of a rule with a RequestMirror filter while reporting the route Accepted, and its
/// GatewayClass does not list HTTPRouteRequestMirror). fledge leaves the mirror out and holds the
/// rollout at the step with a message naming the class and the feature; not one client request
/// fails through the step, a promote past it and the promotion.
#[tokio::test]
async fn mirror_step_on_a_gateway_that_cannot_mirror_is_held_and_drops_no_request() {
    let env = TestEnv::canary("dp-nomirror").await;
    let (class, features) = gateway_class(&env, &gateway()).await;
    assert!(
        !features.iter().any(|f| f == "HTTPRouteRequestMirror"),
        "GatewayClass {class} implements mirroring: that is the case of \
         mirror_route_copies_requests_to_the_canary_and_clients_see_only_the_stable instead"
    );
    let (target, v1) = serving(&env, "web-stable", mirrored("1")).await;
    let load = Load::start(target, RATE);
    env.apply::<Rollout>(mirrored("2")).await;
    let r = env
        .wait_rollout("web", "held at the mirror step", MINUTE, |r| {
            let s = r.status.clone().unwrap_or_default();
            step(r) == Some(1)
                && phase(r) == Some(Phase::Paused)
                && s.pause_conditions
                    .iter()
                    .any(|p| p.reason == fledge::api::PauseReason::MirrorNotSupported)
        })
        .await;
    let s = r.status.unwrap();
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("GatewayClass {class:?}"))
            && message.contains("HTTPRouteRequestMirror"),
        "{message}"
    );
    let v2 = s.current_revision.unwrap();
    // The hold is fledge's decision on the route it read: the route it left runs, unmirrored.
    let route = route_programmed(&env, "Traefik to run the route without a mirror").await;
    assert_eq!(mirror_filters(&route), 0, "{route}");
    settle().await;
    let held = load.window(load.now(), PER_STEP).await;
    assert_no_failures("held at the mirror step", &held);
    assert_eq!(
        load::share(&held, &v1),
        100.0,
        "clients only see the stable"
    );

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "past the mirror step, at the pause", MINUTE, |r| {
        step(r) == Some(2) && phase(r) == Some(Phase::Paused)
    })
    .await;
    let route = route_programmed(&env, "Traefik to run the route at the pause").await;
    assert_eq!(mirror_filters(&route), 0, "{route}");
    env.request("web", RequestAction::Promote).await;
    let all = promoted(
        &env,
        &http_route(),
        load,
        (&v1, &v2),
        2,
        "the held mirror step and the promotion",
    )
    .await;
    eprintln!(
        "mirror step on {class} (no HTTPRouteRequestMirror): held with {message:?}; {} requests \
         through the hold, the promote past it and the promotion, 0 failed ({} in the window at \
         the hold, all answered by {v1})",
        all.len(),
        held.len()
    );
}

/// Issue 14, test 4, on a gateway that mirrors (the local Envoy Gateway; Traefik does not, see
/// `mirror_step_on_a_gateway_that_cannot_mirror_is_held_and_drops_no_request`): with
/// `setMirrorRoute` (half the requests) and no weight, the canary receives a copy of about half
/// the requests (counted at the pod agent), while every client answer comes from the stable and
/// not one request fails.
#[tokio::test]
async fn mirror_route_copies_requests_to_the_canary_and_clients_see_only_the_stable() {
    let gw = mirror_gateway();
    let env = TestEnv::canary("dp-mirror").await;
    // fledge holds the step on a class that lists its features without these, so this one must
    // list them or list nothing (Envoy Gateway v1.9 leaves status.supportedFeatures empty), or
    // the test would measure a hold rather than a mirror.
    let (class, features) = env
        .wait_for("the mirror gateway's GatewayClass", MINUTE, || async {
            let (class, doc) = class_of(&env, &gw).await?;
            Ok((class, features_of(&doc)))
        })
        .await;
    for feature in ["HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror"] {
        assert!(
            features.is_empty() || features.iter().any(|f| f == feature),
            "GatewayClass {class} does not list {feature}: {features:?}"
        );
    }
    let rollout = mirrored;
    let (target, v1) = serving_on(&env, &gw, "web-stable", rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused with the mirror route", MINUTE, |r| {
            step(r) == Some(2) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    let route = programmed_by(
        &env,
        &http_route(),
        &gw.controller,
        "the gateway to take the mirror route",
    )
    .await;
    assert_eq!(mirror_filters(&route), 1, "{route}");
    copies_reach(&env, &target, &v2).await;

    let before = agent_requests(&env, &v2).await;
    let load = Load::start(target, RATE);
    let window = load.window(load.now(), PER_STEP).await;
    let all = load.stop().await;
    // Mirrored copies are sent alongside; give the last ones a moment to land.
    settle().await;
    let mirrored = agent_requests(&env, &v2).await - before;
    assert_no_failures("with the mirror route", &all);
    assert_eq!(
        load::share(&all, &v1),
        100.0,
        "clients only ever see the stable"
    );
    let share = 100.0 * mirrored as f64 / all.len() as f64;
    assert!(
        (share - 50.0).abs() <= 2.0 * TOLERANCE,
        "the canary received {mirrored} mirrored requests for {} sent ({share:.1}%, want 50%)",
        all.len()
    );
    eprintln!(
        "mirror 50% on GatewayClass {class}: {} client requests, 0 failed, all answered by {v1} \
         ({} in the measured window); the canary received {mirrored} copies ({share:.1}%)",
        all.len(),
        window.len()
    );
}

/// Waits until requests through `target` send copies to pods of `revision`: the gateway reports
/// a route before its proxies run it, and the measurement must start with the mirror in effect.
async fn copies_reach(env: &TestEnv, target: &Target, revision: &str) {
    let http = probe_client();
    env.wait_for(
        &format!("the gateway to mirror requests to {revision}"),
        MINUTE,
        || async {
            let before = agent_requests(env, revision).await;
            for _ in 0..20 {
                probe(&http, target).await?;
            }
            settle().await;
            let copies = agent_requests(env, revision).await - before;
            if copies > 0 {
                Ok(())
            } else {
                Err("no copy of 20 requests reached it".to_string())
            }
        },
    )
    .await
}

/// Issue 14, test 6: through a GRPCRoute, the share of real gRPC calls (unary
/// `grpc.health.v1.Health/Check` over h2c) the canary answers follows each weight, and not one
/// call fails through the promotion.
#[tokio::test]
async fn grpc_route_calls_follow_the_weights() {
    let gw = gateway();
    let env = TestEnv::canary("dp-grpc").await;
    // The Services get a gRPC port: the agent answers gRPC on 9090 (h2c, which is what Traefik
    // speaks to a GRPCRoute's backends).
    for name in ["web-stable", "web-canary"] {
        env.apply::<k8s_openapi::api::core::v1::Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "grpc", "port": 9090, "targetPort": 9090},
            ]},
        }))
        .await;
    }
    let host = format!("{}.fledge.test", env.ns);
    apply_dynamic(
        &env,
        &grpc_route(),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "web"},
            "spec": {
                "parentRefs": [{"name": gw.name, "namespace": gw.namespace}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": "web-stable", "port": 9090}]}],
            },
        }),
    )
    .await;
    let weights = [25, 75];
    let steps: Vec<Value> = weights
        .iter()
        .flat_map(|w| [json!({"setWeight": w}), json!({"pause": {}})])
        .collect();
    let rollout = |v: &str| {
        with_routing(
            canary_rollout("web", 4, v, json!(steps)),
            json!({"gatewayAPI": {"grpcRoutes": [{"name": "web"}]}}),
        )
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    programmed(&env, &grpc_route(), "Traefik to accept the GRPCRoute").await;
    let channel = Channel::new(&gw.url, &host);
    env.wait_for("a gRPC answer from v1", MINUTE, || async {
        let o = channel.check().await;
        if o.status == 200 && o.revision == v1 {
            Ok(())
        } else {
            Err(format!(
                "status {} from {:?}: {:?}",
                o.status, o.revision, o.error
            ))
        }
    })
    .await;

    let load = Load::with(RATE, channel.calls());
    env.apply::<Rollout>(rollout("2")).await;
    let mut report = Vec::new();
    let mut v2 = String::new();
    for (i, &w) in weights.iter().enumerate() {
        let m = measured_at(&env, &grpc_route(), &load, &v1, (2 * i as i32 + 1, w)).await;
        report.push(format!(
            "weight {w}: canary answered {:.1}% of {} calls",
            m.share, m.requests
        ));
        v2 = m.canary;
        env.request("web", RequestAction::Promote).await;
    }
    let all = promoted(&env, &grpc_route(), load, (&v1, &v2), 4, "the gRPC rollout").await;
    eprintln!(
        "GRPCRoute: {} gRPC calls, 0 failed, p99 {:?}; {}",
        all.len(),
        load::quantile(&all, 0.99),
        report.join("; ")
    );
}
