//! CloudWatch's `GetMetricData` and STS's `AssumeRoleWithWebIdentity` as AWS documents them
//! (Query API: `POST /`, a form body, an XML answer): each request checked field by field, its
//! SigV4 signature computed again here from the bytes the server received, and answered with
//! the documented shapes, errors and empty results included. Not the live service.

use super::*;
use crate::analysis::providers::test_server::{self, Answer, Seen};
use crate::api::analysis::{
    CloudWatchDimension, CloudWatchMetricId, CloudWatchMetricStat, CloudWatchQuery,
};

const AMZ_DATE: &str = "20261130T120000Z";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYs3cret";

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn credentials(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIAFLEDGETEST".into(),
        secret_access_key: SECRET.into(),
        session_token: token.map(Into::into),
    }
}

fn stat(id: &str, name: &str) -> CloudWatchQuery {
    CloudWatchQuery {
        id: id.into(),
        metric_stat: Some(CloudWatchMetricStat {
            metric: CloudWatchMetricId {
                namespace: "AWS/ApplicationELB".into(),
                metric_name: name.into(),
                dimensions: vec![CloudWatchDimension {
                    name: "LoadBalancer".into(),
                    value: "app/shop prod/50dc6c495c0c9188".into(),
                }],
            },
            period: 60,
            stat: "Sum".into(),
            unit: Some("Count".into()),
        }),
        return_data: Some(false),
        ..Default::default()
    }
}

fn metric(base: &str) -> CloudWatchMetric {
    CloudWatchMetric {
        metric_data_queries: vec![
            stat("errors", "HTTPCode_Target_5XX_Count"),
            stat("requests", "RequestCount"),
            CloudWatchQuery {
                id: "rate".into(),
                expression: Some("errors / requests".into()),
                label: Some("error rate".into()),
                period: Some(60),
                ..Default::default()
            },
        ],
        interval: Some("10m".into()),
        region: Some("eu-west-1".into()),
        address: Some(base.into()),
        ..Default::default()
    }
}

/// The form body's pairs, decoded, in order.
fn pairs(body: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// GetMetricData's parameters for [`metric`], as the API reference names them.
fn documented_parameters() -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &str| want.push((k.to_string(), v.to_string()));
    add("Action", "GetMetricData");
    add("Version", "2010-08-01");
    add("StartTime", "2026-11-30T11:50:00Z");
    add("EndTime", "2026-11-30T12:00:00Z");
    add("ScanBy", "TimestampDescending");
    for (n, id, name) in [
        (1, "errors", "HTTPCode_Target_5XX_Count"),
        (2, "requests", "RequestCount"),
    ] {
        let p = format!("MetricDataQueries.member.{n}");
        add(&format!("{p}.Id"), id);
        add(
            &format!("{p}.MetricStat.Metric.Namespace"),
            "AWS/ApplicationELB",
        );
        add(&format!("{p}.MetricStat.Metric.MetricName"), name);
        add(
            &format!("{p}.MetricStat.Metric.Dimensions.member.1.Name"),
            "LoadBalancer",
        );
        add(
            &format!("{p}.MetricStat.Metric.Dimensions.member.1.Value"),
            "app/shop prod/50dc6c495c0c9188",
        );
        add(&format!("{p}.MetricStat.Period"), "60");
        add(&format!("{p}.MetricStat.Stat"), "Sum");
        add(&format!("{p}.MetricStat.Unit"), "Count");
        add(&format!("{p}.ReturnData"), "false");
    }
    add("MetricDataQueries.member.3.Id", "rate");
    add("MetricDataQueries.member.3.Expression", "errors / requests");
    add("MetricDataQueries.member.3.Label", "error rate");
    add("MetricDataQueries.member.3.Period", "60");
    want
}

/// The signature of `r` computed from what the server received, following AWS's documented
/// steps: the canonical request from the signed headers as sent, the string to sign, the key.
fn check_signature(r: &Seen, c: &Credentials, service: &str) -> Result<(), String> {
    let auth = r.header("authorization").ok_or("no Authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or(format!("Authorization {auth:?}"))?;
    let (credential, rest) = rest.split_once(", SignedHeaders=").ok_or("SignedHeaders")?;
    let (names, signature) = rest.split_once(", Signature=").ok_or("Signature")?;
    let scope = format!("20261130/eu-west-1/{service}/aws4_request");
    if credential != format!("{}/{scope}", c.access_key_id) {
        return Err(format!("Credential {credential}"));
    }
    let mut want_names = vec!["content-type", "host", "x-amz-date"];
    if c.session_token.is_some() {
        want_names.push("x-amz-security-token");
    }
    if names != want_names.join(";") {
        return Err(format!("SignedHeaders {names}"));
    }
    let mut canonical = format!("{}\n{}\n{}\n", r.method, r.path, r.raw_query);
    for n in names.split(';') {
        canonical.push_str(&format!("{n}:{}\n", r.header(n).unwrap_or_default()));
    }
    canonical.push_str(&format!(
        "\n{names}\n{}",
        sigv4::sha256_hex(r.body.as_bytes())
    ));
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{AMZ_DATE}\n{scope}\n{}",
        sigv4::sha256_hex(canonical.as_bytes())
    );
    let key = sigv4::signing_key(
        &c.secret_access_key,
        &sigv4::Scope {
            region: "eu-west-1",
            service,
            amz_date: AMZ_DATE,
        },
    );
    let expected: String = sigv4::hmac_sha256(&key, to_sign.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if signature != expected {
        return Err(format!("signature {signature} != {expected}"));
    }
    Ok(())
}

/// The documented GetMetricData request: `POST /`, a form body, signed for `monitoring`.
fn get_metric_data(r: &Seen, base: &str, c: &Credentials) -> Result<(), String> {
    if r.method != "POST" || r.path != "/" || !r.raw_query.is_empty() {
        return Err(format!("{} {}?{}", r.method, r.path, r.raw_query));
    }
    if r.header("content-type") != Some("application/x-www-form-urlencoded; charset=utf-8") {
        return Err(format!("Content-Type {:?}", r.header("content-type")));
    }
    if r.header("host") != base.strip_prefix("http://") {
        return Err(format!("Host {:?}", r.header("host")));
    }
    if r.header("x-amz-date") != Some(AMZ_DATE) {
        return Err(format!("X-Amz-Date {:?}", r.header("x-amz-date")));
    }
    if r.header("x-amz-security-token") != c.session_token.as_deref() {
        return Err(format!(
            "X-Amz-Security-Token {:?}",
            r.header("x-amz-security-token")
        ));
    }
    let got = pairs(&r.body);
    if got != documented_parameters() {
        return Err(format!("parameters {got:?}"));
    }
    check_signature(r, c, "monitoring")
}

/// One result of an answer: (id, status, [(timestamp, value)]).
type AnsweredResult<'a> = (&'a str, &'a str, &'a [(&'a str, f64)]);

/// The documented answer.
fn answer(results: &[AnsweredResult]) -> String {
    let members: String = results
        .iter()
        .map(|(id, status, points)| {
            let times: String = points
                .iter()
                .map(|(t, _)| format!("<member>{t}</member>"))
                .collect();
            let values: String = points
                .iter()
                .map(|(_, v)| format!("<member>{v}</member>"))
                .collect();
            format!(
                "<member><Timestamps>{times}</Timestamps><Label>error rate</Label>\
                 <Id>{id}</Id><StatusCode>{status}</StatusCode><Values>{values}</Values>\
                 </member>"
            )
        })
        .collect();
    format!(
        r#"<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
  <GetMetricDataResult>
    <MetricDataResults>{members}</MetricDataResults>
    <Messages/>
  </GetMetricDataResult>
  <ResponseMetadata><RequestId>0f3c9f3e-2d3f-4b4e-9d3f-1e3a7b2c9d10</RequestId></ResponseMetadata>
</GetMetricDataResponse>"#
    )
}

async fn ask(c: Credentials, status: u16, reply: String) -> Outcome {
    let seen_c = c.clone();
    let base_cell: Arc<Mutex<String>> = Arc::default();
    let base_in = base_cell.clone();
    let (base, log) = test_server::start(move |r| -> Answer {
        get_metric_data(r, &base_in.lock().unwrap(), &seen_c)?;
        Ok((status, "text/xml", reply.clone()))
    })
    .await;
    *base_cell.lock().unwrap() = base.clone();
    let got = test_server::within(measure(
        &test_server::clients(),
        &metric(&base),
        "eu-west-1",
        &c,
        now(),
    ))
    .await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    got
}

#[tokio::test]
async fn the_newest_value_of_the_returned_query() {
    // Listed oldest first here: the newest is chosen by its timestamp, not its place.
    let got = ask(
        credentials(None),
        200,
        answer(&[(
            "rate",
            "Complete",
            &[
                ("2026-11-30T11:58:00Z", 0.5),
                ("2026-11-30T11:59:00Z", 0.012),
            ],
        )]),
    )
    .await;
    assert_eq!(got, Outcome::Value(MetricValue::Number(0.012)));
}

#[tokio::test]
async fn temporary_credentials_send_and_sign_their_token() {
    let got = ask(
        credentials(Some("FwoGZXIvYXdzEXAMPLEtoken")),
        200,
        answer(&[("rate", "Complete", &[("2026-11-30T11:59:00Z", 0.0)])]),
    )
    .await;
    assert_eq!(got, Outcome::Value(MetricValue::Number(0.0)));
}

#[tokio::test]
async fn no_datapoints_is_no_data_and_failures_are_errors_without_secrets() {
    let empty = ask(credentials(None), 200, answer(&[("rate", "Complete", &[])])).await;
    assert!(
        matches!(&empty, Outcome::NoData(m) if m.contains("\"rate\"")),
        "{empty:?}"
    );
    let failed = ask(
        credentials(None),
        200,
        answer(&[("rate", "InternalError", &[])]),
    )
    .await;
    assert!(
        matches!(&failed, Outcome::Error(m) if m.contains("InternalError")),
        "{failed:?}"
    );
    let refused = ask(
        credentials(Some("FwoGZXIvYXdzEXAMPLEtoken")),
        403,
        format!(
            r#"<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
  <Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>
    <Message>The request signature we calculated does not match ({SECRET}, FwoGZXIvYXdzEXAMPLEtoken)</Message></Error>
  <RequestId>5d1b5f0b-0000-4000-8000-000000000000</RequestId>
</ErrorResponse>"#
        ),
    )
    .await;
    match &refused {
        Outcome::Error(m) => {
            assert!(
                m.contains("403") && m.contains("SignatureDoesNotMatch"),
                "{m}"
            );
            assert!(!m.contains("s3cret") && !m.contains("EXAMPLEtoken"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let invalid = ask(
        credentials(None),
        400,
        r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>The value errors / requests for parameter MetricDataQueries.member.3.Expression is invalid.</Message></Error><RequestId>x</RequestId></ErrorResponse>"#.into(),
    )
    .await;
    assert!(
        matches!(&invalid, Outcome::Error(m) if m.contains("InvalidParameterValue")),
        "{invalid:?}"
    );
}

#[test]
fn several_returned_queries_are_a_list_in_their_order() {
    let mut c = metric("http://x");
    for q in &mut c.metric_data_queries {
        q.return_data = None;
    }
    c.metric_data_queries.truncate(2);
    let text = answer(&[
        ("requests", "Complete", &[("2026-11-30T11:59:00Z", 100.0)]),
        ("errors", "PartialData", &[("2026-11-30T11:59:00Z", 2.0)]),
    ]);
    assert_eq!(
        outcome(&c, &text),
        Outcome::Value(MetricValue::List(vec![
            MetricValue::Number(2.0),
            MetricValue::Number(100.0)
        ]))
    );
}

/// STS's documented request: `POST /` with the form, unsigned.
fn assume_role_request(r: &Seen) -> Result<(), String> {
    if r.method != "POST" || r.path != "/" || r.header("authorization").is_some() {
        return Err(format!("{} {} {:?}", r.method, r.path, r.headers));
    }
    let want: Vec<(String, String)> = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", "arn:aws:iam::123456789012:role/fledge-analysis"),
        ("RoleSessionName", "fledge"),
        ("WebIdentityToken", "eyJhbGciOiJSUzI1NiJ9.identity.token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if pairs(&r.body) != want {
        return Err(format!("parameters {:?}", pairs(&r.body)));
    }
    Ok(())
}

const ASSUMED: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:fledge:fledge</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/fledge-analysis/fledge</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:fledge</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2099-11-30T13:00:00Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>fledge</SourceIdentity>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

#[tokio::test]
async fn a_web_identity_becomes_credentials_once_and_signs_with_them() {
    let (base, log) = test_server::start(move |r| -> Answer {
        assume_role_request(r)?;
        Ok((200, "text/xml", ASSUMED.into()))
    })
    .await;
    let dir = std::env::temp_dir().join(format!("fledge-web-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.identity.token\n").unwrap();
    let env = |name: &str| match name {
        "AWS_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/fledge-analysis".to_string()),
        "AWS_WEB_IDENTITY_TOKEN_FILE" => Some(token_file.display().to_string()),
        "AWS_ENDPOINT_URL_STS" => Some(base.clone()),
        _ => None,
    };
    let identity = WebIdentity::from_env(env).expect("a web identity");
    assert_eq!(identity.session_name, "fledge");
    let (service, _handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let cw = CloudWatch::new(
        test_server::clients(),
        kube::Client::new(service, "default"),
    );
    let first = test_server::within(cw.credentials_by_web_identity(&identity, "eu-west-1"))
        .await
        .expect("credentials");
    let again = test_server::within(cw.credentials_by_web_identity(&identity, "eu-west-1"))
        .await
        .expect("credentials");
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "the second measurement reuses them: {seen:?}"
    );
    assert_eq!(seen[0].1, None, "{:?}", seen[0]);
    assert_eq!(first, again);
    assert_eq!(
        first,
        Credentials {
            access_key_id: "ASgeIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY".into(),
            session_token: Some("AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE".into()),
        }
    );
    // The assumed credentials sign GetMetricData, token included.
    let got = ask(
        first,
        200,
        answer(&[("rate", "Complete", &[("2026-11-30T11:59:00Z", 0.25)])]),
    )
    .await;
    assert_eq!(got, Outcome::Value(MetricValue::Number(0.25)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_refused_web_identity_is_an_error_without_the_token() {
    let (base, _log) = test_server::start(move |_| -> Answer {
        Ok((
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
             <Message>Token eyJhbGciOiJSUzI1NiJ9.identity.token is expired</Message></Error>\
             </ErrorResponse>"
                .into(),
        ))
    })
    .await;
    let identity = WebIdentity {
        role_arn: "arn:aws:iam::123456789012:role/fledge-analysis".into(),
        token_file: String::new(),
        session_name: "fledge".into(),
        sts_endpoint: Some(base),
    };
    let err = test_server::within(assume_role(
        &test_server::clients(),
        &identity,
        "eu-west-1",
        "eyJhbGciOiJSUzI1NiJ9.identity.token",
    ))
    .await
    .unwrap_err();
    assert!(err.contains("InvalidIdentityToken"), "{err}");
    assert!(!err.contains("identity.token"), "{err}");
}

#[test]
fn the_region_picks_the_endpoint() {
    let mut c = metric("http://x");
    c.address = None;
    assert_eq!(
        endpoint(&c, "eu-west-1"),
        "https://monitoring.eu-west-1.amazonaws.com"
    );
}
