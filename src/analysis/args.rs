//! Arguments: merging a Rollout's values into its templates' arguments, reading fields of the
//! Rollout, and replacing `{{args.NAME}}` in metrics. Pure.

use std::collections::BTreeMap;

use crate::api::analysis::{Argument, Metric};

/// Replaces every `{{args.NAME}}` (spaces inside the braces allowed) in `text`. An unknown name
/// is an error naming it.
pub fn substitute(text: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = after[..end].trim();
        match inner.strip_prefix("args.") {
            Some(name) => {
                let value = args
                    .get(name)
                    .ok_or_else(|| format!("{{{{args.{name}}}}} names no argument with a value"))?;
                out.push_str(value);
            }
            // Not ours (a Go template in a Job, say): leave it as written.
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces `{{args.NAME}}` in every string of a metric: provider fields, conditions, the Job.
pub fn substitute_metric(
    metric: &Metric,
    args: &BTreeMap<String, String>,
) -> Result<Metric, String> {
    let json = serde_json::to_value(metric).map_err(|e| e.to_string())?;
    let json = substitute_json(json, args).map_err(|e| format!("metric {:?}: {e}", metric.name))?;
    serde_json::from_value(json).map_err(|e| format!("metric {:?}: {e}", metric.name))
}

fn substitute_json(
    v: serde_json::Value,
    args: &BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => J::String(substitute(&s, args)?),
        J::Array(items) => J::Array(
            items
                .into_iter()
                .map(|i| substitute_json(i, args))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, substitute_json(v, args)?)))
                .collect::<Result<_, String>>()?,
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
