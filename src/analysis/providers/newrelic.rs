//! New Relic: an NRQL query through NerdGraph, New Relic's GraphQL API (`POST /graphql` with the
//! user API key in `API-Key`). The NRQL travels as a GraphQL variable, so no query text is ever
//! spliced into the GraphQL document. The key comes from a Secret and is redacted from
//! everything a measurement shows.

use kube::ResourceExt;

use super::{HttpClients, MetricProvider, query};
use crate::analysis::redact::Redactor;
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{
    AnalysisRun, Measurement, Metric, NewRelicMetric, NewRelicRegion, SecretKeyRef,
};

/// The Secret's keys, as in Argo Rollouts' `newrelic` Secret.
pub const API_KEY: &str = "personal-api-key";
pub const ACCOUNT_ID: &str = "account-id";

/// The GraphQL document: the account and the NRQL are variables.
pub const DOCUMENT: &str = "query($accountId: Int!, $nrql: Nrql!) { actor { account(id: \
                            $accountId) { nrql(query: $nrql) { results } } } }";

#[derive(Clone)]
pub struct NewRelic {
    http: HttpClients,
    client: kube::Client,
}

impl NewRelic {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        NewRelic { http, client }
    }
}

/// What the Secret (or the metric) gives: the key, and the account to query.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub api_key: String,
    pub account_id: u64,
}

impl MetricProvider for NewRelic {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(n) = &metric.provider.new_relic else {
            return Outcome::Error("not a newRelic metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let key = |key: &str| SecretKeyRef {
            name: n.secret_ref.name.clone(),
            key: key.into(),
        };
        let api_key = match super::secret_value(&self.client, &ns, &key(API_KEY)).await {
            Ok(k) => k.trim().to_string(),
            Err(e) => return Outcome::Error(e),
        };
        let account = match &n.account_id {
            Some(a) => a.clone(),
            None => match super::secret_value(&self.client, &ns, &key(ACCOUNT_ID)).await {
                Ok(a) => a.trim().to_string(),
                Err(e) => {
                    return Outcome::Error(format!(
                        "{e} (set newRelic.accountId, or the Secret's key {ACCOUNT_ID:?})"
                    ));
                }
            },
        };
        let Ok(account_id) = account.parse::<u64>() else {
            return Outcome::Error(format!("newRelic account id {account:?} is not a number"));
        };
        let access = Access {
            api_key,
            account_id,
        };
        measure(&self.http, n, &access).await
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// NerdGraph's URL: `address`, or the region's.
pub fn endpoint(n: &NewRelicMetric) -> String {
    match (&n.address, n.region) {
        (Some(a), _) => a.clone(),
        (None, Some(NewRelicRegion::Eu)) => "https://api.eu.newrelic.com/graphql".into(),
        (None, _) => "https://api.newrelic.com/graphql".into(),
    }
}

/// The request's JSON body.
pub fn body(n: &NewRelicMetric, account_id: u64) -> serde_json::Value {
    serde_json::json!({
        "query": DOCUMENT,
        "variables": {"accountId": account_id, "nrql": n.query.trim()},
    })
}

/// Asks NerdGraph and turns its answer into an outcome, the key taken out of it.
pub async fn measure(http: &HttpClients, n: &NewRelicMetric, access: &Access) -> Outcome {
    let redactor = Redactor::new([access.api_key.clone()]);
    redactor.outcome(exchange(http, n, access).await)
}

async fn exchange(http: &HttpClients, n: &NewRelicMetric, access: &Access) -> Outcome {
    let address = endpoint(n);
    let url = match query::endpoint(http, "newRelic", &address, "") {
        Ok(u) => u,
        Err(e) => return Outcome::Error(e),
    };
    let request = http
        .pick(false)
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .header("API-Key", &access.api_key)
        .body(body(n, access.account_id).to_string());
    let shown = format!("newRelic at {address}");
    let (status, text) =
        match query::exchange(request, &shown, query::timeout(n.timeout.as_deref())).await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
    if !status.is_success() {
        let why = graphql_errors(&text).unwrap_or_else(|| query::snippet(&text));
        return Outcome::Error(format!("{shown} answered {status}: {why}"));
    }
    outcome(&text)
}

/// GraphQL's `{"errors": [{"message": ...}, ...]}`, as text; `None` when there are none.
fn graphql_errors(text: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let errors = json.get("errors")?.as_array()?;
    if errors.is_empty() {
        return None;
    }
    Some(
        errors
            .iter()
            .map(|e| {
                e.get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| e.to_string(), str::to_string)
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// `{"data": {"actor": {"account": {"nrql": {"results": [{...}, ...]}}}}}`: one row is a map,
/// several a list of maps (as Argo Rollouts gives them). No rows, or rows whose every value is
/// null (`average(duration)` over no events), is no data. Any GraphQL error is an error, even
/// beside partial data: NerdGraph answers errors with 200.
pub fn outcome(text: &str) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("newRelic's answer is not JSON: {e}")),
    };
    if let Some(errors) = graphql_errors(text) {
        return Outcome::Error(format!("newRelic: {errors}"));
    }
    let Some(rows) = json
        .pointer("/data/actor/account/nrql/results")
        .and_then(|r| r.as_array())
    else {
        return Outcome::Error(format!(
            "newRelic's answer has no data.actor.account.nrql.results: {}",
            query::snippet(text)
        ));
    };
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| {
            r.as_object()
                .is_some_and(|m| m.values().any(|v| !v.is_null()))
        })
        .cloned()
        .collect();
    match rows.len() {
        0 => Outcome::NoData("the NRQL query returned no rows with values".into()),
        1 => Outcome::Value(MetricValue::Json(rows.into_iter().next().expect("one row"))),
        _ => Outcome::Value(MetricValue::Json(serde_json::Value::Array(rows))),
    }
}

#[cfg(test)]
#[path = "newrelic_tests.rs"]
mod tests;
