//! NerdGraph as New Relic documents it (`POST /graphql`, the user key in `API-Key`, a JSON body
//! with the GraphQL query and its variables): each request checked, answered with the
//! documented shapes, GraphQL errors and empty results included. Not the live service.

use super::*;
use crate::analysis::providers::test_server::{self, Answer, Seen};

const KEY: &str = "NRAK-s3cretkey";
const NRQL: &str = "FROM Transaction SELECT percentage(count(*), WHERE httpResponseCode != 500) \
                    AS successRate WHERE appName = 'checkout' SINCE 5 minutes ago";

fn metric(base: &str) -> NewRelicMetric {
    NewRelicMetric {
        query: format!("  {NRQL}\n"),
        address: Some(format!("{base}/graphql")),
        secret_ref: crate::api::analysis::NewRelicSecretRef {
            name: "newrelic".into(),
        },
        ..Default::default()
    }
}

fn access() -> Access {
    Access {
        api_key: KEY.into(),
        account_id: 1_234_567,
    }
}

/// The documented request: `POST /graphql`, `API-Key` and `Content-Type: application/json`, a
/// body `{"query": ..., "variables": ...}` asking `actor.account(id).nrql(query).results`.
fn nerdgraph_request(r: &Seen) -> Result<(), String> {
    if r.method != "POST" || r.path != "/graphql" || !r.raw_query.is_empty() {
        return Err(format!("{} {}?{}", r.method, r.path, r.raw_query));
    }
    if r.header("api-key") != Some(KEY) {
        return Err(format!("API-Key: {:?}", r.header("api-key")));
    }
    if r.header("content-type") != Some("application/json") {
        return Err(format!("Content-Type: {:?}", r.header("content-type")));
    }
    let body: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let keys: Vec<&String> = body.as_object().ok_or("body")?.keys().collect();
    if keys != ["query", "variables"] {
        return Err(format!("body keys {keys:?}"));
    }
    // The document, whitespace aside, as NerdGraph's NRQL tutorial writes it with variables.
    let document: String = body["query"]
        .as_str()
        .ok_or("query")?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let want = "query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { \
                nrql(query: $nrql) { results } } } }";
    if document != want {
        return Err(format!("document {document:?}"));
    }
    if body["variables"] != serde_json::json!({"accountId": 1_234_567, "nrql": NRQL}) {
        return Err(format!("variables {}", body["variables"]));
    }
    Ok(())
}

fn answer(results: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"data": {"actor": {"account": {"nrql": {"results": results}}}}})
}

async fn ask(status: u16, reply: serde_json::Value) -> Outcome {
    let (base, log) = test_server::start(move |r| -> Answer {
        nerdgraph_request(r)?;
        Ok((status, "application/json", reply.to_string()))
    })
    .await;
    let got =
        test_server::within(measure(&test_server::clients(), &metric(&base), &access())).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    got
}

#[tokio::test]
async fn one_row_is_a_map_and_facets_a_list() {
    let one = ask(200, answer(serde_json::json!([{"successRate": 99.5}]))).await;
    assert_eq!(
        one,
        Outcome::Value(MetricValue::Json(serde_json::json!({"successRate": 99.5})))
    );
    let c =
        crate::analysis::condition::Conditions::compile(Some("result.successRate >= 99.0"), None)
            .unwrap();
    let Outcome::Value(v) = one else { panic!() };
    assert_eq!(
        c.judge(&v).unwrap(),
        crate::api::analysis::AnalysisPhase::Successful
    );
    let facets = ask(
        200,
        answer(serde_json::json!([
            {"appName": "checkout", "average.duration": 0.2},
            {"appName": "cart", "average.duration": null},
            {"appName": "search", "average.duration": 0.4},
        ])),
    )
    .await;
    // A facet with no events has a null value, which is not no data for the other facets.
    assert_eq!(
        facets,
        Outcome::Value(MetricValue::Json(serde_json::json!([
            {"appName": "checkout", "average.duration": 0.2},
            {"appName": "cart", "average.duration": null},
            {"appName": "search", "average.duration": 0.4},
        ])))
    );
}

#[tokio::test]
async fn no_rows_or_only_nulls_are_no_data() {
    let empty = ask(200, answer(serde_json::json!([]))).await;
    assert!(matches!(empty, Outcome::NoData(_)), "{empty:?}");
    let nulls = ask(200, answer(serde_json::json!([{"average.duration": null}]))).await;
    assert!(matches!(nulls, Outcome::NoData(_)), "{nulls:?}");
    // count(*) over no events is 0: a value, not missing data.
    let zero = ask(200, answer(serde_json::json!([{"count": 0}]))).await;
    assert_eq!(
        zero,
        Outcome::Value(MetricValue::Json(serde_json::json!({"count": 0})))
    );
}

#[tokio::test]
async fn graphql_errors_are_errors_without_the_key() {
    // NerdGraph answers a bad NRQL with 200, `nrql: null` and an `errors` list.
    let syntax = ask(
        200,
        serde_json::json!({
            "data": {"actor": {"account": {"nrql": null}}},
            "errors": [{
                "locations": [{"column": 36, "line": 1}],
                "message": "NRQL Syntax Error: Error at line 1 position 6, unexpected 'FORM'",
                "path": ["actor", "account", "nrql"],
            }],
        }),
    )
    .await;
    assert!(
        matches!(&syntax, Outcome::Error(m) if m.contains("NRQL Syntax Error")),
        "{syntax:?}"
    );
    let refused = ask(
        401,
        serde_json::json!({"errors": [{"message": format!("Invalid API key: {KEY}")}]}),
    )
    .await;
    match &refused {
        Outcome::Error(m) => {
            assert!(m.contains("401") && m.contains("Invalid API key"), "{m}");
            assert!(!m.contains("s3cret"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let no_account = ask(
        200,
        serde_json::json!({"data": {"actor": {"account": null}}}),
    )
    .await;
    assert!(matches!(no_account, Outcome::Error(_)), "{no_account:?}");
}

#[test]
fn the_region_picks_the_endpoint() {
    let mut n = NewRelicMetric::default();
    assert_eq!(endpoint(&n), "https://api.newrelic.com/graphql");
    n.region = Some(NewRelicRegion::Us);
    assert_eq!(endpoint(&n), "https://api.newrelic.com/graphql");
    n.region = Some(NewRelicRegion::Eu);
    assert_eq!(endpoint(&n), "https://api.eu.newrelic.com/graphql");
}
