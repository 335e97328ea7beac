//! Datadog's metrics query API as Datadog documents it (v1 `GET /api/v1/query`, v2
//! `POST /api/v2/query/scalar`): each request checked field by field, answered with the
//! documented shapes, errors and empty results included. Not the live service.

use super::*;
use crate::analysis::providers::test_server::{self, Answer, Seen};

const NOW: Duration = Duration::from_secs(1_796_000_000);

fn keys() -> Keys {
    Keys {
        api: "dd-api-s3cret".into(),
        app: "dd-app-s3cret".into(),
    }
}

fn metric(base: &str, version: DatadogApiVersion) -> DatadogMetric {
    DatadogMetric {
        api_version: Some(version),
        query: Some("sum:requests.error{service:checkout}.as_count()".into()),
        interval: Some("10m".into()),
        address: Some(base.into()),
        secret_ref: crate::api::analysis::DatadogSecretRef {
            name: "datadog".into(),
        },
        ..Default::default()
    }
}

/// What every request carries: the keys in Datadog's headers and an answer asked for in JSON.
fn authenticated(r: &Seen) -> Result<(), String> {
    if r.header("dd-api-key") != Some("dd-api-s3cret") {
        return Err(format!("DD-API-KEY: {:?}", r.header("dd-api-key")));
    }
    if r.header("dd-application-key") != Some("dd-app-s3cret") {
        return Err(format!(
            "DD-APPLICATION-KEY: {:?}",
            r.header("dd-application-key")
        ));
    }
    if r.header("accept") != Some("application/json") {
        return Err(format!("Accept: {:?}", r.header("accept")));
    }
    Ok(())
}

/// v1: `GET /api/v1/query?from=<s>&to=<s>&query=<q>`, no body.
fn v1_request(r: &Seen) -> Result<(), String> {
    authenticated(r)?;
    if r.method != "GET" || r.path != "/api/v1/query" || !r.body.is_empty() {
        return Err(format!("{} {} body {:?}", r.method, r.path, r.body));
    }
    let mut names: Vec<&str> = r.query.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    if names != ["from", "query", "to"] {
        return Err(format!("query parameters {names:?}"));
    }
    let to: u64 = r.param("to").and_then(|t| t.parse().ok()).ok_or("to")?;
    let from: u64 = r.param("from").and_then(|t| t.parse().ok()).ok_or("from")?;
    if to != NOW.as_secs() || to - from != 600 {
        return Err(format!("window from {from} to {to}"));
    }
    if r.param("query") != Some("sum:requests.error{service:checkout}.as_count()") {
        return Err(format!("query {:?}", r.param("query")));
    }
    Ok(())
}

fn json(status: u16, body: serde_json::Value) -> Answer {
    Ok((status, "application/json", body.to_string()))
}

/// The documented v1 answer, with the given series' pointlists.
fn v1_answer(pointlists: serde_json::Value) -> serde_json::Value {
    let series: Vec<serde_json::Value> = pointlists
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::json!({
                "aggr": "sum", "display_name": "requests.error", "end": 1_796_000_000_000u64,
                "expression": "sum:requests.error{service:checkout}.as_count()",
                "interval": 60, "length": 2, "metric": "requests.error",
                "pointlist": p, "scope": "service:checkout", "start": 1_795_999_400_000u64,
                "tag_set": [], "unit": null,
            })
        })
        .collect();
    serde_json::json!({
        "status": "ok", "res_type": "time_series", "resp_version": 1,
        "query": "sum:requests.error{service:checkout}.as_count()",
        "from_date": 1_795_999_400_000u64, "to_date": 1_796_000_000_000u64,
        "series": series, "message": "", "group_by": [],
    })
}

async fn v1(answer: serde_json::Value, status: u16) -> (Outcome, Vec<(Seen, Option<String>)>) {
    let (base, log) = test_server::start(move |r| {
        v1_request(r)?;
        json(status, answer.clone())
    })
    .await;
    let m = metric(&base, DatadogApiVersion::V1);
    let got = test_server::within(measure(&test_server::clients(), &m, &keys(), NOW)).await;
    let seen = log.lock().unwrap().clone();
    (got, seen)
}

#[tokio::test]
async fn v1_takes_each_series_last_point_and_sends_the_documented_request() {
    let (got, seen) = v1(
        v1_answer(serde_json::json!([[
            [1_795_999_940_000u64, 3.0],
            [1_796_000_000_000u64, 0.02]
        ]])),
        200,
    )
    .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    assert_eq!(got, Outcome::Value(MetricValue::Number(0.02)));
    let (two, _) = v1(
        v1_answer(serde_json::json!([
            [[1_795_999_940_000u64, 1.0], [1_796_000_000_000u64, null]],
            [[1_796_000_000_000u64, 2.0]]
        ])),
        200,
    )
    .await;
    assert_eq!(
        two,
        Outcome::Value(MetricValue::List(vec![
            MetricValue::Number(1.0),
            MetricValue::Number(2.0)
        ]))
    );
}

#[tokio::test]
async fn v1_no_series_is_no_data_and_refusals_are_errors_without_the_keys() {
    let (empty, seen) = v1(v1_answer(serde_json::json!([])), 200).await;
    assert_eq!(seen[0].1, None);
    assert!(
        matches!(&empty, Outcome::NoData(m) if m.contains("no series")),
        "{empty:?}"
    );
    // Datadog's 403 names what it was sent; the answer must not carry the keys anywhere.
    let (forbidden, _) = v1(
        serde_json::json!({"errors": ["Forbidden: key dd-app-s3cret is not valid"]}),
        403,
    )
    .await;
    match &forbidden {
        Outcome::Error(m) => {
            assert!(m.contains("403") && m.contains("Forbidden"), "{m}");
            assert!(!m.contains("s3cret"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let (bad, _) = v1(serde_json::json!({"errors": ["Error parsing query: unable to parse sum:: Rule 'scope_expr' didn't match"]}), 400).await;
    assert!(
        matches!(&bad, Outcome::Error(m) if m.contains("400") && m.contains("Error parsing query")),
        "{bad:?}"
    );
    let (status_error, _) = v1(
        serde_json::json!({"status": "error", "error": "Rate limit of 300 requests in 3600 seconds reached"}),
        200,
    )
    .await;
    assert!(
        matches!(&status_error, Outcome::Error(m) if m.contains("Rate limit")),
        "{status_error:?}"
    );
}

/// v2: `POST /api/v2/query/scalar` with a JSON `scalar_request`.
fn v2_request(r: &Seen, queries: serde_json::Value, formula: &str) -> Result<(), String> {
    authenticated(r)?;
    if r.method != "POST" || r.path != "/api/v2/query/scalar" || !r.raw_query.is_empty() {
        return Err(format!("{} {}?{}", r.method, r.path, r.raw_query));
    }
    if r.header("content-type") != Some("application/json") {
        return Err(format!("Content-Type: {:?}", r.header("content-type")));
    }
    let body: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let want = serde_json::json!({
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": NOW.as_millis() as u64 - 600_000,
                "to": NOW.as_millis() as u64,
                "queries": queries,
                "formulas": [{"formula": formula}],
            },
        },
    });
    if body != want {
        return Err(format!("body {body} != {want}"));
    }
    Ok(())
}

fn v2_answer(columns: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"data": {"type": "scalar_response", "attributes": {"columns": columns}}})
}

#[tokio::test]
async fn v2_sends_queries_and_formula_and_reads_the_formula_column() {
    let queries = serde_json::json!([
        {"data_source": "metrics", "name": "errors", "query": "sum:requests.error{service:checkout}.as_count()", "aggregator": "sum"},
        {"data_source": "metrics", "name": "requests", "query": "sum:requests.total{service:checkout}.as_count()", "aggregator": "sum"},
    ]);
    let want = queries.clone();
    let (base, log) = test_server::start(move |r| {
        v2_request(r, want.clone(), "errors / requests")?;
        json(
            200,
            v2_answer(serde_json::json!([
                {"name": "errors / requests", "type": "number", "values": [0.015],
                 "meta": {"unit": null}},
            ])),
        )
    })
    .await;
    let mut m = metric(&base, DatadogApiVersion::V2);
    m.query = None;
    m.queries = [
        (
            "errors".to_string(),
            "sum:requests.error{service:checkout}.as_count()".to_string(),
        ),
        (
            "requests".to_string(),
            "sum:requests.total{service:checkout}.as_count()".to_string(),
        ),
    ]
    .into();
    m.formula = Some("errors / requests".into());
    m.aggregator = Some(DatadogAggregator::Sum);
    let got = test_server::within(measure(&test_server::clients(), &m, &keys(), NOW)).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    assert_eq!(got, Outcome::Value(MetricValue::Number(0.015)));
}

async fn v2_one(status: u16, answer: serde_json::Value) -> Outcome {
    let (base, log) = test_server::start(move |r| {
        let queries = serde_json::json!([{"data_source": "metrics", "name": "query",
            "query": "sum:requests.error{service:checkout}.as_count()", "aggregator": "last"}]);
        v2_request(r, queries, "query")?;
        json(status, answer.clone())
    })
    .await;
    let m = metric(&base, DatadogApiVersion::V2);
    let got = test_server::within(measure(&test_server::clients(), &m, &keys(), NOW)).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    got
}

#[tokio::test]
async fn v2_groups_empty_values_and_errors() {
    let grouped = v2_answer(serde_json::json!([
        {"name": "service", "type": "group", "values": [["checkout"], ["cart"]]},
        {"name": "query", "type": "number", "values": [0.5, null], "meta": {"unit": null}},
    ]));
    assert_eq!(
        v2_one(200, grouped).await,
        Outcome::Value(MetricValue::Number(0.5))
    );
    let empty = v2_answer(serde_json::json!([
        {"name": "query", "type": "number", "values": [], "meta": {"unit": null}},
    ]));
    assert!(matches!(v2_one(200, empty).await, Outcome::NoData(_)));
    assert!(matches!(
        v2_one(200, v2_answer(serde_json::json!([]))).await,
        Outcome::NoData(_)
    ));
    let refused = v2_one(400, serde_json::json!({"errors": ["Bad Request"]})).await;
    assert!(
        matches!(&refused, Outcome::Error(m) if m.contains("400") && m.contains("Bad Request")),
        "{refused:?}"
    );
    let partial = v2_one(
        200,
        serde_json::json!({"data": null, "errors": "query timed out"}),
    )
    .await;
    assert!(
        matches!(&partial, Outcome::Error(m) if m.contains("timed out")),
        "{partial:?}"
    );
}

#[test]
fn the_site_picks_the_api_host() {
    let mut d = DatadogMetric::default();
    assert_eq!(base(&d), "https://api.datadoghq.com");
    d.site = Some("datadoghq.eu".into());
    assert_eq!(base(&d), "https://api.datadoghq.eu");
    d.site = Some("us5.datadoghq.com".into());
    assert_eq!(base(&d), "https://api.us5.datadoghq.com");
    d.address = Some("https://dd-proxy.internal".into());
    assert_eq!(base(&d), "https://dd-proxy.internal");
}

#[tokio::test]
async fn a_denied_address_is_never_asked() {
    let http = super::super::http_clients(crate::analysis::providers::network::Denied(
        std::sync::Arc::new(
            crate::analysis::providers::network::parse_list(
                crate::analysis::providers::network::DEFAULT_DENIED,
            )
            .unwrap(),
        ),
    ))
    .unwrap();
    let m = metric("http://169.254.169.254", DatadogApiVersion::V1);
    let got = test_server::within(measure(&http, &m, &keys(), NOW)).await;
    assert!(
        matches!(&got, Outcome::Error(m) if m.contains("denied address range")),
        "{got:?}"
    );
}
