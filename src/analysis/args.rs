//! Arguments: merging a Rollout's values into its templates' arguments, reading fields of the
//! Rollout, and replacing `{{args.NAME}}` in metrics. Pure.

use std::collections::BTreeMap;

use super::quote;
use crate::api::SpecProblem;
use crate::api::analysis::{Argument, Metric};

/// What a lint puts in for an argument that has no value yet (the Rollout gives it): a number,
/// so a condition like `result < {{args.max}}` compiles as it will with the real value.
pub const PLACEHOLDER: &str = "0";

/// Every `{{args.NAME}}` (spaces inside the braces allowed) in `text`: where it stands and NAME.
/// Other `{{ ... }}` (a Go template in a Job, say) are not ours and are left out.
fn placeholders(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find("{{").map(|s| at + s) {
        let Some(end) = text[start + 2..].find("}}").map(|e| start + 2 + e) else {
            break;
        };
        if let Some(name) = text[start + 2..end].trim().strip_prefix("args.") {
            out.push((start..end + 2, name));
        }
        at = end + 2;
    }
    out
}

/// An argument's value as substitution sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArgValue {
    /// The text; `None` when not known yet (a lint before the Rollout gives it, a Secret not
    /// read): a stand-in valid where it stands is put in.
    pub text: Option<String>,
    /// From a Secret: never written into a Job, and redacted wherever a run shows text.
    pub secret: bool,
}

impl ArgValue {
    pub fn text(v: impl Into<String>) -> ArgValue {
        ArgValue {
            text: Some(v.into()),
            secret: false,
        }
    }

    pub fn secret(v: impl Into<String>) -> ArgValue {
        ArgValue {
            text: Some(v.into()),
            secret: true,
        }
    }

    pub fn unknown(secret: bool) -> ArgValue {
        ArgValue { text: None, secret }
    }
}

/// Argument values by name.
pub type Values = BTreeMap<String, ArgValue>;

/// Replaces every `{{args.NAME}}` in `text`, the string at `path` of a metric, each value
/// written as its spot needs ([`quote::write`]): the value can never change the structure of
/// the condition, query, URL or body it lands in. An unknown name, or a value that cannot stand
/// where it is, is an error naming the argument (never showing its value). The text each
/// Secret's value became is added to `secrets`, for redaction.
pub fn substitute_field(
    path: &str,
    text: &str,
    args: &Values,
    secrets: &mut Vec<String>,
) -> Result<String, String> {
    let found = placeholders(text);
    let ranges: Vec<_> = found.iter().map(|(r, _)| r.clone()).collect();
    let spots = quote::spots(quote::Field::of(path), text, &ranges);
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for ((range, name), spot) in found.into_iter().zip(spots) {
        let arg = args
            .get(name)
            .ok_or_else(|| format!("{{{{args.{name}}}}} names no argument with a value"))?;
        let written = quote::write(spot, arg.text.as_deref(), arg.secret)
            .map_err(|why| format!("argument {name:?} {why}"))?;
        if arg.secret && arg.text.is_some() {
            secrets.push(written.clone());
        }
        out.push_str(&text[done..range.start]);
        out.push_str(&written);
        done = range.end;
    }
    out.push_str(&text[done..]);
    Ok(out)
}

/// `text` with every `{{args.NAME}}` as [`PLACEHOLDER`], whatever NAME: a field as lint reads it
/// before any argument has a value.
pub fn with_placeholders(text: &str) -> String {
    replace(text, |_| {
        Ok::<_, std::convert::Infallible>(PLACEHOLDER.into())
    })
    .unwrap_or_else(|never| match never {})
}

fn replace<E>(text: &str, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (range, name) in placeholders(text) {
        out.push_str(&text[done..range.start]);
        out.push_str(&value(name)?);
        done = range.end;
    }
    out.push_str(&text[done..]);
    Ok(out)
}

/// Replaces `{{args.NAME}}` in every string of a metric: provider fields, conditions, the Job.
/// A problem's path is relative to the metric, like `provider.prometheus.query`.
pub fn substitute_metric(metric: &Metric, args: &Values) -> Result<Metric, SpecProblem> {
    substitute_metric_with(metric, args, &mut Vec::new())
}

/// [`substitute_metric`], adding to `secrets` the text each Secret's value became.
pub fn substitute_metric_with(
    metric: &Metric,
    args: &Values,
    secrets: &mut Vec<String>,
) -> Result<Metric, SpecProblem> {
    let problem = |path: &str, message: String| SpecProblem {
        path: path.to_string(),
        message,
    };
    let json = serde_json::to_value(metric).map_err(|e| problem("", e.to_string()))?;
    let json = map_strings(json, "", &mut |path, s| {
        substitute_field(path, &s, args, secrets).map_err(|e| problem(path, e))
    })?;
    serde_json::from_value(json).map_err(|e| problem("", e.to_string()))
}

/// Every `{{args.NAME}}` a metric uses: the path of the string it is in, and NAME.
pub fn references(metric: &Metric) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(json) = serde_json::to_value(metric) {
        let _ = map_strings(json, "", &mut |path, s| {
            for (_, name) in placeholders(&s) {
                out.push((path.to_string(), name.to_string()));
            }
            Ok::<_, ()>(s)
        });
    }
    out
}

/// `value` with `f(path, string)` in place of each string; paths are like `provider.web.url`.
fn map_strings<E>(
    value: serde_json::Value,
    path: &str,
    f: &mut impl FnMut(&str, String) -> Result<String, E>,
) -> Result<serde_json::Value, E> {
    use serde_json::Value as J;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    Ok(match value {
        J::String(s) => J::String(f(path, s)?),
        J::Array(items) => J::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| map_strings(v, &format!("{path}[{i}]"), f))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k.clone(), map_strings(v, &join(&k), f)?)))
                .collect::<Result<_, E>>()?,
        ),
        other => other,
    })
}

/// Merges a Rollout's `args` into its templates' arguments: the Rollout's value wins; an
/// argument the templates do not declare is an error (a typo would otherwise go unnoticed).
pub fn merge(template_args: &[Argument], given: &[Argument]) -> Result<Vec<Argument>, String> {
    let mut merged: Vec<Argument> = Vec::new();
    for a in template_args {
        match merged.iter_mut().find(|m| m.name == a.name) {
            // Two templates declaring one argument share it; a value beats none.
            Some(m) if m.value.is_none() && m.value_from.is_none() => *m = a.clone(),
            Some(_) => {}
            None => merged.push(a.clone()),
        }
    }
    for g in given {
        match merged.iter_mut().find(|m| m.name == g.name) {
            Some(m) => *m = g.clone(),
            None => {
                return Err(format!(
                    "argument {:?} is not declared by the templates",
                    g.name
                ));
            }
        }
    }
    Ok(merged)
}

/// Reads a field of `object` (the Rollout as JSON) by a path like `metadata.name` or
/// `metadata.labels['app.kubernetes.io/name']`. A string is returned as is, anything else as JSON.
pub fn field(object: &serde_json::Value, path: &str) -> Result<String, String> {
    let mut current = object;
    let mut rest = path.trim();
    let not_found = || format!("fieldRef {path:?}: no such field");
    while !rest.is_empty() {
        let key: String;
        if let Some(r) = rest.strip_prefix("['") {
            let end = r
                .find("']")
                .ok_or_else(|| format!("fieldRef {path:?}: unclosed ['"))?;
            key = r[..end].to_string();
            rest = &r[end + 2..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            key = r[..end].to_string();
            if key.is_empty() {
                return Err(format!("fieldRef {path:?}: empty field name"));
            }
            rest = &r[end..];
        }
        current = current.get(&key).ok_or_else(not_found)?;
    }
    Ok(match current {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ArgValue::text(*v)))
            .collect()
    }

    fn substitute(text: &str, a: &Values) -> Result<String, String> {
        substitute_field("provider.prometheus.query", text, a, &mut Vec::new())
    }

    #[test]
    fn substitutes_known_and_keeps_foreign_templates() {
        let a = args(&[("svc", "web"), ("ns", "prod")]);
        assert_eq!(
            substitute("rate(x{svc=\"{{args.svc}}\",ns=\"{{ args.ns }}\"}[1m])", &a).unwrap(),
            "rate(x{svc=\"web\",ns=\"prod\"}[1m])"
        );
        assert_eq!(
            substitute_field(
                "provider.job.spec",
                "{{ .Values.x }} {{",
                &a,
                &mut Vec::new()
            )
            .unwrap(),
            "{{ .Values.x }} {{"
        );
        assert_eq!(
            with_placeholders("result < {{args.max}} {{ .Values.x }}"),
            "result < 0 {{ .Values.x }}"
        );
        let err = substitute("{{args.nope}}", &a).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    fn metric(yaml: &str) -> Metric {
        serde_yaml::from_str(yaml).unwrap()
    }

    /// An annotation value holding `"}` closes the label matcher it lands in and adds
    /// `or vector(1)`, which makes the query always answer 1: escaped, it stays a label value.
    #[test]
    fn a_hostile_value_cannot_rewrite_a_promql_query() {
        let m = metric(
            r#"
name: rate
provider:
  prometheus:
    address: http://prometheus:9090
    query: sum(rate(http_requests_total{app="{{args.app}}"}[{{args.window}}]))
"#,
        );
        let hostile = r#"web"} or vector(1) or x{a=""#;
        let mut a = args(&[("app", hostile), ("window", "5m")]);
        let got = substitute_metric(&m, &a).unwrap();
        assert_eq!(
            got.provider.prometheus.unwrap().query,
            r#"sum(rate(http_requests_total{app="web\"} or vector(1) or x{a=\""}[5m]))"#
        );
        a.insert("window".into(), ArgValue::text("5m])) or vector(1"));
        let err = substitute_metric(&m, &a).unwrap_err();
        assert_eq!(err.path, "provider.prometheus.query");
        assert!(
            err.message
                .starts_with("argument \"window\" stands outside quotes")
                && !err.message.contains("vector"),
            "{err}"
        );
    }

    /// `result >= {{args.threshold}}` with `0 || true` was `result >= 0 || true`: always true.
    /// Now the value is the string "0 || true", which compares with no number: an error, never
    /// a pass.
    #[test]
    fn a_hostile_value_cannot_turn_a_condition_into_true() {
        use crate::analysis::condition::Conditions;
        use crate::analysis::value::MetricValue;
        let m = metric(
            r#"
name: rate
successCondition: result >= {{args.threshold}}
failureCondition: result < {{args.threshold}} || result.matches('{{args.bad}}')
provider: {web: {url: "http://x"}}
"#,
        );
        let a = args(&[("threshold", "0 || true"), ("bad", "') || true || ('")]);
        let got = substitute_metric(&m, &a).unwrap();
        assert_eq!(
            got.success_condition.as_deref(),
            Some(r#"result >= "0 || true""#)
        );
        let c = Conditions::compile(
            got.success_condition.as_deref(),
            got.failure_condition.as_deref(),
        )
        .unwrap();
        assert!(c.judge(&MetricValue::Number(0.5)).is_err());
        let fine = substitute_metric(&m, &args(&[("threshold", "0.99"), ("bad", "x")])).unwrap();
        assert_eq!(fine.success_condition.as_deref(), Some("result >= 0.99"));
    }

    #[test]
    fn hostile_values_in_urls_bodies_and_jobs() {
        let m = metric(
            r#"
name: hook
provider:
  web:
    url: "{{args.base}}/api/{{args.svc}}?ns={{args.ns}}"
    method: POST
    body: '{"service": "{{args.svc}}", "limit": {{args.limit}}}'
    headers: [{key: X-Tenant, value: "{{args.tenant}}"}]
"#,
        );
        let a = args(&[
            ("base", "http://checks.example"),
            ("svc", "a/../../admin?x=1#"),
            ("ns", "p&debug=true"),
            ("limit", "1, \"admin\": true"),
            ("tenant", "t1"),
        ]);
        let web = substitute_metric(&m, &a).unwrap().provider.web.unwrap();
        assert_eq!(
            web.url,
            "http://checks.example/api/a%2F..%2F..%2Fadmin%3Fx%3D1%23?ns=p%26debug%3Dtrue"
        );
        let body: serde_json::Value = serde_json::from_str(web.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"service": "a/../../admin?x=1#", "limit": "1, \"admin\": true"})
        );
        let mut bad = a.clone();
        bad.insert("tenant".into(), ArgValue::text("t\r\nAuthorization: x"));
        assert!(
            substitute_metric(&m, &bad)
                .unwrap_err()
                .message
                .contains("\"tenant\"")
        );

        let job = metric(
            r#"
name: smoke
provider: {job: {spec: {template: {spec: {containers: [{name: c, image: i, args: ["{{args.token}}"]}]}}}}}
"#,
        );
        let secret: Values = [("token".to_string(), ArgValue::secret("s3cret"))].into();
        let err = substitute_metric(&job, &secret).unwrap_err();
        assert!(
            err.message.contains("Secret") && !err.message.contains("s3cret"),
            "{err}"
        );
        let unknown: Values = [("token".to_string(), ArgValue::unknown(true))].into();
        assert!(
            substitute_metric(&job, &unknown).is_err(),
            "lint says it too"
        );
    }

    #[test]
    fn a_secret_records_what_it_became() {
        let m = metric(
            r#"
name: q
provider: {prometheus: {address: "http://p", query: 'up{token="{{args.t}}"}'}}
"#,
        );
        let a: Values = [("t".to_string(), ArgValue::secret("a\"b"))].into();
        let mut secrets = Vec::new();
        substitute_metric_with(&m, &a, &mut secrets).unwrap();
        assert_eq!(secrets, ["a\\\"b"]);
    }

    /// `count`, the limits, `interval` and `initialDelay` from arguments, as Argo Rollouts
    /// allows: resolved when the run is created, and a value that is not a number or a duration
    /// is a problem naming the field (without the value, which may be a Secret's).
    #[test]
    fn whole_number_and_duration_fields_take_arguments() {
        let m = metric(
            r#"
name: rate
count: "{{args.count}}"
failureLimit: "{{ args.failures }}"
inconclusiveLimit: 2
consecutiveErrorLimit: "{{args.errors}}"
interval: "{{args.every}}"
initialDelay: "{{args.wait}}"
provider: {web: {url: "http://x"}}
"#,
        );
        let good = args(&[
            ("count", "3"),
            ("failures", "1"),
            ("errors", "5"),
            ("every", "10s"),
            ("wait", "1m"),
        ]);
        let got = substitute_metric(&m, &good).unwrap();
        let int = |v: &Option<crate::api::analysis::IntOrArg>| v.as_ref().and_then(|v| v.value());
        assert_eq!(int(&got.count), Some(3));
        assert_eq!(int(&got.failure_limit), Some(1));
        assert_eq!(int(&got.inconclusive_limit), Some(2));
        assert_eq!(int(&got.consecutive_error_limit), Some(5));
        assert_eq!(got.interval.as_deref(), Some("10s"));
        assert_eq!(got.initial_delay.as_deref(), Some("1m"));
        assert!(crate::analysis::run::metric_problems(&got).is_empty());

        for (arg, value, field) in [
            ("count", "three", "count"),
            ("count", "-1", "count"),
            ("failures", "1.5", "failureLimit"),
            ("errors", "99999999999", "consecutiveErrorLimit"),
            ("every", "soon", "interval"),
            ("wait", "5 minutes", "initialDelay"),
        ] {
            let mut bad = good.clone();
            bad.insert(arg.into(), ArgValue::secret(value));
            let err = substitute_metric(&m, &bad).unwrap_err();
            assert_eq!(err.path, field, "{arg}={value}: {err}");
            assert!(
                err.message.contains(&format!("{arg:?}")) && !err.message.contains(value),
                "{err}"
            );
        }
    }

    /// Before the Rollout gives the values (a template linted on its own), a stand-in valid in
    /// each field is used: `count` with no `interval` is not taken for "measure forever".
    #[test]
    fn fields_from_arguments_without_values_lint_clean() {
        let m = metric(
            r#"
name: rate
count: "{{args.count}}"
initialDelay: "{{args.wait}}"
successCondition: result == 1
provider: {web: {url: "http://x"}}
"#,
        );
        let unknown: Values = [
            ("count".to_string(), ArgValue::unknown(false)),
            ("wait".to_string(), ArgValue::unknown(false)),
        ]
        .into();
        assert!(crate::analysis::lint::lint_metric(&m, &unknown).is_empty());
        assert!(crate::analysis::run::endless_metrics(std::slice::from_ref(&m), &[]).is_empty());
        // The run that a Rollout creates with count 0 and no interval is refused, naming count.
        let zero = substitute_metric(&m, &args(&[("count", "0"), ("wait", "0s")])).unwrap();
        let problems = crate::analysis::run::metric_problems(&zero);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "count");
    }

    #[test]
    fn merges_values_and_rejects_undeclared() {
        let t = vec![
            Argument {
                name: "svc".into(),
                ..Default::default()
            },
            Argument {
                name: "threshold".into(),
                value: Some("0.99".into()),
                ..Default::default()
            },
        ];
        let given = vec![Argument {
            name: "svc".into(),
            value: Some("web".into()),
            ..Default::default()
        }];
        let m = merge(&t, &given).unwrap();
        assert_eq!(m[0].value.as_deref(), Some("web"));
        assert_eq!(m[1].value.as_deref(), Some("0.99"));
        let typo = vec![Argument {
            name: "sevice".into(),
            value: Some("x".into()),
            ..Default::default()
        }];
        assert!(merge(&t, &typo).unwrap_err().contains("sevice"));
    }

    #[test]
    fn reads_fields() {
        let o = json!({"metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "shop"}}, "spec": {"replicas": 3}});
        assert_eq!(field(&o, "metadata.name").unwrap(), "web");
        assert_eq!(
            field(&o, "metadata.labels['app.kubernetes.io/name']").unwrap(),
            "shop"
        );
        assert_eq!(field(&o, "spec.replicas").unwrap(), "3");
        assert!(field(&o, "metadata.nope").is_err());
        assert!(field(&o, "metadata.labels['x").is_err());
    }
}
