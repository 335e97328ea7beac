//! Arguments: merging a Rollout's values into its templates' arguments, reading fields of the
//! Rollout, and replacing `{{args.NAME}}` in metrics. Pure.

use std::collections::BTreeMap;

use crate::api::analysis::{Argument, Metric};
use crate::rollout::spec_checks::SpecProblem;

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

/// Replaces every `{{args.NAME}}` in `text`. An unknown name is an error naming it.
pub fn substitute(text: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    replace(text, |name| {
        args.get(name)
            .cloned()
            .ok_or_else(|| format!("{{{{args.{name}}}}} names no argument with a value"))
    })
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
pub fn substitute_metric(
    metric: &Metric,
    args: &BTreeMap<String, String>,
) -> Result<Metric, SpecProblem> {
    let problem = |path: &str, message: String| SpecProblem {
        path: path.to_string(),
        message,
    };
    let json = serde_json::to_value(metric).map_err(|e| problem("", e.to_string()))?;
    let json = map_strings(json, "", &mut |path, s| {
        substitute(&s, args).map_err(|e| problem(path, e))
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

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_known_and_keeps_foreign_templates() {
        let a = args(&[("svc", "web"), ("ns", "prod")]);
        assert_eq!(
            substitute("rate(x{svc=\"{{args.svc}}\",ns=\"{{ args.ns }}\"}[1m])", &a).unwrap(),
            "rate(x{svc=\"web\",ns=\"prod\"}[1m])"
        );
        assert_eq!(
            substitute("{{ .Values.x }} {{", &a).unwrap(),
            "{{ .Values.x }} {{"
        );
        assert_eq!(
            with_placeholders("result < {{args.max}} {{ .Values.x }}"),
            "result < 0 {{ .Values.x }}"
        );
        let err = substitute("{{args.nope}}", &a).unwrap_err();
        assert!(err.contains("nope"), "{err}");
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
