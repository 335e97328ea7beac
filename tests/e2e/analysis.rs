//! Metric analysis against the real Prometheus: an exporter in the test process is scraped every
//! second, and the test moves its error rate to drive the analysis.

use std::time::{Duration, Instant};

use fledge::api::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use fledge::api::{PauseReason, Phase, RequestAction, Rollout};
use kube::api::ListParams;
use serde_json::json;

use crate::exporter::{Exporter, OwnPrometheus, prometheus_url, wait_for_value};
use crate::harness::{MINUTE, TestEnv, canary_rollout, pod_template};

const WINDOW: &str = "3s";

/// An AnalysisTemplate `error-rate` on the exporter's error ratio: above 10% fails.
async fn error_rate_template(
    env: &TestEnv,
    prometheus: &str,
    exporter: &Exporter,
    extra: serde_json::Value,
) {
    let mut metric = json!({
        "name": "error-rate",
        "interval": "1s",
        "count": 3,
        "successCondition": "result <= 0.1",
        "failureCondition": "result > 0.1",
        "provider": {"prometheus": {"address": prometheus, "query": exporter.error_ratio_query(WINDOW)}},
    });
    metric
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [metric]},
    }))
    .await;
}

/// An exporter of healthy traffic, scraped by the local Prometheus, with data to query.
async fn healthy_exporter(env: &TestEnv) -> Exporter {
    let mut exporter = Exporter::start(&env.ns).await;
    exporter.set_rates(100.0, 0.0);
    exporter.scrape();
    wait_for_value(&prometheus_url(), &exporter.error_ratio_query(WINDOW)).await;
    exporter
}

fn steps() -> serde_json::Value {
    json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}])
}

pub(crate) fn status(r: &Rollout) -> fledge::api::RolloutStatus {
    r.status.clone().unwrap_or_default()
}

pub(crate) async fn runs(env: &TestEnv) -> Vec<AnalysisRun> {
    env.api::<AnalysisRun>()
        .list(&ListParams::default())
        .await
        .expect("listing AnalysisRuns")
        .items
}

/// Waits until one AnalysisRun has at least `n` measurements; returns its name.
async fn wait_measured(env: &TestEnv, n: usize) -> String {
    env.wait_for(&format!("a run with {n} measurements"), MINUTE, || async {
        let runs = runs(env).await;
        let measured = runs.iter().find(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.metric_results.first())
                .is_some_and(|m| m.measurements.len() >= n)
        });
        match measured {
            Some(r) => Ok(r.metadata.name.clone().unwrap()),
            None => Err(format!(
                "{:?}",
                runs.iter().map(|r| &r.status).collect::<Vec<_>>()
            )),
        }
    })
    .await
}

async fn run_phase(env: &TestEnv, name: &str) -> Option<AnalysisPhase> {
    let run = env.api::<AnalysisRun>().get(name).await.ok()?;
    run.status?.phase
}

/// Polls the Rollout every 50 ms until `pred`, checking `invariant` at every look; returns how
/// long it took. Finer than `wait_rollout`, for the breach-to-abort measurement.
async fn time_until(
    env: &TestEnv,
    what: &str,
    pred: impl Fn(&Rollout) -> bool,
    invariant: impl Fn(&Rollout),
) -> Duration {
    let start = Instant::now();
    loop {
        let r = env.rollout("web").await;
        invariant(&r);
        if pred(&r) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < MINUTE,
            "timed out waiting for {what}: {:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_healthy_canary_passes_analysis_and_promotes() {
    let env = TestEnv::canary("an-pass").await;
    let exporter = healthy_exporter(&env).await;
    error_rate_template(&env, &prometheus_url(), &exporter, json!({})).await;
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps())).await;

    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps()))
        .await;
    let r = env
        .wait_rollout("web", "v2 promoted", MINUTE, |r| {
            let s = status(r);
            s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    let v2 = status(&r).stable_revision.unwrap();
    let runs = runs(&env).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let s = runs[0].status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    assert_eq!(s.metric_results[0].successful, 3);
    let labels = runs[0].metadata.labels.clone().unwrap();
    assert_eq!(labels.get(fledge::api::HASH_LABEL), Some(&v2));
    assert_eq!(labels.get("fledge.dev/step").map(String::as_str), Some("1"));
}

#[tokio::test]
async fn an_error_rate_above_threshold_fails_the_run_and_aborts_with_weight_0() {
    let mut env = TestEnv::canary("an-fail").await;
    let exporter = healthy_exporter(&env).await;
    error_rate_template(&env, &prometheus_url(), &exporter, json!({"count": 120})).await;
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps()))
        .await;
    let run = wait_measured(&env, 2).await;

    // Breach: half the requests fail from now on.
    exporter.set_rates(100.0, 100.0);
    let took = time_until(
        &env,
        "abort with weight 0",
        |r| status(r).abort && status(r).canary_weight == Some(0),
        |r| {
            assert_eq!(
                status(r).stable_revision.as_deref(),
                Some(v1.as_str()),
                "never promoted"
            )
        },
    )
    .await;
    eprintln!(
        "MEASURED breach to abort (error rate, Prometheus scraped every 1s, interval 1s, rate[{WINDOW}]): {took:?}"
    );
    assert_eq!(run_phase(&env, &run).await, Some(AnalysisPhase::Failed));
    env.wait_for("an AnalysisRunFailed event on the run", MINUTE, || async {
        let events = env
            .api::<k8s_openapi::api::events::v1::Event>()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        events
            .items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("AnalysisRunFailed")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(run.as_str())
            })
            .map(|_| ())
            .ok_or_else(|| format!("{} events", events.items.len()))
    })
    .await;
    let r = env
        .wait_rollout("web", "Degraded", MINUTE, |r| {
            status(r).phase == Some(Phase::Degraded)
        })
        .await;
    assert!(status(&r).message.unwrap().contains("aborted"));
    let v2 = status(&r).current_revision.unwrap();
    env.wait_replica_sets("canary gone", vec![(v1, 2, 2), (v2, 0, 0)])
        .await;
    // The operator's metrics count the failed run and the measurements that failed it.
    let metrics = env.operator(0).metrics().await;
    assert!(
        metrics.contains("fledge_analysis_runs_total{phase=\"Failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "fledge_analysis_measurements_total{provider=\"prometheus\",phase=\"Failed\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn prometheus_stopped_mid_run_is_an_error_and_an_abort_never_a_promotion() {
    let env = TestEnv::canary("an-down").await;
    let exporter = Exporter::start(&env.ns).await;
    exporter.set_rates(100.0, 0.0);
    let mut prometheus = OwnPrometheus::start(&exporter).await;
    wait_for_value(&prometheus.url, &exporter.error_ratio_query(WINDOW)).await;
    error_rate_template(
        &env,
        &prometheus.url.clone(),
        &exporter,
        json!({"count": 120, "consecutiveErrorLimit": 3}),
    )
    .await;
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps()))
        .await;
    let run = wait_measured(&env, 2).await;

    prometheus.stop();
    let took = time_until(
        &env,
        "abort after consecutive errors",
        |r| status(r).abort && status(r).canary_weight == Some(0),
        |r| {
            assert_eq!(
                status(r).stable_revision.as_deref(),
                Some(v1.as_str()),
                "never promoted"
            )
        },
    )
    .await;
    eprintln!("MEASURED Prometheus stopped to abort (3 errors in a row at 1s): {took:?}");
    let ar = env.api::<AnalysisRun>().get(&run).await.unwrap();
    let s = ar.status.unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Error), "{s:?}");
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("errors in a row"),
        "{s:?}"
    );
    assert!(s.metric_results[0].successful >= 2);
}

#[tokio::test]
async fn no_data_is_inconclusive_and_pauses_then_promote_resumes() {
    let env = TestEnv::canary("an-nodata").await;
    let exporter = healthy_exporter(&env).await;
    // A job nobody scrapes: the query answers an empty vector.
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "successCondition": "result <= 0.1",
            "provider": {"prometheus": {
                "address": prometheus_url(),
                "query": exporter.error_ratio_query(WINDOW).replace(&env.ns, "nobody-scrapes-this"),
            }},
        }]},
    }))
    .await;
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps()))
        .await;
    let r = env
        .wait_rollout("web", "paused, inconclusive", MINUTE, |r| {
            status(r)
                .pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::InconclusiveAnalysis)
        })
        .await;
    assert_eq!(status(&r).phase, Some(Phase::Paused));
    assert_eq!(status(&r).stable_revision.as_deref(), Some(v1.as_str()));
    let runs = runs(&env).await;
    let s = runs[0].status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Inconclusive));
    assert!(s.message.unwrap().contains("no data"));

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "promoted after promote", MINUTE, |r| {
        let s = status(r);
        s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
}

fn blue_green(version: &str, analysis: serde_json::Value) -> serde_json::Value {
    // The aborted revision's pods go 2 s after an abort instead of the default 30.
    let mut bg = json!({"activeService": "web-active", "previewService": "web-preview", "scaleDownDelaySeconds": 30, "abortScaleDownDelaySeconds": 2});
    bg.as_object_mut()
        .unwrap()
        .extend(analysis.as_object().unwrap().clone());
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template("web", version),
            "strategy": {"blueGreen": bg},
        },
    })
}

async fn blue_green_env(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name).await;
    env.service("web-active", "web").await;
    env.service("web-preview", "web").await;
    env.start_operator();
    env
}

#[tokio::test]
async fn blue_green_pre_promotion_failure_keeps_the_old_active_service() {
    let env = blue_green_env("an-bg-pre").await;
    let exporter = healthy_exporter(&env).await;
    error_rate_template(&env, &prometheus_url(), &exporter, json!({})).await;
    let gate = json!({"prePromotionAnalysis": {"templates": [{"templateName": "error-rate"}]}});
    env.apply::<Rollout>(blue_green("1", gate.clone())).await;
    let r = env
        .wait_rollout("web", "v1 Healthy", MINUTE, |r| {
            status(r).phase == Some(Phase::Healthy)
        })
        .await;
    let v1 = status(&r).stable_revision.unwrap();

    exporter.set_rates(100.0, 100.0);
    wait_for_value(
        &prometheus_url(),
        &format!("({}) > 0.2", exporter.error_ratio_query(WINDOW)),
    )
    .await;
    env.apply::<Rollout>(blue_green("2", gate)).await;
    let r = env
        .wait_rollout("web", "aborted", MINUTE, |r| status(r).abort)
        .await;
    let v2 = status(&r).current_revision.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));
    let runs = runs(&env).await;
    assert_eq!(
        runs[0].status.as_ref().unwrap().phase,
        Some(AnalysisPhase::Failed)
    );
    env.wait_replica_sets("preview gone", vec![(v1.clone(), 2, 2), (v2, 0, 0)])
        .await;
    assert_eq!(env.service_hash("web-active").await, Some(v1));
}

#[tokio::test]
async fn blue_green_post_promotion_failure_switches_back() {
    let env = blue_green_env("an-bg-post").await;
    let exporter = healthy_exporter(&env).await;
    error_rate_template(&env, &prometheus_url(), &exporter, json!({"count": 120})).await;
    let gate = json!({"postPromotionAnalysis": {"templates": [{"templateName": "error-rate"}]}});
    env.apply::<Rollout>(blue_green("1", gate.clone())).await;
    let r = env
        .wait_rollout("web", "v1 Healthy", MINUTE, |r| {
            status(r).phase == Some(Phase::Healthy)
        })
        .await;
    let v1 = status(&r).stable_revision.unwrap();

    env.apply::<Rollout>(blue_green("2", gate)).await;
    let r = env
        .wait_rollout("web", "v2 revision known", MINUTE, |r| {
            status(r).current_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    let v2 = status(&r).current_revision.unwrap();
    env.wait_for("active switched to v2", MINUTE, || async {
        match env.service_hash("web-active").await {
            Some(h) if h == v2 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_measured(&env, 2).await;
    // The old revision is still the stable one, at full size, while the analysis runs.
    let r = env.rollout("web").await;
    assert_eq!(status(&r).stable_revision.as_deref(), Some(v1.as_str()));

    exporter.set_rates(100.0, 100.0);
    let took = time_until(
        &env,
        "abort",
        |r| status(r).abort,
        |r| {
            assert_eq!(
                status(r).stable_revision.as_deref(),
                Some(v1.as_str()),
                "never promoted"
            )
        },
    )
    .await;
    eprintln!("MEASURED breach to abort (blue-green post-promotion): {took:?}");
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));
    env.wait_replica_sets("new revision gone", vec![(v1.clone(), 2, 2), (v2, 0, 0)])
        .await;
}

#[tokio::test]
async fn web_provider_reads_json_with_a_header_from_a_secret() {
    let env = TestEnv::canary("an-web").await;
    let server = crate::exporter::JsonServer::start("s3cret").await;
    server.set_body(json!({"data": {"errorRate": 0.01}}));
    env.apply::<k8s_openapi::api::core::v1::Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "health-token"},
        "stringData": {"token": "Bearer s3cret"},
    }))
    .await;
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {
            "args": [{"name": "url"}],
            "metrics": [{
                "name": "error-rate",
                "interval": "1s",
                "count": 2,
                "successCondition": "result < 0.05",
                "failureCondition": "result >= 0.05",
                "provider": {"web": {
                    "url": "{{args.url}}",
                    "jsonPath": "{$.data.errorRate}",
                    "headers": [{"key": "Authorization", "valueFrom": {"secretKeyRef": {"name": "health-token", "key": "token"}}}],
                }},
            }],
        },
    }))
    .await;
    let steps = json!([{"setWeight": 50}, {"analysis": {
        "templates": [{"templateName": "error-rate"}],
        "args": [{"name": "url", "value": server.url}],
    }}]);
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps.clone()))
        .await;
    env.wait_rollout("web", "v2 promoted", MINUTE, |r| {
        status(r).phase == Some(Phase::Healthy)
            && status(r).stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    let runs = runs(&env).await;
    let s = runs[0].status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    assert_eq!(
        s.metric_results[0].measurements[0].value.as_deref(),
        Some("0.01")
    );

    // A failing answer fails the next revision's run.
    server.set_body(json!({"data": {"errorRate": 0.5}}));
    env.apply::<Rollout>(canary_rollout("web", 2, "3", steps))
        .await;
    let r = env
        .wait_rollout("web", "v3 aborted, back on stable", MINUTE, |r| {
            status(r).abort && status(r).canary_weight == Some(0)
        })
        .await;
    assert_eq!(status(&r).canary_weight, Some(0));
}

/// A Job measurement: KWOK completes a Job's pods, so a schedulable Job succeeds; one whose pod
/// can never be scheduled fails at its `activeDeadlineSeconds`.
fn job_template(fail: bool) -> serde_json::Value {
    let mut pod = json!({
        "restartPolicy": "Never",
        "containers": [{"name": "check", "image": "registry.example/smoke:1"}],
    });
    if fail {
        pod["nodeSelector"] = json!({"no-such-node": "true"});
    }
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke"},
        "spec": {"metrics": [{
            "name": "smoke",
            "provider": {"job": {"spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 3,
                "template": {"spec": pod},
            }}},
        }]},
    })
}

async fn jobs(env: &TestEnv) -> usize {
    env.api::<k8s_openapi::api::batch::v1::Job>()
        .list(&ListParams::default().labels(fledge::api::analysis::ANALYSIS_RUN_LABEL))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn job_provider_succeeds_fails_and_cleans_up() {
    let env = TestEnv::canary("an-job").await;
    env.apply::<AnalysisTemplate>(job_template(false)).await;
    let steps =
        json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "smoke"}]}}]);
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps.clone()))
        .await;
    env.wait_rollout("web", "v2 promoted", MINUTE, |r| {
        status(r).phase == Some(Phase::Healthy)
            && status(r).stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    env.wait_for("Jobs cleaned up", MINUTE, || async {
        match jobs(&env).await {
            0 => Ok(()),
            n => Err(format!("{n} Jobs left")),
        }
    })
    .await;

    env.apply::<AnalysisTemplate>(job_template(true)).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "3", steps))
        .await;
    let r = env
        .wait_rollout("web", "v3 aborted, back on stable", MINUTE, |r| {
            status(r).abort && status(r).canary_weight == Some(0)
        })
        .await;
    assert_eq!(status(&r).canary_weight, Some(0));
    let failed: Vec<_> = runs(&env)
        .await
        .into_iter()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Failed))
        .collect();
    assert_eq!(failed.len(), 1);
    let m = &failed[0].status.as_ref().unwrap().metric_results[0].measurements[0];
    assert!(
        m.message.as_deref().unwrap_or_default().contains("failed"),
        "{m:?}"
    );
}

/// `--job-provider=false` (the chart's `rbac.analysis.jobs=false`): no Job is watched or
/// created, and the measurements say why.
#[tokio::test]
async fn without_the_job_provider_a_job_metric_errors_and_creates_no_job() {
    let mut env = TestEnv::new("an-nojob").await;
    env.service("web-stable", "web").await;
    env.service("web-canary", "web").await;
    env.start_operator_with(&["--leader-elect=false", "--job-provider=false"]);
    env.apply::<AnalysisTemplate>(job_template(false)).await;
    let steps =
        json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "smoke"}]}}]);
    crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    env.wait_rollout("web", "v2 aborted", MINUTE, |r| status(r).abort)
        .await;
    let run = runs(&env).await.into_iter().next().expect("an AnalysisRun");
    let run_status = run.status.expect("a status");
    assert_eq!(run_status.phase, Some(AnalysisPhase::Error));
    let m = &run_status.metric_results[0].measurements[0];
    assert_eq!(
        m.message.as_deref(),
        Some(fledge::analysis::providers::JOB_PROVIDER_DISABLED),
        "{m:?}"
    );
    assert_eq!(jobs(&env).await, 0);
}

#[tokio::test]
async fn a_condition_that_does_not_compile_is_an_invalid_spec_and_bad_steps_are_rejected() {
    let env = TestEnv::canary("an-invalid").await;
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "successCondition": "result <",
            "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "up"}},
        }]},
    }))
    .await;
    env.apply::<Rollout>(canary_rollout("web", 1, "1", steps()))
        .await;
    let r = env
        .wait_rollout("web", "InvalidSpec", MINUTE, |r| {
            fledge::api::conditions::is_true(
                &status(r).conditions,
                fledge::api::conditions::INVALID_SPEC,
            )
        })
        .await;
    let message = status(&r).message.unwrap();
    assert!(
        message.contains("strategy.canary.steps[1].analysis")
            && message.contains("successCondition"),
        "{message}"
    );

    // Admission: a step with two actions, and a metric without a provider.
    let mut two = canary_rollout(
        "bad",
        1,
        "1",
        json!([{"setWeight": 10, "analysis": {"templates": [{"templateName": "x"}]}}]),
    );
    two["metadata"]["name"] = json!("bad");
    let err = env
        .rollouts()
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(two).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of setWeight, pause, setCanaryScale, setHeaderRoute, setMirrorRoute, analysis"),
        "{err}"
    );
    let no_provider: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "no-provider"},
        "spec": {"metrics": [{"name": "m", "provider": {}}]},
    }))
    .unwrap();
    let err = env
        .api::<AnalysisTemplate>()
        .create(&kube::api::PostParams::default(), &no_provider)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of prometheus, web, job"),
        "{err}"
    );
}

#[tokio::test]
async fn the_ready_made_templates_pass_a_server_side_dry_run() {
    let env = TestEnv::new("an-templates").await;
    let api = kube::Api::<fledge::api::ClusterAnalysisTemplate>::all(env.client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis-templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("analysis-templates/ exists") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let t: fledge::api::ClusterAnalysisTemplate = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let dry_run = kube::api::PostParams {
                dry_run: true,
                ..Default::default()
            };
            api.create(&dry_run, &t)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");
}

/// An AnalysisTemplate `name` with one web metric on `url` (the [`JsonServer`]'s answer
/// `{"errorRate": x}`), `extra` merged into the metric.
///
/// [`JsonServer`]: crate::exporter::JsonServer
async fn web_template(env: &TestEnv, name: &str, url: &str, extra: serde_json::Value) {
    let mut metric = json!({
        "name": "error-rate",
        "successCondition": "result < 0.05",
        "failureCondition": "result >= 0.05",
        "provider": {"web": {
            "url": url,
            "jsonPath": "{$.errorRate}",
            "headers": [{"key": "Authorization", "value": "Bearer t"}],
        }},
    });
    metric
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }))
    .await;
}

fn measurements(run: &AnalysisRun) -> usize {
    run.status
        .as_ref()
        .and_then(|s| s.metric_results.first())
        .map_or(0, |m| m.count as usize)
}

fn kind_of(run: &AnalysisRun) -> String {
    run.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(fledge::api::analysis::ANALYSIS_KIND_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// Issue 12: an analysis step of 6 measurements 1s apart; someone pauses after the first. The
/// pause used to terminate the step's run (and the background run), which then ended Successful
/// on the data it had, so the step passed on resume without its measurements. Now both runs keep
/// measuring through the pause, the step passes only on its 6 measurements, and the background
/// run, terminated at promotion, ends Terminated without making the rollout Degraded.
#[tokio::test]
async fn a_pause_during_a_step_analysis_never_passes_the_step_without_its_measurements() {
    let mut env = TestEnv::canary("an-pause").await;
    let server = crate::exporter::JsonServer::start("t").await;
    server.set_body(json!({"errorRate": 0.01}));
    web_template(
        &env,
        "step",
        &server.url,
        json!({"interval": "1s", "count": 6}),
    )
    .await;
    web_template(&env, "bg", &server.url, json!({"interval": "1s"})).await;
    let steps = json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "step"}]}}]);
    let with_background = |version: &str| {
        let mut r = canary_rollout("web", 2, version, steps.clone());
        r["spec"]["strategy"]["canary"]["analysis"] =
            json!({"templates": [{"templateName": "bg"}]});
        r
    };
    let v1 = crate::canary::deploy_v1(&env, with_background("1")).await;
    env.apply::<Rollout>(with_background("2")).await;
    let step_run = env
        .wait_for("the step's run measuring", MINUTE, || async {
            let runs = runs(&env).await;
            runs.iter()
                .find(|r| kind_of(r) == "step" && measurements(r) >= 1)
                .map(|r| r.metadata.name.clone().unwrap())
                .ok_or_else(|| format!("{:?}", runs.iter().map(|r| &r.status).collect::<Vec<_>>()))
        })
        .await;

    env.request("web", RequestAction::Pause).await;
    // The controller has acted on the pause: the request is consumed and the rollout Paused.
    let paused = env
        .wait_rollout("web", "paused", MINUTE, |r| {
            status(r).phase == Some(Phase::Paused) && status(r).request.is_none()
        })
        .await;
    assert_eq!(status(&paused).current_step_index, Some(1));
    for run in runs(&env).await {
        assert!(
            !run.spec.terminate,
            "{} terminated by the pause: {:?}",
            run.metadata.name.clone().unwrap(),
            run.status
        );
    }
    // Both runs go on measuring while paused.
    env.wait_for("measurements while paused", MINUTE, || async {
        let runs = runs(&env).await;
        let counts: Vec<(String, usize)> =
            runs.iter().map(|r| (kind_of(r), measurements(r))).collect();
        if counts.iter().all(|(_, n)| *n >= 3) {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;
    let r = env.rollout("web").await;
    assert_eq!(status(&r).phase, Some(Phase::Paused));
    assert_eq!(status(&r).stable_revision.as_deref(), Some(v1.as_str()));

    env.request("web", RequestAction::Resume).await;
    let r = env
        .wait_rollout("web", "v2 promoted", MINUTE, |r| {
            let s = status(r);
            s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    assert!(!status(&r).abort);
    let run = env.api::<AnalysisRun>().get(&step_run).await.unwrap();
    let s = run.status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    assert_eq!(s.metric_results[0].successful, 6, "{s:?}");

    // The background run is stopped at promotion: Terminated, no verdict, and nothing wrong.
    env.wait_for("the background run Terminated", MINUTE, || async {
        let runs = runs(&env).await;
        let bg = runs.iter().find(|r| kind_of(r) == "background");
        match bg.and_then(|r| r.status.as_ref()).and_then(|s| s.phase) {
            Some(AnalysisPhase::Terminated) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let r = env.rollout("web").await;
    assert_eq!(status(&r).phase, Some(Phase::Healthy));
    let metrics = env.operator(0).metrics().await;
    assert!(
        metrics.contains("fledge_analysis_runs_total{phase=\"Terminated\"} 1"),
        "{metrics}"
    );
}

/// Issue 12: a revision whose analysis failed is reverted in Git, then re-applied. Its failed
/// run, kept as history under a deterministic name, used to abort the re-applied revision at
/// once. Now the revision starts a new analysis attempt with fresh runs, and passes on them.
#[tokio::test]
async fn a_revision_re_applied_after_an_abort_is_analysed_again_in_fresh_runs() {
    let env = TestEnv::canary("an-again").await;
    let server = crate::exporter::JsonServer::start("t").await;
    server.set_body(json!({"errorRate": 0.5}));
    web_template(
        &env,
        "step",
        &server.url,
        json!({"interval": "1s", "count": 2}),
    )
    .await;
    let steps = json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "step"}]}}]);
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps.clone()))
        .await;
    let r = env
        .wait_rollout("web", "v2 aborted", MINUTE, |r| status(r).abort)
        .await;
    let v2 = status(&r).current_revision.unwrap();
    let failed = runs(&env).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].status.as_ref().and_then(|s| s.phase),
        Some(AnalysisPhase::Failed)
    );

    // The revert, then the fix of what made the analysis fail, then the same template again.
    env.apply::<Rollout>(canary_rollout("web", 2, "1", steps.clone()))
        .await;
    env.wait_rollout("web", "back on v1", MINUTE, |r| {
        let s = status(r);
        s.phase == Some(Phase::Healthy) && s.current_revision.as_deref() == Some(v1.as_str())
    })
    .await;
    server.set_body(json!({"errorRate": 0.01}));
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    let r = env
        .wait_rollout("web", "v2 promoted on fresh runs", MINUTE, |r| {
            let s = status(r);
            s.abort || s.stable_revision.as_deref() == Some(v2.as_str())
        })
        .await;
    assert!(!status(&r).abort, "aborted again: {:?}", status(&r).message);
    let runs = runs(&env).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let fresh = runs
        .iter()
        .find(|r| r.metadata.name != failed[0].metadata.name)
        .unwrap();
    let s = fresh.status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    assert_eq!(s.metric_results[0].successful, 2);
    let attempt = |r: &AnalysisRun| {
        r.metadata.labels.as_ref().unwrap()[fledge::api::analysis::ANALYSIS_ATTEMPT_LABEL].clone()
    };
    assert_ne!(attempt(fresh), attempt(&failed[0]));
}

/// Issue 12: a gate on a web metric to a black-hole address (it accepts the connection and never
/// answers) with a timeout far beyond the deadline: the run never records a measurement and used to hold the rollout
/// forever. Now the progress deadline counts from when the run began to owe a measurement, and
/// the Progressing condition names the stuck run.
#[tokio::test]
async fn a_gate_on_a_black_hole_trips_the_progress_deadline_naming_its_run() {
    let env = TestEnv::canary("an-hole").await;
    // Connections complete in the kernel's backlog; nothing ever reads or answers them.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", hole.local_addr().unwrap());
    web_template(
        &env,
        "step",
        &url,
        json!({"provider": {"web": {"url": url, "timeoutSeconds": 60}}}),
    )
    .await;
    let steps = json!([{"analysis": {"templates": [{"templateName": "step"}]}}]);
    let with_deadline = |version: &str| {
        let mut r = canary_rollout("web", 2, version, steps.clone());
        r["spec"]["progressDeadlineSeconds"] = json!(5);
        r
    };
    let v1 = crate::canary::deploy_v1(&env, with_deadline("1")).await;
    env.apply::<Rollout>(with_deadline("2")).await;
    let r = env
        .wait_rollout("web", "the deadline naming the run", MINUTE, |r| {
            fledge::api::conditions::find(
                &status(r).conditions,
                fledge::api::conditions::PROGRESSING,
            )
            .is_some_and(|c| {
                c.reason == fledge::api::conditions::REASON_DEADLINE
                    && c.message.contains("has recorded no measurement")
            })
        })
        .await;
    let s = status(&r);
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
    let runs = runs(&env).await;
    assert_eq!(runs.len(), 1);
    let name = runs[0].metadata.name.clone().unwrap();
    let message = s.message.unwrap_or_default();
    assert!(
        message.contains(&format!("analysis run {name}")),
        "{message}"
    );
    drop(hole);
}

/// A local HTTP server for provider tests: `answer(request)` gives the whole response; every
/// request is kept, as text. `None` accepts and never answers (a black hole).
pub(crate) struct Endpoint {
    pub(crate) url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    pub(crate) async fn start(
        answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Endpoint {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer = std::sync::Arc::new(answer);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let (answer, log) = (answer.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    log.lock().unwrap().push(request.clone());
                    match answer(&request) {
                        Some(response) => {
                            let _ = socket.write_all(response.as_bytes()).await;
                            let _ = socket.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(600)).await,
                    }
                });
            }
        });
        Endpoint { url, seen, task }
    }

    pub(crate) fn seen(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A standalone AnalysisRun (no Rollout owns it) of one web metric.
fn web_run(name: &str, web: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"metrics": [{
            "name": "check",
            "successCondition": "result == 1",
            "consecutiveErrorLimit": 1,
            "provider": {"web": web},
        }]},
    })
}

pub(crate) async fn wait_run_done(env: &TestEnv, name: &str) -> AnalysisRun {
    env.wait_for(&format!("run {name} ended"), MINUTE, || async {
        let run = env
            .api::<AnalysisRun>()
            .get(name)
            .await
            .map_err(|e| e.to_string())?;
        match run.status.as_ref().and_then(|s| s.phase) {
            Some(p) if p.is_terminal() => Ok(run),
            _ => Err(format!("{:?}", run.status)),
        }
    })
    .await
}

/// A Secret-backed argument in a web URL, and an endpoint that answers 500 echoing the request
/// line: the token reached the measurement's message, the run's message, its Event and the
/// operator's log. It must appear in none of them, in no form (raw or percent-encoded).
#[tokio::test]
async fn a_secret_backed_argument_appears_nowhere_in_status_events_or_logs() {
    let mut env = TestEnv::canary("an-redact").await;
    let token = "tok en/zq81-s3cr3t";
    let encoded = "tok%20en%2Fzq81-s3cr3t";
    let server = Endpoint::start(|request| {
        let line = request.lines().next().unwrap_or_default().to_string();
        Some(http(
            "500 Internal Server Error",
            "",
            &format!("{{\"bad\": \"{line}\"}}"),
        ))
    })
    .await;
    env.apply::<k8s_openapi::api::core::v1::Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "api-token"},
        "stringData": {"token": token},
    }))
    .await;
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {
            "args": [{"name": "base"}, {"name": "token"}],
            "metrics": [{
                "name": "error-rate",
                "consecutiveErrorLimit": 1,
                "successCondition": "result < 0.05",
                "provider": {"web": {"url": "{{args.base}}/check?token={{args.token}}"}},
            }],
        },
    }))
    .await;
    let steps = json!([{"setWeight": 50}, {"analysis": {
        "templates": [{"templateName": "error-rate"}],
        "args": [
            {"name": "base", "value": server.url},
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}},
        ],
    }}]);
    crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    env.wait_rollout("web", "v2 aborted", MINUTE, |r| status(r).abort)
        .await;
    assert!(
        server
            .seen()
            .contains(&format!("GET /check?token={encoded} ")),
        "the endpoint got the token, percent-encoded: {}",
        server.seen()
    );
    let runs = serde_json::to_string(&runs(&env).await).unwrap();
    assert!(runs.contains("[redacted]"), "{runs}");
    let events = env
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events.items).unwrap();
    assert!(events.contains("AnalysisRunError"), "{events}");
    let rollout = serde_json::to_string(&env.rollout("web").await).unwrap();
    let logs = env.operator(0).logs();
    for (what, text) in [
        ("runs", &runs),
        ("events", &events),
        ("rollout", &rollout),
        ("log", &logs),
    ] {
        for form in [token, encoded, "zq81-s3cr3t"] {
            assert!(!text.contains(form), "{what} shows {form:?}: {text}");
        }
    }
}

/// The endpoint redirects to another server: before, the API key from a Secret went along.
/// With `followRedirects: true` the redirect is followed without it; without, it is an error.
#[tokio::test]
async fn a_redirect_never_carries_a_secret_header_and_is_followed_only_when_asked() {
    let mut env = TestEnv::new("an-redirect").await;
    env.start_operator_with(&[
        "--leader-elect=false",
        "--allow-standalone-analysis-runs=true",
    ]);
    let landing = Endpoint::start(|_| Some(http("200 OK", "", r#"{"v": 1}"#))).await;
    let target = format!("{}/landing", landing.url);
    let start =
        Endpoint::start(move |_| Some(http("302 Found", &format!("Location: {target}\r\n"), "")))
            .await;
    env.apply::<k8s_openapi::api::core::v1::Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "api-key"},
        "stringData": {"key": "k-77-s3cr3t"},
    }))
    .await;
    let web = |follow: bool| {
        json!({
            "url": format!("{}/start", start.url),
            "jsonPath": "$.v",
            "followRedirects": follow,
            "headers": [
                {"key": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "key"}}},
                {"key": "X-Team", "value": "shop"},
            ],
        })
    };
    env.apply::<AnalysisRun>(web_run("not-followed", web(false)))
        .await;
    let run = wait_run_done(&env, "not-followed").await;
    let s = run.status.unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Error), "{s:?}");
    assert!(s.message.unwrap_or_default().contains("followRedirects"));
    assert_eq!(landing.seen(), "", "not followed");

    env.apply::<AnalysisRun>(web_run("followed", web(true)))
        .await;
    let s = wait_run_done(&env, "followed").await.status.unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    let seen = landing.seen().to_lowercase();
    assert!(seen.contains("x-team: shop"), "{seen}");
    assert!(!seen.contains("k-77-s3cr3t"), "{seen}");
    assert!(
        start.seen().contains("k-77-s3cr3t"),
        "the named URL gets it"
    );
}

/// An AnalysisRun created directly, not by a Rollout, would be measured from the controller's
/// network position by whoever may create AnalysisRuns: by default it ends in Error, and its
/// endpoint is never called.
#[tokio::test]
async fn a_standalone_analysis_run_is_refused_by_default() {
    let env = TestEnv::canary("an-standalone").await;
    let server = Endpoint::start(|_| Some(http("200 OK", "", "1"))).await;
    env.apply::<AnalysisRun>(web_run("direct", json!({"url": server.url})))
        .await;
    let s = wait_run_done(&env, "direct").await.status.unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Error), "{s:?}");
    assert_eq!(
        s.message.as_deref(),
        Some(fledge::analysis::measure::STANDALONE_REFUSED)
    );
    assert_eq!(server.seen(), "", "never measured");
}

/// One reconcile worker (`--concurrency=1`), a run whose endpoint never answers (60 s
/// timeout) and a run whose endpoint answers at once: before, the slow measurement held the
/// only worker for its whole timeout and the fast run waited. Now the fast run ends while the
/// slow one is still out.
#[tokio::test]
async fn a_slow_provider_does_not_stall_another_runs_gate() {
    let mut env = TestEnv::new("an-slow").await;
    env.start_operator_with(&[
        "--leader-elect=false",
        "--allow-standalone-analysis-runs=true",
        "--concurrency=1",
    ]);
    let black_hole = Endpoint::start(|_| None).await;
    let fast = Endpoint::start(|_| Some(http("200 OK", "", "1"))).await;
    env.apply::<AnalysisRun>(web_run(
        "slow",
        json!({"url": black_hole.url, "timeoutSeconds": 60}),
    ))
    .await;
    env.wait_for("the slow endpoint called", MINUTE, || async {
        if black_hole.seen().is_empty() {
            Err("not yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    env.apply::<AnalysisRun>(web_run("fast", json!({"url": fast.url})))
        .await;
    let fast_run = env
        .wait_for("the fast run ended", Duration::from_secs(30), || async {
            let run = env
                .api::<AnalysisRun>()
                .get("fast")
                .await
                .map_err(|e| e.to_string())?;
            match run.status.as_ref().and_then(|s| s.phase) {
                Some(p) if p.is_terminal() => Ok(run),
                _ => Err(format!("{:?}", run.status)),
            }
        })
        .await;
    assert_eq!(
        fast_run.status.unwrap().phase,
        Some(AnalysisPhase::Successful)
    );
    let slow = env.api::<AnalysisRun>().get("slow").await.unwrap();
    let measured = slow
        .status
        .iter()
        .flat_map(|s| &s.metric_results)
        .map(|r| r.measurements.len())
        .sum::<usize>();
    assert_eq!(
        measured, 0,
        "the slow measurement is still out: {:?}",
        slow.status
    );
}
