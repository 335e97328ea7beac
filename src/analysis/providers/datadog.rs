//! Datadog: the metrics query API, v1 (`GET /api/v1/query`, a timeseries: each series gives its
//! last point) or v2 (`POST /api/v2/query/scalar`: queries reduced to one value each, and a
//! formula). The API and application keys come from a Secret and are redacted from everything a
//! measurement shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::ResourceExt;

use super::{HttpClients, MetricProvider, query};
use crate::analysis::redact::Redactor;
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{
    AnalysisRun, DatadogAggregator, DatadogApiVersion, DatadogMetric, Measurement, Metric,
    SecretKeyRef,
};
use crate::api::defaults;

/// The Secret's keys, as in Argo Rollouts' `datadog` Secret.
pub const API_KEY: &str = "api-key";
pub const APP_KEY: &str = "app-key";

#[derive(Clone)]
pub struct Datadog {
    http: HttpClients,
    client: kube::Client,
}

impl Datadog {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        Datadog { http, client }
    }
}

/// The two keys, read from the Secret.
#[derive(Clone, Debug, PartialEq)]
pub struct Keys {
    pub api: String,
    pub app: String,
}

impl MetricProvider for Datadog {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(d) = &metric.provider.datadog else {
            return Outcome::Error("not a datadog metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let key = |key: &str| SecretKeyRef {
            name: d.secret_ref.name.clone(),
            key: key.into(),
        };
        let keys = match (
            super::secret_value(&self.client, &ns, &key(API_KEY)).await,
            super::secret_value(&self.client, &ns, &key(APP_KEY)).await,
        ) {
            (Ok(api), Ok(app)) => Keys {
                api: api.trim().to_string(),
                app: app.trim().to_string(),
            },
            (Err(e), _) | (_, Err(e)) => return Outcome::Error(e),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        measure(&self.http, d, &keys, now).await
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// The API's base URL: `address`, or the site's.
pub fn base(d: &DatadogMetric) -> String {
    match (&d.address, &d.site) {
        (Some(a), _) => a.clone(),
        (None, site) => format!(
            "https://api.{}",
            site.as_deref().unwrap_or(defaults::DATADOG_SITE)
        ),
    }
}

/// The request for `d` over the window ending at `now` (since the epoch), and its answer as an
/// outcome, the keys taken out of it.
pub async fn measure(http: &HttpClients, d: &DatadogMetric, keys: &Keys, now: Duration) -> Outcome {
    let redactor = Redactor::new([keys.api.clone(), keys.app.clone()]);
    redactor.outcome(exchange(http, d, keys, now).await)
}

async fn exchange(http: &HttpClients, d: &DatadogMetric, keys: &Keys, now: Duration) -> Outcome {
    let base = base(d);
    let window = d
        .interval
        .as_deref()
        .and_then(|i| crate::api::duration::parse(i).ok())
        .filter(|i| !i.is_zero())
        .unwrap_or(defaults::DATADOG_INTERVAL);
    let client = http.pick(false);
    let version = d.api_version.unwrap_or(DatadogApiVersion::V1);
    let request = match version {
        DatadogApiVersion::V1 => {
            let Some(q) = d.query.as_deref() else {
                return Outcome::Error("datadog v1 needs query".into());
            };
            let mut url = match query::endpoint(http, "datadog", &base, "/api/v1/query") {
                Ok(u) => u,
                Err(e) => return Outcome::Error(e),
            };
            let to = now.as_secs();
            url.query_pairs_mut()
                .append_pair("from", &to.saturating_sub(window.as_secs()).to_string())
                .append_pair("to", &to.to_string())
                .append_pair("query", q.trim());
            client.get(url)
        }
        DatadogApiVersion::V2 => {
            let url = match query::endpoint(http, "datadog", &base, "/api/v2/query/scalar") {
                Ok(u) => u,
                Err(e) => return Outcome::Error(e),
            };
            let body = match scalar_request(d, now, window) {
                Ok(b) => b,
                Err(e) => return Outcome::Error(e),
            };
            client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
        }
    };
    let request = request
        .header(reqwest::header::ACCEPT, "application/json")
        .header("DD-API-KEY", &keys.api)
        .header("DD-APPLICATION-KEY", &keys.app);
    let shown = format!("datadog at {base}");
    let (status, text) =
        match query::exchange(request, &shown, query::timeout(d.timeout.as_deref())).await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
    if !status.is_success() {
        return Outcome::Error(format!("{shown} answered {status}: {}", errors(&text)));
    }
    match version {
        DatadogApiVersion::V1 => v1_outcome(&text),
        DatadogApiVersion::V2 => v2_outcome(&text),
    }
}

/// The body of a v2 scalar query: each query named (`query` alone is named `query`), the
/// formula (or the one query's name), and the window in milliseconds.
pub fn scalar_request(
    d: &DatadogMetric,
    now: Duration,
    window: Duration,
) -> Result<serde_json::Value, String> {
    let aggregator = serde_json::to_value(d.aggregator.unwrap_or(DatadogAggregator::Last))
        .map_err(|e| e.to_string())?;
    let named: Vec<(String, String)> = match &d.query {
        Some(q) => vec![("query".to_string(), q.trim().to_string())],
        None => d
            .queries
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect(),
    };
    if named.is_empty() {
        return Err("datadog needs query or queries".into());
    }
    let formula = match &d.formula {
        Some(f) => f.clone(),
        None if named.len() == 1 => named[0].0.clone(),
        None => return Err("datadog: several queries need a formula to combine them".into()),
    };
    let to = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let from = to.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
    Ok(serde_json::json!({
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": from,
                "to": to,
                "queries": named.iter().map(|(name, q)| serde_json::json!({
                    "data_source": "metrics",
                    "name": name,
                    "query": q,
                    "aggregator": aggregator,
                })).collect::<Vec<_>>(),
                "formulas": [{"formula": formula}],
            },
        },
    }))
}

/// Datadog's refusal, `{"errors": ["..."]}`, as text.
fn errors(text: &str) -> String {
    let listed = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|j| {
            let e = j.get("errors")?;
            Some(match e.as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("; "),
                None => e.as_str().map_or_else(|| e.to_string(), str::to_string),
            })
        });
    listed.unwrap_or_else(|| query::snippet(text))
}

/// v1's `{"status": "ok", "series": [{"pointlist": [[ms, value], ...]}, ...]}`: each series'
/// last non-null point. `status: "error"` is an error even with 200.
pub fn v1_outcome(text: &str) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("datadog's answer is not JSON: {e}")),
    };
    if json.get("status").and_then(|s| s.as_str()) == Some("error") {
        let why = json
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given");
        return Outcome::Error(format!("datadog: {why}"));
    }
    let Some(series) = json.get("series").and_then(|s| s.as_array()) else {
        return Outcome::Error(format!(
            "datadog's answer has no series: {}",
            query::snippet(text)
        ));
    };
    let found = series
        .iter()
        .filter_map(|s| {
            s.get("pointlist")?
                .as_array()?
                .iter()
                .rev()
                .filter_map(|p| p.as_array().and_then(|p| p.get(1)))
                .find_map(query::number)
        })
        .map(MetricValue::Number)
        .collect();
    let q = json
        .get("query")
        .and_then(|q| q.as_str())
        .unwrap_or_default();
    query::values(found, || {
        format!("the query returned no series with points: {q}")
    })
}

/// v2's `{"data": {"type": "scalar_response", "attributes": {"columns": [{"name": ..., "type":
/// "number", "values": [...]}, ...]}}}`: the values of the number column (the formula's; group
/// columns name the groups). A non-empty `errors` is an error even with 200.
pub fn v2_outcome(text: &str) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("datadog's answer is not JSON: {e}")),
    };
    if let Some(e) = json.get("errors").filter(|e| match e {
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Null => false,
        _ => true,
    }) {
        return Outcome::Error(format!(
            "datadog: {}",
            errors(&serde_json::json!({"errors": e}).to_string())
        ));
    }
    let Some(columns) = json
        .pointer("/data/attributes/columns")
        .and_then(|c| c.as_array())
    else {
        return Outcome::Error(format!(
            "datadog's answer has no columns: {}",
            query::snippet(text)
        ));
    };
    let numbers: Vec<&serde_json::Value> = columns
        .iter()
        .filter(|c| c.get("type").and_then(|t| t.as_str()) == Some("number"))
        .collect();
    let Some(column) = numbers.last() else {
        return Outcome::NoData("the query returned no values".into());
    };
    let found = column
        .get("values")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(query::number)
        .map(MetricValue::Number)
        .collect();
    query::values(found, || "the query returned no values".into())
}

#[cfg(test)]
#[path = "datadog_tests.rs"]
mod tests;
