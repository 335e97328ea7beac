//! Metric providers besides Prometheus, web and job: Graphite, InfluxDB, Datadog, New Relic and
//! CloudWatch. Each reads
//! one query's answer and hands the conditions a number (or a list of numbers); an answer with
//! no data is Inconclusive, never a success.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::analysis::{SecretKeyRef, WebHeader};
use super::duration::DURATION_PATTERN;

/// A Graphite render API query (`/render?target=...&format=json`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GraphiteMetric {
    /// Base URL of graphite-web (or another server of the render API), like
    /// `http://graphite.monitoring:8080`.
    #[schemars(length(min = 1))]
    pub address: String,
    /// The target, like `asPercent(app.errors, app.requests)`; `{{args.NAME}}` is replaced (a
    /// name, number or duration only). Each series gives its last non-null datapoint: one
    /// series a number, several a list, none (or only nulls) no data.
    #[schemars(length(min = 1))]
    pub query: String,
    /// How far back to read, like `5m` (sent as `from=-300s`). Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub from: Option<String>,
    /// Request timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Extra HTTP headers (an `Authorization` from a Secret, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebHeader>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// The query language of an InfluxDB metric.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum InfluxQueryLanguage {
    /// InfluxQL through InfluxDB 1.x's `/query` (needs `database`).
    Influxql,
    /// Flux through InfluxDB 2.x's `/api/v2/query` (needs `org`).
    #[default]
    Flux,
}

/// An InfluxDB query: InfluxQL (1.x) or Flux (2.x).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.language == 'flux' ? has(self.org) : has(self.database)").message("flux needs org, influxql needs database"))]
#[x_kube(validation = Rule::new("!(has(self.tokenSecret) && (has(self.usernameSecret) || has(self.passwordSecret)))").message("set tokenSecret or usernameSecret and passwordSecret, not both"))]
#[x_kube(validation = Rule::new("has(self.usernameSecret) == has(self.passwordSecret)").message("usernameSecret and passwordSecret go together"))]
pub struct InfluxDbMetric {
    /// Base URL of InfluxDB, like `http://influxdb.monitoring:8086`.
    #[schemars(length(min = 1))]
    pub address: String,
    /// `flux` (InfluxDB 2.x, as Argo Rollouts and Flagger query it) or `influxql` (InfluxDB 1.x).
    pub language: InfluxQueryLanguage,
    /// The query; `{{args.NAME}}` is replaced (a name, number or duration only). Flux: the
    /// `_value` of every record; InfluxQL: the last row's first value of every series. One value
    /// is a number, several a list, none no data.
    #[schemars(length(min = 1))]
    pub query: String,
    /// The database (InfluxQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The organization (Flux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// An API token in a Secret of the run's namespace, sent as `Authorization: Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<SecretKeyRef>,
    /// A user name in a Secret (InfluxDB 1.x authentication, sent as HTTP basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<SecretKeyRef>,
    /// Its password, in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
    /// Request timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// Datadog's metrics query API versions.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatadogApiVersion {
    /// `GET /api/v1/query`: a timeseries query; each series gives its last point.
    #[serde(rename = "v1")]
    V1,
    /// `POST /api/v2/query/scalar`: one or more queries reduced by `aggregator`, and a formula.
    #[serde(rename = "v2")]
    V2,
}

/// How Datadog's v2 scalar query reduces a series to one value.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatadogAggregator {
    /// The average.
    Avg,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The sum.
    Sum,
    /// The last value.
    Last,
    /// A percentile (for distribution metrics).
    Percentile,
    /// The mean.
    Mean,
    /// The L2 norm.
    L2norm,
    /// The area under the series.
    Area,
}

/// A Datadog metrics query, with the API and application keys from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.query) != (has(self.queries) && size(self.queries) > 0)").message("set query, or queries (v2), not both"))]
#[x_kube(validation = Rule::new("!has(self.queries) || size(self.queries) == 0 || self.apiVersion == 'v2'").message("queries needs apiVersion v2"))]
#[x_kube(validation = Rule::new("!has(self.formula) || self.apiVersion == 'v2'").message("formula needs apiVersion v2"))]
#[x_kube(validation = Rule::new("!(has(self.site) && has(self.address))").message("set site or address, not both"))]
pub struct DatadogMetric {
    /// `v1` or `v2` (as in Argo Rollouts, v1 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<DatadogApiVersion>,
    /// The query, like `sum:requests.error{service:checkout}.as_count()`; `{{args.NAME}}` is
    /// replaced (a name, number or duration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// v2: queries by name, for `formula` to combine, like `{errors: ..., requests: ...}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub queries: std::collections::BTreeMap<String, String>,
    /// v2: a formula over the queries' names, like `errors / requests`. Not set: the one query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// v2: how each query's series is reduced to one value. Defaults to `last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<DatadogAggregator>,
    /// How far back the query reads, like `5m`. Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// The Datadog site, like `datadoghq.eu` or `us5.datadoghq.com`: the API is
    /// `https://api.<site>`. Defaults to `datadoghq.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"))]
    pub site: Option<String>,
    /// The API's base URL instead of the site's, like `https://api.datadoghq.com` (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Secret, in the run's namespace, holding keys `api-key` and `app-key` (as Argo
    /// Rollouts' `datadog` Secret does).
    pub secret_ref: DatadogSecretRef,
    /// Request timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// The Secret with Datadog's keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatadogSecretRef {
    /// Name of the Secret; its keys `api-key` and `app-key` are read when measuring.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// New Relic's API regions.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NewRelicRegion {
    /// `https://api.newrelic.com/graphql`.
    Us,
    /// `https://api.eu.newrelic.com/graphql`.
    Eu,
}

/// An NRQL query through NerdGraph, New Relic's GraphQL API, with a user API key from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.region) && has(self.address))").message("set region or address, not both"))]
pub struct NewRelicMetric {
    /// The NRQL query, like `FROM Transaction SELECT percentage(count(*), WHERE error IS false)
    /// AS successRate WHERE appName = '{{args.app}}' SINCE 5 minutes ago`; `{{args.NAME}}` is
    /// replaced (a name, number or duration only). One result row is a map for the conditions
    /// (`result.successRate`, or `result['average.duration']`), several (FACET) a list of maps;
    /// no rows, or only rows of nulls, is no data.
    #[schemars(length(min = 1))]
    pub query: String,
    /// The account to query, like `1234567`. Not set: the Secret's key `account-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,18}$"))]
    pub account_id: Option<String>,
    /// `us` (the default) or `eu`: which NerdGraph endpoint is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<NewRelicRegion>,
    /// NerdGraph's URL instead of the region's, like `https://nr-proxy.internal/graphql` (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Secret, in the run's namespace, holding key `personal-api-key` (a New Relic user API
    /// key, as in Argo Rollouts' `newrelic` Secret) and, when `accountId` is not set,
    /// `account-id`.
    pub secret_ref: NewRelicSecretRef,
    /// Request timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// The Secret with New Relic's API key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NewRelicSecretRef {
    /// Name of the Secret; its key `personal-api-key` (and `account-id`) is read when measuring.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Amazon CloudWatch's GetMetricData, signed with AWS Signature Version 4.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetric {
    /// The queries, as GetMetricData takes them (Argo Rollouts' `metricDataQueries`): metrics
    /// (`metricStat`) and math over them (`expression`). Each query returning data (`returnData`,
    /// true unless set false) gives its newest datapoint: one a number for the conditions,
    /// several a list in the order given; none with datapoints is no data.
    #[schemars(length(min = 1, max = 500))]
    pub metric_data_queries: Vec<CloudWatchQuery>,
    /// How far back the queries read, like `5m` (as Argo Rollouts' `interval`). Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// The AWS region, like `eu-west-1`. Not set: the controller's `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$"))]
    pub region: Option<String>,
    /// CloudWatch's endpoint instead of the region's `https://monitoring.<region>.amazonaws.com`
    /// (a VPC endpoint, say). Requests are still signed for `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A Secret in the run's namespace with keys `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and, for temporary credentials, `AWS_SESSION_TOKEN`. Not set: the controller's web
    /// identity (`AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`, as EKS's IAM roles for
    /// service accounts set them), exchanged through STS `AssumeRoleWithWebIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<CloudWatchSecretRef>,
    /// Request timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// The Secret with AWS credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// One query of GetMetricData: a metric, or an expression over other queries' ids.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.metricStat) != has(self.expression)").message("a query sets exactly one of metricStat and expression"))]
pub struct CloudWatchQuery {
    /// The query's id, for expressions to name: starts with a lower-case letter.
    #[schemars(regex(pattern = r"^[a-z][a-zA-Z0-9_]{0,254}$"))]
    pub id: String,
    /// Metric math or a Metrics Insights query over other queries, like `errors / requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub expression: Option<String>,
    /// A name for the series in CloudWatch's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A metric, with a statistic over a period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<CloudWatchMetricStat>,
    /// The period of an expression's datapoints, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period: Option<i32>,
    /// False: the query only feeds expressions and gives no value. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_data: Option<bool>,
}

/// A metric, a statistic and a period.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStat {
    /// The metric.
    pub metric: CloudWatchMetricId,
    /// Seconds per datapoint: 1, 5, 10, 30 or a multiple of 60.
    #[schemars(range(min = 1))]
    pub period: i32,
    /// The statistic, like `Sum`, `Average`, `p99`.
    #[schemars(length(min = 1))]
    pub stat: String,
    /// The unit to convert to, like `Count` or `Milliseconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A metric by namespace, name and dimensions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricId {
    /// Like `AWS/ApplicationELB`.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// Like `HTTPCode_Target_5XX_Count`.
    #[schemars(length(min = 1))]
    pub metric_name: String,
    /// Like `[{name: LoadBalancer, value: app/shop/123}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30))]
    pub dimensions: Vec<CloudWatchDimension>,
}

/// A dimension of a metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchDimension {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub value: String,
}
