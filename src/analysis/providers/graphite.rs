//! Graphite: the render API (`GET /render?target=...&format=json`). Each series gives its last
//! non-null datapoint.

use kube::ResourceExt;

use super::{HttpClients, MetricProvider, query};
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, GraphiteMetric, Measurement, Metric};

#[derive(Clone)]
pub struct Graphite {
    http: HttpClients,
    client: kube::Client,
}

impl Graphite {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        Graphite { http, client }
    }
}

impl MetricProvider for Graphite {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(g) = &metric.provider.graphite else {
            return Outcome::Error("not a graphite metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let headers = match super::headers(&self.client, &ns, &g.headers).await {
            Ok(h) => h,
            Err(e) => return Outcome::Error(e),
        };
        let outcome = measure(&self.http, g, &headers.values).await;
        headers.redactor().outcome(outcome)
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// The request for `g`, and its answer as an outcome.
pub async fn measure(
    http: &HttpClients,
    g: &GraphiteMetric,
    headers: &std::collections::BTreeMap<String, String>,
) -> Outcome {
    let mut url = match query::endpoint(http, "graphite", &g.address, "/render") {
        Ok(u) => u,
        Err(e) => return Outcome::Error(e),
    };
    let from = g
        .from
        .as_deref()
        .and_then(|f| crate::api::duration::parse(f).ok())
        .filter(|f| !f.is_zero())
        .unwrap_or(crate::api::defaults::GRAPHITE_FROM);
    url.query_pairs_mut()
        .append_pair("target", g.query.trim())
        .append_pair("from", &format!("-{}s", from.as_secs()))
        .append_pair("until", "now")
        .append_pair("format", "json")
        // graphite-web may answer from its cache for a minute: a gate wants the data as it is.
        .append_pair("noCache", "true");
    let shown = format!("graphite at {}", g.address);
    let mut request = http
        .pick(g.insecure == Some(true))
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let (status, text) =
        match query::exchange(request, &shown, query::timeout(g.timeout.as_deref())).await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
    if !status.is_success() {
        return Outcome::Error(format!(
            "{shown} answered {status}: {}",
            query::snippet(&text)
        ));
    }
    outcome(&g.query, &text)
}

/// The answer `[{"target": ..., "datapoints": [[value, timestamp], ...]}, ...]` as an outcome.
pub fn outcome(target: &str, text: &str) -> Outcome {
    let series: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(s)) => s,
        Ok(_) | Err(_) => {
            return Outcome::Error(format!(
                "graphite's answer is not a JSON list of series: {}",
                query::snippet(text)
            ));
        }
    };
    let mut found = Vec::new();
    for s in &series {
        let Some(points) = s.get("datapoints").and_then(|d| d.as_array()) else {
            return Outcome::Error(format!(
                "graphite's answer has a series without datapoints: {}",
                query::snippet(text)
            ));
        };
        let last = points
            .iter()
            .rev()
            .filter_map(|p| p.as_array().and_then(|p| p.first()))
            .find_map(query::number);
        if let Some(v) = last {
            found.push(MetricValue::Number(v));
        }
    }
    query::values(found, || {
        if series.is_empty() {
            format!("the target matched no series: {target}")
        } else {
            format!("the target's series hold only nulls in the window: {target}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_non_null_datapoint_of_each_series() {
        let one = r#"[{"target": "app.errors", "tags": {}, "datapoints": [[1.5, 10], [2.5, 11], [null, 12]]}]"#;
        assert_eq!(outcome("t", one), Outcome::Value(MetricValue::Number(2.5)));
        let two = r#"[{"target": "a", "datapoints": [[1, 10]]}, {"target": "b", "datapoints": [["0.25", 10]]}]"#;
        assert_eq!(
            outcome("t", two),
            Outcome::Value(MetricValue::List(vec![
                MetricValue::Number(1.0),
                MetricValue::Number(0.25)
            ]))
        );
        assert!(
            matches!(outcome("nope.*", "[]"), Outcome::NoData(m) if m.contains("no series") && m.contains("nope.*"))
        );
        let nulls = r#"[{"target": "a", "datapoints": [[null, 10], [null, 11]]}]"#;
        assert!(matches!(outcome("a", nulls), Outcome::NoData(m) if m.contains("only nulls")));
        assert!(matches!(outcome("a", "<html>"), Outcome::Error(_)));
        assert!(matches!(
            outcome("a", r#"{"error": "x"}"#),
            Outcome::Error(_)
        ));
    }
}
