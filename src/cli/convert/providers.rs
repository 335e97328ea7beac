//! Argo Rollouts' and Flagger's Graphite, InfluxDB, Datadog, New Relic and CloudWatch metrics ->
//! fledge's. Both peers
//! keep addresses and keys in a Secret of the controller's namespace; fledge reads keys from a
//! Secret of the run's namespace and takes addresses in the template, so what lived in the
//! Secret is named in a note.

use serde_json::{Value, json};

use super::{Converted, note_unknown};

/// A render query string (`target=...&from=-5min`, whitespace as written) -> the target and
/// fledge's `from`.
fn graphite_query(query: &str, path: &str, c: &mut Converted) -> (String, Option<String>) {
    let compact: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if !compact.starts_with("target=") {
        return (compact, None);
    }
    let mut target = String::new();
    let mut from = None;
    for part in compact.split('&') {
        match part.split_once('=') {
            Some(("target", t)) if target.is_empty() => target = t.trim().to_string(),
            Some(("from", f)) => match graphite_from(f.trim()) {
                Some(d) => from = Some(d),
                None => c.note(
                    &format!("{path}.query"),
                    format!(
                        "from={f} left out: fledge reads a duration back from now (default 5m)"
                    ),
                ),
            },
            Some(("format", _)) => {}
            _ => c.note(
                &format!("{path}.query"),
                format!("{part:?} left out: fledge sends one target, from and format=json"),
            ),
        }
    }
    (target, from)
}

/// Graphite's relative `-5min`, `-1h`, `-30s` -> `5m`, `1h`, `30s`.
fn graphite_from(f: &str) -> Option<String> {
    let f = f.strip_prefix('-')?;
    let digits = f.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = f[..digits].parse().ok()?;
    let unit = match &f[digits..] {
        "s" | "sec" | "second" | "seconds" => "s",
        "min" | "minute" | "minutes" => "m",
        "h" | "hour" | "hours" => "h",
        "d" | "day" | "days" => return Some(format!("{}h", n * 24)),
        _ => return None,
    };
    Some(format!("{n}{unit}"))
}

/// Argo Rollouts' `graphite: {address, query}`.
pub fn argo_graphite(g: &Value, path: &str, c: &mut Converted) -> Value {
    let (target, from) = graphite_query(g["query"].as_str().unwrap_or_default(), path, c);
    let mut out = json!({"address": g["address"], "query": target});
    if let Some(f) = from {
        out["from"] = json!(f);
    }
    note_unknown(c, g, path, &["address", "query"], "no fledge equivalent");
    out
}

/// Argo Rollouts' `influxdb: {profile, query}`: Flux, with address, org and token in the
/// profile's Secret (default `influxdb`) of Argo Rollouts' namespace.
pub fn argo_influxdb(i: &Value, path: &str, c: &mut Converted) -> Value {
    let profile = i["profile"].as_str().unwrap_or("influxdb");
    c.note(
        path,
        format!(
            "Argo Rollouts reads address, org and authToken from Secret {profile:?} in its own \
             namespace: set address and org here, and give the run's namespace a Secret \
             {profile:?} with key authToken"
        ),
    );
    note_unknown(c, i, path, &["profile", "query"], "no fledge equivalent");
    json!({
        "address": "http://influxdb.set-me.invalid:8086",
        "language": "flux",
        "org": "set-me",
        "query": i["query"],
        "tokenSecret": {"name": profile, "key": "authToken"},
    })
}

/// Argo Rollouts' `datadog` metric: the fields are fledge's; the Secret (`secretRef.name`, or
/// `datadog`) must be in the run's namespace, with keys `api-key` and `app-key` as Argo's.
pub fn argo_datadog(d: &Value, path: &str, c: &mut Converted) -> Value {
    let fields = [
        "apiVersion",
        "interval",
        "query",
        "queries",
        "formula",
        "aggregator",
    ];
    let mut out = json!({});
    super::copy(d, &mut out, &fields);
    let secret = d["secretRef"]["name"].as_str().unwrap_or("datadog");
    out["secretRef"] = json!({"name": secret});
    if d["secretRef"]["namespaced"] != true {
        c.note(
            &format!("{path}.secretRef"),
            format!(
                "fledge reads Secret {secret:?} (keys api-key, app-key) in the run's namespace, \
                 not Argo Rollouts' namespace; its address key is not read: set site (like \
                 datadoghq.eu) or address here when it is not api.datadoghq.com"
            ),
        );
    }
    if let Some(a) = d["address"].as_str() {
        out["address"] = json!(a);
    }
    let known: Vec<&str> = fields
        .iter()
        .copied()
        .chain(["secretRef", "address"])
        .collect();
    note_unknown(c, d, path, &known, "no fledge equivalent");
    out
}

/// Argo Rollouts' `newRelic: {profile, query, timeout}`: the profile is a Secret of Argo
/// Rollouts' namespace; fledge reads the same keys from a Secret of the run's namespace.
pub fn argo_newrelic(n: &Value, path: &str, c: &mut Converted) -> Value {
    let profile = n["profile"].as_str().unwrap_or("newrelic");
    let mut out = json!({"query": n["query"], "secretRef": {"name": profile}});
    if let Some(t) = n["timeout"].as_u64() {
        out["timeout"] = json!(format!("{t}s"));
    }
    c.note(
        &format!("{path}.profile"),
        format!(
            "fledge reads Secret {profile:?} (keys personal-api-key and account-id) in the run's \
             namespace, not Argo Rollouts' namespace; its region and base-url-nerdgraph keys are \
             not read: set region: eu or address here"
        ),
    );
    note_unknown(
        c,
        n,
        path,
        &["profile", "query", "timeout"],
        "no fledge equivalent",
    );
    out
}

/// Argo Rollouts' `cloudWatch: {interval, metricDataQueries}`: the same fields. The credentials
/// are the controller's, as in Argo Rollouts (its web identity), unless a Secret is named.
pub fn argo_cloudwatch(w: &Value, path: &str, c: &mut Converted) -> Value {
    let mut out = json!({});
    super::copy(w, &mut out, &["interval", "metricDataQueries"]);
    c.note(
        path,
        "fledge gives the conditions each returned query's newest value (a number, or a list \
         for several queries), not Argo Rollouts' results with Values and Timestamps: write \
         conditions like result < 0.01",
    );
    note_unknown(
        c,
        w,
        path,
        &["interval", "metricDataQueries"],
        "no fledge equivalent",
    );
    out
}

/// A Flagger MetricTemplate's provider of type graphite, influxdb, datadog, newrelic or
/// cloudwatch, with its query.
/// Flagger reads credentials from `secretRef` in the template's namespace.
pub fn flagger(p: &Value, query: &str, c: &mut Converted) -> Option<Value> {
    let address = p["address"].as_str();
    let secret = p["secretRef"]["name"].as_str();
    match p["type"].as_str()? {
        "graphite" => {
            let (target, from) = graphite_query(query, "spec.query", c);
            let mut g = json!({"address": address.unwrap_or_default(), "query": target});
            if let Some(f) = from {
                g["from"] = json!(f);
            }
            if let Some(s) = secret {
                c.note(
                    "spec.provider.secretRef",
                    format!("Secret {s:?} (basic auth) is not converted: send an Authorization header from a Secret in graphite.headers"),
                );
            }
            Some(json!({"graphite": g}))
        }
        "influxdb" => {
            let mut i = json!({
                "address": address.unwrap_or_default(),
                "language": "flux",
                "org": "set-me",
                "query": query,
            });
            match secret {
                Some(s) => {
                    i["tokenSecret"] = json!({"name": s, "key": "token"});
                    c.note(
                        "spec.provider",
                        format!("set org here (Flagger read it from the query's context); the token is read from Secret {s:?} key token"),
                    );
                }
                None => c.note("spec.provider", "set org here"),
            }
            Some(json!({"influxdb": i}))
        }
        "datadog" => {
            let s = secret.unwrap_or("datadog");
            c.note(
                "spec.provider.secretRef",
                format!(
                    "Flagger's keys datadog_api_key and datadog_application_key: fledge reads \
                     api-key and app-key from Secret {s:?}"
                ),
            );
            let mut d = json!({"apiVersion": "v1", "query": query, "secretRef": {"name": s}});
            match address {
                Some(a) if a != "https://api.datadoghq.com" => d["address"] = json!(a),
                _ => {}
            }
            Some(json!({"datadog": d}))
        }
        "newrelic" => {
            let s = secret.unwrap_or("newrelic");
            c.note(
                "spec.provider.secretRef",
                format!(
                    "Flagger asks New Relic's Insights API with a query key \
                     (newrelic_query_key, newrelic_account_id); fledge asks NerdGraph with a user \
                     API key: give Secret {s:?} keys personal-api-key and account-id"
                ),
            );
            let mut n = json!({"query": query, "secretRef": {"name": s}});
            if let Some(a) = address
                && a.contains(".eu.")
            {
                n["region"] = json!("eu");
            }
            Some(json!({"newRelic": n}))
        }
        "cloudwatch" => {
            // Flagger's query is GetMetricData's MetricDataQueries as JSON.
            let queries: Value = match serde_json::from_str(query) {
                Ok(q) => q,
                Err(e) => {
                    c.note("spec.query", format!("not JSON MetricDataQueries: {e}"));
                    return None;
                }
            };
            let queries = lower_first_keys(&queries);
            let mut w = json!({"metricDataQueries": queries});
            if let Some(region) = p["region"].as_str() {
                w["region"] = json!(region);
            }
            c.note(
                "spec.provider",
                "fledge gives the conditions each returned query's newest value",
            );
            Some(json!({"cloudWatch": w}))
        }
        _ => None,
    }
}

/// Flagger writes MetricDataQueries as the AWS API does (`Id`, `MetricStat`); fledge's fields
/// are Argo Rollouts' (`id`, `metricStat`).
fn lower_first_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(f) => f.to_lowercase().chain(chars).collect(),
                        None => String::new(),
                    };
                    (key, lower_first_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lower_first_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphite_render_queries_become_a_target_and_a_window() {
        let mut c = Converted::default();
        let (t, f) = graphite_query(
            "target=summarize(\n  asPercent(a.errors, a.requests),\n  '5min', 'avg')&from=-10min",
            "p",
            &mut c,
        );
        assert_eq!(
            t,
            "summarize( asPercent(a.errors, a.requests), '5min', 'avg')"
        );
        assert_eq!(f.as_deref(), Some("10m"));
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        assert_eq!(graphite_from("-2h").as_deref(), Some("2h"));
        assert_eq!(graphite_from("yesterday"), None);
        let (t, _) = graphite_query("a.b.c", "p", &mut c);
        assert_eq!(t, "a.b.c");
    }
}
