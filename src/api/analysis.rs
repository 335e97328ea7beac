//! Metric analysis: `AnalysisTemplate`, `ClusterAnalysisTemplate` and `AnalysisRun`.
//!
//! Field names follow Argo Rollouts. A template names metrics and how to judge them; a Rollout
//! creates an `AnalysisRun` from one or more templates, with its arguments resolved, and the
//! analysis controller measures it until it is Successful, Failed, Error or Inconclusive.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::duration::{DURATION_OR_ARG_PATTERN, DURATION_PATTERN};
pub use super::int_or_arg::IntOrArg;
pub use super::providers::{
    CloudWatchDimension, CloudWatchMetric, CloudWatchMetricId, CloudWatchMetricStat,
    CloudWatchQuery, CloudWatchSecretRef, DatadogAggregator, DatadogApiVersion, DatadogMetric,
    DatadogSecretRef, GraphiteMetric, InfluxDbMetric, InfluxQueryLanguage, NewRelicMetric,
    NewRelicRegion, NewRelicSecretRef,
};

/// Label on an AnalysisRun: what it gates (`step`, `background`, `prePromotion`, `postPromotion`).
pub const ANALYSIS_KIND_LABEL: &str = "fledge.dev/analysis";
/// Label on a step AnalysisRun: the index of its canary step.
pub const ANALYSIS_STEP_LABEL: &str = "fledge.dev/step";
/// Label on an AnalysisRun: the analysis attempt of its revision (a retry starts a new one).
pub const ANALYSIS_ATTEMPT_LABEL: &str = "fledge.dev/attempt";
/// Label on a Job the job provider creates: the AnalysisRun it measures for.
pub const ANALYSIS_RUN_LABEL: &str = "fledge.dev/analysis-run";

/// Metrics, and how to judge them, for a Rollout to run as an AnalysisRun. Namespaced: only
/// Rollouts of its namespace use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "flat",
    category = "fledge",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the metrics use as `{{args.NAME}}`. One without a value must be given by the
    /// Rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<Argument>,
    /// The metrics to measure.
    #[schemars(length(min = 1, max = 32))]
    pub metrics: Vec<Metric>,
    /// Metrics measured and recorded but never deciding the run's phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric. Defaults to 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// A cluster-wide [`AnalysisTemplate`]: Rollouts of every namespace may use it
/// (`clusterScope: true`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "flcat",
    category = "fledge",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    /// Arguments the metrics use as `{{args.NAME}}`. One without a value must be given by the
    /// Rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<Argument>,
    /// The metrics to measure.
    #[schemars(length(min = 1, max = 32))]
    pub metrics: Vec<Metric>,
    /// Metrics measured and recorded but never deciding the run's phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric. Defaults to 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(c: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: c.args,
            metrics: c.metrics,
            dry_run: c.dry_run,
            measurement_retention: c.measurement_retention,
        }
    }
}

/// An argument: a literal `value`, or a value taken from a Secret or from the Rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("an argument sets at most one of value and valueFrom"))]
pub struct Argument {
    /// Name used as `{{args.NAME}}`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from, when not given literally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// The source of an argument's value: exactly one of `secretKeyRef` and `fieldRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.fieldRef)").message("valueFrom sets exactly one of secretKeyRef and fieldRef"))]
pub struct ArgumentValueFrom {
    /// A key of a Secret in the run's namespace; read when measuring, never copied into the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field of the Rollout, like `metadata.name` or `metadata.labels['app']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A field of the Rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Path of the field: dot-separated names, map keys as `['key']`, like
    /// `metadata.labels['app']`.
    #[schemars(length(min = 1))]
    pub field_path: String,
}

/// A metric: where to read it, how often, and when it counts as success or failure.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name, unique within the run.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Where the measurement comes from.
    pub provider: MetricProvider,
    /// Time between measurements, like `30s` or `1m`; at least 1s (a shorter one, `0s` included,
    /// counts as 1s). Without it the metric is measured `count` times 1s apart (once when `count`
    /// is not set either). Provider errors are retried at the same pace. May be an argument,
    /// `"{{args.NAME}}"`, checked when the run is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_OR_ARG_PATTERN))]
    pub interval: Option<String>,
    /// Wait before the first measurement, like `1m`; or `"{{args.NAME}}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_OR_ARG_PATTERN))]
    pub initial_delay: Option<String>,
    /// Number of measurements that give a result (provider errors are retried and do not
    /// count). `0`, or not set with an `interval`: until the run is terminated (a background
    /// analysis ends with its rollout). Not set without an `interval`: once. A number, or
    /// `"{{args.NAME}}"` (as are the three limits below), checked when the run is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrArg>,
    /// CEL expression over `result` that a successful measurement satisfies, like
    /// `result >= 0.99`. Functions `isNaN`, `isInf` and `default(x, y)` are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// CEL expression over `result` that a failed measurement satisfies. With both conditions,
    /// failure wins and a result meeting neither is Inconclusive; with neither, any value is a
    /// success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated; one more fails the run. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrArg>,
    /// Inconclusive measurements (including no data) tolerated; one more makes the run
    /// Inconclusive. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrArg>,
    /// Provider errors in a row that make the run Error. Defaults to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrArg>,
    /// Successful measurements in a row after which the metric is Successful, even before
    /// `count` is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consecutive_success_limit: Option<i32>,
}

/// Where a metric is read: exactly one provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.prometheus), has(self.web), has(self.job), has(self.graphite), has(self.influxdb), has(self.datadog), has(self.newRelic), has(self.cloudWatch)].filter(x, x).size() == 1").message("provider sets exactly one of prometheus, web, job, graphite, influxdb, datadog, newRelic, cloudWatch"))]
pub struct MetricProvider {
    /// A PromQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// An HTTP endpoint answering JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// A Kubernetes Job per measurement: succeeded is success, failed is failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// A Graphite render API query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphite: Option<GraphiteMetric>,
    /// An InfluxDB query: Flux (2.x) or InfluxQL (1.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub influxdb: Option<InfluxDbMetric>,
    /// A Datadog metrics query (API v1 or v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<DatadogMetric>,
    /// An NRQL query through New Relic's NerdGraph API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_relic: Option<NewRelicMetric>,
    /// Amazon CloudWatch's GetMetricData.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch: Option<CloudWatchMetric>,
}

/// A Prometheus instant query.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus HTTP API, like `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1))]
    pub address: String,
    /// The PromQL query; `{{args.NAME}}` is replaced by the argument's value. A scalar or a
    /// one-element vector gives a number, a longer vector a list, an empty vector no data.
    #[schemars(length(min = 1))]
    pub query: String,
    /// Query timeout, like `10s`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebHeader>,
    /// How to authenticate to Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<PrometheusAuthentication>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// Authentication to Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAuthentication {
    /// A bearer token in a Secret of the run's namespace, sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
}

/// An HTTP header; its value is literal or from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("a header sets exactly one of value and valueFrom"))]
pub struct WebHeader {
    /// Header name.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Header value; `{{args.NAME}}` is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Header value from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueFrom>,
}

/// The source of a header value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueFrom {
    /// A key of a Secret in the run's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// An HTTP request whose JSON answer is the measurement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// URL; `{{args.NAME}}` is replaced.
    #[schemars(length(min = 1))]
    pub url: String,
    /// `GET` (default), `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebMethod>,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebHeader>,
    /// Request body, for `POST` and `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// JSONPath of the value in the answer, like `$.data.successRate` (kubectl's `{$.x}` works
    /// too). Not set: the whole answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Request timeout in seconds, for the whole exchange (redirects and reading the answer
    /// included). Defaults to 10, at most 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: Option<i64>,
    /// Follow redirects (at most 10). Off by default: a redirect is then an error. Headers from
    /// Secrets are never sent after a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// The result is the answer's HTTP status code (a number, like `200`) instead of its JSON:
    /// every status is an answer, so conditions decide, like `result >= 200 && result < 300`.
    /// For hooks that answer by status code, like Flagger's webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_status_code: Option<bool>,
}

/// HTTP methods of the web provider.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
}

/// A Job run per measurement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels and annotations for the Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JobMetadata>,
    /// The Job's spec. Its success or failure is the measurement.
    pub spec: JobSpec,
}

/// Labels and annotations of a measurement Job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Metrics measured in dry-run: recorded, never deciding the phase.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// The metrics: a regular expression searched for in each metric's name, as in Argo Rollouts
    /// (`.*` or `*` for all, `^latency$` for exactly one). It must name a metric of the run.
    #[schemars(length(min = 1))]
    pub metric_name: String,
}

/// How many measurements of some metrics to keep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// The metrics: a regular expression searched for in each metric's name, as in Argo Rollouts
    /// (`.*` or `*` for all, `^latency$` for exactly one). It must name a metric of the run. A
    /// metric takes the first rule naming it exactly, else the first whose expression matches.
    #[schemars(length(min = 1))]
    pub metric_name: String,
    /// Measurements to keep.
    #[schemars(range(min = 1))]
    pub limit: i32,
}

/// Labels and annotations put on every AnalysisRun made for one analysis of a Rollout (Argo
/// Rollouts' `analysisRunMetadata`). fledge's own labels (`fledge.dev/...`,
/// `rollouts-pod-template-hash`) cannot be set here.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels added to the runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One analysis: metrics measured until they all pass, or one fails. Created by a Rollout (which
/// owns it) from its templates, with the arguments resolved.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "flar",
    category = "fledge",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The metrics to measure, with `{{args.NAME}}` placeholders.
    #[schemars(length(min = 1, max = 64))]
    pub metrics: Vec<Metric>,
    /// The arguments: literal values, or Secret references read when measuring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Metrics measured and recorded but never deciding the run's phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric. Defaults to 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Stop measuring: the run ends Terminated, never Successful, unless its metrics have already
    /// decided it. Set by the Rollout when the analysis is no longer needed (the rollout was
    /// promoted, aborted or replaced, the step was skipped); a gate never passes on a Terminated
    /// run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminate: bool,
}

/// The state of an AnalysisRun.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Pending, Running, Successful, Failed, Error, Inconclusive or Terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    /// Why the run is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the first measurement was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Per metric: measurements and counters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
}

/// Phases of a run, a metric and a measurement.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum AnalysisPhase {
    /// Not started.
    #[default]
    Pending,
    /// Measuring.
    Running,
    /// Every measurement within its limits.
    Successful,
    /// More failures than `failureLimit`.
    Failed,
    /// A provider failed `consecutiveErrorLimit` times in a row, or the run is invalid.
    Error,
    /// More inconclusive results (or no data) than `inconclusiveLimit`.
    Inconclusive,
    /// Stopped by `spec.terminate` before its metrics decided: no verdict, never a success.
    Terminated,
}

impl MetricProvider {
    /// The provider's name, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        self.kinds().first().copied().unwrap_or("none")
    }

    /// The names of the providers set (one, when the spec is valid).
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            ("prometheus", self.prometheus.is_some()),
            ("web", self.web.is_some()),
            ("job", self.job.is_some()),
            ("graphite", self.graphite.is_some()),
            ("influxdb", self.influxdb.is_some()),
            ("datadog", self.datadog.is_some()),
            ("newRelic", self.new_relic.is_some()),
            ("cloudWatch", self.cloud_watch.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

impl AnalysisPhase {
    /// True when the run (or metric) will not change any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Terminated => "Terminated",
        }
    }
}

/// Measurements and counters of one metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name.
    pub name: String,
    /// The metric's phase.
    pub phase: AnalysisPhase,
    /// Why the metric is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The metric is measured in dry-run: it never decides the run's phase.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Measurements taken.
    #[serde(default)]
    pub count: i32,
    /// Successful measurements.
    #[serde(default)]
    pub successful: i32,
    /// Failed measurements.
    #[serde(default)]
    pub failed: i32,
    /// Inconclusive measurements (including no data).
    #[serde(default)]
    pub inconclusive: i32,
    /// Measurements that ended in a provider error.
    #[serde(default)]
    pub error: i32,
    /// Provider errors in a row.
    #[serde(default)]
    pub consecutive_error: i32,
    /// Successful measurements in a row.
    #[serde(default)]
    pub consecutive_success: i32,
    /// The last measurements, oldest first (at most `measurementRetention`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// One measurement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Running (a Job in progress), Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,
    /// The value, as JSON text; a vector of more than 5 elements as its first 5 and its length,
    /// and at most 512 bytes (a longer value is cut, with its full size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An explanation: the provider's error, or why the result is inconclusive. At most 512
    /// bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the measurement started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Provider details, like the name of the Job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}
