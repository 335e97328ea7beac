//! Lint of `AnalysisTemplate` / `ClusterAnalysisTemplate`, read as plain JSON: required fields,
//! one known provider per metric, limits, then each metric through the controller's own check
//! ([`crate::analysis::lint::lint_metric`]): arguments declared and filled in, durations, the CEL
//! conditions. So lint and a run starting from the template agree exactly.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::lint::Finding;
use crate::analysis::lint::{lint_metric, values};
use crate::analysis::metric_rules;
use crate::api::analysis::{Argument, DryRun, MeasurementRetention, Metric};

/// Providers fledge measures with.
pub const PROVIDERS: [&str; 8] = [
    "prometheus",
    "web",
    "job",
    "graphite",
    "influxdb",
    "datadog",
    "newRelic",
    "cloudWatch",
];

/// Every problem of one template.
pub fn template(value: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    if value["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        out.push(Finding::error("metadata.name", "required field is missing"));
    }
    let spec = &value["spec"];
    if !spec.is_object() {
        out.push(Finding::error("spec", "required field is missing"));
        return out;
    }
    let values = values(&declared_args(spec, &mut out));
    let metrics = match spec["metrics"].as_array() {
        Some(m) if !m.is_empty() => m,
        _ => {
            out.push(Finding::error(
                "spec.metrics",
                "at least one metric is required",
            ));
            return out;
        }
    };
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.iter().enumerate() {
        let path = format!("spec.metrics[{i}]");
        match metric["name"].as_str() {
            Some(n) if !n.is_empty() => {
                if !names.insert(n.to_string()) {
                    out.push(Finding::error(
                        format!("{path}.name"),
                        format!("{n:?} is used by another metric"),
                    ));
                }
            }
            _ => out.push(Finding::error(
                format!("{path}.name"),
                "required field is missing",
            )),
        }
        self::metric(metric, &path, &mut out);
        // What a run checks when it starts. A metric that does not even read (a field of the
        // wrong type) has had its problems named by the schema.
        if let Ok(m) = serde_json::from_value::<Metric>(metric.clone()) {
            for p in lint_metric(&m, &values) {
                let at = format!("{path}.{}", p.path);
                if !out.iter().any(|f| f.path == at) {
                    out.push(Finding::error(at, p.message));
                }
            }
        }
    }
    rules(spec, metrics, &mut out);
    out
}

/// The template's `dryRun` and `measurementRetention` rules: an invalid expression is an error;
/// one naming none of the template's metrics a warning (it may name a metric of another template
/// the same analysis combines, but most likely it is a typo that leaves a metric deciding runs).
fn rules(spec: &Value, metrics: &[Value], out: &mut Vec<Finding>) {
    let (Ok(dry_run), Ok(retention), Ok(metrics)) = (
        serde_json::from_value::<Vec<DryRun>>(spec.get("dryRun").cloned().unwrap_or(json!([]))),
        serde_json::from_value::<Vec<MeasurementRetention>>(
            spec.get("measurementRetention")
                .cloned()
                .unwrap_or(json!([])),
        ),
        metrics
            .iter()
            .map(|m| serde_json::from_value::<Metric>(m.clone()))
            .collect::<Result<Vec<_>, _>>(),
    ) else {
        // The schema check names what does not read.
        return;
    };
    let invalid = metric_rules::pattern_problems(&dry_run, &retention);
    for p in metric_rules::problems(&dry_run, &retention, &metrics) {
        let path = format!("spec.{}", p.path);
        out.push(match invalid.contains(&p) {
            true => Finding::error(path, p.message),
            false => Finding::warning(path, p.message),
        });
    }
}

/// The arguments in `spec.args` (name and value), checking each is named once.
fn declared_args(spec: &Value, out: &mut Vec<Finding>) -> Vec<Argument> {
    let mut args: Vec<Argument> = Vec::new();
    for (i, arg) in spec["args"].as_array().into_iter().flatten().enumerate() {
        match arg["name"].as_str() {
            Some(n) if !n.is_empty() => {
                if args.iter().any(|a| a.name == n) {
                    out.push(Finding::error(
                        format!("spec.args[{i}].name"),
                        format!("{n:?} is declared twice"),
                    ));
                } else {
                    // A Secret's value may not be written into a Job: lint says so too.
                    args.push(Argument {
                        name: n.to_string(),
                        value: arg["value"].as_str().map(String::from),
                        value_from: serde_json::from_value(arg["valueFrom"].clone()).ok(),
                    });
                }
            }
            _ => out.push(Finding::error(
                format!("spec.args[{i}].name"),
                "required field is missing",
            )),
        }
    }
    args
}

const METRIC_FIELDS: [&str; 11] = [
    "name",
    "provider",
    "interval",
    "initialDelay",
    "count",
    "successCondition",
    "failureCondition",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "consecutiveSuccessLimit",
];

fn metric(metric: &Value, path: &str, out: &mut Vec<Finding>) {
    if let Some(map) = metric.as_object() {
        for key in map.keys().filter(|k| !METRIC_FIELDS.contains(&k.as_str())) {
            out.push(Finding::error(format!("{path}.{key}"), "unknown field"));
        }
    }
    provider(&metric["provider"], &format!("{path}.provider"), out);
    for field in ["interval", "initialDelay"] {
        match &metric[field] {
            Value::Null => {}
            Value::String(_) => {}
            other => out.push(Finding::error(
                format!("{path}.{field}"),
                format!("must be a duration like 30s or 5m, not {other}"),
            )),
        }
    }
    for field in [
        "count",
        "failureLimit",
        "inconclusiveLimit",
        "consecutiveErrorLimit",
        "consecutiveSuccessLimit",
    ] {
        match &metric[field] {
            Value::Null => {}
            Value::Number(n) if n.as_u64().is_some() => {}
            // An argument filled in when the run is created (checked with its value below), or
            // a number written as a string.
            Value::String(s) if s.contains("{{args.") || s.trim().parse::<u32>().is_ok() => {}
            other => out.push(Finding::error(
                format!("{path}.{field}"),
                format!("must be a whole number of at least 0, not {other}"),
            )),
        }
    }
    // A Job decides by finishing; a measured value needs a condition to be anything but a success.
    if metric["successCondition"].is_null()
        && metric["failureCondition"].is_null()
        && metric["provider"]["job"].is_null()
    {
        out.push(Finding::warning(
            path,
            "no successCondition or failureCondition: every value measured is a success, so \
             only provider errors can fail the analysis",
        ));
    }
    for field in ["successCondition", "failureCondition"] {
        match &metric[field] {
            Value::Null => {}
            Value::String(_) => {}
            other => out.push(Finding::error(
                format!("{path}.{field}"),
                format!("must be a CEL expression string, not {other}"),
            )),
        }
    }
}

fn provider(provider: &Value, path: &str, out: &mut Vec<Finding>) {
    let Some(map) = provider.as_object() else {
        out.push(Finding::error(path, "required field is missing"));
        return;
    };
    let keys: Vec<&String> = map.keys().collect();
    // Unknown keys get their own message below; counting them here too would say "exactly one"
    // of a metric that has exactly one.
    let known = keys
        .iter()
        .filter(|k| PROVIDERS.contains(&k.as_str()))
        .count();
    if known != 1 {
        out.push(Finding::error(
            path,
            format!("set exactly one provider of {}", PROVIDERS.join(", ")),
        ));
    }
    for key in keys {
        let p = &map[key];
        let here = format!("{path}.{key}");
        match key.as_str() {
            "prometheus" => {
                require_string(p, "query", &here, out);
                url_field(p, "address", &here, out);
            }
            "web" => {
                require_string(p, "url", &here, out);
                if let Some(m) = p["method"].as_str()
                    && !["GET", "POST", "PUT"].contains(&m)
                {
                    out.push(Finding::error(
                        format!("{here}.method"),
                        format!("{m:?} is not one of GET, POST, PUT"),
                    ));
                }
            }
            "graphite" | "influxdb" => {
                require_string(p, "query", &here, out);
                require_string(p, "address", &here, out);
                url_field(p, "address", &here, out);
            }
            "datadog" => {
                if p["query"].as_str().is_none() && !p["queries"].is_object() {
                    out.push(Finding::error(
                        format!("{here}.query"),
                        "set query, or queries with apiVersion v2",
                    ));
                }
                if !p["secretRef"]["name"].is_string() {
                    out.push(Finding::error(
                        format!("{here}.secretRef.name"),
                        "required field is missing: the Secret with keys api-key and app-key",
                    ));
                }
                url_field(p, "address", &here, out);
            }
            "newRelic" => {
                require_string(p, "query", &here, out);
                if !p["secretRef"]["name"].is_string() {
                    out.push(Finding::error(
                        format!("{here}.secretRef.name"),
                        "required field is missing: the Secret with key personal-api-key",
                    ));
                }
                url_field(p, "address", &here, out);
            }
            "cloudWatch" => {
                match p["metricDataQueries"].as_array() {
                    Some(q) if !q.is_empty() => {
                        for (i, q) in q.iter().enumerate() {
                            if q["metricStat"].is_object() == q["expression"].is_string() {
                                out.push(Finding::error(
                                    format!("{here}.metricDataQueries[{i}]"),
                                    "set exactly one of metricStat and expression",
                                ));
                            }
                        }
                    }
                    _ => out.push(Finding::error(
                        format!("{here}.metricDataQueries"),
                        "at least one query is required",
                    )),
                }
                url_field(p, "address", &here, out);
            }
            "job" => {
                if !p["spec"].is_object() {
                    out.push(Finding::error(
                        format!("{here}.spec"),
                        "required field is missing",
                    ));
                }
            }
            other => out.push(Finding::error(
                here,
                format!(
                    "provider {other:?} is not supported (fledge measures with {})",
                    PROVIDERS.join(", ")
                ),
            )),
        }
    }
}

fn url_field(value: &Value, field: &str, path: &str, out: &mut Vec<Finding>) {
    if let Some(a) = value[field].as_str()
        && !a.contains("{{")
        && !(a.starts_with("http://") || a.starts_with("https://"))
    {
        out.push(Finding::error(
            format!("{path}.{field}"),
            format!("{a:?} must be an http:// or https:// URL"),
        ));
    }
}

fn require_string(value: &Value, field: &str, path: &str, out: &mut Vec<Finding>) {
    if value[field].as_str().is_none_or(|s| s.trim().is_empty()) {
        out.push(Finding::error(
            format!("{path}.{field}"),
            "required field is missing",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(provider: Value) -> Vec<String> {
        let mut out = Vec::new();
        super::provider(&provider, "p", &mut out);
        out.into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn query_providers_need_their_fields() {
        assert!(
            messages(json!({"graphite": {"address": "http://g:8080", "query": "a.b"}})).is_empty()
        );
        let influx = messages(json!({"influxdb": {"address": "influx:8086"}}));
        assert!(
            influx.iter().any(|m| m == "required field is missing"),
            "{influx:?}"
        );
        assert!(influx.iter().any(|m| m.contains("http://")), "{influx:?}");
        let dd = messages(json!({"datadog": {"apiVersion": "v2"}}));
        assert!(dd.iter().any(|m| m.contains("api-key")), "{dd:?}");
        assert!(dd.iter().any(|m| m.contains("queries")), "{dd:?}");
        let nr = messages(json!({"newRelic": {"query": "FROM Transaction SELECT count(*)"}}));
        assert!(nr.iter().any(|m| m.contains("personal-api-key")), "{nr:?}");
        let cw = messages(json!({"cloudWatch": {"metricDataQueries": [{"id": "a"}]}}));
        assert!(cw.iter().any(|m| m.contains("metricStat")), "{cw:?}");
        assert!(
            messages(json!({"cloudWatch": {"metricDataQueries": [
                {"id": "a", "expression": "SELECT AVG(CPUUtilization) FROM \"AWS/EC2\""}]}}))
            .is_empty()
        );
    }

    #[test]
    fn an_unknown_provider_beside_a_known_one_is_one_message() {
        let both = messages(
            json!({"prometheus": {"address": "http://p:9090", "query": "up"},
                                   "wavefront": {"query": "ts(x)"}}),
        );
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(
            both[0].contains("\"wavefront\" is not supported"),
            "{both:?}"
        );
        let none = messages(json!({"wavefront": {"query": "ts(x)"}}));
        assert!(
            none.iter()
                .any(|m| m.starts_with("set exactly one provider")),
            "{none:?}"
        );
        let two = messages(json!({"web": {"url": "http://w"}, "job": {"spec": {}}}));
        assert!(
            two.iter()
                .any(|m| m.starts_with("set exactly one provider")),
            "{two:?}"
        );
    }
}
