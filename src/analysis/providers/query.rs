//! What the query providers (Graphite, InfluxDB, Datadog) share: their address checked against
//! the denied ranges, one exchange within a timeout with the answer's size capped, and the
//! values they found turned into one outcome.

use std::time::Duration;

use super::HttpClients;
use crate::analysis::value::{MetricValue, Outcome};

/// The metric's `timeout`, or the default (run validation has refused a bad one).
pub fn timeout(text: Option<&str>) -> Duration {
    text.and_then(|t| crate::api::duration::parse(t).ok())
        .filter(|t| !t.is_zero())
        .unwrap_or(crate::api::defaults::QUERY_TIMEOUT)
}

/// `address` with `path` appended (an address may carry a path prefix, like a proxy's
/// `/graphite`), refused when its scheme or address literal may not be measured.
pub fn endpoint(
    http: &HttpClients,
    what: &str,
    address: &str,
    path: &str,
) -> Result<reqwest::Url, String> {
    let joined = format!("{}{path}", address.trim_end_matches('/'));
    let url =
        reqwest::Url::parse(&joined).map_err(|e| format!("{what} address {address:?}: {e}"))?;
    http.denied
        .check_url(&url)
        .map_err(|e| format!("{what} address {address}: {e}"))?;
    Ok(url)
}

/// Sends `request` within `limit` and reads its answer (at most a mebibyte). `shown` names the
/// request in messages: never a URL with a Secret in it.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    shown: &str,
    limit: Duration,
) -> Result<(reqwest::StatusCode, String), String> {
    let run = async {
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", super::error_text(&e)))?;
        let status = response.status();
        let text = super::web::read_capped(&mut response)
            .await
            .map_err(|e| format!("reading the answer of {shown}: {e}"))?;
        Ok((status, text))
    };
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("{shown}: no answer within {limit:?}")),
    }
}

/// The start of an answer, for an error message.
pub fn snippet(text: &str) -> String {
    let t: String = text.trim().chars().take(300).collect();
    if t.len() < text.trim().len() {
        format!("{t}...")
    } else {
        t
    }
}

/// One value is a number, several a list, none no data (`empty` says why).
pub fn values(found: Vec<MetricValue>, empty: impl FnOnce() -> String) -> Outcome {
    match found.len() {
        0 => Outcome::NoData(empty()),
        1 => Outcome::Value(found.into_iter().next().expect("one value")),
        _ => Outcome::Value(MetricValue::List(found)),
    }
}

/// A JSON number, or a number written as a string (some servers quote them; NaN and Inf too).
pub fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
