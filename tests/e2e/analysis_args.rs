//! `count`, the limits and the durations of a template filled from arguments, as Argo Rollouts
//! allows (`count: "{{args.count}}"`): accepted by the schema, resolved when the run is created,
//! and a value that is not a number named by its field.

use fledge::api::Rollout;
use fledge::api::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use serde_json::json;

use crate::analysis::{Endpoint, http, runs, status, wait_run_done};
use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn template(url: &str, count: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "check"},
        "spec": {
            "args": [{"name": "count"}, {"name": "every", "value": "1s"}],
            "metrics": [{
                "name": "check",
                "count": count,
                "interval": "{{args.every}}",
                "failureLimit": "{{args.count}}",
                "successCondition": "result == 1",
                "provider": {"web": {"url": url, "jsonPath": "$.v"}},
            }],
        },
    })
}

fn steps(count: &str) -> serde_json::Value {
    json!([{"setWeight": 50}, {"analysis": {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "count", "value": count}],
    }}])
}

/// The Rollout gives `count` 3: the run measures 3 times and passes. The schema takes the
/// argument form and refuses what is neither a number nor an argument; a Rollout giving `three`
/// is an InvalidSpec naming the field.
#[tokio::test]
async fn a_count_from_an_argument_runs_that_many_measurements() {
    let env = TestEnv::canary("an-argcount").await;
    let server = Endpoint::start(|_| Some(http("200 OK", "", r#"{"v": 1}"#))).await;
    // Sent as JSON, not through the typed client, which could not even hold a boolean count.
    let raw = kube::api::Api::<kube::api::DynamicObject>::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::erase::<AnalysisTemplate>(&()),
    );
    for garbage in [
        json!(true),
        json!("lots"),
        json!(-1),
        json!("{{args.count}}x"),
    ] {
        let t = serde_json::from_value(template(&server.url, garbage.clone())).unwrap();
        let err = raw
            .create(&kube::api::PostParams::default(), &t)
            .await
            .expect_err(&format!("count {garbage} is refused"));
        assert!(err.to_string().contains("count"), "{garbage}: {err}");
    }

    env.apply::<AnalysisTemplate>(template(&server.url, json!("{{args.count}}")))
        .await;
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps("3"))).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps("3")))
        .await;
    env.wait_rollout("web", "v2 promoted", MINUTE, |r| {
        let s = status(r);
        s.phase == Some(fledge::api::Phase::Healthy)
            && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    let runs = runs(&env).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let s = runs[0].status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    assert_eq!(s.metric_results[0].count, 3, "{s:?}");
    assert_eq!(s.metric_results[0].measurements.len(), 3, "{s:?}");
    // Asked exactly as often as recorded: a result whose status write is lost to a conflict is
    // recorded from a fresher copy of the run, never measured again.
    let asked = server.seen().matches("GET /").count();
    assert_eq!(asked, 3, "{}", server.seen());

    env.apply::<Rollout>(canary_rollout("web", 2, "3", steps("three")))
        .await;
    let r = env
        .wait_rollout("web", "InvalidSpec", MINUTE, |r| {
            fledge::api::conditions::is_true(
                &status(r).conditions,
                fledge::api::conditions::INVALID_SPEC,
            )
        })
        .await;
    let message = status(&r).message.unwrap_or_default();
    assert!(
        message.contains("metrics[0].count") && message.contains("\"count\""),
        "{message}"
    );
}

/// A run whose argument for `count` is not a number (here a run created directly; a Secret's
/// value is only read by the run too) ends in Error naming the field, and measures nothing.
#[tokio::test]
async fn a_count_argument_that_is_not_a_number_is_a_run_error_naming_the_field() {
    let mut env = TestEnv::new("an-argbad").await;
    env.start_operator_with(&[
        "--leader-elect=false",
        "--allow-standalone-analysis-runs=true",
    ]);
    let server = Endpoint::start(|_| Some(http("200 OK", "", r#"{"v": 1}"#))).await;
    env.apply::<AnalysisRun>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "bad-count"},
        "spec": {
            "args": [{"name": "count", "value": "three"}],
            "metrics": [{
                "name": "check",
                "count": "{{args.count}}",
                "successCondition": "result == 1",
                "provider": {"web": {"url": server.url, "jsonPath": "$.v"}},
            }],
        },
    }))
    .await;
    let s = wait_run_done(&env, "bad-count").await.status.unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Error), "{s:?}");
    let message = s.message.unwrap_or_default();
    assert!(
        message.starts_with("metrics[0].count:") && message.contains("whole number"),
        "{message}"
    );
    assert_eq!(server.seen(), "", "never measured");
}
