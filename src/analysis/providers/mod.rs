//! Metric providers: where a measurement comes from. The run state machine never names one; the
//! controller hands each due metric to [`Providers::measure`].

pub mod cloudwatch;
pub mod datadog;
pub mod graphite;
pub mod influxdb;
pub mod job;
pub mod network;
pub mod newrelic;
pub mod prometheus;
pub mod query;
pub mod sigv4;
#[cfg(test)]
pub mod test_server;
pub mod web;
pub mod xml;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::redact::Redactor;
use super::value::Outcome;
use crate::api::analysis::{AnalysisRun, Measurement, Metric, SecretKeyRef, WebHeader};

/// A source of measurements.
pub trait MetricProvider {
    /// Takes a new measurement of `metric` (its `{{args}}` already replaced), or, with `resume`,
    /// looks again at one in progress.
    fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        resume: Option<&Measurement>,
    ) -> impl Future<Output = Outcome> + Send;

    /// Releases what measurements of `run` hold (Jobs). Called once the run has ended.
    fn clean_up(&self, run: &AnalysisRun) -> impl Future<Output = Result<(), String>> + Send;
}

/// Why a `job` metric is not measured when the controller runs with `--job-provider=false`.
pub const JOB_PROVIDER_DISABLED: &str =
    "the job provider is disabled in this installation (--job-provider=false)";

/// Every provider, behind one dispatch on the metric's `provider`.
#[derive(Clone)]
pub struct Providers {
    pub prometheus: prometheus::Prometheus,
    pub web: web::Web,
    pub graphite: graphite::Graphite,
    pub influxdb: influxdb::InfluxDb,
    pub datadog: datadog::Datadog,
    pub new_relic: newrelic::NewRelic,
    pub cloud_watch: cloudwatch::CloudWatch,
    /// None with `--job-provider=false`: the controller has no rights on Jobs then.
    pub job: Option<job::JobProvider>,
}

impl Providers {
    /// `denied`: address ranges no measurement connects to (`--analysis-denied-cidrs`).
    pub fn new(
        client: kube::Client,
        job_provider: bool,
        denied: network::Denied,
    ) -> Result<Providers, String> {
        let http = http_clients(denied)?;
        Ok(Providers {
            prometheus: prometheus::Prometheus::new(http.clone(), client.clone()),
            web: web::Web::new(http.clone(), client.clone()),
            graphite: graphite::Graphite::new(http.clone(), client.clone()),
            influxdb: influxdb::InfluxDb::new(http.clone(), client.clone()),
            datadog: datadog::Datadog::new(http.clone(), client.clone()),
            new_relic: newrelic::NewRelic::new(http.clone(), client.clone()),
            cloud_watch: cloudwatch::CloudWatch::new(http, client.clone()),
            job: job_provider.then(|| job::JobProvider::new(client)),
        })
    }
}

impl MetricProvider for Providers {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        resume: Option<&Measurement>,
    ) -> Outcome {
        let p = &metric.provider;
        if p.prometheus.is_some() {
            self.prometheus.measure(run, metric, resume).await
        } else if p.web.is_some() {
            self.web.measure(run, metric, resume).await
        } else if p.graphite.is_some() {
            self.graphite.measure(run, metric, resume).await
        } else if p.influxdb.is_some() {
            self.influxdb.measure(run, metric, resume).await
        } else if p.datadog.is_some() {
            self.datadog.measure(run, metric, resume).await
        } else if p.new_relic.is_some() {
            self.new_relic.measure(run, metric, resume).await
        } else if p.cloud_watch.is_some() {
            self.cloud_watch.measure(run, metric, resume).await
        } else if p.job.is_some() {
            match &self.job {
                Some(job) => job.measure(run, metric, resume).await,
                None => Outcome::Error(JOB_PROVIDER_DISABLED.into()),
            }
        } else {
            Outcome::Error(
                "provider: set one of prometheus, web, job, graphite, influxdb, datadog, newRelic, \
                 cloudWatch"
                    .into(),
            )
        }
    }

    async fn clean_up(&self, run: &AnalysisRun) -> Result<(), String> {
        match &self.job {
            Some(job) => job.clean_up(run).await,
            // No Job was ever created, and listing them would be refused.
            None => Ok(()),
        }
    }
}

/// HTTP clients: one verifying certificates, one not (`insecure: true`). Both use the process's
/// rustls provider (ring), so there is one TLS stack. Neither follows redirects (the web
/// provider does, when a metric asks, without its Secrets) nor connects to a denied address.
#[derive(Clone)]
pub struct HttpClients {
    pub verifying: reqwest::Client,
    pub insecure: reqwest::Client,
    pub denied: network::Denied,
}

impl HttpClients {
    pub fn pick(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            &self.insecure
        } else {
            &self.verifying
        }
    }
}

pub fn http_clients(denied: network::Denied) -> Result<HttpClients, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let build = |insecure: bool| {
        reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(insecure)
            .connect_timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(network::Resolver(denied.clone()))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))
    };
    Ok(HttpClients {
        verifying: build(false)?,
        insecure: build(true)?,
        denied: denied.clone(),
    })
}

/// An error with its causes, so "connection refused" is not hidden behind "request failed";
/// the URL a reqwest error names is left out (the caller names the URL it was given, which
/// redaction knows).
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let one = |e: &(dyn std::error::Error + 'static)| {
        let text = e.to_string();
        match e.downcast_ref::<reqwest::Error>().and_then(|r| r.url()) {
            Some(url) => text
                .replace(&format!(" for url ({url})"), "")
                .replace(url.as_str(), "<url>"),
            None => text,
        }
    };
    let mut s = one(e);
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&one(cause));
        source = cause.source();
    }
    s
}

/// Reads one key of a Secret in `namespace`.
pub async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<String, String> {
    optional_secret_value(client, namespace, r)
        .await?
        .ok_or_else(|| format!("Secret {:?} has no key {:?}", r.name, r.key))
}

/// Reads one key of a Secret in `namespace`; `None` when the Secret has no such key.
pub async fn optional_secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<Option<String>, String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&r.name)
        .await
        .map_err(|e| match e {
            // The chart grants no Secrets by default: say which value grants this one.
            kube::Error::Api(s) if s.code == 403 => format!(
                "fledge may not read Secret {:?} in namespace {namespace:?} ({}): with the Helm \
                 chart, set rbac.analysis.secrets=true and, if rbac.analysis.secretNames is set, \
                 add {:?} to it",
                r.name, s.message, r.name
            ),
            e => format!("reading Secret {:?}: {e}", r.name),
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|s| s.clone().into_bytes())
        });
    bytes
        .map(|b| {
            String::from_utf8(b)
                .map_err(|_| format!("Secret {:?} key {:?} is not UTF-8", r.name, r.key))
        })
        .transpose()
}

/// Request headers, those from Secrets read now.
#[derive(Clone, Debug, Default)]
pub struct Headers {
    pub values: BTreeMap<String, String>,
    /// Names of the headers whose value came from a Secret: never sent across a redirect, and
    /// redacted from what the measurement shows.
    pub from_secrets: BTreeSet<String>,
}

impl Headers {
    /// Takes the Secrets' values out of what a measurement shows (an answer may echo them).
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.from_secrets
                .iter()
                .filter_map(|k| self.values.get(k).cloned()),
        )
    }
}

/// Header names and values, those from Secrets read now.
pub async fn headers(
    client: &kube::Client,
    namespace: &str,
    headers: &[WebHeader],
) -> Result<Headers, String> {
    let mut out = Headers::default();
    for h in headers {
        let value = match (&h.value, &h.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                out.from_secrets.insert(h.key.clone());
                secret_value(client, namespace, &from.secret_key_ref).await?
            }
            (None, None) => return Err(format!("header {:?} has no value", h.key)),
        };
        out.values.insert(h.key.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;
    use tower_test::mock;

    use super::*;
    use crate::api::analysis::{JobMetric, MetricProvider as ProviderSpec};

    fn mock_client() -> (kube::Client, mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "default"), handle)
    }

    #[tokio::test]
    async fn a_disabled_job_provider_refuses_job_metrics_without_calling_the_api() {
        let (client, mut handle) = mock_client();
        let providers =
            Providers::new(client, false, network::Denied::default()).expect("providers");
        let run: AnalysisRun = serde_json::from_value(json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "web", "uid": "u"},
            "spec": {"metrics": []},
        }))
        .expect("a run");
        let metric = Metric {
            name: "smoke".into(),
            provider: ProviderSpec {
                job: Some(JobMetric::default()),
                ..Default::default()
            },
            ..Default::default()
        };
        // An API call would wait for the mocked server forever: give up instead.
        let quick = std::time::Duration::from_secs(5);
        let measured = tokio::time::timeout(quick, providers.measure(&run, &metric, None)).await;
        assert_eq!(
            measured.expect("measured without the API"),
            Outcome::Error(JOB_PROVIDER_DISABLED.into())
        );
        let cleaned = tokio::time::timeout(quick, providers.clean_up(&run)).await;
        assert_eq!(cleaned.expect("cleaned up without the API"), Ok(()));
        drop(providers);
        // Once the client is dropped the mocked server sees the end of its requests; a request
        // the providers kept waiting would hang here instead.
        let next = tokio::time::timeout(quick, handle.next_request()).await;
        assert!(next.expect("the client went").is_none(), "no API request");
    }

    #[tokio::test]
    async fn a_forbidden_secret_names_the_chart_value_to_set() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/web/secrets/prom-token"
            );
            crate::test_support::reply(
                send,
                403,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Forbidden", "code": 403, "message": "secrets is forbidden"}),
            );
        });
        let r = SecretKeyRef {
            name: "prom-token".into(),
            key: "token".into(),
        };
        // A request that never comes, or an answer never read, fails the test instead of hanging it.
        let quick = std::time::Duration::from_secs(10);
        let error = tokio::time::timeout(quick, secret_value(&client, "web", &r))
            .await
            .expect("answered in time")
            .expect_err("forbidden");
        tokio::time::timeout(quick, server)
            .await
            .expect("the mocked API server is done")
            .expect("the mocked API server");
        assert!(
            error.contains("rbac.analysis.secrets=true")
                && error.contains("rbac.analysis.secretNames")
                && error.contains("\"prom-token\""),
            "{error}"
        );
    }
}
