//! Amazon CloudWatch: `GetMetricData` through CloudWatch's Query API (`POST /` with a form body,
//! an XML answer), signed with SigV4 ([`super::sigv4`]). Credentials come from a Secret, or from
//! the controller's web identity (IAM roles for service accounts) exchanged through STS
//! `AssumeRoleWithWebIdentity`; the secret key, session token and identity token are redacted
//! from everything a measurement shows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::sigv4::{self, Credentials};
use super::{HttpClients, MetricProvider, query, xml};
use crate::analysis::quote::percent_encode;
use crate::analysis::redact::Redactor;
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, CloudWatchMetric, Measurement, Metric, SecretKeyRef};

/// The Secret's keys: the names of AWS's own environment variables.
pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// How far back the queries read when the metric does not say (Argo Rollouts' default too).
/// Temporary credentials are asked for again this long before they expire.
const RENEW_BEFORE: SignedDuration = SignedDuration::from_secs(300);
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

#[derive(Clone)]
pub struct CloudWatch {
    http: HttpClients,
    client: kube::Client,
    /// Credentials STS gave for the web identity, by role, region and endpoint, with their
    /// expiry: one exchange per hour or so, not one per measurement.
    assumed: Arc<Mutex<BTreeMap<String, (Credentials, Timestamp)>>>,
}

impl CloudWatch {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        CloudWatch {
            http,
            client,
            assumed: Arc::default(),
        }
    }

    async fn credentials_in_secret(&self, ns: &str, name: &str) -> Result<Credentials, String> {
        let key = |key: &str| SecretKeyRef {
            name: name.to_string(),
            key: key.into(),
        };
        Ok(Credentials {
            access_key_id: super::secret_value(&self.client, ns, &key(ACCESS_KEY_ID))
                .await?
                .trim()
                .to_string(),
            secret_access_key: super::secret_value(&self.client, ns, &key(SECRET_ACCESS_KEY))
                .await?
                .trim()
                .to_string(),
            session_token: super::optional_secret_value(&self.client, ns, &key(SESSION_TOKEN))
                .await?
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        })
    }

    async fn credentials_by_web_identity(
        &self,
        identity: &WebIdentity,
        region: &str,
    ) -> Result<Credentials, String> {
        let cache_key = format!("{}|{region}|{:?}", identity.role_arn, identity.sts_endpoint);
        let now = Timestamp::now();
        if let Some((c, expires)) = self.assumed.lock().expect("cache").get(&cache_key)
            && now + RENEW_BEFORE < *expires
        {
            return Ok(c.clone());
        }
        // Read each time: the kubelet rotates the projected token.
        let token = std::fs::read_to_string(&identity.token_file)
            .map_err(|e| format!("reading {}: {e}", identity.token_file))?;
        let (credentials, expires) =
            assume_role(&self.http, identity, region, token.trim()).await?;
        if let Some(expires) = expires {
            self.assumed
                .lock()
                .expect("cache")
                .insert(cache_key, (credentials.clone(), expires));
        }
        Ok(credentials)
    }
}

impl MetricProvider for CloudWatch {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(c) = &metric.provider.cloud_watch else {
            return Outcome::Error("not a cloudWatch metric".into());
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(region) = c
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
        else {
            return Outcome::Error(
                "cloudWatch: no region: set cloudWatch.region, or AWS_REGION in the controller's \
                 environment"
                    .into(),
            );
        };
        let credentials = match &c.secret_ref {
            Some(s) => {
                self.credentials_in_secret(&run.namespace().unwrap_or_default(), &s.name)
                    .await
            }
            None => match WebIdentity::from_env(env) {
                Some(identity) => self.credentials_by_web_identity(&identity, &region).await,
                None => Err(
                    "cloudWatch: no credentials: set cloudWatch.secretRef, or give \
                             fledge's controller a web identity (AWS_ROLE_ARN and \
                             AWS_WEB_IDENTITY_TOKEN_FILE, as IAM roles for service accounts \
                             set them)"
                        .into(),
                ),
            },
        };
        match credentials {
            Ok(credentials) => {
                measure(&self.http, c, &region, &credentials, Timestamp::now()).await
            }
            Err(e) => Outcome::Error(e),
        }
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// CloudWatch's endpoint: `address`, or the region's.
pub fn endpoint(c: &CloudWatchMetric, region: &str) -> String {
    match &c.address {
        Some(a) => a.clone(),
        None => format!("https://monitoring.{region}.amazonaws.com"),
    }
}

/// `name=value&...`, each value percent-encoded as SigV4 and form decoding both read it.
fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A time as the Query API takes it: ISO 8601 in UTC, whole seconds.
fn iso(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// The parameters of GetMetricData over the window ending at `now`, the newest datapoint first.
pub fn parameters(c: &CloudWatchMetric, now: Timestamp) -> Vec<(String, String)> {
    let window = c
        .interval
        .as_deref()
        .and_then(|i| crate::api::duration::parse(i).ok())
        .filter(|i| !i.is_zero())
        .unwrap_or(crate::api::defaults::CLOUDWATCH_INTERVAL);
    let start = SignedDuration::try_from(window)
        .ok()
        .and_then(|w| now.checked_sub(w).ok())
        .unwrap_or(now);
    let mut out: Vec<(String, String)> = vec![
        ("Action".into(), "GetMetricData".into()),
        ("Version".into(), "2010-08-01".into()),
        ("StartTime".into(), iso(start)),
        ("EndTime".into(), iso(now)),
        ("ScanBy".into(), "TimestampDescending".into()),
    ];
    for (i, q) in c.metric_data_queries.iter().enumerate() {
        let at = format!("MetricDataQueries.member.{}", i + 1);
        let mut add = |k: &str, v: String| out.push((format!("{at}.{k}"), v));
        add("Id", q.id.clone());
        if let Some(e) = &q.expression {
            add("Expression", e.clone());
        }
        if let Some(l) = &q.label {
            add("Label", l.clone());
        }
        if let Some(s) = &q.metric_stat {
            add("MetricStat.Metric.Namespace", s.metric.namespace.clone());
            add("MetricStat.Metric.MetricName", s.metric.metric_name.clone());
            for (j, d) in s.metric.dimensions.iter().enumerate() {
                let d_at = format!("MetricStat.Metric.Dimensions.member.{}", j + 1);
                add(&format!("{d_at}.Name"), d.name.clone());
                add(&format!("{d_at}.Value"), d.value.clone());
            }
            add("MetricStat.Period", s.period.to_string());
            add("MetricStat.Stat", s.stat.clone());
            if let Some(u) = &s.unit {
                add("MetricStat.Unit", u.clone());
            }
        }
        if let Some(p) = q.period {
            add("Period", p.to_string());
        }
        if let Some(r) = q.return_data {
            add("ReturnData", r.to_string());
        }
    }
    out
}

/// Sends a form to an AWS Query API, signed when `credentials` are given.
async fn post_form(
    http: &HttpClients,
    what: &str,
    address: &str,
    signing: Option<(&Credentials, &str, &str, Timestamp)>,
    body: String,
    limit: Duration,
) -> Result<(reqwest::StatusCode, String), String> {
    let url = query::endpoint(http, what, address, "/")?;
    let mut request = http
        .pick(false)
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, FORM);
    if let Some((credentials, region, service, now)) = signing {
        let amz_date = sigv4::amz_date(now);
        let host = sigv4::host(&url);
        let headers = [("content-type".to_string(), FORM.to_string())];
        let signed = sigv4::sign(
            credentials,
            &sigv4::Scope {
                region,
                service,
                amz_date: &amz_date,
            },
            &sigv4::Request {
                method: "POST",
                host: &host,
                path: url.path(),
                query: &[],
                headers: &headers,
                body: body.as_bytes(),
            },
        );
        for (k, v) in signed {
            request = request.header(k, v);
        }
    }
    query::exchange(request.body(body), &format!("{what} at {address}"), limit).await
}

/// The Query APIs' `<ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>`, as text.
fn aws_error(text: &str) -> String {
    match xml::parse(text) {
        Ok(doc) => match (
            doc.text_at(&["Error", "Code"]),
            doc.text_at(&["Error", "Message"]),
        ) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code,
            _ => query::snippet(text),
        },
        Err(_) => query::snippet(text),
    }
}

/// Asks GetMetricData and turns its answer into an outcome, the secrets taken out of it.
pub async fn measure(
    http: &HttpClients,
    c: &CloudWatchMetric,
    region: &str,
    credentials: &Credentials,
    now: Timestamp,
) -> Outcome {
    let redactor = Redactor::new(
        [
            Some(credentials.secret_access_key.clone()),
            credentials.session_token.clone(),
        ]
        .into_iter()
        .flatten(),
    );
    let address = endpoint(c, region);
    let body = form(&parameters(c, now));
    let limit = query::timeout(c.timeout.as_deref());
    let signing = Some((credentials, region, "monitoring", now));
    let answer = match post_form(http, "cloudWatch", &address, signing, body, limit).await {
        Ok((status, text)) if status.is_success() => outcome(c, &text),
        Ok((status, text)) => Outcome::Error(format!(
            "cloudWatch at {address} answered {status}: {}",
            aws_error(&text)
        )),
        Err(e) => Outcome::Error(e),
    };
    redactor.outcome(answer)
}

/// `<GetMetricDataResponse><GetMetricDataResult><MetricDataResults><member>` per query that
/// returns data, each with `Id`, `StatusCode`, `Timestamps` and `Values`: the newest value of
/// each, in the order of the queries. A query with no datapoints is no data; a result
/// `InternalError` or `Forbidden` is an error.
pub fn outcome(c: &CloudWatchMetric, text: &str) -> Outcome {
    let doc = match xml::parse(text) {
        Ok(d) => d,
        Err(e) => return Outcome::Error(format!("cloudWatch's answer is not XML: {e}")),
    };
    let Some(result) = doc.child("GetMetricDataResult") else {
        return Outcome::Error(format!(
            "cloudWatch's answer has no GetMetricDataResult: {}",
            query::snippet(text)
        ));
    };
    let messages = |e: &xml::Element| -> Vec<String> {
        e.members(&["Messages"])
            .iter()
            .map(|m| {
                format!(
                    "{}: {}",
                    m.text_at(&["Code"]).unwrap_or_default(),
                    m.text_at(&["Value"]).unwrap_or_default()
                )
            })
            .collect()
    };
    let results = result.members(&["MetricDataResults"]);
    let mut found = Vec::new();
    for q in c
        .metric_data_queries
        .iter()
        .filter(|q| q.return_data != Some(false))
    {
        let Some(r) = results
            .iter()
            .find(|r| r.text_at(&["Id"]).as_deref() == Some(q.id.as_str()))
        else {
            return Outcome::NoData(format!(
                "cloudWatch returned no result for query {:?}",
                q.id
            ));
        };
        let status = r.text_at(&["StatusCode"]).unwrap_or_default();
        if status == "InternalError" || status == "Forbidden" {
            let mut why = messages(r);
            why.extend(messages(result));
            return Outcome::Error(format!(
                "cloudWatch query {:?}: {status}: {}",
                q.id,
                why.join("; ")
            ));
        }
        let times: Vec<String> = r
            .members(&["Timestamps"])
            .iter()
            .map(|t| t.text.trim().to_string())
            .collect();
        let values: Vec<Option<f64>> = r
            .members(&["Values"])
            .iter()
            .map(|v| v.text.trim().parse().ok())
            .collect();
        // The newest by timestamp, whatever order the answer lists them in.
        let newest = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (times.get(i).cloned().unwrap_or_default(), v)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, v)| v);
        match newest {
            Some(v) => found.push(MetricValue::Number(v)),
            None => {
                return Outcome::NoData(format!(
                    "cloudWatch query {:?} has no datapoints in the window",
                    q.id
                ));
            }
        }
    }
    query::values(found, || {
        "no cloudWatch query returns data (every one has returnData: false)".into()
    })
}

/// The pod's web identity: a role and the file of a token the cluster signed for it.
#[derive(Clone, Debug, PartialEq)]
pub struct WebIdentity {
    pub role_arn: String,
    pub token_file: String,
    pub session_name: String,
    /// `AWS_ENDPOINT_URL_STS` (as AWS's SDKs read it), else the region's STS.
    pub sts_endpoint: Option<String>,
}

impl WebIdentity {
    /// From the variables EKS's IAM roles for service accounts (and the SDKs) use.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Option<WebIdentity> {
        Some(WebIdentity {
            role_arn: env("AWS_ROLE_ARN")?,
            token_file: env("AWS_WEB_IDENTITY_TOKEN_FILE")?,
            session_name: env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "fledge".into()),
            sts_endpoint: env("AWS_ENDPOINT_URL_STS"),
        })
    }
}

/// STS `AssumeRoleWithWebIdentity` (unsigned: the token is the proof): temporary credentials
/// and when they expire.
pub async fn assume_role(
    http: &HttpClients,
    identity: &WebIdentity,
    region: &str,
    token: &str,
) -> Result<(Credentials, Option<Timestamp>), String> {
    let address = identity
        .sts_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    let body = form(&[
        ("Action".into(), "AssumeRoleWithWebIdentity".into()),
        ("Version".into(), "2011-06-15".into()),
        ("RoleArn".into(), identity.role_arn.clone()),
        ("RoleSessionName".into(), identity.session_name.clone()),
        ("WebIdentityToken".into(), token.to_string()),
    ]);
    let redactor = Redactor::new([token.to_string()]);
    let (status, text) = post_form(
        http,
        "sts",
        &address,
        None,
        body,
        crate::api::defaults::QUERY_TIMEOUT,
    )
    .await
    .map_err(|e| redactor.text(&e))?;
    if !status.is_success() {
        return Err(redactor.text(&format!(
            "sts AssumeRoleWithWebIdentity for {} answered {status}: {}",
            identity.role_arn,
            aws_error(&text)
        )));
    }
    let doc = xml::parse(&text).map_err(|e| format!("sts's answer is not XML: {e}"))?;
    let at = ["AssumeRoleWithWebIdentityResult", "Credentials"];
    let field = |name: &str| {
        let mut path = at.to_vec();
        path.push(name);
        doc.text_at(&path)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("sts's answer has no Credentials.{name}"))
    };
    let credentials = Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    };
    let expires = field("Expiration").ok().and_then(|e| e.parse().ok());
    Ok((credentials, expires))
}

#[cfg(test)]
#[path = "cloudwatch_tests.rs"]
mod tests;
