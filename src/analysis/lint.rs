//! Offline checks of a template, for `kubectl fledge lint` and for the Rollout's `InvalidSpec`:
//! conditions compile, durations parse, every `{{args.NAME}}` names a declared argument.

use std::collections::BTreeMap;

use super::args::substitute_metric;
use super::run::validate;
use crate::api::analysis::{AnalysisTemplateSpec, Argument, Metric};

/// Every problem of a template, each prefixed by the field it is in, like
/// `metrics[0] (success-rate): successCondition: ...`. Empty when the template is fine.
/// Arguments without a value (given by the Rollout) are taken as `0` for the check.
pub fn lint_template(spec: &AnalysisTemplateSpec) -> Vec<String> {
    lint_metrics(&spec.metrics, &spec.args)
}

/// [`lint_template`] for metrics and the arguments they may use.
pub fn lint_metrics(metrics: &[Metric], args: &[Argument]) -> Vec<String> {
    let values: BTreeMap<String, String> = args
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.value.clone().unwrap_or_else(|| "0".into()),
            )
        })
        .collect();
    let mut problems = Vec::new();
    let mut substituted = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        match substitute_metric(m, &values) {
            Ok(m) => substituted.push(m),
            Err(e) => {
                problems.push(format!("metrics[{i}]: {e}"));
                substituted.push(m.clone());
            }
        }
    }
    // validate() stops at the first problem; check metric by metric to report them all.
    for (i, m) in substituted.iter().enumerate() {
        if let Err(e) = validate(std::slice::from_ref(m)) {
            problems.push(e.replacen("metrics[0]", &format!("metrics[{i}]"), 1));
        }
    }
    for (i, m) in metrics.iter().enumerate() {
        if metrics[..i].iter().any(|o| o.name == m.name) {
            problems.push(format!(
                "metrics[{i}].name: {:?} is used by two metrics",
                m.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> AnalysisTemplateSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn reports_each_problem_with_its_field() {
        let t = template(
            r#"
args: [{name: threshold}]
metrics:
- name: ok
  interval: 10s
  successCondition: result >= {{args.threshold}}
  provider: {prometheus: {address: http://p, query: up}}
- name: bad-cel
  successCondition: "result >="
  provider: {prometheus: {address: http://p, query: up}}
- name: bad-arg
  provider: {web: {url: "http://x/{{args.nope}}"}}
- name: ok
  provider: {web: {url: http://x}}
"#,
        );
        let problems = lint_template(&t);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("metrics[2]") && problems[0].contains("nope"));
        assert!(problems[1].starts_with("metrics[1] (bad-cel): successCondition"));
        assert!(problems[2].contains("used by two metrics"));
    }

    #[test]
    fn a_good_template_has_no_problems() {
        let t = template(
            r#"
metrics:
- name: rate
  successCondition: default(result, 1) > 0.9
  failureCondition: isNaN(result)
  provider: {prometheus: {address: http://p, query: up, timeout: 5s}}
"#,
        );
        assert!(lint_template(&t).is_empty());
    }
}

/// The ready-made templates in `analysis-templates/`: each parses, lints clean, and judges sample
/// results as it says.
#[cfg(test)]
mod ready_made {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::analysis::args::substitute_metric;
    use crate::analysis::condition::Conditions;
    use crate::analysis::value::MetricValue;
    use crate::api::ClusterAnalysisTemplate;
    use crate::api::analysis::AnalysisPhase::{self, *};
    use crate::api::analysis::AnalysisTemplateSpec;

    fn templates() -> Vec<(String, ClusterAnalysisTemplate)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/analysis-templates");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let t = ClusterAnalysisTemplate::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path.display().to_string(), t));
            }
        }
        out
    }

    #[test]
    fn every_ready_made_template_parses_lints_and_judges_samples() {
        let all = templates();
        let names: Vec<String> = all
            .iter()
            .map(|(_, t)| t.metadata.name.clone().unwrap())
            .collect();
        for provider in ["istio", "linkerd", "ingress-nginx", "envoy-gateway"] {
            for kind in ["success-rate", "latency-p99"] {
                let want = format!("{provider}-{kind}");
                assert!(names.contains(&want), "missing {want} in {names:?}");
            }
        }
        for (file, t) in all {
            let name = t.metadata.name.clone().unwrap();
            let spec: AnalysisTemplateSpec = t.spec.clone().into();
            let problems = super::lint_template(&spec);
            assert!(problems.is_empty(), "{file} {name}: {problems:?}");
            let args: BTreeMap<String, String> = spec
                .args
                .iter()
                .map(|a| {
                    let v = a.value.clone().unwrap_or_else(|| "sample".into());
                    (a.name.clone(), v)
                })
                .collect();
            let samples: &[(f64, AnalysisPhase)] = if name.ends_with("success-rate") {
                &[
                    (0.999, Successful),
                    (0.99, Successful),
                    (0.5, Failed),
                    (f64::NAN, Inconclusive),
                ]
            } else {
                &[
                    (120.0, Successful),
                    (2000.0, Failed),
                    (f64::NAN, Inconclusive),
                ]
            };
            for m in &spec.metrics {
                let m = substitute_metric(m, &args).unwrap();
                let query = &m.provider.prometheus.as_ref().unwrap().query;
                assert!(!query.contains("{{"), "{name}: {query}");
                let c = Conditions::compile(
                    m.success_condition.as_deref(),
                    m.failure_condition.as_deref(),
                )
                .unwrap();
                for (value, want) in samples {
                    let got = c.judge(&MetricValue::Number(*value)).unwrap();
                    assert_eq!(got, *want, "{name}: result {value}");
                }
            }
        }
    }
}
