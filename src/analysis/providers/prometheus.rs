//! Prometheus: an instant query through `prometheus-http-query`.

use std::time::Duration;

use kube::ResourceExt;
use prometheus_http_query::response::Data;

use super::{HttpClients, MetricProvider};
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, Measurement, Metric};

#[derive(Clone)]
pub struct Prometheus {
    http: HttpClients,
    client: kube::Client,
}

impl Prometheus {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        Prometheus { http, client }
    }
}

impl MetricProvider for Prometheus {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(p) = &metric.provider.prometheus else {
            return Outcome::Error("not a prometheus metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let timeout = super::query::timeout(p.timeout.as_deref());
        match reqwest::Url::parse(&p.address) {
            Ok(url) => {
                if let Err(e) = self.http.denied.check_url(&url) {
                    return Outcome::Error(format!("prometheus address {}: {e}", p.address));
                }
            }
            Err(e) => return Outcome::Error(format!("prometheus address {:?}: {e}", p.address)),
        }
        let http = self.http.pick(p.insecure == Some(true)).clone();
        let client = match prometheus_http_query::Client::from(http, &p.address) {
            Ok(c) => c,
            Err(e) => return Outcome::Error(format!("prometheus address {:?}: {e}", p.address)),
        };
        let mut query = client
            .query(&p.query)
            .timeout(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
        let headers = match super::headers(&self.client, &ns, &p.headers).await {
            Ok(h) => h,
            Err(e) => return Outcome::Error(e),
        };
        let mut redactor = headers.redactor();
        let mut pairs: Vec<(String, String)> = headers.values.into_iter().collect();
        if let Some(r) = p
            .authentication
            .as_ref()
            .and_then(|a| a.bearer_token_secret.as_ref())
        {
            match super::secret_value(&self.client, &ns, r).await {
                Ok(token) => {
                    redactor.add(token.trim());
                    pairs.push(("authorization".into(), format!("Bearer {}", token.trim())))
                }
                Err(e) => return Outcome::Error(e),
            }
        }
        for (k, v) in pairs {
            let name = match reqwest::header::HeaderName::from_bytes(k.as_bytes()) {
                Ok(n) => n,
                Err(_) => return Outcome::Error(format!("header name {k:?} is not valid")),
            };
            let value = match reqwest::header::HeaderValue::from_str(&v) {
                Ok(v) => v,
                Err(_) => {
                    return Outcome::Error(format!("header {k:?} has a value that is not valid"));
                }
            };
            query = query.header(name, value);
        }
        // The query parameter bounds evaluation on the server; this bounds the whole exchange.
        let outcome =
            match tokio::time::timeout(timeout + Duration::from_secs(1), query.get()).await {
                Err(_) => Outcome::Error(format!(
                    "prometheus at {} did not answer within {timeout:?}",
                    p.address
                )),
                Ok(Err(e)) => Outcome::Error(format!(
                    "prometheus at {}: {}",
                    p.address,
                    super::error_text(&e)
                )),
                Ok(Ok(result)) => outcome(&p.query, result.data()),
            };
        redactor.outcome(outcome)
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// A scalar or a one-element vector is a number, a longer vector a list, an empty vector no data.
pub fn outcome(query: &str, data: &Data) -> Outcome {
    match data {
        Data::Scalar(s) => Outcome::Value(MetricValue::Number(s.value())),
        Data::Vector(v) if v.is_empty() => Outcome::NoData(format!(
            "the query returned no data (an empty vector): {query}"
        )),
        Data::Vector(v) if v.len() == 1 => {
            Outcome::Value(MetricValue::Number(v[0].sample().value()))
        }
        Data::Vector(v) => Outcome::Value(MetricValue::List(
            v.iter()
                .map(|s| MetricValue::Number(s.sample().value()))
                .collect(),
        )),
        Data::Matrix(_) => Outcome::Error(format!(
            "the query returned a range vector; use an instant vector (wrap it in a function like rate()): {query}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: serde_json::Value) -> Data {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn vectors_scalars_and_no_data() {
        let one = data(
            serde_json::json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.5"]}]}),
        );
        assert_eq!(outcome("q", &one), Outcome::Value(MetricValue::Number(0.5)));
        let two = data(serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"a": "1"}, "value": [1.0, "1"]}, {"metric": {"a": "2"}, "value": [1.0, "NaN"]}]}));
        match outcome("q", &two) {
            Outcome::Value(MetricValue::List(items)) => {
                assert_eq!(items[0], MetricValue::Number(1.0));
                assert!(matches!(items[1], MetricValue::Number(n) if n.is_nan()));
            }
            other => panic!("{other:?}"),
        }
        let empty = data(serde_json::json!({"resultType": "vector", "result": []}));
        assert!(
            matches!(outcome("up == 2", &empty), Outcome::NoData(m) if m.contains("no data") && m.contains("up == 2"))
        );
        let scalar = data(serde_json::json!({"resultType": "scalar", "result": [1.0, "+Inf"]}));
        assert!(
            matches!(outcome("q", &scalar), Outcome::Value(MetricValue::Number(n)) if n.is_infinite())
        );
        let matrix = data(serde_json::json!({"resultType": "matrix", "result": []}));
        assert!(matches!(outcome("q", &matrix), Outcome::Error(_)));
    }
}
