//! What a Rollout adds to the AnalysisRuns it creates (issue 17): a step's `dryRun` rule (a
//! regular expression, as in Argo Rollouts) makes a failing metric measure without failing the
//! run, `measurementRetention` bounds what the run keeps, and `analysisRunMetadata` labels and
//! annotates the run.

use fledge::api::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use fledge::api::{Phase, Rollout};
use serde_json::json;

use crate::analysis::{runs, status};
use crate::exporter::JsonServer;
use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn web_metric(name: &str, url: &str, field: &str, below: f64) -> serde_json::Value {
    json!({
        "name": name,
        "interval": "1s",
        "count": 3,
        "successCondition": format!("result < {below}"),
        "failureCondition": format!("result >= {below}"),
        "provider": {"web": {
            "url": url,
            "jsonPath": format!("{{$.{field}}}"),
            "headers": [{"key": "Authorization", "value": "Bearer t"}],
        }},
    })
}

#[tokio::test]
async fn a_dry_run_metric_that_fails_never_stops_the_promotion() {
    let env = TestEnv::canary("an-dry").await;
    let server = JsonServer::start("t").await;
    // The error rate fails its condition at every measurement; the latency passes.
    server.set_body(json!({"errorRate": 0.5, "latency": 0.01}));
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "gate"},
        "spec": {"metrics": [
            web_metric("total-error-rate", &server.url, "errorRate", 0.05),
            web_metric("latency", &server.url, "latency", 0.1),
        ]},
    }))
    .await;
    let steps = json!([
        {"setWeight": 50},
        {"analysis": {
            "templates": [{"templateName": "gate"}],
            "dryRun": [{"metricName": "error"}],
            "measurementRetention": [{"metricName": "^latency$", "limit": 1}],
            "analysisRunMetadata": {
                "labels": {"team": "payments"},
                "annotations": {"example.com/dashboard": "https://grafana.example.com/d/web"},
            },
        }},
    ]);
    let v1 = crate::canary::deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    let r = env
        .wait_rollout("web", "v2 promoted", MINUTE, |r| {
            let s = status(r);
            s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    assert!(!status(&r).abort, "{:?}", r.status);

    let runs: Vec<AnalysisRun> = runs(&env).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let s = run.status.clone().unwrap();
    assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    let result = |name: &str| {
        s.metric_results
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no result for {name}: {s:?}"))
            .clone()
    };
    let errors = result("total-error-rate");
    assert!(errors.dry_run, "{errors:?}");
    assert_eq!(errors.phase, AnalysisPhase::Failed, "{errors:?}");
    assert!(errors.failed >= 1, "{errors:?}");
    let latency = result("latency");
    assert!(!latency.dry_run);
    assert_eq!(latency.phase, AnalysisPhase::Successful, "{latency:?}");
    assert_eq!(latency.count, 3, "{latency:?}");
    assert_eq!(latency.measurements.len(), 1, "{latency:?}");
    assert_eq!(
        run.spec.dry_run[0].metric_name, "error",
        "the Rollout's rule is in the run"
    );
    let labels = run.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(labels.get("fledge.dev/step").map(String::as_str), Some("1"));
    let annotations = run.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/dashboard").map(String::as_str),
        Some("https://grafana.example.com/d/web")
    );
}
