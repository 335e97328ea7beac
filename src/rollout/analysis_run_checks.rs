//! Checks of what a Rollout adds to the AnalysisRuns it creates (`dryRun`,
//! `measurementRetention`, `analysisRunMetadata` of each analysis) that admission cannot make:
//! rules that are not regular expressions, and labels the API server would refuse (every run of
//! that analysis would fail to be created, forever) or that fledge finds its runs by.

use super::gates::references_in;
use super::role_metadata_checks::{label_value, qualified_name};
use crate::api::{HASH_LABEL, RolloutSpec, SpecProblem};

pub fn problems(spec: &RolloutSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    for (field, request) in references_in(spec) {
        out.extend(
            crate::analysis::metric_rules::pattern_problems(
                request.dry_run,
                request.measurement_retention,
            )
            .into_iter()
            .map(|p| SpecProblem {
                path: format!("{field}.{}", p.path),
                message: p.message,
            }),
        );
        let Some(md) = request.metadata else { continue };
        let at = format!("{field}.analysisRunMetadata");
        for (key, value) in &md.labels {
            let message = if let Err(e) = qualified_name(key) {
                format!("label key {e}")
            } else if let Err(e) = label_value(value) {
                format!("label value {e}")
            } else if key.starts_with("fledge.dev/") || key == HASH_LABEL {
                "fledge sets this label on its runs to find them again".into()
            } else {
                continue;
            };
            out.push(SpecProblem {
                path: format!("{at}.labels[{key:?}]"),
                message,
            });
        }
        for key in md.annotations.keys() {
            if let Err(e) = qualified_name(key) {
                out.push(SpecProblem {
                    path: format!("{at}.annotations[{key:?}]"),
                    message: format!("annotation key {e}"),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_and_run_labels_are_named_by_their_field() {
        let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"canary": {
                "steps": [{"analysis": {
                    "templates": [{"templateName": "errors"}],
                    "dryRun": [{"metricName": ".*"}, {"metricName": "(unclosed"}],
                    "analysisRunMetadata": {
                        "labels": {"team": "payments", "fledge.dev/step": "9", "bad key": "x"},
                        "annotations": {"example.com/why": "any text goes", "-no": "x"},
                    },
                }}],
                "analysis": {
                    "templates": [{"templateName": "errors"}],
                    "measurementRetention": [{"metricName": "[", "limit": 3}],
                    "analysisRunMetadata": {"labels": {"ok": "-not-ok"}},
                },
            }},
        }))
        .unwrap();
        let problems: Vec<String> = problems(&spec).iter().map(ToString::to_string).collect();
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "strategy.canary.steps[0].analysis.dryRun[1].metricName",
                "strategy.canary.steps[0].analysis.analysisRunMetadata.labels[\"bad key\"]",
                "strategy.canary.steps[0].analysis.analysisRunMetadata.labels[\"fledge.dev/step\"]",
                "strategy.canary.steps[0].analysis.analysisRunMetadata.annotations[\"-no\"]",
                "strategy.canary.analysis.measurementRetention[0].metricName",
                "strategy.canary.analysis.analysisRunMetadata.labels[\"ok\"]",
            ],
            "{problems:?}"
        );
        assert!(problems[2].ends_with("fledge sets this label on its runs to find them again"));
    }
}
