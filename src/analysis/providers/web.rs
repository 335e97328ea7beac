//! Web: an HTTP request whose JSON answer (or the part `jsonPath` picks) is the result.

use std::time::Duration;

use jsonpath_rust::JsonPath;
use kube::ResourceExt;

use super::{HttpClients, MetricProvider};
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, Measurement, Metric, WebMethod};

pub const DEFAULT_TIMEOUT_SECONDS: i64 = 10;

#[derive(Clone)]
pub struct Web {
    http: HttpClients,
    client: kube::Client,
}

impl Web {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        Web { http, client }
    }
}

impl MetricProvider for Web {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(w) = &metric.provider.web else {
            return Outcome::Error("not a web metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let headers = match super::headers(&self.client, &ns, &w.headers).await {
            Ok(h) => h,
            Err(e) => return Outcome::Error(e),
        };
        let http = self.http.pick(false);
        let mut request = match w.method.unwrap_or(WebMethod::Get) {
            WebMethod::Get => http.get(&w.url),
            WebMethod::Post => http.post(&w.url),
            WebMethod::Put => http.put(&w.url),
        };
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        if let Some(body) = &w.body {
            request = request.body(body.clone());
        }
        let seconds = w.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS).max(1);
        let request = request.timeout(Duration::from_secs(seconds.unsigned_abs()));
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(format!("{} {}: {e}", method_name(w.method), w.url)),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return Outcome::Error(format!("reading the answer of {}: {e}", w.url)),
        };
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            return Outcome::Error(format!("{} answered {status}: {snippet}", w.url));
        }
        outcome(&text, w.json_path.as_deref())
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

fn method_name(m: Option<WebMethod>) -> &'static str {
    match m.unwrap_or(WebMethod::Get) {
        WebMethod::Get => "GET",
        WebMethod::Post => "POST",
        WebMethod::Put => "PUT",
    }
}

/// The value `json_path` picks from the answer `text`: one match is the value, several a list,
/// none no data. A number stays a number, so `result > 0.9` works on `{"rate": 0.95}`.
pub fn outcome(text: &str, json_path: Option<&str>) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("the answer is not JSON: {e}")),
    };
    let Some(path) = json_path else {
        return Outcome::Value(value(&json));
    };
    // kubectl's form `{$.a.b}` is what Argo Rollouts users write; the braces are not JSONPath.
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    match json.query(path) {
        Err(e) => Outcome::Error(format!("jsonPath {path:?}: {e}")),
        Ok(found) if found.is_empty() => {
            Outcome::NoData(format!("jsonPath {path:?} matched nothing in the answer"))
        }
        Ok(found) if found.len() == 1 => Outcome::Value(value(found[0])),
        Ok(found) => Outcome::Value(MetricValue::List(found.into_iter().map(value).collect())),
    }
}

fn value(j: &serde_json::Value) -> MetricValue {
    match j.as_f64() {
        Some(n) => MetricValue::Number(n),
        None => MetricValue::Json(j.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_values() {
        let body = r#"{"data": {"rate": 0.95, "ok": true, "items": [1, 2]}}"#;
        assert_eq!(
            outcome(body, Some("$.data.rate")),
            Outcome::Value(MetricValue::Number(0.95))
        );
        assert_eq!(
            outcome(body, Some("{$.data.rate}")),
            Outcome::Value(MetricValue::Number(0.95))
        );
        assert_eq!(
            outcome(body, Some("$.data.ok")),
            Outcome::Value(MetricValue::Json(serde_json::json!(true)))
        );
        assert_eq!(
            outcome(body, Some("$.data.items[*]")),
            Outcome::Value(MetricValue::List(vec![
                MetricValue::Number(1.0),
                MetricValue::Number(2.0)
            ]))
        );
        assert!(matches!(outcome(body, Some("$.nope")), Outcome::NoData(_)));
        assert!(matches!(outcome(body, Some("$$[")), Outcome::Error(_)));
        assert!(matches!(outcome("<html>", None), Outcome::Error(_)));
    }
}
