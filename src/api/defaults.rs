//! The defaults of the optional fields of a Rollout and of an analysis, written once. The CRDs'
//! field descriptions (what `kubectl explain` and docs/api.md show) state them in words; the test
//! below checks that the words say what these constants are. The planner resolves a Rollout's
//! once per plan (`rollout/plan/settings.rs`); the run machine and the providers read the
//! analysis ones where they resolve the field.

use std::time::Duration;

/// `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// `spec.revisionHistoryLimit`.
pub const REVISION_HISTORY_LIMIT: i32 = 10;
/// `spec.progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// `scaleDownDelaySeconds`, of either strategy.
pub const SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// `abortScaleDownDelaySeconds`, of either strategy.
pub const ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// `spec.analysis.successfulRunHistoryLimit`.
pub const SUCCESSFUL_RUN_HISTORY_LIMIT: i32 = 5;
/// `spec.analysis.unsuccessfulRunHistoryLimit`.
pub const UNSUCCESSFUL_RUN_HISTORY_LIMIT: i32 = 5;
/// `strategy.canary.maxSurge`, as a percentage of `replicas` (rounded up, as Deployments do).
pub const MAX_SURGE_PERCENT: i32 = 25;
/// `maxUnavailable`, of either strategy.
pub const MAX_UNAVAILABLE: i32 = 0;
/// `strategy.canary.minPodsPerReplicaSet`.
pub const MIN_PODS_PER_REPLICA_SET: i32 = 1;
/// `strategy.canary.analysis.startingStep`.
pub const ANALYSIS_STARTING_STEP: i32 = 0;
/// `setMirrorRoute.percentage`.
pub const MIRROR_PERCENTAGE: i32 = 100;
/// `strategy.blueGreen.autoPromotionEnabled`.
pub const AUTO_PROMOTION_ENABLED: bool = true;
/// `strategy.blueGreen.autoPromotionSeconds`.
pub const AUTO_PROMOTION_SECONDS: i32 = 0;

/// A metric's `failureLimit`.
pub const FAILURE_LIMIT: i32 = 0;
/// A metric's `inconclusiveLimit`.
pub const INCONCLUSIVE_LIMIT: i32 = 0;
/// A metric's `consecutiveErrorLimit`.
pub const CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// `measurementRetention`, per metric.
pub const MEASUREMENT_RETENTION: i32 = 10;
/// The `timeout` of Prometheus, Graphite, InfluxDB, Datadog, New Relic and CloudWatch metrics.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// A `web` metric's `timeoutSeconds`.
pub const WEB_TIMEOUT_SECONDS: i64 = 10;
/// A Graphite metric's `from`.
pub const GRAPHITE_FROM: Duration = Duration::from_secs(300);
/// A Datadog metric's `interval`.
pub const DATADOG_INTERVAL: Duration = Duration::from_secs(300);
/// A Datadog metric's `site`.
pub const DATADOG_SITE: &str = "datadoghq.com";
/// A CloudWatch metric's `interval` (how far back its queries read).
pub const CLOUDWATCH_INTERVAL: Duration = Duration::from_secs(300);
/// A webhook gate's `interval` (its `timeoutSeconds` is a `web` metric's).
pub const GATE_INTERVAL: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::api::Rollout;
    use crate::api::analysis::AnalysisTemplate;

    /// The description of the field at `path` (property names from the object's root; `[]` for
    /// a list's items).
    fn description(crd: &serde_json::Value, path: &[&str]) -> String {
        let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for p in path {
            node = match *p {
                "[]" => &node["items"],
                p => &node["properties"][p],
            };
        }
        node["description"]
            .as_str()
            .unwrap_or_else(|| panic!("no description at {path:?}"))
            .to_string()
    }

    #[test]
    fn the_crd_states_each_default_as_the_constants_say() {
        let crd = serde_json::to_value(Rollout::crd()).expect("the CRD as JSON");
        let canary = ["spec", "strategy", "canary"];
        let at = |tail: &[&'static str]| [&canary[..], tail].concat();
        let fields: Vec<(Vec<&str>, String)> = vec![
            (vec!["spec", "replicas"], REPLICAS.to_string()),
            (
                vec!["spec", "revisionHistoryLimit"],
                REVISION_HISTORY_LIMIT.to_string(),
            ),
            (
                vec!["spec", "progressDeadlineSeconds"],
                PROGRESS_DEADLINE_SECONDS.to_string(),
            ),
            (
                vec!["spec", "analysis", "successfulRunHistoryLimit"],
                SUCCESSFUL_RUN_HISTORY_LIMIT.to_string(),
            ),
            (
                vec!["spec", "analysis", "unsuccessfulRunHistoryLimit"],
                UNSUCCESSFUL_RUN_HISTORY_LIMIT.to_string(),
            ),
            (at(&["maxSurge"]), format!("{MAX_SURGE_PERCENT}%")),
            (at(&["maxUnavailable"]), MAX_UNAVAILABLE.to_string()),
            (
                at(&["scaleDownDelaySeconds"]),
                SCALE_DOWN_DELAY_SECONDS.to_string(),
            ),
            (
                at(&["abortScaleDownDelaySeconds"]),
                ABORT_SCALE_DOWN_DELAY_SECONDS.to_string(),
            ),
            (
                vec!["spec", "strategy", "blueGreen", "scaleDownDelaySeconds"],
                SCALE_DOWN_DELAY_SECONDS.to_string(),
            ),
            (
                at(&["minPodsPerReplicaSet"]),
                MIN_PODS_PER_REPLICA_SET.to_string(),
            ),
            (
                at(&["analysis", "startingStep"]),
                ANALYSIS_STARTING_STEP.to_string(),
            ),
            (
                at(&["steps", "[]", "setMirrorRoute", "percentage"]),
                MIRROR_PERCENTAGE.to_string(),
            ),
            (
                vec![
                    "spec",
                    "strategy",
                    "blueGreen",
                    "abortScaleDownDelaySeconds",
                ],
                ABORT_SCALE_DOWN_DELAY_SECONDS.to_string(),
            ),
            (
                vec!["spec", "strategy", "blueGreen", "maxUnavailable"],
                MAX_UNAVAILABLE.to_string(),
            ),
            (
                vec!["spec", "strategy", "blueGreen", "autoPromotionEnabled"],
                AUTO_PROMOTION_ENABLED.to_string(),
            ),
            (
                vec!["spec", "strategy", "blueGreen", "autoPromotionSeconds"],
                AUTO_PROMOTION_SECONDS.to_string(),
            ),
            (
                vec!["spec", "strategy", "blueGreen", "previewReplicaCount"],
                "`replicas`".to_string(),
            ),
            (
                vec!["spec", "gates", "[]", "interval"],
                format!("{}s", GATE_INTERVAL.as_secs()),
            ),
            (
                vec!["spec", "gates", "[]", "timeoutSeconds"],
                WEB_TIMEOUT_SECONDS.to_string(),
            ),
        ];
        check(&crd, fields);
    }

    #[test]
    fn the_analysis_crd_states_each_default_as_the_constants_say() {
        let crd = serde_json::to_value(AnalysisTemplate::crd()).expect("the CRD as JSON");
        let metric = ["spec", "metrics", "[]"];
        let at = |tail: &[&'static str]| [&metric[..], tail].concat();
        let provider = |p: &'static str, f: &'static str| at(&["provider", p, f]);
        let secs = |d: Duration| format!("{}s", d.as_secs());
        let mins = |d: Duration| format!("{}m", d.as_secs() / 60);
        let fields: Vec<(Vec<&str>, String)> = vec![
            (at(&["failureLimit"]), FAILURE_LIMIT.to_string()),
            (at(&["inconclusiveLimit"]), INCONCLUSIVE_LIMIT.to_string()),
            (
                at(&["consecutiveErrorLimit"]),
                CONSECUTIVE_ERROR_LIMIT.to_string(),
            ),
            (
                vec!["spec", "measurementRetention"],
                MEASUREMENT_RETENTION.to_string(),
            ),
            (provider("prometheus", "timeout"), secs(QUERY_TIMEOUT)),
            (provider("graphite", "timeout"), secs(QUERY_TIMEOUT)),
            (provider("influxdb", "timeout"), secs(QUERY_TIMEOUT)),
            (provider("datadog", "timeout"), secs(QUERY_TIMEOUT)),
            (provider("newRelic", "timeout"), secs(QUERY_TIMEOUT)),
            (provider("cloudWatch", "timeout"), secs(QUERY_TIMEOUT)),
            (
                provider("cloudWatch", "interval"),
                mins(CLOUDWATCH_INTERVAL),
            ),
            (
                provider("web", "timeoutSeconds"),
                WEB_TIMEOUT_SECONDS.to_string(),
            ),
            (provider("graphite", "from"), mins(GRAPHITE_FROM)),
            (provider("datadog", "interval"), mins(DATADOG_INTERVAL)),
            (provider("datadog", "site"), format!("`{DATADOG_SITE}`")),
        ];
        check(&crd, fields);
    }

    fn check(crd: &serde_json::Value, fields: Vec<(Vec<&str>, String)>) {
        for (path, default) in fields {
            let words = description(crd, &path);
            // The value ends the sentence, or a clause of it.
            let stated = [".", ",", ";"]
                .iter()
                .any(|end| words.contains(&format!("Defaults to {default}{end}")));
            assert!(
                stated,
                "{}: {words:?} does not say it defaults to {default}",
                path.join(".")
            );
        }
    }
}
