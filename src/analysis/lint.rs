//! Offline checks of a template, for `kubectl fledge lint` and for the Rollout's `InvalidSpec`:
//! every `{{args.NAME}}` names a declared argument, and with the arguments filled in, what
//! [`run::problems`] checks when the run starts (durations, providers, conditions that compile).

use std::collections::btree_map::Entry;

use super::args::{self, ArgValue, Values};
use super::run;
use crate::api::SpecProblem;
use crate::api::analysis::{AnalysisTemplateSpec, Argument, Metric};

/// Every problem of a template, each at a path relative to its spec, like
/// `metrics[0].successCondition`. Empty when the template is fine. Arguments without a value
/// (the Rollout gives it) are taken as a stand-in valid where each stands.
pub fn lint_template(spec: &AnalysisTemplateSpec) -> Vec<SpecProblem> {
    lint_metrics(&spec.metrics, &spec.args)
}

/// [`lint_template`] for metrics and the arguments they may use.
pub fn lint_metrics(metrics: &[Metric], args: &[Argument]) -> Vec<SpecProblem> {
    let values = values(args);
    run::each_metric(metrics, |m| lint_metric(m, &values))
}

/// Compiles a condition as a template has it, each `{{args.NAME}}` taken as
/// [`args::PLACEHOLDER`].
pub fn compile_condition(source: &str) -> Result<(), String> {
    super::condition::Condition::compile(&args::with_placeholders(source)).map(drop)
}

/// The values a lint substitutes: each argument's own, else one not known yet (a stand-in valid
/// where it stands); a Secret's is never known here, but is known to be a Secret's.
pub fn values(args: &[Argument]) -> Values {
    args.iter()
        .map(|a| {
            let secret = a
                .value_from
                .as_ref()
                .is_some_and(|f| f.secret_key_ref.is_some());
            let value = match &a.value {
                Some(v) => ArgValue::text(v.clone()),
                None => ArgValue::unknown(secret),
            };
            (a.name.clone(), value)
        })
        .collect()
}

/// The problems of one metric with `values` filled in, at paths relative to the metric.
pub fn lint_metric(metric: &Metric, values: &Values) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let mut values = values.clone();
    for (path, name) in args::references(metric) {
        // Said once; the rest of the metric is checked as if it were declared.
        if let Entry::Vacant(undeclared) = values.entry(name) {
            let name = undeclared.key();
            problems.push(SpecProblem {
                path,
                message: format!("uses {{{{args.{name}}}}} but no argument {name:?} is declared"),
            });
            undeclared.insert(ArgValue::unknown(false));
        }
    }
    match args::substitute_metric(metric, &values) {
        Ok(m) => problems.extend(run::metric_problems(&m)),
        Err(p) => problems.push(p),
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
        let problems: Vec<String> = lint_template(&t).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "metrics[1].successCondition: \"result >=\" is not a valid CEL expression: \
                 1:10: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', \
                 '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, \
                 IDENTIFIER}",
                "metrics[2].provider.web.url: uses {{args.nope}} but no argument \"nope\" is declared",
                "metrics[3].name: \"ok\" is used by two metrics",
            ]
        );
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
            let args = super::values(&spec.args);
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
