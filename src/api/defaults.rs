//! The defaults of a Rollout's optional fields, written once. The CRD's field descriptions (what
//! `kubectl explain` and docs/api.md show) state them in words; the test below checks that the
//! words say what these constants are. The planner resolves them once per plan
//! (`rollout/plan/settings.rs`).

/// `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// `spec.revisionHistoryLimit`.
pub const REVISION_HISTORY_LIMIT: i32 = 10;
/// `spec.progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// `scaleDownDelaySeconds`, of either strategy.
pub const SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// `strategy.canary.abortScaleDownDelaySeconds`.
pub const ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// `spec.analysis.successfulRunHistoryLimit`.
pub const SUCCESSFUL_RUN_HISTORY_LIMIT: i32 = 5;
/// `spec.analysis.unsuccessfulRunHistoryLimit`.
pub const UNSUCCESSFUL_RUN_HISTORY_LIMIT: i32 = 5;
/// `strategy.canary.maxSurge`, as a percentage of `replicas` (rounded up, as Deployments do).
pub const MAX_SURGE_PERCENT: i32 = 25;
/// `strategy.canary.maxUnavailable`.
pub const MAX_UNAVAILABLE: i32 = 0;

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::api::Rollout;

    /// The description of the field at `path` (property names from the Rollout's root).
    fn description(crd: &serde_json::Value, path: &[&str]) -> String {
        let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for p in path {
            node = &node["properties"][*p];
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
        ];
        for (path, default) in fields {
            let words = description(&crd, &path);
            assert!(
                words.contains(&format!("Defaults to {default}.")),
                "{}: {words:?} does not say it defaults to {default}",
                path.join(".")
            );
        }
    }
}
